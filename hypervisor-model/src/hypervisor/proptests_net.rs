//! Random frames interleaved with arbitrary bytes written anywhere into guest d1's TX and
//! RX ring pages (then a kick of netback): nothing panics, every invariant holds after every
//! input (the fake platform checks), netback answers d1's garbage with errors or disables
//! d1's vif, and every frame guest d2 sends reaches the bridge.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::tests_net::{bridge, kick, packet, send, two_guests, MAC_A, MAC_B, MAC_DOM0};
use crate::io::ring::RING_PAGE_BYTES;
use crate::testing::ids;

#[derive(Clone, Debug)]
enum Op {
    /// A frame of `bytes` from d1 (to dom0's stack) or d2 (to dom0's stack or d1).
    Send(u16, bool, u32),
    /// d1 writes bytes at an offset of its TX (false) or RX (true) ring page.
    Scribble(bool, usize, Vec<u8>),
    /// d1 notifies netback after writing its rings.
    Kick,
    /// The bridge forwards what netback handed it.
    Bridge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u16..=2, any::<bool>(), 60u32..=20_000).prop_map(|(d, to_a, n)| Op::Send(d, to_a, n)),
        (
            any::<bool>(),
            0usize..RING_PAGE_BYTES,
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(rx, at, bytes)| Op::Scribble(rx, at, bytes)),
        Just(Op::Kick),
        Just(Op::Bridge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ring_garbage_never_panics_and_spares_the_other_guest(
        ops in proptest::collection::vec(op(), 1..40),
        tx_ns in prop_oneof![Just(0i64), Just(806i64)],
    ) {
        let (mut hv, mut p) = two_guests(tx_ns);
        let mut d2_to_dom0 = 0usize;
        let mut d2_seen = 0usize;
        let mut seq = [0u32; 3];
        for op in ops {
            match op {
                Op::Send(dom, to_a, bytes) => {
                    let slot = usize::from(dom);
                    seq[slot] += 1;
                    // d1 only talks to dom0's stack: a guest scribbling on its own ring
                    // can make netback send its stale frames again, which d2 must not
                    // count as its own traffic.
                    let (src, dst) = match (dom, to_a) {
                        (2, true) => (MAC_B, MAC_A),
                        (2, false) => (MAC_B, MAC_DOM0),
                        _ => (MAC_A, MAC_DOM0),
                    };
                    send(&mut hv, &mut p, dom, packet(dst, src, seq[slot], bytes));
                    d2_to_dom0 += usize::from(dom == 2 && !to_a);
                }
                Op::Scribble(rx, at, bytes) => {
                    if let Some(path) = hv.vif_path_mut(ids::dom(1), 0) {
                        path.queues[0].guest_scribble(rx, at, &bytes);
                    }
                }
                Op::Kick => kick(&mut hv, &mut p, 1),
                Op::Bridge => {
                    let left = bridge(&mut hv, &mut p);
                    d2_seen += left.iter().filter(|pk| pk.src == MAC_B).count();
                }
            }
        }
        p.run_until_idle(&mut hv);
        let left = bridge(&mut hv, &mut p);
        d2_seen += left.iter().filter(|pk| pk.src == MAC_B).count();
        prop_assert_eq!(d2_seen, d2_to_dom0);
        let d2 = hv.vif_path(ids::dom(2), 0).expect("d2's vif");
        prop_assert!(!d2.back_disabled());
        prop_assert_eq!(d2.counters().rx_order_violations, 0);
        prop_assert!(hv.check_invariants().is_empty());
    }
}
