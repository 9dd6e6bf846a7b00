//! A guest's console ring page (`struct xencons_interface`, xen/include/public/io/console.h)
//! and the two ends that use it: the guest kernel's writer (Linux drivers/tty/hvc/hvc_xen.c,
//! `__write_console`) and xenconsoled's reader in dom0 (tools/console/daemon/io.c,
//! `buffer_append`), which drains `out[]` into a per-domain buffer bounded by the
//! `console/limit` key (`LIBXL_XENCONSOLE_LIMIT`, 1 MiB) with xenconsoled's default
//! overflow rule (`discard_overflowed_data`: keep the first half and the newest bytes).
//!
//! Follows Xen 4.17; spec `xenstore-io.md` §8.5. Same index discipline as the XenStore
//! ring (`xenstore/ring.rs`): free-running u32 indices masked by the buffer size
//! (`MASK_XENCONS_IDX`), each end reads both indices, checks `prod - cons <= size`
//! (wrapping), then moves only its own index.
//!
//! The page is guest memory: a guest may write anything into the indices. A bad pair is
//! ignored by both ends (xenconsoled's `buffer_append` returns without reading; Linux
//! returns `-EINVAL`); xensim additionally logs it in [`Xenconsoled::log`], bounded.
//!
//! # Invariants
//! - For `out` and `in`, `prod - cons <= size` (wrapping) unless a guest scribbled.
//! - Indices never move backwards between two looks of [`ConsolePage::check`] (forward
//!   distance below 2^31), except across a scribble, which starts a new epoch.
//! - A domain's buffer never holds more than `5 * limit / 4` bytes after a drain.
//!
//! xensim leaves out: the `in[]` direction's writer (nobody types into a console: `xl
//! console` in xensim prints and returns), the pty and log file, and xenconsoled's rate
//! limit (30 events per 200 ms per domain).

use alloc::collections::BTreeMap;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::ids::{DomId, EvtchnPort};
use crate::sched::Violation;

/// `sizeof(intf->in)`.
pub const XENCONS_IN_BYTES: u32 = 1024;
/// `sizeof(intf->out)`.
pub const XENCONS_OUT_BYTES: u32 = 2048;
/// `connection`: the backend is connected.
pub const XENCONSOLE_CONNECTED: u8 = 0;
/// `connection`: the page starts disconnected.
pub const XENCONSOLE_DISCONNECTED: u8 = 1;
/// `LIBXL_XENCONSOLE_LIMIT`: the `console/limit` libxl writes, bytes.
pub const XENCONSOLE_LIMIT_BYTES: usize = 1_048_576;
/// Lines xensim keeps of xenconsoled's own log (oldest dropped).
pub const DAEMON_LOG_LINES: usize = 256;

pub use crate::io::ring_index::BadIndexes;
use crate::io::ring_index::{check_forward, check_indexes};

/// Which of the four indices (fault injection).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConsIndex {
    /// `in_cons` (the guest's).
    InCons,
    /// `in_prod` (xenconsoled's).
    InProd,
    /// `out_cons` (xenconsoled's).
    OutCons,
    /// `out_prod` (the guest's).
    OutProd,
}

/// What the guest's write did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GuestWrite {
    /// Bytes placed in `out[]` (fewer than asked when the ring is full).
    pub bytes: usize,
    /// The guest notifies xenconsoled over the console event channel.
    pub notify: bool,
}

/// `MASK_XENCONS_IDX` for a power-of-two `size`.
fn mask(idx: u32, size: u32) -> usize {
    // Masked below `size` (at most 2048): the cast cannot truncate.
    (idx & (size - 1)) as usize
}

/// One domain's `xencons_interface`.
#[derive(Debug)]
pub struct ConsolePage {
    output: Vec<u8>,
    in_cons: u32,
    in_prod: u32,
    out_cons: u32,
    out_prod: u32,
    /// `connection`.
    pub connection: u8,
    /// Bumped by every scribble: the checker compares indices only within an epoch.
    epoch: u32,
    /// A guest scribbled on an index: bad pairs are its input, not a bug of either end.
    scribbled: bool,
    /// What the checker saw last: (epoch, [in_cons, in_prod, out_cons, out_prod]).
    seen: Cell<Option<(u32, [u32; 4])>>,
}

impl Default for ConsolePage {
    fn default() -> ConsolePage {
        ConsolePage::new()
    }
}

impl ConsolePage {
    /// A zeroed page as the domain builder leaves it (disconnected).
    pub fn new() -> ConsolePage {
        ConsolePage {
            output: vec![0; XENCONS_OUT_BYTES as usize],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
            connection: XENCONSOLE_DISCONNECTED,
            epoch: 0,
            scribbled: false,
            seen: Cell::new(None),
        }
    }

    /// `[in_cons, in_prod, out_cons, out_prod]`.
    pub fn indices(&self) -> [u32; 4] {
        [self.in_cons, self.in_prod, self.out_cons, self.out_prod]
    }

    /// A guest scribbling on an index (fault injection; a buggy or hostile guest).
    pub fn poke_index(&mut self, which: ConsIndex, value: u32) {
        match which {
            ConsIndex::InCons => self.in_cons = value,
            ConsIndex::InProd => self.in_prod = value,
            ConsIndex::OutCons => self.out_cons = value,
            ConsIndex::OutProd => self.out_prod = value,
        }
        self.epoch = self.epoch.wrapping_add(1);
        self.scribbled = true;
    }

    /// The guest kernel's `__write_console`: as many bytes of `data` as fit in `out[]`.
    pub fn guest_write(&mut self, data: &[u8]) -> Result<GuestWrite, BadIndexes> {
        let cons = self.out_cons;
        let mut prod = self.out_prod;
        check_indexes(cons, prod, XENCONS_OUT_BYTES)?;
        let mut sent = 0;
        while sent < data.len() && prod.wrapping_sub(cons) < XENCONS_OUT_BYTES {
            self.output[mask(prod, XENCONS_OUT_BYTES)] = data[sent];
            prod = prod.wrapping_add(1);
            sent += 1;
        }
        self.out_prod = prod;
        Ok(GuestWrite {
            bytes: sent,
            notify: sent > 0,
        })
    }

    /// xenconsoled's `buffer_append` ring part: every byte of `out_cons..out_prod` appended
    /// to `out`, then `out_cons` moved. Returns the count (0 = nothing to read, no notify).
    pub fn daemon_read(&mut self, out: &mut Vec<u8>) -> Result<usize, BadIndexes> {
        let mut cons = self.out_cons;
        let prod = self.out_prod;
        check_indexes(cons, prod, XENCONS_OUT_BYTES)?;
        let size = prod.wrapping_sub(cons);
        while cons != prod {
            out.push(self.output[mask(cons, XENCONS_OUT_BYTES)]);
            cons = cons.wrapping_add(1);
        }
        self.out_cons = cons;
        // At most XENCONS_OUT_BYTES.
        Ok(size as usize)
    }

    /// The ring invariants (module doc). `who` names the ring in a violation.
    pub fn check(&self, who: &str, out: &mut Vec<Violation>) {
        let now = self.indices();
        let rings = [
            ("in", now[0], now[1], XENCONS_IN_BYTES),
            ("out", now[2], now[3], XENCONS_OUT_BYTES),
        ];
        for (ring, cons, prod, size) in rings {
            if !self.scribbled && check_indexes(cons, prod, size).is_err() {
                out.push(Violation {
                    invariant: "console.ring.indexes",
                    detail: format!("{who}: {ring} prod {prod} is > {size} past cons {cons}"),
                });
            }
        }
        let names = ["in_cons", "in_prod", "out_cons", "out_prod"];
        if let Some((epoch, before)) = self.seen.get() {
            if epoch == self.epoch {
                check_forward("console.ring.monotonic", who, names, before, now, out);
            }
        }
        self.seen.set(Some((self.epoch, now)));
    }
}

/// xenconsoled's `struct buffer` for one domain, nobody attached (`consumed` stays 0).
#[derive(Debug)]
pub struct ConsoleBuffer {
    data: Vec<u8>,
    max_capacity_bytes: usize,
    /// Bytes dropped by the overflow rule so far.
    pub discarded_bytes: u64,
}

impl ConsoleBuffer {
    /// An empty buffer bounded by `max_capacity_bytes` (`console/limit`, > 0).
    pub fn new(max_capacity_bytes: usize) -> ConsoleBuffer {
        assert!(max_capacity_bytes > 0, "xensim bounds every console buffer");
        ConsoleBuffer {
            data: Vec::new(),
            max_capacity_bytes,
            discarded_bytes: 0,
        }
    }

    /// What the buffer holds, oldest first (what `xl console` prints).
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    /// The end of `buffer_append`: with `discard_overflowed_data`, once past `5/4` of the
    /// limit the middle goes (`data[max/2..max]`), keeping the start and the newest bytes.
    fn trim(&mut self) {
        let max = self.max_capacity_bytes;
        if self.data.len() > 5 * max / 4 {
            let dropped = max - max / 2;
            self.data.drain(max / 2..max);
            self.discarded_bytes += dropped as u64;
        }
    }

    /// Invariant: at most `5 * limit / 4` bytes held.
    pub fn check(&self, who: &str, out: &mut Vec<Violation>) {
        if self.data.len() > 5 * self.max_capacity_bytes / 4 {
            out.push(Violation {
                invariant: "console.buffer.bound",
                detail: format!(
                    "{who}: {} bytes buffered, limit {}",
                    self.data.len(),
                    self.max_capacity_bytes
                ),
            });
        }
    }
}

/// One guest's console as xenconsoled and the guest share it.
#[derive(Debug)]
pub struct DomConsole {
    /// The shared page.
    pub page: ConsolePage,
    /// xenconsoled's buffer of what it read.
    pub buffer: ConsoleBuffer,
    /// When the guest kernel started (first unpause; its printk clock's 0), ns.
    pub boot_ns: Option<i64>,
    /// xenconsoled's end of the console channel in dom0 (`con->local_port`), bound
    /// interdomain to [`DomConsole::remote_port`]; `None` before the bind, if it failed,
    /// and once the domain died (`shutdown_domain` closed it).
    pub local_port: Option<EvtchnPort>,
    /// The guest's port from `~/console/port` (`con->remote_port`), while bound.
    pub remote_port: Option<EvtchnPort>,
}

/// xenconsoled in dom0: every guest's console, and its own log.
#[derive(Debug, Default)]
pub struct Xenconsoled {
    consoles: BTreeMap<DomId, DomConsole>,
    log: VecDeque<String>,
}

impl Xenconsoled {
    /// No consoles yet.
    pub fn new() -> Xenconsoled {
        Xenconsoled::default()
    }

    /// `domain_create_ring` on a new domain: the page is mapped and marked connected (the
    /// caller binds the event channel and records it in [`DomConsole::local_port`]).
    pub fn connect(&mut self, dom: DomId, limit_bytes: usize) {
        let mut page = ConsolePage::new();
        page.connection = XENCONSOLE_CONNECTED;
        let buffer = ConsoleBuffer::new(limit_bytes);
        self.consoles.insert(
            dom,
            DomConsole {
                page,
                buffer,
                boot_ns: None,
                local_port: None,
                remote_port: None,
            },
        );
    }

    /// The domain is gone (`cleanup_domain`).
    pub fn remove(&mut self, dom: DomId) {
        self.consoles.remove(&dom);
    }

    /// The console of `dom`, if xenconsoled has one.
    pub fn console(&self, dom: DomId) -> Option<&DomConsole> {
        self.consoles.get(&dom)
    }

    /// Every console, by domain.
    pub fn consoles(&self) -> impl Iterator<Item = (&DomId, &DomConsole)> {
        self.consoles.iter()
    }

    /// The console of `dom` for the guest end or fault injection.
    pub fn console_mut(&mut self, dom: DomId) -> Option<&mut DomConsole> {
        self.consoles.get_mut(&dom)
    }

    /// The guest of `dom` writes `data` to its console (`hvc_xen`). A bad ring drops the
    /// write (Linux's `-EINVAL`) and is logged. Returns what the write did.
    pub fn guest_write(&mut self, dom: DomId, data: &[u8]) -> GuestWrite {
        let Some(con) = self.consoles.get_mut(&dom) else {
            return GuestWrite::default();
        };
        match con.page.guest_write(data) {
            Ok(w) => w,
            Err(bad) => {
                self.push_log(format!(
                    "d{}: guest console write: illegal ring indices cons {} prod {}",
                    dom.raw(),
                    bad.cons,
                    bad.prod
                ));
                GuestWrite::default()
            }
        }
    }

    /// xenconsoled handles the console event of `dom` (`handle_ring_read` →
    /// `buffer_append`). Returns the bytes drained; xenconsoled notifies the guest when
    /// it is non-zero. Bad indices are ignored, as xenconsoled does, and logged.
    pub fn drain(&mut self, dom: DomId) -> usize {
        let Some(con) = self.consoles.get_mut(&dom) else {
            return 0;
        };
        match con.page.daemon_read(&mut con.buffer.data) {
            Ok(n) => {
                con.buffer.trim();
                n
            }
            Err(bad) => {
                self.push_log(format!(
                    "d{}: console ring indices cons {} prod {} out of range, ignored",
                    dom.raw(),
                    bad.cons,
                    bad.prod
                ));
                0
            }
        }
    }

    /// xenconsoled's own log lines, oldest first (bounded by [`DAEMON_LOG_LINES`]).
    pub fn log(&self) -> impl Iterator<Item = &str> {
        self.log.iter().map(String::as_str)
    }

    /// Adds a line to xenconsoled's own log (bounded).
    pub fn note(&mut self, line: String) {
        self.push_log(line);
    }

    fn push_log(&mut self, line: String) {
        if self.log.len() == DAEMON_LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    /// Every console's invariants.
    pub fn check(&self, out: &mut Vec<Violation>) {
        for (dom, con) in &self.consoles {
            let who = format!("d{} console", dom.raw());
            con.page.check(&who, out);
            con.buffer.check(&who, out);
        }
        if self.log.len() > DAEMON_LOG_LINES {
            out.push(Violation {
                invariant: "console.log.bound",
                detail: format!("{} log lines", self.log.len()),
            });
        }
    }
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
