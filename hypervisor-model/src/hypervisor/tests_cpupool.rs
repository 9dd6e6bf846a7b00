//! Behaviour tests of cpupools at run time and of the scheduler-parameter operations,
//! through `FakePlatform` on null pools (spec `schedulers.md` §5, §8.28–29).

extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::cpumask::CpuMask;
use crate::event::CoreInput;
use crate::ids::{DomId, PoolId, VcpuId};
use crate::sched::params::{DomParams, SchedError, VcpuParams};
use crate::sched::SchedKind;
use crate::testing::ids::{cpu, dom, vcpu};
use crate::testing::{small_host, FakePlatform};
use crate::toolstack::config::{AffinityCfg, DomainConfig};
use crate::toolstack::ops::{JobId, PoolError, ToolstackError, ToolstackOp, ToolstackReply};
use crate::trace::TraceEvent;

/// pCPUs of the test host: dom0 on 0, room for two small pools.
const NR_CPUS: u32 = 4;

fn boot() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(small_host(NR_CPUS, SchedKind::Null), &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn mask(cpus: &[u32]) -> CpuMask {
    let mut m = CpuMask::empty(NR_CPUS);
    for c in cpus {
        m.set(cpu(*c));
    }
    m
}

/// Runs one toolstack operation to its end and returns its result.
fn run(hv: &mut Hypervisor, p: &mut FakePlatform, op: ToolstackOp) -> Result<(), ToolstackError> {
    let job = JobId(1000 + u32::try_from(p.replies.len()).expect("few replies"));
    assert_eq!(hv.handle(&CoreInput::Toolstack { job, op }, p), Ok(()));
    p.run_until_idle(hv);
    let done = p.replies.iter().rev().find_map(|(j, reply)| match reply {
        ToolstackReply::Done { result } if *j == job => Some(*result),
        _ => None,
    });
    let violations = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
    done.expect("the operation finished")
}

fn guest(name: &str, vcpus: u32) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config.memory_kib = 64 * 1024;
    config.max_memory_kib = 64 * 1024;
    config
}

fn create_guest(
    hv: &mut Hypervisor,
    p: &mut FakePlatform,
    config: DomainConfig,
) -> Result<(), ToolstackError> {
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [0; 16],
        paused: false,
    };
    run(hv, p, op)
}

/// Pool-0 gives up pCPUs `cpus`, and a null pool `name` takes them.
fn split(
    hv: &mut Hypervisor,
    p: &mut FakePlatform,
    name: &str,
    cpus: &[u32],
) -> Result<(), ToolstackError> {
    let remove = ToolstackOp::CpupoolCpuRemove {
        pool: PoolId(0),
        cpus: mask(cpus),
    };
    assert_eq!(run(hv, p, remove), Ok(()));
    let op = ToolstackOp::CpupoolCreate {
        name: String::from(name),
        sched: SchedKind::Null,
        cpus: mask(cpus),
    };
    run(hv, p, op)
}

fn pool_ids(hv: &Hypervisor) -> Vec<u32> {
    hv.pools().map(|pool| pool.id.0).collect()
}

#[test]
fn create_pool_takes_next_id_and_free_cpus() {
    let (mut hv, mut p) = boot();
    assert_eq!(split(&mut hv, &mut p, "p1", &[2, 3]), Ok(()));
    assert_eq!(pool_ids(&hv), [0, 1]);
    assert_eq!(
        hv.pool(PoolId(1)).map(|x| x.cpus.clone()),
        Some(mask(&[2, 3]))
    );
    assert_eq!(hv.free_cpus(), mask(&[]));
}

#[test]
fn create_pool_with_busy_cpu_fails_and_leaves_no_pool() {
    let (mut hv, mut p) = boot();
    let op = ToolstackOp::CpupoolCreate {
        name: String::from("p1"),
        sched: SchedKind::Null,
        cpus: mask(&[1]),
    };
    let expected = ToolstackError::PoolCpu {
        cpu: cpu(1),
        error: PoolError::NoDevice,
    };
    assert_eq!(run(&mut hv, &mut p, op), Err(expected));
    assert_eq!(pool_ids(&hv), [0]);
}

#[test]
fn create_pool_beyond_two_per_cpu_is_enospc() {
    // 4 pCPUs allow 8 pools: Pool-0 and 7 empty ones.
    let (mut hv, mut p) = boot();
    let empty = |n: u32| ToolstackOp::CpupoolCreate {
        name: std::format!("e{n}"),
        sched: SchedKind::Null,
        cpus: mask(&[]),
    };
    for n in 1..8 {
        assert_eq!(run(&mut hv, &mut p, empty(n)), Ok(()));
    }
    assert_eq!(
        run(&mut hv, &mut p, empty(8)),
        Err(ToolstackError::Pool(PoolError::NoSpace))
    );
}

#[test]
fn pool_ids_continue_after_the_highest_once_one_is_destroyed() {
    let (mut hv, mut p) = boot();
    let empty = |name: &str| ToolstackOp::CpupoolCreate {
        name: String::from(name),
        sched: SchedKind::Null,
        cpus: mask(&[]),
    };
    assert_eq!(run(&mut hv, &mut p, empty("a")), Ok(()));
    assert_eq!(run(&mut hv, &mut p, empty("b")), Ok(()));
    assert_eq!(
        run(
            &mut hv,
            &mut p,
            ToolstackOp::CpupoolDestroy { pool: PoolId(1) }
        ),
        Ok(())
    );
    assert_eq!(run(&mut hv, &mut p, empty("c")), Ok(()));
    assert_eq!(pool_ids(&hv), [0, 2, 3]);
}

#[test]
fn pool_lookups_follow_ids_and_the_checker_catches_an_unsorted_table() {
    let (mut hv, mut p) = boot();
    assert_eq!(split(&mut hv, &mut p, "p1", &[2]), Ok(()));
    assert_eq!(split(&mut hv, &mut p, "p2", &[3]), Ok(()));
    let names = |hv: &Hypervisor| -> Vec<String> {
        [0, 1, 2]
            .iter()
            .map(|id| {
                hv.pool(PoolId(*id))
                    .map_or_else(String::new, |x| x.name.clone())
            })
            .collect()
    };
    assert_eq!(names(&hv), ["Pool-0", "p1", "p2"]);
    assert!(hv.pool(PoolId(3)).is_none());
    hv.pools.swap_for_test(1, 2);
    let broken: Vec<&str> = hv.check_invariants().iter().map(|v| v.invariant).collect();
    assert!(broken.contains(&"core.pools_sorted_by_id"), "{broken:?}");
}

#[test]
fn destroy_pool_with_cpus_frees_them() {
    let (mut hv, mut p) = boot();
    assert_eq!(split(&mut hv, &mut p, "p1", &[3]), Ok(()));
    assert_eq!(
        run(
            &mut hv,
            &mut p,
            ToolstackOp::CpupoolDestroy { pool: PoolId(1) }
        ),
        Ok(())
    );
    assert_eq!(hv.free_cpus(), mask(&[3]));
}

#[test]
fn destroy_pool0_or_pool_with_domain_is_refused() {
    let (mut hv, mut p) = boot();
    let destroy0 = ToolstackOp::CpupoolDestroy { pool: PoolId(0) };
    let has_domains = Err(ToolstackError::Pool(PoolError::HasDomains));
    assert_eq!(run(&mut hv, &mut p, destroy0), has_domains);
    let missing = ToolstackOp::CpupoolDestroy { pool: PoolId(9) };
    assert_eq!(
        run(&mut hv, &mut p, missing),
        Err(ToolstackError::Pool(PoolError::NotFound))
    );
}

#[test]
fn cpu0_never_leaves_pool0() {
    let (mut hv, mut p) = boot();
    let op = ToolstackOp::CpupoolCpuRemove {
        pool: PoolId(0),
        cpus: mask(&[0]),
    };
    let expected = ToolstackError::PoolCpu {
        cpu: cpu(0),
        error: PoolError::Invalid,
    };
    assert_eq!(run(&mut hv, &mut p, op), Err(expected));
}

#[test]
fn removing_cpu_of_another_pool_is_eaddrnotavail() {
    let (mut hv, mut p) = boot();
    assert_eq!(split(&mut hv, &mut p, "p1", &[3]), Ok(()));
    let op = ToolstackOp::CpupoolCpuRemove {
        pool: PoolId(0),
        cpus: mask(&[3]),
    };
    let expected = ToolstackError::PoolCpu {
        cpu: cpu(3),
        error: PoolError::NotInPool,
    };
    assert_eq!(run(&mut hv, &mut p, op), Err(expected));
}

#[test]
fn adding_a_busy_cpu_is_enodev() {
    let (mut hv, mut p) = boot();
    assert_eq!(split(&mut hv, &mut p, "p1", &[3]), Ok(()));
    let op = ToolstackOp::CpupoolCpuAdd {
        pool: PoolId(1),
        cpus: mask(&[2]),
    };
    let expected = ToolstackError::PoolCpu {
        cpu: cpu(2),
        error: PoolError::NoDevice,
    };
    assert_eq!(run(&mut hv, &mut p, op), Err(expected));
}

#[test]
fn last_cpu_of_pool_with_live_domain_stays() {
    let (mut hv, mut p) = boot();
    assert_eq!(split(&mut hv, &mut p, "p1", &[3]), Ok(()));
    let mut config = guest("vm1", 1);
    config.pool = Some(String::from("p1"));
    assert_eq!(create_guest(&mut hv, &mut p, config), Ok(()));
    let op = ToolstackOp::CpupoolCpuRemove {
        pool: PoolId(1),
        cpus: mask(&[3]),
    };
    let expected = ToolstackError::PoolCpu {
        cpu: cpu(3),
        error: PoolError::Busy,
    };
    assert_eq!(run(&mut hv, &mut p, op), Err(expected));
    assert_eq!(hv.running_on(cpu(3)), Some(vcpu(1, 0)));
}

#[test]
fn create_in_pool_without_cpus_is_enodev() {
    let (mut hv, mut p) = boot();
    let op = ToolstackOp::CpupoolCreate {
        name: String::from("empty"),
        sched: SchedKind::Null,
        cpus: mask(&[]),
    };
    assert_eq!(run(&mut hv, &mut p, op), Ok(()));
    let mut config = guest("vm1", 1);
    config.pool = Some(String::from("empty"));
    let expected = Err(ToolstackError::Pool(PoolError::NoDevice));
    assert_eq!(create_guest(&mut hv, &mut p, config), expected);
}

#[test]
fn migrate_moves_vcpus_to_new_pool_and_resets_affinity() {
    let (mut hv, mut p) = boot();
    let mut config = guest("vm1", 2);
    config.cpus = AffinityCfg::Same(mask(&[1, 2]));
    assert_eq!(create_guest(&mut hv, &mut p, config), Ok(()));
    assert_eq!(split(&mut hv, &mut p, "p1", &[3]), Ok(()));
    let op = ToolstackOp::CpupoolMigrate {
        dom: dom(1),
        pool: PoolId(1),
    };
    assert_eq!(run(&mut hv, &mut p, op), Ok(()));
    let d = hv.domain(dom(1)).expect("vm1 lives");
    assert_eq!(d.pool, PoolId(1));
    assert!(d
        .vcpus
        .iter()
        .all(|v| v.hard_affinity == CpuMask::full(NR_CPUS)));
    assert!(d
        .vcpus
        .iter()
        .all(|v| v.soft_affinity == CpuMask::full(NR_CPUS)));
    // null: one pCPU for two vCPUs; vCPU 0 gets it, vCPU 1 waits.
    assert_eq!(hv.running_on(cpu(3)), Some(vcpu(1, 0)));
    assert_eq!(hv.running_on(cpu(1)), None);
    assert_eq!(hv.running_on(cpu(2)), None);
}

#[test]
fn migrate_dom0_is_eperm_and_to_empty_pool_is_enoent() {
    let (mut hv, mut p) = boot();
    let empty = ToolstackOp::CpupoolCreate {
        name: String::from("empty"),
        sched: SchedKind::Null,
        cpus: mask(&[]),
    };
    assert_eq!(run(&mut hv, &mut p, empty), Ok(()));
    let dom0 = ToolstackOp::CpupoolMigrate {
        dom: DomId::DOM0,
        pool: PoolId(1),
    };
    let eperm = Err(ToolstackError::Pool(PoolError::NotPermitted));
    assert_eq!(run(&mut hv, &mut p, dom0), eperm);
    assert_eq!(create_guest(&mut hv, &mut p, guest("vm1", 1)), Ok(()));
    let to_empty = ToolstackOp::CpupoolMigrate {
        dom: dom(1),
        pool: PoolId(1),
    };
    let enoent = Err(ToolstackError::Pool(PoolError::NotFound));
    assert_eq!(run(&mut hv, &mut p, to_empty), enoent);
}

#[test]
fn removing_the_only_cpu_of_a_hard_affinity_breaks_it() {
    let (mut hv, mut p) = boot();
    let mut config = guest("vm1", 1);
    config.cpus = AffinityCfg::Same(mask(&[3]));
    assert_eq!(create_guest(&mut hv, &mut p, config), Ok(()));
    assert_eq!(hv.running_on(cpu(3)), Some(vcpu(1, 0)));
    let op = ToolstackOp::CpupoolCpuRemove {
        pool: PoolId(0),
        cpus: mask(&[3]),
    };
    assert_eq!(run(&mut hv, &mut p, op), Ok(()));
    let v = hv.domain(dom(1)).and_then(|d| d.vcpu(0)).expect("vCPU 0");
    assert_eq!(v.hard_affinity, CpuMask::full(NR_CPUS));
    assert_ne!(v.processor, cpu(3));
    assert_eq!(hv.running_on(cpu(3)), None);
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
    let line = TraceEvent::Console {
        text: String::from("Breaking affinity for d1v0"),
    };
    assert!(p.events.contains(&line));
}

#[test]
fn removing_a_cpu_with_an_unpinned_running_vcpu_moves_it() {
    let (mut hv, mut p) = boot();
    assert_eq!(create_guest(&mut hv, &mut p, guest("vm1", 1)), Ok(()));
    assert_eq!(hv.running_on(cpu(1)), Some(vcpu(1, 0)));
    let op = ToolstackOp::CpupoolCpuRemove {
        pool: PoolId(0),
        cpus: mask(&[1]),
    };
    assert_eq!(run(&mut hv, &mut p, op), Ok(()));
    assert_eq!(hv.running_on(cpu(1)), None);
    assert_eq!(hv.running_on(cpu(2)), Some(vcpu(1, 0)));
    assert_eq!(hv.free_cpus(), mask(&[1]));
}

#[test]
fn null_pool_refuses_domain_parameters() {
    let (mut hv, mut p) = boot();
    let op = ToolstackOp::SchedDomParams {
        dom: DomId::DOM0,
        params: DomParams::Credit2 {
            weight: 512,
            cap: 0,
        },
    };
    assert_eq!(
        run(&mut hv, &mut p, op),
        Err(ToolstackError::Sched(SchedError::Invalid))
    );
}

#[test]
fn vcpu_parameters_for_missing_vcpu_are_einval() {
    let (mut hv, mut p) = boot();
    let rt = VcpuParams {
        period_us: 10_000,
        budget_us: 4_000,
        extratime: true,
    };
    let op = ToolstackOp::SchedVcpuParams {
        dom: DomId::DOM0,
        vcpus: Some(alloc::vec![VcpuId::new(5).expect("vcpu id")]),
        params: alloc::vec![rt],
    };
    assert_eq!(run(&mut hv, &mut p, op), Err(ToolstackError::InvalidVcpu));
}
