//! Property test of the whole core: random small hosts (1–6 pCPUs, every scheduler, SMT or
//! not), random domains and random timelines (create, destroy, pause, unpause, vcpu-pin,
//! guest block/wake/yield, mem-set and mem-max with the balloon driver, time passing), with
//! guests of up to 3 GiB on an 8 GiB host with claims on or off (so creates also fail for
//! memory, early or late), keep every invariant after every input, and never panic.
//!
//! Inputs that cannot apply (a block of a vCPU that is not running, a wake of a destroyed
//! domain's vCPU) are refused by `handle` with an `InputError`; the property is that such a
//! refusal changes nothing and breaks nothing.

extern crate std;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::Hypervisor;
use crate::cpumask::CpuMask;
use crate::event::CoreInput;
use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};
use crate::sched::SchedKind;
use crate::testing::{small_host, FakePlatform};
use crate::time::{STime, Span};
use crate::toolstack::config::DomainConfig;
use crate::toolstack::ops::{JobId, ToolstackOp};

/// One step of a random timeline. Indices pick among what exists at that moment.
#[derive(Clone, Debug)]
enum Step {
    Create {
        vcpus: u32,
        pin_mask: u8,
        memory_mib: u64,
    },
    MemSet {
        dom: usize,
        target_mib: u64,
    },
    MemMax {
        dom: usize,
        max_mib: u64,
    },
    Destroy {
        dom: usize,
    },
    Pause {
        dom: usize,
    },
    Unpause {
        dom: usize,
    },
    Pin {
        dom: usize,
        vcpu: u32,
        hard: u8,
        soft: u8,
    },
    Block {
        dom: usize,
        vcpu: u32,
    },
    Wake {
        dom: usize,
        vcpu: u32,
    },
    Yield {
        dom: usize,
        vcpu: u32,
    },
    Advance {
        us: u32,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            1u32..=4,
            any::<u8>(),
            prop_oneof![Just(32u64), Just(1024), Just(3072)]
        )
            .prop_map(|(vcpus, pin_mask, memory_mib)| Step::Create {
                vcpus,
                pin_mask,
                memory_mib
            }),
        (0usize..8, 0u64..4096).prop_map(|(dom, target_mib)| Step::MemSet { dom, target_mib }),
        (0usize..8, 0u64..4096).prop_map(|(dom, max_mib)| Step::MemMax { dom, max_mib }),
        (0usize..8).prop_map(|dom| Step::Destroy { dom }),
        (0usize..8).prop_map(|dom| Step::Pause { dom }),
        (0usize..8).prop_map(|dom| Step::Unpause { dom }),
        (0usize..8, 0u32..4, any::<u8>(), any::<u8>()).prop_map(|(dom, vcpu, hard, soft)| {
            Step::Pin {
                dom,
                vcpu,
                hard,
                soft,
            }
        }),
        (0usize..8, 0u32..4).prop_map(|(dom, vcpu)| Step::Block { dom, vcpu }),
        (0usize..8, 0u32..4).prop_map(|(dom, vcpu)| Step::Wake { dom, vcpu }),
        (0usize..8, 0u32..4).prop_map(|(dom, vcpu)| Step::Yield { dom, vcpu }),
        (1u32..30_000).prop_map(|us| Step::Advance { us }),
    ]
}

fn sched_kind() -> impl Strategy<Value = SchedKind> {
    prop_oneof![
        Just(SchedKind::Credit2),
        Just(SchedKind::Rtds),
        Just(SchedKind::Null)
    ]
}

/// A mask of the host's pCPUs from the low bits of `bits` (`None` when it selects none).
fn mask_of(bits: u8, nr_cpus: u32) -> Option<CpuMask> {
    let mut mask = CpuMask::empty(nr_cpus);
    for cpu in 0..nr_cpus.min(8) {
        if bits & (1 << cpu) != 0 {
            mask.set(PcpuId::new(cpu)?);
        }
    }
    (!mask.is_empty()).then_some(mask)
}

struct Driver {
    hv: Hypervisor,
    p: FakePlatform,
    nr_cpus: u32,
    next_job: u32,
    next_name: u32,
}

impl Driver {
    fn guests(&self) -> Vec<DomId> {
        self.hv
            .domains()
            .map(|d| d.id)
            .filter(|d| *d != DomId::DOM0)
            .collect()
    }

    fn pick(&self, index: usize) -> Option<DomId> {
        let guests = self.guests();
        (!guests.is_empty()).then(|| guests[index % guests.len()])
    }

    fn toolstack(&mut self, op: ToolstackOp) {
        self.next_job += 1;
        let input = CoreInput::Toolstack {
            job: JobId(self.next_job),
            op,
        };
        self.handle(&input);
    }

    /// Hands `input` to the core now; a refusal is allowed, a broken invariant is not.
    fn handle(&mut self, input: &CoreInput) {
        let _refused_or_done = self.hv.handle(input, &mut self.p);
        let broken = self.hv.check_invariants();
        assert!(broken.is_empty(), "after {input:?}: {broken:?}");
    }

    fn vcpu(&self, dom: usize, vcpu: u32) -> Option<VcpuRef> {
        Some(VcpuRef {
            dom: self.pick(dom)?,
            vcpu: VcpuId::new(vcpu)?,
        })
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Create {
                vcpus,
                pin_mask,
                memory_mib,
            } => {
                self.next_name += 1;
                let mut config = DomainConfig::with_defaults(format!("g{}", self.next_name));
                config.vcpus = vcpus;
                config.max_vcpus = vcpus;
                config.memory_kib = memory_mib * 1024;
                config.max_memory_kib = memory_mib * 1024;
                if let Some(mask) = mask_of(pin_mask, self.nr_cpus) {
                    config.cpus = crate::toolstack::config::AffinityCfg::Same(mask);
                }
                let op = ToolstackOp::Create {
                    config: Box::new(config),
                    uuid: [0; 16],
                    paused: false,
                };
                self.toolstack(op);
            }
            Step::Destroy { dom } => {
                if let Some(dom) = self.pick(dom) {
                    self.toolstack(ToolstackOp::Destroy { dom });
                }
            }
            Step::MemSet { dom, target_mib } => {
                if let Some(dom) = self.pick(dom) {
                    let target_kib = target_mib * 1024;
                    self.toolstack(ToolstackOp::MemSet { dom, target_kib });
                }
            }
            Step::MemMax { dom, max_mib } => {
                if let Some(dom) = self.pick(dom) {
                    let max_kib = max_mib * 1024;
                    self.toolstack(ToolstackOp::MemMax { dom, max_kib });
                }
            }
            Step::Pause { dom } => {
                if let Some(dom) = self.pick(dom) {
                    self.toolstack(ToolstackOp::Pause { dom });
                }
            }
            Step::Unpause { dom } => {
                if let Some(dom) = self.pick(dom) {
                    self.toolstack(ToolstackOp::Unpause { dom });
                }
            }
            Step::Pin {
                dom,
                vcpu,
                hard,
                soft,
            } => {
                if let Some(v) = self.vcpu(dom, vcpu) {
                    let op = ToolstackOp::VcpuAffinity {
                        dom: v.dom,
                        vcpu: Some(v.vcpu),
                        hard: mask_of(hard, self.nr_cpus),
                        soft: mask_of(soft, self.nr_cpus),
                    };
                    self.toolstack(op);
                }
            }
            Step::Block { dom, vcpu } => {
                if let Some(v) = self.vcpu(dom, vcpu) {
                    self.handle(&CoreInput::VcpuBlock { vcpu: v });
                }
            }
            Step::Wake { dom, vcpu } => {
                if let Some(v) = self.vcpu(dom, vcpu) {
                    self.handle(&CoreInput::VcpuWake { vcpu: v });
                }
            }
            Step::Yield { dom, vcpu } => {
                if let Some(v) = self.vcpu(dom, vcpu) {
                    self.handle(&CoreInput::VcpuYield { vcpu: v });
                }
            }
            Step::Advance { us } => {
                let end = self.p.now.after(Span::from_us(i64::from(us)));
                self.p.advance_to(&mut self.hv, end);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_timelines_keep_every_invariant(
        nr_cpus in 1u32..=6,
        smt in any::<bool>(),
        kind in sched_kind(),
        claims in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..50),
    ) {
        let mut p = FakePlatform::default();
        let mut config = small_host(nr_cpus, kind);
        config.claim_mode = claims;
        if smt {
            // Two threads per core: pCPUs 2k and 2k+1 are siblings.
            for (cpu, topo) in config.host.cpus.iter_mut().enumerate() {
                topo.core = u32::try_from(cpu / 2).unwrap_or(0);
            }
            config.host.threads_per_core = 2;
        }
        let hv = Hypervisor::boot(config, &mut p);
        let mut driver = Driver { hv, p, nr_cpus, next_job: 0, next_name: 0 };
        driver.p.advance_to(&mut driver.hv, STime::from_ns(1));
        for step in &steps {
            driver.apply(step);
        }
        let end = driver.p.now.after(Span::from_ms(50));
        driver.p.advance_to(&mut driver.hv, end);
        prop_assert!(driver.hv.check_invariants().is_empty());
    }
}
