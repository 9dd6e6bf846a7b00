//! The `os` sub-table of a workload (any kind): how often the guest's kernel does the
//! things whose cost depends on the guest mode (`guest/modes.rs`): user syscalls, page-table
//! writes and TLB misses, each a rate per second of the workload's native run time.
//!
//! ```toml
//! workload = { kind = "bursty", service = "50us", think = "50us", os = {
//!     syscall_rate = "400k/s", pt_update_rate = "300k/s", tlb_miss_rate = "1M/s" } }
//! ```
//!
//! A rate is a non-negative integer (events/s) or digits followed by `/s`, `k/s`, `M/s`.
//!
//! # Invariants
//! - Every `os` sub-table of a domain's workloads is equal (one guest kernel per domain);
//!   one that differs is a located error.

use super::diag::Diags;
use super::model::OsRates;
use super::tree::{Kind, Node, Tbl};

/// What an `os` rate looks like, for messages.
pub const OS_RATE_EXPECTED: &str =
    "a rate of events (a non-negative integer per second, or digits followed by /s, k/s or M/s)";

/// Largest rate accepted, events per second (one event per ns of run time).
pub const OS_RATE_MAX_PER_S: u64 = 1_000_000_000;

/// `"400k/s"`, `"2M/s"`, `"500/s"` or an integer → events per second.
pub fn os_rate(node: &Node) -> Result<u64, String> {
    let value = match &node.kind {
        Kind::Int(i) => u64::try_from(*i).ok(),
        Kind::Str(text, _) => parse_os_rate(text),
        _ => None,
    };
    value
        .filter(|v| *v <= OS_RATE_MAX_PER_S)
        .ok_or_else(|| OS_RATE_EXPECTED.to_string())
}

fn parse_os_rate(text: &str) -> Option<u64> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(end);
    let factor = match unit {
        "/s" => 1,
        "k/s" => 1_000,
        "M/s" => 1_000_000,
        _ => return None,
    };
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// Reads the `os` sub-table of `t`, if any; `None` when absent or after a located error.
pub fn os_sub_table(d: &Diags, t: &Tbl<'_>) -> Option<(super::diag::Loc, OsRates)> {
    let o = t.sub(d, "os")?;
    let syscalls_per_s = o.opt(d, "syscall_rate", os_rate).unwrap_or(0);
    let pt_updates_per_s = o.opt(d, "pt_update_rate", os_rate).unwrap_or(0);
    let tlb_misses_per_s = o.opt(d, "tlb_miss_rate", os_rate).unwrap_or(0);
    o.finish(d);
    Some((
        o.here(),
        OsRates {
            syscalls_per_s,
            pt_updates_per_s,
            tlb_misses_per_s,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_os_rate;

    #[test]
    fn os_rates_take_k_and_m_suffixes() {
        assert_eq!(parse_os_rate("400k/s"), Some(400_000));
        assert_eq!(parse_os_rate("2M/s"), Some(2_000_000));
        assert_eq!(parse_os_rate("750/s"), Some(750));
    }

    #[test]
    fn os_rate_without_a_unit_or_digits_is_refused() {
        assert_eq!(parse_os_rate("400k"), None);
        assert_eq!(parse_os_rate("k/s"), None);
        assert_eq!(parse_os_rate("-5/s"), None);
    }
}
