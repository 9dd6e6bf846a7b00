//! rtds tests. `harness.rs` drives a standalone [`RtdsScheduler`] over a real domain table
//! (queue order, tickle choice, flags); `timing.rs` runs whole hosts through
//! `FakePlatform` (budgets, replenishment, work conservation, task sets).

extern crate std;

mod harness;
mod index_walk;
mod queue_rules;
mod timing;

use alloc::boxed::Box;
use alloc::string::String;

use super::RtdsScheduler;
use crate::event::CoreInput;
use crate::hypervisor::Hypervisor;
use crate::ids::{PoolId, VcpuRef};
use crate::sched::params::{SchedError, VcpuParams};
use crate::sched::SchedKind;
use crate::testing::ids::{cpu, vcpu};
use crate::testing::{small_host, FakePlatform};
use crate::toolstack::config::DomainConfig;
use crate::toolstack::ops::{JobId, ToolstackOp};

fn guest(name: &str, vcpus: u32) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config.memory_kib = 64 * 1024;
    config.max_memory_kib = 64 * 1024;
    config
}

/// Boots an `nr_cpus` host with `sched` in Pool-0 and settles the boot.
fn boot(nr_cpus: u32, sched: SchedKind) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(nr_cpus, sched), &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// Creates a guest (domid = `job` for the first guests) and settles the creation.
fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, config: DomainConfig, paused: bool) {
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0; 16],
        paused,
    };
    let input = CoreInput::Toolstack {
        job: JobId(job),
        op,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

/// `XEN_DOMCTL_SCHEDOP_putvcpuinfo` through Pool-0's scheduler.
fn set_vcpu(
    hv: &mut Hypervisor,
    p: &mut FakePlatform,
    v: VcpuRef,
    params: VcpuParams,
) -> Result<(), SchedError> {
    hv.with_sched(PoolId(0), p, |s, ctx| s.set_vcpu_params(ctx, v, &params))
}

fn params(period_us: u32, budget_us: u32, extratime: bool) -> VcpuParams {
    VcpuParams {
        period_us,
        budget_us,
        extratime,
    }
}
