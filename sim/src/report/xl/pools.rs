//! `xl vcpu-list`, `xl cpupool-list [-c]` and the listing forms of `xl sched-credit2` and
//! `xl sched-rtds`, byte for byte as Xen 4.17's xl prints them.
//!
//! Follows tools/xl/xl_vcpu.c (`vcpulist`, `print_vcpuinfo`), tools/xl/xl_cpupool.c
//! (`main_cpupoollist`), tools/xl/xl_sched.c (`sched_domain_output`, `sched_vcpu_output`,
//! the `*_domain_output` / `*_pool_output` helpers), tools/xl/xl_utils.c (`print_bitmap`),
//! tools/libs/light/libxl_utils.c (`libxl_cpupool_qualifier_to_cpupoolid`) and
//! libxl_domain.c (`libxl_list_vcpu`); spec `schedulers.md` §7.2–7.5.
//!
//! # Invariants
//! - Pools print in ascending id order, domains in ascending domid order.
//! - Renderers are pure functions of the hypervisor state and the virtual time.

use hypervisor_model::domain::Domain;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{PoolId, VcpuId, VcpuRef};
use hypervisor_model::sched::params::{DomParams, PoolParams, VcpuParams};
use hypervisor_model::sched::{Pool, SchedKind};
use hypervisor_model::time::STime;

use super::{domain_by_id, find_domain, xl_name, XlHost, XlOutput};
use crate::xl::bitmap::print_bitmap;

/// `libxl_cpupool_qualifier_to_cpupoolid` + `libxl_cpupoolid_is_valid`: digits are an id,
/// anything else a name; `None` if no such pool exists.
pub fn find_pool<'h>(hv: &'h Hypervisor, arg: &str) -> Option<&'h Pool> {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let id = super::strtoul_u32(arg);
        return hv.pool(PoolId(id));
    }
    hv.pools().find(|pool| pool.name == arg)
}

/// `xl cpupool-list [-c] [POOL]`.
pub fn xl_cpupool_list(hv: &Hypervisor, cpus: bool, pool: Option<&str>) -> XlOutput {
    let only = match pool {
        Some(arg) => match hv.pools().find(|p| p.name == arg) {
            Some(found) => Some(found.id),
            None => return XlOutput::fail(format!("Pool '{arg}' does not exist\n")),
        },
        None => None,
    };
    let mut out = format!("{:<19}", "Name");
    out.push_str(if cpus {
        "CPU list\n"
    } else {
        "CPUs   Sched     Active   Domain count\n"
    });
    for p in hv.pools().filter(|p| only.is_none_or(|id| id == p.id)) {
        out.push_str(&format!("{:<19}", p.name));
        if cpus {
            let list: Vec<String> = p.cpus.iter().map(|c| c.raw().to_string()).collect();
            out.push_str(&list.join(","));
        } else {
            let n_dom = hv.pool_domains(p.id).count();
            out.push_str(&format!(
                "{:>3} {:>9}       y       {n_dom:>4}",
                p.cpus.weight(),
                p.kind.opt_name()
            ));
        }
        out.push('\n');
    }
    XlOutput::ok(out)
}

/// `(float)ns / 1e9` printed by `%9.1f`.
fn seconds(ns: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let as_c_float = ns as f32;
    f64::from(as_c_float) / 1e9
}

fn vcpu_row(
    d: &Domain,
    v: &hypervisor_model::domain::vcpu::Vcpu,
    nr_cpus: u32,
    now: STime,
) -> String {
    let mut line = format!(
        "{:<32} {:>5} {:>5}",
        xl_name(d).unwrap_or("(null)"),
        d.id.raw(),
        v.id.vcpu.raw()
    );
    if v.is_online() {
        let running = if v.running_on.is_some() { 'r' } else { '-' };
        let blocked = if v.is_blocked() { 'b' } else { '-' };
        line.push_str(&format!("{:>5} {running:>3}{blocked}- ", v.processor.raw()));
    } else {
        line.push_str(&format!("{:>5} {:>3}{}p ", '-', '-', '-'));
    }
    line.push_str(&format!("{:>9.1}  ", seconds(v.running_ns_at(now))));
    line.push_str(&print_bitmap(&v.hard_affinity, nr_cpus));
    line.push_str(" / ");
    line.push_str(&print_bitmap(&v.soft_affinity, nr_cpus));
    line.push('\n');
    line
}

/// `xl vcpu-list [DOM ...]`: the header, then every vCPU of each domain.
pub fn xl_vcpu_list(host: &XlHost<'_>, domains: &[String]) -> XlOutput {
    let hv = host.hv;
    let now = STime::from_ns(host.now_ns);
    let nr_cpus = hv.host().nr_cpus();
    let mut out = XlOutput::ok(format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}\n",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
    ));
    let print = |out: &mut XlOutput, d: &Domain| {
        for v in &d.vcpus {
            out.stdout.push_str(&vcpu_row(d, v, nr_cpus, now));
        }
    };
    if domains.is_empty() {
        for d in hv.domains() {
            print(&mut out, d);
        }
        return out;
    }
    for arg in domains {
        let domid = match find_domain(hv, arg) {
            Ok(domid) => domid,
            Err(fail) => {
                // find_domain exits: the header is already out.
                out.stderr.push_str(&fail.stderr);
                out.rc = 1;
                return out;
            }
        };
        match domain_by_id(hv, domid) {
            Some(d) => print(&mut out, d),
            None => out.stderr.push_str(&list_vcpu_failure(hv, domid)),
        }
    }
    out
}

/// `libxl_list_vcpu` for a domid with no domain: `xc_domain_getinfolist` finds the next
/// domain up (then getting the vCPU fails) or none at all.
fn list_vcpu_failure(hv: &Hypervisor, domid: u32) -> String {
    let above = hv.domains().any(|d| u32::from(d.id.raw()) > domid);
    if above {
        format!(
            "libxl: error: libxl_domain.c:1691:libxl_list_vcpu: \
             Domain {domid}:Getting vcpu info: No such process\n"
        )
    } else {
        format!(
            "libxl: error: libxl_domain.c:1667:libxl_list_vcpu: \
             Domain {domid}:Getting infolist: Success\n"
        )
    }
}

/// `sched_credit2_pool_output`.
pub fn credit2_pool_line(hv: &Hypervisor, pool: &Pool) -> String {
    match hv.pool_sched_params(pool.id) {
        Some(PoolParams::Credit2 { ratelimit_us }) => {
            format!("Cpupool {}: ratelimit={ratelimit_us}us\n", pool.name)
        }
        _ => format!("Cpupool {}: [sched params unavailable]\n", pool.name),
    }
}

/// `sched_credit2_domain_output(-1)`.
pub const CREDIT2_HEADER: &str = "Name                                ID Weight  Cap\n";

/// `sched_credit2_domain_output(domid)`: the row, or libxl's complaint (stderr) when the
/// domain's scheduler is not credit2.
pub fn credit2_row(hv: &Hypervisor, d: &Domain) -> Result<String, String> {
    match hv.dom_sched_params(d.id) {
        Some(Ok(DomParams::Credit2 { weight, cap })) => Ok(credit2_line(
            xl_name(d).unwrap_or("(null)"),
            d.id.raw(),
            weight,
            cap,
        )),
        Some(Ok(other)) => Err(format!(
            "libxl_domain_sched_params_get returned {} not credit2.\n",
            params_sched_name(&other)
        )),
        _ => Err("libxl_domain_sched_params_get failed.\n".to_string()),
    }
}

/// One `%-33s %4d %6d %4d` row.
pub fn credit2_line(name: &str, domid: u16, weight: u16, cap: u16) -> String {
    format!("{name:<33} {domid:>4} {weight:>6} {cap:>4}\n")
}

/// One `%-33s %4d %9d %9d %10s` row.
pub fn rtds_domain_line(name: &str, domid: u16, period_us: u32, budget_us: u32) -> String {
    format!(
        "{name:<33} {domid:>4} {period_us:>9} {budget_us:>9} {:>10}\n",
        "yes"
    )
}

/// One `%-33s %4d %4d %9u %9u %10s` row.
pub fn rtds_vcpu_line(name: &str, domid: u16, vcpu: u32, p: &VcpuParams) -> String {
    let extratime = if p.extratime { "yes" } else { "no" };
    format!(
        "{name:<33} {domid:>4} {vcpu:>4} {:>9} {:>9} {extratime:>10}\n",
        p.period_us, p.budget_us
    )
}

fn params_sched_name(params: &DomParams) -> &'static str {
    match params {
        DomParams::Credit2 { .. } => "credit2",
        DomParams::Rtds { .. } => "rtds",
        DomParams::Null => "null",
    }
}

/// `sched_rtds_domain_output(-1)`.
pub const RTDS_DOMAIN_HEADER: &str =
    "Name                                ID    Period    Budget  Extratime\n";
/// `sched_rtds_vcpu_output(-1)`.
pub const RTDS_VCPU_HEADER: &str =
    "Name                                ID VCPU    Period    Budget  Extratime\n";

/// `sched_rtds_domain_output(domid)`: libxl leaves extratime at its non-zero default, so
/// the domain form always says `yes`.
pub fn rtds_domain_row(hv: &Hypervisor, d: &Domain) -> Result<String, String> {
    match hv.dom_sched_params(d.id) {
        Some(Ok(DomParams::Rtds {
            period_us,
            budget_us,
        })) => Ok(rtds_domain_line(
            xl_name(d).unwrap_or("(null)"),
            d.id.raw(),
            period_us,
            budget_us,
        )),
        Some(Ok(other)) => Err(format!(
            "libxl_domain_sched_params_get returned {} not rtds.\n",
            params_sched_name(&other)
        )),
        _ => Err("libxl_domain_sched_params_get failed.\n".to_string()),
    }
}

/// `sched_rtds_vcpu_output[_all]`: one row per vCPU in `vcpus` (all when `None`).
pub fn rtds_vcpu_rows(
    hv: &Hypervisor,
    d: &Domain,
    vcpus: Option<&[VcpuId]>,
) -> Result<String, String> {
    let ids: Vec<VcpuId> = match vcpus {
        Some(ids) => ids.to_vec(),
        None => d.vcpus.iter().map(|v| v.id.vcpu).collect(),
    };
    let mut out = String::new();
    for vcpu in ids {
        let v = VcpuRef { dom: d.id, vcpu };
        let Some(Ok(p)) = hv.vcpu_sched_params(v) else {
            return Err("libxl_vcpu_sched_params_get failed.\n".to_string());
        };
        out.push_str(&rtds_vcpu_line(
            xl_name(d).unwrap_or("(null)"),
            d.id.raw(),
            vcpu.raw(),
            &p,
        ));
    }
    Ok(out)
}

/// `sched_domain_output` / `sched_vcpu_output`: for each pool of `kind` (or only `only`),
/// the pool line, the header, and one `row` per domain of that pool; a failing row stops
/// the listing (its message goes to stderr; xl still exits 0).
pub fn per_pool_listing(
    hv: &Hypervisor,
    kind: SchedKind,
    only: Option<PoolId>,
    header: &str,
    row: &dyn Fn(&Domain) -> Result<String, String>,
) -> XlOutput {
    let mut out = XlOutput::ok(String::new());
    for pool in hv
        .pools()
        .filter(|p| p.kind == kind && only.is_none_or(|id| id == p.id))
    {
        out.stdout.push_str(&match kind {
            SchedKind::Rtds => format!("Cpupool {}: sched=RTDS\n", pool.name),
            _ => credit2_pool_line(hv, pool),
        });
        out.stdout.push_str(header);
        for d in hv.domains().filter(|d| d.pool == pool.id) {
            match row(d) {
                Ok(text) => out.stdout.push_str(&text),
                Err(message) => {
                    out.stderr.push_str(&message);
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{
        credit2_line, rtds_domain_line, rtds_vcpu_line, CREDIT2_HEADER, RTDS_DOMAIN_HEADER,
        RTDS_VCPU_HEADER,
    };
    use hypervisor_model::sched::params::VcpuParams;

    #[test]
    fn credit2_rows_match_spec_example() {
        // schedulers.md §7.4: Domain-0 256/0 and guest1 512/50.
        let text = [
            CREDIT2_HEADER.to_string(),
            credit2_line("Domain-0", 0, 256, 0),
            credit2_line("guest1", 1, 512, 50),
        ]
        .concat();
        let expected = "Name                                ID Weight  Cap\n\
                        Domain-0                             0    256    0\n\
                        guest1                               1    512   50\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn rtds_rows_match_spec_examples() {
        // schedulers.md §7.5: guest2's vCPU 0 at 1000/500 with extratime, vCPU 1 at the
        // defaults without; the domain form always shows the defaults and "yes".
        let v0 = VcpuParams {
            period_us: 1000,
            budget_us: 500,
            extratime: true,
        };
        let v1 = VcpuParams {
            period_us: 10_000,
            budget_us: 4_000,
            extratime: false,
        };
        let vcpus = [
            RTDS_VCPU_HEADER.to_string(),
            rtds_vcpu_line("guest2", 2, 0, &v0),
            rtds_vcpu_line("guest2", 2, 1, &v1),
        ]
        .concat();
        let expected_vcpus = [
            "Name                                ID VCPU    Period    Budget  Extratime\n",
            "guest2                               2    0      1000       500        yes\n",
            "guest2                               2    1     10000      4000         no\n",
        ]
        .concat();
        assert_eq!(vcpus, expected_vcpus);
        let domain = [
            RTDS_DOMAIN_HEADER.to_string(),
            rtds_domain_line("guest2", 2, 10_000, 4_000),
        ]
        .concat();
        let expected_domain = [
            "Name                                ID    Period    Budget  Extratime\n",
            "guest2                               2     10000      4000        yes\n",
        ]
        .concat();
        assert_eq!(domain, expected_domain);
    }

    #[test]
    fn credit2_header_matches_format() {
        assert_eq!(
            CREDIT2_HEADER,
            format!("{:<33} {:>4} {:>6} {:>4}\n", "Name", "ID", "Weight", "Cap")
        );
    }

    #[test]
    fn rtds_headers_match_formats() {
        let domain = format!(
            "{:<33} {:>4} {:>9} {:>9} {:>10}\n",
            "Name", "ID", "Period", "Budget", "Extratime"
        );
        let vcpu = format!(
            "{:<33} {:>4} {:>4} {:>9} {:>9} {:>10}\n",
            "Name", "ID", "VCPU", "Period", "Budget", "Extratime"
        );
        assert_eq!(RTDS_DOMAIN_HEADER, domain);
        assert_eq!(RTDS_VCPU_HEADER, vcpu);
    }
}
