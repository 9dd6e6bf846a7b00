//! `[[domain]] rtds = { period, budget, extratime }`: once `xl create -p` has built the
//! domain, the parameters go to every vCPU as `xl sched-rtds -d D -v all -p P -b B -e E`
//! would (`libxl_vcpu_sched_params_set_all`), then `xl unpause D` runs unless the domain was
//! asked for paused (`specs/scenario.md` §6). Each step is its own xl command record and
//! its own recorded toolstack operation.

use hypervisor_model::ids::DomId;
use hypervisor_model::sched::params::VcpuParams;
use hypervisor_model::toolstack::ops::ToolstackOp;

use super::World;
use crate::report::xl::XlOutput;

impl World<'_> {
    /// Applies `params` to every vCPU of the just-built `dom`, then unpauses it if asked.
    pub(crate) fn domain_rtds(&mut self, host: u16, dom: DomId, params: VcpuParams, unpause: bool) {
        let name = self.hosts[usize::from(host)]
            .hv
            .domain(dom)
            .map(|d| d.name.clone())
            .unwrap_or_default();
        let text = format!(
            "sched-rtds -d {name} -v all -p {} -b {} -e {}",
            params.period_us,
            params.budget_us,
            u8::from(params.extratime)
        );
        let record = self.new_command(host, text, Some(0));
        let op = ToolstackOp::SchedVcpuParams {
            dom,
            vcpus: None,
            params: vec![params],
        };
        let set = self.call(host, op);
        let failed = set.is_err();
        let stderr = if failed {
            "libxl_vcpu_sched_params_set_all failed.\n"
        } else {
            ""
        };
        let out = if failed {
            XlOutput::fail(stderr.to_string())
        } else {
            XlOutput::ok(String::new())
        };
        self.output(record, out);
        if unpause {
            let record = self.new_command(host, format!("unpause {name}"), Some(0));
            let result = self.call(host, ToolstackOp::Unpause { dom });
            let out = match result {
                Ok(()) => XlOutput::ok(String::new()),
                Err(_) => XlOutput::fail(String::new()),
            };
            self.output(record, out);
        }
    }
}
