//! `xl mem-set` and `xl mem-max`: the size parsed as xl parses it, one synchronous call
//! into the core (xl returns at once, it does not wait for the balloon), and libxl's and
//! xl's messages when it is refused.
//!
//! Follows tools/xl/xl_mem.c (`set_memory_target`, `set_memory_max`), tools/xl/xl_parse.c
//! (`parse_mem_size_kb`) and tools/libs/light/libxl_mem.c (the log lines, with the source
//! lines of Xen 4.17.5).
//!
//! xensim differs: libxl logs `memory_static_max must be greater than or or equal to
//! memory_dynamic_max` with whatever `errno` holds at that point; xensim prints it with
//! errno 0 (`Success`).

use hypervisor_model::ids::DomId;
use hypervisor_model::toolstack::mem_ops::MemOpError;
use hypervisor_model::toolstack::ops::{ToolstackError, ToolstackOp};

use super::World;
use crate::report::xl::{self, XlOutput};
use crate::xl::command::XlCommand;

/// `parse_mem_size_kb`: `strtoll`, then at most one unit letter (`t`, `g`, `m` or none
/// for MiB, `k`, `b`); `None` where xl returns -1 (a value of -1 KiB is refused too).
pub fn parse_mem_size_kb(text: &str) -> Option<i64> {
    let trimmed = text.trim_start();
    let sign_bytes = usize::from(trimmed.starts_with(['+', '-']));
    let digits_bytes = trimmed[sign_bytes..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let (number, rest) = if digits_bytes == 0 {
        // strtoll parsed nothing: the whole text is left.
        (0, text)
    } else {
        let (number_text, rest) = trimmed.split_at(sign_bytes + digits_bytes);
        let value = number_text
            .parse::<i64>()
            .unwrap_or(if number_text.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            });
        (value, rest)
    };
    if rest.len() > 1 {
        return None;
    }
    let kib = match rest.bytes().next().map(|b| b.to_ascii_lowercase()) {
        Some(b't') => number.wrapping_shl(30),
        Some(b'g') => number.wrapping_shl(20),
        None | Some(b'm') => number.wrapping_shl(10),
        Some(b'k') => number,
        Some(b'b') => number >> 10,
        Some(_) => return None,
    };
    (kib != -1).then_some(kib)
}

/// One libxl error line (`libxl__logv`: `Domain <id>:` only for a guest domid).
fn libxl_error(location: &str, domid: u32, message: &str) -> String {
    let domain = if domid == 0 {
        String::new()
    } else {
        format!("Domain {domid}:")
    };
    format!("libxl: error: libxl_mem.c:{location}: {domain}{message}\n")
}

/// libxl's log for a refused `libxl_set_memory_target` (`set`) or `libxl_domain_setmaxmem`.
fn libxl_lines(set: bool, domid: u32, error: ToolstackError) -> String {
    let home = format!("/local/domain/{domid}");
    let missing = |key: &str| format!("{home}/memory/{key}: No such file or directory");
    let (location, message) = match (set, error) {
        (true, ToolstackError::Mem(MemOpError::NoStaticMax)) => (
            "251:libxl_set_memory_target",
            format!("Cannot get memory info from {}", missing("static-max")),
        ),
        // The message ends in "\n" and the logger adds its own: a blank line follows.
        (true, ToolstackError::Mem(MemOpError::TargetAboveMax)) => (
            "278:libxl_set_memory_target",
            "memory_dynamic_max must be less than or equal to memory_static_max\n".to_string(),
        ),
        (true, ToolstackError::Mem(MemOpError::Dom0BelowMinimum { target_kib })) => (
            "287:libxl_set_memory_target",
            format!("New target {target_kib} for dom0 is below the minimum threshold"),
        ),
        (true, _) => (
            "234:libxl_set_memory_target",
            format!("Cannot get target memory info from {}", missing("target")),
        ),
        (false, ToolstackError::Mem(MemOpError::MaxBelowTarget)) => (
            "59:libxl_domain_setmaxmem",
            "memory_static_max must be greater than or or equal to memory_dynamic_max: Success"
                .to_string(),
        ),
        (false, _) => (
            "47:libxl_domain_setmaxmem",
            format!("Cannot get memory info from {}", missing("target")),
        ),
    };
    libxl_error(location, domid, &message)
}

impl World<'_> {
    /// `xl mem-set` and `xl mem-max`; false for other commands.
    pub(crate) fn xl_mem(&mut self, host: u16, record: usize, command: &XlCommand) -> bool {
        let out = match command {
            XlCommand::MemSet { domain, size } => self.mem_command(host, domain, size, true),
            XlCommand::MemMax { domain, size } => self.mem_command(host, domain, size, false),
            _ => return false,
        };
        self.output(record, out);
        true
    }

    fn mem_command(&mut self, host: u16, domain: &str, size: &str, set: bool) -> XlOutput {
        let domid = match xl::find_domain(&self.hosts[usize::from(host)].hv, domain) {
            Ok(domid) => domid,
            Err(fail) => return fail,
        };
        let Some(kib) = parse_mem_size_kb(size) else {
            return XlOutput::fail(format!("invalid memory size: {size}\n"));
        };
        // libxl takes the value as a uint64_t: a negative size wraps as in C.
        let kib = u64::from_le_bytes(kib.to_le_bytes());
        let result = match u16::try_from(domid).ok().and_then(DomId::new) {
            Some(dom) if set => self.call(
                host,
                ToolstackOp::MemSet {
                    dom,
                    target_kib: kib,
                },
            ),
            Some(dom) => self.call(host, ToolstackOp::MemMax { dom, max_kib: kib }),
            None => Err(ToolstackError::NoSuchDomain),
        };
        match result {
            Ok(()) => XlOutput::ok(String::new()),
            Err(error) => {
                let which = if set { "dynamic" } else { "static" };
                XlOutput::fail(format!(
                    "{}cannot set domid {domid} {which} max memory to : {size}\n",
                    libxl_lines(set, domid, error)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mem_size_kb;

    #[test]
    fn size_without_unit_is_mib() {
        assert_eq!(parse_mem_size_kb("2048"), Some(2048 * 1024));
    }

    #[test]
    fn size_units_are_case_insensitive() {
        assert_eq!(parse_mem_size_kb("2G"), Some(2 * 1024 * 1024));
        assert_eq!(parse_mem_size_kb("512k"), Some(512));
        assert_eq!(parse_mem_size_kb("4096b"), Some(4));
    }

    #[test]
    fn two_trailing_letters_or_unknown_unit_is_invalid() {
        assert_eq!(parse_mem_size_kb("2gb"), None);
        assert_eq!(parse_mem_size_kb("2x"), None);
    }

    #[test]
    fn minus_one_kib_is_xl_error_value() {
        assert_eq!(parse_mem_size_kb("-1k"), None);
    }
}
