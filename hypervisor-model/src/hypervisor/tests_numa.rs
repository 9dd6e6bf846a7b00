//! libxl's automatic NUMA placement through the whole core (spec §7): where a created
//! domain lands on a 2-node host, its soft affinity, its node affinity and the node its
//! memory comes from; when placement is skipped.

use alloc::string::String;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::cpumask::CpuMask;
use crate::hypervisor::boot::CpuTopo;
use crate::ids::{DomId, PcpuId};
use crate::sched::SchedKind;
use crate::testing::{create_paused, small_host, FakePlatform};
use crate::time::STime;
use crate::toolstack::config::{AffinityCfg, DomainConfig, GuestType};
use crate::toolstack::ops::{JobId, ToolstackError, ToolstackReply};

const GIB_PAGES: u64 = 256 * 1024;

/// 4 pCPUs, nodes {0,1} and {2,3}, 4 GiB per node; a 1 GiB dom0 whose vCPU is not
/// pinned; its memory comes from node 1 (the heap's round robin starts after node 0).
fn boot() -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut config = small_host(4, SchedKind::Credit2);
    config.host.cpus = (0..4)
        .map(|cpu| CpuTopo {
            core: cpu % 2,
            socket: cpu / 2,
            node: cpu / 2,
        })
        .collect();
    config.host.cores_per_socket = 2;
    config.host.node_memory_pages = alloc::vec![4 * GIB_PAGES, 4 * GIB_PAGES];
    config.host.node_distances = alloc::vec![10, 21, 21, 10];
    config.dom0.pin = false;
    let mut hv = Hypervisor::boot(config, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

fn pvh(name: &str, memory_mib: u64, vcpus: u32) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.guest_type = GuestType::Pvh;
    config.memory_kib = memory_mib * 1024;
    config.max_memory_kib = config.memory_kib;
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config
}

/// Creates `config` as job `job` and runs until idle; panics if the create failed.
fn create(hv: &mut Hypervisor, p: &mut FakePlatform, job: u32, config: DomainConfig) -> DomId {
    p.inject(STime::ZERO, create_paused(job, config));
    p.run_until_idle(hv);
    let created = p.replies.iter().find_map(|(id, reply)| match reply {
        ToolstackReply::Created { dom } if *id == JobId(job) => Some(*dom),
        _ => None,
    });
    let done = p.replies.iter().find_map(|(id, reply)| match reply {
        ToolstackReply::Done { result } if *id == JobId(job) => Some(*result),
        _ => None,
    });
    assert_eq!(done, Some(Ok::<(), ToolstackError>(())));
    created.expect("created")
}

fn cpus(list: &[u32]) -> CpuMask {
    let mut mask = CpuMask::empty(4);
    for &cpu in list {
        mask.set(PcpuId::new(cpu).expect("small cpu"));
    }
    mask
}

fn soft_masks(hv: &Hypervisor, dom: DomId) -> Vec<CpuMask> {
    let domain = hv.domain(dom).expect("domain");
    domain
        .vcpus
        .iter()
        .map(|v| v.soft_affinity.clone())
        .collect()
}

#[test]
fn first_domain_lands_on_the_emptier_node_with_its_memory() {
    let (mut hv, mut p) = boot();
    assert!(
        hv.node_free_pages()[1] <= 3 * GIB_PAGES,
        "dom0 is on node 1"
    );
    let a = create(&mut hv, &mut p, 1, pvh("a", 1024, 2));
    // Equal load (dom0's unpinned vCPU counts on both nodes); node 0 has more free.
    assert_eq!(hv.memory().explicit_node_affinity(a), Some(0b01));
    assert!(soft_masks(&hv, a).iter().all(|m| *m == cpus(&[0, 1])));
    let node_pages = hv.memory().dom_node_pages(a);
    assert_eq!(node_pages[1], 0, "no frame from node 1");
    assert!(node_pages[0] >= GIB_PAGES);
}

#[test]
fn second_domain_avoids_the_node_with_more_vcpus() {
    let (mut hv, mut p) = boot();
    let a = create(&mut hv, &mut p, 1, pvh("a", 512, 2));
    let b = create(&mut hv, &mut p, 2, pvh("b", 512, 1));
    assert_eq!(hv.memory().explicit_node_affinity(a), Some(0b01));
    // Node 0 now runs dom0 + a's 2 vCPUs (3), node 1 only dom0's (1): node 1 wins
    // although node 0 still has more free memory.
    assert!(hv.node_free_pages()[0] > hv.node_free_pages()[1] + GIB_PAGES / 2);
    assert_eq!(hv.memory().explicit_node_affinity(b), Some(0b10));
    assert!(soft_masks(&hv, b).iter().all(|m| *m == cpus(&[2, 3])));
    assert_eq!(hv.memory().dom_node_pages(b)[0], 0, "no frame from node 0");
}

#[test]
fn more_vcpus_than_a_node_has_pcpus_spans_both_nodes() {
    let (mut hv, mut p) = boot();
    let a = create(&mut hv, &mut p, 1, pvh("a", 512, 3));
    assert_eq!(hv.memory().explicit_node_affinity(a), Some(0b11));
}

#[test]
fn per_vcpu_cpus_or_cpus_soft_skip_placement() {
    let (mut hv, mut p) = boot();
    let mut pinned = pvh("pinned", 512, 2);
    pinned.cpus = AffinityCfg::PerVcpu(alloc::vec![cpus(&[0]), cpus(&[1])]);
    let a = create(&mut hv, &mut p, 1, pinned);
    assert_eq!(hv.memory().explicit_node_affinity(a), None);
    assert!(soft_masks(&hv, a).iter().all(|m| *m == CpuMask::full(4)));
    let mut soft = pvh("soft", 512, 1);
    soft.cpus_soft = AffinityCfg::Same(cpus(&[0]));
    let b = create(&mut hv, &mut p, 2, soft);
    assert_eq!(hv.memory().explicit_node_affinity(b), None);
    assert_eq!(soft_masks(&hv, b), [cpus(&[0])]);
}

#[test]
fn single_cpus_string_still_places() {
    let (mut hv, mut p) = boot();
    let mut config = pvh("a", 512, 1);
    config.cpus = AffinityCfg::Same(cpus(&[0, 1, 2, 3]));
    let a = create(&mut hv, &mut p, 1, config);
    assert_eq!(hv.memory().explicit_node_affinity(a), Some(0b01));
}

#[test]
fn domain_bigger_than_any_node_spans_both() {
    let (mut hv, mut p) = boot();
    // 4.5 GiB fits no single node (3.9 and 3 GiB free): the pair is the candidate, and
    // the memory comes from both.
    let a = create(&mut hv, &mut p, 1, pvh("a", 4608, 1));
    assert_eq!(hv.memory().explicit_node_affinity(a), Some(0b11));
    let node_pages = hv.memory().dom_node_pages(a);
    assert!(node_pages[0] > 0 && node_pages[1] > 0);
}
