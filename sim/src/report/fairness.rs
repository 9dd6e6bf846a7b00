//! CPU share versus entitlement per cpupool (`specs/metrics.md` §1.4–1.6): which vCPUs are
//! saturated, whether the pool is contended, each vCPU's entitlement, Jain's fairness index
//! over vCPUs and over domains, and the maximum relative deviation. Entitlement by
//! scheduler: credit2, weighted max-min (the integer procedure of §1.4, λ in ns per weight
//! unit ×2^16 binary-searched in `[0, 2^56]`); rtds, the reservation `floor(budget · exist /
//! period)` (time above it through extratime is not a deviation: actual is capped at it);
//! null, the time the vCPU held a pCPU (a vCPU that only waited in the waitqueue is entitled
//! to 0 and left out). Computed from a run's [`Metrics`] only.
//!
//! # Invariants
//! - Integers only; products and squares in `u128`.
//! - `Σ_d E_d(λ) >= C'` at the λ found, and not at `λ − 1` (smallest such λ).
//!
//! Left out (its input is not in the metrics yet): credit2 `parked_ns` (a capped vCPU that
//! was parked counts as offline, so it is not saturated and leaves the fairness set). rtds
//! uses the reservation in force at the end of the run (a mid-run `xl sched-rtds` change is
//! not split).

use super::metrics::{DomainMetrics, Metrics, VcpuMetrics};

/// λ's upper bound (§1.4).
const LAMBDA_MAX: u128 = 1 << 56;
/// 10^6.
const PPM: u128 = 1_000_000;

/// Fairness of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFairness {
    /// Host name.
    pub host: String,
    /// Pool name.
    pub pool: String,
    /// `Σ_{v∈F} demand(v) > C'`.
    pub contended: bool,
    /// Jain's index over vCPUs ×10^6; `None` when uncontended or with no member.
    pub jain_ppm: Option<u64>,
    /// Jain's index over domains ×10^6.
    pub jain_domain_ppm: Option<u64>,
    /// `max |actual − entitled| · 10^6 / entitled` over vCPUs.
    pub max_rel_dev_ppm: Option<u64>,
    /// Per domain (name, actual_ns, entitled_ns) over its saturated vCPUs.
    pub domains: Vec<(String, u64, u64)>,
}

/// One saturated vCPU of the pool.
#[derive(Debug, Clone, Copy)]
struct Member {
    domain_index: usize,
    weight: u128,
    demand_ns: u128,
    actual_ns: u128,
    /// rtds: `floor(budget · exist / period)`; null: time assigned to a pCPU.
    fixed_ns: Option<u128>,
}

fn exist_ns(v: &VcpuMetrics) -> u64 {
    v.running_ns + v.runnable_ns + v.blocked_ns + v.offline_ns
}

/// How a pool's scheduler entitles its vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Credit2,
    Rtds,
    Null,
}

/// The fairness of every pool of `metrics`, by host then pool order.
pub fn pools(metrics: &Metrics) -> Vec<PoolFairness> {
    let mut out = Vec::new();
    for host in &metrics.hosts {
        for pool in &host.pools {
            let kind = match pool.scheduler.as_str() {
                "credit2" => Kind::Credit2,
                "rtds" => Kind::Rtds,
                "null" => Kind::Null,
                _ => continue,
            };
            let overhead_ns: u64 = host
                .pcpus
                .iter()
                .filter(|p| p.pool.as_deref() == Some(pool.name.as_str()))
                .map(|p| p.overhead_ns)
                .sum();
            let domains: Vec<&DomainMetrics> = metrics
                .domains
                .iter()
                .filter(|d| d.host == host.name && d.pool.as_deref() == Some(pool.name.as_str()))
                .collect();
            let capacity = Capacity {
                capacity_ns: u128::from(pool.capacity_ns),
                overhead_ns: u128::from(overhead_ns),
                window_ns: u128::from(metrics.window.length_ns),
            };
            let id = (host.name.as_str(), pool.name.as_str());
            out.push(pool_fairness(id, kind, &domains, capacity));
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct Capacity {
    capacity_ns: u128,
    overhead_ns: u128,
    window_ns: u128,
}

/// The saturated vCPUs of the pool (the fairness set `F`) and the running time of the
/// others (fixed consumers).
fn members(kind: Kind, domains: &[&DomainMetrics]) -> (Vec<Member>, u128) {
    let mut members = Vec::new();
    let mut fixed_consumers_ns: u128 = 0;
    for (domain_index, d) in domains.iter().enumerate() {
        for v in &d.vcpus {
            let saturated = exist_ns(v) > 0 && v.blocked_ns == 0 && v.offline_ns == 0;
            if !saturated {
                fixed_consumers_ns += u128::from(v.running_ns);
                continue;
            }
            let fixed_ns = match kind {
                Kind::Credit2 => None,
                Kind::Rtds => Some(v.rtds_reservation_ns.map_or(0, |(budget_ns, period_ns)| {
                    u128::from(budget_ns) * u128::from(exist_ns(v)) / u128::from(period_ns.max(1))
                })),
                Kind::Null => Some(u128::from(v.null_assigned_ns.unwrap_or(0))),
            };
            members.push(Member {
                domain_index,
                weight: u128::from(d.weight.unwrap_or(0).max(1)),
                demand_ns: u128::from(v.running_ns + v.runnable_ns),
                actual_ns: u128::from(v.running_ns),
                fixed_ns,
            });
        }
    }
    (members, fixed_consumers_ns)
}

fn pool_fairness(
    (host, pool): (&str, &str),
    kind: Kind,
    domains: &[&DomainMetrics],
    cap: Capacity,
) -> PoolFairness {
    let (members, fixed_consumers_ns) = members(kind, domains);
    let remaining_ns = cap
        .capacity_ns
        .saturating_sub(fixed_consumers_ns + cap.overhead_ns);
    let demand_total: u128 = members.iter().map(|m| m.demand_ns).sum();
    let contended = demand_total > remaining_ns && !members.is_empty();
    let mut result = PoolFairness {
        host: host.to_owned(),
        pool: pool.to_owned(),
        contended,
        jain_ppm: None,
        jain_domain_ppm: None,
        max_rel_dev_ppm: None,
        domains: Vec::new(),
    };
    if contended {
        entitle(
            &mut result,
            kind,
            domains,
            &members,
            (remaining_ns, cap.window_ns),
        );
    }
    result
}

/// Fills in the entitlement results of a contended pool with `remaining_ns` (C') left for
/// its saturated `members`, over a window of `window_ns`.
fn entitle(
    result: &mut PoolFairness,
    kind: Kind,
    domains: &[&DomainMetrics],
    members: &[Member],
    (remaining_ns, window_ns): (u128, u128),
) {
    // Domain caps (credit2 only): percent of one pCPU over the window.
    let caps: Vec<Option<u128>> = domains
        .iter()
        .map(|d| {
            let capped = d.cap.filter(|&c| c > 0 && kind == Kind::Credit2);
            capped.map(|c| u128::from(c) * window_ns / 100)
        })
        .collect();
    let lambda = match kind {
        Kind::Credit2 => smallest_lambda(members, &caps, remaining_ns),
        Kind::Rtds | Kind::Null => 0,
    };
    let entitled = |m: &Member| {
        m.fixed_ns
            .unwrap_or_else(|| m.demand_ns.min((lambda * m.weight) >> 16))
    };
    // Extratime above an rtds reservation is not a deviation.
    let actual = |m: &Member| match kind {
        Kind::Rtds => m.actual_ns.min(entitled(m)),
        Kind::Credit2 | Kind::Null => m.actual_ns,
    };
    // vCPUs of capped domains have no entitlement of their own (only the domain total).
    let vcpu_pairs: Vec<(u128, u128)> = members
        .iter()
        .filter(|m| caps[m.domain_index].is_none())
        .map(|m| (actual(m), entitled(m)))
        .collect();
    let mut per_domain: Vec<(u128, u128)> = vec![(0, 0); domains.len()];
    for m in members {
        per_domain[m.domain_index].0 += actual(m);
        per_domain[m.domain_index].1 += entitled(m);
    }
    for (slot, cap_ns) in per_domain.iter_mut().zip(&caps) {
        if let Some(cap_ns) = cap_ns {
            slot.1 = slot.1.min(*cap_ns);
        }
    }
    let domain_pairs: Vec<(u128, u128)> = per_domain.iter().copied().filter(|p| p.1 > 0).collect();
    result.jain_ppm = jain_ppm(&vcpu_pairs);
    result.jain_domain_ppm = jain_ppm(&domain_pairs);
    result.max_rel_dev_ppm = max_rel_dev_ppm(&vcpu_pairs);
    result.domains = domains
        .iter()
        .zip(&per_domain)
        .filter(|(_, p)| p.1 > 0)
        .map(|(d, p)| (d.name.clone(), saturate(p.0), saturate(p.1)))
        .collect();
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// `Σ_d E_d(λ)` (§1.4).
fn total_entitlement(members: &[Member], caps: &[Option<u128>], lambda: u128) -> u128 {
    let mut per_domain = vec![0u128; caps.len()];
    for m in members {
        per_domain[m.domain_index] += m.demand_ns.min((lambda * m.weight) >> 16);
    }
    per_domain
        .iter()
        .zip(caps)
        .map(|(&e, cap)| cap.map_or(e, |c| e.min(c)))
        .sum()
}

/// The smallest λ in `[0, 2^56]` with `Σ_d E_d(λ) >= remaining_ns` (2^56 if none).
fn smallest_lambda(members: &[Member], caps: &[Option<u128>], remaining_ns: u128) -> u128 {
    let (mut low, mut high) = (0u128, LAMBDA_MAX);
    while low < high {
        let mid = low + (high - low) / 2;
        if total_entitlement(members, caps, mid) >= remaining_ns {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

/// `floor(10^6 · (Σx)² / (n · Σx²))` over `x = actual · 10^6 / entitled`, entitled > 0.
fn jain_ppm(pairs: &[(u128, u128)]) -> Option<u64> {
    let xs: Vec<u128> = pairs
        .iter()
        .filter(|p| p.1 > 0)
        .map(|&(actual, entitled)| actual * PPM / entitled)
        .collect();
    let n = u128::try_from(xs.len()).ok()?;
    let sum: u128 = xs.iter().sum();
    let sum_sq: u128 = xs.iter().map(|x| x * x).sum();
    let jain = (PPM * sum * sum).checked_div(n * sum_sq)?;
    u64::try_from(jain).ok()
}

/// `max |actual − entitled| · 10^6 / entitled` over pairs with `entitled > 0`.
fn max_rel_dev_ppm(pairs: &[(u128, u128)]) -> Option<u64> {
    pairs
        .iter()
        .filter(|p| p.1 > 0)
        .map(|&(actual, entitled)| actual.abs_diff(entitled) * PPM / entitled)
        .max()
        .and_then(|d| u64::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_of_one_three_five_matches_the_spec_check_value() {
        // §1.5: x = (1, 3, 5) gives 81/105, jain_ppm = 771428.
        let pairs = [(1, 1), (3, 1), (5, 1)];

        assert_eq!(jain_ppm(&pairs), Some(771_428));
    }

    #[test]
    fn jain_is_blind_to_a_uniform_shortfall_and_deviation_is_not() {
        let pairs = [(50, 100), (50, 100)];

        assert_eq!(jain_ppm(&pairs), Some(1_000_000));
        assert_eq!(max_rel_dev_ppm(&pairs), Some(500_000));
    }

    fn member(domain_index: usize, weight: u128, demand_ns: u128) -> Member {
        Member {
            domain_index,
            weight,
            demand_ns,
            actual_ns: 0,
            fixed_ns: None,
        }
    }

    #[test]
    fn water_filling_splits_by_weight_and_caps_at_demand() {
        // 1000 ns left for weights 256 and 512 (each demanding 1000): 333/666 split; with
        // the heavier one demanding only 200, the lighter one gets the other 800.
        let even = [member(0, 256, 1_000), member(1, 512, 1_000)];
        let small = [member(0, 256, 1_000), member(1, 512, 200)];
        let caps = [None, None];

        let lambda = smallest_lambda(&even, &caps, 1_000);
        let lambda_small = smallest_lambda(&small, &caps, 1_000);

        assert_eq!((lambda * 256) >> 16, 333);
        assert_eq!(((lambda * 512) >> 16).min(1_000), 667);
        assert_eq!(((lambda_small * 256) >> 16).min(1_000), 800);
        assert!(total_entitlement(&even, &caps, lambda - 1) < 1_000);
    }

    #[test]
    fn domain_cap_limits_its_entitlement() {
        // Domain 0 capped at 100 ns: domain 1 takes the rest of 1000.
        let members = [member(0, 256, 1_000), member(1, 256, 1_000)];
        let caps = [Some(100), None];

        let lambda = smallest_lambda(&members, &caps, 1_000);

        assert_eq!(((lambda * 256) >> 16).min(1_000), 900);
    }
}
