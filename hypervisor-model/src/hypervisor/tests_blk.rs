//! The vbd data path end to end on a booted host: blkfront in a guest, blkback in dom0, a
//! test disk answering the platform's commands; indirect negotiation, data integrity,
//! notification suppression, and guests that write garbage into their ring.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::event::CoreInput;
use crate::ids::DomId;
use crate::io::blkif::{self, Dir, Segment, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY};
use crate::io::vbd::{GuestIo, IoDone, IoOp};
use crate::platform::DiskOp;
use crate::sched::SchedKind;
use crate::testing::{create_paused, ids, small_host, FakePlatform};
use crate::toolstack::config::{DiskAccess, DiskCfg, DomainConfig};
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackOp};
use crate::trace::TraceEvent;

/// xvda: `202 << 8`.
pub(super) const XVDA: u32 = 51712;

/// A test disk: sector stamps by (domain, vdev, sector); unwritten sectors read 0.
#[derive(Default)]
pub(super) struct TestDisk {
    sectors: BTreeMap<(u16, u32, u64), u64>,
}

impl TestDisk {
    /// Answers every command the platform holds (and those the answers cause).
    pub(super) fn serve(&mut self, hv: &mut Hypervisor, p: &mut FakePlatform) {
        while !p.disk_cmds.is_empty() {
            for cmd in core::mem::take(&mut p.disk_cmds) {
                let key = |s: u64| (cmd.dom.raw(), cmd.vdev, s);
                let range = cmd.sector..cmd.sector + u64::from(cmd.sectors);
                let mut data = Vec::new();
                match cmd.op {
                    DiskOp::Write => {
                        for (s, stamp) in range.zip(cmd.data.iter()) {
                            self.sectors.insert(key(s), *stamp);
                        }
                    }
                    DiskOp::Read => {
                        data = range
                            .map(|s| *self.sectors.get(&key(s)).unwrap_or(&0))
                            .collect();
                    }
                    DiskOp::Discard => range.for_each(|s| {
                        self.sectors.remove(&key(s));
                    }),
                    DiskOp::Flush => {}
                }
                let done = CoreInput::DiskDone {
                    tag: cmd.tag,
                    ok: true,
                    data,
                };
                assert_eq!(hv.handle(&done, p), Ok(()));
                p.run_until_idle(hv);
            }
        }
    }
}

fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, name: &str) {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.disks.push(DiskCfg {
        target: alloc::format!("/dev/vg/{name}"),
        format: String::from("raw"),
        vdev: String::from("xvda"),
        access: DiskAccess::ReadWrite,
        cdrom: false,
        backend: None,
    });
    assert_eq!(hv.handle(&create_paused(job, config), p), Ok(()));
    p.run_until_idle(hv);
}

/// A host with guests d1 and d2, each with a connected xvda; blkback costs `req_ns`.
pub(super) fn two_guests(req_ns: i64) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.blkback_req_ns = req_ns;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    create(&mut hv, &mut p, 1, "a");
    create(&mut hv, &mut p, 2, "b");
    (hv, p)
}

fn io(tag: u64, op: IoOp, sector: u64, sectors: u32) -> GuestIo {
    GuestIo {
        tag,
        op,
        sector,
        sectors,
        seed: tag * 31,
    }
}

pub(super) fn submit(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16, io: GuestIo) {
    let input = CoreInput::BlkSubmit {
        vcpu: ids::vcpu(dom, 0),
        vdev: XVDA,
        io,
        last: true,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

/// Hands guest 1's blkfront `count` 4 KiB reads on xvda (tags 0.., sectors 8 apart)
/// without running the host; each is marked last (one push each) when `each_last`,
/// otherwise only the final one (one batch).
fn hand_reads(hv: &mut Hypervisor, p: &mut FakePlatform, count: u64, each_last: bool) {
    for tag in 0..count {
        let input = CoreInput::BlkSubmit {
            vcpu: ids::vcpu(1, 0),
            vdev: XVDA,
            io: io(tag, IoOp::Read, tag * 8, 8),
            last: each_last || tag + 1 == count,
        };
        assert_eq!(hv.handle(&input, p), Ok(()));
    }
}

/// The completions guest `dom` was told of, in order.
pub(super) fn completions(p: &FakePlatform, dom: u16) -> Vec<IoDone> {
    p.notices
        .iter()
        .filter(|(d, _)| *d == ids::dom(dom))
        .filter_map(|(_, n)| match n {
            GuestNotice::BlkDone { done, .. } => Some(*done),
            _ => None,
        })
        .collect()
}

#[test]
fn blkfront_negotiates_indirect_from_blkback_advertisement() {
    let (hv, _p) = two_guests(0);
    let path = hv.vbd_path(ids::dom(1), XVDA).expect("xvda connected");
    // blkback advertises 256; blkfront caps itself at its default 32.
    assert_eq!(path.params.back_max_indirect, 256);
    assert_eq!(path.params.front_max_indirect, 32);
    assert_eq!(path.sring.nr_ents(), 32);
}

#[test]
fn written_sectors_read_back_identical() {
    let (mut hv, mut p) = two_guests(0);
    let mut disk = TestDisk::default();
    submit(&mut hv, &mut p, 1, io(1, IoOp::Write, 4096, 24));
    disk.serve(&mut hv, &mut p);
    submit(&mut hv, &mut p, 1, io(2, IoOp::Read, 4096, 24));
    disk.serve(&mut hv, &mut p);
    let done = completions(&p, 1);
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].status, BLKIF_RSP_OKAY);
    assert_eq!(done[1].status, BLKIF_RSP_OKAY);
    assert_eq!(done[1].digest, done[0].digest);
}

#[test]
fn an_answered_request_lends_its_segment_list_to_the_next() {
    let (mut hv, mut p) = two_guests(0);
    let mut disk = TestDisk::default();
    let spare = |hv: &Hypervisor| {
        let path = hv.vbd_path(ids::dom(1), XVDA).expect("xvda connected");
        path.seg_spare.len()
    };
    submit(&mut hv, &mut p, 1, io(1, IoOp::Write, 4096, 24));
    disk.serve(&mut hv, &mut p);
    assert_eq!(spare(&hv), 1);
    // The read maps its pages into the kept list while it is at the disk...
    submit(&mut hv, &mut p, 1, io(2, IoOp::Read, 4096, 24));
    assert_eq!(spare(&hv), 0);
    disk.serve(&mut hv, &mut p);
    // ...reads back what the write put there, as with a fresh list, and returns it.
    let done = completions(&p, 1);
    assert_eq!(done[1].digest, done[0].digest);
    assert_eq!(spare(&hv), 1);
}

#[test]
fn read_of_other_sectors_differs_from_the_write() {
    let (mut hv, mut p) = two_guests(0);
    let mut disk = TestDisk::default();
    submit(&mut hv, &mut p, 1, io(1, IoOp::Write, 4096, 8));
    disk.serve(&mut hv, &mut p);
    submit(&mut hv, &mut p, 1, io(2, IoOp::Read, 8192, 8));
    disk.serve(&mut hv, &mut p);
    let done = completions(&p, 1);
    assert_ne!(done[1].digest, done[0].digest);
}

#[test]
fn io_of_more_than_eleven_pages_goes_indirect() {
    // 256 sectors = 32 pages: one indirect request of 32 segments.
    let (mut hv, mut p) = two_guests(0);
    submit(&mut hv, &mut p, 1, io(1, IoOp::Read, 0, 256));
    let path = hv.vbd_path(ids::dom(1), XVDA).expect("xvda");
    assert_eq!(path.counters.indirect_requests, 1);
    assert_eq!(p.disk_cmds.len(), 1);
    assert_eq!(p.disk_cmds[0].sectors, 256);
}

#[test]
fn io_above_indirect_cap_splits_into_several_requests() {
    // 2048 sectors = 256 pages at 32 segments per request: 8 ring requests.
    let (mut hv, mut p) = two_guests(0);
    submit(&mut hv, &mut p, 1, io(1, IoOp::Write, 0, 2048));
    assert_eq!(p.disk_cmds.len(), 8);
    TestDisk::default().serve(&mut hv, &mut p);
    assert_eq!(completions(&p, 1)[0].bytes, 2048 * 512);
}

#[test]
fn busy_blkback_lets_blkfront_skip_notifications() {
    // blkback's batch takes 10 us of dom0 CPU; three more pushes in that time need no
    // kick (req_event is not re-armed until blkback's final check).
    let (mut hv, mut p) = two_guests(10_000);
    hand_reads(&mut hv, &mut p, 4, true);
    p.run_until_idle(&mut hv);
    let counters = hv.vbd_path(ids::dom(1), XVDA).expect("xvda").counters;
    assert_eq!(counters.req_notify_count, 1);
    assert_eq!(counters.req_notify_suppressed, 3);
}

#[test]
fn every_response_is_pushed_and_none_is_lost() {
    // Four reads answered one by one: every response is pushed, each either notifies or
    // lands while blkfront would still see it, and all four complete.
    let (mut hv, mut p) = two_guests(0);
    for tag in 0..4 {
        submit(&mut hv, &mut p, 1, io(tag, IoOp::Read, tag * 8, 8));
    }
    TestDisk::default().serve(&mut hv, &mut p);
    let counters = hv.vbd_path(ids::dom(1), XVDA).expect("xvda").counters;
    assert_eq!(counters.responses_pushed, 4);
    assert_eq!(
        counters.rsp_notify_count + counters.rsp_notify_suppressed,
        4
    );
    assert_eq!(completions(&p, 1).len(), 4);
}

#[test]
fn bogus_req_prod_halts_the_ring_and_the_other_guest_keeps_working() {
    let (mut hv, mut p) = two_guests(10_000);
    let mut disk = TestDisk::default();
    let first = CoreInput::BlkSubmit {
        vcpu: ids::vcpu(1, 0),
        vdev: XVDA,
        io: io(1, IoOp::Read, 0, 8),
        last: true,
    };
    assert_eq!(hv.handle(&first, &mut p), Ok(()));
    // While blkback's batch waits for dom0, d1 writes 1000 into req_prod.
    let path = hv.vbd_path_mut(ids::dom(1), XVDA).expect("xvda");
    path.guest_scribble(0, &1000u32.to_le_bytes());
    p.run_until_idle(&mut hv);
    submit(&mut hv, &mut p, 2, io(7, IoOp::Write, 0, 8));
    disk.serve(&mut hv, &mut p);
    let halted = p.events.iter().any(|e| {
        matches!(e, TraceEvent::BlkRingHalted { dom, backend: true, prod: 1000, .. }
            if *dom == ids::dom(1))
    });
    assert!(halted);
    assert!(hv.vbd_path(ids::dom(1), XVDA).expect("xvda").back_halted);
    assert_eq!(completions(&p, 2).len(), 1);
    assert_eq!(completions(&p, 2)[0].status, BLKIF_RSP_OKAY);
}

/// d1 submits one read through blkfront (slot 0); while blkback's batch for it waits for
/// dom0 (10 µs a request), d1 writes `slot` by hand into ring slot 1 and publishes
/// `req_prod = 2`; then everything runs to the end.
fn guest_writes_slot1_behind_a_busy_backend(
    slot: &[u8; blkif::BLKIF_SLOT_BYTES],
) -> (Hypervisor, FakePlatform) {
    let (mut hv, mut p) = two_guests(10_000);
    let first = CoreInput::BlkSubmit {
        vcpu: ids::vcpu(1, 0),
        vdev: XVDA,
        io: io(1, IoOp::Read, 0, 8),
        last: true,
    };
    assert_eq!(hv.handle(&first, &mut p), Ok(()));
    let path = hv.vbd_path_mut(ids::dom(1), XVDA).expect("xvda");
    let slot1_offset = crate::io::ring::RING_HEADER_BYTES + blkif::BLKIF_SLOT_BYTES;
    path.guest_scribble(slot1_offset, slot);
    path.guest_scribble(0, &2u32.to_le_bytes());
    p.run_until_idle(&mut hv);
    (hv, p)
}

#[test]
fn bogus_gref_gets_an_error_response_and_a_log_line() {
    // While blkback's first batch waits for dom0, d1 writes a request naming ref 9999
    // (past its 512-entry table) into slot 1 and publishes it.
    let mut slot = [0u8; blkif::BLKIF_SLOT_BYTES];
    let seg = Segment {
        gref: crate::ids::GrantRef::new(9999),
        first_sect: 0,
        last_sect: 7,
    };
    blkif::encode_direct(&mut slot, Dir::Read, 77, 0, [seg].into_iter());
    let (_hv, p) = guest_writes_slot1_behind_a_busy_backend(&slot);
    let gntst_bad_gntref = crate::grant::GrantError::BadGntref.code();
    let logged = p.events.iter().any(
        |e| matches!(e, TraceEvent::BlkReject { id: 77, gntst, .. } if *gntst == gntst_bad_gntref),
    );
    assert!(logged);
    let answered = p.events.iter().any(|e| {
        matches!(e, TraceEvent::BlkResponse { id: 77, status, .. } if *status == BLKIF_RSP_ERROR)
    });
    assert!(answered);
    assert_eq!(p.disk_cmds.len(), 1);
}

#[test]
fn io_on_a_vbd_that_does_not_exist_fails_at_once() {
    let (mut hv, mut p) = two_guests(0);
    let input = CoreInput::BlkSubmit {
        vcpu: ids::vcpu(1, 0),
        vdev: XVDA + 16,
        io: io(5, IoOp::Read, 0, 8),
        last: true,
    };
    assert_eq!(hv.handle(&input, &mut p), Ok(()));
    assert_eq!(completions(&p, 1)[0].status, BLKIF_RSP_ERROR);
    assert!(p.disk_cmds.is_empty());
}

#[test]
fn destroy_unmaps_every_persistent_grant() {
    let (mut hv, mut p) = two_guests(0);
    submit(&mut hv, &mut p, 1, io(1, IoOp::Write, 0, 256));
    TestDisk::default().serve(&mut hv, &mut p);
    let destroy = CoreInput::Toolstack {
        job: JobId(9),
        op: ToolstackOp::Destroy { dom: ids::dom(1) },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(hv.vbd_path(ids::dom(1), XVDA).is_none());
    let dom0_maps = hv
        .grant_tables()
        .table(DomId::DOM0)
        .map(|t| t.live_mappings());
    // d2's ring page stays mapped; d1's data pages are gone.
    assert_eq!(dom0_maps, Some(1));
}

#[test]
fn destroy_with_a_batch_queued_and_commands_at_the_disk_leaves_nothing_behind() {
    // d1 has one command at the disk and a second batch waiting for dom0 when it is
    // destroyed; both are dropped, and d2's I/O still completes.
    let (mut hv, mut p) = two_guests(10_000);
    submit(&mut hv, &mut p, 1, io(1, IoOp::Read, 0, 8));
    let second = CoreInput::BlkSubmit {
        vcpu: ids::vcpu(1, 0),
        vdev: XVDA,
        io: io(2, IoOp::Read, 8, 8),
        last: true,
    };
    assert_eq!(hv.handle(&second, &mut p), Ok(()));
    let destroy = CoreInput::Toolstack {
        job: JobId(9),
        op: ToolstackOp::Destroy { dom: ids::dom(1) },
    };
    assert_eq!(hv.handle(&destroy, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let mut disk = TestDisk::default();
    disk.serve(&mut hv, &mut p);
    submit(&mut hv, &mut p, 2, io(3, IoOp::Write, 0, 8));
    disk.serve(&mut hv, &mut p);
    assert!(hv.vbd_path(ids::dom(1), XVDA).is_none());
    assert_eq!(completions(&p, 2).len(), 1);
    assert!(hv.check_invariants().is_empty());
}

#[test]
fn a_batch_is_pushed_once_at_its_last_io() {
    // Four I/Os, only the fourth marked last (blk-mq's bd->last): one push of 4 requests
    // and one notification; blkback consumes them in one batch.
    let (mut hv, mut p) = two_guests(0);
    hand_reads(&mut hv, &mut p, 4, false);
    let counters = hv.vbd_path(ids::dom(1), XVDA).expect("xvda").counters;
    assert_eq!(counters.requests_pushed, 4);
    assert_eq!(counters.req_notify_count, 1);
    let batches = p
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::BlkbackWork { requests: 4, .. }))
        .count();
    assert_eq!(batches, 1);
}

#[test]
fn disk_error_fault_fails_the_next_requests_only() {
    // Two requests to fail; a batch of three: the first two get BLKIF_RSP_ERROR without
    // reaching the disk, the third is served.
    let (mut hv, mut p) = two_guests(0);
    let fault = CoreInput::BlkFault {
        dom: ids::dom(1),
        vdev: XVDA,
        count: 2,
    };
    assert_eq!(hv.handle(&fault, &mut p), Ok(()));
    hand_reads(&mut hv, &mut p, 3, false);
    assert_eq!(p.disk_cmds.len(), 1);
    TestDisk::default().serve(&mut hv, &mut p);
    let statuses: Vec<i16> = completions(&p, 1).iter().map(|d| d.status).collect();
    assert_eq!(statuses, [BLKIF_RSP_ERROR, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY]);
}

#[test]
fn flush_goes_to_the_disk_as_a_cache_flush() {
    // A guest flush is one BLKIF_OP_FLUSH_DISKCACHE request without segments.
    let (mut hv, mut p) = two_guests(0);
    submit(&mut hv, &mut p, 1, io(1, IoOp::Flush, 0, 0));
    assert_eq!(p.disk_cmds.len(), 1);
    assert_eq!(p.disk_cmds[0].op, DiskOp::Flush);
    TestDisk::default().serve(&mut hv, &mut p);
    assert_eq!(completions(&p, 1)[0].status, BLKIF_RSP_OKAY);
}

#[test]
fn discard_written_by_the_guest_reaches_the_disk() {
    // While blkback's first batch waits, d1 writes a DISCARD of 16 sectors into slot 1.
    let mut slot = [0u8; blkif::BLKIF_SLOT_BYTES];
    slot[0] = blkif::BLKIF_OP_DISCARD;
    slot[8..16].copy_from_slice(&5u64.to_le_bytes());
    slot[16..24].copy_from_slice(&64u64.to_le_bytes());
    slot[24..32].copy_from_slice(&16u64.to_le_bytes());
    let (_hv, p) = guest_writes_slot1_behind_a_busy_backend(&slot);
    let discard = p.disk_cmds.iter().find(|c| c.op == DiskOp::Discard);
    assert_eq!(discard.map(|c| (c.sector, c.sectors)), Some((64, 16)));
}

#[test]
fn short_disk_data_leaves_the_last_sectors_of_a_read_zero() {
    // A 16-sector read (2 pages) whose disk answer carries 3 stamps: sectors 3.. read 0.
    let (mut hv, mut p) = two_guests(0);
    submit(&mut hv, &mut p, 1, io(1, IoOp::Read, 0, 16));
    let cmd = p.disk_cmds.pop().expect("the read reached the disk");
    let stamps = [7u64, 8, 9];
    let done = CoreInput::DiskDone {
        tag: cmd.tag,
        ok: true,
        data: stamps.to_vec(),
    };
    assert_eq!(hv.handle(&done, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    let padded = stamps.into_iter().chain(core::iter::repeat(0)).take(16);
    let expected = padded.fold(crate::io::vbd::DIGEST_INIT, crate::io::vbd::digest_step);
    assert_eq!(completions(&p, 1)[0].digest, expected);
}

#[test]
fn unanswered_ios_on_the_ring_come_back_in_tag_order() {
    // Three reads pushed in tag order 30, 10, 20 and left at the disk.
    let (mut hv, mut p) = two_guests(0);
    for (tag, sector) in [(30, 0), (10, 8), (20, 16)] {
        submit(&mut hv, &mut p, 1, io(tag, IoOp::Read, sector, 8));
    }
    let path = hv.vbd_path(ids::dom(1), XVDA).expect("xvda connected");
    let tags: Vec<u64> = path.front_unanswered().iter().map(|io| io.tag).collect();
    assert_eq!(tags, [10, 20, 30]);
}
