//! # hypervisor-model: the xensim hypervisor core
//!
//! Everything Xen decides lives here, as a `no_std`, integer-only state machine that builds
//! for bare metal (`x86_64-unknown-none`) as well as for the simulator.
//!
//! Layers, top to bottom:
//! - [`hypervisor`]: the entry point. [`hypervisor::Hypervisor::boot`] builds a host;
//!   [`hypervisor::Hypervisor::handle`] takes one [`event::CoreInput`] (a timer expiry, a
//!   vCPU block or wake, a toolstack operation), answers through the [`platform::Platform`]
//!   and emits [`trace::TraceEvent`]s; it never waits.
//! - [`toolstack`]: typed xl operations, the domain configuration model, and the jobs that
//!   carry operations out as steps in virtual time.
//! - [`domain`]: domains and vCPUs, the Xen lifecycle, the pause flags, domid allocation.
//! - [`sched`]: the `Scheduler` trait, cpupools, and the schedulers (null).
//! - [`memory`]: machine memory — per-node buddy heaps, frame ownership and the M2P,
//!   each domain's P2M (4K/2M/1G leaves), claims.
//! - [`evtchn`] and [`grant`]: event channels and grant tables (v1), per-host tables the
//!   hypervisor layer drives with hypercall-level operations.
//! - [`xenstore`]: the XenStore daemon (cxenstored 4.17): tree, permissions, transactions,
//!   watches, quotas, domain connections, the wire codec and the client output formats.
//! - [`cnum`]: C number parsing (`strtol`) as Xen's C code reads numbers.
//! - [`console`]: the hypervisor console ring that `xl dmesg` reads.
//! - [`platform`]: the one trait through which the core reaches hardware.
//! - [`encode`]: the pinned canonical encoding that the run hash covers.
//!
//! Principles: time comes from the platform only; no floating point; no hash-ordered
//! containers; every table has a bound from [`limits`]; our own bugs are assertions, bad
//! input from guests or the toolstack is a typed error.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::float_arithmetic)]

extern crate alloc;

pub mod cnum;
pub mod console;
pub mod cpumask;
pub mod domain;
pub mod encode;
pub mod event;
pub mod evtchn;
pub mod grant;
pub mod hypervisor;
pub mod ids;
pub mod io;
pub mod limits;
pub mod memory;
pub mod platform;
pub mod sched;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod toolstack;
pub mod trace;
pub mod xenstore;
