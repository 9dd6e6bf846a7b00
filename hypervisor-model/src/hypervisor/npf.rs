//! EPT violations: a guest access the hardware refused, resolved as Xen's
//! `ept_handle_violation` → `hvm_hap_nested_page_fault` does: populate a PoD entry,
//! mark a log-dirty page and make it writable, drop a write to read-only memory, retry
//! a spurious fault, or crash the domain with Xen's console lines.
//!
//! Follows xen/arch/x86/hvm/vmx/vmx.c (`ept_handle_violation`: the `EPT violation`
//! line via `gprintk`, `ept_walk_table`, `domain_crash`), xen/arch/x86/hvm/hvm.c
//! (`hvm_hap_nested_page_fault`), xen/arch/x86/mm/p2m-ept.c (`ept_get_entry`'s
//! PoD populate-and-retry, `ept_walk_table`), xen/arch/x86/mm/p2m-pod.c (the
//! `out of PoD memory!` line) and xen/common/domain.c (`__domain_crash`). Spec §2.4, §4.3.
//!
//! # Invariants
//! - Every violation is traced once with its outcome; Xen's time for it is charged to
//!   the vCPU (`cpu.ept_violation_ns`, plus `mem.pod_fault_ns` for a PoD fault-in).
//! - A crash happens at most once per domain (later faults of a shut-down domain are
//!   refused inputs).
//!
//! xensim differs: accesses carry no guest linear address (no ` --- GLA` line);
//! `ept_walk_table` prints its header and the `max_mapped_pfn` line, but not the raw
//! entries of a walk inside the mapped range (table pages are not modelled); the
//! register dump after `crashed on cpu#` is left out; the MMIO emulator is not modelled
//! (a write to `ram_ro`/`grant_map_ro` is dropped, any access to `mmio_dm` completes).

use alloc::format;

use crate::event::access_bits;
use crate::hypervisor::{Hypervisor, InputError};
use crate::ids::{Gfn, VcpuRef};
use crate::memory::hap::ept_access;
use crate::memory::p2m::P2mType;
use crate::memory::pod::PodFill;
use crate::platform::{MapAccess, Platform};
use crate::trace::TraceEvent;

/// `__LINE__` of `domain_crash(d)` in `ept_handle_violation` (vmx.c, 4.17.5).
const VMX_CRASH_LINE: u32 = 3809;
/// `__LINE__` of `domain_crash(d)` after `out of PoD memory!` (p2m-pod.c, 4.17.5).
const POD_CRASH_LINE: u32 = 1300;
/// `INVALID_MFN` as `%#lx` prints it.
const INVALID_MFN: u64 = u64::MAX;
/// PoD lookups retried in one fault at most: 1 GiB → 2 MiB → 4 KiB → populated.
const POD_RETRIES_MAX: u32 = 4;
/// Zero-check cost per page swept when the cache is empty (cost-model §2.3 note on
/// `mem.pod_fault_ns`: 500 ns per page checked).
const POD_SWEEP_PAGE_NS: i64 = 500;

/// What one violation came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NpfOutcome {
    /// The translation already allows the access (raced with a fix): retry.
    Spurious = 0,
    /// A PoD entry was populated from the cache: retry.
    PodPopulated = 1,
    /// A write to `ram_logdirty`: marked dirty, made `ram_rw`: retry.
    LogDirty = 2,
    /// A write to a discard-write type, or any `mmio_dm` access: emulated.
    Emulated = 3,
    /// A real violation: the domain was crashed.
    Crashed = 4,
    /// The PoD cache was exhausted: the domain was crashed.
    PodOutOfMemory = 5,
}

impl Hypervisor {
    /// `EXIT_REASON_EPT_VIOLATION` of `vcpu` at `gfn` for `access`.
    pub(crate) fn ept_violation<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        gfn: Gfn,
        access: MapAccess,
        p: &mut P,
    ) -> Result<(), InputError> {
        let dom = vcpu.dom;
        self.domains
            .vcpu(vcpu)
            .ok_or(InputError::UnknownVcpu(vcpu))?;
        let running = self.domains.get(dom).is_some_and(|d| !d.is_shutting_down);
        if !self.is_alive(dom) || !running || !self.memory.is_hap(dom) {
            // A paused-for-shutdown vCPU makes no accesses; a PV guest has no EPT.
            return Err(InputError::UnknownVcpu(vcpu));
        }
        let mut cost_ns = self.costs.ept_violation_ns;
        let outcome = match self.memory.p2m_lookup(dom, gfn).map(|e| e.ty) {
            Some(P2mType::PopulateOnDemand) => {
                let (outcome, sweep_ns) = self.npf_pod(vcpu, gfn, access, p);
                if outcome == NpfOutcome::PodPopulated {
                    cost_ns = cost_ns.saturating_add(self.costs.pod_fault_ns);
                }
                cost_ns = cost_ns.saturating_add(sweep_ns);
                outcome
            }
            Some(P2mType::RamLogdirty) if access.write => {
                let marked = self.memory.logdirty_write_fault(dom, gfn.raw());
                debug_assert!(marked, "a logdirty GFN is marked");
                NpfOutcome::LogDirty
            }
            Some(ty) if permits(ept_access(ty), access) => NpfOutcome::Spurious,
            Some(P2mType::RamRo | P2mType::GrantMapRo) if access.write && !access.execute => {
                NpfOutcome::Emulated
            }
            Some(P2mType::MmioDm) => NpfOutcome::Emulated,
            _ => {
                self.npf_crash(vcpu, gfn, access, p);
                NpfOutcome::Crashed
            }
        };
        p.trace(&TraceEvent::EptViolation {
            vcpu,
            gfn: gfn.raw(),
            access: access_bits(access),
            outcome: outcome as u8,
        });
        p.vcpu_stall(vcpu, cost_ns.max(0));
        Ok(())
    }

    /// The PoD branch of `ept_get_entry` with `P2M_ALLOC`: populate (re-marking larger
    /// entries first) or crash on `out of PoD memory!`; returns the outcome and the sweep
    /// time.
    fn npf_pod<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        gfn: Gfn,
        access: MapAccess,
        p: &mut P,
    ) -> (NpfOutcome, i64) {
        let dom = vcpu.dom;
        let mut sweep_ns: i64 = 0;
        for _retry in 0..POD_RETRIES_MAX {
            match self
                .memory
                .pod_demand_populate(dom, gfn.raw(), access.write)
            {
                Ok(PodFill::Remapped) => continue,
                Ok(PodFill::Populated { swept_pages, .. }) => {
                    let pages_i64 = i64::try_from(swept_pages).unwrap_or(i64::MAX);
                    sweep_ns = sweep_ns.saturating_add(pages_i64.saturating_mul(POD_SWEEP_PAGE_NS));
                    return (NpfOutcome::PodPopulated, sweep_ns);
                }
                Ok(PodFill::OutOfMemory {
                    tot_pages,
                    entry_count,
                }) => {
                    let line = format!(
                        "p2m_pod_demand_populate: Dom{} out of PoD memory! \
                         (tot={tot_pages} ents={entry_count} dom{})",
                        dom.raw(),
                        dom.raw()
                    );
                    self.printk(p, &line);
                    self.domain_crash(vcpu, "arch/x86/mm/p2m-pod.c", POD_CRASH_LINE, p);
                    return (NpfOutcome::PodOutOfMemory, sweep_ns);
                }
                Err(_) => break,
            }
        }
        // The entry is no longer PoD (populated by the retry loop's last pass): retry.
        (NpfOutcome::Spurious, sweep_ns)
    }

    /// The unhandled case of `ept_handle_violation`: Xen's lines, then `domain_crash`.
    fn npf_crash<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        gfn: Gfn,
        access: MapAccess,
        p: &mut P,
    ) {
        let dom = vcpu.dom;
        let entry = self.memory.p2m_lookup(dom, gfn);
        let (mfn, ty) = entry.map_or((INVALID_MFN, P2mType::Invalid as u8), |e| {
            let mfn = if e.ty.is_ram() || e.ty == P2mType::MmioDirect {
                e.mfn
            } else {
                INVALID_MFN
            };
            (mfn, e.ty as u8)
        });
        let effective = entry.and_then(|e| ept_access(e.ty));
        let eff_bits = effective.map_or(0, access_bits);
        let qualification = u64::from(access_bits(access)) | u64::from(eff_bits) << 3;
        let gpa = gfn.raw() << 12;
        let line = format!(
            "{vcpu:?} EPT violation {qualification:#x} ({}/{}) gpa {gpa:#016x} mfn {mfn:#x} \
             type {ty}",
            rwx(access),
            effective.map_or_else(|| alloc::string::String::from("---"), rwx),
        );
        self.printk(p, &line);
        self.printk(
            p,
            &format!("{vcpu:?} Walking EPT tables for GFN {:x}:", gfn.raw()),
        );
        let max_mapped = self
            .memory
            .dom(dom)
            .and_then(|m| m.p2m.max_mapped_gfn())
            .unwrap_or(0);
        if gfn.raw() > max_mapped {
            let line = format!("{vcpu:?}  gfn exceeds max_mapped_pfn {max_mapped:x}");
            self.printk(p, &line);
        }
        self.domain_crash(vcpu, "arch/x86/hvm/vmx/vmx.c", VMX_CRASH_LINE, p);
    }

    /// `domain_crash(d)` from `file:line` while `vcpu` runs: the two console lines, then
    /// `domain_shutdown(d, SHUTDOWN_crash)` (the toolstack applies `on_crash`).
    pub(crate) fn domain_crash<P: Platform + ?Sized>(
        &mut self,
        vcpu: VcpuRef,
        file: &str,
        line: u32,
        p: &mut P,
    ) {
        let dom = vcpu.dom;
        self.printk(p, &format!("domain_crash called from {file}:{line}"));
        let shutting_down = self.domains.get(dom).is_some_and(|d| d.is_shutting_down);
        if !shutting_down {
            let cpu = self
                .domains
                .vcpu(vcpu)
                .map_or(0, |v| v.running_on.unwrap_or(v.processor).raw());
            let text = format!(
                "Domain {} (vcpu#{}) crashed on cpu#{cpu}:",
                dom.raw(),
                vcpu.vcpu.raw()
            );
            self.printk(p, &text);
        }
        self.domain_shutdown(dom, crate::domain::ShutdownReason::Crash, p);
    }
}

/// True if a leaf with `allowed` rights lets `access` through (a write needs R and W).
fn permits(allowed: Option<MapAccess>, access: MapAccess) -> bool {
    let Some(allowed) = allowed else {
        return false;
    };
    (!access.read || allowed.read)
        && (!access.write || (allowed.write && allowed.read))
        && (!access.execute || allowed.execute)
}

/// `%c%c%c` of r, w, x with `-` for absent.
fn rwx(access: MapAccess) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(3);
    out.push(if access.read { 'r' } else { '-' });
    out.push(if access.write { 'w' } else { '-' });
    out.push(if access.execute { 'x' } else { '-' });
    out
}
