//! The device-model stub domain of an HVM guest with `device_model_stubdomain_override=1`:
//! created by the toolstack with the guest, destroyed with it, with a PV vif of its own
//! for each of the guest's nics.
//!
//! Follows tools/libs/light/libxl_dm.c (`libxl__spawn_stub_dm`: a PV domain named
//! `<guest>-dm` (`libxl__stub_dm_name`), one vCPU, `stubdomain_memkb` plus the guest's
//! `video_memkb` of memory; `libxl__dm_vifs_from_hvm_guest_config`: every guest nic,
//! its MAC, bridge and backend included, becomes a nic of the stub domain of type `vif`
//! whose `vifname`, if any, gets the `-emu` suffix; `spawn_stubdom_pvqemu_cb` adds them
//! with `libxl__add_nics`), libxl_create.c (`stubdomain_memkb` defaults to
//! `LIBXL_LINUX_STUBDOM_MEM`, 128 MiB, for the qemu-xen Linux stub domain; the guest's
//! creation goes on only once its device model runs), and libxl_domain.c
//! (`libxl__destroy_domid` destroys the device model, the stub domain, before the
//! guest's devices).
//!
//! # Invariants
//! - A guest has at most one stub domain, recorded in the ioreq state while both live.
//! - The stub domain's vifs are the guest's, devid for devid, with the guest's MACs.
//!
//! xensim differs, on purpose: the stub domain is spawned when the guest's devices are
//! added; the guest's `xl create` waits (before the unpause) until every vif of the stub
//! domain connected or can get no further, standing in for libxl's wait for QEMU in the
//! stub domain to report `running`. The stub domain gets no disks of its own (its
//! QEMU's disk I/O uses the guest's vbd path, see `hypervisor/ioreq.rs`); its uuid is
//! derived from the guest's instead of drawn at random.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use crate::domain::Dying;
use crate::hypervisor::Hypervisor;
use crate::ids::DomId;
use crate::io::handshake::DeviceKind;
use crate::io::xenbus::XenbusState;
use crate::platform::Platform;
use crate::toolstack::config::{DomainConfig, GuestType, VifCfg};
use crate::toolstack::jobs::Job;
use crate::toolstack::ops::ToolstackOp;
use crate::toolstack::xs_tree::{video_memory_kib, vif_mac};

/// `LIBXL_LINUX_STUBDOM_MEM` (libxl_internal.h), MiB.
pub const LINUX_STUBDOM_MEM_MIB: u64 = 128;

/// The stub domain's configuration for `guest` (`libxl__spawn_stub_dm`).
pub fn stubdom_config(guest: &DomainConfig) -> DomainConfig {
    let mut dm = DomainConfig::with_defaults(format!("{}-dm", guest.name));
    dm.guest_type = GuestType::Pv;
    let memory_kib = LINUX_STUBDOM_MEM_MIB * 1024 + video_memory_kib(guest.guest_type);
    dm.memory_kib = memory_kib;
    dm.max_memory_kib = memory_kib;
    dm
}

/// libxl's `TAP_DEVICE_SUFFIX`: a stub domain's copy of a nic named `vifname=` is named
/// with this suffix.
pub const TAP_DEVICE_SUFFIX: &str = "-emu";

/// The stub domain's nics (`libxl__dm_vifs_from_hvm_guest_config`): each of the guest's,
/// with the MAC libxl gave it (from the guest's uuid when `mac=` is not set), type `vif`,
/// and `-emu` after a `vifname=`.
pub fn stubdom_vifs(guest: &DomainConfig, guest_uuid: &[u8; 16]) -> alloc::vec::Vec<VifCfg> {
    let mut vifs = alloc::vec::Vec::with_capacity(guest.vifs.len());
    for (index, vif) in guest.vifs.iter().enumerate() {
        let devid = u32::try_from(index).unwrap_or(u32::MAX);
        let mut copy = vif.clone();
        copy.mac = Some(vif_mac(vif, guest_uuid, devid));
        copy.other.retain(|(key, _)| key != "type");
        for (key, value) in &mut copy.other {
            if key == "vifname" {
                value.push_str(TAP_DEVICE_SUFFIX);
            }
        }
        copy.other.push((String::from("type"), String::from("vif")));
        vifs.push(copy);
    }
    vifs
}

/// A uuid for the stub domain, derived from the guest's (version-4 bits kept).
fn stubdom_uuid(guest: &[u8; 16]) -> [u8; 16] {
    let mut uuid = *guest;
    for byte in &mut uuid[10..] {
        *byte ^= 0xa5;
    }
    uuid
}

impl Hypervisor {
    /// The guest's devices were added: spawn its stub domain if its config asks for one.
    pub(super) fn stubdom_spawn<P: Platform + ?Sized>(&mut self, guest: DomId, p: &mut P) {
        let Some(d) = self.domains.get(guest) else {
            return;
        };
        let Some(config) = d.config.as_ref().filter(|c| c.wants_stubdomain()) else {
            return;
        };
        let mut dm = stubdom_config(config);
        dm.vifs = stubdom_vifs(config, &d.uuid);
        let name = dm.name.clone();
        let uuid = stubdom_uuid(&d.uuid);
        let job = self.internal_job_id();
        let op = ToolstackOp::Create {
            config: Box::new(dm),
            uuid,
            paused: false,
        };
        let started = self.start_job(job, &op, p);
        debug_assert!(started.is_ok(), "a fresh internal job id");
        let stub = self
            .domains
            .iter()
            .find(|s| s.dying == Dying::Alive && s.name == name)
            .map(|s| s.id);
        if let Some(stub) = stub {
            assert!(stub != guest, "a guest is not its own stub domain");
            self.ioreq.stubdom_of.insert(guest, stub);
        }
    }

    /// True once `guest`'s device model is up as far as its create waits for it: no stub
    /// domain, a dead one, or one whose create finished and whose vifs all connected (or
    /// can get no further).
    pub(crate) fn stubdom_ready(&self, guest: DomId) -> bool {
        let Some(stub) = self.ioreq.stubdom_of.get(&guest).copied() else {
            return true;
        };
        if !self.is_alive(stub) {
            return true;
        }
        let creating = self
            .jobs
            .values()
            .any(|j| matches!(j, Job::Create { dom, .. } if *dom == stub));
        if creating {
            return false;
        }
        let vifs_up = self
            .device_conns(stub)
            .iter()
            .filter(|c| c.kind == DeviceKind::Vif)
            .all(|c| c.back_state == XenbusState::Connected);
        vifs_up || self.xenbus_settled(stub)
    }

    /// The guest is being destroyed: its stub domain goes first.
    pub(super) fn stubdom_destroy<P: Platform + ?Sized>(&mut self, guest: DomId, p: &mut P) {
        let Some(stub) = self.ioreq.stubdom_of.remove(&guest) else {
            return;
        };
        if !self.is_alive(stub) || self.destroy_running(stub) {
            return;
        }
        let job = self.internal_job_id();
        let destroyed = self.destroy_start(job, stub, None, p);
        debug_assert!(destroyed.is_ok(), "destroy of a live stub domain");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubdom_is_a_one_vcpu_pv_domain_named_after_the_guest() {
        let mut guest = DomainConfig::with_defaults("web".into());
        guest.guest_type = GuestType::Hvm;
        let dm = stubdom_config(&guest);
        assert_eq!(dm.name, "web-dm");
        assert_eq!(dm.guest_type, GuestType::Pv);
        assert_eq!(dm.vcpus, 1);
        // 128 MiB of stub domain plus the guest's 8 MiB of video memory.
        assert_eq!(dm.memory_kib, 136 * 1024);
        assert_eq!(dm.max_memory_kib, 136 * 1024);
    }
}
