//! Tests of `io` entries inside `mixed`, of streams scoped to a `mixed` entry, and of the
//! guest CPU each streamed I/O or frame costs.

use super::*;
use crate::guest::disk_stream::sequential_4k_reads;
use crate::scenario::model::{Dist, MixEntry, NetPeer, NetWorkload};

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const DOMAIN: &str = "web";
/// With this seed the picker of a two-entry mix (weights 1, 1) picks entry 0, then
/// entry 1, then entry 0 (asserted by `seed_picks_idle_then_io_then_idle`).
const SEED_PICKS_0_1_0: u64 = 2;
/// The guest CPU per disk I/O of a PV guest: 1500 ns of blkfront, a 300 ns hypercall
/// and a 300 ns upcall (`guest/modes.rs`).
const DISK_IO_NS: u64 = 2_100;
/// The guest CPU per frame (netfront).
const FRAME_NS: u64 = 300;

fn guest_with_seed(spec: &WorkloadSpec, seed: u64) -> GuestVcpu {
    GuestVcpu::new(spec, &RngStreams::new(seed), DOMAIN, 0, 0)
}

/// A stream of `tx_bytes` messages to dom0 every 100 us beside `base`, no answers.
fn net_stream(base: WorkloadSpec, tx_bytes: u64) -> WorkloadSpec {
    WorkloadSpec::NetStream {
        base: Box::new(base),
        net: NetWorkload {
            vif: 0,
            peer: NetPeer::Dom0,
            tx_size: Dist::Const(tx_bytes),
            rx_size: Dist::Const(0),
        },
        rate: Dist::Const(100 * US),
    }
}

fn io_entry(span_ns: u64) -> MixEntry {
    MixEntry {
        weight: 1,
        span: Dist::Const(span_ns),
        workload: WorkloadSpec::Io {
            service: Dist::Const(100 * US),
            think: Dist::Const(0),
            disk: sequential_4k_reads(1),
        },
    }
}

fn idle_entry(span_ns: u64) -> MixEntry {
    MixEntry {
        weight: 1,
        span: Dist::Const(span_ns),
        workload: WorkloadSpec::Idle {
            tick: None,
            tick_work: Dist::Const(0),
        },
    }
}

fn disk_stream(base: WorkloadSpec, gap_ns: u64, queue_depth: u32) -> WorkloadSpec {
    WorkloadSpec::DiskStream {
        base: Box::new(base),
        disk: sequential_4k_reads(queue_depth),
        rate: Dist::Const(gap_ns),
    }
}

fn bursty() -> WorkloadSpec {
    WorkloadSpec::Bursty {
        service: Dist::Const(MS),
        think: Dist::Const(10 * MS),
    }
}

#[test]
fn seed_picks_idle_then_io_then_idle() {
    let streams = RngStreams::new(SEED_PICKS_0_1_0);
    let mut picker = streams.stream("workload.web.v0.mix");

    let picks = [(); 3].map(|()| picker.uniform_u64_inclusive(0, 1));

    assert_eq!(picks, [0, 1, 0]);
}

#[test]
fn mixed_io_entry_submits_nothing_before_its_span_and_blocks_on_io_in_it() {
    // Entry 0 (idle) holds the first 1 ms span; entry 1 (io) is picked at 1 ms.
    let spec = WorkloadSpec::Mixed {
        mix: vec![idle_entry(MS), io_entry(MS)],
    };
    let mut vcpu = guest_with_seed(&spec, SEED_PICKS_0_1_0);
    let first = vcpu.state();
    let during_idle = vcpu.take_submissions().1.len();

    vcpu.on_wake(MS);
    let service = vcpu.run_demand_ns(MS);
    let action = vcpu.on_demand_done(MS + 100 * US);
    let (vdev, ios) = vcpu.take_submissions();

    assert_eq!(
        first,
        GuestState::Blocked {
            wake_at_ns: Some(MS)
        }
    );
    assert_eq!(during_idle, 0);
    assert_eq!(service, Some(100 * US));
    assert_eq!(action, GuestAction::BlockOnIo);
    assert_eq!((vdev, ios.len()), (51712, 1));
    // Entry 1's tags carry its source (2 + 2 × 1).
    assert_eq!(tag_source(ios[0].tag), 4);
}

#[test]
fn mixed_io_span_ending_mid_request_waits_for_the_completion_then_picks() {
    // The io entry's span ends at 2 ms while its I/O (submitted at 1.1 ms) is out; the
    // completion at 3 ms ends the entry and the next pick (entry 0, idle) follows.
    let spec = WorkloadSpec::Mixed {
        mix: vec![idle_entry(MS), io_entry(MS)],
    };
    let mut vcpu = guest_with_seed(&spec, SEED_PICKS_0_1_0);
    vcpu.on_wake(MS);
    vcpu.run_demand_ns(MS);
    vcpu.on_demand_done(MS + 100 * US);
    let io = vcpu.take_submissions().1[0];
    let while_out = vcpu.state();
    let done = hypervisor_model::io::vbd::IoDone {
        tag: io.tag,
        status: 0,
        digest: 0,
        bytes: 4096,
    };

    let wake_at_ns = vcpu.io_done(&done, 3 * MS, false);
    vcpu.on_wake(3 * MS);
    vcpu.run_demand_ns(3 * MS);
    let after = vcpu.on_demand_done(3 * MS);

    assert_eq!(while_out, GuestState::Blocked { wake_at_ns: None });
    assert_eq!(wake_at_ns, Some(2 * MS));
    assert_eq!(
        after,
        GuestAction::Block {
            wake_at_ns: Some(4 * MS)
        }
    );
    assert_eq!(io_count(&mut vcpu), 1);
}

#[test]
fn mixed_entry_stream_is_silent_outside_its_span() {
    // Entry 1 (cpu_bound with a 100 us disk stream) is picked at 1 ms: during entry 0's
    // span the vCPU is not woken for it, and its first I/O is due one gap after the pick.
    let streamed = MixEntry {
        weight: 1,
        span: Dist::Const(MS),
        workload: disk_stream(WorkloadSpec::CpuBound { yield_every: None }, 100 * US, 4),
    };
    let spec = WorkloadSpec::Mixed {
        mix: vec![idle_entry(MS), streamed],
    };
    let mut vcpu = guest_with_seed(&spec, SEED_PICKS_0_1_0);
    let first = vcpu.state();

    vcpu.on_wake(MS);
    let cut = vcpu.run_demand_ns(MS);
    vcpu.on_demand_done(MS + 100 * US);
    let sent = vcpu.take_stream_submissions();

    assert_eq!(
        first,
        GuestState::Blocked {
            wake_at_ns: Some(MS)
        }
    );
    assert_eq!(cut, Some(100 * US));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.len(), 1);
}

#[test]
fn disk_stream_send_cpu_runs_before_the_workload_blocks() {
    // bursty: 1 ms of service, 10 ms of think; the disk stream's gap is 3 ms. The woken
    // vCPU submits at 3 ms, runs the I/O's guest CPU, then blocks until 6 ms.
    let mut vcpu = guest_with_seed(&disk_stream(bursty(), 3 * MS, 4), 1);
    vcpu.set_io_costs(DISK_IO_NS, FRAME_NS);
    vcpu.run_demand_ns(0);
    vcpu.account(MS);
    vcpu.on_demand_done(MS);

    vcpu.on_wake(3 * MS);
    vcpu.run_demand_ns(3 * MS);
    let submitted = vcpu.on_demand_done(3 * MS);
    let charge = vcpu.run_demand_ns(3 * MS);
    let blocked = vcpu.on_demand_done(3 * MS + DISK_IO_NS);

    assert_eq!(submitted, GuestAction::Continue);
    assert_eq!(charge, Some(DISK_IO_NS));
    assert_eq!(
        blocked,
        GuestAction::Block {
            wake_at_ns: Some(6 * MS)
        }
    );
    assert_eq!(vcpu.take_stream_submissions()[0].1.len(), 1);
}

#[test]
fn net_stream_charges_the_frame_cpu_per_frame_sent() {
    // An idle guest woken at 100 us for a 4000-byte message (three frames) runs
    // 3 × 300 ns of netfront CPU, then blocks until the next send at 200 us.
    let idle = WorkloadSpec::Idle {
        tick: None,
        tick_work: Dist::Const(0),
    };
    let spec = net_stream(idle, 4000);
    let mut vcpu = guest_with_seed(&spec, 1);
    vcpu.set_io_costs(DISK_IO_NS, FRAME_NS);
    vcpu.on_wake(100 * US);
    vcpu.run_demand_ns(100 * US);

    let sent = vcpu.on_demand_done(100 * US);
    let charge = vcpu.run_demand_ns(100 * US);
    let blocked = vcpu.on_demand_done(100 * US + 3 * FRAME_NS);

    assert_eq!(sent, GuestAction::Continue);
    assert_eq!(charge, Some(3 * FRAME_NS));
    assert_eq!(
        blocked,
        GuestAction::Block {
            wake_at_ns: Some(200 * US)
        }
    );
}

#[test]
fn frames_of_every_sender_share_the_vcpu_sequence_numbers() {
    // Two stream messages of one frame each at 100 and 200 us: sequence numbers 1 and 2.
    let spec = net_stream(WorkloadSpec::CpuBound { yield_every: None }, 100);
    let mut vcpu = guest_with_seed(&spec, 1);
    vcpu.run_demand_ns(0);
    vcpu.on_demand_done(100 * US);
    let first = vcpu.take_stream_frames();
    vcpu.run_demand_ns(100 * US);

    vcpu.on_demand_done(200 * US);
    let second = vcpu.take_stream_frames();

    assert_eq!((first[0].2[0].seq, second[0].2[0].seq), (1, 2));
}

#[test]
fn mixed_vif_io_entry_answer_after_its_span_ends_the_entry() {
    // Entry 1 sends a 100-byte request at 1.1 ms and arms the retransmission timer; its
    // span ends at 2 ms, the answer arrives at 3 ms: the entry's think timer is capped at
    // the span's end, so the next pick follows at once.
    let net_entry = MixEntry {
        weight: 1,
        span: Dist::Const(MS),
        workload: WorkloadSpec::NetIo {
            service: Dist::Const(100 * US),
            think: Dist::Const(0),
            net: NetWorkload {
                vif: 0,
                peer: NetPeer::Dom0,
                tx_size: Dist::Const(100),
                rx_size: Dist::Const(0),
            },
        },
    };
    let spec = WorkloadSpec::Mixed {
        mix: vec![idle_entry(MS), net_entry],
    };
    let mut vcpu = guest_with_seed(&spec, SEED_PICKS_0_1_0);
    vcpu.on_wake(MS);
    vcpu.run_demand_ns(MS);
    vcpu.on_demand_done(MS + 100 * US);
    let frames = vcpu.take_net_frames().expect("the entry's request").2;
    let timeout_at_ns = vcpu.arm_net_timeout(MS + 100 * US);
    let mut answer = frames[0];
    answer.kind = hypervisor_model::io::vif::PacketKind::Response;

    let wake_at_ns = vcpu.net_received(&answer, 3 * MS, false);

    assert_eq!(tag_source(frames[0].tag), 4);
    assert_eq!(
        timeout_at_ns,
        Some(MS + 100 * US + crate::guest::net::RTO_NS)
    );
    assert_eq!(wake_at_ns, Some(2 * MS));
    assert_eq!(io_count(&mut vcpu), 1);
}

/// The completed I/Os of `vcpu`'s workload and streams.
fn io_count(vcpu: &mut GuestVcpu) -> usize {
    let mut logs = Vec::new();
    vcpu.take_io_logs(&mut logs);
    logs.iter().map(crate::guest::io_log::IoLog::len).sum()
}
