//! The scheduler options of a host's Xen command line (`sched_ratelimit_us`, `credit2_*`),
//! read as Xen's integer and string parameter parsers read them.

use std::collections::BTreeMap;

use hypervisor_model::sched::params::{Credit2Runqueue, SchedOpts};

/// `simple_strtol(s, &e, 0)` as Xen's integer parameters use it: optional sign, `0x`/`0`
/// prefixes, digits up to the first non-digit (none = 0).
fn xen_integer(text: &str) -> i64 {
    hypervisor_model::cnum::c_strtol(text.as_bytes(), 0).0
}

/// The scheduler options of the Xen command line, as Xen's parsers read them (range checks
/// and their warnings are the core's, at scheduler init).
pub fn sched_opts(options: &BTreeMap<String, String>) -> SchedOpts {
    let mut opts = SchedOpts::default();
    let unsigned = |key: &str, default: u32| {
        options.get(key).map_or(default, |v| {
            u32::try_from(xen_integer(v)).unwrap_or(u32::MAX)
        })
    };
    let signed = |key: &str, default: i32| {
        options.get(key).map_or(default, |v| {
            i32::try_from(xen_integer(v)).unwrap_or(if v.starts_with('-') {
                i32::MIN
            } else {
                i32::MAX
            })
        })
    };
    opts.ratelimit_us = unsigned("sched_ratelimit_us", opts.ratelimit_us);
    opts.credit2_migrate_resist_us = unsigned(
        "sched_credit2_migrate_resist",
        opts.credit2_migrate_resist_us,
    );
    opts.credit2_max_cpus_runqueue = unsigned(
        "sched_credit2_max_cpus_runqueue",
        opts.credit2_max_cpus_runqueue,
    );
    opts.credit2_load_window_shift =
        unsigned("credit2_load_window_shift", opts.credit2_load_window_shift);
    opts.credit2_load_precision_shift = unsigned(
        "credit2_load_precision_shift",
        opts.credit2_load_precision_shift,
    );
    opts.credit2_balance_under = signed("credit2_balance_under", opts.credit2_balance_under);
    opts.credit2_balance_over = signed("credit2_balance_over", opts.credit2_balance_over);
    opts.credit2_cap_period_ms = unsigned("credit2_cap_period_ms", opts.credit2_cap_period_ms);
    if let Some(arrangement) = options.get("credit2_runqueue") {
        let known = [
            Credit2Runqueue::Cpu,
            Credit2Runqueue::Core,
            Credit2Runqueue::Socket,
            Credit2Runqueue::Node,
            Credit2Runqueue::All,
        ];
        if let Some(kind) = known.into_iter().find(|k| k.name() == arrangement) {
            opts.credit2_runqueue = kind;
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_integer_reads_prefixes_and_stops_at_junk() {
        assert_eq!(xen_integer("500"), 500);
        assert_eq!(xen_integer("0x10"), 16);
        assert_eq!(xen_integer("010"), 8);
        assert_eq!(xen_integer("-3"), -3);
        assert_eq!(xen_integer("12ms"), 12);
        assert_eq!(xen_integer("junk"), 0);
    }

    #[test]
    fn sched_opts_take_given_values_and_default_the_rest() {
        let options: BTreeMap<String, String> = [
            ("sched_ratelimit_us", "500"),
            ("credit2_runqueue", "core"),
            ("credit2_balance_over", "-2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let opts = sched_opts(&options);
        assert_eq!(opts.ratelimit_us, 500);
        assert_eq!(opts.credit2_runqueue, Credit2Runqueue::Core);
        assert_eq!(opts.credit2_balance_over, -2);
        assert_eq!(opts.credit2_max_cpus_runqueue, 16);
    }
}
