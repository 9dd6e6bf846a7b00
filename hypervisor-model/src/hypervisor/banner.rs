//! Boot: the console lines Xen prints while it starts, and dom0's construction.
//!
//! Follows xen/drivers/char/console.c (`console_init_preirq` banner, `console_endboot`),
//! xen/arch/x86/setup.c (`__start_xen` order: System RAM, scheduler, CPUs, dom0, init_done)
//! and xen/common/sched/core.c (`scheduler_init`: "Using scheduler", cpupool0 creation).
//!
//! xensim differs: lines about firmware, ACPI, MTRRs and CPU errata that only describe real
//! hardware are not printed; every line that is printed has Xen's wording.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::boot::BootConfig;
use super::Hypervisor;
use crate::cpumask::CpuMask;
use crate::domain::{Domain, DomainIdentity};
use crate::ids::{DomId, PcpuId, PoolId};
use crate::platform::Platform;
use crate::sched::params::{DEFAULT_RATELIMIT_US, RATELIMIT_MAX_US, RATELIMIT_MIN_US};
use crate::sched::SchedKind;
use crate::toolstack::config::GuestType;

impl Hypervisor {
    pub(super) fn boot_banner<P: Platform + ?Sized>(&mut self, p: &mut P, pool0: SchedKind) {
        let x = self.xen.clone();
        // cmdline_parse runs before the console banner (__start_xen): its complaints come
        // first in the ring.
        for option in &x.unknown_options {
            self.printk(p, &format!("parameter \"{option}\" unknown!"));
        }
        self.printk(
            p,
            &format!(
                "Xen version {}.{}{} ({}@{}) ({}) debug=n {}",
                x.major,
                x.minor,
                x.extra,
                x.compile_by,
                x.compile_domain,
                x.compiler,
                x.compile_date
            ),
        );
        self.printk(p, &format!("build-id: {}", x.build_id));
        self.printk(p, &format!("Command line: {}", x.commandline));
        let total_pages = self.host.total_pages();
        self.printk(
            p,
            &format!(
                "System RAM: {}MB ({}kB)",
                total_pages >> 8,
                total_pages << 2
            ),
        );
        let nr_cpus = self.host.nr_cpus();
        self.printk(p, &format!("SMP: Allowing {nr_cpus} CPUs (0 hotplug CPUs)"));
        // scheduler_init: every built-in scheduler's global_init runs first (credit2's
        // checks its boot options), then the chosen one is announced.
        let mut warnings = Vec::new();
        crate::sched::credit2::global_init(&mut self.sched_opts, &mut warnings);
        for line in warnings {
            self.printk(p, &line);
        }
        let probe = pool0.instantiate(&self.sched_init());
        self.printk(
            p,
            &format!("Using scheduler: {} ({})", probe.name(), probe.opt_name()),
        );
        let rl = self.sched_opts.ratelimit_us;
        if rl != 0 && !(RATELIMIT_MIN_US..=RATELIMIT_MAX_US).contains(&rl) {
            // scheduler_init: an out-of-range boot value falls back to the default.
            self.printk(
                p,
                &format!(
                    "WARNING: sched_ratelimit_us outside of valid range \
                     [{RATELIMIT_MIN_US},{RATELIMIT_MAX_US}]."
                ),
            );
            self.printk(p, &format!(" Resetting to default {DEFAULT_RATELIMIT_US}"));
            self.sched_opts.ratelimit_us = DEFAULT_RATELIMIT_US;
        }
        sched_init(self, p, pool0);
        self.printk(
            p,
            &format!(
                "Allocated console ring of {} KiB.",
                self.xen.conring_bytes >> 10
            ),
        );
        self.printk(p, &format!("Brought up {nr_cpus} CPUs"));
        self.printk(p, "Scheduling granularity: cpu, 1 CPU per sched-resource");
        // cpupool0 gets its own scheduler instance, which initialises (and prints) again.
        sched_init(self, p, pool0);
    }

    /// Builds dom0 as `create_dom0` does: domid 0, privileged, `dom0_mem` pages, its vCPUs
    /// in Pool-0 (pinned 1:1 with `dom0_vcpus_pin`); it stays paused until `init_done`.
    pub(super) fn build_dom0<P: Platform + ?Sized>(&mut self, p: &mut P, config: &BootConfig) {
        let d0 = &config.dom0;
        let kind = if d0.guest_type == GuestType::Pv {
            "PV"
        } else {
            "PVH"
        };
        self.printk(p, &format!("*** Building a {kind} Dom0 ***"));
        let pages = d0.memory_pages.min(self.memory.free_pages());
        let identity = DomainIdentity {
            id: DomId::DOM0,
            name: String::from("Domain-0"),
            uuid: [0; 16],
            guest_type: d0.guest_type,
            pool: PoolId(0),
            weight: d0.weight,
            cap: 0,
        };
        let mut domain = Domain::new_paused(identity, p.now());
        domain.privileged = true;
        domain.max_pages = pages;
        self.insert_domain(domain, p);
        let max_set = self.memory.set_max_pages(DomId::DOM0, pages);
        assert_eq!(max_set, Ok(()));
        // The dom0 builder allocates in large chunks; at boot every node is one free run.
        let populated = self.populate_batch(DomId::DOM0, 0, pages, pages, p);
        assert_eq!(
            populated,
            Ok((pages, 0)),
            "dom0_mem fits in clean free memory"
        );
        let nr_cpus = self.host.nr_cpus();
        let pool0_cpus = self.pool_ref(PoolId(0)).cpus.clone();
        // dom0_cpus is Pool-0's CPUs (no dom0_nodes); with dom0_vcpus_pin, vCPU i is
        // pinned to the i-th of them, cycling (sched_setup_dom0_vcpus, common/sched/core.c).
        let dom0_cpus: Vec<PcpuId> = pool0_cpus.iter().collect();
        let hard: Vec<CpuMask> = (0..d0.vcpus)
            .map(|i| {
                let slot = usize::try_from(i).unwrap_or(0) % dom0_cpus.len().max(1);
                match (d0.pin, dom0_cpus.get(slot)) {
                    (true, Some(cpu)) => CpuMask::single(nr_cpus, *cpu),
                    // Unpinned: hard affinity is dom0_cpus (sched_init_vcpu).
                    _ => pool0_cpus.clone(),
                }
            })
            .collect();
        let soft: Vec<CpuMask> = hard.iter().map(|_| CpuMask::full(nr_cpus)).collect();
        debug_assert!(hard.iter().all(|h| h.intersects(&pool0_cpus)));
        self.printk(p, &format!("Dom0 has maximum {} VCPUs", d0.vcpus));
        self.create_vcpus(DomId::DOM0, &hard, &soft, d0.vcpus, p);
    }
}

/// `init` of a scheduler instance: what it prints when it starts.
pub(super) fn sched_init<P: Platform + ?Sized>(hv: &mut Hypervisor, p: &mut P, kind: SchedKind) {
    let mut lines = Vec::new();
    kind.instantiate(&hv.sched_init()).init_messages(&mut lines);
    for line in lines {
        hv.printk(p, &line);
    }
}

/// `console_endboot` and `init_done`: log levels, then dom0 is unpaused.
pub(super) fn boot_tail<P: Platform + ?Sized>(
    hv: &mut Hypervisor,
    p: &mut P,
    _dom0_type: GuestType,
) {
    // Non-debug defaults: lower = upper = warnings; guests: nothing, rate-limited warnings.
    hv.printk(p, "Std. Loglevel: Errors and warnings");
    hv.printk(
        p,
        "Guest Loglevel: Nothing (Rate-limited: Errors and warnings)",
    );
    hv.printk(
        p,
        "*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)",
    );
    hv.printk(p, "Freed 668kB init memory");
    // init_done: domain_unpause_by_systemcontroller(dom0).
    let unpaused = hv.controller_unpause(DomId::DOM0, p);
    assert!(unpaused.is_ok(), "dom0 was built paused");
}
