//! The readable decision log: one line per core input and core event, rendered by xensim
//! (never `{:?}`), with virtual time as seconds and nanoseconds. This is the text that
//! `golden/<scenario>__decisions.snap` snapshots.

use std::fmt::Write;

use hypervisor_model::cpumask::CpuMask;
use hypervisor_model::domain::vcpu::Runstate;
use hypervisor_model::domain::{Dying, ShutdownReason};
use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::console_glue::CONSOLE_WORK_BIT;
use hypervisor_model::hypervisor::ioreq::IOREQ_WORK_BIT;
use hypervisor_model::hypervisor::net_glue::NET_WORK_BIT;
use hypervisor_model::ids::{DomId, PcpuId, VcpuRef};
use hypervisor_model::sched::params::{DomParams, PoolParams};
use hypervisor_model::toolstack::ops::{JobStepCode, ToolstackOp};
use hypervisor_model::trace::TraceEvent;
use hypervisor_model::xenstore::{FrameDecoder, MsgType};

use crate::xl::bitmap::print_bitmap;

fn vcpu(v: VcpuRef) -> String {
    format!("d{}v{}", v.dom.raw(), v.vcpu.raw())
}

fn runner(v: Option<VcpuRef>) -> String {
    v.map_or_else(|| "idle".to_string(), vcpu)
}

fn cpu(c: PcpuId) -> String {
    format!("cpu{}", c.raw())
}

fn runstate(r: Runstate) -> &'static str {
    match r {
        Runstate::Running => "running",
        Runstate::Runnable => "runnable",
        Runstate::Blocked => "blocked",
        Runstate::Offline => "offline",
    }
}

fn reason(r: ShutdownReason) -> &'static str {
    match r {
        ShutdownReason::Poweroff => "poweroff",
        ShutdownReason::Reboot => "reboot",
        ShutdownReason::Suspend => "suspend",
        ShutdownReason::Crash => "crash",
        ShutdownReason::Watchdog => "watchdog",
        ShutdownReason::SoftReset => "soft_reset",
    }
}

/// `S.NNNNNNNNN` from nanoseconds, computed on integers.
pub fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Appends the line for a core input.
pub fn input_line(out: &mut String, host: &str, time_ns: u64, input: &CoreInput) {
    let text = match input {
        CoreInput::TimerExpired { pcpu } => format!("{} timer fires", cpu(*pcpu)),
        CoreInput::Softirq { pcpu } => format!("{} softirq", cpu(*pcpu)),
        CoreInput::PoolTimer { pool } => format!("pool{} timer fires", pool.0),
        CoreInput::XsSocketData { client, bytes } => {
            format!("xenstore client{client} sends {}", frames_text(bytes))
        }
        CoreInput::XsSocketClosed { client } => format!("xenstore client{client} hangs up"),
        CoreInput::VcpuBlock { vcpu: v } => format!("{} blocks", vcpu(*v)),
        CoreInput::VcpuWake { vcpu: v } => format!("{} wakes", vcpu(*v)),
        CoreInput::VcpuYield { vcpu: v } => format!("{} yields", vcpu(*v)),
        CoreInput::GuestShutdown { dom, reason: r } => {
            format!("d{} SCHEDOP_shutdown {}", dom.raw(), reason(*r))
        }
        CoreInput::Toolstack { job, op } => format!("job{} {}", job.0, op_text(op)),
        CoreInput::ToolstackContinue { job } => format!("job{} continues", job.0),
        CoreInput::XenstoredDone { item } => format!("xenstored work{} done", item.0),
        CoreInput::DriverWork { work } => format!("xenbus reaction{} due", work.0),
        CoreInput::BlkSubmit {
            vcpu: v,
            vdev,
            io,
            last,
        } => format!(
            "{} blkfront vbd{vdev} io{} {:?} sector {} +{}{}",
            vcpu(*v),
            io.tag,
            io.op,
            io.sector,
            io.sectors,
            if *last { " last" } else { "" }
        ),
        CoreInput::BackendWorkDone { item } if item.0 & IOREQ_WORK_BIT != 0 => {
            format!("ioreq work{} done", item.0 & !IOREQ_WORK_BIT)
        }
        CoreInput::BackendWorkDone { item } if item.0 & CONSOLE_WORK_BIT != 0 => {
            format!("xenconsoled work{} done", item.0 & !CONSOLE_WORK_BIT)
        }
        CoreInput::ConsoleWrite { vcpu: v, text } => {
            format!("{} console write {} bytes", vcpu(*v), text.len())
        }
        CoreInput::BackendWorkDone { item } if item.0 & NET_WORK_BIT != 0 => {
            format!("netback work{} done", item.0 & !NET_WORK_BIT)
        }
        CoreInput::BackendWorkDone { item } => format!("blkback work{} done", item.0),
        CoreInput::BlkFault { dom, vdev, count } => {
            format!(
                "fault: d{} vbd{vdev} fails its next {count} requests",
                dom.raw()
            )
        }
        CoreInput::LostInterrupt { dom, port, count } => format!(
            "fault: d{} port {port} loses its next {count} notifications",
            dom.raw()
        ),
        CoreInput::DiskDone { tag, ok, data } => {
            let status = if *ok { "ok" } else { "failed" };
            format!("disk cmd{tag} done {status} ({} sectors read)", data.len())
        }
        CoreInput::GuestMemFloor {
            dom,
            floor_pages,
            oom_kill,
        } => format!(
            "d{}{} balloon floor {floor_pages} pages",
            dom.raw(),
            if *oom_kill { " guest.oom_kill," } else { "" }
        ),
        CoreInput::EptViolation {
            vcpu: v,
            gfn,
            access,
        } => {
            let bits = hypervisor_model::event::access_bits(*access);
            format!(
                "{} EPT violation gfn {:#x} access {}",
                vcpu(*v),
                gfn.raw(),
                rwx(bits)
            )
        }
        CoreInput::NetSend {
            vcpu: v,
            devid,
            packet,
            last,
        } => format!(
            "{} netfront vif{devid} {}{}",
            vcpu(*v),
            packet_text(packet),
            if *last { " last" } else { "" }
        ),
        CoreInput::NetDeliver { dom, devid, packet } => {
            format!(
                "bridge -> d{} vif{devid} {}",
                dom.raw(),
                packet_text(packet)
            )
        }
    };
    let _ = writeln!(out, "{} {host} > {text}", seconds(time_ns));
}

fn op_text(op: &ToolstackOp) -> String {
    match op {
        ToolstackOp::Create { config, paused, .. } => {
            format!(
                "create \"{}\"{}",
                config.name,
                if *paused { " paused" } else { "" }
            )
        }
        ToolstackOp::Destroy { dom } => format!("destroy d{}", dom.raw()),
        ToolstackOp::Pause { dom } => format!("pause d{}", dom.raw()),
        ToolstackOp::Unpause { dom } => format!("unpause d{}", dom.raw()),
        ToolstackOp::Shutdown { dom, reason: r } => {
            format!("shutdown d{} {}", dom.raw(), reason(*r))
        }
        ToolstackOp::VcpuAffinity {
            dom,
            vcpu,
            hard,
            soft,
        } => {
            let map = |m: &Option<CpuMask>| {
                m.as_ref()
                    .map_or_else(|| "-".to_string(), |m| print_bitmap(m, m.width()))
            };
            let which = vcpu.map_or_else(|| "all".to_string(), |v| v.raw().to_string());
            format!(
                "vcpu-pin d{} {which} {} {}",
                dom.raw(),
                map(hard),
                map(soft)
            )
        }
        other => sched_op_text(other),
    }
}

/// The cpupool and scheduler-parameter operations.
fn sched_op_text(op: &ToolstackOp) -> String {
    let map = |m: &CpuMask| print_bitmap(m, m.width());
    match op {
        ToolstackOp::CpupoolCreate { name, sched, cpus } => {
            format!(
                "cpupool-create \"{name}\" {} cpus {}",
                sched.opt_name(),
                map(cpus)
            )
        }
        ToolstackOp::CpupoolDestroy { pool } => format!("cpupool-destroy pool{}", pool.0),
        ToolstackOp::CpupoolCpuAdd { pool, cpus } => {
            format!("cpupool-cpu-add pool{} {}", pool.0, map(cpus))
        }
        ToolstackOp::CpupoolCpuRemove { pool, cpus } => {
            format!("cpupool-cpu-remove pool{} {}", pool.0, map(cpus))
        }
        ToolstackOp::CpupoolMigrate { dom, pool } => {
            format!("cpupool-migrate d{} pool{}", dom.raw(), pool.0)
        }
        ToolstackOp::SchedDomParams { dom, params } => {
            let text = match params {
                DomParams::Credit2 { weight, cap } => format!("weight {weight} cap {cap}"),
                DomParams::Rtds {
                    period_us,
                    budget_us,
                } => format!("period {period_us}us budget {budget_us}us"),
                DomParams::Null => "null".to_string(),
            };
            format!("sched-dom d{} {text}", dom.raw())
        }
        ToolstackOp::SchedVcpuParams { dom, vcpus, params } => {
            let which = vcpus.as_ref().map_or_else(
                || "all".to_string(),
                |ids| {
                    ids.iter()
                        .map(|v| v.raw().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
            let values: Vec<String> = params
                .iter()
                .map(|p| format!("{}/{}/{}", p.period_us, p.budget_us, u8::from(p.extratime)))
                .collect();
            format!("sched-vcpu d{} {which} {}", dom.raw(), values.join(","))
        }
        ToolstackOp::SchedPoolParams { pool, params } => {
            let text = match params {
                PoolParams::Credit2 { ratelimit_us } => format!("ratelimit {ratelimit_us}us"),
                PoolParams::Rtds => "rtds".to_string(),
                PoolParams::Null => "null".to_string(),
            };
            format!("sched-pool pool{} {text}", pool.0)
        }
        _ => String::new(),
    }
}

/// A populate step's extents: how many of each size, and where the first one went.
fn extents_text(dom: DomId, extents: &[(u64, u64, u8)]) -> String {
    let count = |order: u8| extents.iter().filter(|e| e.2 == order).count();
    let (first_gfn, first_mfn, _) = extents.first().copied().unwrap_or_default();
    format!(
        "d{} extents 1G x{} 2M x{} 4K x{}, gfn {first_gfn:#x} -> mfn {first_mfn:#x}",
        dom.raw(),
        count(18),
        count(9),
        count(0)
    )
}

/// XenStore wire bytes as `TYPE(req,tx) "payload"` per whole frame (payload nuls as `\0`),
/// then `+N bytes` for a trailing partial frame.
fn frames_text(bytes: &[u8]) -> String {
    let mut decoder = FrameDecoder::new();
    decoder.feed(bytes);
    let mut parts = Vec::new();
    while let Ok(Some(frame)) = decoder.next_frame() {
        let payload: String = frame
            .payload
            .iter()
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from)
            .collect();
        let kind = MsgType::from_raw(frame.header.msg_type).map_or_else(
            || format!("type{}", frame.header.msg_type),
            |t| t.name().into(),
        );
        parts.push(format!(
            "{kind}({},{}) \"{payload}\"",
            frame.header.req_id, frame.header.tx_id
        ));
    }
    let rest = decoder.pending_bytes();
    if rest > 0 {
        parts.push(format!("+{rest} bytes"));
    }
    parts.join(" ")
}

fn mac_text(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

fn packet_text(packet: &hypervisor_model::io::vif::NetPacket) -> String {
    format!(
        "{} -> {} flow {} seq {} {:?} tag {} {}B",
        mac_text(&packet.src),
        mac_text(&packet.dst),
        packet.flow,
        packet.seq,
        packet.kind,
        packet.tag,
        packet.bytes
    )
}

/// ` q<n>` after a vif for a queue of a multi-queue vif, nothing for a single-queue one.
fn queue_text(queue: &Option<u16>) -> String {
    queue.map_or_else(String::new, |q| format!(" q{q}"))
}

/// The line text of a vif data-path event.
fn net_event_text(event: &TraceEvent) -> String {
    match event {
        TraceEvent::NetPush {
            dom,
            devid,
            queue,
            rx,
            slots,
            notify,
        } => format!(
            "{} d{} vif{devid}{} pushes {slots} slots{}",
            if *rx { "netback rx" } else { "netfront tx" },
            dom.raw(),
            queue_text(queue),
            if *notify { " notify" } else { "" }
        ),
        TraceEvent::NetbackWork {
            item,
            dom,
            devid,
            queue,
            rx,
            packets,
            work_ns,
        } => format!(
            "netback work{} d{} vif{devid}{} {} {packets} packets {work_ns}ns",
            item.0 & !NET_WORK_BIT,
            dom.raw(),
            queue_text(queue),
            if *rx { "rx" } else { "tx" }
        ),
        TraceEvent::NetDrop { dom, devid, reason } => {
            format!("d{} vif{devid} drops a frame (reason {reason})", dom.raw())
        }
        TraceEvent::NetTxReject {
            dom,
            devid,
            queue,
            id,
            reason,
            gntst,
        } => format!(
            "netback d{} vif{devid}{} rejects tx id {id} reason {reason} gntst {gntst}",
            dom.raw(),
            queue_text(queue)
        ),
        TraceEvent::VifDisabled {
            dom,
            devid,
            queue,
            reason,
            prod,
            cons,
        } => format!(
            "netback d{} vif{devid}{} fatal error {reason}: \
             req_prod {prod} req_cons {cons}, disabled",
            dom.raw(),
            queue_text(queue)
        ),
        _ => String::new(),
    }
}

/// The line text of a vbd data-path event.
fn blk_event_text(event: &TraceEvent) -> String {
    match event {
        TraceEvent::BlkbackWork {
            item,
            dom,
            vdev,
            requests,
            work_ns,
        } => format!(
            "blkback work{} d{} vbd{vdev} {requests} requests {work_ns}ns",
            item.0,
            dom.raw()
        ),
        TraceEvent::IoreqWork {
            item,
            dom,
            dm,
            ios,
            work_ns,
        } if dom == dm => format!(
            "nic irq work{} d{} {ios} frames {work_ns}ns",
            item.0 & !IOREQ_WORK_BIT,
            dom.raw()
        ),
        TraceEvent::IoreqWork {
            item,
            dom,
            dm,
            ios,
            work_ns,
        } => format!(
            "ioreq work{} d{} to d{} {ios} ios {work_ns}ns",
            item.0 & !IOREQ_WORK_BIT,
            dom.raw(),
            dm.raw()
        ),
        TraceEvent::DiskSubmit {
            tag,
            dom,
            vdev,
            op,
            sector,
            sectors,
        } => format!(
            "disk cmd{tag} d{} vbd{vdev} op{op} sector {sector} +{sectors}",
            dom.raw()
        ),
        TraceEvent::BlkResponse {
            dom,
            vdev,
            id,
            status,
            notify,
        } => format!(
            "blkback d{} vbd{vdev} response id {id} status {status}{}",
            dom.raw(),
            if *notify { " notify" } else { "" }
        ),
        TraceEvent::BlkReject {
            dom,
            vdev,
            id,
            reason,
            gntst,
        } => format!(
            "blkback d{} vbd{vdev} rejects id {id} reason {reason} gntst {gntst}",
            dom.raw()
        ),
        TraceEvent::BlkRingHalted {
            dom,
            vdev,
            backend,
            prod,
            base,
        } => format!(
            "{} d{} vbd{vdev} bogus ring: prod {prod} base {base}, halted",
            if *backend { "blkback" } else { "blkfront" },
            dom.raw()
        ),
        TraceEvent::BlkPush {
            dom,
            vdev,
            requests,
            notify,
        } => format!(
            "blkfront d{} vbd{vdev} pushes {requests}{}",
            dom.raw(),
            if *notify { " notify" } else { "" }
        ),
        _ => String::new(),
    }
}

/// Appends the line for a core event.
pub fn event_line(out: &mut String, host: &str, time_ns: u64, event: &TraceEvent) {
    let text = match event {
        TraceEvent::Runstate { vcpu: v, from, to } => {
            format!("{} {} -> {}", vcpu(*v), runstate(*from), runstate(*to))
        }
        TraceEvent::Schedule {
            pcpu,
            prev,
            next,
            next_time,
            reason,
            credit_ns,
        } => {
            let timer = if next_time.is_negative() {
                "none".to_string()
            } else {
                format!("+{}ns", next_time.as_ns())
            };
            let credit = credit_ns.map_or_else(String::new, |c| format!(" credit {c}"));
            format!(
                "{} schedule {} -> {} ({}{credit}) timer {timer}",
                cpu(*pcpu),
                runner(*prev),
                runner(*next),
                reason.name()
            )
        }
        TraceEvent::XsSocketSend { client, bytes } => {
            format!("xenstored to client{client}: {}", frames_text(bytes))
        }
        TraceEvent::XsSocketDrop { client } => format!("xenstored drops client{client}"),
        TraceEvent::PoolCreate { pool, name, sched } => {
            format!("pool{} \"{name}\" created ({})", pool.0, sched.opt_name())
        }
        TraceEvent::PoolDestroy { pool } => format!("pool{} destroyed", pool.0),
        TraceEvent::PoolCpu {
            pcpu,
            pool: Some(p),
        } => format!("{} joins pool{}", cpu(*pcpu), p.0),
        TraceEvent::PoolCpu { pcpu, pool: None } => format!("{} leaves its pool", cpu(*pcpu)),
        TraceEvent::DomainPool { dom, pool } => format!("d{} moves to pool{}", dom.raw(), pool.0),
        TraceEvent::PoolTimerSet { pool, deadline } => match deadline {
            Some(t) => format!("pool{} timer at {}", pool.0, t.as_ns()),
            None => format!("pool{} timer cancelled", pool.0),
        },
        TraceEvent::Tickle { pcpu } => format!("{} tickled", cpu(*pcpu)),
        TraceEvent::TimerSet { pcpu, deadline } => {
            format!("{} timer at {}", cpu(*pcpu), deadline.as_ns())
        }
        TraceEvent::NullAssign {
            vcpu: v,
            pcpu,
            assigned: true,
        } => format!("null assign {} to {}", vcpu(*v), cpu(*pcpu)),
        TraceEvent::NullAssign {
            vcpu: v,
            pcpu,
            assigned: false,
        } => format!("null release {} from {}", vcpu(*v), cpu(*pcpu)),
        TraceEvent::NullWaitq { vcpu: v, added } => format!(
            "null waitq {} {}",
            if *added { "add" } else { "remove" },
            vcpu(*v)
        ),
        TraceEvent::DomainCreate { dom, name } => format!("d{} created \"{name}\"", dom.raw()),
        TraceEvent::VcpuCreate {
            vcpu: v,
            pcpu,
            online,
        } => {
            format!(
                "{} created on {}{}",
                vcpu(*v),
                cpu(*pcpu),
                if *online { "" } else { " (down)" }
            )
        }
        TraceEvent::Memory {
            dom,
            delta_pages,
            free_pages,
        } => format!(
            "d{} pages {delta_pages:+} (host free {free_pages})",
            dom.raw()
        ),
        TraceEvent::Pause {
            dom,
            pause_count,
            controller_pause_count,
        } => {
            format!(
                "d{} pause_count {pause_count} controller {controller_pause_count}",
                dom.raw()
            )
        }
        TraceEvent::Shutdown { dom, reason: r } => {
            format!("d{} shutdown {}", dom.raw(), reason(*r))
        }
        TraceEvent::Dying { dom, state } => {
            let state = match state {
                Dying::Alive => "alive",
                Dying::Dying => "dying",
                Dying::Dead => "dead",
            };
            format!("d{} {state}", dom.raw())
        }
        TraceEvent::DomainFree { dom } => format!("d{} freed", dom.raw()),
        TraceEvent::JobStep { job, step } => {
            let name = JobStepCode::from_code(*step).map_or("unknown", JobStepCode::name);
            format!("job{} step {name}", job.0)
        }
        TraceEvent::JobDone { job, rc } => format!("job{} done rc={rc}", job.0),
        TraceEvent::Console { text } => format!("(XEN) {text}"),
        TraceEvent::Extents { dom, extents } => extents_text(*dom, extents),
        TraceEvent::MaxPages { dom, max_pages } => {
            format!("d{} max_pages {max_pages}", dom.raw())
        }
        TraceEvent::BalloonGaveUp { dom, tot_pages } => {
            format!(
                "d{} balloon gave up (ECANCELED) at {tot_pages} pages",
                dom.raw()
            )
        }
        TraceEvent::EptViolation {
            vcpu: v,
            gfn,
            access,
            outcome,
        } => format!(
            "{} EPT violation gfn {gfn:#x} {} -> {}",
            vcpu(*v),
            rwx(*access),
            npf_outcome(*outcome)
        ),
        TraceEvent::BlkbackWork { .. }
        | TraceEvent::IoreqWork { .. }
        | TraceEvent::DiskSubmit { .. }
        | TraceEvent::BlkResponse { .. }
        | TraceEvent::BlkReject { .. }
        | TraceEvent::BlkRingHalted { .. }
        | TraceEvent::BlkPush { .. } => blk_event_text(event),
        TraceEvent::NetPush { .. }
        | TraceEvent::NetbackWork { .. }
        | TraceEvent::NetDrop { .. }
        | TraceEvent::NetTxReject { .. }
        | TraceEvent::VifDisabled { .. } => net_event_text(event),
        TraceEvent::InterruptLost { dom, port, left } => format!(
            "fault: d{} port {port} notification lost ({left} more to lose)",
            dom.raw()
        ),
        TraceEvent::XenstoredWork {
            item,
            requests,
            rings,
        } => format!(
            "xenstored work{} +{requests} requests +{rings} rings",
            item.0
        ),
        TraceEvent::XenbusEvent { work, path } => {
            format!("xenbus event {path} -> reaction{}", work.0)
        }
        TraceEvent::XenbusState { path, state } => format!("xenbus {path} = {state}"),
        TraceEvent::XenbusFatal { path, message } => format!("xenbus {path} fatal: {message}"),
    };
    let _ = writeln!(out, "{} {host}   {text}", seconds(time_ns));
}

/// Access bits (read, write, fetch) as `rwx` with `-` for absent.
fn rwx(bits: u8) -> String {
    let mut out = String::with_capacity(3);
    out.push(if bits & 1 != 0 { 'r' } else { '-' });
    out.push(if bits & 2 != 0 { 'w' } else { '-' });
    out.push(if bits & 4 != 0 { 'x' } else { '-' });
    out
}

/// The name of an `NpfOutcome` code.
fn npf_outcome(code: u8) -> &'static str {
    match code {
        0 => "spurious",
        1 => "pod populated",
        2 => "log-dirty",
        3 => "emulated",
        4 => "crash",
        5 => "out of PoD memory",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn seconds_pads_nanoseconds_to_nine_digits() {
        assert_eq!(seconds(1_000_000_123), "1.000000123");
    }
}
