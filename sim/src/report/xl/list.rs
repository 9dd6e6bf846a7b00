//! `xl list [-v] [-c] [-n] [-l] [Domain]`: the domain table.
//!
//! Follows tools/xl/xl_info.c (`main_list`, `list_domains`), xen/common/domctl.c
//! (`getdomaininfo`: the state flags and `cpu_time`) and
//! tools/libs/light/libxl_domain.c (`libxl__xcinfo2xlinfo`).
//!
//! # Invariants
//! - Every row has the same six-letter state column, each letter `-` when unset.
//! - Time(s) is the sum of every vCPU's running time, converted as xl does
//!   (`(float)cpu_time / 1e9`, a C float promoted to double).
//!
//! xensim differs: `-n` prints the node affinity Xen computes automatically from the
//! vCPUs' affinities (`domain_update_node_affinity`); libxl's automatic NUMA placement at
//! create time is not modelled, so on a multi-node host an unpinned guest shows every node
//! where real xl would show the node libxl picked.

use hypervisor_model::domain::Domain;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::time::STime;

use super::json::list_long;
use super::{domain_by_id, find_domain, xl_name, XlHost, XlOutput};

/// `xl list` switches.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ListOptions {
    /// `-l`: JSON domain configurations.
    pub long: bool,
    /// `-v`: UUID, reason code, security label.
    pub verbose: bool,
    /// `-c`: cpupool name.
    pub cpupool: bool,
    /// `-n`: NUMA node affinity.
    pub numa: bool,
    /// `xl claims`: the `Claimed` column (outstanding claim, MiB).
    pub claim: bool,
}

/// Header of every `xl list` table (two literal TABs).
const HEADER: &str = "Name                                        ID   Mem VCPUs\tState\tTime(s)";

/// `shutdown_reason_letters` in `list_domains`, indexed by `SHUTDOWN_*` code.
const SHUTDOWN_REASON_LETTERS: &[u8] = b"-rscwS";

/// KiB per 4 KiB page (`PAGE_TO_MEMKB`).
const KIB_PER_PAGE: u64 = 4;

/// `xl list` with `options` and at most one domain argument.
pub fn xl_list(host: &XlHost<'_>, options: ListOptions, domains: &[String]) -> XlOutput {
    let hv = host.hv;
    let selected: Vec<&Domain> = match domains {
        [] => hv.domains().collect(),
        [arg] => match select_one(hv, arg) {
            Ok(domain) => vec![domain],
            Err(out) => return out,
        },
        _ => return list_usage(),
    };
    if options.long {
        return XlOutput::ok(list_long(hv, &selected));
    }
    let now = STime::from_ns(host.now_ns);
    let mut stdout = header(options);
    for domain in selected {
        stdout.push_str(&row(hv, domain, now, options));
    }
    XlOutput::ok(stdout)
}

/// `xl claims`: every domain with its outstanding claim (`main_claims` in
/// tools/xl/xl_info.c), after a warning on stderr when xl.conf's `claim_mode` is off.
pub fn xl_claims(host: &XlHost<'_>) -> XlOutput {
    let options = ListOptions {
        claim: true,
        ..ListOptions::default()
    };
    let mut out = xl_list(host, options, &[]);
    if !host.hv.claim_mode() {
        out.stderr = String::from("claim_mode not enabled (see man xl.conf).\n");
    }
    out
}

/// `find_domain`, then `libxl_domain_info` (which needs an exact domid match).
fn select_one<'h>(hv: &'h Hypervisor, arg: &str) -> Result<&'h Domain, XlOutput> {
    let domid = find_domain(hv, arg)?;
    domain_by_id(hv, domid)
        .ok_or_else(|| XlOutput::fail(format!("Error: Domain '{arg}' does not exist.\n")))
}

/// More than one domain argument: `help("list")` on stdout, then `EXIT_FAILURE`.
fn list_usage() -> XlOutput {
    // tools/xl/xl.c help() with the "list" entry of tools/xl/xl_cmdtable.c; the usage
    // string ends in "\n", hence the three newlines.
    let stdout = String::from(
        "Usage: xl [-vtT] list [options] [Domain]\n\n\n\
         List information about all/some domains.\n\n\
         Options:\n\n\
         -l, --long              Output all VM details\n\
         -v, --verbose           Prints out UUIDs and security context\n\
         -Z, --context           Prints out security context\n\
         -c, --cpupool           Prints the cpupool the domain is in\n\
         -n, --numa              Prints out NUMA node affinity\n",
    );
    XlOutput {
        stdout,
        stderr: String::new(),
        rc: 1,
    }
}

fn header(options: ListOptions) -> String {
    let mut line = String::from(HEADER);
    if options.verbose {
        line.push_str("   UUID                            Reason-Code\tSecurity Label");
    }
    if options.claim {
        line.push_str("  Claimed");
    }
    if options.cpupool {
        line.push_str("         Cpupool");
    }
    if options.numa {
        line.push_str(" NODE Affinity");
    }
    line.push('\n');
    line
}

fn row(hv: &Hypervisor, domain: &Domain, now: STime, options: ListOptions) -> String {
    let claim_pages = hv.domain_claim_pages(domain.id);
    let mem_mib = domain
        .tot_pages
        .saturating_add(claim_pages)
        .saturating_mul(KIB_PER_PAGE)
        / 1024;
    let mut line = format!(
        "{:<40} {:>5} {:>5} {:>5}     {}  {:>8.1}",
        xl_name(domain).unwrap_or("(null)"),
        domain.id.raw(),
        mem_mib,
        domain.online_vcpu_count(),
        state_letters(domain),
        cpu_seconds(cpu_time_ns(domain, now)),
    );
    if options.verbose {
        line.push(' ');
        line.push_str(&uuid_string(&domain.uuid));
        match shutdown_code(domain) {
            Some(code) => line.push_str(&format!(" {code:>8x}")),
            None => line.push_str(&format!(" {:>8}", "-")),
        }
    }
    if options.claim {
        let claim_mib = claim_pages.saturating_mul(KIB_PER_PAGE) / 1024;
        line.push_str(&format!(" {claim_mib:>5}"));
    }
    if options.verbose {
        // No XSM/FLASK: libxl_flask_sid_to_context fails and the label is NULL.
        line.push_str(&format!(" {:>16}", "-"));
    }
    if options.cpupool {
        line.push_str(&format!("{:>16}", pool_name(hv, domain)));
    }
    if options.numa {
        line.push(' ');
        line.push_str(&node_affinity(hv, domain));
    }
    line.push('\n');
    line
}

/// `XEN_DOMINF_shutdown` is `is_shut_down` (shutdown finished), not `is_shutting_down`.
fn shutdown_code(domain: &Domain) -> Option<u8> {
    if !domain.is_shut_down {
        return None;
    }
    // A finished shutdown always has a reason in Xen; code 0 (poweroff) if not recorded.
    Some(domain.shutdown_reason.map_or(0, |reason| reason.code()))
}

/// The six state letters (`getdomaininfo` flags as `list_domains` prints them).
fn state_letters(domain: &Domain) -> String {
    let flag = |set: bool, letter: char| if set { letter } else { '-' };
    let code = usize::from(shutdown_code(domain).unwrap_or(0));
    let reason = SHUTDOWN_REASON_LETTERS
        .get(code)
        .map_or('?', |letter| char::from(*letter));
    let dead = domain.dying == hypervisor_model::domain::Dying::Dead;
    [
        flag(domain.is_running(), 'r'),
        flag(domain.is_blocked(), 'b'),
        flag(domain.controller_pause_count > 0, 'p'),
        flag(domain.is_shut_down, 's'),
        reason,
        flag(dead, 'd'),
    ]
    .iter()
    .collect()
}

/// `getdomaininfo`'s `cpu_time`: running time of every vCPU, online or not, up to `now`.
fn cpu_time_ns(domain: &Domain, now: STime) -> u64 {
    let total_ns: i64 = domain.vcpus.iter().map(|v| v.running_ns_at(now)).sum();
    u64::try_from(total_ns).unwrap_or(0)
}

/// `(float)info[i].cpu_time / 1e9`: the u64 becomes a C float (24-bit mantissa), which the
/// division by the double `1e9` promotes to double. Rust's `{:.1}` then rounds the exact
/// binary value half-to-even, as glibc's `%8.1f` does.
fn cpu_seconds(cpu_time_ns: u64) -> f64 {
    // The precision loss is the point: xl goes through a float.
    #[allow(clippy::cast_precision_loss)]
    let as_c_float = cpu_time_ns as f32;
    f64::from(as_c_float) / 1e9
}

/// `LIBXL_UUID_FMT`: the 16 handle bytes in order, grouped 4-2-2-2-6.
pub(crate) fn uuid_string(uuid: &[u8; 16]) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        hex(&uuid[0..4]),
        hex(&uuid[4..6]),
        hex(&uuid[6..8]),
        hex(&uuid[8..10]),
        hex(&uuid[10..16])
    )
}

/// `libxl_cpupoolid_to_name`: the pool's name.
fn pool_name<'h>(hv: &'h Hypervisor, domain: &Domain) -> &'h str {
    hv.pools()
        .find(|pool| pool.id == domain.pool)
        .map_or("(null)", |pool| pool.name.as_str())
}

/// `d->node_affinity`: the nodes NUMA placement set, or with `auto_node_affinity`
/// (xen/common/sched/core.c,
/// `domain_update_node_affinity`): the nodes of (∪ soft ∩ ∪ hard ∩ pool CPUs), or of
/// (∪ hard ∩ pool CPUs) if that is empty; printed by `print_bitmap` over `nr_nodes`.
fn node_affinity(hv: &Hypervisor, domain: &Domain) -> String {
    let host = hv.host();
    let nr_nodes = usize::try_from(host.nr_nodes()).unwrap_or(0);
    // Set by the toolstack (NUMA placement): `auto_node_affinity` is off.
    if let Some(mask) = hv.memory().explicit_node_affinity(domain.id) {
        let nodes: Vec<bool> = (0..nr_nodes).map(|n| (mask >> n) & 1 == 1).collect();
        return print_bitmap(&nodes);
    }
    let nr_cpus = host.nr_cpus();
    let pool_cpus = hv
        .pools()
        .find(|pool| pool.id == domain.pool)
        .map(|pool| pool.cpus.clone());
    let mut hard = hypervisor_model::cpumask::CpuMask::empty(nr_cpus);
    let mut soft = hypervisor_model::cpumask::CpuMask::empty(nr_cpus);
    for vcpu in &domain.vcpus {
        hard = hard.or(&vcpu.hard_affinity);
        soft = soft.or(&vcpu.soft_affinity);
    }
    if let Some(online) = pool_cpus {
        hard = hard.and(&online);
    }
    let soft = soft.and(&hard);
    let cpus = if soft.is_empty() { hard } else { soft };
    let mut nodes = vec![false; usize::try_from(host.nr_nodes()).unwrap_or(0)];
    for cpu in cpus.iter() {
        let node = host.cpus.get(cpu.index()).map(|topo| topo.node);
        let slot = node.and_then(|n| usize::try_from(n).ok());
        if let Some(flag) = slot.and_then(|index| nodes.get_mut(index)) {
            *flag = true;
        }
    }
    print_bitmap(&nodes)
}

/// `print_bitmap` (tools/xl/xl_utils.c): `all` when every bit is set, `none` when none,
/// otherwise comma-separated ranges such as `0,2-3`.
pub(crate) fn print_bitmap(bits: &[bool]) -> String {
    if !bits.is_empty() && bits.iter().all(|b| *b) {
        return String::from("all");
    }
    let mut ranges: Vec<String> = Vec::new();
    let mut index = 0;
    while index < bits.len() {
        if !bits[index] {
            index += 1;
            continue;
        }
        let first = index;
        while index < bits.len() && bits[index] {
            index += 1;
        }
        let last = index - 1;
        ranges.push(if last > first {
            format!("{first}-{last}")
        } else {
            format!("{first}")
        });
    }
    if ranges.is_empty() {
        String::from("none")
    } else {
        ranges.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_seconds, print_bitmap, uuid_string};

    #[test]
    fn cpu_seconds_formats_like_c_float_then_double() {
        // 47.75 s: glibc prints 47.8 for (float)47750000000/1e9 (checked against gcc).
        assert_eq!(format!("{:8.1}", cpu_seconds(47_750_000_000)), "    47.8");
    }

    #[test]
    fn cpu_seconds_large_value_keeps_float_error() {
        // 5e17 ns is not a float; glibc prints 499999992.2 for it (checked against gcc).
        let seconds = cpu_seconds(500_000_000_000_000_000);
        assert_eq!(format!("{seconds:8.1}"), "499999992.2");
    }

    #[test]
    fn cpu_seconds_quarter_rounds_half_even_to_point_two() {
        // 0.25 is exact in binary; glibc rounds the tie to even: 0.2.
        assert_eq!(format!("{:8.1}", cpu_seconds(250_000_000)), "     0.2");
    }

    #[test]
    fn uuid_string_groups_bytes_4_2_2_2_6() {
        let uuid: [u8; 16] = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(uuid_string(&uuid), "12345678-9abc-def0-0123-456789abcdef");
    }

    #[test]
    fn print_bitmap_all_set_prints_all() {
        assert_eq!(print_bitmap(&[true, true]), "all");
    }

    #[test]
    fn print_bitmap_mixed_prints_ranges() {
        assert_eq!(print_bitmap(&[true, false, true, true]), "0,2-3");
    }

    #[test]
    fn print_bitmap_none_set_prints_none() {
        assert_eq!(print_bitmap(&[false, false]), "none");
    }
}
