//! xl's and libxl's messages when a toolstack job ends, with the exit status real xl gives.
//!
//! Follows tools/xl/xl_vmcontrol.c (what xl prints and returns) and libxl's log format
//! (`libxl__logv` in tools/libs/light/libxl_internal.c), with the source locations of Xen
//! 4.17.5's libxl.

use hypervisor_model::ids::DomId;
use hypervisor_model::toolstack::ops::ToolstackError;

use super::commands::{JobKind, JobOrigin};
use crate::report::xl::XlOutput;

/// `ERROR_DOMAIN_NOTFOUND` (tools/libs/light/libxl_types.idl).
const ERROR_DOMAIN_NOTFOUND: i32 = -21;
/// `ERROR_FAIL`.
const ERROR_FAIL: i32 = -3;
/// `ERROR_INVAL`.
const ERROR_INVAL: i32 = -6;

/// xl's messages and exit status when a job ends.
pub(crate) fn done_output(origin: &JobOrigin, result: Result<(), ToolstackError>) -> XlOutput {
    let dom = origin.dom.map_or(0, DomId::raw);
    let ok = XlOutput {
        stdout: String::new(),
        stderr: String::new(),
        rc: 0,
    };
    let Err(error) = result else { return ok };
    let stderr = match (origin.kind, error) {
        // xl ignores libxl's result for pause and unpause: only libxl's log line shows.
        (JobKind::Pause, e) => {
            let msg = format!("Pausing domain: {}", errno_text(e));
            libxl_error("libxl_domain.c:587:libxl_domain_pause", Some(dom), &msg)
        }
        (JobKind::Unpause, e) => {
            let msg = format!("Unpausing domain: {}", errno_text(e));
            libxl_error("libxl_domain.c:688:domain_unpause_done", Some(dom), &msg)
        }
        (JobKind::Destroy, ToolstackError::NoSuchDomain) => [
            libxl_error(
                "libxl_domain.c:1183:libxl__destroy_domid",
                Some(dom),
                "Non-existant domain",
            ),
            libxl_error(
                "libxl_domain.c:1137:domain_destroy_callback",
                Some(dom),
                "Unable to destroy guest",
            ),
            libxl_error(
                "libxl_domain.c:1064:domain_destroy_cb",
                Some(dom),
                "Destruction of domain failed",
            ),
            format!("destroy failed (rc={ERROR_DOMAIN_NOTFOUND})\n"),
        ]
        .concat(),
        (JobKind::Destroy, _) => format!("destroy failed (rc={ERROR_FAIL})\n"),
        (JobKind::Shutdown, ToolstackError::NoSuchDomain) => {
            format!("shutdown failed (rc={ERROR_DOMAIN_NOTFOUND})\n")
        }
        (JobKind::Shutdown, _) => format!("shutdown failed (rc={ERROR_FAIL})\n"),
        // The client's own output came with `ToolstackReply::XsOutput`.
        (JobKind::Xenstore, _) => String::new(),
        (JobKind::Create, e) => {
            let name = origin
                .workloads
                .as_ref()
                .map_or("", |(name, _)| name.as_str());
            create_failure(dom, origin.pool.as_deref().unwrap_or(""), name, e)
        }
    };
    let rc = match origin.kind {
        JobKind::Pause | JobKind::Unpause => 0,
        _ => 1,
    };
    XlOutput {
        stdout: String::new(),
        stderr,
        rc,
    }
}

fn errno_text(error: ToolstackError) -> &'static str {
    match error {
        ToolstackError::NoSuchDomain => "No such process",
        ToolstackError::PauseOverflow => "Value too large for defined data type",
        _ => "Invalid argument",
    }
}

/// One libxl log line: `libxl: error: <file>:<line>:<function>: [Domain <id>:]<message>`
/// (`libxl__logv` in tools/libs/light/libxl_internal.c).
fn libxl_error(location: &str, dom: Option<u16>, message: &str) -> String {
    let domain = dom.map_or_else(String::new, |d| format!("Domain {d}:"));
    format!("libxl: error: {location}: {domain}{message}\n")
}

fn create_failure(dom: u16, pool: &str, name: &str, error: ToolstackError) -> String {
    match error {
        ToolstackError::NoSuchPool => libxl_error(
            "libxl_create.c:1132:libxl__domain_config_setdefault",
            None,
            &format!("Illegal pool specified: {pool}"),
        ),
        ToolstackError::NameInUse => [
            libxl_error(
                "libxl_domain.c:81:libxl__domain_rename",
                Some(dom),
                &format!("Domain with name \"{name}\" already exists."),
            ),
            libxl_error(
                "libxl_create.c:1294:initiate_domain_create",
                Some(dom),
                &format!("cannot make domain: {ERROR_INVAL}"),
            ),
        ]
        .concat(),
        ToolstackError::NoSuchBackend { disk_index } => libxl_error(
            "libxl_create.c:1316:initiate_domain_create",
            Some(dom),
            &format!("Unable to set disk defaults for disk {disk_index}"),
        ),
        ToolstackError::NoSuchVifBackend => libxl_error(
            "libxl_create.c:1919:domcreate_attach_devices",
            Some(dom),
            "unable to add vif devices",
        ),
        ToolstackError::BackendNotReady {
            vif,
            backend,
            devid,
        } => {
            let kind = if vif { "vif" } else { "vbd" };
            let path = format!(
                "/local/domain/{}/backend/{kind}/{dom}/{devid}",
                backend.raw()
            );
            let (location, what) = if vif {
                ("libxl_create.c:1919:domcreate_attach_devices", "vif")
            } else {
                ("libxl_create.c:1670:domcreate_launch_dm", "disk")
            };
            [
                libxl_error(
                    "libxl_device.c:1181:device_backend_callback",
                    Some(dom),
                    &format!("unable to add device with path {path}"),
                ),
                libxl_error(
                    location,
                    Some(dom),
                    &format!("unable to add {what} devices"),
                ),
            ]
            .concat()
        }
        ToolstackError::NoFreeDomid => libxl_error(
            "libxl_create.c:709:libxl__domain_make",
            None,
            "domain creation fail: Cannot allocate memory",
        ),
        // Out of memory, and anything else that fails the build: libxl's generic report.
        _ => libxl_error(
            "libxl_create.c:1638:domcreate_rebuild_done",
            Some(dom),
            &format!("cannot (re-)build domain: {ERROR_FAIL}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypervisor_model::ids::DomId;

    #[test]
    fn vif_backend_in_a_plain_domain_reports_libxls_two_lines() {
        // Guest d7's vif 0 names d3, which runs no netback: libxl's wait times out.
        let backend = DomId::new(3).expect("a domid");
        let error = ToolstackError::BackendNotReady {
            vif: true,
            backend,
            devid: 0,
        };
        let text = create_failure(7, "", "web", error);
        let want = "libxl: error: libxl_device.c:1181:device_backend_callback: Domain 7:\
                    unable to add device with path /local/domain/3/backend/vif/7/0\n\
                    libxl: error: libxl_create.c:1919:domcreate_attach_devices: Domain 7:\
                    unable to add vif devices\n";
        assert_eq!(text, want);
    }

    #[test]
    fn vif_backend_naming_no_domain_reports_the_attach_failure() {
        let text = create_failure(7, "", "web", ToolstackError::NoSuchVifBackend);
        let want = "libxl: error: libxl_create.c:1919:domcreate_attach_devices: Domain 7:\
                    unable to add vif devices\n";
        assert_eq!(text, want);
    }
}
