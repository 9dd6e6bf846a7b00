//! xl.cfg device specs: `vif=` entries (`memory-iommu-migration.md` §12.3,
//! xl-network-configuration(5)) and `disk=` entries (§12.4, xl-disk-configuration(5)).
//!
//! Follows tools/xl/xl_parse.c (`parse_nic_config`) and tools/libs/util/libxlu_disk_l.l
//! (positional target/format/vdev/access, `key=value`, flags, `target=` taking the rest).
//!
//! # Invariants
//! - A returned [`DiskCfg`] always has a non-empty `vdev`.
//! - Offsets in errors are byte offsets into the spec string.
//!
//! Left out on purpose: `colo-*` disk keys, vif `accel`/`trusted`; they are errors or
//! warnings like any other unknown key.

use hypervisor_model::toolstack::config::{DiskAccess, DiskCfg, VifCfg};

/// A problem in one spec string: byte offset into the spec, message, and whether it is
/// only a warning (an unknown vif key, which xl ignores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// Byte offset into the spec.
    pub offset_bytes: usize,
    /// The message.
    pub message: String,
    /// True if xl would go on.
    pub warning: bool,
}

fn issue(offset_bytes: usize, message: String) -> SpecIssue {
    SpecIssue {
        offset_bytes,
        message,
        warning: false,
    }
}

/// Comma-separated parts with their byte offsets, surrounding blanks trimmed.
fn parts(spec: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in spec.split(',') {
        let lead = raw.len() - raw.trim_start().len();
        out.push((offset + lead, raw.trim()));
        offset += raw.len() + 1;
    }
    out
}

fn is_mac(text: &str) -> bool {
    let groups: Vec<&str> = text.split(':').collect();
    groups.len() == 6
        && groups
            .iter()
            .all(|g| g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `RATE/s[@INTERVAL]` with `GB MB KB B` or `Gb Mb Kb b`, INTERVAL in `s ms us`.
fn is_vif_rate(text: &str) -> bool {
    let (rate, interval) = match text.split_once('@') {
        Some((rate, interval)) => (rate, Some(interval)),
        None => (text, None),
    };
    let Some(amount) = rate.strip_suffix("/s") else {
        return false;
    };
    let digits_end = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let unit_ok = matches!(
        &amount[digits_end..],
        "GB" | "MB" | "KB" | "B" | "Gb" | "Mb" | "Kb" | "b"
    );
    let interval_ok = interval.is_none_or(|i| {
        let end = i.find(|c: char| !c.is_ascii_digit()).unwrap_or(i.len());
        end > 0 && matches!(&i[end..], "s" | "ms" | "us")
    });
    digits_end > 0 && unit_ok && interval_ok
}

const VIF_KEYS: &[&str] = &[
    "mac",
    "bridge",
    "backend",
    "type",
    "model",
    "vifname",
    "script",
    "ip",
    "gatewaydev",
    "devid",
    "mtu",
    "vlan",
    "rate",
];

/// Parses one vif spec; issues that are only warnings come back with the value.
pub fn parse_vif(spec: &str) -> Result<(VifCfg, Vec<SpecIssue>), SpecIssue> {
    let mut vif = VifCfg::default();
    let mut warnings = Vec::new();
    for (offset, part) in parts(spec) {
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(issue(
                offset,
                format!("vif spec: expected key=value, found {part:?}"),
            ));
        };
        match key {
            "mac" if !is_mac(value) => {
                return Err(issue(
                    offset,
                    format!("vif spec: invalid mac address {value:?} (xx:xx:xx:xx:xx:xx)"),
                ))
            }
            "mac" => vif.mac = Some(value.to_string()),
            "bridge" => vif.bridge = Some(value.to_string()),
            "backend" => vif.backend = Some(value.to_string()),
            "mtu" | "devid" if value.parse::<u32>().is_err() => {
                return Err(issue(
                    offset,
                    format!("vif spec: {key} must be an integer, found {value:?}"),
                ))
            }
            "rate" if !is_vif_rate(value) => {
                return Err(issue(
                    offset,
                    format!("vif spec: invalid rate {value:?} (RATE/s[@INTERVAL], e.g. 100Mb/s)"),
                ))
            }
            k if VIF_KEYS.contains(&k) => vif.other.push((k.to_string(), value.to_string())),
            _ => {
                warnings.push(SpecIssue {
                    offset_bytes: offset,
                    message: format!("vif spec: unknown key {key:?} is ignored"),
                    warning: true,
                });
            }
        }
    }
    Ok((vif, warnings))
}

const DISK_FLAGS: &[&str] = &[
    "cdrom",
    "discard",
    "no-discard",
    "direct-io-safe",
    "trusted",
    "untrusted",
];

fn disk_format(value: &str) -> bool {
    matches!(value, "raw" | "qcow" | "qcow2" | "vhd" | "qed" | "empty")
}

fn disk_access(value: &str) -> Option<DiskAccess> {
    match value {
        "rw" | "w" => Some(DiskAccess::ReadWrite),
        "ro" | "r" => Some(DiskAccess::ReadOnly),
        _ => None,
    }
}

#[derive(Default)]
struct DiskDraft {
    target: Option<String>,
    format: Option<String>,
    vdev: Option<String>,
    access: Option<DiskAccess>,
    cdrom: bool,
    backend: Option<String>,
    positional_count: usize,
    /// The target had a deprecated `phy:`/`file:`/`tap:aio:`... prefix: then there is no
    /// format positional, and the next ones are vdev and access (libxlu_disk_l.l).
    had_depr_prefix: bool,
}

/// Deprecated target prefixes xl still accepts, longest first, with the format they imply
/// (`None`: raw).
const DEPRECATED_PREFIXES: &[(&str, Option<&str>)] = &[
    ("tap:qcow2:", Some("qcow2")),
    ("tap:qcow:", Some("qcow")),
    ("tap:vhd:", Some("vhd")),
    ("tap:aio:", None),
    ("tap2:aio:", None),
    ("qcow2:", Some("qcow2")),
    ("qcow:", Some("qcow")),
    ("vhd:", Some("vhd")),
    ("raw:", None),
    ("aio:", None),
    ("phy:", None),
    ("file:", None),
];

impl DiskDraft {
    fn keyed(&mut self, offset: usize, key: &str, value: &str) -> Result<(), SpecIssue> {
        match key {
            "format" if disk_format(value) => self.format = Some(value.to_string()),
            "vdev" => self.vdev = Some(value.to_string()),
            "access" => {
                self.access = Some(disk_access(value).ok_or_else(|| {
                    issue(offset, format!("disk spec: invalid access {value:?}"))
                })?);
            }
            "devtype" if value == "cdrom" => self.cdrom = true,
            "devtype" if value == "disk" => {}
            "backend" => self.backend = Some(value.to_string()),
            "backendtype" if matches!(value, "phy" | "qdisk" | "tap" | "standalone") => {}
            "script" => {}
            _ => {
                return Err(issue(
                    offset,
                    format!("disk spec: invalid or unknown parameter {key}={value:?}"),
                ))
            }
        }
        Ok(())
    }

    fn positional(&mut self, offset: usize, value: &str) -> Result<(), SpecIssue> {
        let index = self.positional_count;
        self.positional_count += 1;
        if value.is_empty() {
            return Ok(());
        }
        // Without a format positional, the later ones shift down by one.
        let index = if self.had_depr_prefix && index > 0 {
            index + 1
        } else {
            index
        };
        match index {
            0 => {
                let prefixed = DEPRECATED_PREFIXES
                    .iter()
                    .find_map(|(p, f)| value.strip_prefix(p).map(|rest| (rest, f)));
                match prefixed {
                    Some((rest, format)) => {
                        self.had_depr_prefix = true;
                        self.target = Some(rest.to_string());
                        if let Some(format) = format {
                            self.format = Some((*format).to_string());
                        }
                    }
                    None => self.target = Some(value.to_string()),
                }
            }
            1 if disk_format(value) => self.format = Some(value.to_string()),
            2 => match value.rsplit_once(':') {
                // `hdc:cdrom`: the device type rides on the vdev.
                Some((vdev, "cdrom")) => {
                    self.cdrom = true;
                    self.vdev = Some(vdev.to_string());
                }
                _ => self.vdev = Some(value.to_string()),
            },
            3 => self.keyed(offset, "access", value)?,
            1 => {
                return Err(issue(
                    offset,
                    format!("disk spec: invalid format {value:?}"),
                ))
            }
            _ => {
                return Err(issue(
                    offset,
                    format!("disk spec: too many positional parameters at {value:?}"),
                ))
            }
        }
        Ok(())
    }
}

/// Parses one disk spec.
pub fn parse_disk(spec: &str) -> Result<DiskCfg, SpecIssue> {
    let mut draft = DiskDraft::default();
    for (offset, part) in parts(spec) {
        if let Some(rest) = part.strip_prefix("target=") {
            // `target=` consumes the rest of the string, commas included.
            let start = offset + "target=".len();
            draft.target = Some(spec[start..].trim_end().to_string());
            let _ = rest;
            break;
        }
        if DISK_FLAGS.contains(&part) {
            draft.cdrom |= part == "cdrom";
        } else if let Some((key, value)) = part.split_once('=') {
            draft.keyed(offset, key.trim(), value.trim())?;
        } else {
            draft.positional(offset, part)?;
        }
    }
    let Some(vdev) = draft.vdev else {
        return Err(issue(0, "disk spec: no vdev specified".to_string()));
    };
    let default_access = if draft.cdrom {
        DiskAccess::ReadOnly
    } else {
        DiskAccess::ReadWrite
    };
    Ok(DiskCfg {
        target: draft.target.unwrap_or_default(),
        format: draft.format.unwrap_or_else(|| "raw".to_string()),
        vdev,
        access: draft.access.unwrap_or(default_access),
        cdrom: draft.cdrom,
        backend: draft.backend,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_disk, parse_vif};
    use hypervisor_model::toolstack::config::DiskAccess;

    #[test]
    fn disk_deprecated_prefix_drops_the_format_positional() {
        let d = parse_disk("phy:/dev/vg0/web,xvda,w").expect("legacy form");
        assert_eq!(d.target, "/dev/vg0/web");
        assert_eq!(d.vdev, "xvda");
        assert_eq!(d.format, "raw");
        let q = parse_disk("tap:qcow2:/var/img.qcow2,hdc:cdrom,r").expect("legacy cdrom");
        assert_eq!(
            (q.format.as_str(), q.vdev.as_str(), q.cdrom),
            ("qcow2", "hdc", true)
        );
    }

    #[test]
    fn disk_positional_and_keyed_forms_are_equal() {
        let a = parse_disk("/dev/vg/guest,,hda").expect("positional");
        let b = parse_disk("/dev/vg/guest,raw,hda,rw").expect("full positional");
        let c = parse_disk("format=raw, vdev=hda, access=rw, target=/dev/vg/guest").expect("kv");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.access, DiskAccess::ReadWrite);
    }

    #[test]
    fn disk_target_takes_rest_with_commas() {
        let disk = parse_disk("vdev=xvdb, target=/srv/a,b.iso").expect("valid");
        assert_eq!(disk.target, "/srv/a,b.iso");
    }

    #[test]
    fn disk_without_vdev_is_error() {
        let error = parse_disk("/dev/vg/guest").expect_err("no vdev");
        assert_eq!(error.message, "disk spec: no vdev specified");
    }

    #[test]
    fn disk_cdrom_defaults_read_only() {
        let disk = parse_disk("/iso/x.iso,raw,hdc,cdrom").expect("valid");
        assert!(disk.cdrom);
        assert_eq!(disk.access, DiskAccess::ReadOnly);
    }

    #[test]
    fn vif_fields_and_unknown_key_warning() {
        let (vif, warnings) =
            parse_vif("mac=00:16:3e:00:00:07,bridge=xenbr0,rate=100Mb/s,colour=red")
                .expect("valid vif");
        assert_eq!(vif.mac.as_deref(), Some("00:16:3e:00:00:07"));
        assert_eq!(vif.bridge.as_deref(), Some("xenbr0"));
        assert_eq!(vif.other, [("rate".to_string(), "100Mb/s".to_string())]);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn vif_bad_mac_is_error() {
        let error = parse_vif("bridge=xenbr0, mac=00:16:3e").expect_err("short mac");
        assert_eq!(error.offset_bytes, 15);
    }
}
