//! Teardown invariants after destroy, reboot and a driver domain's crash
//! (`check_teardown.rs`): what each leaves behind is checked by the checker, and a leak
//! planted by hand is caught.

use super::tests_blk::{two_guests, XVDA};
use super::tests_drv::storage_and_guest;
use super::Hypervisor;
use crate::domain::ShutdownReason;
use crate::event::CoreInput;
use crate::testing::{ids, FakePlatform};
use crate::toolstack::ops::{JobId, ToolstackOp};

fn destroy(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16) {
    let destroy = CoreInput::Toolstack {
        job: JobId(90),
        op: ToolstackOp::Destroy { dom: ids::dom(dom) },
    };
    assert_eq!(hv.handle(&destroy, p), Ok(()));
    p.run_until_idle(hv);
}

fn assert_clean(hv: &Hypervisor) {
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn destroy_of_a_guest_with_a_vbd_leaves_nothing_behind() {
    let (mut hv, mut p) = two_guests(0);
    destroy(&mut hv, &mut p, 1);
    assert!(hv.domain(ids::dom(1)).is_none());
    assert!(hv.xenstore.node("/local/domain/1").is_none());
    assert!(hv.xenstore.node("/local/domain/0/backend/vbd/1").is_none());
    assert!(hv.event_channels().domain(ids::dom(1)).is_none());
    assert!(hv.grant_tables().table(ids::dom(1)).is_none());
    assert_clean(&hv);
}

#[test]
fn reboot_of_a_guest_with_a_vbd_leaves_nothing_of_the_old_domid() {
    let (mut hv, mut p) = two_guests(0);
    let reboot = CoreInput::GuestShutdown {
        dom: ids::dom(1),
        reason: ShutdownReason::Reboot,
    };
    assert_eq!(hv.handle(&reboot, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    // on_reboot = restart: d1 is gone and "a" runs again as d3 with its xvda connected.
    assert!(hv.domain(ids::dom(1)).is_none());
    assert!(hv.vbd_path(ids::dom(3), XVDA).is_some());
    assert!(hv.xenstore.node("/local/domain/0/backend/vbd/1").is_none());
    assert_clean(&hv);
}

#[test]
fn destroy_of_a_driver_domain_leaves_no_backend_of_it() {
    // storage (d1) backs a's xvda; destroying it takes its backend directories and
    // mappings with it while a keeps running.
    let (mut hv, mut p) = storage_and_guest(0);
    destroy(&mut hv, &mut p, 1);
    assert!(hv.xenstore.node("/local/domain/1").is_none());
    let a_table = hv.grant_tables().table(ids::dom(2)).expect("a lives");
    assert_eq!(a_table.live_mappings(), 0);
    assert_clean(&hv);
}

#[test]
fn checker_flags_a_backend_directory_left_for_a_destroyed_domain() {
    let (mut hv, mut p) = two_guests(0);
    destroy(&mut hv, &mut p, 1);
    // A stray backend directory for d1 (as if libxl had not removed it).
    let path = b"/local/domain/0/backend/vbd/1/51712/state";
    let written = hv.xenstore.write(hv.xs_tool, None, path, b"6");
    assert_eq!(written, Ok(()));
    let violations = hv.check_invariants();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].invariant, "teardown.backend_dir");
}

#[test]
fn destroy_unbinds_a_port_another_guest_bound_to_it() {
    let (mut hv, mut p) = two_guests(0);
    // d2 binds interdomain to a port d1 offered it (outside any device).
    let offered = hv
        .evtchn
        .alloc_unbound(ids::dom(1), ids::dom(1), ids::dom(2));
    let port = offered.expect("a free port");
    let bound = hv.evtchn.bind_interdomain(ids::dom(2), ids::dom(1), port);
    let local = bound.expect("d2 binds").port;
    destroy(&mut hv, &mut p, 1);
    let state = hv
        .event_channels()
        .domain(ids::dom(2))
        .and_then(|d| d.state(local));
    let still_bound = matches!(state, Some(crate::evtchn::PortState::Interdomain { .. }));
    assert!(!still_bound, "{state:?}");
    assert_clean(&hv);
}
