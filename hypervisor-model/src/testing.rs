//! `FakePlatform`: a platform that records every call the core makes, for tests of the core
//! without the simulator. Deferred toolstack steps and IPIs are queued and handed back by
//! [`FakePlatform::run_until_idle`] in time order, so a test can drive a whole operation.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::event::CoreInput;
use crate::hypervisor::boot::{BootConfig, CoreCosts, CpuTopo, Dom0Boot, HostInfo, XenBuild};
use crate::hypervisor::Hypervisor;
use crate::ids::{DomId, DriverWorkId, Gfn, Mfn, PciBdf, PcpuId, PoolId, VcpuRef, XsWorkId};
use crate::platform::{Doorbell, EptEntry, IpiKind, MapAccess, Platform};
use crate::sched::params::SchedOpts;
use crate::sched::SchedKind;
use crate::time::STime;
use crate::toolstack::config::GuestType;
use crate::toolstack::ops::{GuestNotice, JobId, ToolstackReply};
use crate::trace::TraceEvent;

/// A platform that records calls.
#[derive(Debug, Default)]
pub struct FakePlatform {
    /// Current time.
    pub now: STime,
    /// Armed timers.
    pub timers: BTreeMap<PcpuId, STime>,
    /// Armed pool-scheduler timers.
    pub pool_timers: BTreeMap<PoolId, STime>,
    /// Bytes xenstored wrote to socket clients, in order.
    pub xs_sent: Vec<(u32, Vec<u8>)>,
    /// Socket clients xenstored dropped, in order.
    pub xs_closed: Vec<u32>,
    /// Context switches, in order.
    pub switches: Vec<(PcpuId, Option<VcpuRef>, Option<VcpuRef>)>,
    /// Pending inputs by (time, sequence).
    pub pending: BTreeMap<(STime, u64), CoreInput>,
    /// Sequence counter for `pending`.
    pub seq: u64,
    /// Toolstack replies, in order.
    pub replies: Vec<(JobId, ToolstackReply)>,
    /// Guest notices, in order.
    pub notices: Vec<(DomId, GuestNotice)>,
    /// Every core event, in order.
    pub events: Vec<TraceEvent>,
    /// EPT, IOMMU and doorbell calls, in order.
    pub hardware: Vec<HardwareCall>,
    /// xenstored work asked for, in order: (vCPU, item, ns).
    pub xs_work: Vec<(VcpuRef, XsWorkId, i64)>,
    /// When xenstored's queued work ends (it runs on a CPU of its own here, one item
    /// after the other), and the pending key of the newest item's `XenstoredDone`.
    pub xs_busy: Option<(STime, (STime, u64), XsWorkId)>,
    /// Disk commands submitted, in order (a test completes them with `DiskDone`).
    pub disk_cmds: Vec<crate::platform::DiskCommand>,
    /// blkback work asked for, in order: (vCPU, item, ns); each item's
    /// `BackendWorkDone` is queued `ns` later (blkback runs on a CPU of its own here).
    pub back_work: Vec<(VcpuRef, crate::ids::BackWorkId, i64)>,
    /// When the last blkback item asked for ends.
    pub back_busy_until: STime,
    /// Exit handling charged to vCPUs (`vcpu_stall`), in order: (vCPU, ns).
    pub stalls: Vec<(VcpuRef, i64)>,
    /// Frames netback handed to the bridge, in order.
    pub net_frames: Vec<crate::platform::NetFrame>,
}

/// One call of a hardware-programming hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HardwareCall {
    /// `ept_write`.
    EptWrite {
        /// Domain.
        dom: DomId,
        /// First guest frame of the leaf.
        gfn: Gfn,
        /// The leaf, or `None` for a removal.
        entry: Option<EptEntry>,
    },
    /// `ept_invalidate`.
    EptInvalidate {
        /// Domain.
        dom: DomId,
    },
    /// `iommu_write`.
    IommuWrite {
        /// Device.
        bdf: PciBdf,
        /// DMA frame.
        dfn: u64,
        /// Machine frame and rights, or `None` for a removal.
        entry: Option<(Mfn, MapAccess)>,
    },
    /// `ring_doorbell`.
    Doorbell(Doorbell),
}

impl FakePlatform {
    fn push(&mut self, at: STime, input: CoreInput) {
        self.seq += 1;
        self.pending.insert((at, self.seq), input);
    }

    /// Hands queued IPIs and toolstack steps to `hv` in (time, sequence) order until none
    /// is left, checking invariants after each.
    pub fn run_until_idle(&mut self, hv: &mut Hypervisor) {
        for _step in 0..100_000 {
            let Some(((at, _), input)) = self.pending.pop_first() else {
                return;
            };
            self.now = self.now.max(at);
            let handled = hv.handle(&input, self);
            assert_eq!(handled, Ok(()), "input {input:?} refused");
            let broken = hv.check_invariants();
            assert!(
                broken.is_empty(),
                "invariants broken after {input:?}: {broken:?}"
            );
        }
        panic!("run_until_idle did not settle");
    }

    /// `vcpu` runs no more (its domain crashed): the backend work it was given and has
    /// not finished never completes.
    pub fn stall_back_work(&mut self, vcpu: VcpuRef) {
        let stalled: Vec<crate::ids::BackWorkId> = self
            .back_work
            .iter()
            .filter(|(v, _, _)| *v == vcpu)
            .map(|(_, item, _)| *item)
            .collect();
        self.pending.retain(|_, input| {
            !matches!(input, CoreInput::BackendWorkDone { item } if stalled.contains(item))
        });
    }

    /// Runs the host until `end`: queued inputs, pCPU timers and pool timers in time order
    /// (at equal times: queued inputs, then pCPU timers by pCPU, then pool timers by pool),
    /// checking invariants after each. Returns how many inputs were handled.
    pub fn advance_to(&mut self, hv: &mut Hypervisor, end: STime) -> u64 {
        let mut handled_count = 0u64;
        loop {
            let queued = self.pending.first_key_value().map(|((t, _), _)| *t);
            let timer = self.timers.iter().map(|(c, t)| (*t, *c)).min();
            let pool_timer = self.pool_timers.iter().map(|(p, t)| (*t, *p)).min();
            let next = [queued, timer.map(|x| x.0), pool_timer.map(|x| x.0)]
                .into_iter()
                .flatten()
                .min();
            let Some(at) = next.filter(|t| *t <= end) else {
                self.now = self.now.max(end);
                return handled_count;
            };
            self.now = self.now.max(at);
            let input = if queued == Some(at) {
                match self.pending.pop_first() {
                    Some((_, input)) => input,
                    None => unreachable!("queued input vanished"),
                }
            } else if let Some((_, pcpu)) = timer.filter(|x| x.0 == at) {
                self.timers.remove(&pcpu);
                CoreInput::TimerExpired { pcpu }
            } else if let Some((_, pool)) = pool_timer {
                self.pool_timers.remove(&pool);
                CoreInput::PoolTimer { pool }
            } else {
                unreachable!("no input at {at:?}")
            };
            let handled = hv.handle(&input, self);
            assert_eq!(handled, Ok(()), "input {input:?} refused");
            handled_count += 1;
            let broken = hv.check_invariants();
            assert!(
                broken.is_empty(),
                "invariants broken after {input:?} at {at:?}: {broken:?}"
            );
        }
    }

    /// Queues an input at `at` (a guest block/wake/yield, a toolstack op).
    pub fn inject(&mut self, at: STime, input: CoreInput) {
        self.push(at, input);
    }
}

/// `xl create -p` of `config` as toolstack job `job` (its uuid bytes are all `job`).
pub fn create_paused(job: u32, config: crate::toolstack::config::DomainConfig) -> CoreInput {
    CoreInput::Toolstack {
        job: JobId(job),
        op: crate::toolstack::ops::ToolstackOp::Create {
            config: alloc::boxed::Box::new(config),
            uuid: [u8::try_from(job).unwrap_or(0); 16],
            paused: true,
        },
    }
}

impl Platform for FakePlatform {
    fn now(&self) -> STime {
        self.now
    }

    fn set_timer(&mut self, pcpu: PcpuId, deadline: STime) {
        self.timers.insert(pcpu, deadline);
    }

    fn cancel_timer(&mut self, pcpu: PcpuId) {
        self.timers.remove(&pcpu);
    }

    fn set_pool_timer(&mut self, pool: PoolId, deadline: STime) {
        self.pool_timers.insert(pool, deadline);
    }

    fn cancel_pool_timer(&mut self, pool: PoolId) {
        self.pool_timers.remove(&pool);
    }

    fn xs_socket_send(&mut self, client: u32, bytes: &[u8]) {
        self.xs_sent.push((client, bytes.to_vec()));
    }

    fn xs_socket_close(&mut self, client: u32) {
        self.xs_closed.push(client);
    }

    fn send_ipi(&mut self, target: PcpuId, kind: IpiKind) {
        assert_eq!(kind, IpiKind::Schedule);
        self.push(self.now, CoreInput::Softirq { pcpu: target });
    }

    fn context_switch(&mut self, pcpu: PcpuId, from: Option<VcpuRef>, to: Option<VcpuRef>) {
        self.switches.push((pcpu, from, to));
    }

    fn defer_toolstack(&mut self, job: JobId, deadline: STime) {
        self.push(deadline, CoreInput::ToolstackContinue { job });
    }

    fn toolstack_reply(&mut self, job: JobId, reply: ToolstackReply) {
        self.replies.push((job, reply));
    }

    fn xenstored_work(&mut self, vcpu: VcpuRef, item: XsWorkId, work_ns: i64) {
        self.xs_work.push((vcpu, item, work_ns));
        let span = crate::time::Span::from_ns(work_ns.max(0));
        let start = match self.xs_busy {
            Some((end, key, newest)) if newest == item => {
                // The newest item grows: its completion moves later.
                self.pending.remove(&key);
                end
            }
            Some((end, _, _)) => end.max(self.now),
            None => self.now,
        };
        let done = start.after(span);
        self.push(done, CoreInput::XenstoredDone { item });
        self.xs_busy = Some((done, (done, self.seq), item));
    }

    fn defer_driver(&mut self, work: DriverWorkId, deadline: STime) {
        self.push(deadline, CoreInput::DriverWork { work });
    }

    fn guest_notify(&mut self, dom: DomId, notice: GuestNotice) {
        self.notices.push((dom, notice));
    }

    fn trace(&mut self, event: &TraceEvent) {
        self.events.push(event.clone());
    }

    fn ept_write(&mut self, dom: DomId, gfn: Gfn, entry: Option<EptEntry>) {
        self.hardware
            .push(HardwareCall::EptWrite { dom, gfn, entry });
    }

    fn ept_invalidate(&mut self, dom: DomId) {
        self.hardware.push(HardwareCall::EptInvalidate { dom });
    }

    fn vcpu_stall(&mut self, vcpu: VcpuRef, work_ns: i64) {
        self.stalls.push((vcpu, work_ns));
    }

    fn iommu_write(&mut self, bdf: PciBdf, dfn: u64, entry: Option<(Mfn, MapAccess)>) {
        self.hardware
            .push(HardwareCall::IommuWrite { bdf, dfn, entry });
    }

    fn ring_doorbell(&mut self, doorbell: Doorbell) {
        self.hardware.push(HardwareCall::Doorbell(doorbell));
    }

    fn disk_submit(&mut self, cmd: crate::platform::DiskCommand) {
        self.disk_cmds.push(cmd);
    }

    fn backend_work(&mut self, vcpu: VcpuRef, item: crate::ids::BackWorkId, work_ns: i64) {
        self.back_work.push((vcpu, item, work_ns));
        // One item after the other, in the order asked.
        let start = self.back_busy_until.max(self.now);
        let done = start.after(crate::time::Span::from_ns(work_ns.max(0)));
        self.back_busy_until = done;
        self.push(done, CoreInput::BackendWorkDone { item });
    }

    fn net_transmit(&mut self, frame: crate::platform::NetFrame) {
        self.net_frames.push(frame);
    }
}

/// A boot configuration for a one-socket host with `nr_cpus` cores, 8 GiB, the given
/// Pool-0 scheduler, and dom0 with one vCPU pinned to pCPU 0.
pub fn small_host(nr_cpus: u32, sched: SchedKind) -> BootConfig {
    let cpus = (0..nr_cpus)
        .map(|core| CpuTopo {
            core,
            socket: 0,
            node: 0,
        })
        .collect();
    BootConfig {
        sched_opts: SchedOpts::default(),
        host: HostInfo {
            cpus,
            cores_per_socket: nr_cpus,
            threads_per_core: 1,
            node_memory_pages: alloc::vec![8 * 1024 * 256],
            node_distances: alloc::vec![10],
            cpu_khz: 2_400_000,
        },
        xen: XenBuild {
            major: 4,
            minor: 17,
            extra: String::from(".5"),
            changeset: String::new(),
            compiler: String::from("rustc (xensim)"),
            compile_by: String::from("xensim"),
            compile_domain: String::from("xensim"),
            compile_date: String::from("(scenario epoch)"),
            build_id: String::from("0000000000000000000000000000000000000000"),
            commandline: String::from(
                "dom0_mem=1024M,max:1024M dom0_max_vcpus=1 dom0_vcpus_pin sched=null",
            ),
            conring_bytes: crate::limits::CONRING_BYTES_DEFAULT,
            unknown_options: Vec::new(),
        },
        pool0_sched: sched,
        pools: Vec::new(),
        free_cpus: CpuMask::empty(nr_cpus),
        dom0: Dom0Boot {
            memory_pages: 1024 * 256,
            vcpus: 1,
            pin: true,
            weight: 256,
            guest_type: GuestType::Pv,
        },
        costs: CoreCosts {
            domctl_ns: 50_000,
            populate_page_ns: 1_200,
            build_ns: 20_000_000,
            destroy_devices_ns: 10_000_000,
            relinquish_page_ns: 300,
            scrub_page_ns: 1_500,
            idle_scrub_pages_per_ms: 4_150,
            populate_batch_pages: 65_536,
            relinquish_batch_pages: 65_536,
            xs_request_ns: 0,
            xenbus_step_ns: 0,
            xenstored_request_ns: 0,
            blkback_req_ns: 0,
            gnttab_map_ns: 0,
            ioreq_dom0_rtt_ns: 0,
            ioreq_stubdom_rtt_ns: 0,
            emulated_disk_ioreqs: 0,
            emulated_nic_tx_ioreqs: 0,
            emulated_nic_rx_ioreqs: 0,
            hvm_exit_rtt_ns: 0,
            virq_eoi_ns: 0,
            xenconsoled_batch_ns: 0,
            ept_violation_ns: 1_000,
            pod_fault_ns: 2_000,
            netback_tx_pkt_ns: 0,
            netback_rx_pkt_ns: 0,
            gnttab_copy_page_ns: 0,
            netfront_pkt_ns: 0,
        },
        grant_limits: crate::hypervisor::xs_tool::GrantLimits::default(),
        claim_mode: true,
    }
}

/// Short constructors for ids in tests (`expect` on constants only).
pub mod ids {
    use crate::ids::{DomId, PcpuId, VcpuId, VcpuRef};

    /// Domain `n`.
    pub fn dom(n: u16) -> DomId {
        DomId::new(n).expect("test domid")
    }

    /// vCPU `index` of domain `d`.
    pub fn vcpu(d: u16, index: u32) -> VcpuRef {
        VcpuRef {
            dom: dom(d),
            vcpu: VcpuId::new(index).expect("test vcpu"),
        }
    }

    /// pCPU `n`.
    pub fn cpu(n: u32) -> PcpuId {
        PcpuId::new(n).expect("test cpu")
    }
}

/// One step of the 64-bit LCG (Knuth's MMIX constants) that the core's pseudo-random test
/// walks draw from: fixed, seedable, and the same on every platform. Returns the new state;
/// callers take its high bits.
pub fn lcg_step(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state
}
