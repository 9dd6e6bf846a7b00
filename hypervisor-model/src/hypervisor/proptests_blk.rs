//! Random guest I/O interleaved with arbitrary bytes written anywhere into guest d1's vbd
//! ring page: nothing panics, every invariant holds after every input (the fake platform
//! checks), blkback rejects or halts d1's ring, and guest d2's I/Os all complete with
//! `BLKIF_RSP_OKAY`.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::tests_blk::{completions, submit, two_guests, TestDisk};
use crate::io::blkif::BLKIF_RSP_OKAY;
use crate::io::ring::RING_PAGE_BYTES;
use crate::io::vbd::{GuestIo, IoOp};
use crate::testing::ids;

#[derive(Clone, Debug)]
enum Op {
    /// An I/O by d1 or d2: (dom, write, 8-sector block, pages).
    Io(u16, bool, u64, u32),
    /// d1 writes bytes at an offset of its ring page.
    Scribble(usize, Vec<u8>),
    /// The disk answers everything it holds.
    Serve,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u16..=2, any::<bool>(), 0u64..64, 1u32..=40).prop_map(|(d, w, b, n)| Op::Io(d, w, b, n)),
        (
            0usize..RING_PAGE_BYTES,
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Op::Scribble(at, bytes)),
        Just(Op::Serve),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ring_garbage_never_panics_and_spares_the_other_guest(
        ops in proptest::collection::vec(op(), 1..40),
        req_ns in prop_oneof![Just(0i64), Just(5_000i64)],
    ) {
        let (mut hv, mut p) = two_guests(req_ns);
        let mut disk = TestDisk::default();
        let mut d2_submitted = 0usize;
        let mut tag = 0u64;
        for op in ops {
            match op {
                Op::Io(dom, write, block, pages) => {
                    tag += 1;
                    let io = GuestIo {
                        tag,
                        op: if write { IoOp::Write } else { IoOp::Read },
                        sector: block * 8,
                        sectors: pages * 8,
                        seed: tag,
                    };
                    submit(&mut hv, &mut p, dom, io);
                    d2_submitted += usize::from(dom == 2);
                }
                Op::Scribble(at, bytes) => {
                    if let Some(path) = hv.vbd_path_mut(ids::dom(1), super::tests_blk::XVDA) {
                        path.guest_scribble(at, &bytes);
                    }
                }
                Op::Serve => disk.serve(&mut hv, &mut p),
            }
        }
        p.run_until_idle(&mut hv);
        disk.serve(&mut hv, &mut p);
        let d2 = completions(&p, 2);
        prop_assert_eq!(d2.len(), d2_submitted);
        prop_assert!(d2.iter().all(|d| d.status == BLKIF_RSP_OKAY));
        prop_assert!(hv.check_invariants().is_empty());
    }
}
