//! The XenStore requests the toolstack makes for a domain's standard tree: dom0's entries at
//! boot, the home, `/vm` and `/libxl` directories at `createdomain`, the build-time keys,
//! and the device directories (console, vbd, vif) with their link keys. Pure builders: each
//! returns the request list in libxl's order; the hypervisor layer runs it in a transaction.
//!
//! Follows tools/libs/light/libxl_create.c (`libxl__domain_make`, `libxl__domain_build`),
//! libxl_dom.c (`libxl__build_post`), libxl_mem.c (`libxl__fill_dom0_memory_info`),
//! libxl_device.c (`libxl__device_generic_add`, `libxl__device_add_async`), libxl_console.c
//! (`libxl__device_console_add`), libxl_nic.c (`libxl__set_xenstore_nic`), libxl_disk.c
//! (`device_disk_add`) and tools/helpers/xen-init-dom0.c, all of Xen 4.17; spec
//! `xenstore-io.md` §3.
//!
//! # Invariants
//! - Every node the guest may write (`~/control/shutdown`, `~/data`, ...) is created with
//!   the guest as owner (`n<F>`); everything else in its home is `n0,r<F>`.
//! - A device's frontend directory is owned by the frontend domain and readable by the
//!   backend; the backend directory is the reverse (spec §3.2).
//!
//! xensim differs: `memory/videoram` is written for every guest type, as libxl 4.17 does
//! (the spec table lists it as HVM only); ring and frame numbers (`store/ring-ref`,
//! `console/ring-ref`) are stand-ins, since the memory layout is not modelled; MAC
//! addresses xl would draw at random are derived from the domain's UUID.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::io::console::XENCONSOLE_LIMIT_BYTES;
use crate::toolstack::config::{DiskAccess, DiskCfg, DomainConfig, GuestType, VifCfg};
use crate::xenstore::perms::PERM_READ;
use crate::xenstore::Perm;

/// One XenStore request of the toolstack (a privileged dom0 client).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum XsReq {
    /// `XS_WRITE`.
    Write {
        /// Absolute path.
        path: String,
        /// The value.
        value: Vec<u8>,
    },
    /// `XS_MKDIR`.
    Mkdir {
        /// Absolute path.
        path: String,
    },
    /// `XS_RM` (a missing node is not an error for the toolstack).
    Rm {
        /// Absolute path.
        path: String,
    },
    /// `XS_SET_PERMS`.
    SetPerms {
        /// Absolute path.
        path: String,
        /// Owner first.
        perms: Vec<Perm>,
    },
}

/// Builds a request list.
#[derive(Default, Debug)]
pub struct Reqs(pub Vec<XsReq>);

impl Reqs {
    fn write(&mut self, path: &str, value: &str) -> &mut Self {
        self.0.push(XsReq::Write {
            path: String::from(path),
            value: value.as_bytes().to_vec(),
        });
        self
    }

    fn rm(&mut self, path: &str) -> &mut Self {
        self.0.push(XsReq::Rm {
            path: String::from(path),
        });
        self
    }

    fn perms(&mut self, path: &str, perms: &[Perm]) -> &mut Self {
        self.0.push(XsReq::SetPerms {
            path: String::from(path),
            perms: perms.to_vec(),
        });
        self
    }

    /// `libxl__xs_mknod`: an empty node, then its permissions.
    fn mknod(&mut self, path: &str, perms: &[Perm]) -> &mut Self {
        self.0.push(XsReq::Mkdir {
            path: String::from(path),
        });
        self.perms(path, perms)
    }

    /// `libxl__xs_writev` of `(key, value)` pairs under `dir`.
    fn writev(&mut self, dir: &str, kvs: &[(String, String)]) -> &mut Self {
        for (key, value) in kvs {
            self.write(&format!("{dir}/{key}"), value);
        }
        self
    }

    /// `libxl__xs_writev_perms`: each key written, then given `perms`.
    fn writev_perms(&mut self, dir: &str, kvs: &[(String, String)], perms: &[Perm]) {
        for (key, value) in kvs {
            let path = format!("{dir}/{key}");
            self.write(&path, value).perms(&path, perms);
        }
    }
}

/// `n0`: dom0 owns, nobody else may read.
fn noperm() -> [Perm; 1] {
    [Perm::new(0, 0)]
}

/// `n0,r<F>`: dom0 owns, the domain may read.
fn roperm(dom: u32) -> [Perm; 2] {
    [Perm::new(0, 0), Perm::new(dom, PERM_READ)]
}

/// `n<F>`: the domain owns the node.
fn rwperm(dom: u32) -> [Perm; 1] {
    [Perm::new(dom, 0)]
}

/// `/local/domain/<dom>`.
pub fn dom_path(dom: u32) -> String {
    format!("/local/domain/{dom}")
}

/// `/libxl/<dom>`.
pub fn libxl_path(dom: u32) -> String {
    format!("/libxl/{dom}")
}

/// `/vm/<uuid>`.
pub fn vm_path(uuid: &[u8; 16]) -> String {
    format!("/vm/{}", uuid_string(uuid))
}

/// `LIBXL_UUID_FMT`: lowercase hex in 8-4-4-4-12 groups.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let hex = |range: core::ops::Range<usize>| -> String {
        u[range].iter().map(|b| format!("{b:02x}")).collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// dom0 at boot: the kernel's `control/feature-*` (Linux `setup_shutdown_watcher`), then
/// xen-init-dom0's `domid`, `name` and one `/local/pool/<id>/name` per boot pool, then
/// libxl's `memory/target` and `memory/static-max` (`libxl__fill_dom0_memory_info`).
/// Returned as (kernel requests on dom0's ring, toolstack requests).
pub fn dom0_boot(pool_ids: &[u32], memory_kib: u64, max_memory_kib: u64) -> (Reqs, Reqs) {
    let home = dom_path(0);
    let mut kernel = Reqs::default();
    for feature in ["poweroff", "reboot", "suspend"] {
        kernel.write(&format!("{home}/control/feature-{feature}"), "1");
    }
    let mut tool = Reqs::default();
    tool.write(&format!("{home}/domid"), "0")
        .write(&format!("{home}/name"), "Domain-0");
    for id in pool_ids {
        tool.write(&format!("/local/pool/{id}/name"), &format!("Pool-{id}"));
    }
    tool.write(&format!("{home}/memory/target"), &format!("{memory_kib}"))
        .write(
            &format!("{home}/memory/static-max"),
            &format!("{max_memory_kib}"),
        );
    (kernel, tool)
}

/// `libxl__domain_make`'s transaction: the home with its guest-writable areas, `/vm/<uuid>`
/// and `/libxl/<dom>`.
pub fn domain_make(dom: u32, config: &DomainConfig, uuid: &[u8; 16]) -> Reqs {
    let (home, vm, lx) = (dom_path(dom), vm_path(uuid), libxl_path(dom));
    let (ro, rw) = (roperm(dom), rwperm(dom));
    let hvm = config.guest_type == GuestType::Hvm;
    let mut r = Reqs::default();
    r.rm(&home).mknod(&home, &ro);
    r.rm(&vm).mknod(&vm, &ro);
    r.rm(&lx).mknod(&lx, &noperm());
    r.mknod(&format!("{lx}/device"), &noperm());
    r.write(&format!("{home}/vm"), &vm);
    // libxl__domain_rename inside the same transaction.
    r.write(&format!("{home}/name"), &config.name);
    for dir in ["cpu", "memory", "device"] {
        r.mknod(&format!("{home}/{dir}"), &ro);
    }
    r.mknod(&format!("{home}/device/suspend/event-channel"), &rw);
    r.mknod(&format!("{home}/control"), &ro);
    if hvm {
        r.mknod(&format!("{home}/hvmloader"), &ro);
    }
    let mut control = alloc::vec!["shutdown", "feature-poweroff", "feature-reboot"];
    control.push("feature-suspend");
    if hvm {
        control.extend(["feature-s3", "feature-s4"]);
    }
    control.push("sysrq");
    for key in control {
        r.mknod(&format!("{home}/control/{key}"), &rw);
    }
    for dir in ["data", "drivers", "feature", "attr", "error"] {
        r.mknod(&format!("{home}/{dir}"), &rw);
    }
    if config.driver_domain {
        // A driver domain may run libxl (xl devd) and qemu itself.
        for dir in ["libxl", "device-model"] {
            r.mknod(&format!("{home}/{dir}"), &rw);
        }
    }
    r.write(&format!("{vm}/uuid"), &uuid_string(uuid));
    r.write(&format!("{vm}/name"), &config.name);
    let features = ["multiprocessor-suspend", "xs_reset_watches"];
    for feature in features {
        r.write(&format!("{home}/control/platform-feature-{feature}"), "1");
    }
    r.write(&format!("{lx}/type"), config.guest_type.as_str());
    r
}

/// What the domain builder chose that the build-time keys record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BuildState {
    /// The guest's unbound port for the store ring (`xc_evtchn_alloc_unbound`, remote dom0).
    pub store_port: u32,
    /// The guest's unbound port for the console ring.
    pub console_port: u32,
    /// Frame of the store page (`store_mfn`).
    pub store_frame: u64,
    /// Frame of the console page (`console_mfn`).
    pub console_frame: u64,
    /// Virtual build time, ns (`start_time`).
    pub start_time_ns: u64,
    /// xenstored's (dom0's) end of the store channel, once `XS_INTRODUCE` bound it.
    pub dom0_store_port: Option<u32>,
}

/// `video_memkb` after `libxl__domain_build_info_setdefault`: 8 MiB for HVM (cirrus on
/// qemu-xen, the 4.17 default), 0 otherwise.
pub fn video_memory_kib(guest_type: GuestType) -> u64 {
    match guest_type {
        GuestType::Hvm => 8 * 1024,
        GuestType::Pv | GuestType::Pvh => 0,
    }
}

/// `LIBXL_MAXMEM_CONSTANT`: slack libxl keeps between target and max for HVM.
const LIBXL_MAXMEM_CONSTANT_KIB: u64 = 1024;

/// `libxl__build_post`'s transaction: memory keys, `domid`, store keys, vCPU availability,
/// the HVM platform keys, and the `/vm` image keys. `XS_INTRODUCE` follows it.
pub fn build_post(dom: u32, config: &DomainConfig, uuid: &[u8; 16], b: &BuildState) -> Reqs {
    let video_kib = video_memory_kib(config.guest_type);
    let fudge_kib = match config.guest_type {
        GuestType::Hvm if config.max_memory_kib > config.memory_kib => LIBXL_MAXMEM_CONSTANT_KIB,
        _ => 0,
    };
    let target_kib = config.memory_kib.saturating_sub(video_kib + fudge_kib);
    let mut ents: Vec<(String, String)> = alloc::vec![
        kv("memory/static-max", format!("{}", config.max_memory_kib)),
        kv("memory/target", format!("{target_kib}")),
        kv("memory/videoram", format!("{video_kib}")),
        kv("domid", format!("{dom}")),
        kv("store/port", format!("{}", b.store_port)),
        kv("store/ring-ref", format!("{}", b.store_frame)),
    ];
    for i in 0..config.max_vcpus {
        let avail = if i < config.vcpus {
            "online"
        } else {
            "offline"
        };
        ents.push(kv(&format!("cpu/{i}/availability"), String::from(avail)));
    }
    let start_time = format!(
        "{}.{:02}",
        b.start_time_ns / 1_000_000_000,
        (b.start_time_ns % 1_000_000_000) / 10_000_000
    );
    let (local, vm): (Kvs, Kvs) = match config.guest_type {
        GuestType::Hvm => (
            alloc::vec![
                kv("platform/acpi", String::from("1")),
                kv("platform/acpi_s3", String::from("1")),
                kv("platform/acpi_s4", String::from("1")),
                kv("platform/acpi_laptop_slate", String::from("0")),
                kv("platform/device-model", String::from("qemu_xen")),
            ],
            alloc::vec![
                kv("rtc/timeoffset", String::new()),
                kv("image/ostype", String::from("hvm")),
                kv("start_time", start_time),
            ],
        ),
        GuestType::Pv => (
            Vec::new(),
            alloc::vec![
                kv("image/ostype", String::from("linux")),
                kv("image/kernel", config.kernel.clone().unwrap_or_default()),
                kv("start_time", start_time),
            ],
        ),
        GuestType::Pvh => (Vec::new(), alloc::vec![kv("start_time", start_time)]),
    };
    let home = dom_path(dom);
    let mut r = Reqs::default();
    r.writev(&home, &ents).writev(&home, &local);
    r.writev(&vm_path(uuid), &vm);
    r
}

/// `(key, value)` pairs in write order.
type Kvs = Vec<(String, String)>;

fn kv(key: &str, value: String) -> (String, String) {
    (String::from(key), value)
}

/// A split device the toolstack adds: its kind, ids and the three key lists of
/// `libxl__device_generic_add`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceAdd {
    /// `console`, `vbd` or `vif`.
    pub kind: &'static str,
    /// Frontend domain.
    pub dom: u32,
    /// Backend domain.
    pub backend_dom: u32,
    /// Device id.
    pub devid: u32,
    /// Backend keys.
    pub back: Vec<(String, String)>,
    /// Frontend keys, frontend-owned.
    pub front: Vec<(String, String)>,
    /// Frontend keys, backend-owned (read-only for the guest).
    pub ro_front: Vec<(String, String)>,
}

impl DeviceAdd {
    /// The frontend directory (console 0 lives at `~/console`).
    pub fn frontend_path(&self) -> String {
        if self.kind == "console" && self.devid == 0 {
            format!("{}/console", dom_path(self.dom))
        } else {
            format!("{}/device/{}/{}", dom_path(self.dom), self.kind, self.devid)
        }
    }

    /// The backend directory.
    pub fn backend_path(&self) -> String {
        let (b, k, d, i) = (self.backend_dom, self.kind, self.dom, self.devid);
        format!("{}/backend/{k}/{d}/{i}", dom_path(b))
    }

    /// `/libxl/<dom>/device/<kind>/<devid>`.
    pub fn libxl_path(&self) -> String {
        let (k, i) = (self.kind, self.devid);
        format!("{}/device/{k}/{i}", libxl_path(self.dom))
    }

    /// `libxl__device_generic_add` inside the device transaction.
    pub fn requests(&self) -> Reqs {
        let (fe, be, lx) = (self.frontend_path(), self.backend_path(), self.libxl_path());
        let front_perms = [
            Perm::new(self.dom, 0),
            Perm::new(self.backend_dom, PERM_READ),
        ];
        let back_perms = [
            Perm::new(self.backend_dom, 0),
            Perm::new(self.dom, PERM_READ),
        ];
        let mut r = Reqs::default();
        r.rm(&lx).write(&format!("{lx}/frontend"), &fe);
        r.write(&format!("{lx}/backend"), &be);
        r.rm(&fe);
        r.0.push(XsReq::Mkdir { path: fe.clone() });
        let console0 = self.kind == "console" && self.devid == 0;
        r.perms(&fe, if console0 { &back_perms } else { &front_perms });
        r.write(&format!("{fe}/backend"), &be);
        r.writev_perms(&fe, &self.front, &front_perms);
        r.writev_perms(&fe, &self.ro_front, &back_perms);
        r.rm(&be);
        r.0.push(XsReq::Mkdir { path: be.clone() });
        r.perms(&be, &back_perms);
        r.write(&format!("{be}/frontend"), &fe);
        r.writev(&be, &self.back).writev(&lx, &self.back);
        r
    }
}

impl DeviceAdd {
    /// xensim's `xl devd` re-creating this device's backend in a restarted driver domain
    /// (`backend_dom` is the new one): the backend directory as `requests` writes it, the
    /// libxl copy's `backend` link, the frontend directory and `front_keys` (the keys it
    /// holds now) re-permitted for the new backend to read, then the frontend's `state`
    /// (Initialising, as a device add writes it), `backend-id` and `backend` links (last:
    /// the frontend reacts to `backend`).
    pub fn relink_requests(&self, front_keys: &[String]) -> Reqs {
        let (fe, be, lx) = (self.frontend_path(), self.backend_path(), self.libxl_path());
        let front_perms = [
            Perm::new(self.dom, 0),
            Perm::new(self.backend_dom, PERM_READ),
        ];
        let back_perms = [
            Perm::new(self.backend_dom, 0),
            Perm::new(self.dom, PERM_READ),
        ];
        let mut r = Reqs::default();
        r.write(&format!("{lx}/backend"), &be);
        r.rm(&be);
        r.0.push(XsReq::Mkdir { path: be.clone() });
        r.perms(&be, &back_perms);
        r.write(&format!("{be}/frontend"), &fe);
        r.writev(&be, &self.back);
        r.perms(&fe, &front_perms);
        for key in front_keys {
            // The backend-owned keys (a vif's `mtu`) stay the backend's: the new one's.
            let backend_owned = self.ro_front.iter().any(|(k, _)| k == key);
            let perms = if backend_owned {
                &back_perms
            } else {
                &front_perms
            };
            r.perms(&format!("{fe}/{key}"), perms);
        }
        let back_id = format!("{}", self.backend_dom);
        r.write(&format!("{fe}/state"), "1");
        r.write(&format!("{fe}/backend-id"), &back_id);
        r.write(&format!("{fe}/backend"), &be);
        r
    }
}

/// The backend and frontend state keys every xenbus device starts with.
fn common(dom: u32, backend_dom: u32) -> (Kvs, Kvs) {
    let back = alloc::vec![
        kv("frontend-id", format!("{dom}")),
        kv("online", String::from("1")),
        kv("state", String::from("1")),
    ];
    let front = alloc::vec![
        kv("backend-id", format!("{backend_dom}")),
        kv("state", String::from("1")),
    ];
    (back, front)
}

/// The primary console (`libxl__device_console_add` with the build state).
pub fn console(dom: u32, b: &BuildState) -> DeviceAdd {
    let back = alloc::vec![
        kv("frontend-id", format!("{dom}")),
        kv("online", String::from("1")),
        kv("state", String::from("1")),
        kv("protocol", String::from("vt100")),
    ];
    let ro_front = alloc::vec![
        kv("limit", format!("{XENCONSOLE_LIMIT_BYTES}")),
        kv("type", String::from("xenconsoled")),
        kv("output", String::from("pty")),
        kv("tty", String::new()),
        kv("port", format!("{}", b.console_port)),
        kv("ring-ref", format!("{}", b.console_frame)),
    ];
    DeviceAdd {
        kind: "console",
        dom,
        backend_dom: 0,
        devid: 0,
        back,
        front: alloc::vec![kv("backend-id", String::from("0"))],
        ro_front,
    }
}

/// The MAC of vif `devid`: xl's `00:16:3e` prefix and three bytes (xl draws them at random;
/// xensim takes them from the domain's UUID and the devid, so runs replay).
pub fn vif_mac(vif: &VifCfg, uuid: &[u8; 16], devid: u32) -> String {
    if let Some(mac) = &vif.mac {
        return mac.clone();
    }
    let low = devid.to_le_bytes()[0];
    let (a, b, c) = (uuid[13] & 0x7f, uuid[14], uuid[15].wrapping_add(low));
    format!("00:16:3e:{a:02x}:{b:02x}:{c:02x}")
}

/// A `vif=` entry (`libxl__device_add_async` + `libxl__set_xenstore_nic`) whose backend
/// runs in `backend_dom` (dom0, or the driver domain `backend=` names).
pub fn vif(
    dom: u32,
    hvm: bool,
    vif: &VifCfg,
    uuid: &[u8; 16],
    devid: u32,
    backend_dom: u32,
) -> DeviceAdd {
    let (mut back, mut front) = common(dom, backend_dom);
    let mac = vif_mac(vif, uuid, devid);
    let other = |key: &str| vif.other.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let script = other("script").map_or("vif-bridge", String::as_str);
    let script = if script.starts_with('/') {
        String::from(script)
    } else {
        format!("/etc/xen/scripts/{script}")
    };
    back.push(kv("script", script));
    if let Some(name) = other("vifname") {
        back.push(kv("vifname", name.clone()));
    }
    back.push(kv("mac", mac.clone()));
    if let Some(ip) = other("ip") {
        back.push(kv("ip", ip.clone()));
    }
    back.push(kv("mtu", String::from("1500")));
    let bridge = vif.bridge.clone().unwrap_or_else(|| String::from("xenbr0"));
    back.push(kv("bridge", bridge));
    back.push(kv("handle", format!("{devid}")));
    // libxl__device_nic_setdefault: an HVM guest's nic is `vif_ioemu` (emulated by QEMU
    // and PV) unless xl.cfg says `type=vif`; PV and PVH nics are always `vif`.
    let nictype = match other("type").map(String::as_str) {
        None | Some("ioemu") if hvm => "vif_ioemu",
        _ => "vif",
    };
    back.push(kv("type", String::from(nictype)));
    back.push(kv("hotplug-status", String::new()));
    front.push(kv("handle", format!("{devid}")));
    front.push(kv("mac", mac));
    front.push(kv("trusted", String::from("1")));
    DeviceAdd {
        kind: "vif",
        dom,
        backend_dom,
        devid,
        back,
        front,
        ro_front: alloc::vec![kv("mtu", String::from("1500"))],
    }
}

/// `libxl__device_disk_dev_number`: the Linux device number xl uses as the devid
/// (`xvdX` = 202 << 8 | index << 4, `hdX` = 3 or 22, `sdX` = 8 << 8 | index << 4).
pub fn disk_devid(vdev: &str) -> Option<u32> {
    let (prefix, rest) = ["xvd", "hd", "sd"]
        .iter()
        .find_map(|p| vdev.strip_prefix(p).map(|rest| (*p, rest)))?;
    let [letter] = rest.as_bytes() else {
        return None;
    };
    let index = u32::from(letter.checked_sub(b'a')?);
    match prefix {
        "xvd" if index < 16 => Some((202 << 8) | (index << 4)),
        "xvd" if index < 26 => Some((1 << 28) | (index << 8)),
        "hd" if index < 4 => Some((if index < 2 { 3 } else { 22 } << 8) | ((index % 2) << 6)),
        "sd" if index < 16 => Some((8 << 8) | (index << 4)),
        _ => None,
    }
}

/// A `disk=` entry (`device_disk_add`, phy backend with the `block` script) whose
/// backend runs in `backend_dom` (dom0, or the driver domain `backend=` names).
pub fn vbd(
    dom: u32,
    guest_type: GuestType,
    disk: &DiskCfg,
    devid: u32,
    backend_dom: u32,
) -> DeviceAdd {
    let rw = disk.access == DiskAccess::ReadWrite;
    let device_type = if disk.cdrom { "cdrom" } else { "disk" };
    let mut back = alloc::vec![
        kv("params", disk.target.clone()),
        kv("script", String::from("/etc/xen/scripts/block")),
        kv("frontend-id", format!("{dom}")),
        kv("online", String::from("1")),
        kv(
            "removable",
            String::from(if disk.cdrom { "1" } else { "0" })
        ),
        kv("bootable", String::from("1")),
        kv("state", String::from("1")),
        kv("dev", disk.vdev.clone()),
        kv("type", String::from("phy")),
        kv("mode", String::from(if rw { "w" } else { "r" })),
        kv("device-type", String::from(device_type)),
    ];
    back.push(kv(
        "discard-enable",
        String::from(if rw { "1" } else { "0" }),
    ));
    back.push(kv("specification", String::from("xen")));
    let (_, mut front) = common(dom, backend_dom);
    front.push(kv("virtual-device", format!("{devid}")));
    front.push(kv("device-type", String::from(device_type)));
    front.push(kv("trusted", String::from("1")));
    if guest_type == GuestType::Pv {
        front.push(kv("protocol", String::from("x86_64-abi")));
    }
    DeviceAdd {
        kind: "vbd",
        dom,
        backend_dom,
        devid,
        back,
        front,
        ro_front: Vec::new(),
    }
}

/// The removals of `libxl__destroy_domid` once the devices are gone: the home, the libxl
/// directory and the `/vm` directory.
pub fn destroy(dom: u32, uuid: &[u8; 16]) -> Reqs {
    let mut r = Reqs::default();
    r.rm(&dom_path(dom)).rm(&libxl_path(dom)).rm(&vm_path(uuid));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xvda_is_51712() {
        assert_eq!(disk_devid("xvda"), Some(51712));
        assert_eq!(disk_devid("xvdb"), Some(51728));
        assert_eq!(disk_devid("hda"), Some(768));
        assert_eq!(disk_devid("bogus"), None);
    }

    fn nictype(hvm: bool, nic_type: Option<&str>) -> Option<String> {
        let mut vif = VifCfg::default();
        if let Some(t) = nic_type {
            vif.other.push((String::from("type"), String::from(t)));
        }
        let add = super::vif(1, hvm, &vif, &[0; 16], 0, 0);
        add.back
            .into_iter()
            .find(|(k, _)| k == "type")
            .map(|(_, v)| v)
    }

    #[test]
    fn hvm_nic_is_vif_ioemu_unless_type_vif() {
        assert_eq!(nictype(true, None).as_deref(), Some("vif_ioemu"));
        assert_eq!(nictype(true, Some("ioemu")).as_deref(), Some("vif_ioemu"));
        assert_eq!(nictype(true, Some("vif")).as_deref(), Some("vif"));
    }

    #[test]
    fn pv_nic_is_always_vif() {
        assert_eq!(nictype(false, None).as_deref(), Some("vif"));
        assert_eq!(nictype(false, Some("vif")).as_deref(), Some("vif"));
    }

    #[test]
    fn uuid_prints_in_libxl_groups() {
        let uuid = [0xab; 16];
        assert_eq!(uuid_string(&uuid), "abababab-abab-abab-abab-abababababab");
    }

    #[test]
    fn guest_writable_control_nodes_are_guest_owned() {
        let config = DomainConfig::with_defaults(String::from("g"));
        let reqs = domain_make(3, &config, &[0; 16]);
        let want = XsReq::SetPerms {
            path: String::from("/local/domain/3/control/shutdown"),
            perms: alloc::vec![Perm::new(3, 0)],
        };
        assert!(reqs.0.contains(&want));
    }
}
