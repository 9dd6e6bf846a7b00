//! The network between hosts (`specs/scenario.md` §5, §7.1): one FIFO link per direction
//! and host pair (and between every host and the external peer, and each host's hairpin
//! link from its NIC to a driver domain's on the same switch), each with a one-way
//! latency drawn per frame from stream `fabric.<a>.<b>`, a serialisation rate, a loss
//! probability drawn from stream `fabric.<a>.<b>.loss`, an MTU, and the run-time faults
//! `partition`, `heal` and `link-loss`.
//!
//! # Invariants
//! - Frames leave a link in the order they entered it: a frame's arrival is never before
//!   the previous frame's (`last_arrival_ns`), whatever latency was drawn.
//! - A frame occupies the sender's side for its wire time (bytes plus
//!   `dev.nic_frame_overhead_bytes`) at the link's rate; the next waits behind it.
//!
//! xensim differs: a partition drops frames as they enter a link (frames already on the
//! wire arrive); switches and their queues are folded into the link latency.

use std::collections::BTreeMap;

use crate::guest::dist::sample;
use crate::rng::{RngStreams, Stream};
use crate::scenario::model::{FabricSpec, LinkSpec};

/// The external peer's endpoint index (after every host).
pub const EXTERNAL: usize = usize::MAX;

/// `dev.nic_frame_overhead_bytes` default: preamble, SFD and inter-frame gap.
pub const FRAME_OVERHEAD_BYTES: u64 = 20;

/// The link every pair gets without `[fabric]`: `fabric.rack_rtt_ns / 2`, 10 GbE, no loss.
pub fn default_link() -> LinkSpec {
    LinkSpec {
        latency: crate::scenario::model::Dist::Const(2_500),
        bandwidth_bytes_per_s: 1_250_000_000,
        loss_ppm: 0,
        mtu_bytes: 1500,
    }
}

/// What became of a frame put on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transit {
    /// It reaches the other end at this time.
    Arrives(u64),
    /// The link lost it (`loss_ppm`).
    Lost,
    /// The link is partitioned.
    Partitioned,
    /// Larger than the link's MTU.
    TooBig,
}

/// One direction of a link.
#[derive(Debug, Clone)]
struct Link {
    spec: LinkSpec,
    partitioned: bool,
    busy_until_ns: u64,
    last_arrival_ns: u64,
    latency: Stream,
    loss: Stream,
}

impl Link {
    fn new(spec: LinkSpec, name: &str, streams: &RngStreams) -> Link {
        Link {
            spec,
            partitioned: false,
            busy_until_ns: 0,
            last_arrival_ns: 0,
            latency: streams.stream(name),
            loss: streams.stream(&format!("{name}.loss")),
        }
    }

    fn send(&mut self, now_ns: u64, bytes: u32, overhead_bytes: u64) -> Transit {
        if self.partitioned {
            return Transit::Partitioned;
        }
        // The MTU counts the payload; a frame carries 14 bytes of Ethernet header on top.
        if bytes > self.spec.mtu_bytes + 14 {
            return Transit::TooBig;
        }
        let wire_bytes = u128::from(bytes) + u128::from(overhead_bytes);
        let rate = u128::from(self.spec.bandwidth_bytes_per_s.max(1));
        let wire_ns = u64::try_from(wire_bytes * 1_000_000_000 / rate).unwrap_or(u64::MAX);
        let start_ns = self.busy_until_ns.max(now_ns);
        let sent_ns = start_ns.saturating_add(wire_ns);
        self.busy_until_ns = sent_ns;
        let lost = self.spec.loss_ppm > 0
            && self.loss.uniform_u64_inclusive(0, 999_999) < u64::from(self.spec.loss_ppm);
        let delay_ns = sample(&self.spec.latency, &mut self.latency);
        if lost {
            return Transit::Lost;
        }
        let arrival_ns = sent_ns.saturating_add(delay_ns).max(self.last_arrival_ns);
        self.last_arrival_ns = arrival_ns;
        Transit::Arrives(arrival_ns)
    }
}

/// Every link of a run.
#[derive(Debug, Clone)]
pub struct Fabric {
    links: BTreeMap<(usize, usize), Link>,
    overhead_bytes: u64,
}

impl Fabric {
    /// The links of `hosts` (full mesh, plus each host to and from the external peer).
    pub fn new(
        spec: Option<&FabricSpec>,
        hosts: &[String],
        overhead_bytes: u64,
        streams: &RngStreams,
    ) -> Fabric {
        let default = spec.map_or_else(default_link, |f| f.default_link.clone());
        let mut links = BTreeMap::new();
        let name = |i: usize| hosts.get(i).map_or("external", String::as_str).to_string();
        let ends: Vec<usize> = (0..hosts.len()).chain([EXTERNAL]).collect();
        for &a in &ends {
            for &b in &ends {
                // A host's own pair is its rack switch's hairpin between the host's NIC
                // and a network driver domain's (`run/net.rs`).
                if a == EXTERNAL && b == EXTERNAL {
                    continue;
                }
                let link = spec
                    .and_then(|f| {
                        f.links.iter().find(|l| {
                            (l.a_host_index, l.b_host_index) == (a, b)
                                || (l.a_host_index, l.b_host_index) == (b, a)
                        })
                    })
                    .map_or_else(|| default.clone(), |l| l.link.clone());
                let stream = format!("fabric.{}.{}", name(a), name(b));
                links.insert((a, b), Link::new(link, &stream, streams));
            }
        }
        Fabric {
            links,
            overhead_bytes,
        }
    }

    /// Puts a frame of `bytes` on the link from `a` to `b` at `now_ns`.
    pub fn send(&mut self, a: usize, b: usize, now_ns: u64, bytes: u32) -> Transit {
        match self.links.get_mut(&(a, b)) {
            Some(link) => link.send(now_ns, bytes, self.overhead_bytes),
            None => Transit::Partitioned,
        }
    }

    /// `partition` (`on`) or `heal` between every host of `a` and every host of `b`.
    pub fn partition(&mut self, a: &[usize], b: &[usize], on: bool) {
        for (&(x, y), link) in self.links.iter_mut() {
            let crosses = (a.contains(&x) && b.contains(&y)) || (b.contains(&x) && a.contains(&y));
            if crosses {
                link.partitioned = on;
            }
        }
    }

    /// `heal` without hosts: every partition ends.
    pub fn heal_all(&mut self) {
        for link in self.links.values_mut() {
            link.partitioned = false;
        }
    }

    /// `link-loss`: both directions between `a` and `b` lose `loss_ppm`.
    pub fn set_loss(&mut self, a: usize, b: usize, loss_ppm: u32) {
        for key in [(a, b), (b, a)] {
            if let Some(link) = self.links.get_mut(&key) {
                link.spec.loss_ppm = loss_ppm;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fabric() -> Fabric {
        let hosts = ["h0".to_string(), "h1".to_string()];
        Fabric::new(None, &hosts, FRAME_OVERHEAD_BYTES, &RngStreams::new(1))
    }

    #[test]
    fn a_1500_byte_frame_takes_its_wire_time_plus_latency() {
        // 1520 wire bytes at 1.25 GB/s = 1216 ns, then 2.5 us of latency.
        let mut f = fabric();
        assert_eq!(f.send(0, 1, 0, 1500), Transit::Arrives(3_716));
    }

    #[test]
    fn back_to_back_frames_queue_behind_each_other() {
        let mut f = fabric();
        f.send(0, 1, 0, 1500);
        assert_eq!(f.send(0, 1, 0, 1500), Transit::Arrives(4_932));
    }

    #[test]
    fn a_partition_drops_both_directions_until_healed() {
        let mut f = fabric();
        f.partition(&[0], &[1], true);
        assert_eq!(f.send(1, 0, 0, 100), Transit::Partitioned);
        f.heal_all();
        assert!(matches!(f.send(1, 0, 0, 100), Transit::Arrives(_)));
    }

    #[test]
    fn full_loss_drops_every_frame() {
        let mut f = fabric();
        f.set_loss(0, 1, 1_000_000);
        assert_eq!(f.send(0, 1, 0, 100), Transit::Lost);
    }

    #[test]
    fn frames_over_the_mtu_do_not_fit() {
        let mut f = fabric();
        assert_eq!(f.send(0, EXTERNAL, 0, 9000), Transit::TooBig);
    }
}
