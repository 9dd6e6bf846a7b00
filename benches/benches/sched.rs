//! Scheduler decision cost (`specs/metrics.md` §1.12 (b)): the host wall-clock time of one
//! scheduler entry of the core, for credit2, rtds and null at 8, 64, 256 and 1024 pCPUs with
//! 8 vCPUs per pCPU (the `scale-*` topologies of `specs/scenario.md`: 1×8, 4×16, 16×16,
//! 64×16), next to a bare `BinaryHeap` push+pop at the same number of elements.
//!
//! - `schedule/<sched>/<pcpus>`: one `schedule()` on a pCPU (its timer fires) in steady
//!   state, every vCPU always runnable: the scheduler's `do_schedule`, the switch, and
//!   `context_saved` for the vCPU switched out.
//! - `wake/<sched>/<pcpus>`: one wake of a blocked vCPU (`vcpu_wake`: runqueue insertion and
//!   the tickle choice, which scans pCPUs/runqueues as Xen does). The block that precedes it
//!   is outside the timed span.
//! - `heap/<pcpus>`: a pop and a push on a `BinaryHeap` holding `8 × pcpus` elements.
//!
//! The platform under the core does nothing (no trace, no queue): only core work is timed.

// Benches time the host with `Instant`; no simulation runs here.
#![allow(clippy::disallowed_types)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::boot::CpuTopo;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{
    DomId, DriverWorkId, Gfn, Mfn, PciBdf, PcpuId, PoolId, VcpuRef, XsWorkId,
};
use hypervisor_model::platform::{Doorbell, EptEntry, IpiKind, MapAccess, Platform};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::testing::small_host;
use hypervisor_model::time::STime;
use hypervisor_model::toolstack::config::DomainConfig;
use hypervisor_model::toolstack::ops::{GuestNotice, JobId, ToolstackOp, ToolstackReply};
use hypervisor_model::trace::TraceEvent;

/// vCPUs per pCPU (and per guest).
const VCPUS_PER_PCPU: u32 = 8;
/// Cores per socket of every topology but the smallest.
const CORES_PER_SOCKET: u32 = 16;

/// A platform that keeps only deferred toolstack steps (needed to build guests).
#[derive(Debug, Default)]
struct BenchPlatform {
    now: STime,
    deferred: BTreeMap<(STime, u64), JobId>,
    seq: u64,
}

impl Platform for BenchPlatform {
    fn now(&self) -> STime {
        self.now
    }
    fn set_timer(&mut self, _pcpu: PcpuId, _deadline: STime) {}
    fn cancel_timer(&mut self, _pcpu: PcpuId) {}
    fn set_pool_timer(&mut self, _pool: PoolId, _deadline: STime) {}
    fn cancel_pool_timer(&mut self, _pool: PoolId) {}
    fn xs_socket_send(&mut self, _client: u32, _bytes: &[u8]) {}
    fn xs_socket_close(&mut self, _client: u32) {}
    fn send_ipi(&mut self, _target: PcpuId, _kind: IpiKind) {}
    fn context_switch(&mut self, _pcpu: PcpuId, _from: Option<VcpuRef>, _to: Option<VcpuRef>) {}
    fn defer_toolstack(&mut self, job: JobId, deadline: STime) {
        self.seq += 1;
        self.deferred.insert((deadline, self.seq), job);
    }
    fn toolstack_reply(&mut self, _job: JobId, _reply: ToolstackReply) {}
    // Bench guests have no split devices and `small_host`'s xenstored costs nothing, so
    // the core asks for neither.
    fn xenstored_work(&mut self, _vcpu: VcpuRef, _item: XsWorkId, _work_ns: i64) {}
    fn defer_driver(&mut self, _work: DriverWorkId, _deadline: STime) {}
    fn guest_notify(&mut self, _dom: DomId, _notice: GuestNotice) {}
    fn trace(&mut self, event: &TraceEvent) {
        black_box(event);
    }
    fn ept_write(&mut self, _dom: DomId, _gfn: Gfn, _entry: Option<EptEntry>) {}
    fn ept_invalidate(&mut self, _dom: DomId) {}
    fn vcpu_stall(&mut self, _vcpu: VcpuRef, _work_ns: i64) {}
    fn iommu_write(&mut self, _bdf: PciBdf, _dfn: u64, _entry: Option<(Mfn, MapAccess)>) {}
    fn ring_doorbell(&mut self, _doorbell: Doorbell) {}
    fn disk_submit(&mut self, _cmd: hypervisor_model::platform::DiskCommand) {}
    fn net_transmit(&mut self, _frame: hypervisor_model::platform::NetFrame) {}
    fn backend_work(
        &mut self,
        _vcpu: VcpuRef,
        _item: hypervisor_model::ids::BackWorkId,
        _work_ns: i64,
    ) {
    }
}

/// A booted host of `pcpus` pCPUs (sockets of 16 cores, or one socket of 8) with `pcpus`
/// guests of 8 vCPUs each, all runnable (a guest vCPU only blocks when the bench says so).
fn host(kind: SchedKind, pcpus: u32) -> (Hypervisor, BenchPlatform) {
    let mut config = small_host(pcpus, kind);
    let cores = pcpus.min(CORES_PER_SOCKET);
    config.host.cpus = (0..pcpus)
        .map(|cpu| CpuTopo {
            core: cpu % cores,
            socket: cpu / cores,
            node: cpu / cores,
        })
        .collect();
    config.host.cores_per_socket = cores;
    let sockets = pcpus / cores;
    let guests = pcpus;
    let pages_per_guest = 16 * 256; // 16 MiB each
    let node_pages = u64::from(guests / sockets + 2) * pages_per_guest + 8 * 256 * 1024;
    config.host.node_memory_pages = vec![node_pages; usize::try_from(sockets).unwrap_or(1)];
    config.host.node_distances = (0..sockets * sockets)
        .map(|i| if i % (sockets + 1) == 0 { 10 } else { 20 })
        .collect();
    let mut p = BenchPlatform::default();
    let mut hv = Hypervisor::boot(config, &mut p);
    for index in 0..guests {
        let mut guest = DomainConfig::with_defaults(format!("g{index:04}"));
        guest.vcpus = VCPUS_PER_PCPU;
        guest.max_vcpus = VCPUS_PER_PCPU;
        guest.memory_kib = 16 * 1024;
        guest.max_memory_kib = 16 * 1024;
        let op = ToolstackOp::Create {
            config: Box::new(guest),
            uuid: [0; 16],
            paused: false,
        };
        let job = JobId(index + 1);
        expect_ok(hv.handle(&CoreInput::Toolstack { job, op }, &mut p));
    }
    while let Some(((at, _), job)) = p.deferred.pop_first() {
        p.now = p.now.max(at);
        expect_ok(hv.handle(&CoreInput::ToolstackContinue { job }, &mut p));
    }
    (hv, p)
}

fn expect_ok<E: std::fmt::Debug>(result: Result<(), E>) {
    if let Err(error) = result {
        panic!("bench input refused: {error:?}");
    }
}

fn pcpu(index: u32) -> PcpuId {
    PcpuId::new(index).unwrap_or_else(|| panic!("pCPU {index} exists"))
}

/// Times `iterations` scheduler entries, one per pCPU in turn, 100 µs of virtual time apart.
fn time_schedules(hv: &mut Hypervisor, p: &mut BenchPlatform, pcpus: u32, n: u64) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        p.now = STime::from_ns(p.now.as_ns() + 100_000 / i64::from(pcpus).max(1));
        let cpu = pcpu(u32::try_from(i % u64::from(pcpus)).unwrap_or(0));
        expect_ok(hv.handle(&CoreInput::TimerExpired { pcpu: cpu }, p));
    }
    start.elapsed()
}

/// Times `n` wakes: each iteration blocks the vCPU running on a pCPU (untimed) and wakes it
/// (timed).
fn time_wakes(hv: &mut Hypervisor, p: &mut BenchPlatform, pcpus: u32, n: u64) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..n {
        p.now = STime::from_ns(p.now.as_ns() + 10_000);
        let cpu = pcpu(u32::try_from(i % u64::from(pcpus)).unwrap_or(0));
        let Some(v) = hv.running_on(cpu) else {
            expect_ok(hv.handle(&CoreInput::TimerExpired { pcpu: cpu }, p));
            continue;
        };
        expect_ok(hv.handle(&CoreInput::VcpuBlock { vcpu: v }, p));
        let start = Instant::now();
        expect_ok(hv.handle(&CoreInput::VcpuWake { vcpu: v }, p));
        total += start.elapsed();
    }
    total
}

fn heap_ops(heap: &mut BinaryHeap<Reverse<(u64, u64)>>, seq: &mut u64, n: u64) -> u64 {
    let mut last = 0;
    for _ in 0..n {
        if let Some(Reverse((time, _))) = heap.pop() {
            last = time;
            *seq += 1;
            heap.push(Reverse((time + 1 + (*seq * 7919) % 10_000, *seq)));
        }
    }
    last
}

fn decision_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched-decision");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for pcpus in [8u32, 64, 256, 1024] {
        for kind in SchedKind::ALL {
            // Hosts are built on first use, so a filtered run builds only what it measures.
            let mut for_schedule: Option<(Hypervisor, BenchPlatform)> = None;
            let id = BenchmarkId::new(format!("schedule/{}", kind.opt_name()), pcpus);
            group.bench_function(id, |b| {
                let (hv, p) = for_schedule.get_or_insert_with(|| host(kind, pcpus));
                b.iter_custom(|n| time_schedules(hv, p, pcpus, n))
            });
            let mut for_wake: Option<(Hypervisor, BenchPlatform)> = None;
            let id = BenchmarkId::new(format!("wake/{}", kind.opt_name()), pcpus);
            group.bench_function(id, |b| {
                let (hv, p) = for_wake.get_or_insert_with(|| host(kind, pcpus));
                b.iter_custom(|n| time_wakes(hv, p, pcpus, n))
            });
        }
        let elements = u64::from(pcpus * VCPUS_PER_PCPU);
        let mut heap: BinaryHeap<Reverse<(u64, u64)>> = (0..elements)
            .map(|i| Reverse((i * 997 % 10_000, i)))
            .collect();
        let mut seq = elements;
        group.bench_function(BenchmarkId::new("heap", pcpus), |b| {
            b.iter(|| black_box(heap_ops(&mut heap, &mut seq, 1)))
        });
    }
    group.finish();
}

criterion_group!(benches, decision_cost);
criterion_main!(benches);
