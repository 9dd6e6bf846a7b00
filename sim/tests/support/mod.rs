//! Hosts and guests shared by the xl output tests: a host configured like the machine the
//! reference outputs were captured on, a two-node host, and guest creation.

#![allow(dead_code)] // Each test file uses a different subset.

/// `golden!(name, text)`: an insta snapshot stored as `golden/<name>.snap`.
#[allow(unused_macros)] // Not every test file snapshots.
macro_rules! golden {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            snapshot_path => "../../golden",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

mod scratch;
#[allow(unused_imports)] // Not every test file needs a scratch directory.
pub use scratch::scratch_dir;

use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::boot::{BootConfig, CpuTopo};
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::ids::{DomId, VcpuId, VcpuRef};
use hypervisor_model::sched::SchedKind;
use hypervisor_model::testing::{small_host, FakePlatform};
use hypervisor_model::time::{STime, Span};
use hypervisor_model::toolstack::config::DomainConfig;
use hypervisor_model::toolstack::ops::{JobId, ToolstackOp};
use xensim::report::xl::XlHost;

/// Pages per MiB.
pub const PAGES_PER_MIB: u64 = 256;

/// dom0's `uname -n`, `-r`, `-v` on the reference host.
pub const REF_HOSTNAME: &str = "dom0";
/// dom0's `uname -r` on the reference host.
pub const REF_RELEASE: &str = "6.1.0-50-amd64";
/// dom0's `uname -v` on the reference host.
pub const REF_VERSION: &str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)";

/// A booted host and its platform.
pub fn boot(config: BootConfig) -> (Hypervisor, FakePlatform) {
    let mut p = FakePlatform::default();
    let mut hv = Hypervisor::boot(config, &mut p);
    p.run_until_idle(&mut hv);
    (hv, p)
}

/// The machine of `real-xen-4.17-dom0-only.txt`: 4 pCPUs on one socket and node,
/// 3071 MiB, a 2445.404 MHz TSC, dom0 with 1 vCPU pinned and 1024 MiB, and Debian's
/// Xen 4.17.5 build strings and command line.
pub fn reference_host() -> BootConfig {
    let mut config = small_host(4, SchedKind::Credit2);
    config.host.node_memory_pages = vec![3071 * PAGES_PER_MIB];
    config.host.cpu_khz = 2_445_404;
    let xen = &mut config.xen;
    xen.compiler = String::from("x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0");
    xen.compile_by = String::from("pkg-xen-devel");
    xen.compile_domain = String::from("lists.alioth.debian.org");
    xen.compile_date = String::from("Sat Nov 29 13:52:25 UTC 2025");
    xen.build_id = String::from("39a640e6f1412319235087391df9f1c5e13ae920");
    xen.commandline = String::from(
        "dom0_mem=1024M,max:1024M dom0_max_vcpus=1 dom0_vcpus_pin console=com1 \
         com1=115200,8n1 sched=credit2 smap=0 loglvl=all guest_loglvl=all",
    );
    config
}

/// Two sockets of 4 cores, one NUMA node each (4 GiB each, SLIT 10/21).
pub fn two_node_host() -> BootConfig {
    let mut config = small_host(8, SchedKind::Null);
    config.host.cpus = (0..8)
        .map(|cpu| CpuTopo {
            core: cpu % 4,
            socket: cpu / 4,
            node: cpu / 4,
        })
        .collect();
    config.host.cores_per_socket = 4;
    config.host.node_memory_pages = vec![4096 * PAGES_PER_MIB, 4096 * PAGES_PER_MIB];
    config.host.node_distances = vec![10, 21, 21, 10];
    config
}

/// xl running on `hv` at `now`, with the reference host's dom0 `uname`.
pub fn xl_host(hv: &Hypervisor, now: STime) -> XlHost<'_> {
    XlHost {
        hv,
        now_ns: now.as_ns(),
        hostname: REF_HOSTNAME,
        release: REF_RELEASE,
        version: REF_VERSION,
    }
}

/// A PV guest with `vcpus` vCPUs and `memory_mib` MiB.
pub fn guest(name: &str, vcpus: u32, memory_mib: u64) -> DomainConfig {
    let mut config = DomainConfig::with_defaults(String::from(name));
    config.vcpus = vcpus;
    config.max_vcpus = vcpus;
    config.memory_kib = memory_mib * 1024;
    config.max_memory_kib = memory_mib * 1024;
    config
}

/// `xl create [-p]` with a UUID made of `uuid_byte`, run to completion.
pub fn create(
    hv: &mut Hypervisor,
    p: &mut FakePlatform,
    job: u32,
    config: DomainConfig,
    uuid_byte: u8,
    paused: bool,
) {
    let op = ToolstackOp::Create {
        config: Box::new(config),
        uuid: [uuid_byte; 16],
        paused,
    };
    let input = CoreInput::Toolstack {
        job: JobId(job),
        op,
    };
    assert_eq!(hv.handle(&input, p), Ok(()));
    p.run_until_idle(hv);
}

/// The guest blocks its vCPU `index` (SCHEDOP_block).
pub fn block(hv: &mut Hypervisor, p: &mut FakePlatform, dom: u16, index: u32) {
    let vcpu = VcpuRef {
        dom: DomId::new(dom).expect("test domid"),
        vcpu: VcpuId::new(index).expect("test vcpu"),
    };
    assert_eq!(hv.handle(&CoreInput::VcpuBlock { vcpu }, p), Ok(()));
    p.run_until_idle(hv);
}

/// Lets virtual time pass.
pub fn advance(p: &mut FakePlatform, ms: i64) {
    p.now = p.now.after(Span::from_ms(ms));
}

/// The repository root (the parent of the `sim` crate).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the `xensim` binary from the repository root.
pub fn xensim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xensim"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("xensim runs")
}

/// A command's standard output, as text.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every bundled scenario (`scenarios/*.toml`), sorted by path.
pub fn bundled_scenarios() -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(repo_root().join("scenarios"))
        .expect("scenarios/ is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}
