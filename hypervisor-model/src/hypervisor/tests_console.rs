//! A guest's console on the host: connected by the create's console device, the boot
//! banner written when the guest first runs and drained by xenconsoled, a scribbled ring
//! ignored and logged, and the console gone with the domain; its event channel bound by
//! xenconsoled in dom0, notifications through it, and both ends closed at destroy.

use alloc::vec::Vec;

use super::tests_io::{create_op, guest, guest_with_devices};
use super::Hypervisor;
use crate::domain::ShutdownReason;
use crate::event::CoreInput;
use crate::evtchn::PortState;
use crate::ids::{DomId, EvtchnPort};
use crate::io::console::ConsIndex;
use crate::testing::FakePlatform;
use crate::time::STime;
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::trace::TraceEvent;

fn handle(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, op: ToolstackOp) {
    let input = CoreInput::Toolstack {
        job: JobId(job),
        op,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

fn lines(hv: &Hypervisor) -> Vec<&str> {
    let bytes = hv.console_output(guest()).expect("console");
    core::str::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .collect()
}

#[test]
fn a_paused_guest_has_an_empty_console_and_boots_on_unpause() {
    let (mut hv, mut p) = guest_with_devices();
    assert!(matches!(
        create_op(),
        ToolstackOp::Create { paused: true, .. }
    ));
    assert_eq!(hv.console_output(guest()), Some(&b""[..]));
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    let out = lines(&hv);
    assert_eq!(out.len(), 7, "{out:?}");
    assert!(
        out[0].starts_with("[    0.000000] Linux version "),
        "{out:?}"
    );
    assert_eq!(out[2], "[    0.000000] Hypervisor detected: Xen PV");
    // xenconsoled drained the ring: both indices at the banner's length.
    let con = hv.xenconsoled.console(guest()).expect("console");
    let [_, _, out_cons, out_prod] = con.page.indices();
    assert_eq!(out_cons, out_prod);
    assert_eq!(out_prod as usize, con.buffer.contents().len());
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn a_second_unpause_prints_no_second_banner() {
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    let first = lines(&hv).len();
    handle(&mut hv, &mut p, 3, ToolstackOp::Pause { dom: guest() });
    handle(&mut hv, &mut p, 4, ToolstackOp::Unpause { dom: guest() });
    assert_eq!(lines(&hv).len(), first);
}

#[test]
fn a_scribbled_ring_is_ignored_and_logged() {
    let (mut hv, mut p) = guest_with_devices();
    assert!(hv.console_poke_index(guest(), ConsIndex::OutProd, 0x4000_0000));
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    assert_eq!(hv.console_output(guest()), Some(&b""[..]));
    let log: Vec<&str> = hv.xenconsoled_log().collect();
    assert_eq!(
        log,
        ["d1: guest console write: illegal ring indices cons 0 prod 1073741824"]
    );
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn destroy_drops_the_console() {
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    handle(&mut hv, &mut p, 3, ToolstackOp::Destroy { dom: guest() });
    assert_eq!(hv.console_output(guest()), None);
    assert!(!hv.console_poke_index(guest(), ConsIndex::OutProd, 1));
}

#[test]
fn a_guest_poweroff_prints_its_last_line_with_its_uptime() {
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    let boot_ns = hv.xenconsoled.console(guest()).and_then(|c| c.boot_ns);
    let boot_ns = boot_ns.expect("booted");
    p.advance_to(&mut hv, STime::from_ns(boot_ns + 1_500_250_000));
    let input = CoreInput::GuestShutdown {
        dom: guest(),
        reason: ShutdownReason::Poweroff,
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    let out = lines(&hv);
    assert_eq!(
        out.last(),
        Some(&"[    1.500250] reboot: Power down"),
        "{out:?}"
    );
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn a_workload_message_is_stamped_with_the_guest_uptime() {
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    let boot_ns = hv.xenconsoled.console(guest()).and_then(|c| c.boot_ns);
    p.advance_to(
        &mut hv,
        STime::from_ns(boot_ns.expect("booted") + 2_000_001_000),
    );
    let input = CoreInput::ConsoleWrite {
        vcpu: crate::testing::ids::vcpu(guest().raw(), 0),
        text: b"io: started\nio: 2 lines".to_vec(),
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    let out = lines(&hv);
    // The banner's 7 lines, then each written line with its own stamp and newline.
    assert_eq!(out.len(), 9, "{out:?}");
    assert_eq!(out[7], "[    2.000001] io: started");
    assert_eq!(out[8], "[    2.000001] io: 2 lines");
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn an_oversized_write_is_refused_and_logged() {
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    let input = CoreInput::ConsoleWrite {
        vcpu: crate::testing::ids::vcpu(guest().raw(), 0),
        text: alloc::vec![b'x'; super::console_glue::CONSOLE_WRITE_BYTES_MAX + 1],
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    assert_eq!(lines(&hv).len(), 7);
    let log: Vec<&str> = hv.xenconsoled_log().collect();
    assert_eq!(log, ["d1: guest console write of 1025 bytes refused"]);
}

#[test]
fn each_drain_is_a_batch_of_xenconsoled_time_on_dom0() {
    let (mut hv, mut p) = guest_with_devices();
    hv.costs.xenconsoled_batch_ns = 10_000;
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    // The boot banner is one write and one drain: one 10 us batch on dom0's vCPU 0.
    let batches: Vec<_> = p
        .back_work
        .iter()
        .filter(|(_, item, _)| item.0 & super::console_glue::CONSOLE_WORK_BIT != 0)
        .map(|(vcpu, _, ns)| (vcpu.dom, vcpu.vcpu.raw(), *ns))
        .collect();
    assert_eq!(batches, [(crate::ids::DomId::DOM0, 0, 10_000)]);
    assert!(hv.console_work.is_empty(), "the batch ran");
}

/// xenconsoled's end of `guest()`'s console channel and the guest's end.
fn console_ports(hv: &Hypervisor) -> (EvtchnPort, EvtchnPort) {
    let con = hv.xenconsoled.console(guest()).expect("console");
    let local = con.local_port.expect("xenconsoled bound its end");
    let remote = con.remote_port.expect("the guest's end");
    (local, remote)
}

#[test]
fn xenconsoled_binds_the_console_port_from_xenstore_in_dom0() {
    let (hv, _p) = guest_with_devices();
    let (local, remote) = console_ports(&hv);
    // The guest's end is the port the domain builder wrote to `~/console/port`.
    let path = alloc::format!("/local/domain/{}/console/port", guest().raw());
    let node = hv.xenstore.node(&path).expect("console/port");
    let written = alloc::format!("{}", remote.raw());
    assert_eq!(node.value(), written.as_bytes());
    let dom0 = hv.evtchn.domain(DomId::DOM0).expect("dom0 ports");
    assert_eq!(
        dom0.state(local),
        Some(PortState::Interdomain {
            remote: guest(),
            remote_port: remote
        })
    );
    let domu = hv.evtchn.domain(guest()).expect("guest ports");
    assert_eq!(
        domu.state(remote),
        Some(PortState::Interdomain {
            remote: DomId::DOM0,
            remote_port: local
        })
    );
    // The bind's conservative event was taken by xenconsoled's handler.
    assert!(!dom0.is_pending(local));
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn a_lost_console_notification_leaves_the_bytes_in_the_ring_until_the_next_write() {
    // The banner's notification is lost on dom0's port: xenconsoled never ran for it.
    let (mut hv, mut p) = guest_with_devices();
    let (local, _) = console_ports(&hv);
    let fault = CoreInput::LostInterrupt {
        dom: DomId::DOM0,
        port: local.raw(),
        count: 1,
    };
    assert!(hv.can_lose_interrupts(&fault));
    assert_eq!(hv.handle(&fault, &mut p), Ok(()));
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    assert_eq!(hv.console_output(guest()), Some(&b""[..]));
    let write = CoreInput::ConsoleWrite {
        vcpu: crate::testing::ids::vcpu(guest().raw(), 0),
        text: b"app: hello".to_vec(),
    };
    assert_eq!(hv.handle(&write, &mut p), Ok(()));
    // The second send reached dom0's port: one drain took the banner's 7 lines and this one.
    let out = lines(&hv);
    assert_eq!(out.len(), 8, "{out:?}");
    assert!(out[7].ends_with("] app: hello"), "{out:?}");
    let lost = p.events.iter().filter(|e| {
        matches!(e, TraceEvent::InterruptLost { dom, port, .. }
            if *dom == DomId::DOM0 && *port == local.raw())
    });
    assert_eq!(lost.count(), 1);
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn a_console_write_wakes_dom0_and_queues_xenconsoled_there() {
    let (mut hv, mut p) = guest_with_devices();
    hv.costs.xenconsoled_batch_ns = 10_000;
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    let (local, _) = console_ports(&hv);
    let dom0 = hv.evtchn.domain(DomId::DOM0).expect("dom0 ports");
    // The handler acknowledged the port and the upcall it raised on dom0's vCPU 0.
    assert!(!dom0.is_pending(local));
    assert_eq!(dom0.notify_vcpu(local).map(|v| v.raw()), Some(0));
    let on_dom0 = p
        .back_work
        .iter()
        .filter(|(vcpu, item, _)| {
            vcpu.dom == DomId::DOM0 && item.0 & super::console_glue::CONSOLE_WORK_BIT != 0
        })
        .count();
    assert_eq!(on_dom0, 1);
}

#[test]
fn destroy_closes_both_ends_of_the_console_channel() {
    let (mut hv, mut p) = guest_with_devices();
    let (local, _) = console_ports(&hv);
    handle(&mut hv, &mut p, 2, ToolstackOp::Unpause { dom: guest() });
    handle(&mut hv, &mut p, 3, ToolstackOp::Destroy { dom: guest() });
    let dom0 = hv.evtchn.domain(DomId::DOM0).expect("dom0 ports");
    assert_eq!(dom0.state(local), Some(PortState::Free));
    assert!(
        hv.evtchn.domain(guest()).is_none(),
        "the guest's table is gone"
    );
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn a_dom0_port_left_waiting_for_a_destroyed_guest_is_a_leak() {
    // As if xenconsoled had not closed its end: dom0 keeps a port unbound towards it.
    let (mut hv, mut p) = guest_with_devices();
    handle(&mut hv, &mut p, 2, ToolstackOp::Destroy { dom: guest() });
    let leaked = hv.evtchn.alloc_unbound(DomId::DOM0, DomId::DOM0, guest());
    // dom0's lowest free port: both ends of its own store channel (1, 2) are all it holds.
    assert_eq!(leaked.map(|port| port.raw()), Ok(3));
    let found = hv.check_invariants();
    let leaks = found
        .iter()
        .filter(|v| v.invariant == "teardown.dead_unbound_port");
    assert_eq!(leaks.count(), 1, "{found:?}");
}
