//! `xl sched-credit2` and `xl sched-rtds` in a timeline: setting a domain's or a pool's
//! parameters (xl's checks, libxl's calls as toolstack operations, libxl's log lines with
//! 4.17.5's source locations) and their listings.
//!
//! Follows tools/xl/xl_sched.c and tools/libs/light/libxl_sched.c.

use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{DomId, PoolId, VcpuId};
use hypervisor_model::sched::params::{DomParams, PoolParams, SchedError, VcpuParams};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::toolstack::ops::{ToolstackError, ToolstackOp};

use super::{errno_of, libxl_log, strerror};
use crate::report::xl::pools::find_pool;
use crate::report::xl::{self, XlOutput};
use crate::run::World;
use crate::xl::command::{Credit2Args, RtdsArgs};

impl World<'_> {
    pub(super) fn credit2_set(&mut self, host: u16, a: &Credit2Args) -> XlOutput {
        if a.schedparam {
            let arg = a.pool.as_deref();
            let pool = match arg.map(|p| self.pool_id(host, p)).transpose() {
                Ok(pool) => pool.unwrap_or(PoolId(0)),
                Err(fail) => return fail,
            };
            let ratelimit = a.ratelimit_us.unwrap_or(0);
            if ratelimit != 0 && !(100..=500_000).contains(&ratelimit) {
                let line = libxl_log(
                    "error",
                    "libxl_sched.c:270:sched_ratelimit_check",
                    None,
                    "Ratelimit out of range, valid range is from 100 to 500000",
                );
                return XlOutput::fail(line + "libxl_sched_credit2_params_set failed.\n");
            }
            let params = PoolParams::Credit2 {
                ratelimit_us: u32::try_from(ratelimit).unwrap_or(0),
            };
            return match self.call(host, ToolstackOp::SchedPoolParams { pool, params }) {
                Ok(()) => XlOutput::ok(String::new()),
                Err(e) => XlOutput::fail(
                    libxl_log(
                        "error",
                        "libxl_sched.c:389:libxl_sched_credit2_params_set",
                        None,
                        &format!(
                            "Setting Credit2 scheduler parameters: {}",
                            strerror(errno_of(e))
                        ),
                    ) + "libxl_sched_credit2_params_set failed.\n",
                ),
            };
        }
        let Some(arg) = a.domain.as_deref() else {
            return XlOutput::fail("Must specify a domain.\n".to_string());
        };
        let domid = match xl::find_domain(self.hv(host), arg) {
            Ok(domid) => domid,
            Err(fail) => return fail,
        };
        let failed = "libxl_domain_sched_params_set failed.\n";
        let current = u16::try_from(domid)
            .ok()
            .and_then(DomId::new)
            .and_then(|d| Some((d, self.hv(host).dom_sched_params(d)?)));
        let Some((dom, Ok(DomParams::Credit2 { weight, cap }))) = current else {
            let line = libxl_log(
                "error",
                "libxl_sched.c:439:sched_credit2_domain_set",
                Some(domid),
                &format!(
                    "Getting domain sched credit2: {}",
                    strerror(SchedError::Invalid.errno())
                ),
            );
            return XlOutput::fail(line + failed);
        };
        let weight = match a.weight {
            Some(w) if !(1..=65_535).contains(&w) => {
                let line = libxl_log(
                    "error",
                    "libxl_sched.c:445:sched_credit2_domain_set",
                    Some(domid),
                    "Cpu weight out of range, valid values are within range from 1 to 65535",
                );
                return XlOutput::fail(line + failed);
            }
            Some(w) => u16::try_from(w).unwrap_or(weight),
            None => weight,
        };
        let vcpus = self.hv(host).domain(dom).map_or(0, |d| d.vcpus.len());
        let cap_max = i64::try_from(vcpus).unwrap_or(0) * 100;
        let cap = match a.cap {
            Some(c) if !(0..=cap_max).contains(&c) => {
                let message = format!(
                    "Cpu cap out of range, valid range is from 0 to {cap_max} \
                     for specified number of vcpus"
                );
                return XlOutput::fail(
                    libxl_log(
                        "error",
                        "libxl_sched.c:455:sched_credit2_domain_set",
                        Some(domid),
                        &message,
                    ) + failed,
                );
            }
            Some(c) => u16::try_from(c).unwrap_or(cap),
            None => cap,
        };
        match self.call(
            host,
            ToolstackOp::SchedDomParams {
                dom,
                params: DomParams::Credit2 { weight, cap },
            },
        ) {
            Ok(()) => XlOutput::ok(String::new()),
            Err(e) => XlOutput::fail(
                libxl_log(
                    "error",
                    "libxl_sched.c:465:sched_credit2_domain_set",
                    Some(domid),
                    &format!("Setting domain sched credit2: {}", strerror(errno_of(e))),
                ) + failed,
            ),
        }
    }

    pub(super) fn rtds_set(&mut self, host: u16, a: &RtdsArgs) -> XlOutput {
        let Some(arg) = a.domain.as_deref() else {
            return XlOutput::fail("Missing parameters.\n".to_string());
        };
        let domid = match xl::find_domain(self.hv(host), arg) {
            Ok(domid) => domid,
            Err(fail) => return fail,
        };
        let Some(dom) = u16::try_from(domid).ok().and_then(DomId::new) else {
            return XlOutput::fail(String::new());
        };
        let params: Vec<VcpuParams> = a
            .periods
            .iter()
            .zip(&a.budgets)
            .zip(&a.extratimes)
            .map(|((p, b), e)| VcpuParams {
                period_us: u32::try_from(*p).unwrap_or(0),
                budget_us: u32::try_from(*b).unwrap_or(0),
                extratime: *e,
            })
            .collect();
        let (vcpus, failed, location) = if a.all {
            (
                None,
                "libxl_vcpu_sched_params_set_all failed.\n",
                "libxl_sched.c:705:sched_rtds_vcpu_set_all",
            )
        } else {
            let ids: Vec<VcpuId> = a
                .vcpus
                .iter()
                .filter_map(|v| u32::try_from(*v).ok().and_then(VcpuId::new))
                .collect();
            (
                Some(ids),
                "libxl_vcpu_sched_params_set failed.\n",
                "libxl_sched.c:653:sched_rtds_vcpu_set",
            )
        };
        for (p, b) in a.periods.iter().zip(&a.budgets) {
            let message = if *p < 1 {
                format!("Invalid VCPU period of {p} (it should be >= 1)")
            } else if *b < 1 {
                format!("Invalid VCPU budget of {b} (it should be >= 1)")
            } else if b > p {
                format!("VCPU budget must be smaller than or equal to period, but {b} > {p}")
            } else {
                continue;
            };
            return XlOutput::fail(
                libxl_log(
                    "error",
                    "libxl_sched.c:477:sched_rtds_validate_params",
                    None,
                    &message,
                ) + failed,
            );
        }
        match self.call(host, ToolstackOp::SchedVcpuParams { dom, vcpus, params }) {
            Ok(()) => XlOutput::ok(String::new()),
            Err(ToolstackError::InvalidVcpu) => {
                let max = self
                    .hv(host)
                    .domain(dom)
                    .map_or(0, |d| d.vcpus.len())
                    .saturating_sub(1);
                let bad = a
                    .vcpus
                    .iter()
                    .find(|v| usize::try_from(**v).map_or(true, |i| i > max))
                    .copied()
                    .unwrap_or(0);
                let message = format!("Invalid VCPU {bad}: valid range is [0, {max}]");
                XlOutput::fail(
                    libxl_log(
                        "error",
                        "libxl_sched.c:627:sched_rtds_vcpu_set",
                        Some(domid),
                        &message,
                    ) + failed,
                )
            }
            Err(e) => XlOutput::fail(
                libxl_log(
                    "error",
                    location,
                    Some(domid),
                    &format!("Setting vcpu sched rtds: {}", strerror(errno_of(e))),
                ) + failed,
            ),
        }
    }
}

pub(super) fn credit2_query(hv: &Hypervisor, a: &Credit2Args) -> XlOutput {
    use crate::report::xl::pools as render;
    let pool = match a
        .pool
        .as_deref()
        .map(|p| find_pool(hv, p).map(|x| x.id).ok_or(p))
        .transpose()
    {
        Ok(pool) => pool,
        Err(p) => return XlOutput::fail(format!("unknown cpupool '{p}'\n")),
    };
    if a.schedparam {
        let Some(p) = hv.pool(pool.unwrap_or(PoolId(0))) else {
            return XlOutput::fail("unknown cpupool\n".to_string());
        };
        return match hv.pool_sched_params(p.id) {
            Some(PoolParams::Credit2 { .. }) => XlOutput::ok(render::credit2_pool_line(hv, p)),
            _ => XlOutput {
                stdout: render::credit2_pool_line(hv, p),
                stderr: libxl_log(
                    "error",
                    "libxl_sched.c:362:libxl_sched_credit2_params_get",
                    None,
                    "getting Credit2 scheduler parameters: Invalid argument",
                ) + "libxl_sched_credit2_params_get failed.\n",
                rc: 0,
            },
        };
    }
    match a.domain.as_deref() {
        None => {
            render::per_pool_listing(hv, SchedKind::Credit2, pool, render::CREDIT2_HEADER, &|d| {
                render::credit2_row(hv, d)
            })
        }
        Some(arg) => one_domain(hv, arg, render::CREDIT2_HEADER, &|d| {
            render::credit2_row(hv, d)
        }),
    }
}

pub(super) fn rtds_query(hv: &Hypervisor, a: &RtdsArgs) -> XlOutput {
    use crate::report::xl::pools as render;
    let ids: Option<Vec<VcpuId>> = (!a.all).then(|| {
        a.vcpus
            .iter()
            .filter_map(|v| u32::try_from(*v).ok().and_then(VcpuId::new))
            .collect()
    });
    match (a.domain.as_deref(), a.all, a.vcpus.is_empty()) {
        (None, true, _) => {
            render::per_pool_listing(hv, SchedKind::Rtds, None, render::RTDS_VCPU_HEADER, &|d| {
                render::rtds_vcpu_rows(hv, d, None)
            })
        }
        (None, false, _) => render::per_pool_listing(
            hv,
            SchedKind::Rtds,
            None,
            render::RTDS_DOMAIN_HEADER,
            &|d| render::rtds_domain_row(hv, d),
        ),
        (Some(arg), false, true) => one_domain(hv, arg, render::RTDS_DOMAIN_HEADER, &|d| {
            render::rtds_domain_row(hv, d)
        }),
        (Some(arg), _, _) => one_domain(hv, arg, render::RTDS_VCPU_HEADER, &|d| {
            render::rtds_vcpu_rows(hv, d, ids.as_deref())
        }),
    }
}

/// `find_domain`, then the header and one domain's row(s).
fn one_domain(
    hv: &Hypervisor,
    arg: &str,
    header: &str,
    row: &dyn Fn(&hypervisor_model::domain::Domain) -> Result<String, String>,
) -> XlOutput {
    let domid = match xl::find_domain(hv, arg) {
        Ok(domid) => domid,
        Err(fail) => return fail,
    };
    let d = u16::try_from(domid)
        .ok()
        .and_then(DomId::new)
        .and_then(|d| hv.domain(d));
    let result = d.map_or_else(
        || Err("libxl_domain_sched_params_get failed.\n".to_string()),
        row,
    );
    match result {
        Ok(text) => XlOutput::ok(format!("{header}{text}")),
        Err(message) => XlOutput {
            stdout: header.to_string(),
            stderr: message,
            rc: 1,
        },
    }
}
