//! The one table of scenario features this xensim build parses but does not run yet.
//!
//! A scenario using one of them fails to load with a located error (exit 2) instead of
//! running without it. When the engine learns a feature, delete its row in
//! [`not_yet`]; the loader already parses and validates the feature's syntax.
//!
//! It also owns the one message for tmem, which Xen removed (`specs/memory-iommu-migration.md`
//! §6): xensim will never run it, so a scenario asking for it is refused with that message.
//!
//! # Invariants
//! - Every unsupported feature is listed here and nowhere else.

use super::diag::{Diags, Loc};

/// A feature the loader recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature<'a> {
    /// `[[at]] fault = { kind = "lost-interrupt", device = ... }`: a passthrough device's
    /// interrupts (PCI passthrough is not run yet).
    DeviceInterrupt,
    /// A non-empty `pci` list (host or xl.cfg).
    Pci,
    /// An xl subcommand xl has but xensim's `XlCommand` does not parse yet.
    XlCommand(&'a str),
    /// `[sim] percentile_method = "hdr_3sd"`.
    PercentileHdr,
}

/// xl subcommands of Xen 4.17 that `XlCommand::parse` does not handle yet.
const XL_COMMANDS_NOT_YET: &[&str] = &[
    "migrate",
    "vcpu-set",
    "sched-null",
    "save",
    "restore",
    "console",
    "network-attach",
    "network-detach",
    "block-attach",
    "block-detach",
    "pci-attach",
    "pci-detach",
    "pci-assignable-add",
    "pci-assignable-remove",
    "rename",
    "uptime",
    "top",
];

/// Why a scenario asking for tmem (an `xl tmem-*` command, a `tmem*` Xen option) is refused.
pub const TMEM_REMOVED: &str = "tmem (transcendent memory) was removed from Xen in 4.13 \
     (4.12 was the last release with it; its hypercall now returns -ENOSYS); use memory \
     claims (claim_mode, `xl claims`) or ballooning (`xl mem-set`) instead";

/// True for the names of tmem's removed xl commands and Xen options (`tmem-list`,
/// `tmem_compress`, ...).
pub fn is_tmem(name: &str) -> bool {
    name == "tmem" || name.starts_with("tmem-") || name.starts_with("tmem_")
}

/// Why `feature` is refused in this build, or `None` if it is supported.
pub fn not_yet(feature: Feature<'_>) -> Option<String> {
    let what = match feature {
        Feature::DeviceInterrupt => "a lost-interrupt fault on a device is".to_string(),
        Feature::Pci => "PCI passthrough is".to_string(),
        Feature::XlCommand(name) if XL_COMMANDS_NOT_YET.contains(&name) => {
            format!("xl command \"{name}\" is")
        }
        Feature::XlCommand(_) => return None,
        Feature::PercentileHdr => "percentile method \"hdr_3sd\" is".to_string(),
    };
    Some(format!("{what} not implemented yet in this xensim build"))
}

/// Reports `feature` at `loc` under `path` if this build does not run it; true if it is
/// supported.
pub fn check(d: &Diags, loc: Loc, path: &str, feature: Feature<'_>) -> bool {
    match not_yet(feature) {
        Some(message) => {
            d.error(loc, format!("{path}: {message}"));
            false
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::{not_yet, Feature};

    #[test]
    fn unknown_xl_command_is_not_in_table() {
        assert_eq!(not_yet(Feature::XlCommand("frobnicate")), None);
        assert!(not_yet(Feature::XlCommand("vcpu-set")).is_some());
    }

    #[test]
    fn tmem_names_are_recognised() {
        assert!(super::is_tmem("tmem-list"));
        assert!(super::is_tmem("tmem_compress"));
        assert!(super::is_tmem("tmem"));
        assert!(!super::is_tmem("tmemory"));
        assert!(!super::is_tmem("claims"));
    }
}
