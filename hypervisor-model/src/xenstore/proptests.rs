//! Property tests: random request sequences against a `BTreeMap` reference model of the
//! tree, watch events against Xen's firing rules (each matching change fires exactly once,
//! a transaction's at its commit), random mixed-privilege sequences against the invariant
//! checker, and the codec on random frames and random bytes.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::perms::Perm;
use super::wire::{Frame, FrameDecoder, Header, MsgType};
use super::{XenStore, XsConfig, XsError};
use crate::ids::XsTxId;

/// One generated request on dom0's connection.
#[derive(Clone, Debug)]
enum Op {
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    Read(String),
    Directory(String),
    TxStart,
    TxEnd(bool),
}

fn path_strategy() -> impl Strategy<Value = String> {
    // Three names at up to three levels keep collisions (and so interesting cases) common.
    prop::collection::vec(prop::sample::select(alloc::vec!["a", "b", "c"]), 1..4)
        .prop_map(|parts| alloc::format!("/m/{}", parts.join("/")))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (path_strategy(), prop::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(p, v)| Op::Write(p, v)),
        1 => path_strategy().prop_map(Op::Mkdir),
        1 => path_strategy().prop_map(Op::Rm),
        2 => path_strategy().prop_map(Op::Read),
        1 => path_strategy().prop_map(Op::Directory),
        1 => Just(Op::TxStart),
        1 => any::<bool>().prop_map(Op::TxEnd),
    ]
}

/// The reference: path → (value, children in insertion order).
type Model = BTreeMap<String, (Vec<u8>, Vec<String>)>;

fn parent_of(p: &str) -> &str {
    super::path::parent(p)
}

fn model_create(m: &mut Model, p: &str, value: Option<&[u8]>) {
    if let Some(node) = m.get_mut(p) {
        if let Some(v) = value {
            node.0 = v.to_vec();
        }
        return;
    }
    let parent = String::from(parent_of(p));
    model_create(m, &parent, None);
    let base = String::from(super::path::basename(p));
    if let Some(node) = m.get_mut(&parent) {
        node.1.push(base);
    }
    m.insert(
        String::from(p),
        (value.unwrap_or_default().to_vec(), Vec::new()),
    );
}

fn model_rm(m: &mut Model, p: &str) -> Result<(), XsError> {
    if !m.contains_key(p) {
        return if m.contains_key(parent_of(p)) {
            Ok(())
        } else {
            Err(XsError::Enoent)
        };
    }
    let doomed: Vec<String> = m
        .keys()
        .filter(|k| super::path::is_at_or_below(k, p))
        .cloned()
        .collect();
    for k in doomed {
        m.remove(&k);
    }
    let base = String::from(super::path::basename(p));
    if let Some(node) = m.get_mut(parent_of(p)) {
        node.1.retain(|c| *c != base);
    }
    Ok(())
}

fn initial_model() -> Model {
    let mut m = Model::new();
    m.insert(
        String::from("/"),
        (Vec::new(), alloc::vec![String::from("tool")]),
    );
    m.insert(
        String::from("/tool"),
        (Vec::new(), alloc::vec![String::from("xenstored")]),
    );
    m.insert(String::from("/tool/xenstored"), (Vec::new(), Vec::new()));
    m
}

/// Applies `op` to the store and to the model (the transaction's snapshot when one is
/// open) and compares the answers.
fn step(xs: &mut XenStore, model: &mut Model, tx: &mut Option<(XsTxId, Model)>, op: &Op) {
    let conn = xs.dom0_conn();
    let id = tx.as_ref().map(|(id, _)| *id);
    let view: &mut Model = match tx {
        Some((_, snap)) => snap,
        None => model,
    };
    match op {
        Op::Write(p, v) => {
            assert_eq!(xs.write(conn, id, p.as_bytes(), v), Ok(()));
            model_create(view, p, Some(v));
        }
        Op::Mkdir(p) => {
            assert_eq!(xs.mkdir(conn, id, p.as_bytes()), Ok(()));
            model_create(view, p, None);
        }
        Op::Rm(p) => assert_eq!(xs.rm(conn, id, p.as_bytes()), model_rm(view, p)),
        Op::Read(p) => {
            let want = view.get(p).map(|n| n.0.clone()).ok_or(XsError::Enoent);
            assert_eq!(xs.read(conn, id, p.as_bytes()), want);
        }
        Op::Directory(p) => {
            let want = view.get(p).map(|n| n.1.clone()).ok_or(XsError::Enoent);
            assert_eq!(xs.directory(conn, id, p.as_bytes()), want);
        }
        Op::TxStart => {
            if tx.is_none() {
                let new = xs.transaction_start(conn, None).expect("start");
                *tx = Some((new, model.clone()));
            }
        }
        Op::TxEnd(commit) => {
            if let Some((done, snap)) = tx.take() {
                // Only this connection writes, so a commit never conflicts.
                assert_eq!(xs.transaction_end(conn, Some(done), *commit), Ok(()));
                if *commit {
                    *model = snap;
                }
            }
        }
    }
}

/// Watches of the watch property: (path, token).
const WATCHED: [(&str, &str); 4] = [("/m", "0"), ("/m/a", "1"), ("/m/a/b", "2"), ("/m/b/c", "3")];

/// The nodes `op` changes on `view` and whether each fires exactly (xenstored_core.c 4.17:
/// a write or a new mkdir fires on its path, not on parents it created; a removal fires
/// non-exactly on its root and exactly on every node below it).
fn changes(view: &Model, op: &Op) -> Vec<(String, bool)> {
    match op {
        Op::Write(p, _) => alloc::vec![(p.clone(), false)],
        Op::Mkdir(p) if !view.contains_key(p) => alloc::vec![(p.clone(), false)],
        Op::Rm(p) if view.contains_key(p) => view
            .keys()
            .filter(|k| super::path::is_at_or_below(k, p))
            .map(|k| (k.clone(), k != p))
            .collect(),
        _ => Vec::new(),
    }
}

/// The events the watches of [`WATCHED`] get for `fired`, as "path token" strings.
fn expected_events(fired: &[(String, bool)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, exact) in fired {
        for (w, token) in WATCHED {
            let hit = if *exact {
                name == w
            } else {
                super::path::is_at_or_below(name, w)
            };
            if hit {
                out.push(alloc::format!("{name} {token}"));
            }
        }
    }
    out.sort();
    out
}

/// The watch events queued for `conn`, as sorted "path token" strings.
fn take_events(xs: &mut XenStore, conn: crate::ids::XsConnId) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(f) = xs.take_output(conn) {
        assert_eq!(f.header.msg_type, MsgType::WatchEvent.raw());
        let mut parts = super::wire::split_strings(&f.payload);
        let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let token = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        out.push(alloc::format!("{path} {token}"));
    }
    out.sort();
    out
}

/// Bytes that make payloads look like paths, numbers, permissions and separators.
const PAYLOAD_BYTES: [u8; 8] = [0, b'/', b'a', b'@', b'1', b'T', b'r', b'x'];

fn len_u32(payload: &[u8]) -> u32 {
    u32::try_from(payload.len()).unwrap_or(u32::MAX)
}

fn assert_invariants(xs: &XenStore) {
    let mut v = Vec::new();
    xs.check_invariants(&mut v);
    assert!(v.is_empty(), "{v:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_reference_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let mut xs = XenStore::new(XsConfig::default());
        let mut model = initial_model();
        let mut tx = None;
        for op in &ops {
            step(&mut xs, &mut model, &mut tx, op);
            assert_invariants(&xs);
        }
    }

    #[test]
    fn watches_fire_once_per_matching_change(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let mut xs = XenStore::new(XsConfig::default());
        let watcher = xs.connect_socket();
        for (w, token) in WATCHED {
            xs.watch(watcher, w.as_bytes(), token.as_bytes()).expect("watch");
        }
        let _initial = take_events(&mut xs, watcher);
        let mut model = initial_model();
        let mut tx: Option<(XsTxId, Model)> = None;
        // A transaction's changes, fired at commit: name -> exact (non-exact wins).
        let mut queued: Vec<(String, bool)> = Vec::new();
        let mut at_start = model.clone();
        for op in &ops {
            if matches!(op, Op::TxStart) && tx.is_none() {
                at_start = model.clone();
            }
            let view = tx.as_ref().map_or(&model, |(_, snap)| snap);
            let fired = changes(view, op);
            let committed = matches!(op, Op::TxEnd(true)) && tx.is_some();
            step(&mut xs, &mut model, &mut tx, op);
            let want = if matches!(op, Op::TxEnd(_)) {
                let mut done = core::mem::take(&mut queued);
                // `watch_permitted` at commit: a node first touched while absent carries
                // no permissions, so it fires only if it exists after the commit.
                done.retain(|(name, _)| at_start.contains_key(name) || model.contains_key(name));
                if committed { expected_events(&done) } else { Vec::new() }
            } else if tx.is_some() {
                for (name, exact) in fired {
                    match queued.iter_mut().find(|(n, _)| *n == name) {
                        Some(entry) => entry.1 &= exact,
                        None => queued.push((name, exact)),
                    }
                }
                Vec::new()
            } else {
                expected_events(&fired)
            };
            prop_assert_eq!(take_events(&mut xs, watcher), want, "after {:?}", op);
        }
    }

    #[test]
    fn guest_and_dom0_sequences_keep_invariants(
        ops in prop::collection::vec((any::<bool>(), op_strategy()), 1..60)
    ) {
        let mut xs = XenStore::new(XsConfig::default());
        let d0 = xs.dom0_conn();
        xs.domain_created(3);
        let g = xs.introduce_domain(3, 1).expect("introduce");
        xs.write(d0, None, b"/m", b"").expect("write");
        xs.set_perms(d0, None, b"/m", &[Perm::new(0, 0), Perm::new(3, 3)]).expect("perms");
        xs.watch(d0, b"/m", b"w").expect("watch");
        xs.watch(g, b"/m", b"w").expect("watch");
        let mut txs = [None, None];
        for (as_guest, op) in &ops {
            let (conn, slot) = if *as_guest { (g, 1) } else { (d0, 0) };
            let tx = txs[slot];
            let _ = match op {
                Op::Write(p, v) => xs.write(conn, tx, p.as_bytes(), v),
                Op::Mkdir(p) => xs.mkdir(conn, tx, p.as_bytes()),
                Op::Rm(p) => xs.rm(conn, tx, p.as_bytes()),
                Op::Read(p) => xs.read(conn, tx, p.as_bytes()).map(|_| ()),
                Op::Directory(p) => xs.directory(conn, tx, p.as_bytes()).map(|_| ()),
                Op::TxStart => xs.transaction_start(conn, None).map(|t| txs[slot] = Some(t)),
                Op::TxEnd(c) => {
                    let r = xs.transaction_end(conn, tx, *c);
                    txs[slot] = None;
                    r
                }
            };
            assert_invariants(&xs);
        }
        xs.release_domain(3).expect("release");
        assert_invariants(&xs);
    }

    #[test]
    fn frames_round_trip_through_decoder(
        t in 0u32..30, req_id in any::<u32>(), tx_id in any::<u32>(),
        payload in prop::collection::vec(any::<u8>(), 0..300), split in 0usize..400
    ) {
        let frame = Frame {
            header: Header { msg_type: t, req_id, tx_id, len: len_u32(&payload) },
            payload,
        };
        let mut bytes = Vec::new();
        frame.encode_into(&mut bytes);
        let cut = split.min(bytes.len());
        let mut dec = FrameDecoder::new();
        dec.feed(&bytes[..cut]);
        let early = dec.next_frame().expect("no error");
        dec.feed(&bytes[cut..]);
        let got = match early {
            Some(f) => f,
            None => dec.next_frame().expect("ok").expect("frame"),
        };
        prop_assert_eq!(got, frame);
    }

    #[test]
    fn random_bytes_never_panic_and_keep_invariants(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20)
    ) {
        let mut xs = XenStore::new(XsConfig::default());
        let s = xs.connect_socket();
        for c in &chunks {
            let _ = xs.feed(s, c);
            while xs.take_output(s).is_some() {}
        }
        assert_invariants(&xs);
    }

    #[test]
    fn random_payloads_for_every_type_get_one_reply(
        t in 0u32..24, tx_id in 0u32..3, payload in prop::collection::vec(
            prop::sample::select(PAYLOAD_BYTES.to_vec()), 0..24)
    ) {
        let mut xs = XenStore::new(XsConfig::default());
        let d0 = xs.dom0_conn();
        let frame = Frame {
            header: Header { msg_type: t, req_id: 5, tx_id, len: len_u32(&payload) },
            payload,
        };
        xs.handle(d0, &frame);
        let replies: Vec<Frame> = core::iter::from_fn(|| xs.take_output(d0))
            .filter(|f| f.header.msg_type != MsgType::WatchEvent.raw())
            .collect();
        prop_assert_eq!(replies.len(), 1);
        prop_assert_eq!(replies[0].header.req_id, 5);
        assert_invariants(&xs);
    }
}

/// One step of a guest misbehaving on its ring page.
#[derive(Clone, Debug)]
enum RingOp {
    /// Bytes into the request ring (anything: frames, half frames, garbage).
    Write(Vec<u8>),
    /// A scribble on one index.
    Poke(u8, u32),
    /// xenstored's turn.
    Serve,
    /// The guest reads its responses.
    Read,
}

fn ring_op_strategy() -> impl Strategy<Value = RingOp> {
    let frame = (0u32..24, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, p)| {
        let mut bytes = Vec::new();
        Frame {
            header: Header {
                msg_type: t,
                req_id: 1,
                tx_id: 0,
                len: len_u32(&p),
            },
            payload: p,
        }
        .encode_into(&mut bytes);
        bytes
    });
    prop_oneof![
        4 => frame.prop_map(RingOp::Write),
        2 => prop::collection::vec(any::<u8>(), 0..80).prop_map(RingOp::Write),
        1 => (0u8..4, any::<u32>()).prop_map(|(i, v)| RingOp::Poke(i, v)),
        4 => Just(RingOp::Serve),
        3 => Just(RingOp::Read),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a guest puts on its ring page, xenstored answers, ignores the connection
    /// with an error code, or waits; it never panics, other connections keep working and
    /// every store invariant holds.
    #[test]
    fn a_guest_ring_of_any_content_never_breaks_xenstored(
        ops in prop::collection::vec(ring_op_strategy(), 1..40)
    ) {
        use super::ring::RingIndex;
        let mut xs = XenStore::new(XsConfig::default());
        let d0 = xs.dom0_conn();
        xs.domain_created(5);
        xs.introduce_domain(5, 1).expect("introduce");
        let mut got = Vec::new();
        for op in &ops {
            match op {
                RingOp::Write(bytes) => {
                    if let Some(page) = xs.ring_mut(5) {
                        let _ = page.client_write(bytes);
                    }
                }
                RingOp::Poke(i, v) => {
                    let which = [RingIndex::ReqCons, RingIndex::ReqProd, RingIndex::RspCons,
                        RingIndex::RspProd][usize::from(*i)];
                    if let Some(page) = xs.ring_mut(5) {
                        page.poke_index(which, *v);
                    }
                }
                RingOp::Serve => {
                    let turn = xs.service_ring(5);
                    prop_assert!(turn.ignored.is_none_or(|e| (1..=3).contains(&e)));
                }
                RingOp::Read => {
                    if let Some(page) = xs.ring_mut(5) {
                        let _ = page.client_read(&mut got);
                    }
                }
            }
            assert_invariants(&xs);
        }
        // dom0 is unaffected.
        prop_assert_eq!(xs.write(d0, None, b"/ok", b"1"), Ok(()));
        prop_assert_eq!(xs.read(d0, None, b"/ok"), Ok(b"1".to_vec()));
    }
}
