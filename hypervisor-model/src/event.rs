//! Core inputs: everything that can make the core act. The platform hands them over one at
//! a time through `Hypervisor::handle`; the sim records each one in the replay trace before
//! handing it over, so a run can be re-driven from its trace alone.

use alloc::vec::Vec;

use crate::domain::ShutdownReason;
use crate::encode::{DecodeError, Decoder, Encoder, FieldSink};
use crate::ids::{BackWorkId, DomId, DriverWorkId, Gfn, PcpuId, PoolId, VcpuRef, XsWorkId};
use crate::io::vbd::{GuestIo, IoOp};
use crate::io::vif::{NetPacket, HEADER_BYTES};
use crate::platform::MapAccess;
use crate::toolstack::ops::{decode_reason, JobId, ToolstackOp};

/// One input to the core.
#[derive(Clone, PartialEq, Eq, Debug)]
// The toolstack variant carries `CpuMask`s, which keep up to 1024 pCPUs inline so that
// scheduler decisions never allocate; an input is built once and handled by reference.
#[allow(clippy::large_enum_variant)]
pub enum CoreInput {
    /// A pCPU's scheduler timer fired.
    TimerExpired {
        /// The pCPU.
        pcpu: PcpuId,
    },
    /// Bytes from a XenStore unix-socket client (serve mode); the first data of a client
    /// number opens its connection (privileged, as a dom0 process).
    XsSocketData {
        /// The platform's client number.
        client: u32,
        /// What the client wrote.
        bytes: Vec<u8>,
    },
    /// A XenStore socket client hung up.
    XsSocketClosed {
        /// The platform's client number.
        client: u32,
    },
    /// A pool scheduler's own timer fired (`Platform::set_pool_timer`).
    PoolTimer {
        /// The pool.
        pool: PoolId,
    },
    /// An IPI (SCHEDULE_SOFTIRQ) reached a pCPU.
    Softirq {
        /// The pCPU.
        pcpu: PcpuId,
    },
    /// The guest on a running vCPU blocked (SCHEDOP_block / HLT).
    VcpuBlock {
        /// The vCPU.
        vcpu: VcpuRef,
    },
    /// An event (timer VIRQ, I/O completion) woke a blocked vCPU.
    VcpuWake {
        /// The vCPU.
        vcpu: VcpuRef,
    },
    /// The guest on a running vCPU yielded (SCHEDOP_yield).
    VcpuYield {
        /// The vCPU.
        vcpu: VcpuRef,
    },
    /// The guest called SCHEDOP_shutdown.
    GuestShutdown {
        /// The domain.
        dom: DomId,
        /// Its reason.
        reason: ShutdownReason,
    },
    /// A toolstack (xl) operation starts.
    Toolstack {
        /// Its id (unique for the run).
        job: JobId,
        /// The operation.
        op: ToolstackOp,
    },
    /// dom0 ran xenstored's work item `item` to its end (`Platform::xenstored_work`): the
    /// replies and watch events it holds go out.
    XenstoredDone {
        /// The item (always the oldest unfinished one).
        item: XsWorkId,
    },
    /// A split driver's reaction to a watch event is due (`Platform::defer_driver`).
    DriverWork {
        /// The reaction.
        work: DriverWorkId,
    },
    /// A deferred toolstack step is due (`Platform::defer_toolstack`).
    ToolstackContinue {
        /// The job.
        job: JobId,
    },
    /// The guest on a vCPU hands its kernel's blkfront a disk I/O for vbd `vdev`.
    BlkSubmit {
        /// The submitting vCPU.
        vcpu: VcpuRef,
        /// The vbd's `virtual-device` number.
        vdev: u32,
        /// The I/O.
        io: GuestIo,
        /// The last of a batch (blk-mq's `bd->last`): blkfront pushes the ring (and
        /// notifies if asked to) only then; earlier ones wait in its queue.
        last: bool,
    },
    /// A `disk-error` fault: blkback answers the next `count` requests of `dom`'s vbd
    /// `vdev` with `BLKIF_RSP_ERROR`, as if the disk had failed them.
    BlkFault {
        /// The frontend domain.
        dom: DomId,
        /// The vbd's `virtual-device` number.
        vdev: u32,
        /// Requests to fail.
        count: u32,
    },
    /// The guest kernel of `vcpu`'s domain prints `text` (lines without printk's time
    /// prefix) to its console.
    ConsoleWrite {
        /// The vCPU whose kernel prints.
        vcpu: VcpuRef,
        /// The bytes.
        text: Vec<u8>,
    },
    /// dom0 ran blkback's work item `item` (`Platform::backend_work`).
    BackendWorkDone {
        /// The item (always blkback's oldest unfinished one).
        item: BackWorkId,
    },
    /// A guest's kernel tells its balloon driver the pages it cannot give up (its
    /// non-swappable memory): at boot, and after it OOM-killed its workload (`oom_kill`,
    /// the trace's `guest.oom_kill`).
    GuestMemFloor {
        /// The domain.
        dom: DomId,
        /// Pages inflation may not go below.
        floor_pages: u64,
        /// The guest has just OOM-killed its workload.
        oom_kill: bool,
    },
    /// A guest access on a running vCPU found no EPT translation, or one that does not
    /// allow it (EXIT_REASON_EPT_VIOLATION).
    EptViolation {
        /// The vCPU.
        vcpu: VcpuRef,
        /// The guest frame accessed.
        gfn: Gfn,
        /// The attempted access (read, write, fetch).
        access: MapAccess,
    },
    /// The disk completed command `tag` (`Platform::disk_submit`); a READ carries the
    /// stamps of the sectors read.
    DiskDone {
        /// The command's tag.
        tag: u64,
        /// False if the device failed it.
        ok: bool,
        /// READ: one stamp per sector.
        data: Vec<u64>,
    },
    /// The guest's stack on a vCPU hands netfront a frame for vif `devid`.
    NetSend {
        /// The sending vCPU.
        vcpu: VcpuRef,
        /// The vif's device id.
        devid: u32,
        /// The frame.
        packet: NetPacket,
        /// The last of a batch: netfront pushes the TX ring only then.
        last: bool,
    },
    /// The bridge hands netback a frame for `dom`'s vif `devid` (`Platform::net_transmit`
    /// of another vif, the host's NIC or the backend's stack).
    NetDeliver {
        /// The frontend domain.
        dom: DomId,
        /// Its vif.
        devid: u32,
        /// The frame.
        packet: NetPacket,
    },
    /// The `lost-interrupt` fault: the next `count` notifications to `dom`'s `port` are
    /// lost before the port goes pending (scenario spec §7.1).
    LostInterrupt {
        /// The receiving domain.
        dom: DomId,
        /// Its port.
        port: u32,
        /// Notifications to lose.
        count: u32,
    },
}

impl CoreInput {
    /// Appends the pinned canonical encoding of this input.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let CoreInput::Toolstack { job, op } = self {
            Encoder::new(out).u8(7).u32(job.0);
            op.encode(out);
            return;
        }
        let written = self.encode_fields(&mut Encoder::new(out));
        debug_assert!(written, "only a toolstack input is left to `encode`");
    }

    /// Writes the canonical encoding of this input through any [`FieldSink`] (a fixed
    /// window too), the same bytes as [`Self::encode`]; false, and nothing written, for a
    /// `Toolstack` input, whose operation encodes only into a growing buffer. Inlined into
    /// each caller, as `TraceEvent::encode_fields` is, so a fixed window's offsets are
    /// constants.
    #[inline(always)]
    pub fn encode_fields<E: FieldSink>(&self, e: &mut E) -> bool {
        match self {
            CoreInput::TimerExpired { pcpu } => {
                e.u8(1).pcpu(*pcpu);
            }
            CoreInput::Softirq { pcpu } => {
                e.u8(2).pcpu(*pcpu);
            }
            CoreInput::VcpuBlock { vcpu } => {
                e.u8(3).vcpu(*vcpu);
            }
            CoreInput::VcpuWake { vcpu } => {
                e.u8(4).vcpu(*vcpu);
            }
            CoreInput::VcpuYield { vcpu } => {
                e.u8(5).vcpu(*vcpu);
            }
            CoreInput::GuestShutdown { dom, reason } => {
                e.u8(6).dom(*dom).u8(reason.code());
            }
            CoreInput::Toolstack { .. } => return false,
            CoreInput::ToolstackContinue { job } => {
                e.u8(8).u32(job.0);
            }
            CoreInput::PoolTimer { pool } => {
                e.u8(9).u32(pool.0);
            }
            CoreInput::XsSocketData { client, bytes } => {
                e.u8(10).u32(*client).bytes(bytes);
            }
            CoreInput::XsSocketClosed { client } => {
                e.u8(11).u32(*client);
            }
            CoreInput::XenstoredDone { item } => {
                e.u8(12).u64(item.0);
            }
            CoreInput::DriverWork { work } => {
                e.u8(13).u32(work.0);
            }
            CoreInput::BlkSubmit {
                vcpu,
                vdev,
                io,
                last,
            } => {
                e.u8(14).vcpu(*vcpu).u32(*vdev).u64(io.tag).u8(io.op.code());
                e.u64(io.sector).u32(io.sectors).u64(io.seed).bool(*last);
            }
            CoreInput::BackendWorkDone { item } => {
                e.u8(15).u64(item.0);
            }
            CoreInput::BlkFault { dom, vdev, count } => {
                e.u8(17).dom(*dom).u32(*vdev).u32(*count);
            }
            CoreInput::GuestMemFloor {
                dom,
                floor_pages,
                oom_kill,
            } => {
                e.u8(18).dom(*dom).u64(*floor_pages).bool(*oom_kill);
            }
            CoreInput::ConsoleWrite { vcpu, text } => {
                e.u8(19).vcpu(*vcpu).bytes(text);
            }
            CoreInput::EptViolation { vcpu, gfn, access } => {
                e.u8(20).vcpu(*vcpu).u64(gfn.raw()).u8(access_bits(*access));
            }
            CoreInput::DiskDone { tag, ok, data } => {
                e.u8(16).u64(*tag).bool(*ok);
                e.u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
                for stamp in data {
                    e.u64(*stamp);
                }
            }
            CoreInput::NetSend {
                vcpu,
                devid,
                packet,
                last,
            } => {
                e.u8(21).vcpu(*vcpu).u32(*devid).bool(*last);
                encode_packet(e, packet);
            }
            CoreInput::NetDeliver { dom, devid, packet } => {
                e.u8(22).dom(*dom).u32(*devid);
                encode_packet(e, packet);
            }
            CoreInput::LostInterrupt { dom, port, count } => {
                e.u8(23).dom(*dom).u32(*port).u32(*count);
            }
        }
        true
    }
}

impl CoreInput {
    /// Reads an input back from its canonical encoding (all of `bytes`).
    pub fn decode(bytes: &[u8]) -> Result<CoreInput, DecodeError> {
        let mut d = Decoder::new(bytes);
        let input = match d.u8()? {
            1 => CoreInput::TimerExpired { pcpu: d.pcpu()? },
            2 => CoreInput::Softirq { pcpu: d.pcpu()? },
            3 => CoreInput::VcpuBlock { vcpu: d.vcpu()? },
            4 => CoreInput::VcpuWake { vcpu: d.vcpu()? },
            5 => CoreInput::VcpuYield { vcpu: d.vcpu()? },
            6 => {
                let dom = d.dom()?;
                CoreInput::GuestShutdown {
                    dom,
                    reason: decode_reason(&mut d)?,
                }
            }
            7 => {
                let job = JobId(d.u32()?);
                CoreInput::Toolstack {
                    job,
                    op: ToolstackOp::decode(&mut d)?,
                }
            }
            8 => CoreInput::ToolstackContinue {
                job: JobId(d.u32()?),
            },
            9 => CoreInput::PoolTimer {
                pool: PoolId(d.u32()?),
            },
            10 => {
                let client = d.u32()?;
                CoreInput::XsSocketData {
                    client,
                    bytes: d.bytes()?,
                }
            }
            11 => CoreInput::XsSocketClosed { client: d.u32()? },
            12 => CoreInput::XenstoredDone {
                item: XsWorkId(d.u64()?),
            },
            13 => CoreInput::DriverWork {
                work: DriverWorkId(d.u32()?),
            },
            14 => decode_blk_submit(&mut d)?,
            15 => CoreInput::BackendWorkDone {
                item: BackWorkId(d.u64()?),
            },
            19 => CoreInput::ConsoleWrite {
                vcpu: d.vcpu()?,
                text: d.bytes()?,
            },
            17 => CoreInput::BlkFault {
                dom: d.dom()?,
                vdev: d.u32()?,
                count: d.u32()?,
            },
            18 => CoreInput::GuestMemFloor {
                dom: d.dom()?,
                floor_pages: d.u64()?,
                oom_kill: d.bool()?,
            },
            20 => {
                let vcpu = d.vcpu()?;
                let gfn = Gfn::new(d.u64()?);
                let bits = d.u8()?;
                if bits > 7 {
                    return Err(d.error("access bits (read, write, fetch)"));
                }
                CoreInput::EptViolation {
                    vcpu,
                    gfn,
                    access: access_of_bits(bits),
                }
            }
            16 => {
                let tag = d.u64()?;
                let ok = d.bool()?;
                let count = d.u32()?;
                let mut data = Vec::new();
                for _ in 0..count {
                    data.push(d.u64()?);
                }
                CoreInput::DiskDone { tag, ok, data }
            }
            21 => {
                let vcpu = d.vcpu()?;
                let devid = d.u32()?;
                let last = d.bool()?;
                let packet = decode_packet(&mut d)?;
                CoreInput::NetSend {
                    vcpu,
                    devid,
                    packet,
                    last,
                }
            }
            22 => {
                let dom = d.dom()?;
                let devid = d.u32()?;
                let packet = decode_packet(&mut d)?;
                CoreInput::NetDeliver { dom, devid, packet }
            }
            23 => CoreInput::LostInterrupt {
                dom: d.dom()?,
                port: d.u32()?,
                count: d.u32()?,
            },
            _ => return Err(d.error("a core input tag")),
        };
        d.finish()?;
        Ok(input)
    }
}

/// The exit qualification's access bits: 0 read, 1 write, 2 fetch.
pub fn access_bits(access: MapAccess) -> u8 {
    u8::from(access.read) | u8::from(access.write) << 1 | u8::from(access.execute) << 2
}

/// The access of qualification bits 0..2.
pub fn access_of_bits(bits: u8) -> MapAccess {
    MapAccess {
        read: bits & 1 != 0,
        write: bits & 2 != 0,
        execute: bits & 4 != 0,
    }
}
fn encode_packet<E: FieldSink>(e: &mut E, packet: &NetPacket) {
    let mut header = [0u8; HEADER_BYTES];
    packet.encode(&mut header);
    e.bytes(&header);
}

fn decode_packet(d: &mut Decoder<'_>) -> Result<NetPacket, DecodeError> {
    let header = d.bytes()?;
    NetPacket::decode(&header).ok_or_else(|| d.error("a frame header"))
}

fn decode_blk_submit(d: &mut Decoder<'_>) -> Result<CoreInput, DecodeError> {
    let vcpu = d.vcpu()?;
    let vdev = d.u32()?;
    let tag = d.u64()?;
    let op = IoOp::from_code(d.u8()?).ok_or_else(|| d.error("an I/O op code"))?;
    let io = GuestIo {
        tag,
        op,
        sector: d.u64()?,
        sectors: d.u32()?,
        seed: d.u64()?,
    };
    let last = d.bool()?;
    Ok(CoreInput::BlkSubmit {
        vcpu,
        vdev,
        io,
        last,
    })
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::CoreInput;
    use crate::cpumask::CpuMask;
    use crate::ids::{DomId, PcpuId};
    use crate::toolstack::config::{AffinityCfg, DiskAccess, DiskCfg, DomainConfig, VifCfg};
    use crate::toolstack::ops::{JobId, ToolstackOp};

    fn roundtrip(input: &CoreInput) -> Result<CoreInput, crate::encode::DecodeError> {
        let mut bytes = Vec::new();
        input.encode(&mut bytes);
        CoreInput::decode(&bytes)
    }

    #[test]
    fn create_with_every_config_field_roundtrips() {
        let mut config = DomainConfig::with_defaults(String::from("web"));
        config.cpus = AffinityCfg::PerVcpu(alloc::vec![CpuMask::single(
            8,
            PcpuId::new(3).expect("cpu")
        )]);
        config.pool = Some(String::from("rt"));
        config.vifs.push(VifCfg {
            mac: Some(String::from("00:16:3e:00:00:01")),
            ..VifCfg::default()
        });
        config.disks.push(DiskCfg {
            target: String::from("/dev/vg/web"),
            format: String::from("raw"),
            vdev: String::from("xvda"),
            access: DiskAccess::ReadOnly,
            cdrom: false,
            backend: None,
        });
        let op = ToolstackOp::Create {
            config: Box::new(config),
            uuid: [7; 16],
            paused: true,
        };
        let input = CoreInput::Toolstack { job: JobId(3), op };
        assert_eq!(roundtrip(&input), Ok(input));
    }

    #[test]
    fn destroy_roundtrips() {
        let input = CoreInput::Toolstack {
            job: JobId(9),
            op: ToolstackOp::Destroy { dom: DomId::DOM0 },
        };
        assert_eq!(roundtrip(&input), Ok(input));
    }

    #[test]
    fn xenstored_done_and_driver_work_roundtrip() {
        // Item ids are u64 (a long run queues many items); reaction ids u32.
        let done = CoreInput::XenstoredDone {
            item: crate::ids::XsWorkId(1 << 40),
        };
        let work = CoreInput::DriverWork {
            work: crate::ids::DriverWorkId(7),
        };
        assert_eq!(roundtrip(&done), Ok(done));
        assert_eq!(roundtrip(&work), Ok(work));
    }

    #[test]
    fn blk_inputs_roundtrip() {
        let io = crate::io::vbd::GuestIo {
            tag: 9,
            op: crate::io::vbd::IoOp::Write,
            sector: 2048,
            sectors: 8,
            seed: 77,
        };
        let submit = CoreInput::BlkSubmit {
            vcpu: crate::testing::ids::vcpu(1, 0),
            vdev: 51712,
            io,
            last: false,
        };
        let done = CoreInput::DiskDone {
            tag: 3,
            ok: true,
            data: alloc::vec![1, 2, 3],
        };
        assert_eq!(roundtrip(&submit), Ok(submit));
        assert_eq!(roundtrip(&done), Ok(done));
    }

    #[test]
    fn truncated_input_is_a_decode_error() {
        let mut bytes = Vec::new();
        CoreInput::Softirq {
            pcpu: PcpuId::new(2).expect("cpu"),
        }
        .encode(&mut bytes);
        bytes.pop();
        let error = CoreInput::decode(&bytes).map_err(|e| e.what);
        assert_eq!(error, Err("a u32"));
    }

    #[test]
    fn trailing_bytes_are_a_decode_error() {
        let mut bytes = Vec::new();
        CoreInput::Softirq {
            pcpu: PcpuId::new(2).expect("cpu"),
        }
        .encode(&mut bytes);
        bytes.push(0);
        assert_eq!(
            CoreInput::decode(&bytes).map_err(|e| e.what),
            Err("the end of the record")
        );
    }
}
