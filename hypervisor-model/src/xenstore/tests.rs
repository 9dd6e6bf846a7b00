//! Behaviour tests of the whole store through the wire dispatcher and the typed API.

use alloc::string::String;
use alloc::vec::Vec;

use super::perms::{Perm, PERM_READ};
use super::wire::{Frame, MsgType};
use super::{Verdict, XenStore, XsConfig, XsError};
use crate::ids::{XsConnId, XsTxId};

/// A domain id used for the unprivileged guest in these tests.
const GUEST: u32 = 5;
/// Any non-zero event channel port for `INTRODUCE`.
const PORT: u32 = 9;

fn store() -> XenStore {
    XenStore::new(XsConfig::default())
}

fn guest(xs: &mut XenStore) -> XsConnId {
    xs.domain_created(GUEST);
    let c = xs.introduce_domain(GUEST, PORT).expect("introduce");
    xs.mkdir(xs.dom0_conn(), None, b"/local/domain/5")
        .expect("home");
    let home = [Perm::new(GUEST, 0)];
    xs.set_perms(xs.dom0_conn(), None, b"/local/domain/5", &home)
        .expect("perms");
    let _ = drain(xs, c);
    c
}

/// One request; returns (reply type, payload).
fn req(xs: &mut XenStore, c: XsConnId, t: MsgType, tx: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    let v = xs.handle(c, &Frame::request(t, 77, tx, payload));
    assert_eq!(v, Verdict::Continue);
    // Watch events caused by the request come first; the reply follows them.
    let f = drain(xs, c)
        .into_iter()
        .find(|f| f.header.msg_type != MsgType::WatchEvent.raw())
        .expect("a reply");
    assert_eq!(f.header.req_id, 77);
    (f.header.msg_type, f.payload)
}

fn err(name: &str) -> (u32, Vec<u8>) {
    let mut p = Vec::from(name.as_bytes());
    p.push(0);
    (MsgType::Error.raw(), p)
}

fn okr(t: MsgType) -> (u32, Vec<u8>) {
    (t.raw(), b"OK\0".to_vec())
}

fn drain(xs: &mut XenStore, c: XsConnId) -> Vec<Frame> {
    let mut v = Vec::new();
    while let Some(f) = xs.take_output(c) {
        v.push(f);
    }
    v
}

fn events(xs: &mut XenStore, c: XsConnId) -> Vec<String> {
    drain(xs, c)
        .into_iter()
        .filter(|f| f.header.msg_type == MsgType::WatchEvent.raw())
        .map(|f| {
            let end = f.payload.iter().position(|&b| b == 0).unwrap_or(0);
            String::from_utf8_lossy(&f.payload[..end]).into_owned()
        })
        .collect()
}

#[test]
fn fresh_store_has_tool_xenstored_owned_by_dom0() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    assert_eq!(
        req(&mut xs, d0, MsgType::Directory, 0, b"/\0"),
        (1, b"tool\0".to_vec())
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::GetPerms, 0, b"/tool/xenstored\0").1,
        b"n0\0"
    );
}

#[test]
fn write_creates_missing_parents_with_parent_perms() {
    let mut xs = store();
    let g = guest(&mut xs);
    assert_eq!(
        req(&mut xs, g, MsgType::Write, 0, b"data/a/b\0v"),
        okr(MsgType::Write)
    );
    let perms = xs
        .get_perms(xs.dom0_conn(), None, b"/local/domain/5/data/a")
        .expect("perms");
    assert_eq!(perms, [Perm::new(GUEST, 0)]);
    assert_eq!(
        req(&mut xs, g, MsgType::Read, 0, b"data/a/b\0"),
        (2, b"v".to_vec())
    );
    assert_eq!(
        req(&mut xs, g, MsgType::Read, 0, b"data/a\0"),
        (2, Vec::new())
    );
}

#[test]
fn unprivileged_creator_owns_nodes_it_creates_under_writable_parent() {
    let mut xs = store();
    let g = guest(&mut xs);
    let d0 = xs.dom0_conn();
    xs.write(d0, None, b"/pub", b"").expect("write");
    xs.set_perms(d0, None, b"/pub", &[Perm::new(0, 0), Perm::new(GUEST, 2)])
        .expect("perms");
    assert_eq!(
        req(&mut xs, g, MsgType::Write, 0, b"/pub/x\0y"),
        okr(MsgType::Write)
    );
    let perms = xs.get_perms(d0, None, b"/pub/x").expect("perms");
    assert_eq!(perms[0].domid, GUEST);
}

#[test]
fn missing_node_under_unreadable_parent_reports_eacces() {
    let mut xs = store();
    let g = guest(&mut xs);
    assert_eq!(
        req(&mut xs, g, MsgType::Read, 0, b"/tool/nothere\0"),
        err("EACCES")
    );
    assert_eq!(
        req(&mut xs, g, MsgType::Read, 0, b"nothere\0"),
        err("ENOENT")
    );
    assert_eq!(req(&mut xs, g, MsgType::Read, 0, b"/tool\0"), err("EACCES"));
}

#[test]
fn invalid_paths_and_special_paths_in_read_are_einval() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    assert_eq!(req(&mut xs, d0, MsgType::Read, 0, b"/a/\0"), err("EINVAL"));
    assert_eq!(
        req(&mut xs, d0, MsgType::Read, 0, b"/local/domain/\0"),
        err("EINVAL")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::Read, 0, b"@releaseDomain\0"),
        err("EINVAL")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::Read, 0, b"/a\0b\0"),
        err("EINVAL")
    );
}

#[test]
fn unknown_and_reply_only_types_get_enosys() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let f = Frame {
        header: super::Header {
            msg_type: 20,
            req_id: 77,
            tx_id: 0,
            len: 0,
        },
        payload: Vec::new(),
    };
    xs.handle(d0, &f);
    assert_eq!(
        xs.take_output(d0).map(|f| f.payload),
        Some(b"ENOSYS\0".to_vec())
    );
    assert_eq!(req(&mut xs, d0, MsgType::WatchEvent, 0, b""), err("ENOSYS"));
}

#[test]
fn privileged_only_request_from_guest_is_eacces() {
    let mut xs = store();
    let g = guest(&mut xs);
    assert_eq!(
        req(&mut xs, g, MsgType::Introduce, 0, b"6\x000\x001\0"),
        err("EACCES")
    );
    assert_eq!(
        req(&mut xs, g, MsgType::Control, 0, b"help\0"),
        err("EACCES")
    );
}

#[test]
fn rm_of_missing_node_is_ok_only_when_parent_exists() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    assert_eq!(
        req(&mut xs, d0, MsgType::Rm, 0, b"/tool/x\0"),
        okr(MsgType::Rm)
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::Rm, 0, b"/nope/x\0"),
        err("ENOENT")
    );
    assert_eq!(req(&mut xs, d0, MsgType::Rm, 0, b"/\0"), err("EINVAL"));
}

#[test]
fn watch_sends_ok_then_initial_event_with_relative_path() {
    let mut xs = store();
    let g = guest(&mut xs);
    xs.handle(g, &Frame::request(MsgType::Watch, 3, 0, b"data\0tok\0"));
    let out = drain(&mut xs, g);
    assert_eq!(out[0].payload, b"OK\0");
    assert_eq!(out[1].header.msg_type, MsgType::WatchEvent.raw());
    assert_eq!(out[1].payload, b"data\0tok\0");
    xs.write(g, None, b"data/x", b"1").expect("write");
    assert_eq!(events(&mut xs, g), ["data/x"]);
}

#[test]
fn own_event_is_queued_before_the_reply() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.watch(d0, b"/a", b"t").expect("watch");
    let _ = drain(&mut xs, d0);
    xs.handle(d0, &Frame::request(MsgType::Write, 1, 0, b"/a\0v"));
    let out = drain(&mut xs, d0);
    assert_eq!(out[0].header.msg_type, MsgType::WatchEvent.raw());
    assert_eq!(out[1].payload, b"OK\0");
}

#[test]
fn duplicate_watch_is_eexist_and_unknown_unwatch_is_enoent() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.watch(d0, b"/a", b"t").expect("watch");
    assert_eq!(xs.watch(d0, b"/a", b"t"), Err(XsError::Eexist));
    assert_eq!(xs.unwatch(d0, b"/a", b"u"), Err(XsError::Enoent));
    assert_eq!(xs.unwatch(d0, b"/a", b"t"), Ok(()));
}

#[test]
fn rm_fires_removed_root_subtree_and_exact_descendants() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.write(d0, None, b"/a/b/c", b"").expect("write");
    let w = xs.connect_socket();
    xs.watch(w, b"/a", b"t1").expect("watch");
    xs.watch(w, b"/a/b/c", b"t2").expect("watch");
    xs.watch(w, b"/a/b/c/d", b"t3").expect("watch");
    let _ = drain(&mut xs, w);
    xs.rm(d0, None, b"/a/b").expect("rm");
    assert_eq!(events(&mut xs, w), ["/a/b/c", "/a/b"]);
}

#[test]
fn event_denied_when_watcher_cannot_read_node_or_parent() {
    let mut xs = store();
    let g = guest(&mut xs);
    xs.watch(g, b"/", b"t").expect("watch");
    let _ = drain(&mut xs, g);
    xs.write(xs.dom0_conn(), None, b"/secret/x", b"1")
        .expect("write");
    assert!(events(&mut xs, g).is_empty());
}

#[test]
fn identical_queued_event_is_suppressed_but_special_is_not() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let w = xs.connect_socket();
    xs.watch(w, b"/a", b"t").expect("watch");
    xs.watch(w, b"@releaseDomain", b"r").expect("watch");
    let _ = drain(&mut xs, w);
    xs.write(d0, None, b"/a", b"1").expect("write");
    xs.write(d0, None, b"/a", b"2").expect("write");
    xs.domain_created(GUEST);
    xs.introduce_domain(GUEST, PORT).expect("introduce");
    xs.domain_shutdown(GUEST);
    xs.release_domain(GUEST).expect("release");
    assert_eq!(
        events(&mut xs, w),
        ["/a", "@releaseDomain", "@releaseDomain"]
    );
}

#[test]
fn transaction_reads_own_writes_and_hides_them_until_commit() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let tx = xs.transaction_start(d0, None).expect("start");
    xs.write(d0, Some(tx), b"/t/x", b"in").expect("write");
    assert_eq!(xs.read(d0, Some(tx), b"/t/x"), Ok(b"in".to_vec()));
    assert_eq!(xs.read(d0, None, b"/t/x"), Err(XsError::Enoent));
    xs.transaction_end(d0, Some(tx), true).expect("commit");
    assert_eq!(xs.read(d0, None, b"/t/x"), Ok(b"in".to_vec()));
}

#[test]
fn transaction_conflicting_outside_write_commits_eagain() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.write(d0, None, b"/c", b"0").expect("write");
    let tx = xs.transaction_start(d0, None).expect("start");
    xs.read(d0, Some(tx), b"/c").expect("read");
    xs.write(d0, None, b"/c", b"outside").expect("write");
    xs.write(d0, Some(tx), b"/c", b"inside").expect("write");
    assert_eq!(xs.read(d0, Some(tx), b"/c"), Ok(b"inside".to_vec()));
    assert_eq!(xs.transaction_end(d0, Some(tx), true), Err(XsError::Eagain));
    assert_eq!(xs.read(d0, None, b"/c"), Ok(b"outside".to_vec()));
    assert_eq!(xs.transaction_end(d0, Some(tx), true), Err(XsError::Enoent));
}

#[test]
fn transaction_untouched_node_changes_do_not_conflict() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.write(d0, None, b"/p", b"").expect("write");
    let tx = xs.transaction_start(d0, None).expect("start");
    xs.write(d0, Some(tx), b"/p/q", b"1").expect("write");
    xs.write(d0, None, b"/other", b"2").expect("write");
    assert_eq!(xs.transaction_end(d0, Some(tx), true), Ok(()));
}

#[test]
fn transaction_ids_unknown_or_nested_give_enoent_and_ebusy() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    assert_eq!(req(&mut xs, d0, MsgType::Read, 42, b"/\0"), err("ENOENT"));
    let (_, id) = req(&mut xs, d0, MsgType::TransactionStart, 0, b"\0");
    assert_eq!(id, b"1\0");
    assert_eq!(
        req(&mut xs, d0, MsgType::TransactionStart, 1, b"\0"),
        err("EBUSY")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::TransactionEnd, 0, b"T\0"),
        err("ENOENT")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::TransactionEnd, 1, b"X\0"),
        err("EINVAL")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::TransactionEnd, 1, b"F\0"),
        okr(MsgType::TransactionEnd)
    );
}

#[test]
fn transaction_events_fire_only_at_commit() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let w = xs.connect_socket();
    xs.watch(w, b"/t", b"t").expect("watch");
    let _ = drain(&mut xs, w);
    let tx = xs.transaction_start(d0, None).expect("start");
    xs.write(d0, Some(tx), b"/t/a", b"1").expect("write");
    assert!(events(&mut xs, w).is_empty());
    xs.transaction_end(d0, Some(tx), true).expect("commit");
    assert_eq!(events(&mut xs, w), ["/t/a"]);
}

#[test]
fn guest_transaction_quota_allows_eleven_then_enospc() {
    let mut xs = store();
    let g = guest(&mut xs);
    for _ in 0..11 {
        xs.transaction_start(g, None).expect("start");
    }
    assert_eq!(xs.transaction_start(g, None), Err(XsError::Enospc));
}

#[test]
fn guest_node_quota_exceeded_is_enospc() {
    let mut xs = store();
    let g = guest(&mut xs);
    xs.config_quota_nodes(3);
    xs.write(g, None, b"a", b"").expect("1");
    xs.write(g, None, b"b", b"").expect("2");
    assert_eq!(xs.write(g, None, b"c/d", b""), Err(XsError::Enospc));
    assert_eq!(xs.read(g, None, b"c"), Err(XsError::Enoent));
}

#[test]
fn guest_node_size_at_quota_is_enospc_but_dom0_is_exempt() {
    let mut xs = store();
    let g = guest(&mut xs);
    let big = [b'x'; 2048];
    assert_eq!(xs.write(g, None, b"big", &big), Err(XsError::Enospc));
    assert_eq!(xs.write(xs.dom0_conn(), None, b"/big", &big), Ok(()));
}

#[test]
fn guest_set_perms_cannot_change_owner() {
    let mut xs = store();
    let g = guest(&mut xs);
    xs.write(g, None, b"x", b"").expect("write");
    let give = [Perm::new(0, 0)];
    assert_eq!(xs.set_perms(g, None, b"x", &give), Err(XsError::Eperm));
    let share = [Perm::new(GUEST, PERM_READ)];
    assert_eq!(xs.set_perms(g, None, b"x", &share), Ok(()));
}

#[test]
fn set_perms_naming_unknown_owner_is_enoent() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    assert_eq!(
        req(&mut xs, d0, MsgType::SetPerms, 0, b"/tool\0n77\0"),
        err("ENOENT")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::SetPerms, 0, b"/tool\0q1\0"),
        err("EINVAL")
    );
}

#[test]
fn release_removes_watches_nodes_and_fires_release_domain() {
    let mut xs = store();
    let g = guest(&mut xs);
    let d0 = xs.dom0_conn();
    xs.watch(d0, b"@releaseDomain", b"r").expect("watch");
    let _ = drain(&mut xs, d0);
    assert_eq!(
        req(&mut xs, d0, MsgType::Release, 0, b"5\0"),
        okr(MsgType::Release)
    );
    assert!(!xs.is_live(g));
    assert!(xs.node("/local/domain/5").is_none());
    assert_eq!(
        req(&mut xs, d0, MsgType::IsDomainIntroduced, 0, b"5\0"),
        (17, b"F\0".to_vec())
    );
    assert_eq!(req(&mut xs, d0, MsgType::Release, 0, b"5\0"), err("ENOENT"));
    assert_eq!(req(&mut xs, d0, MsgType::Release, 0, b"0\0"), err("EINVAL"));
    let mut v = Vec::new();
    xs.check_invariants(&mut v);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn introduce_fires_introduce_domain_for_privileged_watchers() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.watch(d0, b"@introduceDomain", b"i").expect("watch");
    let _ = drain(&mut xs, d0);
    assert_eq!(
        req(&mut xs, d0, MsgType::Introduce, 0, b"6\x000\x003\0").1,
        b"OK\0"
    );
    assert!(xs.is_domain_introduced(6));
    xs.handle(d0, &Frame::request(MsgType::GetDomainPath, 1, 0, b"6\0"));
    assert_eq!(
        xs.take_output(d0).map(|f| f.payload),
        Some(b"/local/domain/6\0".to_vec())
    );
}

#[test]
fn directory_part_chunks_and_terminates_with_double_nul() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let gen = xs.node("/tool").map(super::Node::generation).expect("node");
    let whole = xs.directory_part(d0, None, b"/tool", 0).expect("part");
    assert_eq!(whole, alloc::format!("{gen}\0xenstored\0\0").into_bytes());
    let past = xs.directory_part(d0, None, b"/tool", 100).expect("part");
    assert_eq!(past, alloc::format!("{gen}\0\0").into_bytes());
}

#[test]
fn header_over_payload_max_disconnects() {
    let mut xs = store();
    let s = xs.connect_socket();
    let h = super::Header {
        msg_type: 2,
        req_id: 1,
        tx_id: 0,
        len: 5000,
    };
    assert_eq!(
        xs.feed(s, &h.encode()),
        Verdict::Disconnect { ring_error: 3 }
    );
    assert_eq!(xs.output_count(s), 0);
}

#[test]
fn feed_handles_frames_split_at_any_byte() {
    let mut xs = store();
    let s = xs.connect_socket();
    let mut bytes = Vec::new();
    Frame::request(MsgType::Write, 1, 0, b"/k\0v").encode_into(&mut bytes);
    Frame::request(MsgType::Read, 2, 0, b"/k\0").encode_into(&mut bytes);
    for b in &bytes {
        assert_eq!(xs.feed(s, core::slice::from_ref(b)), Verdict::Continue);
    }
    let out = drain(&mut xs, s);
    assert_eq!(out[1].payload, b"v");
}

#[test]
fn reset_watches_drops_watches_and_open_transaction_named_in_header() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    xs.watch(d0, b"/a", b"t").expect("watch");
    let tx = xs.transaction_start(d0, None).expect("start");
    let _ = drain(&mut xs, d0);
    let r = req(&mut xs, d0, MsgType::ResetWatches, tx.raw(), b"");
    assert_eq!(r, okr(MsgType::ResetWatches));
    assert!(xs.watches(d0).is_empty());
    assert_eq!(xs.open_transactions(d0), Vec::<XsTxId>::new());
}

#[test]
fn control_quota_lists_defaults_and_unknown_command_is_einval() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let (_, p) = req(&mut xs, d0, MsgType::Control, 0, b"quota\0");
    let text = String::from_utf8_lossy(&p).into_owned();
    assert!(text.starts_with("Quota settings:\nnodes            :     1000 Nodes per domain\n"));
    assert_eq!(
        req(&mut xs, d0, MsgType::Control, 0, b"bogus\0"),
        err("EINVAL")
    );
    assert_eq!(
        req(&mut xs, d0, MsgType::Control, 0, b"print\0hi\0").1,
        b"OK\0"
    );
    assert_eq!(xs.take_control_prints(), ["hi"]);
}

#[test]
fn reused_domid_does_not_inherit_dead_domains_read_entry() {
    let mut xs = store();
    let d0 = xs.dom0_conn();
    let _ = guest(&mut xs);
    xs.write(d0, None, b"/x", b"1").expect("write");
    xs.set_perms(
        d0,
        None,
        b"/x",
        &[Perm::new(0, 0), Perm::new(GUEST, PERM_READ)],
    )
    .expect("perms");
    xs.release_domain(GUEST).expect("release");
    xs.write(d0, None, b"/x", b"2").expect("rewrite");
    let g = guest(&mut xs);
    assert_eq!(xs.read(g, None, b"/x"), Err(XsError::Eacces));
    assert!(xs.get_perms(d0, None, b"/x").expect("perms")[1].ignore);
}

impl XenStore {
    fn config_quota_nodes(&mut self, n: u32) {
        self.cfg.quotas.nodes_count_max = n;
    }
}
