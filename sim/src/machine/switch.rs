//! What a pCPU pays to switch vCPUs and to be interrupted: the cost-table rows
//! `cpu.vcpu_switch_ns`, `cpu.vcpu_switch_same_dom_permille` and `cpu.pcpu_ipi_ns`
//! (`specs/cost-model.md` §1.2), and the rule that turns a switch into overhead time
//! (`specs/metrics.md` §1.12 (a)).
//!
//! A switch to vCPU `next` on a pCPU whose last guest vCPU was `last` costs nothing if
//! `next == last` (Xen's lazy context switch: the idle vCPU borrowed `last`'s state), the
//! same-domain fraction if both belong to one domain, and the full switch otherwise. The
//! guest starts its own work after that overhead.

use std::collections::BTreeMap;

use hypervisor_model::ids::VcpuRef;

use crate::run::host::{cost_ns, merged_costs};
use crate::scenario::model::CostValue;

/// `cpu.vcpu_switch_ns` default (S: Dall et al. 2016, 10,534 cycles at 2.1 GHz).
const VCPU_SWITCH_NS_DEFAULT: u64 = 5_016;
/// `cpu.vcpu_switch_same_dom_permille` default (E).
const SAME_DOM_PERMILLE_DEFAULT: u64 = 600;
/// `cpu.pcpu_ipi_ns` default (E).
const PCPU_IPI_NS_DEFAULT: u64 = 1_000;

/// The switch and IPI costs of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchCosts {
    /// Switch between vCPUs of different domains, ns.
    pub vcpu_switch_ns: u64,
    /// Fraction of `vcpu_switch_ns` for vCPUs of the same domain, ‰.
    pub same_dom_permille: u64,
    /// SCHEDULE_SOFTIRQ IPI delivery, ns.
    pub ipi_ns: u64,
}

impl SwitchCosts {
    /// The costs from the defaults, the scenario's `[costs]` and the host's own.
    pub fn from_tables(
        global: &BTreeMap<String, CostValue>,
        host: &BTreeMap<String, CostValue>,
    ) -> SwitchCosts {
        let merged = merged_costs(global, host);
        SwitchCosts {
            vcpu_switch_ns: cost_ns(&merged, "cpu.vcpu_switch_ns", VCPU_SWITCH_NS_DEFAULT),
            same_dom_permille: cost_ns(
                &merged,
                "cpu.vcpu_switch_same_dom_permille",
                SAME_DOM_PERMILLE_DEFAULT,
            ),
            ipi_ns: cost_ns(&merged, "cpu.pcpu_ipi_ns", PCPU_IPI_NS_DEFAULT),
        }
    }

    /// No cost at all (tests of other parts).
    pub const fn free() -> SwitchCosts {
        SwitchCosts {
            vcpu_switch_ns: 0,
            same_dom_permille: 0,
            ipi_ns: 0,
        }
    }

    /// Overhead of switching to `next` on a pCPU whose last guest vCPU was `last`, ns.
    pub fn switch_overhead_ns(&self, last: Option<VcpuRef>, next: VcpuRef) -> u64 {
        match last {
            Some(last) if last == next => 0,
            Some(last) if last.dom == next.dom => self.same_dom_ns(),
            _ => self.vcpu_switch_ns,
        }
    }

    /// Overhead of a switch between two vCPUs of one domain, ns.
    pub fn same_dom_ns(&self) -> u64 {
        self.vcpu_switch_ns.saturating_mul(self.same_dom_permille) / 1_000
    }

    /// The values in a fixed order, for the cost-table hash.
    pub fn hash_words(&self) -> [u64; 3] {
        [self.vcpu_switch_ns, self.same_dom_permille, self.ipi_ns]
    }
}

#[cfg(test)]
mod tests {
    use hypervisor_model::ids::{DomId, VcpuId};

    use super::*;

    fn v(dom: u16, vcpu: u32) -> VcpuRef {
        VcpuRef {
            dom: DomId::new(dom).expect("domid"),
            vcpu: VcpuId::new(vcpu).expect("vcpu"),
        }
    }

    #[test]
    fn switch_overhead_is_lazy_for_the_same_vcpu_and_cheaper_within_a_domain() {
        let costs = SwitchCosts::from_tables(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!(costs.switch_overhead_ns(Some(v(1, 0)), v(1, 0)), 0);
        assert_eq!(costs.switch_overhead_ns(Some(v(1, 0)), v(1, 1)), 3_009);
        assert_eq!(costs.switch_overhead_ns(Some(v(1, 0)), v(2, 0)), 5_016);
        assert_eq!(costs.switch_overhead_ns(None, v(2, 0)), 5_016);
    }

    #[test]
    fn host_costs_override_the_scenario_costs() {
        let global = BTreeMap::from([("cpu.pcpu_ipi_ns".to_string(), CostValue::Fixed(7))]);
        let host = BTreeMap::from([("cpu.pcpu_ipi_ns".to_string(), CostValue::Fixed(9))]);
        assert_eq!(SwitchCosts::from_tables(&global, &host).ipi_ns, 9);
    }
}
