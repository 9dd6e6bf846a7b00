//! The typed domain configuration the toolstack hands to the core: libxl's
//! `libxl_domain_config` reduced to what xensim models.
//!
//! Follows tools/xl/xl_parse.c (`parse_config_data`) for defaults and
//! docs/man/xl.cfg.5.pod.in for meaning. Text parsing lives in the sim
//! (`sim/src/scenario/xlcfg.rs`); the core only sees these types.
//!
//! # Invariants
//! - `vcpus <= max_vcpus`, `memory_kib <= max_memory_kib` (checked by [`DomainConfig::validate`]).
//! - cpumasks are already resolved against the host (`node:N`, ranges and `^` are gone).

use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;

/// Guest type (`type=`), `libxl_domain_type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GuestType {
    /// Paravirtualised guest.
    Pv,
    /// PVH guest.
    Pvh,
    /// Fully virtualised guest.
    Hvm,
}

impl GuestType {
    /// The name xl uses (`"pv"`, `"pvh"`, `"hvm"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Pvh => "pvh",
            GuestType::Hvm => "hvm",
        }
    }
}

/// What the toolstack does when the domain shuts down (`on_poweroff=` and friends),
/// `libxl_action_on_shutdown`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownAction {
    /// Destroy the domain.
    Destroy,
    /// Destroy it and create it again from the same configuration.
    Restart,
    /// Keep the dead domain renamed and create a new one.
    RenameRestart,
    /// Leave it shut down for inspection.
    Preserve,
    /// Dump core, then destroy.
    CoredumpDestroy,
    /// Dump core, then restart.
    CoredumpRestart,
    /// Soft reset (HVM only).
    SoftReset,
}

impl ShutdownAction {
    /// Every action, in `libxl_action_on_shutdown` order.
    pub const ALL: [ShutdownAction; 7] = [
        ShutdownAction::Destroy,
        ShutdownAction::Restart,
        ShutdownAction::RenameRestart,
        ShutdownAction::Preserve,
        ShutdownAction::CoredumpDestroy,
        ShutdownAction::CoredumpRestart,
        ShutdownAction::SoftReset,
    ];

    /// xl.cfg spelling of the action.
    pub const fn as_str(self) -> &'static str {
        match self {
            ShutdownAction::Destroy => "destroy",
            ShutdownAction::Restart => "restart",
            ShutdownAction::RenameRestart => "rename-restart",
            ShutdownAction::Preserve => "preserve",
            ShutdownAction::CoredumpDestroy => "coredump-destroy",
            ShutdownAction::CoredumpRestart => "coredump-restart",
            ShutdownAction::SoftReset => "soft-reset",
        }
    }
}

/// A vCPU affinity setting (`cpus=` / `cpus_soft=`), already resolved to masks.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AffinityCfg {
    /// Not given: every pCPU.
    All,
    /// One mask for every vCPU (`cpus = "0-3"`).
    Same(CpuMask),
    /// One mask per vCPU (`cpus = ["0", "1"]`); vCPUs past the list get every pCPU.
    PerVcpu(Vec<CpuMask>),
}

impl AffinityCfg {
    /// The mask for vCPU `index` on a host of `width` pCPUs.
    pub fn for_vcpu(&self, index: usize, width: u32) -> CpuMask {
        match self {
            AffinityCfg::All => CpuMask::full(width),
            AffinityCfg::Same(mask) => mask.clone(),
            AffinityCfg::PerVcpu(masks) => masks
                .get(index)
                .cloned()
                .unwrap_or_else(|| CpuMask::full(width)),
        }
    }
}

/// Where an HVM guest's emulated devices are handled and whether it uses PV drivers
/// (`xen_platform_pci=`, `device_model_stubdomain_override=`); PV and PVH guests have no
/// device model and ignore both.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeviceModelCfg {
    /// `xen_platform_pci=` (default 1): the Xen platform PCI device is present, so the
    /// guest's PV drivers bind (PVHVM). 0: its disks are QEMU's emulated ones.
    pub platform_pci: bool,
    /// `device_model_stubdomain_override=1`: QEMU runs in a stub domain `<name>-dm`.
    pub stubdomain: bool,
}

impl DeviceModelCfg {
    /// libxl's defaults: platform device present, QEMU in dom0.
    pub const DEFAULT: DeviceModelCfg = DeviceModelCfg {
        platform_pci: true,
        stubdomain: false,
    };
}

/// One `vif=` entry (xl-network-configuration(5)), fields as written.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct VifCfg {
    /// `mac=`, if given.
    pub mac: Option<String>,
    /// `bridge=` (default `xenbr0`, from xl.conf).
    pub bridge: Option<String>,
    /// `backend=` domain name (default dom0).
    pub backend: Option<String>,
    /// `model=`, `type=`, `vifname=`, `script=`, `ip=`, `rate=`, ... kept verbatim in order.
    pub other: Vec<(String, String)>,
}

/// Disk access mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DiskAccess {
    /// `rw` / `w`.
    ReadWrite,
    /// `ro` / `r`.
    ReadOnly,
}

/// One `disk=` entry (xl-disk-configuration(5)).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DiskCfg {
    /// `target=`: the backing path (may be empty for an empty cdrom).
    pub target: String,
    /// `format=` (`raw` by default).
    pub format: String,
    /// `vdev=` (mandatory): `xvda`, `hda`, ...
    pub vdev: String,
    /// `access=`.
    pub access: DiskAccess,
    /// `devtype=cdrom` / `cdrom` flag.
    pub cdrom: bool,
    /// `backend=` domain name.
    pub backend: Option<String>,
}

/// The domain configuration: what `xl create` passes to libxl after parsing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DomainConfig {
    /// `name=`.
    pub name: String,
    /// `type=`.
    pub guest_type: GuestType,
    /// Initial target (`memory=`), KiB.
    pub memory_kib: u64,
    /// Static maximum (`maxmem=`), KiB.
    pub max_memory_kib: u64,
    /// vCPUs online at boot (`vcpus=`).
    pub vcpus: u32,
    /// vCPUs the domain is built with (`maxvcpus=`).
    pub max_vcpus: u32,
    /// Hard affinity (`cpus=`).
    pub cpus: AffinityCfg,
    /// Soft affinity (`cpus_soft=`).
    pub cpus_soft: AffinityCfg,
    /// Scheduler weight (`cpu_weight=`, 1..=65535, default 256).
    pub weight: u32,
    /// Cap in percent of one pCPU (`cap=`, 0 = none).
    pub cap: u32,
    /// Cpupool name (`pool=`), `None` for Pool-0.
    pub pool: Option<String>,
    /// `on_poweroff=`.
    pub on_poweroff: ShutdownAction,
    /// `on_reboot=`.
    pub on_reboot: ShutdownAction,
    /// `on_watchdog=`.
    pub on_watchdog: ShutdownAction,
    /// `on_crash=`.
    pub on_crash: ShutdownAction,
    /// `on_soft_reset=`.
    pub on_soft_reset: ShutdownAction,
    /// `kernel=` (direct kernel boot).
    pub kernel: Option<String>,
    /// `vif=` entries in order (DEVID = index).
    pub vifs: Vec<VifCfg>,
    /// `disk=` entries in order.
    pub disks: Vec<DiskCfg>,
    /// `driver_domain=1`: the domain runs backends for other domains' devices (libxl
    /// gives it `~/libxl` and `~/device-model`; its kernel watches `~/backend`).
    pub driver_domain: bool,
    /// The device model (HVM only).
    pub device_model: DeviceModelCfg,
    /// The guest kernel's command line as xl builds it (`cmdline=`, else `root=` and
    /// `extra=`); the guest's drivers read their parameters there.
    pub cmdline: Option<String>,
}

/// Why a [`DomainConfig`] is not acceptable to libxl.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConfigError {
    /// `maxvcpus` is smaller than `vcpus`.
    VcpusAboveMax,
    /// `vcpus` is zero.
    NoVcpus,
    /// More vCPUs than Xen allows per domain.
    TooManyVcpus,
    /// `memory` is larger than `maxmem`.
    MemoryAboveMax,
    /// Weight outside 1..=65535.
    WeightOutOfRange,
    /// The name is empty or too long.
    BadName,
    /// A cpumask was built for a host with another number of pCPUs.
    CpumaskWidth,
}

impl DomainConfig {
    /// libxl's defaults for a domain called `name` (`libxl_domain_build_info_init` and
    /// `parse_config_data`): PV, 32 MiB... xl sets `memory` to 32 MiB when absent... one vCPU.
    pub fn with_defaults(name: String) -> DomainConfig {
        DomainConfig {
            name,
            guest_type: GuestType::Pv,
            memory_kib: 32 * 1024,
            max_memory_kib: 32 * 1024,
            vcpus: 1,
            max_vcpus: 1,
            cpus: AffinityCfg::All,
            cpus_soft: AffinityCfg::All,
            weight: 256,
            cap: 0,
            pool: None,
            on_poweroff: ShutdownAction::Destroy,
            on_reboot: ShutdownAction::Restart,
            on_watchdog: ShutdownAction::Destroy,
            on_crash: ShutdownAction::Destroy,
            on_soft_reset: ShutdownAction::SoftReset,
            kernel: None,
            vifs: Vec::new(),
            disks: Vec::new(),
            driver_domain: false,
            device_model: DeviceModelCfg::DEFAULT,
            cmdline: None,
        }
    }

    /// The value of kernel parameter `name` (`name=value`) on the command line, the last
    /// one if it is given twice (as Linux's `parse_args` applies them in order).
    pub fn kernel_param(&self, name: &str) -> Option<&str> {
        let cmdline = self.cmdline.as_deref()?;
        cmdline
            .split_ascii_whitespace()
            .filter_map(|word| word.split_once('='))
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .next_back()
    }

    /// True when the guest's disks are emulated by a device model (an HVM guest without
    /// the platform PCI device, so without PV drivers).
    pub fn disks_emulated(&self) -> bool {
        self.guest_type == GuestType::Hvm && !self.device_model.platform_pci
    }

    /// True when the toolstack builds a stub domain for this guest's device model
    /// (libxl honours the override for HVM guests only).
    pub fn wants_stubdomain(&self) -> bool {
        self.guest_type == GuestType::Hvm && self.device_model.stubdomain
    }

    /// Checks the relations libxl checks before it asks Xen for anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() || self.name.len() > crate::limits::DOMAIN_NAME_BYTES_MAX {
            return Err(ConfigError::BadName);
        }
        if self.vcpus == 0 {
            return Err(ConfigError::NoVcpus);
        }
        if self.vcpus > self.max_vcpus {
            return Err(ConfigError::VcpusAboveMax);
        }
        if self.max_vcpus > crate::limits::MAX_VIRT_CPUS {
            return Err(ConfigError::TooManyVcpus);
        }
        if self.memory_kib > self.max_memory_kib {
            return Err(ConfigError::MemoryAboveMax);
        }
        if self.weight == 0 || self.weight > 65_535 {
            return Err(ConfigError::WeightOutOfRange);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_param_takes_the_last_of_a_repeated_parameter() {
        let mut config = DomainConfig::with_defaults(String::from("a"));
        config.cmdline = Some(String::from("root=/dev/xvda1 quiet q=1 q=3"));
        assert_eq!(config.kernel_param("q"), Some("3"));
        assert_eq!(config.kernel_param("root"), Some("/dev/xvda1"));
        assert_eq!(config.kernel_param("quiet"), None);
    }
}
