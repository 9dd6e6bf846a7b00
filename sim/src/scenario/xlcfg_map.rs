//! xl.cfg semantics (`memory-iommu-migration.md` §12.2): settings → [`DomainConfig`].
//!
//! Follows tools/xl/xl_parse.c (`parse_config_data`): `memory` sets target and max,
//! `maxmem` then overrides max; both absent gives libxl's 32 MiB; `maxvcpus` defaults to
//! `vcpus`; `builder` is the deprecated alias of `type`; `cpus` may be a list with one
//! cpu list per vCPU. Unknown keys are warnings (xl ignores them), errors with `--strict`.
//!
//! # Invariants
//! - A returned config passes [`DomainConfig::validate`].
//! - Cpu masks are resolved against the host the domain is created on.
//!
//! `xen_platform_pci` and `device_model_stubdomain_override` are booleans
//! (`xlu_cfg_get_defbool`: any non-zero number is true) stored in the device model.
//!
//! The guest kernel's command line is built as `parse_cmdline` does: `cmdline`, else
//! `root=<root> <extra>`, `root=<root>` or `extra` (the guest kernel reads its own
//! parameters there, e.g. `xen_netfront.max_queues`).
//!
//! Left out on purpose: `ramdisk`, `shadow_memory` and `videoram` are type-checked but not
//! stored (`DomainConfig` has no field for them yet); xl's warning when `cmdline` overrides
//! `root`/`extra` is not printed.

use hypervisor_model::limits::MAX_VIRT_CPUS;
use hypervisor_model::toolstack::config::{AffinityCfg, DomainConfig, GuestType, ShutdownAction};

use super::diag::{Diags, TextOrigin};
use super::unsupported::{self, Feature};
use super::xlcfg::{parse_syntax, XlSetting, XlValue, XlValueKind};
use super::xlcfg_dev::{parse_disk, parse_vif, SpecIssue};
use crate::xl::cpulist::{CpuList, HostCpus};

/// One xl.cfg text to load.
#[derive(Debug, Clone)]
pub struct XlCfgSource<'a> {
    /// The text.
    pub text: &'a str,
    /// Where it is, for locations.
    pub origin: TextOrigin,
    /// Put before every message (`[[domain]] vm1 xl: ` for inline configs, else empty).
    pub prefix: String,
    /// The scenario's domain name: used when `name` is absent, must match when present.
    pub expected_name: Option<String>,
}

/// Keys accepted and type-checked but not stored.
const STRING_KEYS_DROPPED: &[&str] = &["ramdisk"];
const INT_KEYS_DROPPED: &[&str] = &["shadow_memory", "videoram"];

struct Mapper<'a> {
    d: &'a Diags,
    src: &'a XlCfgSource<'a>,
    host: &'a HostCpus,
}

impl Mapper<'_> {
    fn error(&self, offset: usize, key: &str, message: &str) {
        self.d.error(
            self.src.origin.loc(offset),
            format!("{}{key}: {message}", self.src.prefix),
        );
    }

    fn string(&self, s: &XlSetting) -> Option<String> {
        match &s.value.kind {
            XlValueKind::Scalar { text, .. } => Some(text.clone()),
            XlValueKind::List(_) => {
                self.error(
                    s.value.offset_bytes,
                    &s.name,
                    "expected a string, found a list",
                );
                None
            }
        }
    }

    /// `xlu_cfg_get_long`: decimal or `0x` hex, from a number or a string.
    fn long(&self, s: &XlSetting) -> Option<u64> {
        let text = self.string(s)?;
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse::<u64>().ok(),
        };
        if parsed.is_none() {
            let message = format!("expected a non-negative integer, found {text:?}");
            self.error(s.value.offset_bytes, &s.name, &message);
        }
        parsed
    }

    fn u32_in(&self, s: &XlSetting, lo: u32, hi: u32) -> Option<u32> {
        let value = self.long(s)?;
        match u32::try_from(value) {
            Ok(v) if (lo..=hi).contains(&v) => Some(v),
            _ => {
                let message = format!("expected an integer {lo}..={hi}, found {value}");
                self.error(s.value.offset_bytes, &s.name, &message);
                None
            }
        }
    }

    fn mib_as_kib(&self, s: &XlSetting) -> Option<u64> {
        let mib = self.long(s)?;
        let kib = mib.checked_mul(1024);
        if kib.is_none() {
            self.error(s.value.offset_bytes, &s.name, "value too large");
        }
        kib
    }

    fn cpulist(&self, key: &str, value: &XlValue) -> Option<hypervisor_model::cpumask::CpuMask> {
        let XlValueKind::Scalar { text, .. } = &value.kind else {
            self.error(
                value.offset_bytes,
                key,
                "expected a cpu list string, found a list",
            );
            return None;
        };
        // Inside quotes the text starts one byte after the value's offset.
        let base = value.offset_bytes
            + usize::from(matches!(
                value.kind,
                XlValueKind::Scalar { quoted: true, .. }
            ));
        let result = CpuList::parse(text).and_then(|list| list.resolve(self.host));
        match result {
            Ok(mask) if mask.is_empty() => {
                self.error(value.offset_bytes, key, "the cpu list names no pCPU");
                None
            }
            Ok(mask) => Some(mask),
            Err(e) => {
                self.error(base + e.offset_bytes, key, &e.message);
                None
            }
        }
    }

    fn affinity(&self, s: &XlSetting) -> Option<AffinityCfg> {
        match &s.value.kind {
            XlValueKind::Scalar { .. } => self.cpulist(&s.name, &s.value).map(AffinityCfg::Same),
            XlValueKind::List(items) => {
                let masks: Vec<_> = items
                    .iter()
                    .filter_map(|item| self.cpulist(&s.name, item))
                    .collect();
                (masks.len() == items.len()).then_some(AffinityCfg::PerVcpu(masks))
            }
        }
    }

    fn action(&self, s: &XlSetting) -> Option<ShutdownAction> {
        let text = self.string(s)?;
        let action = match text.as_str() {
            "destroy" => ShutdownAction::Destroy,
            "restart" => ShutdownAction::Restart,
            "rename-restart" => ShutdownAction::RenameRestart,
            "preserve" => ShutdownAction::Preserve,
            "coredump-destroy" => ShutdownAction::CoredumpDestroy,
            "coredump-restart" => ShutdownAction::CoredumpRestart,
            "soft-reset" => ShutdownAction::SoftReset,
            _ => {
                let event = s.name.trim_start_matches("on_");
                let message = format!("Unknown on_{event} action \"{text}\" specified");
                self.error(s.value.offset_bytes, &s.name, &message);
                return None;
            }
        };
        Some(action)
    }

    fn spec_strings<'v>(&self, s: &'v XlSetting) -> Vec<(usize, &'v str, bool)> {
        let items: &[XlValue] = match &s.value.kind {
            XlValueKind::List(items) => items,
            XlValueKind::Scalar { .. } => std::slice::from_ref(&s.value),
        };
        items
            .iter()
            .filter_map(|item| match &item.kind {
                XlValueKind::Scalar { text, quoted } => {
                    Some((item.offset_bytes, text.as_str(), *quoted))
                }
                XlValueKind::List(_) => {
                    self.error(
                        item.offset_bytes,
                        &s.name,
                        "expected a spec string, found a list",
                    );
                    None
                }
            })
            .collect()
    }

    fn spec_issue(&self, key: &str, at: usize, quoted: bool, issue: &SpecIssue) {
        let offset = at + usize::from(quoted) + issue.offset_bytes;
        let message = format!("{}{key}: {}", self.src.prefix, issue.message);
        if issue.warning {
            self.d.lenient(self.src.origin.loc(offset), message);
        } else {
            self.d.error(self.src.origin.loc(offset), message);
        }
    }

    fn setting(&self, s: &XlSetting, cfg: &mut Draft) {
        let name = s.name.as_str();
        match name {
            "name" => cfg.name = self.string(s).map(|n| (n, s.value.offset_bytes)),
            "type" => cfg.guest_type = self.guest_type(s, false).or(cfg.guest_type),
            "builder" => cfg.builder = self.guest_type(s, true),
            "memory" => cfg.memory = self.mib_as_kib(s).map(|v| (v, s.value.offset_bytes)),
            "maxmem" => cfg.maxmem = self.mib_as_kib(s),
            "vcpus" => {
                cfg.vcpus = self
                    .u32_in(s, 0, u32::MAX)
                    .map(|v| (v, s.value.offset_bytes))
            }
            "maxvcpus" => {
                cfg.maxvcpus = self
                    .u32_in(s, 1, u32::MAX)
                    .map(|v| (v, s.value.offset_bytes));
            }
            "cpus" => cfg.out.cpus = self.affinity(s).unwrap_or(AffinityCfg::All),
            "cpus_soft" => cfg.out.cpus_soft = self.affinity(s).unwrap_or(AffinityCfg::All),
            "cpu_weight" => cfg.out.weight = self.u32_in(s, 1, 65_535).unwrap_or(256),
            // xl_parse.c: `xlu_cfg_get_defbool`, any non-zero integer is true.
            "driver_domain" => cfg.out.driver_domain = self.long(s).is_some_and(|v| v != 0),
            "cap" => cfg.out.cap = self.u32_in(s, 0, u32::MAX).unwrap_or(0),
            "pool" => cfg.out.pool = self.string(s),
            "on_poweroff" | "on_reboot" | "on_watchdog" | "on_crash" | "on_soft_reset" => {
                if let Some(action) = self.action(s) {
                    cfg.set_action(name, action);
                }
            }
            "kernel" => cfg.out.kernel = self.string(s),
            "cmdline" => cfg.cmdline = self.string(s),
            "root" => cfg.root = self.string(s),
            "extra" => cfg.extra = self.string(s),
            "xen_platform_pci" => {
                if let Some(value) = self.long(s) {
                    cfg.out.device_model.platform_pci = value != 0;
                }
            }
            "device_model_stubdomain_override" => {
                if let Some(value) = self.long(s) {
                    cfg.out.device_model.stubdomain = value != 0;
                }
            }
            "vif" => self.vifs(s, cfg),
            "disk" => self.disks(s, cfg),
            "pci" => {
                if !self.spec_strings(s).is_empty() {
                    let path = format!("{}pci", self.src.prefix);
                    let loc = self.src.origin.loc(s.value.offset_bytes);
                    unsupported::check(self.d, loc, &path, Feature::Pci);
                }
            }
            "tmem" => self.d.warning(
                self.src.origin.loc(s.name_offset_bytes),
                format!(
                    "{}tmem: legacy key, ignored (config.legacy_key): tmem was removed from \
                     Xen in 4.13",
                    self.src.prefix
                ),
            ),
            k if STRING_KEYS_DROPPED.contains(&k) => {
                self.string(s);
            }
            k if INT_KEYS_DROPPED.contains(&k) => {
                self.long(s);
            }
            _ => self.d.lenient(
                self.src.origin.loc(s.name_offset_bytes),
                format!(
                    "{}{name}: unknown key, ignored (xl ignores keys it does not know)",
                    self.src.prefix
                ),
            ),
        }
    }

    fn guest_type(&self, s: &XlSetting, builder: bool) -> Option<GuestType> {
        let text = self.string(s)?;
        match (text.as_str(), builder) {
            ("pv", false) | ("generic", true) => Some(GuestType::Pv),
            ("pvh", false) => Some(GuestType::Pvh),
            ("hvm", _) => Some(GuestType::Hvm),
            _ => {
                let expected = if builder {
                    "\"generic\" or \"hvm\""
                } else {
                    "\"pv\", \"pvh\" or \"hvm\""
                };
                let message = format!("Invalid domain type {text:?}: expected {expected}");
                self.error(s.value.offset_bytes, &s.name, &message);
                None
            }
        }
    }

    fn vifs(&self, s: &XlSetting, cfg: &mut Draft) {
        cfg.out.vifs.clear();
        for (at, spec, quoted) in self.spec_strings(s) {
            match parse_vif(spec) {
                Ok((vif, warnings)) => {
                    for w in &warnings {
                        self.spec_issue("vif", at, quoted, w);
                    }
                    let ioemu = vif.other.iter().any(|(k, v)| k == "type" && v == "ioemu");
                    if ioemu && cfg.ioemu_vif_at.is_none() {
                        cfg.ioemu_vif_at = Some(at);
                    }
                    cfg.out.vifs.push(vif);
                }
                Err(issue) => self.spec_issue("vif", at, quoted, &issue),
            }
        }
    }

    fn disks(&self, s: &XlSetting, cfg: &mut Draft) {
        cfg.out.disks.clear();
        for (at, spec, quoted) in self.spec_strings(s) {
            match parse_disk(spec) {
                Ok(disk) => cfg.out.disks.push(disk),
                Err(issue) => self.spec_issue("disk", at, quoted, &issue),
            }
        }
    }
}

/// Settings read so far, before defaults.
struct Draft {
    out: DomainConfig,
    name: Option<(String, usize)>,
    guest_type: Option<GuestType>,
    builder: Option<GuestType>,
    memory: Option<(u64, usize)>,
    maxmem: Option<u64>,
    vcpus: Option<(u32, usize)>,
    maxvcpus: Option<(u32, usize)>,
    cmdline: Option<String>,
    root: Option<String>,
    extra: Option<String>,
    /// Where a `vif=` entry asked for `type=ioemu` (an emulated NIC: HVM only).
    ioemu_vif_at: Option<usize>,
}

impl Draft {
    /// xl_parse.c `parse_cmdline`.
    fn kernel_cmdline(&self) -> Option<String> {
        match (&self.cmdline, &self.root, &self.extra) {
            (Some(cmdline), _, _) => Some(cmdline.clone()),
            (None, Some(root), Some(extra)) => Some(format!("root={root} {extra}")),
            (None, Some(root), None) => Some(format!("root={root}")),
            (None, None, extra) => extra.clone(),
        }
    }

    fn set_action(&mut self, key: &str, action: ShutdownAction) {
        match key {
            "on_poweroff" => self.out.on_poweroff = action,
            "on_reboot" => self.out.on_reboot = action,
            "on_watchdog" => self.out.on_watchdog = action,
            "on_crash" => self.out.on_crash = action,
            _ => self.out.on_soft_reset = action,
        }
    }
}

/// Parses and maps one xl.cfg; `None` if it had errors (they are in `d`).
pub fn load_xl_cfg(d: &Diags, src: &XlCfgSource<'_>, host: &HostCpus) -> Option<DomainConfig> {
    let errors_before = d.error_count();
    let settings = match parse_syntax(src.text) {
        Ok(settings) => settings,
        Err(e) => {
            let message = format!("{}{}", src.prefix, e.message);
            d.error(src.origin.loc(e.offset_bytes), message);
            return None;
        }
    };
    let mapper = Mapper { d, src, host };
    let mut draft = Draft {
        out: DomainConfig::with_defaults(String::new()),
        name: None,
        guest_type: None,
        builder: None,
        memory: None,
        maxmem: None,
        vcpus: None,
        maxvcpus: None,
        cmdline: None,
        root: None,
        extra: None,
        ioemu_vif_at: None,
    };
    for setting in &settings {
        mapper.setting(setting, &mut draft);
    }
    finish(&mapper, draft, errors_before)
}

fn finish(m: &Mapper<'_>, draft: Draft, errors_before: usize) -> Option<DomainConfig> {
    let cmdline = draft.kernel_cmdline();
    let mut out = draft.out;
    out.cmdline = cmdline;
    match (draft.name, &m.src.expected_name) {
        (Some((name, at)), Some(expected)) if name != *expected => {
            let message = format!("name {name:?} differs from the scenario's domain {expected:?}");
            m.error(at, "name", &message);
        }
        (Some((name, _)), _) if !name.is_empty() => out.name = name,
        (None, Some(expected)) => out.name.clone_from(expected),
        _ => m.error(0, "name", "Domain name must be specified."),
    }
    out.guest_type = draft.guest_type.or(draft.builder).unwrap_or(GuestType::Pv);
    if let (Some(at), false) = (draft.ioemu_vif_at, out.guest_type == GuestType::Hvm) {
        // libxl__device_nic_setdefault refuses it (ERROR_INVAL) before the domain is built.
        let message = "trying to create PV or PVH guest with an emulated interface";
        m.error(at, "vif", message);
    }
    let (memory_kib, memory_at) = match (draft.memory, draft.maxmem) {
        (Some((memory, at)), _) => (memory, Some(at)),
        (None, Some(maxmem)) => (maxmem, None),
        (None, None) => (32 * 1024, None),
    };
    out.memory_kib = memory_kib;
    out.max_memory_kib = draft.maxmem.unwrap_or(memory_kib);
    if let (Some(at), true) = (memory_at, out.memory_kib > out.max_memory_kib) {
        let message = format!(
            "memory ({} MiB) is larger than maxmem ({} MiB)",
            out.memory_kib / 1024,
            out.max_memory_kib / 1024
        );
        m.error(at, "memory", &message);
    }
    let (vcpus, vcpus_at) = draft.vcpus.map_or((1, None), |(v, at)| (v, Some(at)));
    out.vcpus = vcpus;
    out.max_vcpus = draft.maxvcpus.map_or(vcpus, |(v, _)| v);
    if vcpus == 0 {
        m.error(
            vcpus_at.unwrap_or(0),
            "vcpus",
            "a domain needs at least 1 vCPU",
        );
    } else if out.vcpus > out.max_vcpus {
        let message = format!(
            "vcpus ({}) is larger than maxvcpus ({})",
            out.vcpus, out.max_vcpus
        );
        m.error(vcpus_at.unwrap_or(0), "vcpus", &message);
    } else if out.max_vcpus > MAX_VIRT_CPUS {
        let at = draft.maxvcpus.or(draft.vcpus).map_or(0, |(_, at)| at);
        let message = format!("{} vCPUs is more than Xen's {MAX_VIRT_CPUS}", out.max_vcpus);
        m.error(at, "maxvcpus", &message);
    }
    if m.d.error_count() > errors_before {
        return None;
    }
    if let Err(e) = out.validate() {
        m.error(
            0,
            "name",
            &format!("libxl rejects this configuration: {e:?}"),
        );
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{load_xl_cfg, XlCfgSource};
    use crate::scenario::diag::{Diags, Severity, TextOrigin};
    use crate::xl::cpulist::HostCpus;
    use hypervisor_model::toolstack::config::{AffinityCfg, GuestType};

    fn load(
        text: &str,
    ) -> (
        Option<hypervisor_model::toolstack::config::DomainConfig>,
        Diags,
    ) {
        let d = Diags::new(false);
        let file_index = d.add_source("t.cfg", text);
        let src = XlCfgSource {
            text,
            origin: TextOrigin::file(file_index),
            prefix: String::new(),
            expected_name: None,
        };
        let host = HostCpus {
            node_of_cpu: vec![0, 0, 1, 1],
        };
        (load_xl_cfg(&d, &src, &host), d)
    }

    #[test]
    fn memory_only_sets_maxmem_too() {
        let (cfg, _) = load("name = \"a\"\nmemory = 512\n");
        let cfg = cfg.expect("valid");
        assert_eq!(cfg.memory_kib, 512 * 1024);
        assert_eq!(cfg.max_memory_kib, 512 * 1024);
        assert_eq!(cfg.guest_type, GuestType::Pv);
    }

    #[test]
    fn maxmem_only_sets_memory_too() {
        let (cfg, _) = load("name = \"a\"\nmaxmem = 256\nbuilder = \"hvm\"\n");
        let cfg = cfg.expect("valid");
        assert_eq!(cfg.memory_kib, 256 * 1024);
        assert_eq!(cfg.guest_type, GuestType::Hvm);
    }

    #[test]
    fn pv_guest_with_an_emulated_nic_is_refused() {
        let (cfg, d) = load("name = \"a\"\ntype = \"pv\"\nvif = ['type=ioemu']\n");
        assert!(cfg.is_none());
        assert_eq!(d.error_count(), 1);
    }

    #[test]
    fn hvm_guest_with_an_emulated_nic_loads() {
        let (cfg, _) = load("name = \"a\"\ntype = \"hvm\"\nvif = ['type=ioemu']\n");
        assert_eq!(cfg.map(|c| c.vifs.len()), Some(1));
    }

    #[test]
    fn platform_pci_and_stubdomain_keys_set_the_device_model() {
        let text = "name = \"a\"\ntype = \"hvm\"\nxen_platform_pci = 0\n\
                    device_model_stubdomain_override = 1\n";
        let cfg = load(text).0.expect("valid");
        assert!(!cfg.device_model.platform_pci);
        assert!(cfg.device_model.stubdomain);
        assert!(cfg.disks_emulated());
        assert!(cfg.wants_stubdomain());
    }

    #[test]
    fn vcpus_above_maxvcpus_is_located_error() {
        let (cfg, d) = load("name = \"a\"\nvcpus = 4\nmaxvcpus = 2\n");
        assert!(cfg.is_none());
        let errors = d.rendered(Severity::Error);
        assert!(errors[0].starts_with("error: t.cfg:2:9: vcpus: vcpus (4) is larger"));
    }

    #[test]
    fn cpus_list_form_is_per_vcpu() {
        let (cfg, _) = load("name = \"a\"\nvcpus = 2\ncpus = [\"0\", \"node:1\"]\n");
        let AffinityCfg::PerVcpu(masks) = cfg.expect("valid").cpus else {
            panic!("list form");
        };
        assert_eq!(masks[1].iter().map(|c| c.raw()).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn unknown_key_is_warning_not_error() {
        let (cfg, d) = load("name = \"a\"\nvnc = 1\n");
        assert!(cfg.is_some());
        assert!(d.rendered(Severity::Warning)[0].contains("vnc: unknown key"));
    }

    #[test]
    fn tmem_key_is_located_legacy_warning() {
        let (cfg, d) = load("name = \"a\"\ntmem = 1\n");
        assert!(cfg.is_some());
        let warnings = d.rendered(Severity::Warning);
        assert!(warnings[0].starts_with("warning: t.cfg:2:1: tmem: legacy key"));
        assert!(warnings[0].contains("config.legacy_key"));
        assert!(warnings[0].contains("removed from Xen in 4.13"));
    }

    #[test]
    fn bad_on_crash_action_is_error() {
        let (cfg, d) = load("name = \"a\"\non_crash = \"explode\"\n");
        assert!(cfg.is_none());
        assert!(d.rendered(Severity::Error)[0].contains("Unknown on_crash action"));
    }
}
