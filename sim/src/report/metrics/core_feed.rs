//! Tests that feed the real core's trace into the collector: the collector's pairing
//! assertions (runstate `from`, Schedule `prev`, busy + idle = online) must hold for what
//! the core actually emits, and its runstate times must match the core's own accounting
//! (`runstate_time_ns`, as `VCPUOP_get_runstate_info` reports it).
//!
//! # Invariants
//! - The recording platform delivers queued inputs in (time, sequence) order, as
//!   `hypervisor_model::testing::FakePlatform` does, and stamps every event with `now`.
//!
//! Left out: multi-host runs and schedulers other than null (the only one in the core).

use std::collections::BTreeMap;

use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{
    DomId, DriverWorkId, Gfn, Mfn, PciBdf, PcpuId, PoolId, VcpuId, VcpuRef, XsWorkId,
};
use hypervisor_model::platform::{Doorbell, EptEntry, IpiKind, MapAccess, Platform};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::testing::small_host;
use hypervisor_model::time::{STime, Span};
use hypervisor_model::toolstack::config::DomainConfig;
use hypervisor_model::toolstack::ops::{GuestNotice, JobId, ToolstackOp, ToolstackReply};
use hypervisor_model::trace::TraceEvent;

use super::collect::{HostMeta, MetricsCollector, PoolMeta};
use super::Metrics;

/// Most queued inputs one settle may handle before the test calls it a livelock.
const SETTLE_STEPS_MAX: u32 = 100_000;
/// pCPUs of the test host: dom0 is pinned to 0, so guests get pCPUs 1 and up.
const PCPU_COUNT: u32 = 2;

/// A platform that stamps every trace event with the virtual time it was emitted at.
#[derive(Debug, Default)]
struct Recorder {
    now: STime,
    seq: u64,
    pending: BTreeMap<(STime, u64), CoreInput>,
    events: Vec<(u64, TraceEvent)>,
}

impl Recorder {
    fn push(&mut self, at: STime, input: CoreInput) {
        self.seq += 1;
        self.pending.insert((at, self.seq), input);
    }

    fn handle(&mut self, hv: &mut Hypervisor, input: &CoreInput) {
        assert_eq!(hv.handle(input, self), Ok(()), "input {input:?} refused");
        self.settle(hv);
    }

    fn settle(&mut self, hv: &mut Hypervisor) {
        for _ in 0..SETTLE_STEPS_MAX {
            let Some(((at, _), input)) = self.pending.pop_first() else {
                return;
            };
            self.now = self.now.max(at);
            assert_eq!(hv.handle(&input, self), Ok(()), "input {input:?} refused");
        }
        panic!("the core did not settle");
    }

    fn advance(&mut self, span: Span) {
        self.now = self.now.after(span);
    }
}

impl Platform for Recorder {
    fn now(&self) -> STime {
        self.now
    }

    fn set_timer(&mut self, _pcpu: PcpuId, _deadline: STime) {}

    fn cancel_timer(&mut self, _pcpu: PcpuId) {}

    fn set_pool_timer(&mut self, _pool: PoolId, _deadline: STime) {}

    fn cancel_pool_timer(&mut self, _pool: PoolId) {}

    fn xs_socket_send(&mut self, _client: u32, _bytes: &[u8]) {}

    fn xs_socket_close(&mut self, _client: u32) {}

    fn send_ipi(&mut self, target: PcpuId, kind: IpiKind) {
        assert_eq!(kind, IpiKind::Schedule);
        self.push(self.now, CoreInput::Softirq { pcpu: target });
    }

    fn context_switch(&mut self, _pcpu: PcpuId, _from: Option<VcpuRef>, _to: Option<VcpuRef>) {}

    fn defer_toolstack(&mut self, job: JobId, deadline: STime) {
        self.push(deadline, CoreInput::ToolstackContinue { job });
    }

    fn toolstack_reply(&mut self, _job: JobId, _reply: ToolstackReply) {}

    // xenstored's work is free on this host (`small_host`); any item finishes at once.
    fn xenstored_work(&mut self, _vcpu: VcpuRef, item: XsWorkId, _work_ns: i64) {
        self.push(self.now, CoreInput::XenstoredDone { item });
    }

    fn defer_driver(&mut self, work: DriverWorkId, deadline: STime) {
        self.push(deadline, CoreInput::DriverWork { work });
    }

    fn guest_notify(&mut self, _dom: DomId, _notice: GuestNotice) {}

    fn trace(&mut self, event: &TraceEvent) {
        let time_ns = u64::try_from(self.now.as_ns()).expect("virtual time is not negative");
        self.events.push((time_ns, event.clone()));
    }

    // This test feeds scheduling events only; the core programs no EPT, IOMMU or device.
    fn ept_write(&mut self, _dom: DomId, _gfn: Gfn, _entry: Option<EptEntry>) {}

    fn ept_invalidate(&mut self, _dom: DomId) {}

    fn vcpu_stall(&mut self, _vcpu: VcpuRef, _work_ns: i64) {}

    fn iommu_write(&mut self, _bdf: PciBdf, _dfn: u64, _entry: Option<(Mfn, MapAccess)>) {}

    fn ring_doorbell(&mut self, _doorbell: Doorbell) {}

    fn disk_submit(&mut self, cmd: hypervisor_model::platform::DiskCommand) {
        // An instant disk of zeroes: reads return unwritten sectors.
        let data = match cmd.op {
            hypervisor_model::platform::DiskOp::Read => vec![0; cmd.sectors as usize],
            _ => Vec::new(),
        };
        let done = CoreInput::DiskDone {
            tag: cmd.tag,
            ok: true,
            data,
        };
        self.push(self.now, done);
    }

    fn backend_work(
        &mut self,
        _vcpu: VcpuRef,
        item: hypervisor_model::ids::BackWorkId,
        _work_ns: i64,
    ) {
        self.push(self.now, CoreInput::BackendWorkDone { item });
    }

    fn net_transmit(&mut self, _frame: hypervisor_model::platform::NetFrame) {}
}

fn guest(name: &str, vcpus: u32) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(name.to_owned());
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config.memory_kib = 512 * 1024;
    config.max_memory_kib = 512 * 1024;
    config
}

fn vm1_vcpu(index: u32) -> VcpuRef {
    VcpuRef {
        dom: DomId::new(1).expect("d1"),
        vcpu: VcpuId::new(index).expect("vCPU index"),
    }
}

fn host_meta() -> HostMeta {
    let pool = Some("Pool-0".to_owned());
    HostMeta {
        name: "h0".to_owned(),
        pcpu_nodes: vec![0; 2],
        pcpu_pools: vec![pool; 2],
        pools: vec![PoolMeta {
            name: "Pool-0".to_owned(),
            scheduler: "null".to_owned(),
        }],
        switch: crate::machine::switch::SwitchCosts::free(),
    }
}

fn feed(events: &[(u64, TraceEvent)], end_ns: u64) -> Metrics {
    let mut collector = MetricsCollector::new(0, vec![host_meta()]);
    for (time_ns, event) in events {
        collector.observe(0, *time_ns, event);
    }
    collector.finish(end_ns)
}

/// Boots, creates vm1 (2 vCPUs: v0 gets pCPU 1, v1 waits), blocks and wakes v0, destroys
/// vm1, and returns the core, the stamped trace and the end time.
fn lifecycle() -> (Hypervisor, Vec<(u64, TraceEvent)>, u64) {
    let mut p = Recorder::default();
    let mut hv = Hypervisor::boot(small_host(PCPU_COUNT, SchedKind::Null), &mut p);
    p.settle(&mut hv);
    let op = ToolstackOp::Create {
        config: Box::new(guest("vm1", 2)),
        uuid: [0; 16],
        paused: false,
    };
    p.handle(&mut hv, &CoreInput::Toolstack { job: JobId(1), op });
    p.advance(Span::from_us(100));
    p.handle(&mut hv, &CoreInput::VcpuBlock { vcpu: vm1_vcpu(0) });
    p.advance(Span::from_us(50));
    p.handle(&mut hv, &CoreInput::VcpuWake { vcpu: vm1_vcpu(0) });
    p.advance(Span::from_us(200));
    let op = ToolstackOp::Destroy {
        dom: DomId::new(1).expect("d1"),
    };
    p.handle(&mut hv, &CoreInput::Toolstack { job: JobId(2), op });
    p.advance(Span::from_ms(1));
    let end_ns = u64::try_from(p.now.as_ns()).expect("virtual time is not negative");
    (hv, p.events, end_ns)
}

#[test]
fn core_lifecycle_trace_satisfies_collector_assertions() {
    let (_hv, events, end_ns) = lifecycle();

    let m = feed(&events, end_ns);

    assert_eq!(m.domains.len(), 2);
    assert_eq!(m.domains[1].name, "vm1");
    // v0 woke at unpause and after its block, and ran both times (null keeps its pCPU).
    assert_eq!(m.domains[1].vcpus[0].wakeup_latency_ns.count, 2);
    // v1 waited in the waitqueue until the destroy took it offline: an abandoned wake.
    assert_eq!(m.domains[1].vcpus[1].running_ns, 0);
    assert_eq!(m.domains[1].vcpus[1].wake_abandoned_count, 1);
    assert_eq!(m.hosts[0].pcpus[0].online_ns, end_ns);
}

#[test]
fn core_dom0_runstate_times_match_core_accounting() {
    let (hv, events, end_ns) = lifecycle();
    let dom0 = &hv.domain(DomId::DOM0).expect("dom0 exists").vcpus[0];
    let open_ns = end_ns - u64::try_from(dom0.state_entry_time.as_ns()).expect("time >= 0");
    let core_running_ns =
        u64::try_from(dom0.runstate_time_ns[Runstate::Running.index()]).expect("time >= 0");
    let expected_running_ns = if dom0.runstate == Runstate::Running {
        core_running_ns + open_ns
    } else {
        core_running_ns
    };

    let m = feed(&events, end_ns);

    assert_eq!(m.domains[0].vcpus[0].running_ns, expected_running_ns);
}
