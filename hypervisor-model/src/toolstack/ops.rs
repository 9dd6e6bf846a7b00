//! Typed toolstack operations (what xl asks libxl to do), their replies, and what a guest
//! kernel is told.
//!
//! Follows tools/libs/light/libxl_create.c (create), libxl_domain.c (destroy, pause,
//! unpause, shutdown) and tools/xl/xl_vmcontrol.c. Text parsing and xl's messages live in
//! the sim; the core receives and returns types.

use alloc::vec::Vec;

use crate::domain::ShutdownReason;
use crate::encode::Encoder;
use crate::ids::DomId;
use crate::toolstack::config::{AffinityCfg, ConfigError, DomainConfig};

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
}

/// What the core tells the toolstack process about its operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ToolstackReply {
    /// The domain struct exists (the domid is known); building goes on.
    Created {
        /// The new domain.
        dom: DomId,
    },
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
}

impl ToolstackOp {
    /// Appends the pinned canonical encoding of this operation.
    pub fn encode(&self, out: &mut Vec<u8>) {
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
        }
    }
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
    e.u32(u32::try_from(c.vifs.len()).unwrap_or(u32::MAX));
    e.u32(u32::try_from(c.disks.len()).unwrap_or(u32::MAX));
    for disk in &c.disks {
        e.str(&disk.vdev).str(&disk.target);
    }
}

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
            e.u8(2).u32(u32::try_from(masks.len()).unwrap_or(u32::MAX));
            for mask in masks {
                encode_mask(e, mask);
            }
        }
    }
}

fn encode_mask(e: &mut Encoder<'_>, mask: &crate::cpumask::CpuMask) {
    e.u32(mask.weight());
    for cpu in mask.iter() {
        e.pcpu(cpu);
    }
}
