//! The reference performance scenarios of `specs/scenario.md` §11 as generated TOML text:
//! `bench-64x512` (credit2), `bench-64x512-rtds`, `bench-64x64-null`, the scale
//! curve `scale-8/64/256/1024`, and the memory-scale `mem-1t-100`. The files under
//! `scenarios/bench/` are this module's output; the `bench_scenarios` test regenerates
//! them and fails when a checked-in file differs, so the files cannot drift from the spec
//! (bless with `XENSIM_BLESS=1`).
//!
//! # Invariants
//! - Every parameter comes from §11: seed 1, warmup 500 ms, profile `default`, one thread per
//!   core, NUMA per socket, one `nvme` disk per socket, no `[costs]`, no `[[at]]`.
//! - Guest `i` (`gNNNN`) is in group `i mod 16`; its vbd `xvda` is on socket `i mod sockets`.
//! - `mem-1t-100` (`memory-iommu-migration.md` §1.7): 2 × 16 cores, 1 TiB, a 4 GiB dom0,
//!   guests `m000`..`m099` of `2048 × (1 + i mod 8)` MiB, 2 vCPUs, bursty over a 1 GiB
//!   working set; no disks.
//!
//! xensim differs: `mem-1t-100` runs 7 s with a 6 s warm-up instead of §11's 1 s, because
//! building the 16 GiB guests takes about 5 s of virtual time (4 Mi pages at
//! `mem.balloon_claim_page_ns`); the window is the 1 s that follows the boot.

use std::fmt::Write as _;

/// Pool-0's scheduler of a reference scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchSched {
    /// credit2, Xen 4.17's default.
    Credit2,
    /// rtds, with the per-group server parameters of §11.
    Rtds,
    /// null, one vCPU per pCPU.
    Null,
}

impl BenchSched {
    fn name(self) -> &'static str {
        match self {
            BenchSched::Credit2 => "credit2",
            BenchSched::Rtds => "rtds",
            BenchSched::Null => "null",
        }
    }
}

/// One reference scenario's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchSpec {
    /// File stem under `scenarios/bench/`.
    pub name: &'static str,
    /// Sockets (16 cores each, except `scale-8`).
    pub sockets: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Guests `g0000..`.
    pub guest_count: u32,
    /// vCPUs of each guest.
    pub guest_vcpus: u32,
    /// Pool-0's scheduler.
    pub sched: BenchSched,
    /// Virtual run length in seconds.
    pub duration_s: u32,
    /// Description line at the top of the file.
    pub about: &'static str,
    /// What the guests are.
    pub shape: Shape,
}

/// The guests of a reference scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `gNNNN`, 2 GiB each, in the workload groups of §11 with a vbd each.
    Groups,
    /// `mem-1t-100`'s `mNNN` (see the module doc).
    MemoryScale,
}

impl BenchSpec {
    fn pcpu_count(&self) -> u32 {
        self.sockets * self.cores_per_socket
    }

    /// dom0's vCPUs: `max(1, pCPUs / 16)`, one for the null variant (§11).
    fn dom0_vcpus(&self) -> u32 {
        match self.sched {
            BenchSched::Null => 1,
            BenchSched::Credit2 | BenchSched::Rtds => (self.pcpu_count() / 16).max(1),
        }
    }

    /// Host memory: 4 GiB per pCPU (256 GiB at 64 pCPUs, as §11's table says); 1 TiB for
    /// `mem-1t-100`.
    fn memory_gib(&self) -> u32 {
        match self.shape {
            Shape::Groups => self.pcpu_count() * 4,
            Shape::MemoryScale => 1024,
        }
    }

    /// The metrics window starts here, ms.
    fn warmup_ms(&self) -> u32 {
        match self.shape {
            Shape::Groups => 500,
            Shape::MemoryScale => 6_000,
        }
    }
}

/// Every reference scenario of §11, in the order `xensim bench` reports them.
pub fn all() -> Vec<BenchSpec> {
    let wide = |name, guest_count, guest_vcpus, sched, about| BenchSpec {
        name,
        sockets: 4,
        cores_per_socket: 16,
        guest_count,
        guest_vcpus,
        sched,
        duration_s: 10,
        about,
        shape: Shape::Groups,
    };
    let scale = |name, sockets, cores_per_socket, about| BenchSpec {
        name,
        sockets,
        cores_per_socket,
        guest_count: sockets * cores_per_socket,
        guest_vcpus: 8,
        sched: BenchSched::Credit2,
        duration_s: 2,
        about,
        shape: Shape::Groups,
    };
    vec![
        wide(
            "bench-64x512",
            64,
            8,
            BenchSched::Credit2,
            "64 pCPUs, 64 guests x 8 vCPUs (512 vCPUs) under credit2, 10 s",
        ),
        wide(
            "bench-64x512-rtds",
            64,
            8,
            BenchSched::Rtds,
            "bench-64x512 under rtds, per-group servers (about 83% of the pCPUs reserved)",
        ),
        wide(
            "bench-64x64-null",
            63,
            1,
            BenchSched::Null,
            "64 pCPUs, dom0 and 63 single-vCPU guests under null (one vCPU per pCPU)",
        ),
        scale(
            "scale-8",
            1,
            8,
            "scale curve: 8 pCPUs, 8 guests x 8 vCPUs, 2 s",
        ),
        scale(
            "scale-64",
            4,
            16,
            "scale curve: 64 pCPUs, 64 guests x 8 vCPUs, 2 s",
        ),
        scale(
            "scale-256",
            16,
            16,
            "scale curve: 256 pCPUs, 256 guests x 8 vCPUs, 2 s",
        ),
        scale(
            "scale-1024",
            64,
            16,
            "scale curve: 1024 pCPUs, 1024 guests x 8 vCPUs, 2 s",
        ),
        BenchSpec {
            name: "mem-1t-100",
            sockets: 2,
            cores_per_socket: 16,
            guest_count: 100,
            guest_vcpus: 2,
            sched: BenchSched::Credit2,
            duration_s: 7,
            about: "memory scale: 1 TiB, 100 guests of 2-16 GiB (884 GiB), 1 s after the boot",
            shape: Shape::MemoryScale,
        },
    ]
}

/// The workload group of guest `index` (§11: by `index mod 16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `i mod 16 == 0`: always runnable.
    CpuBound,
    /// 1..=7: ≈10% duty.
    Bursty,
    /// 8..=11: one 4 KiB random read per cycle.
    Io,
    /// 12..=15: a 10 ms real-time task.
    Periodic,
}

/// The group of guest `index`.
pub fn group_of(index: u32) -> Group {
    match index % 16 {
        0 => Group::CpuBound,
        1..=7 => Group::Bursty,
        8..=11 => Group::Io,
        _ => Group::Periodic,
    }
}

impl Group {
    fn workload(self) -> &'static str {
        match self {
            Group::CpuBound => r#"{ kind = "cpu_bound" }"#,
            Group::Bursty => r#"{ kind = "bursty", service = "exp:100us", think = "exp:900us" }"#,
            Group::Io => concat!(
                r#"{ kind = "io", service = "exp:50us", think = "exp:2ms", "#,
                r#"disk = { op = "read", size = "4KiB", pattern = "random", queue_depth = 1 } }"#
            ),
            Group::Periodic => concat!(
                r#"{ kind = "periodic", period = "10ms", wcet = "1ms", "#,
                r#"phase = "uniform:0..9999us" }"#
            ),
        }
    }

    /// The rtds server of the group (§11's rtds table): period, budget in µs, extratime.
    fn rtds(self) -> (u32, u32, bool) {
        match self {
            Group::CpuBound => (10_000, 1_000, true),
            Group::Bursty => (1_000, 120, true),
            Group::Io => (2_000, 100, true),
            Group::Periodic => (10_000, 1_200, false),
        }
    }
}

/// The scenario file text of `spec`.
pub fn render(spec: &BenchSpec) -> String {
    let mut out = String::new();
    header(&mut out, spec);
    host(&mut out, spec);
    for index in 0..spec.guest_count {
        match spec.shape {
            Shape::Groups => guest(&mut out, spec, index),
            Shape::MemoryScale => memory_guest(&mut out, spec, index),
        }
    }
    out
}

fn header(out: &mut String, spec: &BenchSpec) {
    let _ = write!(
        out,
        "# {name}: {about}.\n\
         # Reference performance scenario of specs/scenario.md section 11, generated by\n\
         # sim/src/bench/scenarios.rs: do not edit; regenerate with\n\
         # XENSIM_BLESS=1 cargo test -p xensim --test bench_scenarios\n\
         [sim]\nseed = 1\nduration = \"{duration}s\"\nwarmup = \"{warmup}ms\"\n\n",
        name = spec.name,
        about = spec.about,
        duration = spec.duration_s,
        warmup = spec.warmup_ms(),
    );
}

fn host(out: &mut String, spec: &BenchSpec) {
    let _ = write!(
        out,
        "[host.h0]\n\
         topology = {{ sockets = {sockets}, cores_per_socket = {cores}, threads_per_core = 1, \
         numa = \"per-socket\" }}\n\
         memory = \"{memory}GiB\"\nscheduler = \"{sched}\"\nprofile = \"default\"\n",
        sockets = spec.sockets,
        cores = spec.cores_per_socket,
        memory = spec.memory_gib(),
        sched = spec.sched.name(),
    );
    if spec.shape == Shape::Groups {
        out.push_str("disks = [\n");
        for socket in 0..spec.sockets {
            let _ = writeln!(
                out,
                "  {{ name = \"nvme{socket}\", model = \"nvme\", node = {socket} }},"
            );
        }
        out.push_str("]\n");
    }
    let _ = write!(
        out,
        "\n[host.h0.dom0]\nmemory = \"4GiB\"\nvcpus = {vcpus}\npin = true\n",
        vcpus = spec.dom0_vcpus(),
    );
}

fn guest(out: &mut String, spec: &BenchSpec, index: u32) {
    let group = group_of(index);
    let name = format!("g{index:04}");
    let socket = index % spec.sockets;
    let weight = if index.is_multiple_of(32) { 512 } else { 256 };
    let _ = write!(
        out,
        "\n[[domain]]\nname = \"{name}\"\nxl = \"\"\"\nname = \"{name}\"\ntype = \"pvh\"\n\
         memory = 2048\nvcpus = {vcpus}\ncpu_weight = {weight}\n\
         disk = ['format=raw, vdev=xvda, access=rw, target=/dev/nvme{socket}n1']\n\"\"\"\n\
         workload = {workload}\n",
        vcpus = spec.guest_vcpus,
        workload = group.workload(),
    );
    if spec.sched == BenchSched::Rtds {
        let (period_us, budget_us, extratime) = group.rtds();
        let _ = writeln!(
            out,
            "rtds = {{ period = \"{period_us}us\", budget = \"{budget_us}us\", \
             extratime = {extratime} }}"
        );
    }
}

/// `mem-1t-100`'s guest `index`.
fn memory_guest(out: &mut String, spec: &BenchSpec, index: u32) {
    let name = format!("m{index:03}");
    let _ = write!(
        out,
        "\n[[domain]]\nname = \"{name}\"\nxl = \"\"\"\nname = \"{name}\"\ntype = \"pvh\"\n\
         memory = {memory_mib}\nvcpus = {vcpus}\n\"\"\"\n\
         workload = {{ kind = \"bursty\", service = \"exp:100us\", think = \"exp:900us\", \
         memory = {{ working_set = \"1GiB\" }} }}\n",
        memory_mib = 2048 * (1 + index % 8),
        vcpus = spec.guest_vcpus,
    );
}

#[cfg(test)]
mod tests {
    use super::{all, group_of, render, BenchSched, Group};

    #[test]
    fn groups_follow_index_mod_16() {
        assert_eq!(group_of(0), Group::CpuBound);
        assert_eq!(group_of(7), Group::Bursty);
        assert_eq!(group_of(8), Group::Io);
        assert_eq!(group_of(27), Group::Io);
        assert_eq!(group_of(31), Group::Periodic);
    }

    #[test]
    fn bench_64x512_has_512_guest_vcpus_and_four_dom0_vcpus() {
        let spec = &all()[0];
        assert_eq!(spec.guest_count * spec.guest_vcpus, 512);
        assert_eq!(spec.dom0_vcpus(), 4);
        assert_eq!(spec.memory_gib(), 256);
    }

    #[test]
    fn null_variant_has_one_vcpu_per_pcpu() {
        let spec = all()
            .into_iter()
            .find(|s| s.sched == BenchSched::Null)
            .expect("a null variant");
        assert_eq!(spec.guest_count * spec.guest_vcpus + spec.dom0_vcpus(), 64);
    }

    /// §11: "about 53.4 of 64 pCPUs" reserved, dom0's 1.6 (4 vCPUs at 4000/10000) included.
    #[test]
    fn rtds_reservations_sum_to_about_53_pcpus() {
        let spec = &all()[1];
        let guests_ppm: u64 = (0..spec.guest_count)
            .map(|i| {
                let (period_us, budget_us, _) = group_of(i).rtds();
                u64::from(spec.guest_vcpus) * u64::from(budget_us) * 1_000_000
                    / u64::from(period_us)
            })
            .sum();
        let dom0_ppm = u64::from(spec.dom0_vcpus()) * 400_000;
        assert_eq!((guests_ppm + dom0_ppm) / 100_000, 534);
    }

    /// §1.7: 884 GiB of guests on a 1 TiB host.
    #[test]
    fn mem_1t_100_guests_hold_884_gib() {
        let spec = all()
            .into_iter()
            .find(|s| s.name == "mem-1t-100")
            .expect("mem-1t-100");
        let text = render(&spec);
        let guest_mib: u64 = (0..u64::from(spec.guest_count))
            .map(|i| 2048 * (1 + i % 8))
            .sum();
        assert_eq!(guest_mib, 884 * 1024);
        assert!(text.contains("name = \"m099\""));
        assert!(text.contains("memory = \"1024GiB\""));
    }

    #[test]
    fn scale_8_has_no_io_group() {
        let spec = all()
            .into_iter()
            .find(|s| s.name == "scale-8")
            .expect("scale-8");
        assert!(!render(&spec).contains("kind = \"io\""));
    }
}
