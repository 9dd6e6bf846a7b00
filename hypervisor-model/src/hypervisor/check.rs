//! The invariant checker: O(n) consistency checks over the whole host, run after every
//! event in tests and under `xensim run --check` (spec `schedulers.md` §8).
//!
//! Pools (§8.28–29): the pools' masks and the free set partition the host pCPUs and agree
//! with `cpu_pool`; pCPU 0 is in Pool-0; every domain's pool exists and a live domain's
//! pool has a pCPU; every vCPU's hard affinity meets its pool; a running vCPU is inside
//! its hard affinity and its pool; at most `2 * nr_cpus` pools exist; the pool table is
//! sorted by id.

use alloc::format;
use alloc::vec::Vec;

use super::Hypervisor;
use crate::domain::vcpu::Runstate;
use crate::domain::Domain;
use crate::evtchn::PortState;
use crate::ids::PcpuId;
use crate::io::handshake::DeviceConn;
use crate::io::xenbus::XenbusState;
use crate::sched::Violation;

pub(super) fn check_all(hv: &Hypervisor) -> Vec<Violation> {
    let mut out = Vec::new();
    check_pcpus(hv, &mut out);
    for d in hv.domains.iter() {
        check_domain(hv, d, &mut out);
    }
    check_pools(hv, &mut out);
    check_memory(hv, &mut out);
    for pool in hv.pools.iter() {
        pool.sched
            .check_invariants(&hv.domains, &pool.cpus, &mut out);
    }
    hv.xenstore.check_invariants(&mut out);
    hv.evtchn.check_invariants(&mut out);
    hv.grants.check_invariants(&mut out);
    check_io_tables(hv, &mut out);
    check_xenbus(hv, &mut out);
    hv.blk_check(&mut out);
    hv.drv_check(&mut out);
    hv.ioreq_check(&mut out);
    hv.console_check(&mut out);
    hv.net_check(&mut out);
    hv.xenconsoled.check(&mut out);
    for conn in hv.xs_clients.values() {
        if !hv.xenstore.is_live(*conn) {
            violation(
                &mut out,
                "xs.socket_client_live",
                alloc::format!("{conn:?} is mapped but gone"),
            );
        }
    }
    out
}

/// Every live domain has an event-channel and a grant table; a freed one has no event
/// channels and no XenStore home, and a grant table only while another domain maps it.
fn check_io_tables(hv: &Hypervisor, out: &mut Vec<Violation>) {
    for d in hv.domains.iter() {
        let building = hv.evtchn.domain(d.id).is_none() && d.config.is_some();
        if hv.evtchn.domain(d.id).is_none() && !building {
            violation(
                out,
                "io.evtchn_table",
                format!("{:?} has no event channels", d.id),
            );
        }
    }
    for dom in hv.build_states.keys() {
        if hv.domains.get(*dom).is_none() {
            violation(
                out,
                "io.leak",
                format!("{dom:?} is freed but has a build state"),
            );
        }
    }
    let (recounted, kept) = hv.xsd.recount();
    if recounted != *kept {
        violation(
            out,
            "xsd.pending_for",
            format!("kept {kept:?}, the queue holds {recounted:?}"),
        );
    }
    let (recounted, kept) = hv.driver_tasks.recount();
    if recounted != *kept {
        violation(
            out,
            "io.driver_tasks_per_dom",
            format!("kept {kept:?}, the table holds {recounted:?}"),
        );
    }
    if hv.xenbus_scanned == Some(hv.xenbus_fingerprint()) {
        for (job, (dom, wait)) in &hv.xenbus_waiters {
            if hv.xenbus_waiter_ready(*dom, *wait) {
                violation(
                    out,
                    "io.waiter_fingerprint",
                    format!("{job:?} for {dom:?} is ready but nothing it tests changed"),
                );
            }
        }
    }
    for dom in hv.xenwatch_busy.keys() {
        if hv.domains.get(*dom).is_none() {
            violation(
                out,
                "io.leak",
                format!("{dom:?} is freed but has a xenwatch thread"),
            );
        }
    }
    for dom in hv.devices.keys() {
        if hv.domains.get(*dom).is_none() {
            violation(
                out,
                "io.leak",
                format!("{dom:?} is freed but has device directories"),
            );
        }
    }
}

fn violation(out: &mut Vec<Violation>, invariant: &'static str, detail: alloc::string::String) {
    out.push(Violation { invariant, detail });
}

/// A pCPU runs at most one vCPU, and that vCPU agrees it runs there (spec §8.1–2).
fn check_pcpus(hv: &Hypervisor, out: &mut Vec<Violation>) {
    for (index, curr) in hv.curr.iter().enumerate() {
        let Some(v) = curr else { continue };
        let cpu = PcpuId::new(u32::try_from(index).unwrap_or(u32::MAX));
        match hv.domains.vcpu(*v) {
            Some(vcpu) if vcpu.running_on != cpu => violation(
                out,
                "core.curr_matches_running_on",
                format!(
                    "{v:?}: curr of cpu{index}, running_on {:?}",
                    vcpu.running_on
                ),
            ),
            Some(_) => {}
            None => violation(
                out,
                "core.curr_exists",
                format!("cpu{index} runs unknown {v:?}"),
            ),
        }
    }
}

/// Per-vCPU rules: affinity and pool (§8.3–4), runnable while running (§8.5), the
/// runstate matches `running_on`, and time accounting (§8.30).
fn check_domain(hv: &Hypervisor, d: &Domain, out: &mut Vec<Violation>) {
    let Some(pool) = hv.pools.get(d.pool) else {
        violation(
            out,
            "core.domain_pool_exists",
            format!("d{} in unknown pool", d.id.raw()),
        );
        return;
    };
    if d.dying == crate::domain::Dying::Alive && pool.cpus.is_empty() {
        violation(
            out,
            "core.live_domain_pool_has_cpus",
            format!("d{} in {:?}", d.id.raw(), d.pool),
        );
    }
    if d.controller_pause_count > d.pause_count {
        violation(
            out,
            "core.controller_pauses_counted",
            format!("d{}", d.id.raw()),
        );
    }
    for v in &d.vcpus {
        if v.hard_affinity.and(&pool.cpus).is_empty() {
            violation(
                out,
                "core.effective_hard_affinity_nonempty",
                format!("{:?}", v.id),
            );
        }
        if (v.runstate == Runstate::Running) != v.running_on.is_some() {
            violation(
                out,
                "core.runstate_matches_running_on",
                format!("{:?}: {:?} on {:?}", v.id, v.runstate, v.running_on),
            );
        }
        if let Some(cpu) = v.running_on {
            check_running_vcpu(hv, d, v, cpu, out);
        }
        let accounted_ns: i64 = v.runstate_time_ns.iter().sum();
        let elapsed_ns = v.state_entry_time.since(d.created_at).as_ns();
        if accounted_ns != elapsed_ns {
            violation(
                out,
                "core.runstate_time_sums_to_lifetime",
                format!("{:?}: {accounted_ns} != {elapsed_ns}", v.id),
            );
        }
    }
}

fn check_running_vcpu(
    hv: &Hypervisor,
    d: &Domain,
    v: &crate::domain::vcpu::Vcpu,
    cpu: PcpuId,
    out: &mut Vec<Violation>,
) {
    if hv.curr.get(cpu.index()).copied().flatten() != Some(v.id) {
        violation(
            out,
            "core.running_on_matches_curr",
            format!("{:?} on {cpu:?}", v.id),
        );
    }
    // An affinity change marks a running vCPU migrating and tickles its pCPU; until that
    // pCPU reschedules the vCPU still runs there (as on Xen), so only a settled vCPU counts.
    let settling =
        v.pause_flags & crate::domain::vcpu::VPF_MIGRATING != 0 && hv.softirq_pending[cpu.index()];
    let allowed = v.hard_affinity.test(cpu) || settling;
    if !allowed {
        violation(
            out,
            "core.runs_within_hard_affinity",
            format!("{:?} on {cpu:?}", v.id),
        );
    }
    if hv.cpu_pool.get(cpu.index()).copied().flatten() != Some(d.pool) {
        violation(
            out,
            "core.runs_within_pool",
            format!("{:?} on {cpu:?}", v.id),
        );
    }
    if v.is_blocked()
        && v.running_on.is_some()
        && hv.softirq_pending.get(cpu.index()) == Some(&false)
    {
        violation(
            out,
            "core.blocked_vcpu_not_running",
            format!("{:?} on {cpu:?}", v.id),
        );
    }
}

/// Pools and the free set partition the pCPUs; CPU 0 is in Pool-0 (§8.28).
fn check_pools(hv: &Hypervisor, out: &mut Vec<Violation>) {
    for (index, pool_id) in hv.cpu_pool.iter().enumerate() {
        let cpu = PcpuId::new(u32::try_from(index).unwrap_or(u32::MAX)).expect("host pCPU");
        let owners = hv.pools.iter().filter(|p| p.cpus.test(cpu)).count();
        let expected = usize::from(pool_id.is_some());
        if owners != expected {
            violation(
                out,
                "core.pools_partition_cpus",
                format!("{cpu:?} in {owners} pools"),
            );
        }
        match pool_id.map(|id| hv.pools.get(id)) {
            Some(Some(pool)) if !pool.cpus.test(cpu) => {
                violation(out, "core.cpu_pool_matches_mask", format!("{cpu:?}"));
            }
            Some(None) => violation(out, "core.cpu_pool_exists", format!("{cpu:?}")),
            _ => {}
        }
    }
    if hv.cpu_pool.first().copied().flatten().map(|p| p.0) != Some(0) {
        violation(out, "core.cpu0_in_pool0", alloc::string::String::new());
    }
    if !hv.pools.is_sorted_by_id() {
        violation(out, "core.pools_sorted_by_id", alloc::string::String::new());
    }
    for pool in hv.pools.iter() {
        let id = pool.id;
        for cpu in pool.cpus.iter() {
            if hv.cpu_pool.get(cpu.index()).copied().flatten() != Some(id) {
                violation(
                    out,
                    "core.pool_mask_matches_cpu_pool",
                    format!("{cpu:?} in {id:?}"),
                );
            }
        }
    }
    let pools_max = hv
        .host
        .nr_cpus()
        .saturating_mul(crate::limits::POOLS_PER_CPU_MAX);
    if u32::try_from(hv.pools.len()).map_or(true, |n| n > pools_max) {
        violation(
            out,
            "core.pool_count_bounded",
            format!("{} pools", hv.pools.len()),
        );
    }
}

/// Host pages are all accounted for: free + Xen + every domain's pages; the allocator's
/// own invariants (`memory/check.rs`) with the domain table's `tot_pages`.
fn check_memory(hv: &Hypervisor, out: &mut Vec<Violation>) {
    let domain_pages: u64 = hv.domains.iter().map(|d| d.tot_pages).sum();
    let tot_pages: Vec<_> = hv.domains.iter().map(|d| (d.id, d.tot_pages)).collect();
    hv.memory.check_invariants(&tot_pages, out);
    let total = hv.memory.free_pages() + hv.memory.xen_pages() + domain_pages;
    if total != hv.host.total_pages() {
        violation(
            out,
            "core.pages_conserved",
            format!("{total} != {}", hv.host.total_pages()),
        );
    }
}

/// XenBus ends (spec `xenstore-io.md` §4, §9.18–21): each `state` key a driver wrote holds
/// one of the state numbers; a Connected backend maps every ring ref of its frontend and
/// holds a port bound interdomain to the frontend's; keys come before the states that
/// announce them; a Closed backend maps and binds nothing; a dying or freed domain has no
/// device ends and leaves nothing behind (`check_teardown.rs`).
fn check_xenbus(hv: &Hypervisor, out: &mut Vec<Violation>) {
    for (dom, conns) in &hv.xenbus {
        let alive = hv
            .domains
            .get(*dom)
            .is_some_and(|d| d.dying == crate::domain::Dying::Alive);
        if !alive {
            violation(
                out,
                "xenbus.dead_domain",
                format!(
                    "{dom:?} is gone or dying but has {} device ends",
                    conns.len()
                ),
            );
        }
        for conn in conns {
            for dir in [&conn.front_path, &conn.back_path] {
                let path = format!("{dir}/state");
                let Some(node) = hv.xenstore.node(&path) else {
                    continue;
                };
                if XenbusState::parse(node.value()) == XenbusState::Unknown {
                    violation(out, "xenbus.state_number", format!("{path} is not a state"));
                }
            }
            if conn.back_state == XenbusState::Connected {
                check_connected(hv, conn, out);
            }
            check_keys_before_state(hv, conn, out);
            check_otherend_watches(hv, conn, out);
            let closed = conn.back_state == XenbusState::Closed;
            if closed && (!conn.ring_handles.is_empty() || !conn.back_ports().is_empty()) {
                violation(
                    out,
                    "xenbus.closed_unmapped",
                    format!("{} is Closed but maps or binds", conn.back_path),
                );
            }
        }
    }
    super::check_teardown::check_teardown(hv, out);
}

/// A probed end watches the other end's `state` on its own connection (the watch that
/// drives it), and an unprobed end holds nothing of the handshake.
fn check_otherend_watches(
    hv: &Hypervisor,
    conn: &crate::io::handshake::DeviceConn,
    out: &mut Vec<Violation>,
) {
    let token = super::xenbus_watch::TOKEN_OTHEREND;
    let watching = |xs: Option<crate::ids::XsConnId>, dir: &str| {
        let path = format!("{dir}/state");
        xs.is_some_and(|c| {
            hv.xenstore
                .watches(c)
                .iter()
                .any(|(p, t)| *p == path && t.as_slice() == token)
        })
    };
    let back = if conn.back_dom == crate::ids::DomId::DOM0 {
        Some(hv.xenstore.dom0_conn())
    } else {
        hv.xenstore
            .domain_conn(u32::from(conn.back_dom.raw()))
            .filter(|c| hv.xenstore.is_live(*c))
    };
    if conn.back_probed && back.is_some() && !watching(back, &conn.front_path) {
        let what = format!("{} probed without its otherend watch", conn.back_path);
        violation(out, "xenbus.otherend_watch", what);
    }
    // A ring xenstored stopped serving lost its watches (`ignore_connection`).
    let front = hv
        .xenstore
        .domain_conn(u32::from(conn.front_dom.raw()))
        .filter(|c| hv.xenstore.is_live(*c));
    // Until it follows a backend `xl devd` re-created, the frontend watches the old one.
    let followed = Hypervisor::vbd_key(conn)
        .and_then(|key| hv.blk.moved_from.get(&key))
        .or_else(|| Hypervisor::vif_key(conn).and_then(|key| hv.net.moved_from.get(&key)));
    let back_path = followed.unwrap_or(&conn.back_path);
    if conn.front_probed && front.is_some() && !watching(front, back_path) {
        let what = format!("{} probed without its otherend watch", conn.front_path);
        violation(out, "xenbus.otherend_watch", what);
    }
    if !conn.back_probed && (!conn.ring_handles.is_empty() || !conn.back_ports().is_empty()) {
        let what = format!("{} maps or binds before its probe", conn.back_path);
        violation(out, "xenbus.unprobed_idle", what);
    }
    if !conn.front_probed && (!conn.ring_refs.is_empty() || !conn.front_ports().is_empty()) {
        let what = format!("{} grants or allocates before its probe", conn.front_path);
        violation(out, "xenbus.unprobed_idle", what);
    }
}

/// A Connected backend: dom0 maps each ring ref, and each of its ports is the peer of the
/// frontend's port in the same place.
fn check_connected(hv: &Hypervisor, conn: &DeviceConn, out: &mut Vec<Violation>) {
    let table = hv.grants.table(conn.front_dom);
    let mapped = conn.ring_handles.len() == conn.ring_refs.len()
        && conn.ring_refs.iter().all(|gref| {
            table
                .and_then(|t| t.active(*gref))
                .is_some_and(|a| !a.pins.is_zero() && a.domid == conn.back_dom)
        });
    if !mapped {
        violation(
            out,
            "xenbus.connected_mapped",
            format!("{} is Connected without its ring mapped", conn.back_path),
        );
    }
    // Each backend port is bound to the frontend port of the same place (a vif's queues).
    let (backs, fronts) = (conn.back_ports(), conn.front_ports());
    let bound = !backs.is_empty()
        && backs.len() == fronts.len()
        && backs.iter().zip(&fronts).all(|(back, front)| {
            hv.evtchn
                .domain(conn.back_dom)
                .and_then(|d| d.state(*back))
                .is_some_and(|s| {
                    s == PortState::Interdomain {
                        remote: conn.front_dom,
                        remote_port: *front,
                    }
                })
        });
    if !bound {
        violation(
            out,
            "xenbus.connected_bound",
            format!("{} is Connected without a bound port", conn.back_path),
        );
    }
}

/// XB-KEYS-BEFORE-STATE (spec §9.19): a frontend past Initialising has its ring refs and
/// port published; a backend past Initialising its feature keys; a Connected blkback its
/// device properties. Only while the directories exist.
fn check_keys_before_state(hv: &Hypervisor, conn: &DeviceConn, out: &mut Vec<Violation>) {
    use crate::io::handshake::DeviceKind;
    let missing = |dir: &str, keys: &[&str]| {
        hv.xenstore.node(dir).is_some()
            && keys
                .iter()
                .any(|key| hv.xenstore.node(&format!("{dir}/{key}")).is_none())
    };
    let published = matches!(
        conn.front_state,
        XenbusState::Initialised | XenbusState::Connected
    );
    // A vif's keys: the flat ones of one queue, or the count and queue 0's (a guest may
    // spoil later queues' keys itself; netback refuses those); split or shared ports.
    let front_keys: &[&str] = match (conn.kind, conn.queue_count > 1, conn.split_evtchn) {
        (DeviceKind::Vif, false, false) => &["tx-ring-ref", "rx-ring-ref", "event-channel"],
        (DeviceKind::Vif, false, true) => &[
            "tx-ring-ref",
            "rx-ring-ref",
            "event-channel-tx",
            "event-channel-rx",
        ],
        (DeviceKind::Vif, true, split) => &[
            "multi-queue-num-queues",
            "queue-0/tx-ring-ref",
            "queue-0/rx-ring-ref",
            if split {
                "queue-0/event-channel-tx"
            } else {
                "queue-0/event-channel"
            },
        ],
        (DeviceKind::Vbd, _, _) => &["ring-ref", "event-channel"],
    };
    let probed = matches!(
        conn.back_state,
        XenbusState::InitWait | XenbusState::Connected
    );
    let back_keys: &[&str] = match (conn.kind, conn.back_state) {
        (DeviceKind::Vif, _) => &["feature-rx-copy", "hotplug-status"],
        (DeviceKind::Vbd, XenbusState::Connected) => {
            &["feature-persistent", "sectors", "info", "sector-size"]
        }
        (DeviceKind::Vbd, _) => &["feature-persistent", "hotplug-status"],
    };
    if (published && missing(&conn.front_path, front_keys))
        || (probed && missing(&conn.back_path, back_keys))
    {
        violation(
            out,
            "xenbus.keys_before_state",
            format!("{} announced a state before its keys", conn.front_path),
        );
    }
}
