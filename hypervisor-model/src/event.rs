//! Core inputs: everything that can make the core act. The platform hands them over one at
//! a time through `Hypervisor::handle`; the sim records each one in the replay trace before
//! handing it over, so a run can be re-driven from its trace alone.

use alloc::vec::Vec;

use crate::domain::ShutdownReason;
use crate::encode::Encoder;
use crate::ids::{DomId, PcpuId, VcpuRef};
use crate::toolstack::ops::{JobId, ToolstackOp};

/// One input to the core.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CoreInput {
    /// A pCPU's scheduler timer fired.
    TimerExpired {
        /// The pCPU.
        pcpu: PcpuId,
    },
    /// An IPI (SCHEDULE_SOFTIRQ) reached a pCPU.
    Softirq {
        /// The pCPU.
        pcpu: PcpuId,
    },
    /// The guest on a running vCPU blocked (SCHEDOP_block / HLT).
    VcpuBlock {
        /// The vCPU.
        vcpu: VcpuRef,
    },
    /// An event (timer VIRQ, I/O completion) woke a blocked vCPU.
    VcpuWake {
        /// The vCPU.
        vcpu: VcpuRef,
    },
    /// The guest on a running vCPU yielded (SCHEDOP_yield).
    VcpuYield {
        /// The vCPU.
        vcpu: VcpuRef,
    },
    /// The guest called SCHEDOP_shutdown.
    GuestShutdown {
        /// The domain.
        dom: DomId,
        /// Its reason.
        reason: ShutdownReason,
    },
    /// A toolstack (xl) operation starts.
    Toolstack {
        /// Its id (unique for the run).
        job: JobId,
        /// The operation.
        op: ToolstackOp,
    },
    /// A deferred toolstack step is due (`Platform::defer_toolstack`).
    ToolstackContinue {
        /// The job.
        job: JobId,
    },
}

impl CoreInput {
    /// Appends the pinned canonical encoding of this input.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Encoder::new(out);
        match self {
            CoreInput::TimerExpired { pcpu } => {
                e.u8(1).pcpu(*pcpu);
            }
            CoreInput::Softirq { pcpu } => {
                e.u8(2).pcpu(*pcpu);
            }
            CoreInput::VcpuBlock { vcpu } => {
                e.u8(3).vcpu(*vcpu);
            }
            CoreInput::VcpuWake { vcpu } => {
                e.u8(4).vcpu(*vcpu);
            }
            CoreInput::VcpuYield { vcpu } => {
                e.u8(5).vcpu(*vcpu);
            }
            CoreInput::GuestShutdown { dom, reason } => {
                e.u8(6).dom(*dom).u8(reason.code());
            }
            CoreInput::Toolstack { job, op } => {
                e.u8(7).u32(job.0);
                op.encode(out);
            }
            CoreInput::ToolstackContinue { job } => {
                e.u8(8).u32(job.0);
            }
        }
    }
}
