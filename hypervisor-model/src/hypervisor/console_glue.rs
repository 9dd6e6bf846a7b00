//! Guest consoles on one host: the toolstack's console device connects a domain's ring to
//! xenconsoled in dom0 (`io/console.rs`), the guest kernel writes its boot banner there
//! when it first runs, its workload's messages (`CoreInput::ConsoleWrite`, stamped with
//! the guest's uptime as printk does) and its last line before `SCHEDOP_shutdown`, and
//! xenconsoled drains the ring on the guest's notification; each drain is a batch of
//! xenconsoled's CPU time on dom0's vCPU 0 (`io.xenconsoled_batch_ns`, as blkback's work:
//! [`Platform::backend_work`] with [`CONSOLE_WORK_BIT`]).
//!
//! The console's event channel is a real pair of ports: the domain builder allocates the
//! guest's end unbound for dom0 (`~/console/port`, `xs_tool.rs`), xenconsoled binds its
//! own end in dom0 when it picks the console up (`xenevtchn_bind_interdomain`; Xen marks
//! the new port pending, so xenconsoled runs once and finds the ring empty), hvc_xen's
//! `notify_daemon` is an `EVTCHNOP_send` on the guest's port that sets dom0's port pending
//! and wakes dom0's vCPU 0, whose handler (`handle_ring_read`) acknowledges it and drains
//! the ring, and xenconsoled closes its end once the domain is dying
//! (`shutdown_domain` → `console_close_evtchn`), so a destroy leaves no port behind.
//! A `lost-interrupt` fault on dom0's port eats a notification: the bytes wait in the
//! ring until the guest's next write notifies again.
//!
//! Follows tools/console/daemon/io.c (`console_create_ring`, `handle_ring_read`,
//! `shutdown_domain`, `cleanup_domain`) and Linux drivers/tty/hvc/hvc_xen.c
//! (`__write_console`, `notify_daemon`); spec `xenstore-io.md` §3.6, §8.5.
//!
//! # Invariants
//! - While a console has `local_port`, dom0's port is interdomain to the guest's
//!   `remote_port` and the guest's back to it (the kill that closes the guest's ports
//!   closes xenconsoled's end in the same step, so no event sees half a pair).
//! - At most [`CONSOLE_WORK_ITEMS_MAX`] xenconsoled batches are queued.
//!
//! xensim differs: xenconsoled's handler runs when the event is sent (dom0's vCPU 0 is
//! woken and its CPU time for the batch follows as backend work), as the split drivers'
//! handlers do (`blk_glue.rs`); xenconsoled's per-domain rate limit (30 events per
//! 200 ms, then the port stays masked) is left out; the banner is the guest model's own
//! text, all printed at guest uptime 0.

use alloc::format;
use alloc::string::String;

use super::Hypervisor;
use crate::domain::ShutdownReason;
use crate::evtchn::PortState;
use crate::ids::{BackWorkId, DomId, EvtchnPort, VcpuId, VcpuRef};
use crate::io::console::XENCONSOLE_LIMIT_BYTES;
use crate::platform::Platform;
use crate::toolstack::config::GuestType;

/// xenconsoled's work ids have this bit set, so `BackendWorkDone` tells them from
/// blkback's (and from ioreq work, `ioreq::IOREQ_WORK_BIT`).
pub const CONSOLE_WORK_BIT: u64 = 1 << 62;
/// Most bytes one `ConsoleWrite` input may carry (a guest kernel's printk line is at most
/// 1024 bytes, `PRINTK_MESSAGE_MAX`); longer writes are refused and logged.
pub const CONSOLE_WRITE_BYTES_MAX: usize = 1024;
/// Most xenconsoled batches queued on dom0 at once (then drains cost nothing more until
/// dom0 catches up: xenconsoled would read everything in one pass).
pub const CONSOLE_WORK_ITEMS_MAX: usize = 4096;

impl Hypervisor {
    /// The console device was written: xenconsoled maps the ring and binds its end of
    /// the guest's console port, `remote_port` (`console_create_ring`). A failed bind
    /// leaves the console without a channel (xenconsoled never reads it) and is logged.
    pub(crate) fn console_connect<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        remote_port: EvtchnPort,
        p: &mut P,
    ) {
        self.xenconsoled.connect(dom, XENCONSOLE_LIMIT_BYTES);
        let bound = match self.evtchn.bind_interdomain(DomId::DOM0, dom, remote_port) {
            Ok(bound) => bound,
            Err(err) => {
                self.xenconsoled.note(format!(
                    "d{}: console: bind_interdomain of port {} failed ({})",
                    dom.raw(),
                    remote_port.raw(),
                    err.errno().value()
                ));
                return;
            }
        };
        if let Some(con) = self.xenconsoled.console_mut(dom) {
            con.local_port = Some(bound.port);
            con.remote_port = Some(remote_port);
        }
        // Xen sets the new local port pending: xenconsoled's poll sees it at once.
        self.deliver_notify(bound.notify, p);
        self.xenconsoled_event(dom, p);
    }

    /// The domain is dying: xenconsoled closes its end of the channel
    /// (`shutdown_domain` → `console_close_evtchn`; closing the evtchn fd unbinds it).
    pub(crate) fn console_unbind(&mut self, dom: DomId) {
        let Some(con) = self.xenconsoled.console_mut(dom) else {
            return;
        };
        con.remote_port = None;
        let Some(port) = con.local_port.take() else {
            return;
        };
        let closed = self.evtchn.close(DomId::DOM0, port);
        assert!(
            closed.is_ok(),
            "xenconsoled's console port of {dom:?}: {closed:?}"
        );
    }

    /// The domain is gone: xenconsoled drops its console (`cleanup_domain`).
    pub(crate) fn console_release(&mut self, dom: DomId) {
        self.console_unbind(dom);
        self.xenconsoled.remove(dom);
    }

    /// hvc_xen's `notify_daemon`: `EVTCHNOP_send` on the guest's console port. True when
    /// the event reached xenconsoled's port (not when nobody is bound or a
    /// `lost-interrupt` fault ate it).
    fn console_notify<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) -> bool {
        let ports = self
            .xenconsoled
            .console(dom)
            .and_then(|c| c.remote_port.zip(c.local_port));
        let Some((remote, local)) = ports else {
            // Nobody bound the guest's port: the send is dropped (an unbound port).
            if let Some(build) = self.build_states.get(&dom) {
                let _ = self.evtchn.send(dom, EvtchnPort::new(build.console_port));
            }
            return false;
        };
        self.ring_notify((dom, DomId::DOM0), (remote, local), true, p)
    }

    /// xenconsoled's `handle_ring_read` for `dom`: the pending event on its port is taken,
    /// the ring drained into the buffer, and the drain costs a batch of its CPU time.
    fn xenconsoled_event<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        let Some(local) = self.xenconsoled.console(dom).and_then(|c| c.local_port) else {
            return;
        };
        if let Some(d0) = self.evtchn.domain_mut(DomId::DOM0) {
            if let Some(vcpu) = d0.notify_vcpu(local) {
                let _ = d0.guest_ack_port(vcpu, local);
            }
        }
        if self.xenconsoled.drain(dom) > 0 {
            self.console_charge(p);
        }
    }

    /// The guest kernel writes `text` to its console; on its notification xenconsoled
    /// drains the ring (writes larger than the ring go in ring-sized pieces, as hvc_xen
    /// retries while xenconsoled empties the ring), each drain a batch of its CPU time.
    /// A ring nobody drains (no channel, or its notification lost) keeps what fits and
    /// the rest is dropped, as hvc_xen's write to a full ring returns 0.
    pub(crate) fn console_write<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        text: &[u8],
        p: &mut P,
    ) {
        let mut rest = text;
        while !rest.is_empty() {
            let wrote = self.xenconsoled.guest_write(dom, rest);
            if wrote.notify && self.console_notify(dom, p) {
                self.xenconsoled_event(dom, p);
            }
            if wrote.bytes == 0 {
                // A scribbled ring (logged by xenconsoled's end) or no console: dropped.
                return;
            }
            rest = &rest[wrote.bytes..];
        }
    }

    /// One batch of xenconsoled's CPU time on dom0's vCPU 0.
    fn console_charge<P: Platform + ?Sized>(&mut self, p: &mut P) {
        let work_ns = self.costs.xenconsoled_batch_ns;
        if work_ns <= 0 || self.console_work.len() >= CONSOLE_WORK_ITEMS_MAX {
            return;
        }
        let id = BackWorkId(CONSOLE_WORK_BIT | self.console_next_work);
        self.console_next_work += 1;
        self.console_work.insert(id);
        let dom0 = VcpuRef {
            dom: DomId::DOM0,
            vcpu: VcpuId::new(0).expect("vCPU 0"),
        };
        p.backend_work(dom0, id, work_ns);
        let _ = self.vcpu_wake_event(dom0, p);
    }

    /// The bound on xenconsoled's queued batches, and every bound console channel's pair
    /// of ports (module doc).
    pub(crate) fn console_check(&self, out: &mut alloc::vec::Vec<crate::sched::Violation>) {
        if self.console_work.len() > CONSOLE_WORK_ITEMS_MAX {
            let detail = format!("{} batches", self.console_work.len());
            let invariant = "console.work_bound";
            out.push(crate::sched::Violation { invariant, detail });
        }
        for (dom, con) in self.xenconsoled.consoles() {
            let Some(local) = con.local_port else {
                continue;
            };
            let Some(remote) = con.remote_port else {
                let detail = format!(
                    "d{}: dom0 port {} without a guest port",
                    dom.raw(),
                    local.raw()
                );
                let invariant = "console.port_pair";
                out.push(crate::sched::Violation { invariant, detail });
                continue;
            };
            let state =
                |d: DomId, port: EvtchnPort| self.evtchn.domain(d).and_then(|t| t.state(port));
            let dom0_end = PortState::Interdomain {
                remote: *dom,
                remote_port: remote,
            };
            let guest_end = PortState::Interdomain {
                remote: DomId::DOM0,
                remote_port: local,
            };
            let ends = [(DomId::DOM0, local, dom0_end), (*dom, remote, guest_end)];
            for (owner, port, want) in ends {
                let found = state(owner, port);
                if found != Some(want) {
                    let detail = format!(
                        "d{} console: d{} port {} is {found:?}, not {want:?}",
                        dom.raw(),
                        owner.raw(),
                        port.raw()
                    );
                    let invariant = "console.port_pair";
                    out.push(crate::sched::Violation { invariant, detail });
                }
            }
        }
    }

    /// `BackendWorkDone` of a xenconsoled batch.
    pub(crate) fn console_work_done(&mut self, item: BackWorkId) -> Result<(), super::InputError> {
        if self.console_work.remove(&item) {
            Ok(())
        } else {
            Err(super::InputError::UnknownBackWork(item))
        }
    }

    /// `ConsoleWrite`: the guest's kernel prints `text` (lines without their time prefix)
    /// at `now_ns`; each line gets printk's `[seconds.micros]` uptime stamp. Writes over
    /// [`CONSOLE_WRITE_BYTES_MAX`] are refused and logged by xenconsoled's end.
    pub(crate) fn console_guest_write<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        text: &[u8],
        p: &mut P,
    ) {
        let Some(boot_ns) = self.xenconsoled.console(dom).and_then(|c| c.boot_ns) else {
            return;
        };
        if text.len() > CONSOLE_WRITE_BYTES_MAX {
            self.xenconsoled.note(format!(
                "d{}: guest console write of {} bytes refused",
                dom.raw(),
                text.len()
            ));
            return;
        }
        let stamp = printk_time(p.now().as_ns().saturating_sub(boot_ns));
        let mut stamped = alloc::vec::Vec::with_capacity(text.len() + 16);
        for line in text.split_inclusive(|b| *b == b'\n') {
            stamped.extend_from_slice(stamp.as_bytes());
            stamped.push(b' ');
            stamped.extend_from_slice(line);
            if line.last() != Some(&b'\n') {
                stamped.push(b'\n');
            }
        }
        self.console_write(dom, &stamped, p);
    }

    /// The guest runs for the first time (at `now_ns`): its kernel prints a boot banner.
    pub(crate) fn console_boot<P: Platform + ?Sized>(&mut self, dom: DomId, p: &mut P) {
        let now_ns = p.now().as_ns();
        let Some(con) = self.xenconsoled.console_mut(dom) else {
            return;
        };
        if con.boot_ns.is_some() {
            return;
        }
        con.boot_ns = Some(now_ns);
        let Some(config) = self.domains.get(dom).and_then(|d| d.config.as_ref()) else {
            return;
        };
        let banner = boot_banner(
            config.guest_type,
            config.memory_kib,
            config.vcpus,
            self.xen.major,
            self.xen.minor,
        );
        self.console_write(dom, banner.as_bytes(), p);
    }

    /// The guest kernel's last line before `SCHEDOP_shutdown` (Linux's `kernel_power_off`,
    /// `kernel_restart`, `panic`), stamped with its uptime at `now_ns`.
    pub(crate) fn console_shutdown<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        reason: ShutdownReason,
        p: &mut P,
    ) {
        let now_ns = p.now().as_ns();
        let Some(boot_ns) = self.xenconsoled.console(dom).and_then(|c| c.boot_ns) else {
            return;
        };
        let text = match reason {
            ShutdownReason::Poweroff => "reboot: Power down",
            ShutdownReason::Reboot => "reboot: Restarting system",
            ShutdownReason::Crash => "Kernel panic - not syncing: xensim guest model crash",
            ShutdownReason::Watchdog => "watchdog: watchdog did not stop!",
            ShutdownReason::Suspend | ShutdownReason::SoftReset => return,
        };
        let line = format!("{} {text}\n", printk_time(now_ns.saturating_sub(boot_ns)));
        self.console_write(dom, line.as_bytes(), p);
    }

    /// What xenconsoled buffered for `dom` (`xl console`), or `None` without a console.
    pub fn console_output(&self, dom: DomId) -> Option<&[u8]> {
        self.xenconsoled.console(dom).map(|c| c.buffer.contents())
    }

    /// xenconsoled's own log lines (bad rings it ignored), oldest first.
    pub fn xenconsoled_log(&self) -> impl Iterator<Item = &str> {
        self.xenconsoled.log()
    }

    /// The guest of `dom` scribbles `value` into one of its console ring's indices (fault
    /// injection for tests). Returns false without a console.
    pub fn console_poke_index(
        &mut self,
        dom: DomId,
        which: crate::io::console::ConsIndex,
        value: u32,
    ) -> bool {
        match self.xenconsoled.console_mut(dom) {
            Some(con) => {
                con.page.poke_index(which, value);
                true
            }
            None => false,
        }
    }
}

/// The guest model's boot lines (printk format: `[seconds.micros] text`).
fn boot_banner(kind: GuestType, memory_kib: u64, vcpus: u32, major: u32, minor: u32) -> String {
    let (detected, console) = match kind {
        GuestType::Pv => ("Xen PV", "hvc0"),
        GuestType::Pvh => ("Xen PVH", "hvc0"),
        GuestType::Hvm => ("Xen HVM", "hvc0"),
    };
    let lines = [
        String::from("Linux version 6.1.0-xensim (xensim guest model)"),
        format!("Command line: root=/dev/xvda1 ro console={console}"),
        format!("Hypervisor detected: {detected}"),
        format!("Xen version: {major}.{minor}"),
        format!("Memory: {memory_kib}K"),
        format!(
            "smp: Brought up 1 node, {vcpus} CPU{}",
            if vcpus > 1 { "s" } else { "" }
        ),
        String::from("Run /sbin/init as init process"),
    ];
    let mut out = String::new();
    for line in lines {
        out.push_str(&printk_time(0));
        out.push(' ');
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// printk's time prefix, `[%5lu.%06lu]`, for an uptime in ns.
fn printk_time(uptime_ns: i64) -> String {
    let uptime_ns = uptime_ns.max(0);
    format!(
        "[{:5}.{:06}]",
        uptime_ns / 1_000_000_000,
        uptime_ns % 1_000_000_000 / 1_000
    )
}
