//! The scheduler-facing toolstack operations: cpupools (`xl cpupool-*`) and scheduler
//! parameters (`xl sched-*`), their errors, and their pinned canonical encoding.
//!
//! Follows tools/libs/light/libxl_cpupool.c (create, destroy, cpuadd, cpuremove,
//! movedomain), tools/libs/light/libxl_sched.c (`libxl_domain_sched_params_set`,
//! `libxl_vcpu_sched_params_set[_all]`, `libxl_sched_credit2_params_set`) and the errnos of
//! xen/common/sched/cpupool.c (`cpupool_do_sysctl`). The operations themselves are in
//! `ops.rs`'s [`ToolstackOp`]; this file keeps their bodies small and codec-tested.
//!
//! # Invariants
//! - `decode(encode(op)) == op` for every operation (tested below).

use alloc::string::String;
use alloc::vec::Vec;

use crate::cpumask::CpuMask;
use crate::encode::{DecodeError, Decoder, Encoder, FieldSink};
use crate::ids::{PoolId, VcpuId};
use crate::sched::params::{DomParams, PoolParams, VcpuParams};
use crate::sched::SchedKind;
use crate::toolstack::ops::ToolstackOp;

/// Why a cpupool hypercall (or libxl's check before it) failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoolError {
    /// `-EBUSY`: the pool still has domains or pCPUs, or removing its last pCPU would
    /// strand a live domain.
    Busy,
    /// libxl refused `cpupool-destroy` itself: the pool has domains (`ERROR_INVAL`, no
    /// hypercall and no log line).
    HasDomains,
    /// `-EINVAL`: pCPU 0 cannot leave Pool-0, or the pCPU does not exist.
    Invalid,
    /// `-ENODEV`: the pCPU is not free (cpu add), or the pool has no pCPU (domain create).
    NoDevice,
    /// `-ENOENT`: no such pool, or (move) the target pool has no pCPU.
    NotFound,
    /// `-EADDRNOTAVAIL`: the pCPU is not in this pool.
    NotInPool,
    /// `-ENOSPC`: `2 * nr_cpu_ids` pools exist already.
    NoSpace,
    /// `-EPERM`: the caller's own domain (dom0) cannot be moved
    /// (`rcu_lock_remote_domain_by_id`).
    NotPermitted,
}

impl PoolError {
    /// The negative errno Xen returns (`HasDomains` is libxl's `ERROR_INVAL`, -6).
    pub const fn errno(self) -> i32 {
        match self {
            PoolError::Busy => -16,
            PoolError::HasDomains => -6,
            PoolError::Invalid => -22,
            PoolError::NoDevice => -19,
            PoolError::NotFound => -2,
            PoolError::NotInPool => -99,
            PoolError::NoSpace => -28,
            PoolError::NotPermitted => -1,
        }
    }

    /// Stable code for the encoding.
    const fn code(self) -> u8 {
        match self {
            PoolError::Busy => 0,
            PoolError::HasDomains => 1,
            PoolError::Invalid => 2,
            PoolError::NoDevice => 3,
            PoolError::NotFound => 4,
            PoolError::NotInPool => 5,
            PoolError::NoSpace => 6,
            PoolError::NotPermitted => 7,
        }
    }

    /// Decodes [`PoolError::code`].
    pub const fn from_code(code: u8) -> Option<PoolError> {
        Some(match code {
            0 => PoolError::Busy,
            1 => PoolError::HasDomains,
            2 => PoolError::Invalid,
            3 => PoolError::NoDevice,
            4 => PoolError::NotFound,
            5 => PoolError::NotInPool,
            6 => PoolError::NoSpace,
            7 => PoolError::NotPermitted,
            _ => return None,
        })
    }
}

const _: () = assert!(matches!(
    PoolError::from_code(PoolError::NotPermitted.code()),
    Some(PoolError::NotPermitted)
));

/// Tags 7.. of [`ToolstackOp`]'s encoding (1..=6 are in `ops.rs`).
pub(crate) const TAG_CPUPOOL_CREATE: u8 = 7;
const TAG_CPUPOOL_DESTROY: u8 = 8;
const TAG_CPUPOOL_CPU_ADD: u8 = 9;
const TAG_CPUPOOL_CPU_REMOVE: u8 = 10;
const TAG_CPUPOOL_MIGRATE: u8 = 11;
const TAG_SCHED_DOM: u8 = 12;
const TAG_SCHED_VCPU: u8 = 13;
pub(crate) const TAG_SCHED_POOL: u8 = 14;

/// Appends the encoding of a scheduler-facing operation; false for the other operations.
pub(crate) fn encode(op: &ToolstackOp, out: &mut Vec<u8>) -> bool {
    let mut e = Encoder::new(out);
    match op {
        ToolstackOp::CpupoolCreate { name, sched, cpus } => {
            e.u8(TAG_CPUPOOL_CREATE).str(name).u32(sched.sched_id());
            mask(&mut e, cpus);
        }
        ToolstackOp::CpupoolDestroy { pool } => {
            e.u8(TAG_CPUPOOL_DESTROY).u32(pool.0);
        }
        ToolstackOp::CpupoolCpuAdd { pool, cpus } => {
            e.u8(TAG_CPUPOOL_CPU_ADD).u32(pool.0);
            mask(&mut e, cpus);
        }
        ToolstackOp::CpupoolCpuRemove { pool, cpus } => {
            e.u8(TAG_CPUPOOL_CPU_REMOVE).u32(pool.0);
            mask(&mut e, cpus);
        }
        ToolstackOp::CpupoolMigrate { dom, pool } => {
            e.u8(TAG_CPUPOOL_MIGRATE).dom(*dom).u32(pool.0);
        }
        ToolstackOp::SchedDomParams { dom, params } => {
            e.u8(TAG_SCHED_DOM).dom(*dom);
            dom_params(&mut e, params);
        }
        ToolstackOp::SchedVcpuParams { dom, vcpus, params } => {
            e.u8(TAG_SCHED_VCPU).dom(*dom);
            match vcpus {
                Some(ids) => {
                    e.u8(1).u32(count(ids.len()));
                    for id in ids {
                        e.u32(id.raw());
                    }
                }
                None => {
                    e.u8(0);
                }
            }
            e.u32(count(params.len()));
            for p in params {
                e.u32(p.period_us).u32(p.budget_us).bool(p.extratime);
            }
        }
        ToolstackOp::SchedPoolParams { pool, params } => {
            e.u8(TAG_SCHED_POOL).u32(pool.0);
            match params {
                PoolParams::Credit2 { ratelimit_us } => e.u8(0).u32(*ratelimit_us),
                PoolParams::Rtds => e.u8(1),
                PoolParams::Null => e.u8(2),
            };
        }
        _ => return false,
    }
    true
}

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn mask(e: &mut Encoder<'_>, m: &CpuMask) {
    e.u32(m.width()).u32(m.weight());
    for cpu in m.iter() {
        e.pcpu(cpu);
    }
}

fn dom_params(e: &mut Encoder<'_>, params: &DomParams) {
    match params {
        DomParams::Credit2 { weight, cap } => e.u8(0).u16(*weight).u16(*cap),
        DomParams::Rtds {
            period_us,
            budget_us,
        } => e.u8(1).u32(*period_us).u32(*budget_us),
        DomParams::Null => e.u8(2),
    };
}

/// Most vCPUs one `SchedVcpuParams` may name (`HVM_MAX_VCPUS`).
const VCPU_LIST_MAX: u32 = crate::limits::MAX_VIRT_CPUS;

/// Reads a scheduler-facing operation whose tag `tag` was already read.
pub(crate) fn decode(tag: u8, d: &mut Decoder<'_>) -> Result<ToolstackOp, DecodeError> {
    Ok(match tag {
        TAG_CPUPOOL_CREATE => {
            let name: String = d.str()?;
            let id = d.u32()?;
            let sched = SchedKind::ALL
                .into_iter()
                .find(|k| k.sched_id() == id)
                .ok_or_else(|| d.error("a XEN_SCHEDULER_* id"))?;
            let cpus = decode_mask(d)?;
            ToolstackOp::CpupoolCreate { name, sched, cpus }
        }
        TAG_CPUPOOL_DESTROY => ToolstackOp::CpupoolDestroy {
            pool: PoolId(d.u32()?),
        },
        TAG_CPUPOOL_CPU_ADD => ToolstackOp::CpupoolCpuAdd {
            pool: PoolId(d.u32()?),
            cpus: decode_mask(d)?,
        },
        TAG_CPUPOOL_CPU_REMOVE => ToolstackOp::CpupoolCpuRemove {
            pool: PoolId(d.u32()?),
            cpus: decode_mask(d)?,
        },
        TAG_CPUPOOL_MIGRATE => ToolstackOp::CpupoolMigrate {
            dom: d.dom()?,
            pool: PoolId(d.u32()?),
        },
        TAG_SCHED_DOM => ToolstackOp::SchedDomParams {
            dom: d.dom()?,
            params: decode_dom_params(d)?,
        },
        TAG_SCHED_VCPU => decode_vcpu_params(d)?,
        TAG_SCHED_POOL => {
            let pool = PoolId(d.u32()?);
            let params = match d.u8()? {
                0 => PoolParams::Credit2 {
                    ratelimit_us: d.u32()?,
                },
                1 => PoolParams::Rtds,
                2 => PoolParams::Null,
                _ => return Err(d.error("a pool parameter tag")),
            };
            ToolstackOp::SchedPoolParams { pool, params }
        }
        _ => return Err(d.error("a toolstack operation tag")),
    })
}

fn decode_dom_params(d: &mut Decoder<'_>) -> Result<DomParams, DecodeError> {
    Ok(match d.u8()? {
        0 => DomParams::Credit2 {
            weight: d.u16()?,
            cap: d.u16()?,
        },
        1 => DomParams::Rtds {
            period_us: d.u32()?,
            budget_us: d.u32()?,
        },
        2 => DomParams::Null,
        _ => return Err(d.error("a domain parameter tag")),
    })
}

fn bounded_len(d: &mut Decoder<'_>) -> Result<u32, DecodeError> {
    let len = d.u32()?;
    if len > VCPU_LIST_MAX {
        return Err(d.error("at most HVM_MAX_VCPUS entries"));
    }
    Ok(len)
}

fn decode_vcpu_params(d: &mut Decoder<'_>) -> Result<ToolstackOp, DecodeError> {
    let dom = d.dom()?;
    let vcpus = match d.u8()? {
        0 => None,
        _ => {
            let len = bounded_len(d)?;
            let mut ids = Vec::new();
            for _ in 0..len {
                ids.push(VcpuId::new(d.u32()?).ok_or_else(|| d.error("a vCPU id"))?);
            }
            Some(ids)
        }
    };
    let len = bounded_len(d)?;
    let mut params = Vec::new();
    for _ in 0..len {
        params.push(VcpuParams {
            period_us: d.u32()?,
            budget_us: d.u32()?,
            extratime: d.bool()?,
        });
    }
    Ok(ToolstackOp::SchedVcpuParams { dom, vcpus, params })
}

fn decode_mask(d: &mut Decoder<'_>) -> Result<CpuMask, DecodeError> {
    let width = d.u32()?;
    if width > crate::limits::NR_CPUS {
        return Err(d.error("a cpumask width up to NR_CPUS"));
    }
    let mut m = CpuMask::empty(width);
    for _ in 0..d.u32()? {
        let cpu = d.pcpu()?;
        if cpu.raw() >= width {
            return Err(d.error("a pCPU inside the mask width"));
        }
        m.set(cpu);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use alloc::string::String;
    use alloc::vec::Vec;

    use crate::cpumask::CpuMask;
    use crate::encode::Decoder;
    use crate::ids::{DomId, PcpuId, PoolId, VcpuId};
    use crate::sched::params::{DomParams, PoolParams, VcpuParams};
    use crate::sched::SchedKind;
    use crate::toolstack::ops::ToolstackOp;

    fn round_trip(op: &ToolstackOp) -> ToolstackOp {
        let mut bytes = Vec::new();
        op.encode(&mut bytes);
        let mut d = Decoder::new(&bytes);
        let back = ToolstackOp::decode(&mut d).expect("own encoding decodes");
        assert_eq!(d.finish(), Ok(()), "no trailing bytes");
        back
    }

    fn mask(cpus: &[u32]) -> CpuMask {
        let mut m = CpuMask::empty(8);
        for c in cpus {
            m.set(PcpuId::new(*c).expect("cpu id"));
        }
        m
    }

    fn dom(raw: u16) -> DomId {
        DomId::new(raw).expect("domid")
    }

    #[test]
    fn cpupool_ops_round_trip() {
        let ops = [
            ToolstackOp::CpupoolCreate {
                name: String::from("rt"),
                sched: SchedKind::Rtds,
                cpus: mask(&[2, 3]),
            },
            ToolstackOp::CpupoolDestroy { pool: PoolId(4) },
            ToolstackOp::CpupoolCpuAdd {
                pool: PoolId(1),
                cpus: mask(&[5]),
            },
            ToolstackOp::CpupoolCpuRemove {
                pool: PoolId(1),
                cpus: mask(&[]),
            },
            ToolstackOp::CpupoolMigrate {
                dom: dom(3),
                pool: PoolId(2),
            },
        ];
        for op in &ops {
            assert_eq!(&round_trip(op), op);
        }
    }

    #[test]
    fn sched_param_ops_round_trip() {
        let vcpu = |n| VcpuId::new(n).expect("vcpu id");
        let rt = VcpuParams {
            period_us: 10_000,
            budget_us: 4_000,
            extratime: true,
        };
        let ops = [
            ToolstackOp::SchedDomParams {
                dom: dom(1),
                params: DomParams::Credit2 {
                    weight: 512,
                    cap: 50,
                },
            },
            ToolstackOp::SchedDomParams {
                dom: dom(1),
                params: DomParams::Rtds {
                    period_us: 100,
                    budget_us: 50,
                },
            },
            ToolstackOp::SchedVcpuParams {
                dom: dom(2),
                vcpus: None,
                params: alloc::vec![rt],
            },
            ToolstackOp::SchedVcpuParams {
                dom: dom(2),
                vcpus: Some(alloc::vec![vcpu(0), vcpu(1)]),
                params: alloc::vec![
                    rt,
                    VcpuParams {
                        extratime: false,
                        ..rt
                    }
                ],
            },
            ToolstackOp::SchedPoolParams {
                pool: PoolId(0),
                params: PoolParams::Credit2 { ratelimit_us: 500 },
            },
            ToolstackOp::SchedPoolParams {
                pool: PoolId(3),
                params: PoolParams::Null,
            },
        ];
        for op in &ops {
            assert_eq!(&round_trip(op), op);
        }
    }

    #[test]
    fn unknown_scheduler_id_is_a_decode_error() {
        let mut bytes = Vec::new();
        ToolstackOp::CpupoolCreate {
            name: String::from("p"),
            sched: SchedKind::Null,
            cpus: mask(&[1]),
        }
        .encode(&mut bytes);
        // Tag, then the name (u32 length + 1 byte), then the scheduler id: make it 5 (credit).
        bytes[6] = 5;
        let decoded = ToolstackOp::decode(&mut Decoder::new(&bytes));
        assert!(decoded.err().is_some(), "scheduler id 5 must not decode");
    }
}
