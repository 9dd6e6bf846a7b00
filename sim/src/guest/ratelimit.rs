//! The console-message rate limit the guest models share: Linux's `___ratelimit`
//! (lib/ratelimit.c) with `DEFAULT_RATELIMIT_INTERVAL` (5 s) and `DEFAULT_RATELIMIT_BURST`
//! (10), as `printk_ratelimited` uses it per call site and `/dev/kmsg` per open file
//! (`devkmsg_write`, kernel/printk/printk.c).
//!
//! # Invariants
//! - At most [`RATELIMIT_BURST`] messages pass in one window; a window starts at the
//!   first message after the previous one ended and lasts [`RATELIMIT_INTERVAL_NS`].
//!
//! xensim differs: the window ends at `start + interval` exactly (Linux compares jiffies,
//! a tick later); the "callbacks suppressed" line Linux prints at a window's end is left
//! out (`/dev/kmsg` prints none, `RATELIMIT_MSG_ON_RELEASE`).

/// `DEFAULT_RATELIMIT_INTERVAL`: 5 s.
pub(crate) const RATELIMIT_INTERVAL_NS: u64 = 5_000_000_000;
/// `DEFAULT_RATELIMIT_BURST`: 10 messages per window.
pub(crate) const RATELIMIT_BURST: u32 = 10;

/// One `struct ratelimit_state`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimit {
    /// `rs->begin`: when the current window started, ns.
    start_ns: u64,
    /// `rs->printed`: messages passed in the current window.
    printed: u32,
}

impl RateLimit {
    /// A limiter no message has passed yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether a message at `now_ns` may be printed.
    pub(crate) fn allow(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.start_ns) >= RATELIMIT_INTERVAL_NS || self.printed == 0 {
            self.start_ns = now_ns;
            self.printed = 0;
        }
        if self.printed >= RATELIMIT_BURST {
            return false;
        }
        self.printed += 1;
        debug_assert!(self.printed <= RATELIMIT_BURST);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_and_the_rest_of_the_window_is_suppressed() {
        let mut limit = RateLimit::new();
        // 12 messages 1 ms apart, all inside the first 5 s window.
        let passed = (0..12u64)
            .filter(|i| limit.allow(1_000 + i * 1_000_000))
            .count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn a_new_window_starts_once_the_interval_has_passed() {
        let mut limit = RateLimit::new();
        let first_ns = 1_000;
        for i in 0..10u64 {
            assert!(limit.allow(first_ns + i));
        }
        assert!(!limit.allow(first_ns + RATELIMIT_INTERVAL_NS - 1));
        assert!(limit.allow(first_ns + RATELIMIT_INTERVAL_NS));
    }
}
