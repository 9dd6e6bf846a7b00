//! A guest's XenStore traffic through its ring page: requests and replies cross the two
//! 1 KiB rings (in pieces when larger), watch events fired by other connections arrive
//! through the response ring, the store channel carries notifications, and a guest that
//! scribbles on the indices gets its connection ignored without harm to anyone else.

use alloc::vec;

use super::tests_io::{guest, guest_with_devices};
use crate::xenstore::ring::{RingIndex, XENSTORE_ERROR_RINGIDX, XENSTORE_RING_SIZE};
use crate::xenstore::wire::{Frame, MsgType, HEADER_BYTES};

use super::xs_ring::XsRingError;

fn payload(parts: &[&[u8]]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::new();
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

fn ok(frame: &Frame) -> bool {
    frame.msg_type() != Some(MsgType::Error)
}

#[test]
fn guest_reads_and_writes_its_home_through_the_ring() {
    let (mut hv, mut p) = guest_with_devices();
    let home = b"/local/domain/1/data/x\0";
    let before = hv.xenstore.ring(1).map(|r| r.indices()).expect("ring");
    let reply = hv
        .xs_guest_request(
            guest(),
            MsgType::Write,
            0,
            &payload(&[home, b"hello"]),
            &mut p,
        )
        .expect("reply");
    assert!(ok(&reply), "{reply:?}");
    let reply = hv
        .xs_guest_request(guest(), MsgType::Read, 0, home, &mut p)
        .expect("reply");
    assert_eq!(reply.payload, b"hello");
    let after = hv.xenstore.ring(1).map(|r| r.indices()).expect("ring");
    let sent = 2 * HEADER_BYTES + home.len() * 2 + 5;
    let got = 2 * HEADER_BYTES + 3 + 5; // "OK\0" and "hello"
    assert_eq!(after[1].wrapping_sub(before[1]) as usize, sent);
    assert_eq!(after[0], after[1], "xenstored consumed every request byte");
    assert_eq!(after[3].wrapping_sub(before[3]) as usize, got);
    assert_eq!(after[2], after[3], "the guest read every reply byte");
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn permission_denied_comes_back_as_an_error_frame() {
    let (mut hv, mut p) = guest_with_devices();
    let reply = hv
        .xs_guest_request(guest(), MsgType::Read, 0, b"/local/domain/0/name\0", &mut p)
        .expect("reply");
    assert_eq!(reply.msg_type(), Some(MsgType::Error));
    assert_eq!(reply.payload, b"EACCES\0");
}

#[test]
fn frames_larger_than_the_ring_cross_in_pieces() {
    let (mut hv, mut p) = guest_with_devices();
    let value = vec![b'v'; 2000]; // 4.17's node size quota is 2048 bytes
    let path = b"/local/domain/1/data/big\0";
    let reply = hv
        .xs_guest_request(
            guest(),
            MsgType::Write,
            0,
            &payload(&[path, &value]),
            &mut p,
        )
        .expect("reply");
    assert!(ok(&reply), "{reply:?}");
    let reply = hv
        .xs_guest_request(guest(), MsgType::Read, 0, path, &mut p)
        .expect("reply");
    assert_eq!(reply.payload, value);
    let ring = hv.xenstore.ring(1).expect("ring");
    assert!(
        ring.indices()[1] > 2 * XENSTORE_RING_SIZE,
        "the ring wrapped"
    );
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn watch_events_fired_by_dom0_arrive_through_the_ring() {
    let (mut hv, mut p) = guest_with_devices();
    let reply = hv
        .xs_guest_request(
            guest(),
            MsgType::Watch,
            0,
            b"/local/domain/1/data\0tok\0",
            &mut p,
        )
        .expect("reply");
    assert!(ok(&reply), "{reply:?}");
    let initial = hv.xs_guest_events(guest());
    assert_eq!(initial.len(), 1, "the initial event on registration");
    assert_eq!(initial[0].payload, b"/local/domain/1/data\0tok\0");
    // dom0 writes under the watched node: one request of xenstored's work. The event
    // waits in xenstored until dom0 ran that work, then comes through the ring.
    hv.costs.xenstored_request_ns = 20_000;
    let tool = hv.xs_tool;
    let written = hv
        .xenstore
        .write(tool, None, b"/local/domain/1/data/y", b"1");
    assert_eq!(written, Ok(()));
    hv.xsd_count(1);
    hv.xsd_flush(&mut p);
    let early = hv.xs_guest_events(guest());
    assert!(early.is_empty(), "{early:?}");
    let rsp_prod = hv.xenstore.ring(1).map(|r| r.indices()[3]);
    p.run_until_idle(&mut hv);
    assert!(hv.xenstore.ring(1).map(|r| r.indices()[3]) > rsp_prod);
    let events = hv.xs_guest_events(guest());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload, b"/local/domain/1/data/y\0tok\0");
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn a_scribbled_index_gets_the_ring_ignored_and_others_keep_working() {
    let (mut hv, mut p) = guest_with_devices();
    hv.xenstore
        .ring_mut(1)
        .expect("ring")
        .poke_index(RingIndex::ReqProd, 5000);
    let turn = hv.xenstore.service_ring(1);
    assert_eq!(turn.ignored, Some(XENSTORE_ERROR_RINGIDX));
    assert_eq!(
        hv.xenstore.ring(1).map(|r| r.error),
        Some(XENSTORE_ERROR_RINGIDX)
    );
    // The guest's own next write finds the bad pair, resets it and fails.
    let err = hv.xs_guest_request(guest(), MsgType::Read, 0, b"/local/domain/1/name\0", &mut p);
    assert!(matches!(err, Err(XsRingError::BadIndexes(_))), "{err:?}");
    // ... and stays failed: xenstored no longer serves the ring.
    let err = hv.xs_guest_request(guest(), MsgType::Read, 0, b"/local/domain/1/name\0", &mut p);
    assert!(matches!(err, Err(XsRingError::BadIndexes(_))), "{err:?}");
    // dom0's view is intact.
    let tool = hv.xs_tool;
    assert_eq!(
        hv.xenstore.read(tool, None, b"/local/domain/1/name"),
        Ok(b"io".to_vec())
    );
    assert_eq!(hv.check_invariants(), []);
}

#[test]
fn requests_notify_xenstored_over_the_store_channel() {
    let (mut hv, mut p) = guest_with_devices();
    let store_port = hv.build_states.get(&guest()).map(|b| b.dom0_store_port);
    let Some(Some(port)) = store_port else {
        panic!("xenstored bound the store channel");
    };
    let port = crate::ids::EvtchnPort::new(port);
    let pending = |hv: &super::Hypervisor| {
        hv.evtchn
            .domain(crate::ids::DomId::DOM0)
            .is_some_and(|d| d.is_pending(port))
    };
    // dom0's kernel ran its upcall handler since the bind's notification.
    let vcpu0 = crate::ids::VcpuId::new(0).expect("vcpu 0");
    let taken = hv
        .evtchn
        .domain_mut(crate::ids::DomId::DOM0)
        .map(|d| d.guest_take_events(vcpu0));
    assert!(taken.is_some_and(|ports| ports.contains(&port)));
    assert!(!pending(&hv));
    hv.xs_guest_request(guest(), MsgType::Read, 0, b"/local/domain/1/name\0", &mut p)
        .expect("reply");
    assert!(pending(&hv), "the guest's send left dom0's end pending");
}

#[test]
fn the_frontends_handshake_crosses_the_guest_ring() {
    let (hv, _p) = guest_with_devices();
    let [req_cons, req_prod, rsp_cons, rsp_prod] =
        hv.xenstore.ring(1).map(|r| r.indices()).expect("ring");
    // Bus watch, two probes (2 reads + watch each), the publishes (transactions) and the
    // state writes: well over a ring's worth of requests, all consumed and answered.
    assert!(req_prod > XENSTORE_RING_SIZE, "req_prod {req_prod}");
    assert_eq!(req_cons, req_prod);
    assert!(rsp_prod > XENSTORE_RING_SIZE, "rsp_prod {rsp_prod}");
    assert_eq!(rsp_cons, rsp_prod);
    assert!(hv
        .xs_guests
        .get(&guest())
        .is_some_and(|c| c.failed.is_none()));
}

#[test]
fn the_backends_talk_over_dom0s_ring_and_loopback_store_channel() {
    let (hv, _p) = guest_with_devices();
    let [req_cons, req_prod, rsp_cons, rsp_prod] = hv
        .xenstore
        .ring(0)
        .map(|r| r.indices())
        .expect("dom0's ring");
    assert!(req_prod > XENSTORE_RING_SIZE, "req_prod {req_prod}");
    assert_eq!((req_cons, rsp_cons), (req_prod, rsp_prod));
    let (kernel, daemon) = hv.dom0_store.expect("dom0's store channel");
    let dom0 = hv.evtchn.domain(crate::ids::DomId::DOM0).expect("dom0");
    assert!(matches!(
        dom0.state(kernel),
        Some(crate::evtchn::PortState::Interdomain { .. })
    ));
    assert!(matches!(
        dom0.state(daemon),
        Some(crate::evtchn::PortState::Interdomain { .. })
    ));
    assert!(hv
        .xs_guests
        .get(&crate::ids::DomId::DOM0)
        .is_some_and(|c| c.failed.is_none()));
}
