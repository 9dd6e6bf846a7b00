//! `xl console DOM`: what the guest wrote to its PV console, as xenconsoled buffered it.
//!
//! Follows tools/xl/xl_console.c (`main_console`) and tools/libs/light/libxl_console.c
//! (`libxl_primary_console_exec`, `libxl__primary_console_find`) with
//! tools/libs/light/libxl_dom.c (`libxl__domain_type`) for an unknown domid.
//!
//! xensim differs: real `xl console` execs xenconsole and attaches the terminal to the
//! guest's pty until `^]`; `xensim xl FILE --at T -- console D` prints everything
//! xenconsoled buffered up to T and returns 0. The emulated serial port (an HVM guest's
//! primary console), vuart, consoles other than 0 and dom0's console (Xen's own, see
//! `xl dmesg`) are not modelled and fail with a message naming that.

use hypervisor_model::ids::DomId;
use hypervisor_model::toolstack::config::GuestType;

use super::{domain_by_id, find_domain, XlHost, XlOutput};
use crate::xl::console_command::{ConsoleArgs, ConsoleType};

/// `libxl__domain_type`'s error line for a domid with no domain (4.17.5's line number).
fn no_domain_type(domid: u32) -> String {
    format!(
        "libxl: error: libxl_dom.c:37:libxl__domain_type: unable to get domain type for \
         domid={domid}\nUnable to attach console\n"
    )
}

/// `xl console [-t TYPE] [-n NUM] DOM`.
pub fn xl_console(host: &XlHost<'_>, args: &ConsoleArgs) -> XlOutput {
    let domid = match find_domain(host.hv, &args.domain) {
        Ok(domid) => domid,
        Err(out) => return out,
    };
    let Some(domain) = domain_by_id(host.hv, domid) else {
        return XlOutput::fail(no_domain_type(domid));
    };
    if domain.id == DomId::DOM0 {
        return XlOutput::fail(
            "xensim: dom0's console is Xen's own console, not modelled here (see xl dmesg)\n"
                .to_string(),
        );
    }
    let hvm = domain.guest_type == GuestType::Hvm;
    let kind = args.kind.unwrap_or(if hvm {
        ConsoleType::Serial
    } else {
        ConsoleType::Pv
    });
    match kind {
        ConsoleType::Pv if args.num == 0 => {}
        ConsoleType::Pv => {
            return XlOutput::fail(format!(
                "xensim: only PV console 0 is modelled (asked for {})\n",
                args.num
            ))
        }
        ConsoleType::Serial => {
            return XlOutput::fail(
                "xensim: the emulated serial console is not modelled; `xl console -t pv` \
                 shows the PV console\n"
                    .to_string(),
            )
        }
        ConsoleType::Vuart => {
            return XlOutput::fail("xensim: vuart consoles (Arm) are not modelled\n".to_string())
        }
    }
    match host.hv.console_output(domain.id) {
        Some(bytes) => XlOutput::ok(String::from_utf8_lossy(bytes).into_owned()),
        None => XlOutput::fail("Unable to attach console\n".to_string()),
    }
}
