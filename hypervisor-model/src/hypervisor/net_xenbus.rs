//! The vif's multi-queue XenStore negotiation: how many queues netfront asks for and
//! whether it splits its event channels, the XDP headroom keys (netback's
//! `feature-xdp-headroom` offer, netfront's `xdp-headroom`, always 0 since xensim's guests
//! attach no XDP program, and netback's read of it), and netback's connect of every
//! queue's rings and ports, refusing a frontend whose keys are inconsistent
//! (`xenbus_dev_fatal`: an error node, then Closing).
//!
//! Follows Linux 6.1 drivers/net/xen-netfront.c (`talk_to_netback`: `num_queues =
//! min(multi-queue-max-queues, xennet_max_queues)`, `xennet_max_queues` defaulting to
//! `min(8, online CPUs)`; `xdp-headroom` written by `talk_to_netback_xdp` before the
//! queues are set up when the backend offers it; split ports whenever the backend's
//! `feature-split-event-channels` is 1; `multi-queue-num-queues` written whenever the
//! backend has `multi-queue-max-queues`; `setup_netfront` per queue: TX ring grant, RX ring
//! grant, then the port or the TX and RX ports) and drivers/net/xen-netback/xenbus.c
//! (`netback_probe`: `feature-split-event-channels` = the `separate_tx_rx_irq` module
//! parameter, default 1; `feature-xdp-headroom` = `provides_xdp_headroom`, default 1;
//! `read_xenbus_frontend_xdp`: `%hu`, 0 when unreadable, clamped to
//! `XEN_NETIF_MAX_XDP_HEADROOM`; `connect`:
//! "guest requested %u queues, exceeding the maximum of %u."; `connect_data_rings`: the
//! flat keys for one queue, `queue-<i>/` for several, `event-channel-tx`/`-rx` before
//! `event-channel`),
//! drivers/xen/xenbus/xenbus_client.c (`xenbus_dev_fatal` writes `"<errno> <message>"` to
//! `error/<nodename>/error` under the driver's domain home and switches to Closing);
//! xen/include/public/io/netif.h; spec `xenstore-io.md` §3.3, §4.3.
//!
//! # Invariants
//! - A refused connect leaves nothing mapped or bound by this attempt (as
//!   `connect_data_rings` and `connect`'s error path clean up) and the backend Closing.
//! - netback's `multi-queue-max-queues` and netfront's own maximum are each kernel's
//!   `max_queues` parameter (`xen_netback.max_queues`, `xen_netfront.max_queues` on its
//!   command line, xl.cfg `extra=` for a guest or a driver domain), else `min(8, online
//!   vCPUs)`; always within 1..=`VIF_QUEUES_MAX`.
//!
//! xensim differs: a ring ref or port past `u32` is refused like a value without a number
//! (Linux's `%lu` keeps a wider ref and truncates it); Linux before its 2026 fix
//! connects a vif with `multi-queue-num-queues = 0` and no queues, xensim's netback refuses
//! it like more queues than offered; after `xenbus_dev_fatal` Linux's `set_backend_state`
//! still writes Connected over the Closing, xensim's netback stays Closing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::xenbus_xs::DriverXs;
use super::Hypervisor;
use crate::grant::{GrantHandle, MapFlags, MapRequest};
use crate::ids::{DomId, EvtchnPort, GrantRef};
use crate::io::handshake::{BackendOffer, DeviceConn, VifLayout};
use crate::io::handshake::{NETFRONT_XDP_HEADROOM, XEN_NETIF_MAX_XDP_HEADROOM};
use crate::io::vif::VIF_QUEUES_MAX;
use crate::io::xenbus::{legal, End, XenbusState};
use crate::platform::Platform;
use crate::trace::TraceEvent;

/// `EINVAL`.
const EINVAL: i32 = 22;
/// `ENOENT`.
const ENOENT: i32 = 2;
/// Linux's `MAX_QUEUES_DEFAULT` (netfront and netback): the default cap on queues.
const MAX_QUEUES_DEFAULT: u32 = 8;

/// What netback mapped and bound for one connect attempt.
#[derive(Default)]
struct Connected {
    handles: Vec<GrantHandle>,
    ports: Vec<EvtchnPort>,
}

/// `EACCES`.
const EACCES: i32 = 13;
/// `ERANGE`: `xenbus_scanf` found no number in a value.
const ERANGE: i32 = 34;

/// Why one queue did not connect: `xenbus_dev_fatal`'s errno and message.
struct Fatal(i32, String);

impl Hypervisor {
    /// The vCPUs of `dom` online at boot (Linux's `num_online_cpus()` in its kernel).
    pub(super) fn online_vcpus(&self, dom: DomId) -> u32 {
        let Some(d) = self.domains.get(dom) else {
            return 1;
        };
        let all = u32::try_from(d.vcpus.len()).unwrap_or(u32::MAX);
        d.config.as_ref().map_or(all, |c| c.vcpus.min(all)).max(1)
    }

    /// A driver's `max_queues` module parameter in `dom`'s kernel: `<module>.max_queues`
    /// on its command line if non-zero, else `min(MAX_QUEUES_DEFAULT, online vCPUs)`
    /// (`netback_init`, `netif_init`), within xensim's bound.
    fn driver_max_queues(&self, dom: DomId, param: &str) -> u32 {
        let given = self
            .domains
            .get(dom)
            .and_then(|d| d.config.as_ref())
            .and_then(|c| c.kernel_param(param))
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| *v > 0);
        let queues = given.unwrap_or_else(|| MAX_QUEUES_DEFAULT.min(self.online_vcpus(dom)));
        queues.clamp(1, VIF_QUEUES_MAX)
    }

    /// netback's `xenvif_max_queues` in the backend domain's kernel.
    pub(super) fn netback_max_queues(&self, back: DomId) -> u32 {
        self.driver_max_queues(back, "xen_netback.max_queues")
    }

    /// A `bool` module parameter of netback in the backend domain's kernel
    /// (`xen_netback.<name>` on its command line, read as `kstrtobool` does; default
    /// true, as both `separate_tx_rx_irq` and `provides_xdp_headroom` are).
    fn netback_flag(&self, back: DomId, name: &str) -> bool {
        let param = format!("xen_netback.{name}");
        let given = self
            .domains
            .get(back)
            .and_then(|d| d.config.as_ref())
            .and_then(|c| c.kernel_param(&param));
        given.and_then(kernel_bool).unwrap_or(true)
    }

    /// What `netback_probe` offers: `multi-queue-max-queues` (`max_queues`),
    /// `feature-split-event-channels` (`separate_tx_rx_irq`) and `feature-xdp-headroom`
    /// (`provides_xdp_headroom`, Linux >= 5.9).
    pub(super) fn netback_offer(&self, back: DomId) -> BackendOffer {
        BackendOffer {
            queues_max: self.netback_max_queues(back),
            split_evtchn: self.netback_flag(back, "separate_tx_rx_irq"),
            xdp_headroom: self.netback_flag(back, "provides_xdp_headroom"),
        }
    }

    /// `talk_to_netback`: the queues netfront sets up (the backend's maximum, default 1,
    /// capped by its own), whether it splits its ports (the backend's
    /// `feature-split-event-channels`, default 0) and whether it writes the queue count
    /// (`xenbus_exists` of the backend's `multi-queue-max-queues`, a request of its own).
    pub(super) fn netfront_layout(&mut self, conn: &DeviceConn) -> VifLayout {
        let who = DriverXs::Guest(conn.front_dom);
        let back_max = self
            .xs_read_u32(who, &conn.back_path, "multi-queue-max-queues")
            .unwrap_or(1);
        let own_max = self.driver_max_queues(conn.front_dom, "xen_netfront.max_queues");
        let queues = own_max.min(back_max).clamp(1, VIF_QUEUES_MAX);
        let split =
            self.xs_read_u32(who, &conn.back_path, "feature-split-event-channels") == Some(1);
        // xenbus_read_unsigned: missing or not a number reads as 0 (not offered).
        let xdp_headroom = self
            .xs_read_u32(who, &conn.back_path, "feature-xdp-headroom")
            .unwrap_or(0)
            != 0;
        let max_path = format!("{}/multi-queue-max-queues", conn.back_path);
        let count_key = self.driver_read(who, &max_path).is_ok();
        VifLayout {
            queues,
            split,
            count_key,
            xdp_headroom,
        }
    }

    /// `talk_to_netback_xdp`: netfront writes its `xdp-headroom` (`%hu`), outside any
    /// transaction, before it sets up its queues.
    pub(super) fn netfront_write_xdp_headroom(&mut self, conn: &DeviceConn) {
        let path = format!("{}/xdp-headroom", conn.front_path);
        let value = format!("{NETFRONT_XDP_HEADROOM}");
        let who = DriverXs::Guest(conn.front_dom);
        // Linux goes on to `device_unregister` when the write fails; the write of a
        // guest's own device key fails only if its directory is gone, which the close
        // already handles.
        let _ = self.driver_write(who, None, &path, value.as_bytes());
    }

    /// `read_xenbus_frontend_xdp`: the frontend's `xdp-headroom` as `xenbus_scanf("%hu")`
    /// reads it: 0 unless it starts with a number, clamped to `XEN_NETIF_MAX_XDP_HEADROOM`.
    fn netback_read_xdp_headroom(&mut self, conn: &DeviceConn) -> u16 {
        let back = DriverXs::of(conn.back_dom);
        let Ok(value) = self.linux_read_num(back, &conn.front_path, "xdp-headroom", EINVAL) else {
            return 0;
        };
        // `%hu` keeps the low 16 bits of what it parsed.
        let headroom = u16::try_from(value & 0xffff).unwrap_or(0);
        headroom.min(XEN_NETIF_MAX_XDP_HEADROOM)
    }

    /// netback's `connect` on frontend Connected: the queue count, then every queue's
    /// rings and ports. True once every queue is connected (the caller goes Connected).
    pub(super) fn netback_connect<P: Platform + ?Sized>(
        &mut self,
        conn: &mut DeviceConn,
        p: &mut P,
    ) -> bool {
        let back = DriverXs::of(conn.back_dom);
        let max = self.netback_max_queues(conn.back_dom);
        // xenbus_read_unsigned: missing or not a number reads as the default, 1.
        let requested = self
            .xs_read_u32(back, &conn.front_path, "multi-queue-num-queues")
            .unwrap_or(1);
        if requested == 0 || requested > max {
            let message =
                format!("guest requested {requested} queues, exceeding the maximum of {max}.");
            self.netback_fatal(conn, EINVAL, &message);
            return false;
        }
        // read_xenbus_vif_flags, before the queues connect.
        conn.xdp_headroom_bytes = self.netback_read_xdp_headroom(conn);
        let mut done = Connected::default();
        for queue in 0..requested {
            let dir = if requested == 1 {
                conn.front_path.clone()
            } else {
                format!("{}/queue-{queue}", conn.front_path)
            };
            if let Err(Fatal(errno, message)) =
                self.netback_connect_queue(conn, (queue, &dir), &mut done, p)
            {
                self.netback_undo(conn.back_dom, done);
                self.netback_fatal(conn, errno, &message);
                return false;
            }
        }
        let mut ports = done.ports.into_iter();
        conn.back_port = ports.next();
        conn.more_back_ports = ports.collect();
        conn.ring_handles = done.handles;
        true
    }

    /// `connect_data_rings` for queue `queue`, whose keys are under `dir`: the ring refs
    /// (`xenbus_gather`), the split ports or else the shared one, then
    /// `xenvif_connect_data` maps the rings and binds the ports; its bound ports go to
    /// the queue's vCPU (`net_conn.rs`, irqbalance).
    fn netback_connect_queue<P: Platform + ?Sized>(
        &mut self,
        conn: &DeviceConn,
        (queue, dir): (u32, &str),
        done: &mut Connected,
        p: &mut P,
    ) -> Result<(), Fatal> {
        let back = DriverXs::of(conn.back_dom);
        let fatal = |errno: i32, what: &str| Fatal(errno, format!("reading {dir}/{what}"));
        // xenbus_gather stops at the first key it cannot read; a value without a number
        // is -EINVAL there.
        let tx_ring = self
            .linux_read_num(back, dir, "tx-ring-ref", EINVAL)
            .map_err(|e| fatal(e, "ring-ref"))?;
        let rx_ring = self
            .linux_read_num(back, dir, "rx-ring-ref", EINVAL)
            .map_err(|e| fatal(e, "ring-ref"))?;
        // Split ports first, then the shared one (xenbus_scanf: -ERANGE without a number).
        let split = self.linux_read_num(back, dir, "event-channel-tx", EINVAL);
        let split = split.and_then(|tx| {
            let rx = self.linux_read_num(back, dir, "event-channel-rx", EINVAL)?;
            Ok((tx, rx))
        });
        let (tx_port, rx_port) = match split {
            Ok(pair) => pair,
            Err(_) => {
                let port = self
                    .linux_read_num(back, dir, "event-channel", ERANGE)
                    .map_err(|e| fatal(e, "event-channel(-tx/rx)"))?;
                (port, port)
            }
        };
        let mapping = |errno: i32| {
            let message =
                format!("mapping shared-frames {tx_ring}/{rx_ring} port tx {tx_port} rx {rx_port}");
            Fatal(errno, message)
        };
        for raw in [tx_ring, rx_ring] {
            let req = MapRequest {
                granter: conn.front_dom,
                gref: GrantRef::new(raw),
                flags: MapFlags::HOST_RW,
            };
            let frames = super::xenbus_drive::StandInFrames;
            match self.grants.map_grant_ref(conn.back_dom, req, &frames) {
                Ok(mapped) => done.handles.push(mapped.handle),
                // __xenbus_map_ring's own fatal names the grant status; it returns
                // -ENOENT, which connect_data_rings' fatal then writes over it.
                Err(_) => return Err(mapping(ENOENT)),
            }
        }
        let ports = if tx_port == rx_port {
            alloc::vec![tx_port]
        } else {
            alloc::vec![tx_port, rx_port]
        };
        for raw in ports {
            let port = EvtchnPort::new(raw);
            match self
                .evtchn
                .bind_interdomain(conn.back_dom, conn.front_dom, port)
            {
                Ok(bound) => {
                    done.ports.push(bound.port);
                    self.deliver_notify(bound.notify, p);
                    self.vif_port_affinity(conn.back_dom, queue, bound.port);
                }
                Err(error) => return Err(mapping(-error.errno().value())),
            }
        }
        Ok(())
    }

    /// A number key as Linux's xenbus reads it with `%u`/`%lu`: the read's errno when it
    /// fails (`ENOENT` for a missing key), `no_number` when the value does not start with
    /// digits (after blanks and a `+`); digits past `u32` fail like no number.
    fn linux_read_num(
        &mut self,
        who: DriverXs,
        dir: &str,
        key: &str,
        no_number: i32,
    ) -> Result<u32, i32> {
        let path = format!("{dir}/{key}");
        let value = self.driver_read(who, &path).map_err(|e| match e {
            crate::xenstore::XsError::Eacces => EACCES,
            _ => ENOENT,
        })?;
        let text = value.trim_ascii_start();
        let text = text.strip_prefix(b"+").unwrap_or(text);
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        core::str::from_utf8(&text[..digits])
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or(no_number)
    }

    /// Unmaps and closes what a failed connect attempt mapped and bound.
    fn netback_undo(&mut self, back: DomId, done: Connected) {
        for handle in done.handles {
            let _ = self.grants.unmap_grant_ref(back, handle);
        }
        for port in done.ports {
            let _ = self.evtchn.close(back, port);
        }
    }

    /// `xenbus_dev_fatal` from netback: `"<errno> <message>"` into
    /// `~/error/<nodename>/error` of the backend domain, traced, then Closing.
    fn netback_fatal(&mut self, conn: &mut DeviceConn, errno: i32, message: &str) {
        let home = format!("/local/domain/{}/", conn.back_dom.raw());
        let node = conn
            .back_path
            .strip_prefix(&home)
            .unwrap_or(&conn.back_path);
        let path = format!("{home}error/{node}/error");
        let value = format!("{errno} {message}");
        let _ = self.driver_write(DriverXs::of(conn.back_dom), None, &path, value.as_bytes());
        self.xenbus_traces.push(TraceEvent::XenbusFatal {
            path: conn.back_path.clone(),
            message: value,
        });
        if legal(End::Backend, conn.back_state, XenbusState::Closing) {
            self.set_state(conn, End::Backend, XenbusState::Closing);
        }
    }
}

/// A Linux `bool` module parameter's value (`kstrtobool`: `y`/`Y`/`1`/`on` true,
/// `n`/`N`/`0`/`off` false); anything else is rejected and the default stays.
fn kernel_bool(value: &str) -> Option<bool> {
    match value.as_bytes() {
        [b'y' | b'Y' | b'1', ..] => Some(true),
        [b'n' | b'N' | b'0', ..] => Some(false),
        [b'o' | b'O', b'n' | b'N', ..] => Some(true),
        [b'o' | b'O', b'f' | b'F', ..] => Some(false),
        _ => None,
    }
}
