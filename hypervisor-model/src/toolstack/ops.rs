//! Typed toolstack operations (what xl asks libxl to do), their replies, and what a guest
//! kernel is told.
//!
//! Follows tools/libs/light/libxl_create.c (create), libxl_domain.c (destroy, pause,
//! unpause, shutdown) and tools/xl/xl_vmcontrol.c. Text parsing and xl's messages live in
//! the sim; the core receives and returns types.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::domain::ShutdownReason;
use crate::encode::{DecodeError, Decoder, Encoder, FieldSink};
use crate::ids::{DomId, PcpuId, PoolId, VcpuId};
use crate::sched::params::{DomParams, PoolParams, SchedError, VcpuParams};
use crate::sched::SchedKind;
use crate::toolstack::config::{
    AffinityCfg, ConfigError, DeviceModelCfg, DiskAccess, DiskCfg, DomainConfig, GuestType,
    ShutdownAction, VifCfg,
};
pub use crate::toolstack::ops_sched::PoolError;

/// Identifies one toolstack operation (one xl process) for its whole life.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct JobId(pub u32);

/// An operation xl asks of libxl and Xen.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ToolstackOp {
    /// `xl create`: build a domain from `config`, unpause it unless `paused`.
    Create {
        /// The parsed configuration.
        config: alloc::boxed::Box<DomainConfig>,
        /// The domain handle (UUID) libxl generated.
        uuid: [u8; 16],
        /// `-p`.
        paused: bool,
    },
    /// `xl destroy`.
    Destroy {
        /// The domain.
        dom: DomId,
    },
    /// `xl pause`.
    Pause {
        /// The domain.
        dom: DomId,
    },
    /// `xl unpause`.
    Unpause {
        /// The domain.
        dom: DomId,
    },
    /// `xl shutdown` / `xl reboot`: ask the guest to shut down with `reason`.
    Shutdown {
        /// The domain.
        dom: DomId,
        /// Poweroff or reboot.
        reason: ShutdownReason,
    },
    /// `xl vcpu-pin`: `libxl_set_vcpuaffinity` (one vCPU) or `_all` (`vcpu: None`).
    VcpuAffinity {
        /// The domain.
        dom: DomId,
        /// The vCPU, or every vCPU.
        vcpu: Option<VcpuId>,
        /// New hard affinity (`None` = unchanged).
        hard: Option<CpuMask>,
        /// New soft affinity (`None` = unchanged).
        soft: Option<CpuMask>,
    },
    /// `libxl_cpupool_create`: a new pool with any free id, then each CPU added in turn
    /// (the pool is destroyed again if one cannot be added).
    CpupoolCreate {
        /// Pool name (kept by the toolstack in XenStore; xl checks it is unique).
        name: String,
        /// Its scheduler.
        sched: SchedKind,
        /// Its CPUs (may be empty).
        cpus: CpuMask,
    },
    /// `libxl_cpupool_destroy`: refused while the pool has domains; removes its CPUs, then
    /// destroys it.
    CpupoolDestroy {
        /// The pool.
        pool: PoolId,
    },
    /// `XEN_SYSCTL_CPUPOOL_OP_ADDCPU` for each CPU in ascending order, stopping at the first
    /// failure (libxl issues one call per CPU, so xl sends one CPU at a time).
    CpupoolCpuAdd {
        /// The pool.
        pool: PoolId,
        /// CPUs to add.
        cpus: CpuMask,
    },
    /// `XEN_SYSCTL_CPUPOOL_OP_RMCPU` for each CPU in ascending order, stopping at the first
    /// failure.
    CpupoolCpuRemove {
        /// The pool.
        pool: PoolId,
        /// CPUs to remove.
        cpus: CpuMask,
    },
    /// `XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN` (`xl cpupool-migrate`).
    CpupoolMigrate {
        /// The domain.
        dom: DomId,
        /// The target pool.
        pool: PoolId,
    },
    /// `XEN_DOMCTL_SCHEDOP_putinfo` (`libxl_domain_sched_params_set`, after libxl's checks).
    SchedDomParams {
        /// The domain.
        dom: DomId,
        /// Complete parameters (libxl reads the current ones and overrides what xl gave).
        params: DomParams,
    },
    /// `XEN_DOMCTL_SCHEDOP_putvcpuinfo`: `libxl_vcpu_sched_params_set` (listed vCPUs, one
    /// parameter set each) or `_set_all` (`vcpus: None`, `params[0]` for every vCPU).
    SchedVcpuParams {
        /// The domain.
        dom: DomId,
        /// The vCPUs, or every vCPU.
        vcpus: Option<Vec<VcpuId>>,
        /// One entry per listed vCPU, or one for all.
        params: Vec<VcpuParams>,
    },
    /// A xenstore-* client that changes the store (`xenstore-write`, `xenstore-rm`), run as a
    /// privileged dom0 process; the reply is [`ToolstackReply::XsOutput`].
    XsClient(crate::toolstack::xs_client::XsClientCmd),
    /// `XEN_SYSCTL_SCHEDOP_putinfo` (`xl sched-credit2 -s -r`).
    SchedPoolParams {
        /// The pool.
        pool: PoolId,
        /// New parameters.
        params: PoolParams,
    },
    /// `xl mem-set`: `libxl_set_memory_target(domid, target, relative 0, enforce 1)`.
    MemSet {
        /// The domain.
        dom: DomId,
        /// The new target as xl parsed it, KiB.
        target_kib: u64,
    },
    /// `xl mem-max`: `libxl_domain_setmaxmem`.
    MemMax {
        /// The domain.
        dom: DomId,
        /// The new static maximum, KiB.
        max_kib: u64,
    },
}

/// Why an operation failed, as libxl/Xen report it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ToolstackError {
    /// The domain does not exist (`ERROR_DOMAIN_NOTFOUND` / `-ESRCH`).
    NoSuchDomain,
    /// The configuration is inconsistent (libxl's checks).
    Config(ConfigError),
    /// `pool=` names no cpupool.
    NoSuchPool,
    /// Not enough free memory to build the domain.
    OutOfMemory {
        /// Pages the domain needed.
        needed_pages: u64,
        /// Free pages on the host.
        free_pages: u64,
    },
    /// No free domain id (`-ENOMEM` from createdomain).
    NoFreeDomid,
    /// The operation is not allowed on this domain (dom0, or a dying domain).
    NotPermitted,
    /// `xl unpause` of a domain the toolstack has not paused (`-EINVAL`).
    NotPaused,
    /// More than 255 toolstack pauses (`-EOVERFLOW`).
    PauseOverflow,
    /// A cpumask leaves a vCPU no pCPU to run on.
    EmptyAffinity,
    /// Another live domain has this name (`libxl__domain_rename`: names are unique).
    NameInUse,
    /// A cpupool operation failed.
    Pool(PoolError),
    /// Adding or removing this CPU failed (the CPUs before it were done).
    PoolCpu {
        /// The CPU.
        cpu: PcpuId,
        /// Why.
        error: PoolError,
    },
    /// The pool's scheduler refused the parameters.
    Sched(SchedError),
    /// The vCPU id is not below the domain's `max_vcpus` (`-EINVAL`).
    InvalidVcpu,
    /// libxl's credit2 cap check at build: the cap is above `100 * max_vcpus`.
    CapOutOfRange {
        /// The largest cap allowed.
        cap_max: u32,
    },
    /// `xl mem-set` / `xl mem-max` refused by libxl.
    Mem(crate::toolstack::mem_ops::MemOpError),
    /// A `disk=` entry's `backend=` names no live domain (`libxl__resolve_domid`).
    NoSuchBackend {
        /// The disk's index in `disk=`.
        disk_index: u32,
    },
    /// A `vif=` entry's `backend=` names no live domain (`libxl__device_nic_setdefault`
    /// fails, and with it `domcreate_attach_devices`).
    NoSuchVifBackend,
    /// A device's `backend=` names a live domain whose kernel runs no backends (not a
    /// driver domain): its backend never reaches InitWait and libxl's wait times out.
    BackendNotReady {
        /// A vif (else a vbd).
        vif: bool,
        /// The backend domain.
        backend: DomId,
        /// The device id (a vbd's `virtual-device` number).
        devid: u32,
    },
}

/// What the core tells the toolstack process about its operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ToolstackReply {
    /// The domain struct exists (the domid is known); building goes on.
    Created {
        /// The new domain.
        dom: DomId,
    },
    /// What a xenstore-* client printed (sent before its `Done`).
    XsOutput(crate::xenstore::client::ClientOutput),
    /// The operation finished.
    Done {
        /// Success, or the failure.
        result: Result<(), ToolstackError>,
    },
}

/// What a guest kernel learns from Xen or the toolstack.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GuestNotice {
    /// `control/shutdown` was written: the guest should call SCHEDOP_shutdown(reason).
    ShutdownRequested(ShutdownReason),
    /// The domain is gone; any pending guest activity must stop.
    Destroyed,
    /// blkfront completed a disk I/O of vbd `vdev` (its interrupt handler ran).
    BlkDone {
        /// The vbd's `virtual-device` number.
        vdev: u32,
        /// How it ended.
        done: crate::io::vbd::IoDone,
    },
    /// netfront received a frame on vif `devid` (its poll ran).
    NetReceived {
        /// The vif's device id.
        devid: u32,
        /// The frame.
        packet: crate::io::vif::NetPacket,
    },
    /// Vif `devid` connected (netback went Connected): the bridge learns its MAC.
    VifConnected {
        /// The vif's device id.
        devid: u32,
        /// The MAC the toolstack gave it.
        mac: crate::io::vif::Mac,
    },
    /// The emulated card of nic `devid` left its bridge (its device model went).
    VifGone {
        /// The nic's device id.
        devid: u32,
    },
    /// A frame of vif `devid` was dropped in the guest's netfront or its netback.
    NetDropped {
        /// The vif's device id.
        devid: u32,
        /// `NetDropReason` code.
        reason: u8,
    },
}

/// Stable step codes for `TraceEvent::JobStep`, per job kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JobStepCode {
    /// createdomain + max_vcpus done.
    CreateDomain = 1,
    /// One memory extent populated.
    Populate = 2,
    /// Kernel loaded, start info and devices set up.
    Build = 3,
    /// Domain unpaused (or left paused with `-p`).
    CreateFinish = 4,
    /// Destroy: domain paused, devices and XenStore entries removed.
    DestroyDevices = 5,
    /// Destroy: one chunk of pages relinquished.
    Relinquish = 6,
    /// Destroy: domain struct freed.
    DestroyFinish = 7,
    /// Device directories written (disks, console, vifs).
    Devices = 8,
    /// Destroy: every split device's forced remove started (frontend gone, backend
    /// `online = 0`, Closing); the job waits for the backends to close.
    DestroyUnplug = 9,
}

impl JobStepCode {
    /// The step with code `code`, if any.
    pub const fn from_code(code: u8) -> Option<JobStepCode> {
        match code {
            1 => Some(JobStepCode::CreateDomain),
            2 => Some(JobStepCode::Populate),
            3 => Some(JobStepCode::Build),
            4 => Some(JobStepCode::CreateFinish),
            5 => Some(JobStepCode::DestroyDevices),
            6 => Some(JobStepCode::Relinquish),
            7 => Some(JobStepCode::DestroyFinish),
            8 => Some(JobStepCode::Devices),
            9 => Some(JobStepCode::DestroyUnplug),
            _ => None,
        }
    }

    /// A short name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            JobStepCode::CreateDomain => "createdomain",
            JobStepCode::Populate => "populate",
            JobStepCode::Build => "build",
            JobStepCode::CreateFinish => "create-finish",
            JobStepCode::DestroyDevices => "destroy-devices",
            JobStepCode::Relinquish => "relinquish",
            JobStepCode::DestroyFinish => "destroy-finish",
            JobStepCode::Devices => "devices",
            JobStepCode::DestroyUnplug => "unplug",
        }
    }
}

impl ToolstackOp {
    /// Appends the pinned canonical encoding of this operation.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if crate::toolstack::ops_sched::encode(self, out)
            || crate::toolstack::mem_ops::encode(self, out)
        {
            return;
        }
        let mut e = Encoder::new(out);
        match self {
            ToolstackOp::Create {
                config,
                uuid,
                paused,
            } => {
                e.u8(1).bool(*paused);
                for byte in uuid {
                    e.u8(*byte);
                }
                encode_config(&mut e, config);
            }
            ToolstackOp::Destroy { dom } => {
                e.u8(2).dom(*dom);
            }
            ToolstackOp::Pause { dom } => {
                e.u8(3).dom(*dom);
            }
            ToolstackOp::Unpause { dom } => {
                e.u8(4).dom(*dom);
            }
            ToolstackOp::Shutdown { dom, reason } => {
                e.u8(5).dom(*dom).u8(reason.code());
            }
            ToolstackOp::VcpuAffinity {
                dom,
                vcpu,
                hard,
                soft,
            } => {
                e.u8(6).dom(*dom);
                match vcpu {
                    Some(v) => e.u8(1).u32(v.raw()),
                    None => e.u8(0),
                };
                for mask in [hard, soft] {
                    match mask {
                        Some(m) => {
                            e.u8(1);
                            encode_mask(&mut e, m);
                        }
                        None => {
                            e.u8(0);
                        }
                    }
                }
            }
            ToolstackOp::XsClient(cmd) => {
                e.u8(TAG_XS_CLIENT);
                cmd.encode(&mut e);
            }
            _ => unreachable!("scheduler and memory operations are encoded elsewhere"),
        }
    }
}

/// Tag of [`ToolstackOp::XsClient`] (clear of the scheduler operations' 7..=14).
const TAG_XS_CLIENT: u8 = 32;

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn encode_config(e: &mut Encoder<'_>, c: &DomainConfig) {
    e.str(&c.name).str(c.guest_type.as_str());
    e.u64(c.memory_kib)
        .u64(c.max_memory_kib)
        .u32(c.vcpus)
        .u32(c.max_vcpus);
    encode_affinity(e, &c.cpus);
    encode_affinity(e, &c.cpus_soft);
    e.u32(c.weight)
        .u32(c.cap)
        .str(c.pool.as_deref().unwrap_or(""));
    for action in [
        c.on_poweroff,
        c.on_reboot,
        c.on_watchdog,
        c.on_crash,
        c.on_soft_reset,
    ] {
        e.str(action.as_str());
    }
    e.str(c.kernel.as_deref().unwrap_or(""));
    e.u32(count(c.vifs.len()));
    for vif in &c.vifs {
        for field in [&vif.mac, &vif.bridge, &vif.backend] {
            e.str(field.as_deref().unwrap_or(""));
        }
        e.u32(count(vif.other.len()));
        for (key, value) in &vif.other {
            e.str(key).str(value);
        }
    }
    e.u32(count(c.disks.len()));
    for disk in &c.disks {
        e.str(&disk.target).str(&disk.format).str(&disk.vdev);
        e.bool(disk.access == DiskAccess::ReadOnly).bool(disk.cdrom);
        e.str(disk.backend.as_deref().unwrap_or(""));
    }
    e.bool(c.driver_domain);
    // A non-default device model is a trailing extension, so configurations without one
    // keep their encoding (and every run hash that holds them).
    if c.device_model != DeviceModelCfg::DEFAULT {
        e.u8(EXT_DEVICE_MODEL)
            .bool(c.device_model.platform_pci)
            .bool(c.device_model.stubdomain);
    }
    // So is a kernel command line.
    if let Some(cmdline) = &c.cmdline {
        e.u8(EXT_CMDLINE).str(cmdline);
    }
}

/// Tag of the device-model extension at the end of an encoded configuration.
const EXT_DEVICE_MODEL: u8 = 1;
/// Tag of the kernel command-line extension.
const EXT_CMDLINE: u8 = 2;

fn encode_affinity(e: &mut Encoder<'_>, a: &AffinityCfg) {
    match a {
        AffinityCfg::All => {
            e.u8(0);
        }
        AffinityCfg::Same(mask) => {
            e.u8(1);
            encode_mask(e, mask);
        }
        AffinityCfg::PerVcpu(masks) => {
            e.u8(2).u32(count(masks.len()));
            for mask in masks {
                encode_mask(e, mask);
            }
        }
    }
}

fn encode_mask(e: &mut Encoder<'_>, mask: &CpuMask) {
    e.u32(mask.width()).u32(mask.weight());
    for cpu in mask.iter() {
        e.pcpu(cpu);
    }
}

impl ToolstackOp {
    /// Reads an operation back from its canonical encoding.
    pub fn decode(d: &mut Decoder<'_>) -> Result<ToolstackOp, DecodeError> {
        match d.u8()? {
            1 => {
                let paused = d.bool()?;
                let mut uuid = [0u8; 16];
                for byte in &mut uuid {
                    *byte = d.u8()?;
                }
                let config = Box::new(decode_config(d)?);
                Ok(ToolstackOp::Create {
                    config,
                    uuid,
                    paused,
                })
            }
            2 => Ok(ToolstackOp::Destroy { dom: d.dom()? }),
            3 => Ok(ToolstackOp::Pause { dom: d.dom()? }),
            4 => Ok(ToolstackOp::Unpause { dom: d.dom()? }),
            5 => {
                let dom = d.dom()?;
                let reason = decode_reason(d)?;
                Ok(ToolstackOp::Shutdown { dom, reason })
            }
            6 => {
                let dom = d.dom()?;
                let vcpu = match d.u8()? {
                    0 => None,
                    _ => Some(VcpuId::new(d.u32()?).ok_or_else(|| d.error("a vCPU id"))?),
                };
                let hard = decode_opt_mask(d)?;
                let soft = decode_opt_mask(d)?;
                Ok(ToolstackOp::VcpuAffinity {
                    dom,
                    vcpu,
                    hard,
                    soft,
                })
            }
            TAG_XS_CLIENT => Ok(ToolstackOp::XsClient(
                crate::toolstack::xs_client::XsClientCmd::decode(d)?,
            )),
            tag @ crate::toolstack::ops_sched::TAG_CPUPOOL_CREATE
                ..=crate::toolstack::ops_sched::TAG_SCHED_POOL => {
                crate::toolstack::ops_sched::decode(tag, d)
            }
            tag @ (crate::toolstack::mem_ops::TAG_MEM_SET
            | crate::toolstack::mem_ops::TAG_MEM_MAX) => crate::toolstack::mem_ops::decode(tag, d),
            _ => Err(d.error("a toolstack operation tag")),
        }
    }
}

/// A `SHUTDOWN_*` code.
pub fn decode_reason(d: &mut Decoder<'_>) -> Result<ShutdownReason, DecodeError> {
    let code = d.u8()?;
    ShutdownReason::from_code(code).ok_or_else(|| d.error("a SHUTDOWN_* code"))
}

fn optional(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn decode_config(d: &mut Decoder<'_>) -> Result<DomainConfig, DecodeError> {
    let name = d.str()?;
    let guest_type = match d.str()?.as_str() {
        "pv" => GuestType::Pv,
        "pvh" => GuestType::Pvh,
        "hvm" => GuestType::Hvm,
        _ => return Err(d.error("a guest type")),
    };
    let mut c = DomainConfig::with_defaults(name);
    c.guest_type = guest_type;
    c.memory_kib = d.u64()?;
    c.max_memory_kib = d.u64()?;
    c.vcpus = d.u32()?;
    c.max_vcpus = d.u32()?;
    c.cpus = decode_affinity(d)?;
    c.cpus_soft = decode_affinity(d)?;
    c.weight = d.u32()?;
    c.cap = d.u32()?;
    c.pool = optional(d.str()?);
    c.on_poweroff = decode_action(d)?;
    c.on_reboot = decode_action(d)?;
    c.on_watchdog = decode_action(d)?;
    c.on_crash = decode_action(d)?;
    c.on_soft_reset = decode_action(d)?;
    c.kernel = optional(d.str()?);
    c.vifs = decode_list(d, decode_vif)?;
    c.disks = decode_list(d, decode_disk)?;
    c.driver_domain = d.bool()?;
    // At most two extensions, in tag order.
    for _ in 0..2 {
        if d.at_end() {
            break;
        }
        match d.u8()? {
            EXT_DEVICE_MODEL if c.cmdline.is_none() => {
                c.device_model.platform_pci = d.bool()?;
                c.device_model.stubdomain = d.bool()?;
            }
            EXT_CMDLINE if c.cmdline.is_none() => c.cmdline = Some(d.str()?),
            _ => return Err(d.error("a configuration extension tag")),
        }
    }
    Ok(c)
}

/// Most entries a decoded list may claim (a bound against corrupt lengths).
const DECODED_LIST_MAX: u32 = 4096;

fn decode_list<T>(
    d: &mut Decoder<'_>,
    item: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let len = d.u32()?;
    if len > DECODED_LIST_MAX {
        return Err(d.error("a list of at most 4096 entries"));
    }
    (0..len).map(|_| item(d)).collect()
}

fn decode_vif(d: &mut Decoder<'_>) -> Result<VifCfg, DecodeError> {
    let mac = optional(d.str()?);
    let bridge = optional(d.str()?);
    let backend = optional(d.str()?);
    let other = decode_list(d, |d| Ok((d.str()?, d.str()?)))?;
    Ok(VifCfg {
        mac,
        bridge,
        backend,
        other,
    })
}

fn decode_disk(d: &mut Decoder<'_>) -> Result<DiskCfg, DecodeError> {
    let (target, format, vdev) = (d.str()?, d.str()?, d.str()?);
    let access = if d.bool()? {
        DiskAccess::ReadOnly
    } else {
        DiskAccess::ReadWrite
    };
    let cdrom = d.bool()?;
    let backend = optional(d.str()?);
    Ok(DiskCfg {
        target,
        format,
        vdev,
        access,
        cdrom,
        backend,
    })
}

fn decode_action(d: &mut Decoder<'_>) -> Result<ShutdownAction, DecodeError> {
    let text = d.str()?;
    ShutdownAction::ALL
        .iter()
        .copied()
        .find(|a| a.as_str() == text)
        .ok_or_else(|| d.error("an on_* action"))
}

fn decode_affinity(d: &mut Decoder<'_>) -> Result<AffinityCfg, DecodeError> {
    match d.u8()? {
        0 => Ok(AffinityCfg::All),
        1 => Ok(AffinityCfg::Same(decode_mask(d)?)),
        2 => Ok(AffinityCfg::PerVcpu(decode_list(d, decode_mask)?)),
        _ => Err(d.error("an affinity tag")),
    }
}

fn decode_opt_mask(d: &mut Decoder<'_>) -> Result<Option<CpuMask>, DecodeError> {
    match d.u8()? {
        0 => Ok(None),
        _ => decode_mask(d).map(Some),
    }
}

fn decode_mask(d: &mut Decoder<'_>) -> Result<CpuMask, DecodeError> {
    let width = d.u32()?;
    if width > crate::limits::NR_CPUS {
        return Err(d.error("a cpumask width up to NR_CPUS"));
    }
    let mut mask = CpuMask::empty(width);
    for _ in 0..d.u32()? {
        let cpu = d.pcpu()?;
        if cpu.raw() >= width {
            return Err(d.error("a pCPU inside the mask width"));
        }
        mask.set(cpu);
    }
    Ok(mask)
}
