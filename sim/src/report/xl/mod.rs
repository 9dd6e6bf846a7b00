//! xl's output, rendered from the core's state byte for byte as Xen 4.17's `xl` prints it.
//!
//! Follows tools/xl/xl_info.c (`main_list`, `list_domains`, `list_domains_details`,
//! `main_info`, `print_info`, `main_dmesg`), tools/xl/xl_utils.c (`find_domain`) and
//! tools/libs/light/libxl_utils.c (`libxl_domain_qualifier_to_domid`). Ground truth is
//! `reference/real-xen-4.17-dom0-only.txt`; `sim/tests/xl_output.rs` compares against it.
//!
//! - `list.rs`: `xl list` and its `-v`, `-c`, `-n` columns.
//! - `json.rs`: `xl list -l`, a yajl-beautify writer and libxl's domain config JSON.
//! - `console.rs`: `xl console` (prints xenconsoled's buffer and returns).
//! - `info.rs`: `xl info`, `xl info -n` and `xl info KEY`.
//! - `pools.rs`: `xl vcpu-list`, `xl cpupool-list`, and the listings of `xl sched-credit2`
//!   and `xl sched-rtds`.
//!
//! # Invariants
//! - Renderers are pure: the same hypervisor state and `XlHost` give the same bytes.
//! - An error result has `rc == 1` and a message on stderr, as xl's `EXIT_FAILURE`.
//!
//! xensim differs: xl runs as a process in dom0; here it is a function call, so there is
//! no xl logging (`-v`) and no `libxl` debug output.

mod console;
mod info;
mod json;
mod list;
pub mod pools;

use hypervisor_model::domain::{Domain, Dying};
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::DomId;

pub use console::xl_console;
pub use info::xl_info;
pub use json::{domain_config, list_long_json, DomainConfigJson, SchedParamsJson};
pub use list::{xl_claims, xl_list, ListOptions};

/// What one xl invocation printed and returned.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct XlOutput {
    /// Bytes written to stdout.
    pub stdout: String,
    /// Bytes written to stderr.
    pub stderr: String,
    /// Exit status.
    pub rc: i32,
}

impl XlOutput {
    /// Success with `stdout`.
    pub fn ok(stdout: String) -> XlOutput {
        XlOutput {
            stdout,
            stderr: String::new(),
            rc: 0,
        }
    }

    /// `EXIT_FAILURE` with `stderr`.
    pub fn fail(stderr: String) -> XlOutput {
        XlOutput {
            stdout: String::new(),
            stderr,
            rc: 1,
        }
    }
}

/// The host xl runs on: the hypervisor, the virtual time of the call, and dom0's `uname`.
#[derive(Clone, Copy, Debug)]
pub struct XlHost<'a> {
    /// The hypervisor.
    pub hv: &'a Hypervisor,
    /// Virtual time of the call, ns (running vCPUs count up to here).
    pub now_ns: i64,
    /// `uname -n` of dom0 (`xl info` host).
    pub hostname: &'a str,
    /// `uname -r` of dom0.
    pub release: &'a str,
    /// `uname -v` of dom0.
    pub version: &'a str,
}

/// libxl's `ERROR_INVAL`, the rc `find_domain` prints for an unknown name.
const ERROR_INVAL: i32 = -6;

/// The name xl prints for a domain: `libxl_domid_to_name` reads `/local/domain/N/name`.
/// libxl removes that path before `xc_domain_destroy`, which is when the core marks the
/// domain dying, so a dying domain has no name and glibc prints `(null)`.
pub(crate) fn xl_name(domain: &Domain) -> Option<&str> {
    (domain.dying == Dying::Alive).then_some(domain.name.as_str())
}

/// Resolves a domain argument as `find_domain` (tools/xl/xl_utils.c) does.
///
/// An argument made only of digits (the empty string included) is a domid, parsed with
/// `strtoul` and truncated to 32 bits; it is accepted even if no such domain exists, so
/// the caller reports that. Anything else is a name, looked up among domains that have
/// one; no match prints `ARG is an invalid domain identifier (rc=-6)` and fails.
pub fn find_domain(hv: &Hypervisor, arg: &str) -> Result<u32, XlOutput> {
    if arg.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(strtoul_u32(arg));
    }
    hv.domains()
        .find(|d| xl_name(d) == Some(arg))
        .map(|d| u32::from(d.id.raw()))
        .ok_or_else(|| {
            XlOutput::fail(format!(
                "{arg} is an invalid domain identifier (rc={ERROR_INVAL})\n"
            ))
        })
}

/// `strtoul(digits, NULL, 10)` (saturating at `ULONG_MAX` on overflow) stored in a
/// `uint32_t`, which keeps the low 32 bits.
pub(crate) fn strtoul_u32(digits: &str) -> u32 {
    let value = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    u32::try_from(value & u64::from(u32::MAX)).unwrap_or(u32::MAX)
}

/// The domain with domid `domid`, as `libxl_domain_info` finds it (an exact id match).
pub(crate) fn domain_by_id(hv: &Hypervisor, domid: u32) -> Option<&Domain> {
    let raw = u16::try_from(domid).ok()?;
    hv.domain(DomId::new(raw)?)
}

/// `xl dmesg [-c]`: the console ring, oldest byte first, exactly as stored. With `-c`
/// the caller empties the ring after this read (`XEN_SYSCTL_readconsole` with `clear`).
pub fn xl_dmesg(host: &XlHost<'_>, clear: bool) -> XlOutput {
    // The clear flag changes nothing in what this read returns.
    let _ = clear;
    XlOutput::ok(host.hv.console().read())
}

#[cfg(test)]
mod tests {
    use super::strtoul_u32;

    #[test]
    fn strtoul_u32_empty_string_is_zero() {
        assert_eq!(strtoul_u32(""), 0);
    }

    #[test]
    fn strtoul_u32_two_pow_32_wraps_to_zero() {
        // 4294967296 fits an unsigned long; the uint32_t keeps its low 32 bits.
        assert_eq!(strtoul_u32("4294967296"), 0);
    }

    #[test]
    fn strtoul_u32_overflow_saturates_to_ulong_max_low_bits() {
        // strtoul returns ULONG_MAX on overflow; its low 32 bits are all ones.
        assert_eq!(strtoul_u32("99999999999999999999999"), u32::MAX);
    }
}
