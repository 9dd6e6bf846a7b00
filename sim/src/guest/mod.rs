//! Guest models: what the software inside each domain does.
//!
//! - [`access`]: the memory access stream of a `memory` sub-table (EPT walks, PoD,
//!   log-dirty).
//! - [`dist`]: pinned integer sampling of scenario distributions (`specs/scenario.md` §6.2).
//! - [`memory`]: the guest's resident set, swapping, OOM kills and remote NUMA memory
//!   (`specs/memory-iommu-migration.md` §5.5, §7.4).
//! - [`workload`]: the per-vCPU workload state machine that drives vCPU block and wake
//!   (`specs/scenario.md` §6.1).
//! - [`io`], [`net`]: the `io` workload over a vbd and over a vif; [`stream`] and
//!   [`disk_stream`]: a `net.rate` or `disk.rate` stream next to any other kind, driven by
//!   `senders` (the cut, wake and CPU charge both share).
//! - [`ratelimit`]: the kernel's 10-per-5-s limit on the models' console messages.

pub mod access;
pub mod disk_stream;
pub mod dist;
pub mod io;
pub mod io_log;
pub mod memory;
mod mixed;
pub mod modes;
pub mod net;
mod periodic;
mod ratelimit;
mod senders;
pub mod stream;
pub mod workload;

/// Takes back `buffer`, a `Vec` a model handed out with `mem::take(pending)`, emptied: it
/// becomes `pending` again when that is still empty and smaller, so the model's next batch
/// is built without an allocation (`BlkQueue`'s I/Os, `NetModel`'s frames).
pub(crate) fn reuse_buffer<T>(pending: &mut Vec<T>, mut buffer: Vec<T>) {
    buffer.clear();
    if pending.is_empty() && pending.capacity() < buffer.capacity() {
        *pending = buffer;
    }
}
