//! xl's cpu-list syntax (`specs/schedulers.md` §6.1): `all`, `N`, `N-M`, `^N`, `^N-M`,
//! `node:N`, `nodes:N-M`, `^node:N`, comma-separated, applied left to right from an empty set.
//!
//! Follows tools/xl/xl_parse.c (`parse_range`, `update_cpumap_range`, `cpurange_parse`).
//! Parsing gives an AST independent of any host; [`CpuList::resolve`] turns it into a
//! [`CpuMask`] for one host.
//!
//! # Invariants
//! - Every item of a parsed list has `lo <= hi`.
//! - A resolved mask never names a pCPU the host does not have.
//!
//! Left out on purpose: xl silently ignores CPUs past the host's last one
//! (`libxl_bitmap_set` drops them); xensim reports them, because a scenario naming a CPU
//! the host does not have is a mistake, not a portable config.

use std::fmt;

use hypervisor_model::cpumask::CpuMask;
use hypervisor_model::ids::PcpuId;

/// What an item's numbers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemUnit {
    /// pCPU ids.
    Cpus,
    /// NUMA node ids (`node:` / `nodes:`).
    Nodes,
}

/// The range of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRange {
    /// `all`.
    All,
    /// `N` or `N-M` (inclusive).
    Range {
        /// First id.
        lo: u32,
        /// Last id (≥ `lo`).
        hi: u32,
    },
}

/// One comma-separated item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuListItem {
    /// `^`: remove instead of add.
    pub negate: bool,
    /// CPUs or nodes.
    pub unit: ItemUnit,
    /// Which ids.
    pub range: ItemRange,
    /// Byte offset of the item in the text.
    pub offset_bytes: usize,
}

/// A parsed cpu list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList {
    /// Items in order.
    pub items: Vec<CpuListItem>,
}

/// A bad cpu list, with xl's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuListError {
    /// Byte offset of the offending item in the text.
    pub offset_bytes: usize,
    /// The message.
    pub message: String,
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CpuListError {}

/// The host facts a cpu list resolves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCpus {
    /// NUMA node of each pCPU, indexed by pCPU id.
    pub node_of_cpu: Vec<u32>,
}

impl HostCpus {
    /// Number of pCPUs.
    pub fn pcpu_count(&self) -> u32 {
        u32::try_from(self.node_of_cpu.len()).unwrap_or(u32::MAX)
    }

    /// Number of NUMA nodes (highest node id + 1).
    pub fn node_count(&self) -> u32 {
        self.node_of_cpu.iter().max().map_or(0, |n| n + 1)
    }
}

/// `parse_range`: `N` or `N-M`, decimal, `M >= N`.
fn parse_range(text: &str) -> Option<(u32, u32)> {
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            (hi >= lo).then_some((lo, hi))
        }
        None => number(text).map(|n| (n, n)),
    }
}

impl CpuList {
    /// Parses xl's cpu-list syntax. Empty items (`"0,,1"`) are skipped, as `strtok` does.
    pub fn parse(text: &str) -> Result<CpuList, CpuListError> {
        let mut items = Vec::new();
        let mut offset_bytes = 0;
        for raw in text.split(',') {
            let item_offset = offset_bytes;
            offset_bytes += raw.len() + 1;
            if raw.is_empty() {
                continue;
            }
            let mut rest = raw;
            let negate = rest.starts_with('^');
            rest = rest.strip_prefix('^').unwrap_or(rest);
            let unit = if let Some(r) = rest
                .strip_prefix("node:")
                .or_else(|| rest.strip_prefix("nodes:"))
            {
                rest = r;
                ItemUnit::Nodes
            } else {
                ItemUnit::Cpus
            };
            let range = if rest == "all" {
                if negate {
                    return Err(CpuListError {
                        offset_bytes: item_offset,
                        message: "Can't combine \"^\" and \"all\".".to_string(),
                    });
                }
                ItemRange::All
            } else {
                let Some((lo, hi)) = parse_range(rest) else {
                    return Err(CpuListError {
                        offset_bytes: item_offset,
                        message: format!("Invalid pcpu range: {rest}."),
                    });
                };
                ItemRange::Range { lo, hi }
            };
            items.push(CpuListItem {
                negate,
                unit,
                range,
                offset_bytes: item_offset,
            });
        }
        if items.is_empty() {
            return Err(CpuListError {
                offset_bytes: 0,
                message: "empty cpu list (it would leave no pCPU)".to_string(),
            });
        }
        Ok(CpuList { items })
    }

    /// The mask this list names on `host`, applying items left to right.
    pub fn resolve(&self, host: &HostCpus) -> Result<CpuMask, CpuListError> {
        let width = host.pcpu_count();
        let mut mask = CpuMask::empty(width);
        for item in &self.items {
            let selected = item_mask(item, host)?;
            mask = if item.negate {
                mask.and_not(&selected)
            } else {
                mask.or(&selected)
            };
        }
        Ok(mask)
    }
}

fn item_mask(item: &CpuListItem, host: &HostCpus) -> Result<CpuMask, CpuListError> {
    let width = host.pcpu_count();
    let (lo, hi) = match item.range {
        ItemRange::All => return Ok(CpuMask::full(width)),
        ItemRange::Range { lo, hi } => (lo, hi),
    };
    let out_of_host = |what: &str, id: u32, count: u32| CpuListError {
        offset_bytes: item.offset_bytes,
        message: format!(
            "{what} {id} is not on this host (it has {count} {what}s, 0-{})",
            count.saturating_sub(1)
        ),
    };
    let mut mask = CpuMask::empty(width);
    match item.unit {
        ItemUnit::Cpus => {
            if hi >= width {
                return Err(out_of_host("cpu", hi, width));
            }
            for cpu in lo..=hi {
                mask.set(pcpu(cpu));
            }
        }
        ItemUnit::Nodes => {
            let nodes = host.node_count();
            if hi >= nodes {
                return Err(out_of_host("node", hi, nodes));
            }
            for (cpu, node) in (0..width).zip(&host.node_of_cpu) {
                if (lo..=hi).contains(node) {
                    mask.set(pcpu(cpu));
                }
            }
        }
    }
    Ok(mask)
}

fn pcpu(cpu: u32) -> PcpuId {
    PcpuId::new(cpu).expect("cpu below the host's pCPU count is a valid PcpuId")
}

#[cfg(test)]
mod tests {
    use super::{CpuList, HostCpus};

    /// 8 pCPUs, 0-3 on node 0 and 4-7 on node 1.
    fn host() -> HostCpus {
        HostCpus {
            node_of_cpu: vec![0, 0, 0, 0, 1, 1, 1, 1],
        }
    }

    fn cpus(text: &str) -> Vec<u32> {
        CpuList::parse(text)
            .and_then(|l| l.resolve(&host()))
            .expect("test list resolves")
            .iter()
            .map(|c| c.raw())
            .collect()
    }

    #[test]
    fn range_with_exclusion_applies_left_to_right() {
        assert_eq!(cpus("0-7,^3"), [0, 1, 2, 4, 5, 6, 7]);
        assert_eq!(cpus("^3,0-4"), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn node_items_expand_to_node_cpus() {
        assert_eq!(cpus("node:1"), [4, 5, 6, 7]);
        assert_eq!(cpus("nodes:0-1,^node:0"), [4, 5, 6, 7]);
        assert_eq!(cpus("all,^node:1,7"), [0, 1, 2, 3, 7]);
    }

    #[test]
    fn negated_all_is_rejected_with_xl_message() {
        let error = CpuList::parse("0,^all").expect_err("^all is invalid");
        assert_eq!(error.message, "Can't combine \"^\" and \"all\".");
        assert_eq!(error.offset_bytes, 2);
    }

    #[test]
    fn reversed_range_is_invalid_pcpu_range() {
        let error = CpuList::parse("5-2").expect_err("reversed");
        assert_eq!(error.message, "Invalid pcpu range: 5-2.");
        CpuList::parse("1-").expect_err("must be rejected");
        CpuList::parse("x").expect_err("must be rejected");
    }

    #[test]
    fn cpu_outside_host_is_rejected() {
        let list = CpuList::parse("0,8").expect("syntax ok");
        let error = list.resolve(&host()).expect_err("cpu 8 missing");
        assert_eq!(
            error.message,
            "cpu 8 is not on this host (it has 8 cpus, 0-7)"
        );
        assert_eq!(error.offset_bytes, 2);
    }
}
