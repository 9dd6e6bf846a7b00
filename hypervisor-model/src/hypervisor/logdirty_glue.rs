//! `XEN_DOMCTL_shadow_op`'s log-dirty operations for the toolstack (live migration, a
//! later issue): enable, CLEAN, PEEK and OFF, each followed by the EPT writes and INVEPT
//! its type changes need, and traced.
//!
//! Follows xen/arch/x86/mm/paging.c (`paging_domctl`: `-EINVAL` on an enable while
//! enabled or on CLEAN/PEEK/OFF while off) and the memory model's `memory/logdirty.rs`.
//!
//! # Invariants
//! - After every operation the platform's EPT matches the P2M (the flush runs before the
//!   operation returns, not only at the end of the input).

use crate::hypervisor::Hypervisor;
use crate::ids::DomId;
use crate::memory::logdirty::DirtyReport;
use crate::memory::MemError;
use crate::platform::Platform;

/// A log-dirty operation (`XEN_DOMCTL_SHADOW_OP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowOp {
    /// `ENABLE_LOGDIRTY`.
    EnableLogDirty,
    /// `CLEAN` of the first `pages` GFNs.
    Clean {
        /// GFNs the bitmap covers.
        pages: u64,
    },
    /// `PEEK` of the first `pages` GFNs.
    Peek {
        /// GFNs the bitmap covers.
        pages: u64,
    },
    /// `OFF`.
    Off,
}

impl Hypervisor {
    /// Runs `op` on `dom`; CLEAN and PEEK return the bitmap and stats.
    pub fn shadow_op<P: Platform + ?Sized>(
        &mut self,
        dom: DomId,
        op: ShadowOp,
        p: &mut P,
    ) -> Result<Option<DirtyReport>, MemError> {
        let result = match op {
            ShadowOp::EnableLogDirty => self.memory.logdirty_enable(dom).map(|_| None),
            ShadowOp::Off => self.memory.logdirty_disable(dom).map(|_| None),
            ShadowOp::Clean { pages } => self.memory.logdirty_op(dom, pages, true).map(Some),
            ShadowOp::Peek { pages } => self.memory.logdirty_op(dom, pages, false).map(Some),
        };
        self.ept_flush(p);
        result
    }
}
