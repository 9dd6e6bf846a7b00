//! Simulated network I/O through the core's vif data path, in ring requests per second of
//! host wall time (issue 8's target: at least 2 M/s).
//!
//! A booted host with guests d1 and d2 whose vif 0 is connected (the real XenBus handshake
//! ran). One iteration: d1 sends a batch of 1500-byte frames to d2 (`CoreInput::NetSend`:
//! netfront fills TX slots in granted pages and pushes at the batch's last frame, netback
//! consumes, validates and grant-copies them and hands them to the bridge), then the bench's
//! bridge delivers each frame to d2 (`CoreInput::NetDeliver`: netback grant-copies it into a
//! buffer d2 posted, netfront's poll receives it and reposts the buffer). netback's CPU
//! cost is 0 here, so no backend work items interleave.
//!
//! - `net/tx_rx_1500b_x32`: 32 frames per batch: 32 TX and 32 RX ring requests.
//!
//! Throughput is counted in ring requests (TX plus RX).

// Benches time the host with `Instant`; no simulation runs here.
#![allow(clippy::disallowed_types)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::io::vif::{NetPacket, PacketKind};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::testing::{ids, small_host, FakePlatform};
use hypervisor_model::toolstack::config::{DomainConfig, VifCfg};
use hypervisor_model::toolstack::ops::{JobId, ToolstackOp};

/// Frames per batch.
const BATCH_FRAMES: u32 = 32;

fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, mac: &str) {
    let mut config = DomainConfig::with_defaults(format!("bench{job}"));
    config.vifs.push(VifCfg {
        mac: Some(mac.to_string()),
        ..VifCfg::default()
    });
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [u8::try_from(job).unwrap_or(0); 16],
        paused: true,
    };
    let create = CoreInput::Toolstack {
        job: JobId(job),
        op,
    };
    assert_eq!(hv.handle(&create, p), Ok(()));
    p.run_until_idle(hv);
}

/// A host with guests d1 and d2, each with a connected vif 0.
fn host() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut host = small_host(2, SchedKind::Null);
    host.costs.netback_tx_pkt_ns = 0;
    host.costs.netback_rx_pkt_ns = 0;
    let mut hv = Hypervisor::boot(host, &mut p);
    p.run_until_idle(&mut hv);
    create(&mut hv, &mut p, 1, "00:16:3e:00:00:01");
    create(&mut hv, &mut p, 2, "00:16:3e:00:00:02");
    assert!(hv.vif_path(ids::dom(2), 0).is_some(), "vif connected");
    (hv, p)
}

/// One batch: d1 sends, the bridge delivers every frame to d2.
fn batch(hv: &mut Hypervisor, p: &mut FakePlatform, seq: &mut u32) {
    for i in 0..BATCH_FRAMES {
        *seq += 1;
        let packet = NetPacket {
            dst: [0, 0x16, 0x3e, 0, 0, 2],
            src: [0, 0x16, 0x3e, 0, 0, 1],
            flow: 0,
            seq: *seq,
            kind: PacketKind::Stream,
            tag: u64::from(*seq),
            reply_bytes: 0,
            bytes: 1500,
        };
        let input = CoreInput::NetSend {
            vcpu: ids::vcpu(1, 0),
            devid: 0,
            packet,
            last: i + 1 == BATCH_FRAMES,
        };
        let _ = black_box(hv.handle(&input, p));
    }
    for frame in std::mem::take(&mut p.net_frames) {
        let input = CoreInput::NetDeliver {
            dom: ids::dom(2),
            devid: 0,
            packet: frame.packet,
        };
        let _ = black_box(hv.handle(&input, p));
    }
    assert!(p.pending.is_empty(), "no backend work items at zero cost");
    p.events.clear();
    p.notices.clear();
}

fn bench_net(c: &mut Criterion) {
    let mut group = c.benchmark_group("net");
    let (mut hv, mut p) = host();
    let mut seq = 0;
    group.throughput(Throughput::Elements(2 * u64::from(BATCH_FRAMES)));
    group.bench_function("tx_rx_1500b_x32", |b| {
        b.iter(|| batch(&mut hv, &mut p, &mut seq));
    });
    group.finish();
    let received = hv
        .vif_path(ids::dom(2), 0)
        .map_or(0, |v| v.counters().rx_packets);
    assert_eq!(received, u64::from(seq), "every frame reached d2");
}

criterion_group!(benches, bench_net);
criterion_main!(benches);
