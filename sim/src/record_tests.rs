//! Tests of the recorder: the trace header, the run hash over length-prefixed records,
//! windowed and field-by-field encodings hashing alike, and refusing an old trace format.

use std::io::Write;

use hypervisor_model::encode::TRACE_FORMAT_VERSION;

use super::{
    pinned_hash, put_str, read_trace, Recorder, TraceError, HASH_ALGORITHM, HASH_SEED, TRACE_MAGIC,
};

#[test]
fn the_header_names_the_seed_the_hash_uses() {
    assert_eq!(
        HASH_ALGORITHM,
        format!("xxh3-64/seed={HASH_SEED:#018x}"),
        "the algorithm name and the seed disagree"
    );
}

#[test]
fn the_run_hash_is_the_pinned_hash_of_the_length_prefixed_records() {
    let mut recorder = Recorder::new();
    recorder.mark(3, 1_000, b"start");
    recorder.mark(3, 2_000, &[7; 20_000]);
    let mut stream = Vec::new();
    for (time_ns, payload) in [(1_000u64, &b"start"[..]), (2_000, &[7; 20_000][..])] {
        push_record(&mut stream, 2, 3, time_ns, payload);
    }

    let (hash, divergence) = recorder.finish().expect("no file to write");

    assert_eq!(hash.0, pinned_hash(&stream));
    assert!(divergence.is_none());
}

#[test]
fn event_records_in_the_window_and_past_it_hash_as_their_encoding() {
    use hypervisor_model::domain::vcpu::Runstate;
    use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};
    use hypervisor_model::trace::TraceEvent;

    let vcpu = VcpuRef {
        dom: DomId::new(4).expect("valid domid"),
        vcpu: VcpuId::new(2).expect("valid vCPU index"),
    };
    let events = [
        TraceEvent::Runstate {
            vcpu,
            from: Runstate::Runnable,
            to: Runstate::Running,
        },
        // Over the window: written field by field.
        TraceEvent::Console {
            text: "y".repeat(200),
        },
        TraceEvent::Console {
            text: "short".to_owned(),
        },
    ];
    let mut recorder = Recorder::new();
    let mut stream = Vec::new();
    for (i, event) in (0u64..).zip(&events) {
        recorder.event(1, 100 + i, event);
        let mut payload = Vec::new();
        event.encode(&mut payload);
        push_record(&mut stream, 1, 1, 100 + i, &payload);
    }

    let (hash, _) = recorder.finish().expect("no file to write");

    assert_eq!(hash.0, pinned_hash(&stream));
}

#[test]
fn fixed_size_events_record_as_the_general_path_does() {
    use hypervisor_model::domain::vcpu::Runstate;
    use hypervisor_model::ids::{DomId, PcpuId, VcpuId, VcpuRef};
    use hypervisor_model::time::STime;
    use hypervisor_model::trace::TraceEvent;

    let vcpu = VcpuRef {
        dom: DomId::new(4).expect("valid domid"),
        vcpu: VcpuId::new(2).expect("valid vCPU index"),
    };
    let pcpu = PcpuId::new(63).expect("valid pCPU id");
    // Each kind `Recorder::event_fixed` takes, at the extremes of its fields.
    let events = [
        TraceEvent::Runstate {
            vcpu,
            from: Runstate::Blocked,
            to: Runstate::Runnable,
        },
        TraceEvent::TimerSet {
            pcpu,
            deadline: STime::from_ns(i64::MAX),
        },
        TraceEvent::Tickle { pcpu },
    ];
    // Enough records to cross several chunk flushes of the hash stream.
    const ROUNDS: u64 = 3_000;
    let (mut general, mut fixed) = (Recorder::capturing(), Recorder::capturing());
    for round in 0..ROUNDS {
        for (i, event) in (0u64..).zip(&events) {
            general.event(7, round * 10 + i, event);
            fixed.event_fixed(7, round * 10 + i, event);
        }
    }

    assert_eq!(fixed.captured(), general.captured());
    let (fixed_hash, _) = fixed.finish().expect("no file to write");
    let (general_hash, _) = general.finish().expect("no file to write");
    assert_eq!(fixed_hash, general_hash);
}

/// Appends one record as the recorder hashes it: length, kind, host, time, payload.
fn push_record(stream: &mut Vec<u8>, kind: u8, host: u16, time_ns: u64, payload: &[u8]) {
    let len = u32::try_from(1 + 2 + 8 + payload.len()).expect("small record");
    stream.extend_from_slice(&len.to_le_bytes());
    stream.push(kind);
    stream.extend_from_slice(&host.to_le_bytes());
    stream.extend_from_slice(&time_ns.to_le_bytes());
    stream.extend_from_slice(payload);
}

#[test]
fn input_records_in_the_window_and_past_it_hash_as_their_encoding() {
    use hypervisor_model::event::CoreInput;
    use hypervisor_model::ids::{DomId, PcpuId, VcpuId, VcpuRef};
    use hypervisor_model::io::vif::{NetPacket, PacketKind};
    use hypervisor_model::toolstack::ops::{JobId, ToolstackOp};

    let vcpu = VcpuRef {
        dom: DomId::new(4).expect("valid domid"),
        vcpu: VcpuId::new(2).expect("valid vCPU index"),
    };
    // 8 stamps fill the window to 93 of its 96 bytes; 9 do not fit.
    let disk_done = |stamp_count: u64| CoreInput::DiskDone {
        tag: 5,
        ok: true,
        data: (0..stamp_count).collect(),
    };
    let inputs = [
        CoreInput::Softirq {
            pcpu: PcpuId::new(3).expect("valid pCPU"),
        },
        CoreInput::VcpuWake { vcpu },
        CoreInput::NetSend {
            vcpu,
            devid: 1,
            packet: NetPacket {
                dst: [2, 0, 0, 0, 0, 1],
                src: [0, 0x16, 0x3e, 0, 0, 1],
                flow: 4,
                seq: 10,
                kind: PacketKind::Request,
                tag: 77,
                reply_bytes: 1_500,
                bytes: 100,
            },
            last: true,
        },
        disk_done(8),
        disk_done(9),
        // Never in the window: its operation encodes into a growing buffer only.
        CoreInput::Toolstack {
            job: JobId(6),
            op: ToolstackOp::Destroy { dom: vcpu.dom },
        },
        CoreInput::ConsoleWrite {
            vcpu,
            text: b"z".repeat(300),
        },
    ];
    let mut recorder = Recorder::new();
    let mut stream = Vec::new();
    for (i, input) in (0u64..).zip(&inputs) {
        recorder.input(2, 10 + i, input);
        let mut payload = Vec::new();
        input.encode(&mut payload);
        push_record(&mut stream, 0, 2, 10 + i, &payload);
    }

    let (hash, _) = recorder.finish().expect("no file to write");

    assert_eq!(hash.0, pinned_hash(&stream));
}

#[test]
fn a_trace_of_the_siphash_format_is_refused_with_both_versions() {
    let path = std::env::temp_dir().join(format!("xensim-v1-trace-{}", std::process::id()));
    let mut bytes = Vec::new();
    bytes.extend_from_slice(TRACE_MAGIC);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&TRACE_FORMAT_VERSION.to_le_bytes());
    put_str(&mut bytes, "siphash-1-3/k=xensim-trace-v1").expect("short string");
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(&bytes))
        .expect("temporary file");

    let result = read_trace(&path);
    std::fs::remove_file(&path).expect("temporary file");

    let Err(TraceError::Format { reason, .. }) = result else {
        panic!("a version 1 trace was accepted: {result:?}");
    };
    assert_eq!(
        reason,
        format!(
            "format 1/{TRACE_FORMAT_VERSION}, this xensim reads 2/{TRACE_FORMAT_VERSION} \
             (written by an older xensim: record it again with this one)"
        )
    );
}
