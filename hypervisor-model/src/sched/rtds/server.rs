//! One rtds server: the per-vCPU deferrable server of the rtds scheduler, its parameters,
//! its current budget and deadline, and the two rules that change them (replenishment and
//! budget burn).
//!
//! Follows xen/common/sched/rt.c (Xen 4.17): `struct rt_unit`, `rt_alloc_udata`,
//! `compare_unit_priority`, `rt_update_deadline`, `burn_budget`; spec `schedulers.md`
//! §3.1, §3.3, §3.4.
//!
//! # Invariants
//! - `period_ns > 0` and `budget_ns > 0` (validated on every parameter change).
//! - Right after a replenishment, `cur_deadline > now`, `cur_budget_ns == budget_ns` and
//!   `priority_level == 0`.
//! - After a burn, `cur_budget_ns > 0`, or it is 0 and the server is marked depleted.
//!
//! xensim differs: `priority_level` grows with `wrapping_add`, as Xen 4.17's unsigned
//! increment does (the saturation at `RTDS_MAX_PRIORITY_LEVEL` came after 4.17; the two
//! only differ after 2^32 exhaustions inside one period). The "nested virtualisation"
//! `printk` of a negative burn delta is left out (virtual time never goes backwards).

use core::cmp::Ordering;

use super::account::PeriodAcct;
use crate::ids::PcpuId;
use crate::time::STime;

/// `RTDS_DEFAULT_PERIOD`: 10 ms.
pub const DEFAULT_PERIOD_NS: i64 = 10_000_000;
/// `RTDS_DEFAULT_BUDGET`: 4 ms.
pub const DEFAULT_BUDGET_NS: i64 = 4_000_000;
/// `RTDS_MIN_PERIOD`: 10 µs.
pub const MIN_PERIOD_NS: i64 = 10_000;
/// `RTDS_MIN_BUDGET`: 10 µs.
pub const MIN_BUDGET_NS: i64 = 10_000;
/// `RTDS_MAX_PERIOD` = `STIME_DELTA_MAX` (xen/include/xen/time.h): `~0ull >> 2`.
pub const MAX_PERIOD_NS: i64 = i64::MAX >> 1;
/// `UPDATE_LIMIT_SHIFT`: beyond `period << 10` behind, the deadline moves by one multiply.
const UPDATE_LIMIT_SHIFT: u32 = 10;

const _: () = assert!(MIN_BUDGET_NS <= MIN_PERIOD_NS);
const _: () = assert!(DEFAULT_BUDGET_NS <= DEFAULT_PERIOD_NS);
const _: () = assert!(MAX_PERIOD_NS.cast_unsigned() == u64::MAX >> 2);

/// Which of the two scheduling queues a server is on (`q_elem`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Queue {
    /// On no queue (running, blocked, or being switched).
    None,
    /// On `runq`.
    Runq,
    /// On `depletedq`.
    Depleted,
}

/// `struct rt_unit`.
#[derive(Clone, Debug)]
pub struct Server {
    /// `period`, ns.
    pub period_ns: i64,
    /// `budget`, ns.
    pub budget_ns: i64,
    /// `cur_budget`, ns: what is left of the current chunk.
    pub cur_budget_ns: i64,
    /// `cur_deadline`: the end of the current period.
    pub cur_deadline: STime,
    /// `last_start`: when budget was last charged up to.
    pub last_start: STime,
    /// `priority_level`: 0 while in the reservation, +1 per extratime chunk.
    pub priority_level: u32,
    /// `RTDS_extratime`.
    pub extratime: bool,
    /// `RTDS_scheduled`: picked, and its context not yet saved after a switch away.
    pub scheduled: bool,
    /// `RTDS_delayed_runq_add`: queue it once its context is saved.
    pub delayed_runq_add: bool,
    /// `RTDS_depleted`: ran out of budget without extratime.
    pub depleted: bool,
    /// Which queue `q_elem` is on.
    pub queue: Queue,
    /// `replq_elem` is on the replenishment queue (or the handler's temporary list).
    pub on_replq: bool,
    /// xensim: the period was changed at least once (deadlines may be unaligned since).
    pub period_changed: bool,
    /// xensim: when the scheduler timer armed at the last pick of this vCPU fires.
    pub slice_end: STime,
    /// xensim: server-period accounting for reports (`metrics.md` §1.7).
    pub acct: PeriodAcct,
    /// xensim: the pCPU the running index (`running.rs`) records this server on.
    pub running_cpu: Option<PcpuId>,
    /// xensim: the `replq` block holding this server (`replq.rs`).
    pub replq_block: Option<u32>,
    /// xensim: this server's place in `runq` (its key when queued, then a sequence
    /// number that keeps equal keys first-come first-served), or in `depletedq` (the
    /// sequence number only, newest first).
    pub runq_at: (u32, STime, u64),
}

impl Server {
    /// `rt_alloc_udata`: defaults, extratime on, deadline 0 (so the first replenishment
    /// aligns the deadline to a multiple of the period).
    pub fn new() -> Server {
        Server {
            period_ns: DEFAULT_PERIOD_NS,
            budget_ns: DEFAULT_BUDGET_NS,
            cur_budget_ns: 0,
            cur_deadline: STime::ZERO,
            last_start: STime::ZERO,
            priority_level: 0,
            extratime: true,
            scheduled: false,
            delayed_runq_add: false,
            depleted: false,
            queue: Queue::None,
            on_replq: false,
            period_changed: false,
            slice_end: STime::ZERO,
            acct: PeriodAcct::default(),
            running_cpu: None,
            replq_block: None,
            runq_at: (0, STime::ZERO, 0),
        }
    }

    /// `rt_update_deadline`: a new period (the first after `now`), full budget, level 0.
    pub fn update_deadline(&mut self, now: STime) {
        assert!(now >= self.cur_deadline, "replenished before its deadline");
        assert!(self.period_ns > 0, "zero period");
        let deadline_ns = self.cur_deadline.as_ns();
        let limit_ns = self
            .period_ns
            .checked_shl(UPDATE_LIMIT_SHIFT)
            .map_or(i64::MAX, |shifted| deadline_ns.saturating_add(shifted));
        let new_deadline_ns = if limit_ns > now.as_ns() {
            // Xen: close behind, add one period at a time.
            let mut d_ns = deadline_ns;
            while d_ns <= now.as_ns() {
                d_ns = checked(d_ns.checked_add(self.period_ns));
            }
            d_ns
        } else {
            // Xen: far behind, jump by a whole number of periods.
            let count = (now.as_ns() - deadline_ns) / self.period_ns + 1;
            checked(
                count
                    .checked_mul(self.period_ns)
                    .and_then(|jump| deadline_ns.checked_add(jump)),
            )
        };
        self.cur_deadline = STime::from_ns(new_deadline_ns);
        // Time run before `now` belongs to the old period: charge from here on.
        self.last_start = now;
        self.cur_budget_ns = self.budget_ns;
        self.priority_level = 0;
        assert!(self.cur_deadline > now, "deadline not past now");
    }

    /// `burn_budget` for a non-idle vCPU at `now`.
    pub fn burn_budget(&mut self, now: STime) {
        let delta_ns = now.since(self.last_start).as_ns();
        if delta_ns < 0 {
            self.last_start = now;
            return;
        }
        self.cur_budget_ns -= delta_ns;
        self.last_start = now;
        if self.cur_budget_ns <= 0 {
            if self.extratime {
                // Xen 4.17: a plain unsigned increment (see the module doc).
                self.priority_level = self.priority_level.wrapping_add(1);
                self.cur_budget_ns = self.budget_ns;
            } else {
                self.cur_budget_ns = 0;
                self.depleted = true;
            }
        }
        assert!(self.cur_budget_ns >= 0, "budget below zero after a burn");
    }

    /// The `(priority_level, cur_deadline)` key; smaller is more urgent.
    pub fn key(&self) -> (u32, STime) {
        (self.priority_level, self.cur_deadline)
    }
}

/// `compare_unit_priority(a, b)`: `Greater` when `a` has strictly higher priority (lower
/// level, or same level and earlier deadline), `Equal` on a tie.
pub fn compare(a: &Server, b: &Server) -> Ordering {
    b.key().cmp(&a.key())
}

fn checked(value: Option<i64>) -> i64 {
    match value {
        Some(v) => v,
        None => panic!("rtds deadline overflows s_time_t"),
    }
}

#[cfg(test)]
mod tests {
    use super::{compare, Server};
    use crate::time::STime;
    use core::cmp::Ordering;

    fn server(period_ns: i64, budget_ns: i64) -> Server {
        let mut s = Server::new();
        s.period_ns = period_ns;
        s.budget_ns = budget_ns;
        s
    }

    #[test]
    fn first_update_aligns_deadline_to_next_multiple_of_period() {
        // Deadline 0, now 25 ms, period 10 ms: the first multiple after now is 30 ms.
        let mut s = server(10_000_000, 4_000_000);
        s.update_deadline(STime::from_ns(25_000_000));
        assert_eq!(s.cur_deadline, STime::from_ns(30_000_000));
        assert_eq!(s.cur_budget_ns, 4_000_000);
        assert_eq!(s.last_start, STime::from_ns(25_000_000));
    }

    #[test]
    fn update_at_exact_deadline_moves_one_period() {
        let mut s = server(10_000_000, 4_000_000);
        s.cur_deadline = STime::from_ns(20_000_000);
        s.priority_level = 3;
        s.update_deadline(STime::from_ns(20_000_000));
        assert_eq!(s.cur_deadline, STime::from_ns(30_000_000));
        assert_eq!(s.priority_level, 0);
    }

    #[test]
    fn update_far_behind_uses_multiplication_branch() {
        // 1 µs period, 5000 periods behind (> 1024): count = 5000 / 1 + 1.
        let mut s = server(1_000, 1_000);
        s.cur_deadline = STime::from_ns(7_000);
        s.update_deadline(STime::from_ns(5_007_000));
        assert_eq!(s.cur_deadline, STime::from_ns(5_008_000));
        // Still aligned to the period grid from time 0.
        assert_eq!(s.cur_deadline.as_ns() % 1_000, 0);
    }

    #[test]
    fn both_update_branches_agree_just_past_the_limit() {
        // 1024 periods behind is the last step-wise case; 1025 the first multiplication.
        let mut near = server(3_000, 1_000);
        let mut far = server(3_000, 1_000);
        near.update_deadline(STime::from_ns(1_023 * 3_000 + 5));
        far.update_deadline(STime::from_ns(1_025 * 3_000 + 5));
        assert_eq!(near.cur_deadline, STime::from_ns(1_024 * 3_000));
        assert_eq!(far.cur_deadline, STime::from_ns(1_026 * 3_000));
    }

    #[test]
    fn burn_without_extratime_depletes_at_zero() {
        let mut s = server(10_000_000, 4_000_000);
        s.extratime = false;
        s.update_deadline(STime::ZERO);
        s.burn_budget(STime::from_ns(5_000_000));
        assert_eq!(s.cur_budget_ns, 0);
        assert!(s.depleted);
    }

    #[test]
    fn burn_with_extratime_refills_one_level_down() {
        let mut s = server(10_000_000, 4_000_000);
        s.update_deadline(STime::ZERO);
        s.burn_budget(STime::from_ns(4_000_000));
        assert_eq!(s.priority_level, 1);
        assert_eq!(s.cur_budget_ns, 4_000_000);
        assert!(!s.depleted);
    }

    #[test]
    fn compare_prefers_lower_level_then_earlier_deadline() {
        let mut a = server(10, 5);
        let mut b = server(10, 5);
        a.cur_deadline = STime::from_ns(50);
        b.cur_deadline = STime::from_ns(40);
        assert_eq!(compare(&b, &a), Ordering::Greater);
        b.priority_level = 1;
        assert_eq!(compare(&a, &b), Ordering::Greater);
        b.priority_level = 0;
        b.cur_deadline = STime::from_ns(50);
        assert_eq!(compare(&a, &b), Ordering::Equal);
    }
}
