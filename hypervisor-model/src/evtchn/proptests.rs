//! Random sequences of event-channel operations over three domains: every invariant holds
//! after every step, no operation panics, and every `Notify` names a vCPU whose upcall flag
//! is now set.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{EventChannels, EvtchnDomainConfig, Notify, Virq};
use crate::ids::{DomId, EvtchnPort, VcpuId};

/// Domains 0 (privileged), 1 and 2; vCPU counts 2, 2, 1; small port caps so ENOSPC occurs.
const DOMAIN_COUNT: u16 = 3;

#[derive(Clone, Debug)]
enum Op {
    AllocUnbound { caller: u16, dom: u16, remote: u16 },
    BindInterdomain { local: u16, remote: u16, port: u32 },
    BindVirq { dom: u16, virq: u32, vcpu: u32 },
    BindIpi { dom: u16, vcpu: u32 },
    Close { dom: u16, port: u32 },
    Send { dom: u16, port: u32 },
    Unmask { dom: u16, port: u32 },
    Mask { dom: u16, port: u32 },
    Take { dom: u16, vcpu: u32 },
    BindVcpu { dom: u16, port: u32, vcpu: u32 },
    Reset { caller: u16, dom: u16, paused: bool },
    VcpuVirq { dom: u16, vcpu: u32 },
    GlobalVirq { dom: u16 },
    Fifo { dom: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DOMAIN_COUNT;
    // Ports up to 80 reach past the first bucket of 64 and past the small caps.
    let p = 0u32..80;
    let v = 0u32..3;
    prop_oneof![
        (d.clone(), d.clone(), d.clone()).prop_map(|(caller, dom, remote)| Op::AllocUnbound {
            caller,
            dom,
            remote
        }),
        (d.clone(), d.clone(), p.clone()).prop_map(|(local, remote, port)| Op::BindInterdomain {
            local,
            remote,
            port
        }),
        (d.clone(), 0u32..26, v.clone()).prop_map(|(dom, virq, vcpu)| Op::BindVirq {
            dom,
            virq,
            vcpu
        }),
        (d.clone(), v.clone()).prop_map(|(dom, vcpu)| Op::BindIpi { dom, vcpu }),
        (d.clone(), p.clone()).prop_map(|(dom, port)| Op::Close { dom, port }),
        (d.clone(), p.clone()).prop_map(|(dom, port)| Op::Send { dom, port }),
        (d.clone(), p.clone()).prop_map(|(dom, port)| Op::Unmask { dom, port }),
        (d.clone(), p.clone()).prop_map(|(dom, port)| Op::Mask { dom, port }),
        (d.clone(), v.clone()).prop_map(|(dom, vcpu)| Op::Take { dom, vcpu }),
        (d.clone(), p, v.clone()).prop_map(|(dom, port, vcpu)| Op::BindVcpu { dom, port, vcpu }),
        (d.clone(), d.clone(), any::<bool>()).prop_map(|(caller, dom, paused)| Op::Reset {
            caller,
            dom,
            paused
        }),
        (d.clone(), v).prop_map(|(dom, vcpu)| Op::VcpuVirq { dom, vcpu }),
        d.clone().prop_map(|dom| Op::GlobalVirq { dom }),
        d.prop_map(|dom| Op::Fifo { dom }),
    ]
}

fn dom(raw: u16) -> DomId {
    DomId::new(raw).unwrap_or(DomId::DOM0)
}

fn host() -> EventChannels {
    let mut ec = EventChannels::new();
    // Caps 70, 10, 3: dom0 crosses a bucket boundary, the others run out of ports.
    let shapes = [(70, 2, true), (10, 2, false), (3, 1, false)];
    for (raw, (max_evtchn_port, vcpu_count, privileged)) in (0u16..).zip(shapes) {
        let config = EvtchnDomainConfig {
            max_evtchn_port,
            vcpu_count,
            privileged,
        };
        let _ = ec.init_domain(dom(raw), config);
    }
    ec
}

fn apply(ec: &mut EventChannels, op: &Op) -> Option<Notify> {
    let port = EvtchnPort::new;
    match *op {
        Op::AllocUnbound {
            caller,
            dom: d,
            remote,
        } => {
            let _ = ec.alloc_unbound(dom(caller), dom(d), dom(remote));
            None
        }
        Op::BindInterdomain {
            local,
            remote,
            port: p,
        } => ec
            .bind_interdomain(dom(local), dom(remote), port(p))
            .ok()
            .and_then(|b| b.notify),
        Op::BindVirq { dom: d, virq, vcpu } => {
            let _ = ec.bind_virq(dom(d), virq, vcpu);
            None
        }
        Op::BindIpi { dom: d, vcpu } => {
            let _ = ec.bind_ipi(dom(d), vcpu);
            None
        }
        Op::Close { dom: d, port: p } => {
            let _ = ec.close(dom(d), port(p));
            None
        }
        Op::Send { dom: d, port: p } => ec.send(dom(d), port(p)).ok().flatten(),
        Op::Unmask { dom: d, port: p } => ec.unmask(dom(d), port(p)).ok().flatten(),
        _ => apply_rest(ec, op),
    }
}

fn apply_rest(ec: &mut EventChannels, op: &Op) -> Option<Notify> {
    let vcpu = VcpuId::new;
    match *op {
        Op::Mask { dom: d, port } => {
            ec.domain_mut(dom(d))?
                .guest_set_mask(EvtchnPort::new(port), true);
            None
        }
        Op::Take { dom: d, vcpu: v } => {
            ec.domain_mut(dom(d))?.guest_take_events(vcpu(v)?);
            None
        }
        Op::BindVcpu {
            dom: d,
            port,
            vcpu: v,
        } => {
            let _ = ec.bind_vcpu(dom(d), EvtchnPort::new(port), v);
            None
        }
        Op::Reset {
            caller,
            dom: d,
            paused,
        } => {
            let _ = ec.reset(dom(caller), dom(d), paused);
            None
        }
        Op::VcpuVirq { dom: d, vcpu: v } => {
            let v = vcpu(v)?;
            let exists = ec.domain(dom(d))?.upcall_pending(v).is_some();
            if exists {
                ec.send_vcpu_virq(dom(d), v, Virq::TIMER)
            } else {
                None
            }
        }
        Op::GlobalVirq { dom: d } => ec.send_global_virq(dom(d), Virq::DOM_EXC),
        Op::Fifo { dom: d } => {
            let _ = ec.init_fifo(dom(d));
            None
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_evtchn_ops_keep_every_invariant(ops in proptest::collection::vec(op(), 1..120)) {
        let mut ec = host();
        for op in &ops {
            let notify = apply(&mut ec, op);
            let mut out = Vec::new();
            ec.check_invariants(&mut out);
            prop_assert!(out.is_empty(), "after {:?}: {:?}", op, out);
            if let Some(n) = notify {
                let upcall = ec.domain(n.dom).and_then(|d| d.upcall_pending(n.vcpu));
                prop_assert_eq!(upcall, Some(true));
            }
        }
    }

    #[test]
    fn destroying_any_domain_after_random_ops_leaves_no_dangling_pair(
        ops in proptest::collection::vec(op(), 1..80),
        victim in 0..DOMAIN_COUNT,
    ) {
        let mut ec = host();
        for op in &ops {
            apply(&mut ec, op);
        }
        ec.destroy(dom(victim));
        let mut out = Vec::new();
        ec.check_invariants(&mut out);
        prop_assert!(out.is_empty(), "{:?}", out);
        prop_assert_eq!(ec.domain(dom(victim)).map(|d| d.active_count()), Some(0));
    }
}
