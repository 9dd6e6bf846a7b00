//! Named ChaCha20 random streams derived from the scenario seed (DESIGN.md, determinism rule 5).
//!
//! Every component that needs randomness asks [`RngStreams::stream`] for a stream by a stable
//! name (`workload.web.v0.service`, ...). Each stream is an independent `ChaCha20Rng` whose
//! 32-byte key depends only on `(seed, name)`, so adding a component or a field never shifts
//! another stream's draws.
//!
//! # Pinned key derivation
//!
//! Changing anything below changes every golden hash and snapshot:
//!
//! - message `m = tag ‖ seed.to_le_bytes() ‖ name.as_bytes()`, where `tag` is one byte;
//! - `h0 = SipHash-1-3-128(key = KEY, m with tag 0x00)`, `h1 = ... (m with tag 0x01)`, each
//!   taken as the 16 bytes of `siphasher`'s `Hash128::as_bytes()`;
//! - ChaCha key = `h0 ‖ h1` (32 bytes), ChaCha stream id 0, word position 0;
//! - `KEY` is the 16 ASCII bytes `xensim-rng-v1\0\0\0`.
//!
//! Draws: `next_u32`/`next_u64` are `rand_chacha` 0.3's (`rand_core` 0.6 word order).
//! `uniform_u64_inclusive(lo, hi)` draws `x = next_u64()` until
//! `x <= u64::MAX - (2^64 mod n)` with `n = hi - lo + 1`, then returns `lo + x mod n`
//! (rejection, so no modulo bias); the full range `[0, u64::MAX]` takes one draw as is.
//!
//! # Invariants
//!
//! - A stream's sequence depends only on the seed and its name.
//! - No draw uses floating point.
//!
//! Left out: stream forking and reseeding; a component that needs a fresh stream asks for a
//! new name.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use siphasher::sip128::SipHasher13;

/// Fixed SipHash key of the derivation (pinned; see the module doc).
const DERIVATION_KEY: [u8; 16] = *b"xensim-rng-v1\0\0\0";

/// Domain-separation tags for the two halves of the ChaCha key.
const TAG_KEY_LOW: u8 = 0x00;
const TAG_KEY_HIGH: u8 = 0x01;

/// The root of every stream of one run: the scenario seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RngStreams {
    seed: u64,
}

impl RngStreams {
    /// Streams rooted at `seed` (the scenario's `[sim] seed` or `--seed`).
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The seed this family derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream called `name`, positioned at its first draw.
    ///
    /// Asking twice for the same name gives two streams with the same sequence.
    pub fn stream(&self, name: &str) -> Stream {
        Stream {
            rng: ChaCha20Rng::from_seed(derive_key(self.seed, name)),
        }
    }
}

/// The pinned `(seed, name)` → 32-byte ChaCha key derivation (see the module doc).
fn derive_key(seed: u64, name: &str) -> [u8; 32] {
    let hasher = SipHasher13::new_with_key(&DERIVATION_KEY);
    let mut message = Vec::with_capacity(1 + 8 + name.len());
    message.push(TAG_KEY_LOW);
    message.extend_from_slice(&seed.to_le_bytes());
    message.extend_from_slice(name.as_bytes());
    let low = hasher.hash(&message).as_bytes();
    message[0] = TAG_KEY_HIGH;
    let high = hasher.hash(&message).as_bytes();
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&low);
    key[16..].copy_from_slice(&high);
    key
}

/// One named random stream.
#[derive(Debug, Clone)]
pub struct Stream {
    rng: ChaCha20Rng,
}

impl Stream {
    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform over `lo..=hi` by rejection on `u64` (pinned; see the module doc).
    ///
    /// The bounds are taken in either order, so `(hi, lo)` is the same range.
    pub fn uniform_u64_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        let (low, high) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let span = high - low;
        let Some(count) = span.checked_add(1) else {
            // The full u64 range: every draw is already uniform.
            return self.next_u64();
        };
        // 2^64 mod count, computed without 128-bit arithmetic.
        let excess = (u64::MAX - count + 1) % count;
        let accept_max = u64::MAX - excess;
        loop {
            let draw = self.next_u64();
            if draw <= accept_max {
                return low + draw % count;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_same_seed_and_name_gives_same_draws() {
        let streams = RngStreams::new(7);
        let mut first = streams.stream("a.b");
        let mut second = streams.stream("a.b");

        let first_draws = [first.next_u64(), first.next_u64(), first.next_u64()];
        let second_draws = [second.next_u64(), second.next_u64(), second.next_u64()];

        assert_eq!(first_draws, second_draws);
    }

    #[test]
    fn stream_different_name_gives_different_draws() {
        let streams = RngStreams::new(7);

        let draw_a = streams.stream("workload.d.v0.service").next_u64();
        let draw_b = streams.stream("workload.d.v0.think").next_u64();

        assert_ne!(draw_a, draw_b);
    }

    #[test]
    fn stream_different_seed_gives_different_draws() {
        let draw_seed1 = RngStreams::new(1).stream("x").next_u64();
        let draw_seed2 = RngStreams::new(2).stream("x").next_u64();

        assert_ne!(draw_seed1, draw_seed2);
    }

    #[test]
    fn stream_other_stream_drawn_does_not_shift_draws() {
        let streams = RngStreams::new(3);
        let mut alone = streams.stream("target");
        let mut other = streams.stream("other");
        let mut target = streams.stream("target");

        let _ = other.next_u64();
        let _ = other.next_u64();

        assert_eq!(alone.next_u64(), target.next_u64());
    }

    #[test]
    fn derive_key_seed1_name_x_is_pinned() {
        // Pinned value: a change here changes every golden hash (see the module doc).
        let key = derive_key(1, "x");

        let first_word = u64::from_le_bytes([
            key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
        ]);

        assert_eq!(first_word, PINNED_KEY_WORD_SEED1_X);
    }

    /// First 8 key bytes (little endian) of `derive_key(1, "x")`.
    const PINNED_KEY_WORD_SEED1_X: u64 = 5_562_676_520_264_426_642;

    #[test]
    fn uniform_u64_inclusive_single_value_returns_it() {
        let mut stream = RngStreams::new(1).stream("u");

        let value = stream.uniform_u64_inclusive(42, 42);

        assert_eq!(value, 42);
    }

    #[test]
    fn uniform_u64_inclusive_full_range_returns_raw_draw() {
        let streams = RngStreams::new(1);
        let mut raw = streams.stream("u");
        let mut ranged = streams.stream("u");

        let value = ranged.uniform_u64_inclusive(0, u64::MAX);

        assert_eq!(value, raw.next_u64());
    }

    #[test]
    fn uniform_u64_inclusive_reversed_bounds_equals_ordered() {
        let streams = RngStreams::new(5);
        let mut ordered = streams.stream("u");
        let mut reversed = streams.stream("u");

        let a = ordered.uniform_u64_inclusive(10, 20);
        let b = reversed.uniform_u64_inclusive(20, 10);

        assert_eq!(a, b);
    }

    #[test]
    fn uniform_u64_inclusive_small_range_hits_both_bounds() {
        // 200 draws over {0, 1, 2}: missing a bound has probability < 3 · (2/3)^200.
        let mut stream = RngStreams::new(9).stream("u");

        let draws: Vec<u64> = (0..200)
            .map(|_| stream.uniform_u64_inclusive(0, 2))
            .collect();

        assert!(draws.contains(&0));
        assert!(draws.contains(&2));
        assert!(draws.iter().all(|&d| d <= 2));
    }
}
