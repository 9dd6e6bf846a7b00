//! The host CPU and NUMA layout built from a scenario's `topology` (`specs/scenario.md` §4).
//!
//! - pCPU numbering: `cpu = ((socket × cores_per_socket) + core) × threads_per_core + thread`,
//!   so SMT siblings are adjacent, as in `xl info -n` (`memory-iommu-migration.md` §7.5).
//!   A pCPU's `core` is its core number within its socket, the value `xl info -n` prints.
//! - NUMA nodes, `k = numa_nodes`: `k == 1` puts every pCPU on node 0; `k` dividing
//!   `sockets` groups `sockets / k` consecutive sockets per node; `k` a multiple of `sockets`
//!   splits each socket into `n = k / sockets` nodes by contiguous core ranges (SNC/NPS):
//!   core `c` of socket `s` is on node `s·n + floor(c·n / cores_per_socket)`.
//! - Distances: the SLIT matrix as a `petgraph` `DiGraphMap` (an edge `a → b` for every pair,
//!   self-loops for the diagonal; directed because SLIT need not be symmetric). An empty
//!   matrix means 10 on the diagonal and 20 elsewhere.
//! - Memory: [`split_node_memory_bytes`] gives each node `floor(total / k)` rounded down to
//!   2 MiB, and node 0 also takes the remainder.
//!
//! Xen source: `xen/arch/x86/smpboot.c` (sibling and core maps), `xen/common/numa.c`
//! (`node_distance`), `tools/xl/xl_info.c` (`output_topologyinfo`, `output_numainfo`).
//!
//! # Invariants
//!
//! - `pcpus[i].cpu_index == i` for every pCPU; their count is
//!   `sockets × cores_per_socket × threads_per_core`, at most `NR_CPUS`.
//! - Every pCPU's node is below `node_count`; the graph has `node_count²` edges.
//!
//! Left out: CPU hotplug, cache topology, memory-only nodes.

use hypervisor_model::limits::NR_CPUS;
use petgraph::graphmap::DiGraphMap;

use crate::scenario::model::TopologySpec;

/// Most NUMA nodes: Xen x86's `MAX_NUMNODES` (`1 << NODES_SHIFT`, `NODES_SHIFT` 6,
/// xen/arch/x86/include/asm/numa.h).
pub const NUMA_NODES_MAX: u32 = 64;

/// Local SLIT distance (ACPI 6.x, 5.2.17).
pub const DISTANCE_LOCAL: u32 = 10;

/// Default remote SLIT distance when the scenario gives none (`specs/scenario.md` §4).
pub const DISTANCE_REMOTE_DEFAULT: u32 = 20;

/// Node memory granularity: 2 MiB.
pub const NODE_MEMORY_ALIGN_BYTES: u64 = 2 << 20;

/// A topology the spec cannot describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The distance matrix is not `k × k`.
    #[error("the distance matrix must be {node_count} × {node_count}")]
    DistanceShape {
        /// `k`.
        node_count: u32,
    },
    /// `numa_nodes` neither divides `sockets` nor is a multiple of it, or exceeds the limit.
    #[error("{node_count} NUMA nodes do not fit {sockets} sockets (a divisor or a multiple)")]
    NodeCount {
        /// `k`.
        node_count: u32,
        /// Sockets.
        sockets: u32,
    },
    /// More pCPUs than Xen's `NR_CPUS`, or a zero count.
    #[error("the topology has {pcpu_count} pCPUs; 1 to {NR_CPUS} are supported")]
    PcpuCount {
        /// The product (saturated).
        pcpu_count: u64,
    },
}

/// Where one pCPU sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpuPlace {
    /// The pCPU number.
    pub cpu_index: u32,
    /// SMT thread within its core.
    pub thread_index: u32,
    /// Core within its socket (`xl info -n` `core`).
    pub core_index: u32,
    /// Socket.
    pub socket_index: u32,
    /// NUMA node.
    pub node_index: u32,
}

/// The CPU and NUMA layout of one host.
#[derive(Debug, Clone)]
pub struct Topology {
    sockets: u32,
    cores_per_socket: u32,
    threads_per_core: u32,
    node_count: u32,
    pcpus: Vec<PcpuPlace>,
    distances: DiGraphMap<u32, u32>,
}

impl Topology {
    /// Builds the layout of `spec`.
    pub fn new(spec: &TopologySpec) -> Result<Self, TopologyError> {
        let pcpu_count = u64::from(spec.sockets)
            * u64::from(spec.cores_per_socket)
            * u64::from(spec.threads_per_core);
        if pcpu_count == 0 || pcpu_count > u64::from(NR_CPUS) {
            return Err(TopologyError::PcpuCount { pcpu_count });
        }
        let node_count = spec.numa_nodes;
        let fits = (1..=NUMA_NODES_MAX).contains(&node_count)
            && (spec.sockets.is_multiple_of(node_count) || node_count.is_multiple_of(spec.sockets));
        if !fits {
            return Err(TopologyError::NodeCount {
                node_count,
                sockets: spec.sockets,
            });
        }
        let distances = distance_graph(node_count, &spec.distances)?;
        let mut topology = Self {
            sockets: spec.sockets,
            cores_per_socket: spec.cores_per_socket,
            threads_per_core: spec.threads_per_core,
            node_count,
            pcpus: Vec::new(),
            distances,
        };
        topology.pcpus = topology.place_pcpus();
        assert_eq!(
            u64::try_from(topology.pcpus.len()).unwrap_or(u64::MAX),
            pcpu_count
        );
        Ok(topology)
    }

    /// Number of pCPUs.
    pub fn pcpu_count(&self) -> u32 {
        u32::try_from(self.pcpus.len()).unwrap_or(u32::MAX)
    }

    /// Number of NUMA nodes.
    pub fn node_count(&self) -> u32 {
        self.node_count
    }

    /// Every pCPU in number order.
    pub fn pcpus(&self) -> &[PcpuPlace] {
        &self.pcpus
    }

    /// Where pCPU `cpu_index` sits, if it exists.
    pub fn pcpu(&self, cpu_index: u32) -> Option<&PcpuPlace> {
        self.pcpus.get(usize::try_from(cpu_index).ok()?)
    }

    /// The pCPUs of `node_index`, ascending (empty for an unknown node).
    pub fn cpus_of_node(&self, node_index: u32) -> Vec<u32> {
        self.pcpus
            .iter()
            .filter(|place| place.node_index == node_index)
            .map(|place| place.cpu_index)
            .collect()
    }

    /// The SMT siblings of `cpu_index` (itself included), ascending.
    pub fn siblings_of(&self, cpu_index: u32) -> Vec<u32> {
        let Some(first) = self.pcpu(cpu_index) else {
            return Vec::new();
        };
        let core_first_cpu = cpu_index - first.thread_index;
        (core_first_cpu..core_first_cpu + self.threads_per_core).collect()
    }

    /// SLIT distance from node `from` to node `to`; `None` for an unknown node.
    pub fn distance(&self, from_node: u32, to_node: u32) -> Option<u32> {
        self.distances.edge_weight(from_node, to_node).copied()
    }

    /// The distance graph: nodes `0..k`, an edge `a → b` weighted by the SLIT distance.
    pub fn distance_graph(&self) -> &DiGraphMap<u32, u32> {
        &self.distances
    }

    /// The place of every pCPU, in number order.
    fn place_pcpus(&self) -> Vec<PcpuPlace> {
        let mut pcpus = Vec::new();
        for socket_index in 0..self.sockets {
            for core_index in 0..self.cores_per_socket {
                let node_index = self.node_of_core(socket_index, core_index);
                for thread_index in 0..self.threads_per_core {
                    let cpu_index = u32::try_from(pcpus.len()).unwrap_or(u32::MAX);
                    pcpus.push(PcpuPlace {
                        cpu_index,
                        thread_index,
                        core_index,
                        socket_index,
                        node_index,
                    });
                }
            }
        }
        pcpus
    }

    /// The node of core `core_index` of socket `socket_index` (see the module doc).
    fn node_of_core(&self, socket_index: u32, core_index: u32) -> u32 {
        if self.node_count <= self.sockets {
            let sockets_per_node = self.sockets / self.node_count;
            return socket_index / sockets_per_node;
        }
        let nodes_per_socket = self.node_count / self.sockets;
        let in_socket =
            u64::from(core_index) * u64::from(nodes_per_socket) / u64::from(self.cores_per_socket);
        let node_index = socket_index * nodes_per_socket
            + u32::try_from(in_socket).expect("a node within a socket is below k");
        assert!(node_index < self.node_count);
        node_index
    }
}

/// The SLIT matrix as a graph; an empty matrix means the default distances.
fn distance_graph(
    node_count: u32,
    matrix: &[Vec<u32>],
) -> Result<DiGraphMap<u32, u32>, TopologyError> {
    let shape_error = TopologyError::DistanceShape { node_count };
    let rows = usize::try_from(node_count).map_err(|_| shape_error.clone())?;
    if !matrix.is_empty() && (matrix.len() != rows || matrix.iter().any(|row| row.len() != rows)) {
        return Err(shape_error);
    }
    let mut graph = DiGraphMap::new();
    for from_node in 0..node_count {
        graph.add_node(from_node);
    }
    for (from_node, row_index) in (0..node_count).zip(0usize..) {
        for (to_node, column_index) in (0..node_count).zip(0usize..) {
            let default = if from_node == to_node {
                DISTANCE_LOCAL
            } else {
                DISTANCE_REMOTE_DEFAULT
            };
            let distance = matrix
                .get(row_index)
                .and_then(|row| row.get(column_index))
                .copied()
                .unwrap_or(default);
            graph.add_edge(from_node, to_node, distance);
        }
    }
    Ok(graph)
}

/// RAM per node for an even split of `total_bytes` over `node_count` nodes: each node gets
/// `floor(total / k)` rounded down to 2 MiB and node 0 also takes the remainder
/// (`specs/scenario.md` §4). Empty for zero nodes.
pub fn split_node_memory_bytes(total_bytes: u64, node_count: u32) -> Vec<u64> {
    if node_count == 0 {
        return Vec::new();
    }
    let share_bytes = total_bytes / u64::from(node_count);
    let share_bytes = share_bytes - share_bytes % NODE_MEMORY_ALIGN_BYTES;
    let others_bytes = share_bytes * u64::from(node_count - 1);
    let mut split = vec![share_bytes; usize::try_from(node_count).unwrap_or(0)];
    split[0] = total_bytes - others_bytes;
    assert_eq!(split.iter().sum::<u64>(), total_bytes);
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn spec(sockets: u32, cores: u32, threads: u32, nodes: u32) -> TopologySpec {
        TopologySpec {
            sockets,
            cores_per_socket: cores,
            threads_per_core: threads,
            numa_nodes: nodes,
            distances: Vec::new(),
        }
    }

    fn two_socket_host() -> Topology {
        let mut two = spec(2, 8, 2, 2);
        two.distances = vec![vec![10, 21], vec![21, 10]];
        Topology::new(&two).expect("valid 2 × 8 × 2 topology")
    }

    #[test]
    fn topology_2x8x2_has_32_pcpus_on_two_nodes() {
        let topology = two_socket_host();

        assert_eq!(topology.pcpu_count(), 32);
        assert_eq!(topology.node_count(), 2);
    }

    #[test]
    fn topology_2x8x2_numbers_siblings_adjacently() {
        let topology = two_socket_host();

        // cpu 19 = ((1 × 8) + 1) × 2 + 1: socket 1, core 1, thread 1.
        let place = topology.pcpu(19).copied();

        assert_eq!(
            place,
            Some(PcpuPlace {
                cpu_index: 19,
                thread_index: 1,
                core_index: 1,
                socket_index: 1,
                node_index: 1,
            })
        );
        assert_eq!(topology.siblings_of(19), vec![18, 19]);
    }

    #[test]
    fn topology_2x8x2_per_socket_nodes_hold_their_socket_cpus() {
        let topology = two_socket_host();

        let node0 = topology.cpus_of_node(0);
        let node1 = topology.cpus_of_node(1);

        assert_eq!(node0, (0..16).collect::<Vec<u32>>());
        assert_eq!(node1, (16..32).collect::<Vec<u32>>());
    }

    #[test]
    fn topology_2x8x2_distance_reads_slit_matrix() {
        let topology = two_socket_host();

        assert_eq!(topology.distance(0, 0), Some(10));
        assert_eq!(topology.distance(0, 1), Some(21));
        assert_eq!(topology.distance(1, 0), Some(21));
        assert_eq!(topology.distance(0, 2), None);
    }

    #[test]
    fn topology_2x8x2_split_into_four_nodes_uses_core_ranges() {
        // Two nodes per socket: cores 0-3 and 4-7 of each socket (8 pCPUs each).
        let topology = Topology::new(&spec(2, 8, 2, 4)).expect("valid SNC-2 topology");

        assert_eq!(topology.cpus_of_node(1), (8..16).collect::<Vec<u32>>());
        assert_eq!(topology.pcpu(16).map(|place| place.node_index), Some(2));
    }

    #[test]
    fn topology_2_sockets_single_node_puts_all_on_node0() {
        let topology = Topology::new(&spec(2, 8, 2, 1)).expect("valid single-node topology");

        assert_eq!(topology.cpus_of_node(0).len(), 32);
    }

    #[test]
    fn topology_1x4x1_has_four_cpus_on_node0_with_default_distance() {
        let topology = Topology::new(&spec(1, 4, 1, 1)).expect("valid 1 × 4 × 1 topology");

        assert_eq!(topology.cpus_of_node(0), vec![0, 1, 2, 3]);
        assert_eq!(topology.pcpu(3).map(|place| place.core_index), Some(3));
        assert_eq!(topology.siblings_of(2), vec![2]);
        assert_eq!(topology.distance(0, 0), Some(DISTANCE_LOCAL));
    }

    #[test]
    fn topology_default_distances_are_20_off_diagonal() {
        let topology = Topology::new(&spec(2, 2, 1, 2)).expect("valid topology");

        assert_eq!(topology.distance(1, 0), Some(DISTANCE_REMOTE_DEFAULT));
        assert_eq!(topology.distance_graph().edge_count(), 4);
    }

    #[test]
    fn topology_three_nodes_on_two_sockets_is_rejected() {
        let result = Topology::new(&spec(2, 8, 2, 3));

        assert_eq!(
            result.err(),
            Some(TopologyError::NodeCount {
                node_count: 3,
                sockets: 2
            })
        );
    }

    #[test]
    fn topology_wrong_distance_shape_is_rejected() {
        let mut bad = spec(2, 8, 2, 2);
        bad.distances = vec![vec![10, 21]];

        let result = Topology::new(&bad);

        assert_eq!(
            result.err(),
            Some(TopologyError::DistanceShape { node_count: 2 })
        );
    }

    #[test]
    fn topology_above_nr_cpus_is_rejected() {
        // 64 × 64 × 1 = 4096 > NR_CPUS (4095).
        let result = Topology::new(&spec(64, 64, 1, 64));

        assert_eq!(
            result.err(),
            Some(TopologyError::PcpuCount { pcpu_count: 4096 })
        );
    }

    #[test]
    fn split_node_memory_bytes_even_split_is_exact() {
        let split = split_node_memory_bytes(128 * GIB, 2);

        assert_eq!(split, vec![64 * GIB, 64 * GIB]);
    }

    #[test]
    fn split_node_memory_bytes_remainder_goes_to_node0() {
        // 3 GiB + 3 MiB over 2 nodes: a share is 1.5 GiB + 1.5 MiB, rounded down to 2 MiB
        // gives 1.5 GiB; node 0 takes the other 1.5 GiB + 3 MiB.
        let split = split_node_memory_bytes(3 * GIB + 3 * MIB, 2);

        assert_eq!(split, vec![3 * GIB / 2 + 3 * MIB, 3 * GIB / 2]);
    }

    #[test]
    fn split_node_memory_bytes_zero_nodes_is_empty() {
        let split = split_node_memory_bytes(GIB, 0);

        assert!(split.is_empty());
    }
}
