//! Behaviour tests of the core through `FakePlatform`: boot, create, wake/block, pause,
//! destroy, and the null scheduler's assignment rules.

extern crate std;

use alloc::boxed::Box;
use alloc::string::String;

use super::Hypervisor;
use crate::domain::vcpu::Runstate;
use crate::event::CoreInput;
use crate::ids::{DomId, VcpuRef};
use crate::sched::SchedKind;
use crate::testing::ids::{cpu, vcpu};
use crate::testing::{small_host, FakePlatform};
use crate::time::{STime, Span};
use crate::toolstack::config::DomainConfig;
use crate::toolstack::ops::{JobId, ToolstackError, ToolstackOp, ToolstackReply};

fn boot(nr_cpus: u32) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(nr_cpus, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn guest(name: &str, vcpus: u32) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config.memory_kib = 512 * 1024;
    config.max_memory_kib = 512 * 1024;
    config
}

fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, config: DomainConfig) {
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0; 16],
        paused: false,
    };
    assert_eq!(
        hv.handle(
            &CoreInput::Toolstack {
                job: JobId(job),
                op
            },
            p
        ),
        Ok(())
    );
    p.run_until_idle(hv);
}

#[test]
fn boot_runs_dom0_vcpu_on_pcpu0() {
    let (hv, _p) = boot(4);
    assert_eq!(hv.running_on(cpu(0)), Some(vcpu(0, 0)));
    assert_eq!(hv.running_on(cpu(1)), None);
}

#[test]
fn boot_banner_names_null_scheduler() {
    let (hv, _p) = boot(4);
    assert!(hv
        .console()
        .read()
        .contains("(XEN) Using scheduler: null Scheduler (null)\n"));
}

#[test]
fn create_assigns_guest_vcpus_to_free_pcpus_in_order() {
    let (mut hv, mut p) = boot(4);
    create(&mut hv, &mut p, 1, guest("vm1", 2));
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
    assert_eq!(hv.running_on(cpu(2)), Some(vcpu(1, 1)));
}

#[test]
fn create_takes_virtual_time_for_population() {
    // 512 MiB = 131072 pages at 1200 ns each, in two batches, plus domctl and build.
    let (mut hv, mut p) = boot(4);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    assert_eq!(p.now, STime::from_ns(50_000 + 131_072 * 1_200 + 20_000_000));
}

#[test]
fn blocked_vcpu_frees_nothing_under_null() {
    // null: a blocked vCPU keeps its pCPU; the pCPU idles (spec §4.5 rule 3).
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    assert_eq!(
        hv.handle(&CoreInput::VcpuBlock { vcpu: vcpu(1, 0) }, &mut p),
        Ok(())
    );
    assert_eq!(hv.running_on(cpu(1)), None);
    assert_eq!(
        hv.domain(DomId::new(1).expect("d1"))
            .map(|d| d.is_blocked()),
        Some(true)
    );
}

#[test]
fn wake_after_block_runs_vcpu_again_on_same_pcpu() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    assert_eq!(
        hv.handle(&CoreInput::VcpuBlock { vcpu: vcpu(1, 0) }, &mut p),
        Ok(())
    );
    p.now = p.now.after(Span::from_us(100));
    assert_eq!(
        hv.handle(&CoreInput::VcpuWake { vcpu: vcpu(1, 0) }, &mut p),
        Ok(())
    );
    p.run_until_idle(&mut hv);
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
}

#[test]
fn extra_vcpu_waits_when_pcpus_are_taken() {
    // 2 pCPUs: dom0 on 0, vm1v0 on 1, vm1v1 in the waitqueue with no CPU time.
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 2));
    let d1 = hv.domain(DomId::new(1).expect("d1")).expect("vm1 exists");
    assert_eq!(d1.vcpus[1].runstate, Runstate::Runnable);
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
}

#[test]
fn destroy_hands_pcpu_to_waiting_vcpu() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    create(&mut hv, &mut p, 2, guest("vm2", 1));
    let op = ToolstackOp::Destroy {
        dom: DomId::new(1).expect("d1"),
    };
    assert_eq!(
        hv.handle(&CoreInput::Toolstack { job: JobId(3), op }, &mut p),
        Ok(())
    );
    p.run_until_idle(&mut hv);
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(2, 0)));
}

#[test]
fn pause_takes_vcpus_offline_and_unpause_restores() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    let d1 = DomId::new(1).expect("d1");
    assert_eq!(
        hv.handle(
            &CoreInput::Toolstack {
                job: JobId(2),
                op: ToolstackOp::Pause { dom: d1 }
            },
            &mut p
        ),
        Ok(())
    );
    p.run_until_idle(&mut hv);
    assert_eq!(
        hv.domain(d1).map(|d| d.vcpus[0].runstate),
        Some(Runstate::Offline)
    );
    assert_eq!(
        hv.handle(
            &CoreInput::Toolstack {
                job: JobId(3),
                op: ToolstackOp::Unpause { dom: d1 }
            },
            &mut p
        ),
        Ok(())
    );
    p.run_until_idle(&mut hv);
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
}

#[test]
fn unpause_of_running_domain_is_refused() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    let op = ToolstackOp::Unpause {
        dom: DomId::new(1).expect("d1"),
    };
    assert_eq!(
        hv.handle(&CoreInput::Toolstack { job: JobId(2), op }, &mut p),
        Ok(())
    );
    let last = p.replies.last().map(|(_, r)| r.clone());
    assert_eq!(
        last,
        Some(ToolstackReply::Done {
            result: Err(ToolstackError::NotPaused)
        })
    );
}

#[test]
fn create_beyond_free_memory_fails_before_domain_exists() {
    let (mut hv, mut p) = boot(2);
    let mut config = guest("huge", 1);
    config.memory_kib = 64 * 1024 * 1024;
    config.max_memory_kib = config.memory_kib;
    create(&mut hv, &mut p, 1, config);
    assert_eq!(hv.domains().count(), 1);
}

#[test]
fn destroyed_domid_is_not_reused_within_reuse_timeout() {
    let (mut hv, mut p) = boot(4);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    let op = ToolstackOp::Destroy {
        dom: DomId::new(1).expect("d1"),
    };
    assert_eq!(
        hv.handle(&CoreInput::Toolstack { job: JobId(2), op }, &mut p),
        Ok(())
    );
    p.run_until_idle(&mut hv);
    create(&mut hv, &mut p, 3, guest("vm2", 1));
    assert_eq!(
        hv.domains()
            .map(|d| d.id.raw())
            .collect::<std::vec::Vec<_>>(),
        [0, 2]
    );
}

#[test]
fn block_of_vcpu_not_running_is_an_input_error() {
    let (mut hv, mut p) = boot(2);
    let result = hv.handle(&CoreInput::VcpuBlock { vcpu: vcpu(7, 0) }, &mut p);
    assert_eq!(result, Err(super::InputError::UnknownVcpu(vcpu(7, 0))));
}

fn pin(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, v: VcpuRef, hard: &[u32]) {
    let mut mask = crate::cpumask::CpuMask::empty(hv.host().nr_cpus());
    for c in hard {
        mask.set(cpu(*c));
    }
    let op = ToolstackOp::VcpuAffinity {
        dom: v.dom,
        vcpu: Some(v.vcpu),
        hard: Some(mask),
        soft: None,
    };
    assert_eq!(
        hv.handle(
            &CoreInput::Toolstack {
                job: JobId(job),
                op
            },
            p
        ),
        Ok(())
    );
    p.run_until_idle(hv);
}

#[test]
fn pin_moves_running_vcpu_to_the_new_free_pcpu() {
    // null: vm1v0 runs on cpu1; pinned to cpu2 it is deassigned, moved, and runs there.
    let (mut hv, mut p) = boot(3);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
    pin(&mut hv, &mut p, 2, vcpu(1, 0), &[2]);
    assert_eq!(hv.running_on(cpu(1)), None);
    assert_eq!(hv.running_on(cpu(2)), Some(vcpu(1, 0)));
}

#[test]
fn pin_outside_the_pool_is_refused_and_changes_nothing() {
    let (mut hv, mut p) = boot(2);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    let op = ToolstackOp::VcpuAffinity {
        dom: vcpu(1, 0).dom,
        vcpu: Some(vcpu(1, 0).vcpu),
        hard: Some(crate::cpumask::CpuMask::empty(2)),
        soft: None,
    };
    assert_eq!(
        hv.handle(&CoreInput::Toolstack { job: JobId(2), op }, &mut p),
        Ok(())
    );
    assert_eq!(
        p.replies.last().map(|r| r.1.clone()),
        Some(ToolstackReply::Done {
            result: Err(ToolstackError::EmptyAffinity)
        })
    );
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
}

fn broken_invariants(hv: &Hypervisor) -> std::vec::Vec<&'static str> {
    hv.check_invariants().iter().map(|v| v.invariant).collect()
}

#[test]
fn checker_passes_on_fresh_host() {
    let (hv, _p) = boot(4);
    assert!(broken_invariants(&hv).is_empty());
}

#[test]
fn checker_reports_pcpu_running_vcpu_that_runs_elsewhere() {
    // d0v0 runs on pCPU 0; claiming pCPU 1 also runs it breaks "one pCPU per vCPU".
    let (mut hv, _p) = boot(4);
    hv.curr[1] = Some(vcpu(0, 0));
    assert!(broken_invariants(&hv).contains(&"core.curr_matches_running_on"));
}

#[test]
fn checker_reports_pages_not_accounted_for() {
    // The domain table claims one page more for dom0 than the allocator gave it.
    let (mut hv, _p) = boot(4);
    if let Some(d) = hv.domains.get_mut(DomId::DOM0) {
        d.tot_pages += 1;
    }
    assert_eq!(
        broken_invariants(&hv),
        ["mem.domain_tot_pages", "core.pages_conserved"]
    );
}

#[test]
fn checker_reports_vcpu_running_outside_hard_affinity() {
    // dom0's vCPU is pinned to pCPU 0; moving its affinity away while it runs is a bug.
    let (mut hv, _p) = boot(4);
    if let Some(v) = hv.domains.vcpu_mut(vcpu(0, 0)) {
        v.hard_affinity = crate::cpumask::CpuMask::single(4, cpu(3));
    }
    assert!(broken_invariants(&hv).contains(&"core.runs_within_hard_affinity"));
}

#[test]
fn checker_reports_null_free_mask_out_of_sync() {
    // Taking pCPU 2 out of Pool-0's mask leaves null's cpus_free naming a foreign pCPU.
    let (mut hv, _p) = boot(4);
    hv.pool_mut(crate::ids::PoolId(0)).cpus.clear(cpu(2));
    let broken = broken_invariants(&hv);
    assert!(broken.contains(&"null.free_cpus_in_pool"));
    assert!(broken.contains(&"core.pools_partition_cpus"));
}

#[test]
fn create_with_name_of_live_domain_fails_and_leaves_no_domain() {
    let (mut hv, mut p) = boot(4);
    create(&mut hv, &mut p, 1, guest("vm1", 1));
    create(&mut hv, &mut p, 2, guest("vm1", 1));
    let last = p.replies.last().map(|(_, r)| r.clone());
    assert_eq!(
        last,
        Some(ToolstackReply::Done {
            result: Err(ToolstackError::NameInUse)
        })
    );
    assert_eq!(hv.domains().count(), 2);
}

#[test]
fn xenstore_socket_client_gets_its_reply() {
    use crate::xenstore::{Frame, FrameDecoder, MsgType};
    let (mut hv, mut p) = boot(2);
    let mut bytes = alloc::vec::Vec::new();
    Frame::request(MsgType::Directory, 7, 0, b"/\0").encode_into(&mut bytes);
    let input = CoreInput::XsSocketData { client: 3, bytes };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    let (client, reply) = p.xs_sent.last().cloned().expect("a reply was sent");
    assert_eq!(client, 3);
    let mut decoder = FrameDecoder::new();
    decoder.feed(&reply);
    let frame = decoder
        .next_frame()
        .expect("valid frame")
        .expect("whole frame");
    assert_eq!(frame.msg_type(), Some(MsgType::Directory));
    assert_eq!(frame.header.req_id, 7);
    assert!(frame.payload.starts_with(b"tool\0"));
}

#[test]
fn xenstore_socket_client_with_oversized_frame_is_dropped() {
    let (mut hv, mut p) = boot(2);
    // A header announcing 5000 payload bytes (over XENSTORE_PAYLOAD_MAX).
    let mut bytes = alloc::vec::Vec::new();
    for word in [2u32, 1, 0, 5000] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    let input = CoreInput::XsSocketData { client: 9, bytes };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    assert_eq!(p.xs_closed, alloc::vec![9]);
    assert!(hv.check_invariants().is_empty());
}

/// Hands `p`'s pending inputs to `hv` as `run_until_idle` does; with `full`, each input
/// runs the whole end of input (the flag cleared first), as before the scheduler's inputs
/// could skip it.
fn run_pending(hv: &mut Hypervisor, p: &mut FakePlatform, full: bool) {
    for _step in 0..100_000 {
        let Some(((at, _), input)) = p.pending.pop_first() else {
            return;
        };
        p.now = p.now.max(at);
        hv.end_idle &= !full;
        assert_eq!(hv.handle(&input, p), Ok(()), "input {input:?} refused");
    }
    panic!("run_pending did not settle");
}

#[test]
fn scheduler_inputs_skipping_the_end_of_input_leave_the_same_events() {
    // A create (xenstored work, XenBus waiters, EPT writes), then a block and a wake:
    // the events match those of a run whose every input ends with the whole end of input.
    let events = |full: bool| {
        let mut p = FakePlatform::default();
        let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
        run_pending(&mut hv, &mut p, full);
        let op = ToolstackOp::Create {
            config: Box::new(guest("vm1", 1)),
            uuid: [0; 16],
            paused: false,
        };
        let job = JobId(1);
        p.pending
            .insert((p.now, u64::MAX), CoreInput::Toolstack { job, op });
        run_pending(&mut hv, &mut p, full);
        for input in [
            CoreInput::VcpuBlock { vcpu: vcpu(1, 0) },
            CoreInput::VcpuWake { vcpu: vcpu(1, 0) },
        ] {
            p.now = p.now.after(Span::from_us(100));
            p.pending.insert((p.now, u64::MAX), input);
            run_pending(&mut hv, &mut p, full);
        }
        let skipped_last = hv.end_idle;
        (p.events, skipped_last)
    };
    let (fast, fast_idle) = events(false);
    let (full, _) = events(true);
    assert!(fast_idle);
    assert_eq!(fast, full);
}
