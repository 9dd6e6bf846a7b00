//! Virtual time as the core sees it.
//!
//! Xen keeps system time as `s_time_t`, a signed 64-bit count of nanoseconds since boot
//! (xen/include/xen/time.h). The core does the same with [`STime`] for instants and
//! [`Span`] for differences, so credits and slack can go negative without wrapping.
//!
//! # Invariants
//! - Arithmetic is checked: an overflow is a bug in xensim and panics with the operands.
//! - There is no conversion from a host clock; time only comes from the `Platform`.

use core::fmt;

/// An instant: nanoseconds since the host booted (Xen's `s_time_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct STime(i64);

/// A signed length of time in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(i64);

impl STime {
    /// Boot.
    pub const ZERO: STime = STime(0);
    /// Xen's `STIME_MAX`, used for "never".
    pub const MAX: STime = STime(i64::MAX);

    /// An instant `ns` nanoseconds after boot.
    pub const fn from_ns(ns: i64) -> STime {
        STime(ns)
    }

    /// Nanoseconds since boot.
    pub const fn as_ns(self) -> i64 {
        self.0
    }

    /// `self + span`, panicking on overflow (a bug: virtual runs are far shorter).
    #[must_use]
    pub fn after(self, span: Span) -> STime {
        match self.0.checked_add(span.0) {
            Some(ns) => STime(ns),
            None => panic!("STime overflow: {} + {}", self.0, span.0),
        }
    }

    /// `self - earlier` as a span (negative if `earlier` is later).
    #[must_use]
    pub fn since(self, earlier: STime) -> Span {
        match self.0.checked_sub(earlier.0) {
            Some(ns) => Span(ns),
            None => panic!("STime underflow: {} - {}", self.0, earlier.0),
        }
    }
}

impl Span {
    /// No time.
    pub const ZERO: Span = Span(0);

    /// A span of `ns` nanoseconds.
    pub const fn from_ns(ns: i64) -> Span {
        Span(ns)
    }

    /// A span of `us` microseconds (Xen's `MICROSECS()`).
    pub const fn from_us(us: i64) -> Span {
        Span(us * 1_000)
    }

    /// A span of `ms` milliseconds (Xen's `MILLISECS()`).
    pub const fn from_ms(ms: i64) -> Span {
        Span(ms * 1_000_000)
    }

    /// Nanoseconds.
    pub const fn as_ns(self) -> i64 {
        self.0
    }

    /// True for a negative span (Xen: a negative `next_time` means "no timer").
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// `self + other`, panicking on overflow.
    #[must_use]
    pub fn plus(self, other: Span) -> Span {
        match self.0.checked_add(other.0) {
            Some(ns) => Span(ns),
            None => panic!("Span overflow: {} + {}", self.0, other.0),
        }
    }
}

impl fmt::Debug for STime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}ns", self.0)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{STime, Span};

    #[test]
    fn since_of_later_instant_is_negative() {
        let early = STime::from_ns(100);
        let late = STime::from_ns(40);
        assert_eq!(late.since(early), Span::from_ns(-60));
    }

    #[test]
    fn add_span_moves_instant_forward() {
        let t = STime::from_ns(1_000).after(Span::from_us(2));
        assert_eq!(t.as_ns(), 3_000);
    }
}
