//! The XenStore ring page of one domain (`struct xenstore_domain_interface`,
//! xen/include/public/io/xs_wire.h): a 1 KiB request ring and a 1 KiB response ring with
//! free-running 32-bit indices, and the chunked copies both ends make.
//!
//! The server end follows `readchn`/`writechn`/`domain_can_read`/`domain_can_write` of
//! tools/xenstore/xenstored_domain.c (Xen 4.17); the guest end follows `xb_write`/`xb_read`
//! of Linux drivers/xen/xenbus/xenbus_comms.c. Each end reads both indices once, checks
//! them (`prod - cons <= 1024`, wrapping), copies the contiguous chunk up to the wrap
//! point, then moves only its own index. A bad pair is the other end's fault: the server
//! answers EIO (its caller ignores the connection with `XENSTORE_ERROR_RINGIDX`); the guest
//! resets the ring's indices to 0 as Linux does.
//!
//! The page is guest memory. xensim keeps it beside xenstored's domain record because the
//! memory model holds no page contents; both ends reach it only through this type.
//!
//! # Invariants
//! - For both rings `prod - cons <= XENSTORE_RING_SIZE` (wrapping) whenever an end acted
//!   on them (a guest may write anything; the ends check before use).
//! - Indices never move backwards: between two looks of the checker ([`RingPage::check`])
//!   each index advanced by `0..2^31` (free-running, so wrapping), except across a reset,
//!   which starts a new epoch.
//!
//! `server_features` stays 0: Xen 4.17's C xenstored advertises neither reconnection nor
//! the error field (only oxenstored sets the feature bits); it still writes `error`.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::sched::Violation;

/// Bytes in each of the two rings.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// `connection`: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: a reconnect is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `error`: no error.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

use crate::io::ring_index::check_forward;
pub use crate::io::ring_index::BadIndexes;

/// Which of the four indices (for fault injection and error reports).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RingIndex {
    /// `req_cons` (the server's).
    ReqCons,
    /// `req_prod` (the guest's).
    ReqProd,
    /// `rsp_cons` (the guest's).
    RspCons,
    /// `rsp_prod` (the server's).
    RspProd,
}

/// `MASK_XENSTORE_IDX`.
fn mask(idx: u32) -> usize {
    // Masked to 0..1024: the cast cannot truncate.
    (idx & (XENSTORE_RING_SIZE - 1)) as usize
}

/// `check_indexes` of a 1 KiB ring.
fn check_indexes(cons: u32, prod: u32) -> Result<(), BadIndexes> {
    crate::io::ring_index::check_indexes(cons, prod, XENSTORE_RING_SIZE)
}

/// `get_output_chunk`: where the producer may write next and how much, up to the wrap.
fn output_chunk(cons: u32, prod: u32) -> (usize, u32) {
    let to_wrap = XENSTORE_RING_SIZE - (prod & (XENSTORE_RING_SIZE - 1));
    let free = XENSTORE_RING_SIZE - prod.wrapping_sub(cons);
    (mask(prod), to_wrap.min(free))
}

/// `get_input_chunk`: where the consumer may read next and how much, up to the wrap.
fn input_chunk(cons: u32, prod: u32) -> (usize, u32) {
    let to_wrap = XENSTORE_RING_SIZE - (cons & (XENSTORE_RING_SIZE - 1));
    (mask(cons), to_wrap.min(prod.wrapping_sub(cons)))
}

/// What a guest-side copy did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Copied {
    /// Bytes moved.
    pub bytes: usize,
    /// The end must notify the other over the store event channel.
    pub notify: bool,
}

/// One domain's `xenstore_domain_interface`.
#[derive(Debug)]
pub struct RingPage {
    req: Vec<u8>,
    rsp: Vec<u8>,
    req_cons: u32,
    req_prod: u32,
    rsp_cons: u32,
    rsp_prod: u32,
    /// `server_features`.
    pub server_features: u32,
    /// `connection`.
    pub connection: u32,
    /// `error`: set by xenstored when it stops serving the ring.
    pub error: u32,
    /// Bumped by every reset: the checker compares indices only within an epoch.
    epoch: u32,
    /// A guest scribbled on an index since the last reset: bad pairs are its input, not
    /// a bug of either end, until the ring is reset.
    scribbled: bool,
    /// What the checker saw last: (epoch, [req_cons, req_prod, rsp_cons, rsp_prod]).
    seen: Cell<Option<(u32, [u32; 4])>>,
}

impl Default for RingPage {
    fn default() -> RingPage {
        RingPage::new()
    }
}

impl RingPage {
    /// A zeroed page, as the domain builder leaves it.
    pub fn new() -> RingPage {
        RingPage {
            req: vec![0; XENSTORE_RING_SIZE as usize],
            rsp: vec![0; XENSTORE_RING_SIZE as usize],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: XENSTORE_CONNECTED,
            error: XENSTORE_ERROR_NONE,
            epoch: 0,
            scribbled: false,
            seen: Cell::new(None),
        }
    }

    /// The four indices: `[req_cons, req_prod, rsp_cons, rsp_prod]`.
    pub fn indices(&self) -> [u32; 4] {
        [self.req_cons, self.req_prod, self.rsp_cons, self.rsp_prod]
    }

    /// `domain_conn_reset`: all four indices back to 0 (a new epoch for the checker).
    pub fn reset(&mut self) {
        self.req_cons = 0;
        self.req_prod = 0;
        self.rsp_cons = 0;
        self.rsp_prod = 0;
        self.epoch = self.epoch.wrapping_add(1);
        self.scribbled = false;
    }

    /// A guest scribbling on an index (fault injection; a buggy or hostile guest).
    pub fn poke_index(&mut self, which: RingIndex, value: u32) {
        match which {
            RingIndex::ReqCons => self.req_cons = value,
            RingIndex::ReqProd => self.req_prod = value,
            RingIndex::RspCons => self.rsp_cons = value,
            RingIndex::RspProd => self.rsp_prod = value,
        }
        // The checker must not take a guest's scribble for a bug of either end.
        self.epoch = self.epoch.wrapping_add(1);
        self.scribbled = true;
    }

    /// `domain_can_read`, ring part: requests are waiting.
    pub fn server_can_read(&self) -> bool {
        self.req_cons != self.req_prod
    }

    /// `domain_can_write`: the response ring is not full.
    pub fn server_can_write(&self) -> bool {
        self.rsp_prod.wrapping_sub(self.rsp_cons) != XENSTORE_RING_SIZE
    }

    /// `readchn`: up to `max` request bytes appended to `out`, one contiguous chunk.
    /// Returns the count; the caller notifies the guest when it is non-zero.
    pub fn server_read(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, BadIndexes> {
        let (cons, prod) = (self.req_cons, self.req_prod);
        check_indexes(cons, prod)?;
        let (at, avail) = input_chunk(cons, prod);
        let len = (avail as usize).min(max);
        out.extend_from_slice(&self.req[at..at + len]);
        self.req_cons = cons.wrapping_add(len_u32(len));
        Ok(len)
    }

    /// `writechn`: as much of `data` as the contiguous free chunk takes. Returns the count.
    pub fn server_write(&mut self, data: &[u8]) -> Result<usize, BadIndexes> {
        let (cons, prod) = (self.rsp_cons, self.rsp_prod);
        check_indexes(cons, prod)?;
        let (at, avail) = output_chunk(cons, prod);
        let len = (avail as usize).min(data.len());
        self.rsp[at..at + len].copy_from_slice(&data[..len]);
        self.rsp_prod = prod.wrapping_add(len_u32(len));
        Ok(len)
    }

    /// `xb_write`: copies chunks of `data` until it is all in or the ring is full. A bad
    /// pair resets the request indices (Linux's recovery) and fails.
    pub fn client_write(&mut self, data: &[u8]) -> Result<Copied, BadIndexes> {
        let mut copied = Copied::default();
        while copied.bytes < data.len() {
            let (cons, prod) = (self.req_cons, self.req_prod);
            if let Err(bad) = check_indexes(cons, prod) {
                self.req_cons = 0;
                self.req_prod = 0;
                self.epoch = self.epoch.wrapping_add(1);
                return Err(bad);
            }
            let (at, avail) = output_chunk(cons, prod);
            if avail == 0 {
                break; // Full: Linux sleeps until xenstored consumes.
            }
            let len = (avail as usize).min(data.len() - copied.bytes);
            self.req[at..at + len].copy_from_slice(&data[copied.bytes..copied.bytes + len]);
            copied.bytes += len;
            self.req_prod = prod.wrapping_add(len_u32(len));
            // Linux's test, kept as it is (a plain `<=` on free-running indices).
            copied.notify |= prod <= self.req_cons;
        }
        Ok(copied)
    }

    /// `xb_read`: copies every response byte there is onto `out`. A bad pair resets the
    /// response indices (Linux's recovery) and fails.
    pub fn client_read(&mut self, out: &mut Vec<u8>) -> Result<Copied, BadIndexes> {
        let mut copied = Copied::default();
        loop {
            let (cons, prod) = (self.rsp_cons, self.rsp_prod);
            if cons == prod {
                return Ok(copied);
            }
            if let Err(bad) = check_indexes(cons, prod) {
                self.rsp_cons = 0;
                self.rsp_prod = 0;
                self.epoch = self.epoch.wrapping_add(1);
                return Err(bad);
            }
            let (at, avail) = input_chunk(cons, prod);
            let len = avail as usize;
            out.extend_from_slice(&self.rsp[at..at + len]);
            copied.bytes += len;
            self.rsp_cons = cons.wrapping_add(avail);
            // Linux notifies when the ring was full: xenstored may be waiting for room.
            copied.notify |= prod.wrapping_sub(cons) >= XENSTORE_RING_SIZE;
        }
    }

    /// The ring invariants (module doc), for an unscribbled ring. `who` names the ring in
    /// a violation.
    pub fn check(&self, who: &str, out: &mut Vec<Violation>) {
        let now = self.indices();
        let names = ["req_cons", "req_prod", "rsp_cons", "rsp_prod"];
        for (ring, (cons, prod)) in [("req", (now[0], now[1])), ("rsp", (now[2], now[3]))] {
            if !self.scribbled && check_indexes(cons, prod).is_err() {
                out.push(Violation {
                    invariant: "xs.ring.indexes",
                    detail: format!("{who}: {ring} ring prod {prod} is > 1024 past cons {cons}"),
                });
            }
        }
        if let Some((epoch, before)) = self.seen.get() {
            if epoch == self.epoch {
                check_forward("xs.ring.monotonic", who, names, before, now, out);
            }
        }
        self.seen.set(Some((self.epoch, now)));
    }
}

fn len_u32(len: usize) -> u32 {
    // Chunks are at most XENSTORE_RING_SIZE bytes.
    u32::try_from(len).unwrap_or(XENSTORE_RING_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(page: &RingPage) -> Vec<Violation> {
        let mut v = Vec::new();
        page.check("dom1", &mut v);
        v
    }

    #[test]
    fn bytes_cross_the_wrap_in_order() {
        let mut page = RingPage::new();
        let mut got = Vec::new();
        // Move the indices near the wrap point first.
        let filler = vec![7u8; 1000];
        assert_eq!(page.client_write(&filler).map(|c| c.bytes), Ok(1000));
        assert_eq!(page.server_read(&mut got, usize::MAX), Ok(1000));
        got.clear();
        let data: Vec<u8> = (0u8..100).collect();
        let copied = page.client_write(&data).expect("good ring");
        assert_eq!(copied.bytes, 100);
        assert!(copied.notify, "xenstored had consumed everything");
        // readchn stops at the wrap: 24 bytes, then the other 76.
        assert_eq!(page.server_read(&mut got, usize::MAX), Ok(24));
        assert_eq!(page.server_read(&mut got, usize::MAX), Ok(76));
        assert_eq!(got, data);
        assert!(checked(&page).is_empty());
    }

    #[test]
    fn a_full_ring_takes_no_more_and_notifies_when_drained() {
        let mut page = RingPage::new();
        let big = vec![1u8; 3000];
        assert_eq!(page.server_write(&big), Ok(1024));
        assert!(!page.server_can_write());
        assert_eq!(page.server_write(&big), Ok(0));
        let mut got = Vec::new();
        let copied = page.client_read(&mut got).expect("good ring");
        assert_eq!((copied.bytes, copied.notify), (1024, true));
        assert!(page.server_can_write());
        let copied = page.client_write(&big).expect("good ring");
        assert_eq!(
            copied.bytes, 1024,
            "the request ring fills and the write stops"
        );
    }

    #[test]
    fn bad_indexes_fail_each_end_as_xen_and_linux_do() {
        let mut page = RingPage::new();
        page.poke_index(RingIndex::ReqProd, 5000);
        let mut got = Vec::new();
        assert_eq!(
            page.server_read(&mut got, usize::MAX),
            Err(BadIndexes {
                cons: 0,
                prod: 5000
            })
        );
        assert_eq!(page.indices()[1], 5000, "xenstored leaves the ring alone");
        assert!(matches!(
            page.client_write(b"x"),
            Err(BadIndexes { prod: 5000, .. })
        ));
        assert_eq!(
            page.indices(),
            [0, 0, 0, 0],
            "Linux resets the request ring"
        );
        page.poke_index(RingIndex::RspCons, 3000);
        assert!(matches!(
            page.server_write(b"x"),
            Err(BadIndexes { cons: 3000, .. })
        ));
        assert!(matches!(
            page.client_read(&mut got),
            Err(BadIndexes { cons: 3000, .. })
        ));
        assert_eq!(page.indices(), [0, 0, 0, 0]);
    }

    #[test]
    fn the_checker_sees_bad_pairs_and_backward_moves() {
        let mut page = RingPage::new();
        assert!(checked(&page).is_empty());
        assert_eq!(page.client_write(b"abc").map(|c| c.bytes), Ok(3));
        assert!(checked(&page).is_empty());
        // An index moving back within an epoch is a consumer or producer bug.
        page.req_prod = 1;
        let v = checked(&page);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, "xs.ring.monotonic");
        // A reset starts a new epoch; a guest's scribble is input, not a bug.
        page.reset();
        assert!(checked(&page).is_empty());
        page.poke_index(RingIndex::RspProd, 2000);
        assert!(checked(&page).is_empty());
        // A bad pair an end produced itself is a bug.
        page.reset();
        page.rsp_prod = 2000;
        let v = checked(&page);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, "xs.ring.indexes");
    }

    #[test]
    fn indices_wrap_at_u32() {
        let mut page = RingPage::new();
        page.poke_index(RingIndex::ReqCons, u32::MAX - 3);
        page.poke_index(RingIndex::ReqProd, u32::MAX - 3);
        let data: Vec<u8> = (0u8..10).collect();
        assert_eq!(page.client_write(&data).map(|c| c.bytes), Ok(10));
        assert_eq!(page.indices()[1], 6);
        let mut got = Vec::new();
        while page.server_can_read() {
            page.server_read(&mut got, usize::MAX).expect("good ring");
        }
        assert_eq!(got, data);
        assert!(checked(&page).is_empty());
    }
}
