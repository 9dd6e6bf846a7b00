//! Running xl's scheduler, cpupool and vCPU commands in a timeline: xl's own checks and
//! output, libxl's calls as toolstack operations (one per hypercall libxl makes, so the
//! trace holds what Xen saw), and libxl's log lines with 4.17.5's source locations.
//!
//! Follows tools/xl/xl_vcpu.c (`main_vcpupin`), tools/xl/xl_cpupool.c, tools/xl/xl_sched.c
//! and tools/libs/light/libxl_cpupool.c, libxl_sched.c. Each operation completes inside
//! its core input, so a command's result is known when `call` returns.
//!
//! # Invariants
//! - A command sets its record's exit status exactly once, here.
//!
//! xensim differs: xl.conf's global affinity masks are not modelled (all pCPUs), so only
//! an empty hard map trips "vcpu hard affinity map is empty".

mod params;

use hypervisor_model::cpumask::CpuMask;
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{DomId, PcpuId, PoolId, VcpuId};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::toolstack::ops::{JobId, ToolstackError, ToolstackOp};

use super::World;
use crate::report::xl::pools::find_pool;
use crate::report::xl::{self, XlOutput};
use crate::xl::command::{PoolCpusSpec, PoolCreateArgs, VcpuPinArgs, XlCommand};
use crate::xl::cpulist::{CpuList, ItemRange, ItemUnit};
use crate::xl::sched_command::strtol;

/// `libxl: <level>: <file:line:function>: [Domain N:]<message>`.
fn libxl_log(level: &str, location: &str, dom: Option<u32>, message: &str) -> String {
    let domain = dom.map_or_else(String::new, |d| format!("Domain {d}:"));
    format!("libxl: {level}: {location}: {domain}{message}\n")
}

fn strerror(errno: i32) -> &'static str {
    match errno {
        -1 => "Operation not permitted",
        -2 => "No such file or directory",
        -3 => "No such process",
        -16 => "Device or resource busy",
        -19 => "No such device",
        -28 => "No space left on device",
        -95 => "Operation not supported",
        -99 => "Cannot assign requested address",
        _ => "Invalid argument",
    }
}

fn errno_of(e: ToolstackError) -> i32 {
    match e {
        ToolstackError::Pool(p) | ToolstackError::PoolCpu { error: p, .. } => p.errno(),
        ToolstackError::Sched(s) => s.errno(),
        ToolstackError::NoSuchDomain => -3,
        _ => -22,
    }
}

/// xl's `parse_cpurange` against this host: items left to right; CPUs past the host are
/// dropped (libxl's bitmap has no room for them).
pub(crate) fn resolve_cpurange(hv: &Hypervisor, text: &str) -> CpuMask {
    let nr_cpus = hv.host().nr_cpus();
    let mut mask = CpuMask::empty(nr_cpus);
    let Ok(list) = CpuList::parse(text) else {
        return mask;
    };
    for item in &list.items {
        let mut selected = CpuMask::empty(nr_cpus);
        for (index, topo) in hv.host().cpus.iter().enumerate() {
            let id = match item.unit {
                ItemUnit::Cpus => u32::try_from(index).unwrap_or(u32::MAX),
                ItemUnit::Nodes => topo.node,
            };
            let hit = match item.range {
                ItemRange::All => true,
                ItemRange::Range { lo, hi } => (lo..=hi).contains(&id),
            };
            if let (true, Some(cpu)) = (hit, u32::try_from(index).ok().and_then(PcpuId::new)) {
                selected.set(cpu);
            }
        }
        mask = if item.negate {
            mask.and_not(&selected)
        } else {
            mask.or(&selected)
        };
    }
    mask
}

impl World<'_> {
    /// Runs one toolstack operation to its end on `host` and returns its result.
    pub(crate) fn call(&mut self, host: u16, op: ToolstackOp) -> Result<(), ToolstackError> {
        self.next_job += 1;
        let job = JobId(self.next_job);
        self.sync_job = Some((host, job));
        self.sync_result = None;
        self.deliver(host, &CoreInput::Toolstack { job, op });
        self.sync_job = None;
        self.sync_result
            .take()
            .unwrap_or(Err(ToolstackError::NotPermitted))
    }

    fn hv(&self, host: u16) -> &Hypervisor {
        &self.hosts[usize::from(host)].hv
    }

    /// The state-changing scheduler, cpupool and vCPU commands; false for other commands.
    pub(crate) fn xl_sched(&mut self, host: u16, record: usize, command: &XlCommand) -> bool {
        let out = match command {
            XlCommand::VcpuPin(a) => self.vcpu_pin(host, a),
            XlCommand::CpupoolCreate(a) => self.pool_create(host, a),
            XlCommand::CpupoolDestroy { pool } => self.pool_destroy(host, pool),
            XlCommand::CpupoolCpuAdd { pool, cpus } => self.pool_cpus(host, pool, cpus, true),
            XlCommand::CpupoolCpuRemove { pool, cpus } => self.pool_cpus(host, pool, cpus, false),
            XlCommand::CpupoolMigrate { domain, pool } => self.pool_migrate(host, domain, pool),
            XlCommand::SchedCredit2(a) if !command.is_query() => self.credit2_set(host, a),
            XlCommand::SchedRtds(a) if !command.is_query() => self.rtds_set(host, a),
            _ => return false,
        };
        self.output(record, out);
        true
    }

    fn vcpu_pin(&mut self, host: u16, a: &VcpuPinArgs) -> XlOutput {
        let domid = match xl::find_domain(self.hv(host), &a.domain) {
            Ok(domid) => domid,
            Err(fail) => return fail,
        };
        let Some(dom) = u16::try_from(domid)
            .ok()
            .and_then(DomId::new)
            .filter(|d| self.hv(host).domain(*d).is_some())
        else {
            return XlOutput::fail("Could not get domain info\n".to_string());
        };
        let hard = a
            .hard
            .as_deref()
            .map(|t| resolve_cpurange(self.hv(host), t));
        let soft = a
            .soft
            .as_deref()
            .map(|t| resolve_cpurange(self.hv(host), t));
        if hard.as_ref().is_some_and(CpuMask::is_empty) {
            return XlOutput::fail("vcpu hard affinity map is empty\n".to_string());
        }
        let setting = |v: u32| {
            libxl_log(
                "error",
                "libxl_sched.c:62:libxl__set_vcpuaffinity",
                Some(domid),
                &format!("Setting vcpu affinity: {}", strerror(-22)),
            ) + &if a.vcpu.is_none() {
                libxl_log(
                    "warning",
                    "libxl_sched.c:124:libxl_set_vcpuaffinity_all",
                    Some(domid),
                    &format!("Failed to set affinity for {v}"),
                )
            } else {
                String::new()
            }
        };
        let vcpu = a.vcpu.and_then(VcpuId::new);
        let op = ToolstackOp::VcpuAffinity {
            dom,
            vcpu,
            hard,
            soft,
        };
        match (self.call(host, op), a.vcpu) {
            (Ok(()), _) => XlOutput::ok(String::new()),
            (Err(_), Some(v)) => {
                XlOutput::fail(setting(v) + &format!("Could not set affinity for vcpu `{v}'.\n"))
            }
            (Err(_), None) => {
                let count = self.hv(host).domain(dom).map_or(0, |d| d.vcpus.len());
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                let mut stderr: String = (0..count).map(setting).collect();
                stderr.push_str("Could not set affinity.\n");
                XlOutput {
                    stdout: String::new(),
                    stderr,
                    rc: 0,
                }
            }
        }
    }

    fn pool_create(&mut self, host: u16, a: &PoolCreateArgs) -> XlOutput {
        let hv = self.hv(host);
        let Some(name) = a.name.clone() else {
            return XlOutput::fail("Missing cpupool name!\n".to_string());
        };
        if hv.pools().any(|p| p.name == name) {
            return XlOutput::fail(format!("Pool name \"{name}\" already exists\n"));
        }
        let kind = match a.sched.as_deref() {
            None => hv.pool(PoolId(0)).map_or(SchedKind::Null, |p| p.kind),
            Some(text) => match SchedKind::from_opt_name(text) {
                Some(kind) => kind,
                None => return XlOutput::fail("Unknown scheduler\n".to_string()),
            },
        };
        let free = hv.free_cpus();
        let nr_cpus = hv.host().nr_cpus();
        let mut cpus = CpuMask::empty(nr_cpus);
        if let Some(nodes) = &a.nodes {
            for node in nodes {
                let n = strtol(node);
                for (index, topo) in hv.host().cpus.iter().enumerate() {
                    let cpu = u32::try_from(index).ok().and_then(PcpuId::new);
                    if let (true, Some(cpu)) = (i64::from(topo.node) == n, cpu) {
                        if free.test(cpu) {
                            cpus.set(cpu);
                        }
                    }
                }
            }
            if cpus.is_empty() {
                return XlOutput::fail("no free cpu found\n".to_string());
            }
        } else if let Some(spec) = &a.cpus {
            let wanted: Vec<i64> = match spec {
                PoolCpusSpec::List(items) => items.iter().map(|i| strtol(i)).collect(),
                PoolCpusSpec::Range(text) => resolve_cpurange(hv, text)
                    .iter()
                    .map(|c| i64::from(c.raw()))
                    .collect(),
            };
            for i in wanted {
                let cpu = u32::try_from(i)
                    .ok()
                    .and_then(PcpuId::new)
                    .filter(|c| free.test(*c));
                match cpu {
                    Some(cpu) => cpus.set(cpu),
                    None => return XlOutput::fail(format!("cpu {i} illegal or not free\n")),
                }
            }
        }
        let stdout = format!(
            "Using config file \"command line\"\ncpupool name:   {name}\n\
             scheduler:      {}\nnumber of cpus: {}\n",
            kind.opt_name(),
            cpus.weight()
        );
        if a.dry_run {
            return XlOutput::ok(stdout);
        }
        match self.call(
            host,
            ToolstackOp::CpupoolCreate {
                name,
                sched: kind,
                cpus,
            },
        ) {
            Ok(()) => XlOutput::ok(stdout),
            Err(e) => {
                let line = match e {
                    ToolstackError::PoolCpu { .. } => libxl_log(
                        "error",
                        "libxl_cpupool.c:167:libxl_cpupool_create",
                        None,
                        "Error moving cpu to cpupool",
                    ),
                    _ => libxl_log(
                        "error",
                        "libxl_cpupool.c:157:libxl_cpupool_create",
                        None,
                        "Could not create cpupool",
                    ),
                };
                XlOutput {
                    stdout,
                    stderr: line + "error on creating cpupool\n",
                    rc: 1,
                }
            }
        }
    }

    fn pool_id(&self, host: u16, arg: &str) -> Result<PoolId, XlOutput> {
        find_pool(self.hv(host), arg)
            .map(|p| p.id)
            .ok_or_else(|| XlOutput::fail(format!("unknown cpupool '{arg}'\n")))
    }

    fn pool_destroy(&mut self, host: u16, arg: &str) -> XlOutput {
        let pool = match self.pool_id(host, arg) {
            Ok(pool) => pool,
            Err(fail) => return fail,
        };
        let fail = format!("Can't destroy cpupool '{arg}'\n");
        match self.call(host, ToolstackOp::CpupoolDestroy { pool }) {
            Ok(()) => XlOutput::ok(String::new()),
            Err(ToolstackError::PoolCpu { .. }) => XlOutput::fail(
                libxl_log(
                    "error",
                    "libxl_cpupool.c:219:libxl_cpupool_destroy",
                    None,
                    "Error removing cpu from cpupool",
                ) + &fail,
            ),
            Err(_) => XlOutput::fail(fail),
        }
    }

    fn pool_cpus(&mut self, host: u16, arg: &str, text: &str, add: bool) -> XlOutput {
        let cpus = resolve_cpurange(self.hv(host), text);
        let pool = match self.pool_id(host, arg) {
            Ok(pool) => pool,
            Err(fail) => return fail,
        };
        let nr_cpus = self.hv(host).host().nr_cpus();
        let mut stderr = String::new();
        for cpu in cpus.iter() {
            let single = CpuMask::single(nr_cpus, cpu);
            let (op, location, verb) = if add {
                (
                    ToolstackOp::CpupoolCpuAdd { pool, cpus: single },
                    "libxl_cpupool.c:302:libxl_cpupool_cpuadd",
                    "Error moving cpu {} to cpupool",
                )
            } else {
                (
                    ToolstackOp::CpupoolCpuRemove { pool, cpus: single },
                    "libxl_cpupool.c:365:libxl_cpupool_cpuremove",
                    "Error removing cpu {} from cpupool",
                )
            };
            if let Err(e) = self.call(host, op) {
                let message = format!(
                    "{}: {}",
                    verb.replace("{}", &cpu.raw().to_string()),
                    strerror(errno_of(e))
                );
                stderr.push_str(&libxl_log("error", location, None, &message));
            }
        }
        if !stderr.is_empty() {
            if add {
                stderr.push_str(&format!("some cpus may not have been added to {arg}\n"));
            } else {
                stderr.push_str(&format!(
                    "Some cpus may have not or only partially been removed from '{arg}'.\n"
                ));
                stderr.push_str(&format!(
                    "If a cpu can't be added to another cpupool, \
                     add it to '{arg}' again and retry.\n"
                ));
            }
        }
        XlOutput {
            stdout: String::new(),
            stderr,
            rc: 0,
        }
    }

    fn pool_migrate(&mut self, host: u16, domain: &str, arg: &str) -> XlOutput {
        let hv = self.hv(host);
        let dom = if domain.bytes().all(|b| b.is_ascii_digit()) && !domain.is_empty() {
            u16::try_from(strtol(domain))
                .ok()
                .and_then(DomId::new)
                .filter(|d| hv.domain(*d).is_some_and(xl_alive))
        } else {
            hv.domains()
                .find(|d| d.name == domain && xl_alive(d))
                .map(|d| d.id)
        };
        let Some(dom) = dom else {
            return XlOutput::fail(format!("unknown domain '{domain}'\n"));
        };
        let pool = match self.pool_id(host, arg) {
            Ok(pool) => pool,
            Err(fail) => return fail,
        };
        match self.call(host, ToolstackOp::CpupoolMigrate { dom, pool }) {
            Ok(()) => XlOutput::ok(String::new()),
            Err(_) => XlOutput::fail(libxl_log(
                "error",
                "libxl_cpupool.c:437:libxl_cpupool_movedomain",
                Some(u32::from(dom.raw())),
                "Error moving domain to cpupool",
            )),
        }
    }
}

fn xl_alive(d: &hypervisor_model::domain::Domain) -> bool {
    d.dying == hypervisor_model::domain::Dying::Alive
}

/// The query forms of the commands of this file (`vcpu-list`, `cpupool-list`, the
/// `sched-*` listings); `None` for other commands.
pub(crate) fn sched_query(host: &xl::XlHost<'_>, command: &XlCommand) -> Option<XlOutput> {
    use crate::report::xl::pools as render;
    let hv = host.hv;
    Some(match command {
        XlCommand::VcpuList { domains } => render::xl_vcpu_list(host, domains),
        XlCommand::CpupoolList { cpus, pool } => {
            render::xl_cpupool_list(hv, *cpus, pool.as_deref())
        }
        XlCommand::SchedCredit2(a) => params::credit2_query(hv, a),
        XlCommand::SchedRtds(a) => params::rtds_query(hv, a),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::strerror;

    #[test]
    fn strerror_names_cpupool_errnos() {
        assert_eq!(strerror(-16), "Device or resource busy");
        assert_eq!(strerror(-99), "Cannot assign requested address");
    }
}
