//! The hypervisor: one host's Xen, driven one input at a time.
//!
//! [`Hypervisor::boot`] builds the host as `__start_xen` does (pools, dom0, console
//! banner); [`Hypervisor::handle`] takes one [`CoreInput`] and answers through the
//! [`Platform`]. The scheduling glue (calling a pool's scheduler, `schedule`, wake, sleep,
//! pause) is in `sched_glue.rs`, the pool table in `pool_table.rs`, toolstack jobs in
//! `toolstack/jobs.rs`, the invariant checker in `check.rs`, the read-only views (domains,
//! pools, memory, console) in `views.rs`.
//!
//! Follows xen/common/sched/core.c (`schedule`, `vcpu_wake`, `vcpu_sleep_nosync`),
//! xen/arch/x86/setup.c (boot order) and xen/common/domain.c.
//!
//! # Invariants
//! - `curr[cpu] == Some(v)` iff `v.running_on == Some(cpu)`.
//! - Every pCPU is in at most one pool; `cpu_pool` and the pools' masks agree.
//! - Pools are sorted by id (`pool_table.rs`); ids may have gaps once a pool is destroyed
//!   (`cpupool.rs`).

mod affinity;
mod banner;
pub mod blk_glue;
pub mod boot;
mod check;
mod check_teardown;
pub mod console_glue;
mod cpupool;
mod driver_tasks;
mod drv_glue;
mod drv_net;
mod emunic;
mod emunic_port;
mod ept_glue;
pub mod ioreq;
pub mod logdirty_glue;
mod lost_irq;
mod memory_op;
mod net_conn;
pub mod net_glue;
mod net_xenbus;
pub mod npf;
mod pool_table;
#[cfg(test)]
mod proptests;
mod sched_glue;
mod sched_params;
mod xenbus_drive;
mod xenbus_glue;
mod xenbus_watch;
pub(crate) use xenbus_watch::XenbusWait;
mod xenbus_xs;
pub mod xenstored;
mod xs;
pub mod xs_ring;
pub mod xs_tool;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::console::Console;
use crate::cpumask::CpuMask;
use crate::domain::vcpu::Vcpu;
use crate::domain::{Domain, DomainTable, Dying};
use crate::event::CoreInput;
use crate::evtchn::EventChannels;
use crate::grant::GrantTables;
use crate::ids::{DomId, DriverWorkId, PcpuId, PoolId, VcpuId, VcpuRef, XsConnId, XsWorkId};
use crate::platform::Platform;
use crate::sched::params::{SchedInit, SchedOpts};
use crate::time::STime;
use crate::toolstack::jobs::Job;
use crate::toolstack::ops::JobId;
use crate::trace::TraceEvent;
use crate::xenstore::{XenStore, XsConfig};
use boot::{BootConfig, CoreCosts, HostInfo, XenBuild};

/// Why the core refused an input (the platform sent something impossible).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InputError {
    /// The vCPU does not exist (its domain is gone, or the index is too high).
    UnknownVcpu(VcpuRef),
    /// The vCPU must be running to block or yield.
    VcpuNotRunning(VcpuRef),
    /// The pCPU is not on this host.
    UnknownPcpu(PcpuId),
    /// The domain does not exist.
    UnknownDomain(DomId),
    /// The pool does not exist.
    UnknownPool(PoolId),
    /// No such toolstack job is waiting for a continuation.
    UnknownJob(JobId),
    /// A job id was used twice.
    DuplicateJob(JobId),
    /// No such xenstored work item is the oldest unfinished one.
    UnknownXsWork(XsWorkId),
    /// No such driver reaction is pending.
    UnknownDriverWork(DriverWorkId),
    /// No such blkback work item is the oldest unfinished one.
    UnknownBackWork(crate::ids::BackWorkId),
    /// The port is not bound in the domain's event-channel table.
    UnboundPort(DomId, u32),
}

/// One host's hypervisor state.
#[derive(Debug)]
pub struct Hypervisor {
    pub(crate) host: HostInfo,
    pub(crate) xen: XenBuild,
    pub(crate) costs: CoreCosts,
    pub(crate) sched_opts: SchedOpts,
    pub(crate) domains: DomainTable,
    /// Pools by id (ids have gaps after `cpupool-destroy`).
    pub(crate) pools: pool_table::PoolTable,
    /// Pool of each pCPU (`None` = free pCPU).
    pub(crate) cpu_pool: Vec<Option<PoolId>>,
    /// vCPU running on each pCPU (`None` = idle).
    pub(crate) curr: Vec<Option<VcpuRef>>,
    /// Armed scheduler timer of each pCPU.
    pub(crate) timer: Vec<Option<STime>>,
    /// `SCHEDULE_SOFTIRQ` raised and not yet handled, per pCPU.
    pub(crate) softirq_pending: Vec<bool>,
    pub(crate) console: Console,
    /// xenconsoled in dom0 and every guest's console ring.
    pub(crate) xenconsoled: crate::io::console::Xenconsoled,
    /// Machine memory: heaps, frame owners, P2Ms, M2P, claims.
    pub(crate) memory: crate::memory::Memory,
    /// xl.conf `claim_mode`: the builder claims a domain's memory before populating it.
    pub(crate) claim_mode: bool,
    /// Idle-loop scrubbing earned and not yet spent, pages, and when it was last brought
    /// up to date (`toolstack/populate.rs`).
    pub(crate) scrub_credit: (u64, STime),
    /// Each guest's balloon driver: ballooned GFNs, floor, failed rounds.
    pub(crate) balloons: BTreeMap<DomId, crate::toolstack::mem_ops::BalloonDriver>,
    pub(crate) jobs: BTreeMap<JobId, Job>,
    /// libxl's recently destroyed domids and when they were destroyed.
    pub(crate) recent_domids: Vec<(DomId, STime)>,
    /// Next id for jobs the core starts itself (xl's per-domain monitor).
    pub(crate) next_internal_job: u32,
    pub(crate) tickles: Vec<PcpuId>,
    pub(crate) sched_events: Vec<TraceEvent>,
    /// xenstored's state.
    pub(crate) xenstore: XenStore,
    /// Open XenStore socket clients: platform client number → connection.
    pub(crate) xs_clients: BTreeMap<u32, XsConnId>,
    /// The toolstack's own socket connection (libxl and the xenstore-* clients in dom0).
    pub(crate) xs_tool: XsConnId,
    /// Every domain's event channels.
    pub(crate) evtchn: EventChannels,
    /// Every domain's grant table.
    pub(crate) grants: GrantTables,
    /// Grant limits guests are created with (the host's xl.conf).
    pub(crate) grant_limits: xs_tool::GrantLimits,
    /// What the domain builder chose for each built domain (ports, ring frames).
    pub(crate) build_states: BTreeMap<DomId, crate::toolstack::xs_tree::BuildState>,
    /// Device directories the toolstack wrote, per domain.
    pub(crate) devices: BTreeMap<DomId, Vec<crate::toolstack::xs_tree::DeviceAdd>>,
    /// The vif and vbd ends the split drivers hold, per frontend domain.
    pub(crate) xenbus: BTreeMap<DomId, Vec<crate::io::handshake::DeviceConn>>,
    /// dom0's store channel: its kernel's port and xenstored's (a loopback pair).
    pub(crate) dom0_store: Option<(crate::ids::EvtchnPort, crate::ids::EvtchnPort)>,
    /// The guest end of each domain's XenStore ring (its kernel's xenbus).
    pub(crate) xs_guests: BTreeMap<DomId, xs_ring::GuestXenbus>,
    /// Store-channel notifications the ring ends made, delivered at the end of the input.
    pub(crate) xs_notifies: Vec<crate::evtchn::Notify>,
    /// When each kernel's xenwatch thread finishes its last scheduled reaction.
    pub(crate) xenwatch_busy: BTreeMap<DomId, STime>,
    /// Pending driver reactions to watch events (`xenbus_watch.rs`).
    pub(crate) driver_tasks: driver_tasks::DriverTasks,
    /// Next driver reaction id.
    pub(crate) next_driver_work: u32,
    /// Create and destroy jobs waiting for their domain's XenBus devices to settle.
    pub(crate) xenbus_waiters: BTreeMap<JobId, (DomId, xenbus_watch::XenbusWait)>,
    /// Creates waiting out `LIBXL_INIT_TIMEOUT` for a backend that will never come
    /// (`drv_glue.rs`), with the error they end in.
    pub(crate) create_stuck: BTreeMap<JobId, crate::toolstack::ops::ToolstackError>,
    /// Bumped by every change a waiter's test reads besides the driver reactions and
    /// xenstored's ring counts: device ends and their states, domain liveness, new waiters.
    pub(crate) xenbus_epoch: u64,
    /// The waiters' fingerprint at their last scan, when none of them held.
    pub(crate) xenbus_scanned: Option<xenbus_watch::WaitFingerprint>,
    /// Driver state writes not yet traced (traced at the end of the input).
    pub(crate) xenbus_traces: Vec<TraceEvent>,
    /// xenstored's CPU work in dom0 (`xenstored.rs`).
    pub(crate) xsd: xenstored::XsActor,
    /// The vbd data paths (`blk_glue.rs`).
    pub(crate) blk: blk_glue::BlkState,
    /// Device models and their ioreq work (`ioreq.rs`).
    pub(crate) ioreq: ioreq::IoreqState,
    /// xenconsoled's batches queued on dom0 (`console_glue.rs`).
    pub(crate) console_work: alloc::collections::BTreeSet<crate::ids::BackWorkId>,
    /// Next xenconsoled batch id.
    pub(crate) console_next_work: u64,
    /// The vif data paths (`net_glue.rs`).
    pub(crate) net: net_glue::NetState,
    /// Notifications still to lose per (domain, port): the `lost-interrupt` fault
    /// (`blk_glue.rs`, `Hypervisor::ring_notify`). Only bound ports of live domains have
    /// an entry, and `kill_io` drops the domain's.
    pub(crate) lost_irqs: BTreeMap<(DomId, crate::ids::EvtchnPort), u32>,
    /// The end-of-input work ([`Hypervisor::end_of_input`]) is known to find nothing: set
    /// by an end of input that leaves nothing behind, cleared by every input but the
    /// scheduler's own and by the code that queues such work where the end of input
    /// cannot see it (`blk_connect`, `xs_query`). The scheduler's inputs queue none: they
    /// skip the end of input while it is set.
    pub(crate) end_idle: bool,
}

/// Internal job ids have the top bit set, so they never collide with the platform's.
pub const INTERNAL_JOB_BIT: u32 = 1 << 31;

impl Hypervisor {
    /// Boots a host: pools, dom0 (unpaused, as `init_done` does), and the console banner.
    pub fn boot<P: Platform + ?Sized>(config: BootConfig, p: &mut P) -> Hypervisor {
        let nr_cpus = config.host.nr_cpus();
        let slots = usize::try_from(nr_cpus).unwrap_or(0);
        let xen_pages = xen_reserved_pages(config.host.total_pages());
        let mut hv = Hypervisor {
            console: Console::new(config.xen.conring_bytes),
            xenconsoled: crate::io::console::Xenconsoled::new(),
            memory: crate::memory::Memory::new(&config.host.node_memory_pages, xen_pages),
            claim_mode: config.claim_mode,
            balloons: BTreeMap::new(),
            scrub_credit: (0, STime::ZERO),
            host: config.host.clone(),
            xen: config.xen.clone(),
            costs: config.costs,
            sched_opts: config.sched_opts,
            domains: DomainTable::new(),
            pools: pool_table::PoolTable::default(),
            cpu_pool: alloc::vec![None; slots],
            curr: alloc::vec![None; slots],
            timer: alloc::vec![None; slots],
            softirq_pending: alloc::vec![false; slots],
            jobs: BTreeMap::new(),
            recent_domids: Vec::new(),
            next_internal_job: 0,
            tickles: Vec::new(),
            sched_events: Vec::new(),
            xenstore: XenStore::new(XsConfig::default()),
            xs_clients: BTreeMap::new(),
            xs_tool: XsConnId(0),
            evtchn: EventChannels::new(),
            grants: GrantTables::new(),
            grant_limits: config.grant_limits,
            build_states: BTreeMap::new(),
            devices: BTreeMap::new(),
            xenbus: BTreeMap::new(),
            dom0_store: None,
            xs_guests: BTreeMap::new(),
            xs_notifies: Vec::new(),
            lost_irqs: BTreeMap::new(),
            xenwatch_busy: BTreeMap::new(),
            driver_tasks: driver_tasks::DriverTasks::default(),
            next_driver_work: 0,
            xenbus_waiters: BTreeMap::new(),
            create_stuck: BTreeMap::new(),
            xenbus_epoch: 0,
            xenbus_scanned: None,
            xenbus_traces: Vec::new(),
            xsd: xenstored::XsActor::default(),
            blk: blk_glue::BlkState::default(),
            ioreq: ioreq::IoreqState::default(),
            console_work: alloc::collections::BTreeSet::new(),
            console_next_work: 0,
            net: net_glue::NetState::default(),
            end_idle: false,
        };
        hv.xs_tool = hv.xenstore.connect_socket();
        hv.boot_banner(p, config.pool0_sched);
        hv.create_pools(p, &config);
        hv.build_dom0(p, &config);
        let pool_ids: Vec<u32> = hv.pools.iter().map(|pool| pool.id.0).collect();
        let dom0_kib = hv.domains.get(DomId::DOM0).map_or(0, |d| d.tot_pages * 4);
        hv.boot_dom0_io(&pool_ids, dom0_kib);
        hv.xenbus_boot_watch();
        banner::boot_tail(&mut hv, p, config.dom0.guest_type);
        hv.xsd_boot_done();
        hv.ept_flush(p);
        hv
    }

    fn create_pools<P: Platform + ?Sized>(&mut self, p: &mut P, config: &BootConfig) {
        let nr_cpus = self.host.nr_cpus();
        let mut pool0_cpus = CpuMask::full(nr_cpus).and_not(&config.free_cpus);
        for extra in &config.pools {
            pool0_cpus = pool0_cpus.and_not(&extra.cpus);
        }
        assert!(
            pool0_cpus.test(PcpuId::new(0).expect("cpu 0")),
            "CPU 0 must stay in Pool-0"
        );
        self.add_pool(p, String::from("Pool-0"), config.pool0_sched, &pool0_cpus);
        for extra in &config.pools {
            banner::sched_init(self, p, extra.sched);
            self.add_pool(p, extra.name.clone(), extra.sched, &extra.cpus);
        }
    }

    /// What a new scheduler instance of this host is created with.
    pub(crate) fn sched_init(&self) -> SchedInit<'_> {
        SchedInit {
            nr_cpus: self.host.nr_cpus(),
            topo: &self.host.cpus,
            opts: &self.sched_opts,
        }
    }

    fn add_pool<P: Platform + ?Sized>(
        &mut self,
        p: &mut P,
        name: String,
        kind: crate::sched::SchedKind,
        cpus: &CpuMask,
    ) {
        let id = self
            .insert_pool(name, kind)
            .expect("boot pools fit in 2 * nr_cpus");
        for cpu in cpus.iter() {
            assert!(self.cpu_pool[cpu.index()].is_none(), "{cpu:?} in two pools");
            self.assign_cpu(id, cpu, p);
        }
    }

    /// Handles one input. Errors mean the platform sent an input that cannot apply (a
    /// vCPU of a destroyed domain, an unknown job); the state is unchanged then.
    ///
    /// The scheduler's own inputs (timer, softirq, block, wake: most inputs of a run) are
    /// dispatched here, inline at the platform's call; every other input goes through the
    /// out-of-line [`Hypervisor::handle_other`]. The scheduler's inputs queue no
    /// end-of-input work (xenstored, rings, XenBus waiters, vbds, vifs, EPT): after one,
    /// the end of input runs only if the input before left something (`end_idle`), where
    /// its eight tests cost about 25 instructions per input.
    #[inline]
    pub fn handle<P: Platform + ?Sized>(
        &mut self,
        input: &CoreInput,
        p: &mut P,
    ) -> Result<(), InputError> {
        // The incremental memory checker looks at what this input changes.
        self.memory.clear_journal();
        match input {
            CoreInput::TimerExpired { pcpu } => {
                self.check_pcpu(*pcpu)?;
                self.timer[pcpu.index()] = None;
                self.schedule(*pcpu, p);
            }
            CoreInput::Softirq { pcpu } => {
                self.check_pcpu(*pcpu)?;
                self.softirq_pending[pcpu.index()] = false;
                self.schedule(*pcpu, p);
            }
            CoreInput::VcpuBlock { vcpu } => self.vcpu_block(*vcpu, p)?,
            CoreInput::VcpuWake { vcpu } => self.vcpu_wake_event(*vcpu, p)?,
            _ => return self.handle_other(input, p),
        }
        if self.end_idle {
            debug_assert!(
                self.end_of_input_idle(),
                "a scheduler input left work for the end of input"
            );
        } else {
            self.end_of_input(p);
        }
        Ok(())
    }

    /// [`Hypervisor::handle`] of every input but the scheduler's own, and its end of input.
    /// A refused input skips the end of input (what an earlier input left waits for the
    /// next one), as it did when `handle` ran it.
    #[inline(never)]
    fn handle_other<P: Platform + ?Sized>(
        &mut self,
        input: &CoreInput,
        p: &mut P,
    ) -> Result<(), InputError> {
        self.end_idle = false;
        self.handle_other_input(input, p)?;
        self.end_of_input(p);
        Ok(())
    }

    /// Applies an input of [`Hypervisor::handle_other`].
    #[inline]
    fn handle_other_input<P: Platform + ?Sized>(
        &mut self,
        input: &CoreInput,
        p: &mut P,
    ) -> Result<(), InputError> {
        match input {
            CoreInput::TimerExpired { .. }
            | CoreInput::Softirq { .. }
            | CoreInput::VcpuBlock { .. }
            | CoreInput::VcpuWake { .. } => {
                debug_assert!(false, "`handle` dispatches the scheduler's inputs itself");
            }
            CoreInput::PoolTimer { pool } => {
                self.check_pool(*pool)?;
                self.pool_mut(*pool).timer = None;
                self.with_sched(*pool, p, |s, ctx| s.timer_fired(ctx));
            }
            CoreInput::XsSocketData { client, bytes } => self.xs_socket_data(*client, bytes, p),
            CoreInput::XsSocketClosed { client } => self.xs_socket_closed(*client, p),
            CoreInput::VcpuYield { vcpu } => self.vcpu_yield(*vcpu, p)?,
            CoreInput::GuestShutdown { dom, reason } => self.guest_shutdown(*dom, *reason, p)?,
            CoreInput::Toolstack { job, op } => self.start_job(*job, op, p)?,
            CoreInput::ToolstackContinue { job } => self.continue_job(*job, p)?,
            CoreInput::XenstoredDone { item } => self.xsd_done(*item, p)?,
            CoreInput::DriverWork { work } => self.driver_work(*work, p)?,
            CoreInput::BlkSubmit {
                vcpu,
                vdev,
                io,
                last,
            } => {
                self.domains
                    .vcpu(*vcpu)
                    .ok_or(InputError::UnknownVcpu(*vcpu))?;
                if self.disks_emulated(vcpu.dom) {
                    self.ioreq_submit(*vcpu, *vdev, *io, *last, p);
                } else {
                    self.blk_submit(*vcpu, *vdev, *io, *last, p);
                }
            }
            CoreInput::BackendWorkDone { item } if item.0 & ioreq::IOREQ_WORK_BIT != 0 => {
                self.ioreq_work_done(*item, p)?
            }
            CoreInput::BackendWorkDone { item } if item.0 & console_glue::CONSOLE_WORK_BIT != 0 => {
                self.console_work_done(*item)?
            }
            CoreInput::ConsoleWrite { vcpu, text } => {
                self.domains
                    .vcpu(*vcpu)
                    .ok_or(InputError::UnknownVcpu(*vcpu))?;
                self.console_guest_write(vcpu.dom, text, p);
            }
            CoreInput::BackendWorkDone { item } if item.0 & net_glue::NET_WORK_BIT != 0 => {
                self.netback_work_done(*item, p)?;
            }
            CoreInput::BackendWorkDone { item } => self.blkback_work_done(*item, p)?,
            CoreInput::BlkFault { dom, vdev, count } => self.blk_fault(*dom, *vdev, *count),
            CoreInput::DiskDone { tag, ok, data } => self.blk_disk_done(*tag, *ok, data, p),
            CoreInput::GuestMemFloor {
                dom, floor_pages, ..
            } => self.guest_mem_floor(*dom, *floor_pages),
            CoreInput::EptViolation { vcpu, gfn, access } => {
                self.ept_violation(*vcpu, *gfn, *access, p)?
            }
            CoreInput::NetSend {
                vcpu,
                devid,
                packet,
                last,
            } => {
                self.domains
                    .vcpu(*vcpu)
                    .ok_or(InputError::UnknownVcpu(*vcpu))?;
                if self.nic_emulated(vcpu.dom) {
                    self.emunic_send(*vcpu, *devid, *packet, *last, p);
                } else {
                    self.net_send(*vcpu, *devid, *packet, *last, p);
                }
            }
            CoreInput::NetDeliver { dom, devid, packet } if self.nic_emulated(*dom) => {
                self.emunic_deliver((*dom, *devid), *packet, p);
            }
            CoreInput::NetDeliver { dom, devid, packet } => {
                self.net_deliver((*dom, *devid), *packet, p);
            }
            CoreInput::LostInterrupt { dom, port, count } => {
                self.lose_interrupts(*dom, *port, *count)?
            }
        }
        Ok(())
    }

    /// After every input: the drivers' state writes are traced, xenstored's new work is
    /// queued on dom0, the rings' notifications are delivered, and create and destroy jobs
    /// whose devices got where they wait for go on. Then notes whether the next end of
    /// input would find nothing (`end_idle`): a step may queue work for an earlier one
    /// (a notification's delivery makes xenstored requests), and a vbd connected during
    /// it clears the flag (`blk_connect`).
    ///
    /// Most inputs of a data path (a vbd request, a disk completion, a frame) leave no
    /// step anything to do: then one test of every step's condition, inline, settles it
    /// (each step would return at that test, and none of them ran to give another work).
    #[inline]
    fn end_of_input<P: Platform + ?Sized>(&mut self, p: &mut P) {
        if self.end_of_input_idle() && self.blk_unpark_idle() {
            self.end_idle = true;
            return;
        }
        self.end_of_input_steps(p);
    }

    /// The steps of [`Hypervisor::end_of_input`], in order.
    #[inline(never)]
    fn end_of_input_steps<P: Platform + ?Sized>(&mut self, p: &mut P) {
        self.end_idle = true;
        self.xsd_flush(p);
        self.xs_deliver_notifies(p);
        self.xenbus_wake_waiters(p);
        self.blk_unpark(p);
        self.net_flush_lost(p);
        self.ept_flush(p);
        self.end_idle = self.end_idle && self.end_of_input_idle();
    }

    /// True if every step of [`Hypervisor::end_of_input`] would return at its first test,
    /// but `blk_unpark`'s (its vbds connected since it last ran are private to
    /// `blk_glue.rs`, whose `blk_connect` clears `end_idle` instead).
    #[inline]
    fn end_of_input_idle(&self) -> bool {
        self.xsd_idle()
            && self.xs_notifies.is_empty()
            && self.xenbus_unscanned().is_none()
            && self.net.lost.is_empty()
            && !self.memory.has_leaf_changes()
    }

    fn check_pool(&self, pool: PoolId) -> Result<(), InputError> {
        if self.pools.contains(pool) {
            Ok(())
        } else {
            Err(InputError::UnknownPool(pool))
        }
    }

    fn check_pcpu(&self, pcpu: PcpuId) -> Result<(), InputError> {
        if pcpu.index() < self.curr.len() {
            Ok(())
        } else {
            Err(InputError::UnknownPcpu(pcpu))
        }
    }

    /// Creates the vCPUs of `dom` (XEN_DOMCTL_max_vcpus): initial placement as
    /// `sched_select_initial_cpu`, then the pool scheduler's insert.
    pub(crate) fn create_vcpus<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        hard: &[CpuMask],
        soft: &[CpuMask],
        online_count: u32,
        p: &mut P,
    ) {
        let now = p.now();
        let Some(pool) = self.domains.get(dom).map(|d| d.pool) else {
            return;
        };
        let pool_cpus = self.pool_ref(pool).cpus.clone();
        let mut previous: Option<PcpuId> = None;
        for (index, hard_mask) in hard.iter().enumerate() {
            let vcpu_id = VcpuId::new(u32::try_from(index).unwrap_or(u32::MAX))
                .expect("vcpu count checked by config");
            let v = VcpuRef { dom, vcpu: vcpu_id };
            // sched_select_initial_cpu: pool CPUs (node affinity is all nodes); first, then cycle.
            let candidates = if pool_cpus.is_empty() {
                CpuMask::full(self.host.nr_cpus())
            } else {
                pool_cpus.clone()
            };
            let cpu = match previous {
                None => candidates.first(),
                Some(prev) => candidates.cycle(prev),
            }
            .expect("a pool has at least one pCPU");
            previous = Some(cpu);
            let mut vcpu = Vcpu::new(v, cpu, hard_mask.clone(), soft[index].clone(), now);
            let online = vcpu_id.raw() < online_count;
            if !online {
                vcpu.pause_flags |= crate::domain::vcpu::VPF_DOWN;
            }
            if let Some(d) = self.domains.get_mut(dom) {
                d.vcpus.push(vcpu);
            }
            p.trace(&TraceEvent::VcpuCreate {
                vcpu: v,
                pcpu: cpu,
                online,
            });
            self.with_sched(pool, p, |s, ctx| s.insert_vcpu(ctx, v));
        }
    }

    /// Inserts a new domain struct, created paused by the controller (`domain_create`).
    pub(crate) fn insert_domain<P: Platform + ?Sized>(&mut self, domain: Domain, p: &mut P) {
        let dom = domain.id;
        self.memory.add_domain(dom);
        if domain.guest_type != crate::toolstack::config::GuestType::Pv {
            // HAP: the P2M is the EPT (shadow paging is not modelled).
            let hap = self.memory.set_hap(dom);
            debug_assert_eq!(hap, Ok(()));
        }
        p.trace(&TraceEvent::DomainCreate {
            dom,
            name: domain.name.clone(),
        });
        self.domains.insert(domain);
    }

    /// Writes one line to the console ring and the trace.
    pub(crate) fn printk<P: Platform + ?Sized>(&mut self, p: &mut P, line: &str) {
        self.console.printk(line);
        p.trace(&TraceEvent::Console {
            text: String::from(line),
        });
    }

    /// True if `dom` exists and is not dying.
    pub(crate) fn is_alive(&self, dom: DomId) -> bool {
        self.domains
            .get(dom)
            .is_some_and(|d| d.dying == Dying::Alive)
    }
}

/// Hands `event`, a variant that owns no heap data (a scheduling-path record: `Schedule`,
/// `Runstate`, `TimerSet`, `Tickle`, `PoolTimerSet`; a vbd one: `BlkPush`, `BlkbackWork`,
/// `DiskSubmit`, `BlkResponse`; a vif one: `NetPush`, `NetbackWork`), to the platform's
/// trace. It is not dropped afterwards:
/// dropping such a variant frees nothing, and skipping it saves a call of `TraceEvent`'s
/// out-of-line drop glue per record on the hottest paths.
#[inline(always)]
pub(crate) fn trace_plain<P: Platform + ?Sized>(p: &mut P, event: TraceEvent) {
    debug_assert!(
        matches!(
            event,
            TraceEvent::Schedule { .. }
                | TraceEvent::Runstate { .. }
                | TraceEvent::TimerSet { .. }
                | TraceEvent::Tickle { .. }
                | TraceEvent::PoolTimerSet { .. }
                | TraceEvent::BlkPush { .. }
                | TraceEvent::BlkbackWork { .. }
                | TraceEvent::DiskSubmit { .. }
                | TraceEvent::BlkResponse { .. }
                | TraceEvent::NetPush { .. }
                | TraceEvent::NetbackWork { .. }
        ),
        "trace_plain takes only variants without heap data"
    );
    p.trace(&core::mem::ManuallyDrop::new(event));
}

/// Pages Xen keeps for itself: the frame table (32 bytes of `struct page_info` per 4 KiB
/// page, 1/128 of RAM) plus about 10 MiB of image, heap and per-CPU areas. On the
/// reference host (3071 MiB) this leaves 2013 MiB free beside a 1024 MiB dom0, as real
/// Xen 4.17 does.
fn xen_reserved_pages(total_pages: u64) -> u64 {
    const XEN_BASE_PAGES: u64 = 10 * 256;
    total_pages / 128 + XEN_BASE_PAGES
}

mod views;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_cpupool;

#[cfg(test)]
mod proptests_blk;
#[cfg(test)]
mod proptests_net;
#[cfg(test)]
mod tests_blk;
#[cfg(test)]
mod tests_drv;
#[cfg(test)]
mod tests_drv_net;
#[cfg(test)]
mod tests_emunic;
#[cfg(test)]
mod tests_io;
#[cfg(test)]
mod tests_ioreq;
#[cfg(test)]
mod tests_net;
#[cfg(test)]
mod tests_net_mq;
#[cfg(test)]
mod tests_stubvif;
#[cfg(test)]
mod tests_teardown;

#[cfg(test)]
mod tests_console;
#[cfg(test)]
mod tests_xs_ring;

#[cfg(test)]
mod tests_xenbus;

#[cfg(test)]
mod tests_memory;
#[cfg(test)]
mod tests_npf;
#[cfg(test)]
mod tests_numa;
