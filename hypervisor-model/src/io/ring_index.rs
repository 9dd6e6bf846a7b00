//! Free-running indices of the byte rings a guest shares with a dom0 daemon (the XenStore
//! ring, the console ring): the `prod - cons <= size` test both ends make before trusting
//! what they read, and the checker's rule that a well-behaved end never moves an index
//! backwards.
//!
//! Follows xen/include/public/io/xs_wire.h and console.h (indices wrap at 2^32; a ring's
//! size is a power of two).

use alloc::format;
use alloc::vec::Vec;

use crate::sched::Violation;

/// The most a free-running index can advance between two looks and still count as
/// forward (half the index space).
pub const MAX_FORWARD: u32 = i32::MAX as u32;

/// A ring whose producer is more than the ring's size ahead of its consumer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BadIndexes {
    /// The consumer index read.
    pub cons: u32,
    /// The producer index read.
    pub prod: u32,
}

/// `prod - cons <= size_bytes`, wrapping (xenstored's and Linux's `check_indexes`).
pub fn check_indexes(cons: u32, prod: u32, size_bytes: u32) -> Result<(), BadIndexes> {
    if prod.wrapping_sub(cons) <= size_bytes {
        Ok(())
    } else {
        Err(BadIndexes { cons, prod })
    }
}

/// Adds an `invariant` violation for each of the four indices that moved backwards from
/// `before` to `now` (by more than [`MAX_FORWARD`] forward, modulo 2^32).
pub fn check_forward(
    invariant: &'static str,
    who: &str,
    names: [&str; 4],
    before: [u32; 4],
    now: [u32; 4],
    out: &mut Vec<Violation>,
) {
    for ((name, old), new) in names.iter().zip(before).zip(now) {
        if new.wrapping_sub(old) > MAX_FORWARD {
            out.push(Violation {
                invariant,
                detail: format!("{who}: {name} moved from {old} to {new}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_a_full_ring_ahead_is_fine_and_one_more_is_not() {
        assert_eq!(check_indexes(10, 10 + 1024, 1024), Ok(()));
        assert_eq!(
            check_indexes(10, 10 + 1025, 1024),
            Err(BadIndexes {
                cons: 10,
                prod: 1035
            })
        );
        assert_eq!(check_indexes(u32::MAX - 5, 20, 2048), Ok(()));
    }

    #[test]
    fn an_index_moving_backwards_is_reported_and_wrapping_forward_is_not() {
        let mut out = Vec::new();
        let names = ["a", "b", "c", "d"];
        check_forward("t", "w", names, [5, u32::MAX, 0, 0], [4, 3, 0, 0], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].detail, "w: a moved from 5 to 4");
    }
}
