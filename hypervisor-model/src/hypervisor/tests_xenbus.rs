//! The split drivers on their XenStore watches and xenstored's work in dom0: the order of
//! the drivers' steps follows the watch events, every request is dom0 CPU work on vCPU 0,
//! and the drivers wait for that work before they see an event.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::{DomId, VcpuId, VcpuRef};
use crate::sched::SchedKind;
use crate::testing::{small_host, FakePlatform};
use crate::toolstack::config::{DomainConfig, VifCfg};
use crate::toolstack::ops::{JobId, ToolstackOp};
use crate::toolstack::xs_client::XsClientCmd;
use crate::trace::TraceEvent;

/// One driver step, for the checks below.
const STEP_NS: i64 = 1_000_000;

/// A booted host whose xenstored takes `request_ns` per request and whose driver steps
/// take [`STEP_NS`].
fn host(request_ns: i64) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut config = small_host(2, SchedKind::Null);
    config.costs.xenbus_step_ns = STEP_NS;
    config.costs.xenstored_request_ns = request_ns;
    let mut hv = Hypervisor::boot(config, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// `xl create -p` of a guest with one vif.
fn create_vif_guest(hv: &mut Hypervisor, p: &mut FakePlatform) {
    let mut config = DomainConfig::with_defaults(String::from("net"));
    config.vifs.push(VifCfg::default());
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0x11; 16],
        paused: true,
    };
    let input = CoreInput::Toolstack { job: JobId(1), op };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

/// The driver state writes traced so far, as (path, state).
fn state_writes(p: &FakePlatform) -> Vec<(String, u8)> {
    p.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::XenbusState { path, state } => Some((path.clone(), *state)),
            _ => None,
        })
        .collect()
}

fn dom0_vcpu0() -> VcpuRef {
    VcpuRef {
        dom: DomId::DOM0,
        vcpu: VcpuId::new(0).expect("vCPU 0"),
    }
}

#[test]
fn vif_states_are_written_in_the_order_of_the_watch_events() {
    let (mut hv, mut p) = host(0);
    create_vif_guest(&mut hv, &mut p);
    let back = "/local/domain/0/backend/vif/1/0/state";
    let front = "/local/domain/1/device/vif/0/state";
    let expected = [
        (String::from(back), 2),  // netback probe, on the backend bus event.
        (String::from(front), 4), // netfront on backend InitWait (its watch's first event).
        (String::from(back), 4),  // netback on frontend Connected.
    ];
    assert_eq!(state_writes(&p), expected);
}

#[test]
fn every_state_write_follows_an_event_on_its_device() {
    let (mut hv, mut p) = host(0);
    create_vif_guest(&mut hv, &mut p);
    let first_event = p
        .events
        .iter()
        .position(|e| matches!(e, TraceEvent::XenbusEvent { .. }));
    let first_write = p
        .events
        .iter()
        .position(|e| matches!(e, TraceEvent::XenbusState { .. }));
    assert!(first_event.is_some());
    assert!(first_event < first_write, "a driver wrote before any event");
}

#[test]
fn xenstore_write_client_is_one_request_of_dom0_vcpu0_work() {
    // 7 us per request: one `xenstore-write` of one key is one request.
    const REQUEST_NS: i64 = 7_000;
    let (mut hv, mut p) = host(REQUEST_NS);
    let before = hv.xenstored_charged_requests();
    let cmd = XsClientCmd::Write {
        pairs: alloc::vec![(String::from("/tool/probe"), b"1".to_vec())],
        raw: false,
    };
    let input = CoreInput::Toolstack {
        job: JobId(2),
        op: ToolstackOp::XsClient(cmd),
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    assert_eq!(hv.xenstored_charged_requests(), before + 1);
    let last = p.xs_work.last().copied();
    assert_eq!(
        last.map(|(v, _, ns)| (v, ns)),
        Some((dom0_vcpu0(), REQUEST_NS))
    );
}

#[test]
fn dom0_work_asked_equals_requests_times_the_request_cost() {
    const REQUEST_NS: i64 = 5_000;
    let (mut hv, mut p) = host(REQUEST_NS);
    create_vif_guest(&mut hv, &mut p);
    let asked_ns: i64 = p.xs_work.iter().map(|(_, _, ns)| ns).sum();
    let requests = i64::try_from(hv.xenstored_charged_requests()).unwrap_or(i64::MAX);
    assert!(requests > 0);
    assert_eq!(asked_ns, requests * REQUEST_NS);
    assert!(p.xs_work.iter().all(|(v, _, _)| *v == dom0_vcpu0()));
}

#[test]
fn handshake_waits_for_xenstored_work_before_each_reaction() {
    // 2 ms per request: each of the five reaction stages waits at least one request's
    // work before its event reaches the driver.
    const REQUEST_NS: i64 = 2_000_000;
    const STAGES: i64 = 5;
    let (mut hv_free, mut free) = host(0);
    create_vif_guest(&mut hv_free, &mut free);
    let (mut hv, mut slow) = host(REQUEST_NS);
    create_vif_guest(&mut hv, &mut slow);
    let extra_ns = slow.now.as_ns() - free.now.as_ns();
    assert!(extra_ns >= STAGES * REQUEST_NS, "only {extra_ns} ns later");
    let back = "/local/domain/0/backend/vif/1/0/state";
    let connected = hv.xenstore().node(back).map(|n| n.value().to_vec());
    assert_eq!(connected.as_deref(), Some(&b"4"[..]));
}

#[test]
fn xenstored_done_for_a_later_item_is_refused() {
    let (mut hv, mut p) = host(1_000);
    let cmd = XsClientCmd::Write {
        pairs: alloc::vec![(String::from("/tool/probe"), b"1".to_vec())],
        raw: false,
    };
    let input = CoreInput::Toolstack {
        job: JobId(2),
        op: ToolstackOp::XsClient(cmd),
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    let later = crate::ids::XsWorkId(99);
    let refused = hv.handle(&CoreInput::XenstoredDone { item: later }, &mut p);
    assert_eq!(refused, Err(super::InputError::UnknownXsWork(later)));
}

#[test]
fn xenstored_far_behind_merges_batches_at_the_queue_bound_instead_of_failing() {
    use super::xenstored::XS_WORK_ITEMS_MAX;
    // xenstored never gets CPU here (the fake platform does not run dom0's work), while
    // each write under dom0's backend bus gives dom0's ring a watch event: one item each.
    let (mut hv, mut p) = host(1_000);
    let writes = XS_WORK_ITEMS_MAX + 100;
    for i in 0..writes {
        let cmd = XsClientCmd::Write {
            pairs: alloc::vec![(
                alloc::format!("/local/domain/0/backend/vkbd/{i}"),
                b"1".to_vec()
            )],
            raw: false,
        };
        let input = CoreInput::Toolstack {
            job: JobId(2),
            op: ToolstackOp::XsClient(cmd),
        };
        assert_eq!(hv.handle(&input, &mut p), Ok(()));
    }
    assert_eq!(hv.xenstored_queued_items(), XS_WORK_ITEMS_MAX);
    assert_eq!(
        hv.xenstored_charged_requests(),
        u64::try_from(writes).unwrap_or(0)
    );
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

/// Index of the first event `matches` accepts at or after `from`.
fn position_from(p: &FakePlatform, from: usize, matches: impl Fn(&TraceEvent) -> bool) -> usize {
    p.events[from..]
        .iter()
        .position(matches)
        .map_or(usize::MAX, |i| from + i)
}

#[test]
fn destroy_closes_the_backend_on_its_watch_before_removing_the_directories() {
    use crate::toolstack::ops::JobStepCode;
    let (mut hv, mut p) = host(0);
    create_vif_guest(&mut hv, &mut p);
    let start = p.events.len();
    let dom = DomId::new(1).expect("d1");
    let input = CoreInput::Toolstack {
        job: JobId(2),
        op: ToolstackOp::Destroy { dom },
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let step = |code: JobStepCode| {
        let code = code as u8;
        move |e: &TraceEvent| matches!(e, TraceEvent::JobStep { step, .. } if *step == code)
    };
    let unplug = position_from(&p, start, step(JobStepCode::DestroyUnplug));
    let event = position_from(&p, unplug, |e| matches!(e, TraceEvent::XenbusEvent { .. }));
    let back_closed = position_from(&p, event, |e| {
        matches!(e, TraceEvent::XenbusState { path, state: 6 }
            if path == "/local/domain/0/backend/vif/1/0/state")
    });
    let removal = position_from(&p, unplug, step(JobStepCode::DestroyDevices));
    assert!(unplug < event, "no watch event after the unplug");
    assert!(event < back_closed, "netback did not close on its watch");
    assert!(
        back_closed < removal,
        "the directories went before the backend closed"
    );
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn socket_request_is_one_request_of_dom0_work() {
    // XS_READ of `/tool` (type 2, req_id 7, tx 0, payload "/tool\0"): one reply.
    let (mut hv, mut p) = host(3_000);
    let before = hv.xenstored_charged_requests();
    let frame = crate::xenstore::Frame::request(crate::xenstore::MsgType::Read, 7, 0, b"/tool\0");
    let mut bytes = Vec::new();
    frame.encode_into(&mut bytes);
    let input = CoreInput::XsSocketData { client: 1, bytes };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    assert_eq!(hv.xenstored_charged_requests(), before + 1);
    assert_eq!(p.xs_sent.len(), 1);
}

#[test]
fn checker_flags_a_probed_backend_that_stopped_watching_its_frontend() {
    let (mut hv, mut p) = host(0);
    create_vif_guest(&mut hv, &mut p);
    let dom0 = hv.xenstore.dom0_conn();
    let path = b"/local/domain/1/device/vif/0/state";
    let token = super::xenbus_watch::TOKEN_OTHEREND;
    hv.xenstore
        .unwatch(dom0, path, token)
        .expect("netback watches the frontend's state");
    let broken: Vec<&str> = hv.check_invariants().iter().map(|v| v.invariant).collect();
    assert!(broken.contains(&"xenbus.otherend_watch"));
}

#[test]
fn backend_directory_removed_by_a_client_closes_the_frontend_and_destroy_cleans_up() {
    // `xenstore-rm` of a connected vif's backend directory: netfront sees its backend's
    // state vanish (Unknown) and closes, keeping the still-mapped ring grants; the
    // destroy then unmaps and ends them.
    let (mut hv, mut p) = host(0);
    create_vif_guest(&mut hv, &mut p);
    let cmd = XsClientCmd::Rm {
        keys: alloc::vec![String::from("/local/domain/0/backend/vif/1/0")],
        tidy: false,
    };
    let input = CoreInput::Toolstack {
        job: JobId(2),
        op: ToolstackOp::XsClient(cmd),
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let front = hv.xenstore().node("/local/domain/1/device/vif/0/state");
    assert_eq!(front.map(|n| n.value().to_vec()), Some(b"6".to_vec()));
    let dom = DomId::new(1).expect("d1");
    let destroy = CoreInput::Toolstack {
        job: JobId(3),
        op: ToolstackOp::Destroy { dom },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(hv.domain(dom).is_none());
    assert!(hv.check_invariants().is_empty());
}

/// A guest with a vif and a disk: each kernel's reactions (dom0's backends, the guest's
/// frontends) run one at a time on its xenwatch thread, `STEP_NS` apart at least.
#[test]
fn each_kernels_reactions_run_one_after_another() {
    let (mut hv, mut p) = host(0);
    let op = super::tests_io::create_op();
    let input = CoreInput::Toolstack { job: JobId(1), op };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    // Run by hand, noting when each reaction runs and whose kernel it belongs to.
    let mut runs: Vec<(crate::time::STime, DomId)> = Vec::new();
    for _ in 0..100_000 {
        let Some(((at, _), input)) = p.pending.pop_first() else {
            break;
        };
        p.now = p.now.max(at);
        if let CoreInput::DriverWork { work } = &input {
            let task = hv.driver_tasks.get(work).expect("pending reaction");
            let kernel = match task.end {
                crate::io::xenbus::End::Backend => DomId::DOM0,
                crate::io::xenbus::End::Frontend => task.front_dom,
            };
            runs.push((at, kernel));
        }
        assert_eq!(hv.handle(&input, &mut p), Ok(()));
        assert_eq!(hv.check_invariants(), []);
    }
    let guest = DomId::new(1).expect("domid 1");
    for kernel in [DomId::DOM0, guest] {
        let times: Vec<i64> = runs
            .iter()
            .filter(|(_, k)| *k == kernel)
            .map(|(t, _)| t.as_ns())
            .collect();
        assert!(times.len() >= 4, "{kernel:?}: {times:?}");
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= STEP_NS, "{kernel:?}: {times:?}");
        }
    }
    // Both devices still connect.
    for conn in hv.device_conns(guest) {
        assert_eq!(conn.back_state, crate::io::xenbus::XenbusState::Connected);
        assert_eq!(conn.front_state, crate::io::xenbus::XenbusState::Connected);
    }
}

/// `xl create` returns once every backend reached InitWait (libxl's
/// `libxl__wait_device_connection`); the frontends connect after it.
#[test]
fn create_returns_when_the_backends_are_ready_and_the_frontends_connect_later() {
    use crate::io::xenbus::XenbusState::{Connected, InitWait};
    let (mut hv, mut p) = host(0);
    let mut config = DomainConfig::with_defaults(String::from("net"));
    config.vifs.push(VifCfg::default());
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0x13; 16],
        paused: false,
    };
    let input = CoreInput::Toolstack { job: JobId(1), op };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    let guest = DomId::new(1).expect("domid 1");
    let mut at_reply = None;
    for _ in 0..100_000 {
        let Some(((at, _), input)) = p.pending.pop_first() else {
            break;
        };
        p.now = p.now.max(at);
        assert_eq!(hv.handle(&input, &mut p), Ok(()));
        let done = p.replies.iter().any(|(job, reply)| {
            *job == JobId(1) && matches!(reply, crate::toolstack::ops::ToolstackReply::Done { .. })
        });
        if at_reply.is_none() && done {
            let states: Vec<_> = hv
                .device_conns(guest)
                .iter()
                .map(|c| (c.back_state, c.front_state))
                .collect();
            at_reply = Some(states);
        }
    }
    let states = at_reply.expect("xl create returned");
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].0, InitWait, "the backend is ready: {states:?}");
    assert_ne!(
        states[0].1, Connected,
        "the frontend connects later: {states:?}"
    );
    let conn = &hv.device_conns(guest)[0];
    assert_eq!((conn.back_state, conn.front_state), (Connected, Connected));
}
