//! Simulated block I/O through the core's vbd data path, in ring requests per second of
//! host wall time (issue 8's target: at least 2 M/s).
//!
//! A booted host with one guest whose xvda is connected (the real XenBus handshake ran).
//! One iteration: the guest submits a batch of I/Os (`CoreInput::BlkSubmit`: blkfront
//! builds the ring requests and pushes them at the batch's last I/O, notifying when the
//! event index asks), blkback
//! consumes, validates and maps them through the grant tables and submits disk commands,
//! then every command completes (`CoreInput::DiskDone`: blkback responds, blkfront's
//! interrupt consumes the responses and completes the guest's I/Os). The disk itself is
//! not timed (its answer is built outside the core); blkback's dom0 CPU cost is 0 here,
//! so no dom0 work items interleave.
//!
//! - `io/read_4k_qd32`: 32 single-page reads per batch (32 direct ring requests).
//! - `io/write_64k_qd8`: 8 writes of 16 pages per batch (8 indirect ring requests).
//!
//! Throughput is counted in ring requests.

// Benches time the host with `Instant`; no simulation runs here.
#![allow(clippy::disallowed_types)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::io::vbd::{GuestIo, IoOp};
use hypervisor_model::platform::DiskOp;
use hypervisor_model::sched::SchedKind;
use hypervisor_model::testing::{ids, small_host, FakePlatform};
use hypervisor_model::toolstack::config::{DiskAccess, DiskCfg, DomainConfig};
use hypervisor_model::toolstack::ops::{JobId, ToolstackOp};

/// xvda (`202 << 8`).
const XVDA: u32 = 51712;

/// A host with guest d1 whose xvda is connected.
fn host() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(2, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    let mut config = DomainConfig::with_defaults("bench".to_string());
    config.disks.push(DiskCfg {
        target: "/dev/vg/bench".to_string(),
        format: "raw".to_string(),
        vdev: "xvda".to_string(),
        access: DiskAccess::ReadWrite,
        cdrom: false,
        backend: None,
    });
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [1; 16],
        paused: true,
    };
    let create = CoreInput::Toolstack { job: JobId(1), op };
    assert_eq!(hv.handle(&create, &mut p), Ok(()));
    p.run_until_idle(&mut hv);
    assert!(hv.vbd_path(ids::dom(1), XVDA).is_some(), "xvda connected");
    (hv, p)
}

/// One batch of `count` I/Os of `sectors` each, submitted then completed.
fn batch(hv: &mut Hypervisor, p: &mut FakePlatform, op: IoOp, count: u64, sectors: u32) {
    for i in 0..count {
        let io = GuestIo {
            tag: i,
            op,
            sector: i * u64::from(sectors),
            sectors,
            seed: i,
        };
        let input = CoreInput::BlkSubmit {
            vcpu: ids::vcpu(1, 0),
            vdev: XVDA,
            io,
            last: i + 1 == count,
        };
        let _ = black_box(hv.handle(&input, p));
    }
    for cmd in std::mem::take(&mut p.disk_cmds) {
        let data = match cmd.op {
            DiskOp::Read => vec![0; cmd.sectors as usize],
            _ => Vec::new(),
        };
        let done = CoreInput::DiskDone {
            tag: cmd.tag,
            ok: true,
            data,
        };
        let _ = black_box(hv.handle(&done, p));
    }
    assert!(p.pending.is_empty(), "no dom0 work items at zero cost");
    p.events.clear();
    p.notices.clear();
}

fn bench_io(c: &mut Criterion) {
    let mut group = c.benchmark_group("io");
    let (mut hv, mut p) = host();
    group.throughput(Throughput::Elements(32));
    group.bench_function("read_4k_qd32", |b| {
        b.iter(|| batch(&mut hv, &mut p, IoOp::Read, 32, 8));
    });
    let (mut hv, mut p) = host();
    group.throughput(Throughput::Elements(8));
    group.bench_function("write_64k_qd8", |b| {
        b.iter(|| batch(&mut hv, &mut p, IoOp::Write, 8, 128));
    });
    group.finish();
}

criterion_group!(benches, bench_io);
criterion_main!(benches);
