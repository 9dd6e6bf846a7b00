//! The toolstack side of a run: `[[domain]]` creation, `[[at]]` xl commands, and what
//! happens when the core replies (domain created, operation finished, guest notified).
//!
//! Messages follow tools/xl/xl_vmcontrol.c, tools/xl/xl_utils.c (`find_domain`) and libxl's
//! log format (`libxl: error: <file>:<line>:<function>: Domain <id>:<message>`), with the
//! line numbers of Xen 4.17.5's sources.

use hypervisor_model::domain::ShutdownReason;
use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::DomId;
use hypervisor_model::sched::params::VcpuParams;
use hypervisor_model::toolstack::config::DomainConfig;
use hypervisor_model::toolstack::ops::{
    GuestNotice, JobId, ToolstackError, ToolstackOp, ToolstackReply,
};
use hypervisor_model::toolstack::xs_tree::disk_devid;

use super::messages::done_output;
use super::{SimEvent, World};
use crate::guest::modes::GuestMode;
use crate::report::xl::{self, XlHost, XlOutput};
use crate::scenario::model::{AtAction, FabricFault, WorkloadSpec};
use crate::xl::command::XlCommand;
use hypervisor_model::toolstack::xs_client::XsClientCmd;
use hypervisor_model::xenstore::client::ClientOutput;

/// One xl command of the run, with what it printed and its exit status.
#[derive(Debug, Clone)]
pub struct CommandRecord {
    /// When it started, ns.
    pub time_ns: u64,
    /// Host name.
    pub host: String,
    /// The command line (without `xl`).
    pub text: String,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status, once finished.
    pub rc: Option<i32>,
    /// `expect_rc` of the `[[at]]` entry.
    pub expect_rc: Option<i32>,
}

/// Who started a toolstack job.
#[derive(Debug, Clone)]
pub struct JobOrigin {
    /// Index into `World::commands`.
    pub command: usize,
    /// For creates: the domain name and its vCPUs' workloads.
    pub workloads: Option<(String, Vec<WorkloadSpec>)>,
    /// What the job is (for failure messages).
    pub kind: JobKind,
    /// The domain, once known.
    pub dom: Option<DomId>,
    /// For creates: the `pool=` name, if any.
    pub pool: Option<String>,
    /// For `[[domain]]` creates with `rtds`: set these on every vCPU once built, then unpause
    /// unless the domain was asked for paused.
    pub then_rtds: Option<(VcpuParams, bool)>,
}

impl JobOrigin {
    /// A job of `record` that acts on an existing domain.
    fn for_domain(command: usize, kind: JobKind, dom: DomId) -> JobOrigin {
        JobOrigin {
            command,
            workloads: None,
            kind,
            dom: Some(dom),
            pool: None,
            then_rtds: None,
        }
    }
}

/// How `xl create` leaves the domain: paused (`-p`), and what runs once it is built.
#[derive(Debug, Clone, Copy)]
struct CreateMode {
    paused: bool,
    then_rtds: Option<(VcpuParams, bool)>,
}

/// An `xl shutdown -w` waiting for one domain.
#[derive(Debug, Clone, Copy)]
pub struct Waiter {
    /// Host index.
    pub host: u16,
    /// The domain.
    pub dom: DomId,
    /// Index into `World::commands`.
    pub record: usize,
}

/// The operation behind a job, for xl's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `xl create`.
    Create,
    /// `xl destroy`.
    Destroy,
    /// `xl pause`.
    Pause,
    /// `xl unpause`.
    Unpause,
    /// `xl shutdown` / `xl reboot`.
    Shutdown,
    /// `xenstore-write` / `xenstore-rm`.
    Xenstore,
}

/// A xenstore client's output as a command's output (values may hold any byte).
pub(crate) fn client_output(out: &ClientOutput) -> XlOutput {
    XlOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: out.stderr.clone(),
        rc: out.exit_code,
    }
}

/// A 128-bit random UUID with the RFC 4122 version-4 bits set (`libxl_uuid_generate`).
fn random_uuid(stream: &mut crate::rng::Stream) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&stream.next_u64().to_le_bytes());
    uuid[8..].copy_from_slice(&stream.next_u64().to_le_bytes());
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

impl World<'_> {
    pub(crate) fn new_command(&mut self, host: u16, text: String, expect_rc: Option<i32>) -> usize {
        let host_name = self.hosts[usize::from(host)].name.clone();
        self.sinks.command(host, self.queue.now_ns(), &text);
        self.commands.push(CommandRecord {
            time_ns: self.queue.now_ns(),
            host: host_name,
            text,
            stdout: String::new(),
            stderr: String::new(),
            rc: None,
            expect_rc,
        });
        self.commands.len() - 1
    }

    fn start_job(&mut self, host: u16, origin: JobOrigin, op: ToolstackOp) {
        self.next_job += 1;
        let job = JobId(self.next_job);
        self.jobs.insert((host, job), origin);
        self.deliver(host, &CoreInput::Toolstack { job, op });
    }

    fn uuid_for(&mut self, host: u16) -> [u8; 16] {
        let name = format!(
            "toolstack.{}.uuid.{}",
            self.hosts[usize::from(host)].name,
            self.next_job + 1
        );
        random_uuid(&mut self.streams.stream(&name))
    }

    fn create(
        &mut self,
        host: u16,
        command: usize,
        config: &DomainConfig,
        path: &str,
        mode: CreateMode,
        workloads: Vec<WorkloadSpec>,
    ) {
        let CreateMode { paused, then_rtds } = mode;
        self.commands[command]
            .stderr
            .push_str(&format!("Parsing config from {path}\n"));
        let uuid = self.uuid_for(host);
        let origin = JobOrigin {
            command,
            workloads: Some((config.name.clone(), workloads)),
            kind: JobKind::Create,
            dom: None,
            pool: config.pool.clone(),
            then_rtds,
        };
        let op = ToolstackOp::Create {
            config: Box::new(config.clone()),
            uuid,
            paused,
        };
        self.start_job(host, origin, op);
    }

    /// A `[[domain]]` reaches its `start`: `xl create [-p] <config>`.
    pub(crate) fn start_domain(&mut self, index: usize) -> u16 {
        let spec = &self.scenario.domains[index];
        let host = u16::try_from(spec.host_index).expect("host index fits u16");
        // With rtds parameters, xl create -p; xl sched-rtds -d D -v all ...; xl unpause D.
        let paused = spec.paused || spec.rtds.is_some();
        let text = format!(
            "create{} {}",
            if paused { " -p" } else { "" },
            spec.config_path
        );
        let command = self.new_command(host, text, Some(0));
        let then_rtds = spec.rtds.map(|params| (params, !spec.paused));
        let (config, path, workloads) = (
            spec.config.clone(),
            spec.config_path.clone(),
            spec.vcpu_workloads.clone(),
        );
        let mode = CreateMode { paused, then_rtds };
        self.create(host, command, &config, &path, mode, workloads);
        host
    }

    /// Workloads of a domain created by name outside `[[domain]]` (timeline create, restart).
    fn workloads_by_name(&self, name: &str) -> Vec<WorkloadSpec> {
        self.scenario
            .domains
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.vcpu_workloads.clone())
            .unwrap_or_default()
    }

    /// The memory model of the `[[domain]]` called `name`, if it has one.
    fn memory_by_name(&self, name: &str) -> Option<crate::scenario::model::MemoryWorkload> {
        let spec = self.scenario.domains.iter().find(|d| d.name == name)?;
        spec.memory
    }

    /// An `[[at]]` entry runs.
    pub(crate) fn run_command(&mut self, index: usize) -> u16 {
        let entry = &self.scenario.timeline[index];
        let host = u16::try_from(entry.host_index).expect("host index fits u16");
        let action = entry.action.clone();
        let record = self.new_command(host, entry.text.clone(), entry.expect_rc);
        match action {
            AtAction::Xl(command) => self.xl(host, record, &command),
            AtAction::Xenstore(cmd) => self.xenstore(host, record, cmd),
            AtAction::DiskError {
                domain,
                vdev,
                count,
            } => self.disk_error(host, record, &domain, vdev, count),
            AtAction::CrashDomain { domain } => {
                self.shutdown_domain(host, record, &domain, ShutdownReason::Crash)
            }
            AtAction::RestartDomain { domain } => {
                self.shutdown_domain(host, record, &domain, ShutdownReason::Reboot)
            }
            AtAction::LostInterrupt {
                domain,
                port,
                count,
            } => self.lost_interrupt(host, record, &domain, port, count),
            AtAction::SpuriousTimer { pcpu } => self.spurious_timer(host, record, pcpu),
            AtAction::HostCrash { host: name } => self.host_crash(record, &name),
            AtAction::Fabric(fault) => {
                let fabric = self.net.fabric_mut();
                match fault {
                    FabricFault::Partition { a, b } => fabric.partition(&a, &b, true),
                    FabricFault::Heal { sides: None } => fabric.heal_all(),
                    FabricFault::Heal {
                        sides: Some((a, b)),
                    } => fabric.partition(&a, &b, false),
                    FabricFault::LinkLoss { a, b, loss_ppm } => fabric.set_loss(a, b, loss_ppm),
                }
                self.cut_crashed_links();
                self.commands[record].rc = Some(0);
            }
        }
        host
    }

    /// A xenstore-* client: a read runs as a query; a write or removal is a toolstack
    /// operation (traced), answered with the client's output.
    fn xenstore(&mut self, host: u16, record: usize, cmd: XsClientCmd) {
        if let Some(out) = self.hosts[usize::from(host)].hv.xs_query(&cmd) {
            self.output(record, client_output(&out));
            return;
        }
        let origin = JobOrigin {
            command: record,
            workloads: None,
            kind: JobKind::Xenstore,
            dom: None,
            pool: None,
            then_rtds: None,
        };
        self.start_job(host, origin, ToolstackOp::XsClient(cmd));
    }

    pub(crate) fn xl(&mut self, host: u16, record: usize, command: &XlCommand) {
        match command {
            XlCommand::Create {
                config_path,
                paused,
            } => {
                let Some(config) = self.scenario.create_configs.get(config_path).cloned() else {
                    let stderr = format!(
                        "Failed to read config file: {config_path}: No such file or directory\n"
                    );
                    self.output(record, XlOutput::fail(stderr));
                    return;
                };
                let workloads = self.workloads_by_name(&config.name);
                let mode = CreateMode {
                    paused: *paused,
                    then_rtds: None,
                };
                self.create(host, record, &config, config_path, mode, workloads);
            }
            XlCommand::Destroy(arg) => self.domain_op(host, record, arg, JobKind::Destroy),
            XlCommand::Pause(arg) => self.domain_op(host, record, arg, JobKind::Pause),
            XlCommand::Unpause(arg) => self.domain_op(host, record, arg, JobKind::Unpause),
            XlCommand::Shutdown {
                domain: Some(arg),
                wait,
            } => {
                let doms = self.shutdown(host, record, arg, ShutdownReason::Poweroff);
                self.wait_for(host, record, *wait, doms.into_iter().collect());
            }
            XlCommand::Shutdown { domain: None, wait } => {
                let doms = self.shutdown_all(host, record);
                self.wait_for(host, record, *wait, doms);
            }
            XlCommand::Reboot { domain } => {
                self.shutdown(host, record, domain, ShutdownReason::Reboot);
            }
            other if self.xl_sched(host, record, other) => {}
            other if self.xl_mem(host, record, other) => {}
            query => {
                let out = self.query(host, query, self.queue.now_ns());
                self.output(record, out);
            }
        }
    }

    /// Renders a read-only xl command on `host`'s state at `now_ns`.
    pub fn query(&mut self, host: u16, command: &XlCommand, now_ns: u64) -> XlOutput {
        let spec = &self.scenario.hosts[usize::from(host)];
        let h = &mut self.hosts[usize::from(host)];
        let xl_host = XlHost {
            hv: &h.hv,
            now_ns: i64::try_from(now_ns).unwrap_or(i64::MAX),
            hostname: &spec.hostname,
            release: &spec.dom0.release,
            version: &spec.dom0.version,
        };
        let out = match command {
            XlCommand::List {
                long,
                verbose,
                cpupool,
                numa,
                domains,
            } => {
                let options = xl::ListOptions {
                    long: *long,
                    verbose: *verbose,
                    cpupool: *cpupool,
                    numa: *numa,
                    claim: false,
                };
                xl::xl_list(&xl_host, options, domains)
            }
            XlCommand::Claims => xl::xl_claims(&xl_host),
            XlCommand::Info { numa, key } => xl::xl_info(&xl_host, *numa, key.as_deref()),
            XlCommand::Dmesg { clear } => xl::xl_dmesg(&xl_host, *clear),
            XlCommand::Console(args) => xl::xl_console(&xl_host, args),
            other => super::xl_sched::sched_query(&xl_host, other).unwrap_or_else(|| {
                XlOutput::fail(
                    "xensim: only list, info, dmesg and console are queries\n".to_string(),
                )
            }),
        };
        if let XlCommand::Dmesg { clear: true } = command {
            h.hv.clear_console();
        }
        out
    }

    pub(crate) fn output(&mut self, record: usize, out: XlOutput) {
        let r = &mut self.commands[record];
        r.stdout.push_str(&out.stdout);
        r.stderr.push_str(&out.stderr);
        r.rc = Some(out.rc);
    }

    /// `find_domain`; a numeric id that names no domain passes (libxl reports it later).
    fn resolve(&mut self, host: u16, record: usize, arg: &str) -> Option<Result<DomId, u32>> {
        match xl::find_domain(&self.hosts[usize::from(host)].hv, arg) {
            Ok(raw) => Some(u16::try_from(raw).ok().and_then(DomId::new).ok_or(raw)),
            Err(out) => {
                self.output(record, out);
                None
            }
        }
    }

    /// A numeric domid beyond the valid range: libxl's lookup fails as for a missing domain.
    fn no_such_domain(&mut self, record: usize, kind: JobKind, raw: u32) {
        let origin = JobOrigin {
            command: record,
            workloads: None,
            kind,
            dom: None,
            pool: None,
            then_rtds: None,
        };
        let mut out = done_output(&origin, Err(ToolstackError::NoSuchDomain));
        out.stderr = out.stderr.replace("Domain 0:", &format!("Domain {raw}:"));
        self.output(record, out);
    }

    fn domain_op(&mut self, host: u16, record: usize, arg: &str, kind: JobKind) {
        let Some(dom) = self.resolve_live(host, record, arg, kind) else {
            return;
        };
        if kind == JobKind::Destroy && dom == DomId::DOM0 {
            let stderr = "Not destroying domain 0; use -f to force.\n\
                          This can only be done when using a disaggregated hardware domain \
                          and toolstack.\n\n";
            self.output(record, XlOutput::fail(stderr.to_string()));
            return;
        }
        let op = match kind {
            JobKind::Destroy => ToolstackOp::Destroy { dom },
            JobKind::Pause => ToolstackOp::Pause { dom },
            _ => ToolstackOp::Unpause { dom },
        };
        self.start_job(host, JobOrigin::for_domain(record, kind, dom), op);
    }

    /// `find_domain`, then libxl's report for a numeric id that names no domain.
    fn resolve_live(
        &mut self,
        host: u16,
        record: usize,
        arg: &str,
        kind: JobKind,
    ) -> Option<DomId> {
        match self.resolve(host, record, arg)? {
            Ok(dom) => Some(dom),
            Err(raw) => {
                self.no_such_domain(record, kind, raw);
                None
            }
        }
    }

    /// `xl shutdown DOM` / `xl reboot DOM`.
    fn shutdown(
        &mut self,
        host: u16,
        record: usize,
        arg: &str,
        reason: ShutdownReason,
    ) -> Option<DomId> {
        let dom = self.resolve_live(host, record, arg, JobKind::Shutdown)?;
        self.request_shutdown(host, record, dom, reason);
        Some(dom)
    }

    /// `xl shutdown -a`: every domain but dom0.
    fn shutdown_all(&mut self, host: u16, record: usize) -> Vec<DomId> {
        let hv = &self.hosts[usize::from(host)].hv;
        let doms: Vec<DomId> = hv
            .domains()
            .map(|d| d.id)
            .filter(|d| *d != DomId::DOM0)
            .collect();
        for dom in doms.iter().copied() {
            self.request_shutdown(host, record, dom, ShutdownReason::Poweroff);
        }
        if self.commands[record].rc.is_none() {
            self.commands[record].rc = Some(0);
        }
        doms
    }

    /// What `shutdown_domain` / `reboot_domain` print, then the toolstack operation.
    fn request_shutdown(&mut self, host: u16, record: usize, dom: DomId, reason: ShutdownReason) {
        let verb = match reason {
            ShutdownReason::Reboot => "Rebooting",
            _ => "Shutting down",
        };
        let line = format!("{verb} domain {}\n", dom.raw());
        self.commands[record].stderr.push_str(&line);
        let origin = JobOrigin::for_domain(record, JobKind::Shutdown, dom);
        self.start_job(host, origin, ToolstackOp::Shutdown { dom, reason });
    }

    /// `xl shutdown -w`: wait until every domain the command asked to shut down has shut
    /// down or died (`wait_for_domain_deaths` with `wait_for_shutdown_or_death`).
    fn wait_for(&mut self, host: u16, record: usize, wait: bool, doms: Vec<DomId>) {
        if !wait || self.commands[record].rc.is_some_and(|rc| rc != 0) {
            return;
        }
        let line = format!("Waiting for {} domains\n", doms.len());
        self.commands[record].stderr.push_str(&line);
        self.commands[record].rc = None;
        for dom in doms {
            self.waiters.push(Waiter { host, dom, record });
        }
        self.check_waiters(host);
    }

    /// Reports the waiters on `host` whose domain has shut down or died.
    fn check_waiters(&mut self, host: u16) {
        let hv = &self.hosts[usize::from(host)].hv;
        let mut finished = Vec::new();
        self.waiters.retain(|w| {
            if w.host != host {
                return true;
            }
            let line = match hv.domain(w.dom) {
                Some(d) if d.dying == hypervisor_model::domain::Dying::Alive => {
                    match (d.is_shut_down, d.shutdown_reason) {
                        (true, Some(reason)) => format!(
                            "Domain {} has been shut down, reason code {}\n",
                            w.dom.raw(),
                            reason.code()
                        ),
                        _ => return true,
                    }
                }
                _ => format!("Domain {} has been destroyed\n", w.dom.raw()),
            };
            finished.push((w.record, line));
            false
        });
        for (record, line) in finished {
            self.commands[record].stderr.push_str(&line);
            if !self.waiters.iter().any(|w| w.record == record)
                && self.commands[record].rc.is_none()
            {
                self.commands[record].rc = Some(0);
            }
        }
    }

    /// Processes the replies and notices the core produced during the last input.
    pub(crate) fn after_input(&mut self, host: u16) {
        let now_ns = self.queue.now_ns();
        let h = &mut self.hosts[usize::from(host)];
        for (dom, notice) in h.sim.guests.refresh_memory(&h.hv, now_ns) {
            self.queue
                .push(now_ns, SimEvent::GuestMemFloor { host, dom, notice });
        }
        let h = &mut self.hosts[usize::from(host)];
        let replies = std::mem::take(&mut h.sim.replies);
        let mut notices = std::mem::take(&mut h.sim.notices);
        for (job, reply) in replies {
            self.reply(host, job, reply);
        }
        let now_ns = self.queue.now_ns();
        for (dom, notice) in notices.drain(..) {
            match notice {
                GuestNotice::ShutdownRequested(reason) => {
                    self.queue.push(
                        now_ns + self.shutdown_reaction_ns,
                        SimEvent::GuestShutdown { host, dom, reason },
                    );
                }
                GuestNotice::Destroyed => {
                    let guests = &mut self.hosts[usize::from(host)].sim.guests;
                    let jobs = guests.jobs(dom, now_ns);
                    let io_logs = guests.take_io_logs(dom);
                    let memory = guests.memory_stats(dom);
                    guests.forget_domain(dom);
                    self.hosts[usize::from(host)].sim.access.forget(dom);
                    self.sinks.domain_jobs(host, dom, jobs);
                    self.sinks.domain_io(host, dom, io_logs);
                    self.sinks.domain_memory(host, dom, memory);
                    self.net.detach_domain(host, dom);
                    let drops = self.net.take_drops(host, dom);
                    self.sinks.domain_net_drops(host, dom, drops);
                }
                GuestNotice::BlkDone { done, .. } => {
                    let guests = &mut self.hosts[usize::from(host)].sim.guests;
                    guests.io_done(dom, &done, now_ns, host, &mut self.queue);
                }
                GuestNotice::NetReceived { devid, packet } => {
                    self.net_received(host, dom, devid, packet);
                }
                GuestNotice::NetDropped { devid, reason } => {
                    self.net_ring_drop(host, dom, devid, reason);
                }
                GuestNotice::VifConnected { devid, mac } => self.net_vif_up(host, dom, devid, mac),
                GuestNotice::VifGone { devid } => self.net.detach_vif(host, dom, devid),
            }
        }
        // The emptied buffer goes back for the next input (no allocation per notice),
        // unless an input delivered meanwhile left notices of its own.
        let slot = &mut self.hosts[usize::from(host)].sim.notices;
        if slot.is_empty() {
            *slot = notices;
        }
        self.net_route(host);
        if !self.waiters.is_empty() {
            self.check_waiters(host);
        }
    }

    fn reply(&mut self, host: u16, job: JobId, reply: ToolstackReply) {
        match reply {
            ToolstackReply::XsOutput(out) => {
                if let Some(origin) = self.jobs.get(&(host, job)) {
                    let record = origin.command;
                    self.output(record, client_output(&out));
                }
            }
            ToolstackReply::Created { dom } => {
                let origin = self.jobs.get_mut(&(host, job));
                let (name, workloads) = match origin {
                    Some(origin) => {
                        origin.dom = Some(dom);
                        origin.workloads.clone().unwrap_or_default()
                    }
                    None => {
                        // The xl monitor restarted a domain: same name, same workloads.
                        let name = self.hosts[usize::from(host)]
                            .hv
                            .domain(dom)
                            .map(|d| d.name.clone())
                            .unwrap_or_default();
                        let workloads = self.workloads_by_name(&name);
                        (name, workloads)
                    }
                };
                let memory = self.memory_by_name(&name);
                let os = self.scenario.domains.iter().find(|d| d.name == name);
                let os = os.and_then(|d| d.os);
                let streams = self.streams;
                let h = &mut self.hosts[usize::from(host)];
                // Only a HAP guest's accesses go through the EPT.
                let accesses = memory.filter(|_| h.hv.memory().is_hap(dom));
                let now_ns = self.queue.now_ns();
                let stream = h
                    .sim
                    .access
                    .register(dom, &name, &streams, accesses, now_ns);
                if let Some(generation) = stream {
                    let tick = SimEvent::MemoryTick {
                        host,
                        dom,
                        generation,
                    };
                    self.queue.push(now_ns + super::ACCESS_TICK_NS, tick);
                }
                h.sim.guests.register_domain(dom, &name, workloads);
                h.sim.guests.register_memory(dom, memory);
                h.sim.guests.register_os(dom, os);
                if let Some(config) = h.hv.domain(dom).and_then(|d| d.config.as_ref()) {
                    h.sim.guests.set_mode(dom, GuestMode::of(config));
                }
                let vbds: Vec<(u32, String)> =
                    h.hv.domain(dom)
                        .and_then(|d| d.config.as_ref())
                        .map(|c| {
                            c.disks
                                .iter()
                                .filter_map(|k| Some((disk_devid(&k.vdev)?, k.target.clone())))
                                .collect()
                        })
                        .unwrap_or_default();
                h.sim.register_vbds(dom, &vbds);
                self.sinks
                    .domain_created(host, &self.hosts[usize::from(host)].hv, dom);
            }
            ToolstackReply::Done { result } if self.sync_job == Some((host, job)) => {
                self.sync_result = Some(result);
            }
            ToolstackReply::Done { result } => {
                let Some(origin) = self.jobs.remove(&(host, job)) else {
                    return;
                };
                let created = result.is_ok();
                let out = done_output(&origin, result);
                if let (true, Some((params, unpause)), Some(dom)) =
                    (created, origin.then_rtds, origin.dom)
                {
                    self.domain_rtds(host, dom, params, unpause);
                }
                let r = &mut self.commands[origin.command];
                r.stderr.push_str(&out.stderr);
                let waiting = self.waiters.iter().any(|w| w.record == origin.command);
                if out.rc != 0 || (r.rc.is_none() && !waiting) {
                    r.rc = Some(out.rc);
                }
            }
        }
    }
}
