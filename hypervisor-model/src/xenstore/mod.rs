//! # XenStore: the store daemon of a host (cxenstored, Xen 4.17)
//!
//! [`XenStore`] is one daemon's whole state: the node tree, the connections (unix-socket
//! clients and domain rings), their watches and transactions, the per-domain accounting,
//! and the two special watch nodes. It is a state machine: a caller hands it requests and
//! takes the frames it queued for each connection; it never waits and reads no clock.
//!
//! Follows tools/xenstore/ of Xen 4.17 (`xenstored_core.c`, `xenstored_transaction.c`,
//! `xenstored_watch.c`, `xenstored_domain.c`, `xenstored_control.c`) and
//! xen/include/public/io/xs_wire.h; spec `xenstore-io.md` §1, §2, §5, §9.
//!
//! ## Driving it
//! - Connections: [`XenStore::new`] creates dom0's ring connection
//!   ([`XenStore::dom0_conn`]); [`XenStore::connect_socket`] adds a privileged socket client;
//!   [`XenStore::introduce_domain`] (or a wire `INTRODUCE`) creates a domain's connection.
//! - Wire requests: [`XenStore::handle`] takes one decoded [`Frame`];
//!   [`XenStore::feed`] takes raw bytes from a ring or socket and handles every whole frame.
//!   Replies and watch events are queued per connection, in order; take them with
//!   [`XenStore::take_output`] or [`XenStore::drain_output_bytes`]. cxenstored queues a
//!   watcher's own event before the reply to the request that caused it, and so does this.
//! - Typed requests (toolstack, simulator): [`XenStore::write`], [`XenStore::mkdir`],
//!   [`XenStore::rm`], [`XenStore::set_perms`], [`XenStore::read`], ... act as a request on
//!   the given connection and return the result instead of queuing a reply; watch events
//!   they cause are queued like any other.
//!
//! Module map: [`wire`] (codec), [`path`] (path rules), [`perms`] (permission entries),
//! `tree` (nodes), `txn` (transactions), `access` (node reads/writes inside and outside
//! transactions), `ops` (node requests), `watch` (watches and events), `domain` (domain
//! management and CONTROL), `dispatch` (wire requests), `check` (invariants), [`client`]
//! (xenstore-ls/read/list output).
//!
//! # Invariants
//! - Every existing node's parent exists and lists it exactly once (see `check`).
//! - The global generation counter only grows.
//! - Per-domain node counts equal a recount of owners.
//!
//! Left out on purpose: the memory quota and its soft limit, the `outstanding` flow
//! control and the write rate limit (they stall connections rather than change replies),
//! event timeouts, live update. Rings: [`ring`] is the page of each domain connection;
//! `ring_serve` is xenstored's side of it ([`XenStore::service_ring`]).

pub mod client;
pub mod path;
pub mod perms;
pub mod ring;
pub mod wire;

mod access;
mod check;
mod dispatch;
mod domain;
mod ops;
mod out_queue;
mod path_map;
mod ring_serve;
mod tree;
mod txn;
mod watch;
mod watch_index;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::ids::XsConnId;

pub use perms::{Perm, Who};
pub use tree::Node;
pub use wire::{DecodeError, Frame, FrameDecoder, Header, MsgType};

use txn::Transaction;
use watch::Watch;

/// The errors XenStore reports, as errno names on the wire (`xsd_errors[]` in xs_wire.h).
/// Only the names cxenstored 4.17 actually generates are here.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum XsError {
    /// The reply would exceed the payload limit; also 4.17's watch-quota error.
    E2big,
    /// Permission denied, or a privileged-only request from an unprivileged connection.
    Eacces,
    /// A transaction lost a conflict at commit.
    Eagain,
    /// A transaction start inside a transaction.
    Ebusy,
    /// A watch with the same path and token exists.
    Eexist,
    /// Malformed request, bad path, bad permission string, bad domid.
    Einval,
    /// Internal inconsistency (never expected).
    Eio,
    /// No such node, transaction, watch or domain.
    Enoent,
    /// A failed transaction committed.
    Enomem,
    /// A quota is exceeded.
    Enospc,
    /// Unknown or reply-only message type.
    Enosys,
    /// An unprivileged caller tried to change a node's owner.
    Eperm,
}

impl XsError {
    /// Every error, in `xsd_errors[]` order of the names xensim generates.
    pub const ALL: [XsError; 12] = [
        XsError::E2big,
        XsError::Eacces,
        XsError::Eagain,
        XsError::Ebusy,
        XsError::Eexist,
        XsError::Einval,
        XsError::Eio,
        XsError::Enoent,
        XsError::Enomem,
        XsError::Enospc,
        XsError::Enosys,
        XsError::Eperm,
    ];

    /// The error an `XS_ERROR` payload names (`"EACCES\0"`), `None` for a name xensim
    /// does not generate.
    pub fn from_wire_payload(payload: &[u8]) -> Option<XsError> {
        let name = payload.strip_suffix(b"\0").unwrap_or(payload);
        XsError::ALL
            .into_iter()
            .find(|e| e.wire_name().as_bytes() == name)
    }

    /// The errno name sent in an `XS_ERROR` payload.
    pub const fn wire_name(self) -> &'static str {
        match self {
            XsError::E2big => "E2BIG",
            XsError::Eacces => "EACCES",
            XsError::Eagain => "EAGAIN",
            XsError::Ebusy => "EBUSY",
            XsError::Eexist => "EEXIST",
            XsError::Einval => "EINVAL",
            XsError::Eio => "EIO",
            XsError::Enoent => "ENOENT",
            XsError::Enomem => "ENOMEM",
            XsError::Enospc => "ENOSPC",
            XsError::Enosys => "ENOSYS",
            XsError::Eperm => "EPERM",
        }
    }

    /// glibc's `strerror` text, as the clients print it.
    pub const fn strerror(self) -> &'static str {
        match self {
            XsError::E2big => "Argument list too long",
            XsError::Eacces => "Permission denied",
            XsError::Eagain => "Resource temporarily unavailable",
            XsError::Ebusy => "Device or resource busy",
            XsError::Eexist => "File exists",
            XsError::Einval => "Invalid argument",
            XsError::Eio => "Input/output error",
            XsError::Enoent => "No such file or directory",
            XsError::Enomem => "Cannot allocate memory",
            XsError::Enospc => "No space left on device",
            XsError::Enosys => "Function not implemented",
            XsError::Eperm => "Operation not permitted",
        }
    }
}

/// Per-domain quotas with Xen 4.17's defaults (`quota_*` in xenstored_core.c). They apply
/// to unprivileged connections only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Quotas {
    /// `nodes`: nodes a domain may own (`quota_nb_entry_per_domain`).
    pub nodes_count_max: u32,
    /// `watches`: watches per domain (`quota_nb_watch_per_domain`).
    pub watches_count_max: u32,
    /// `transactions`: open transactions per connection (`quota_max_transaction`).
    pub transactions_count_max: u32,
    /// `outstanding`: requests in flight per domain (reported, not enforced).
    pub outstanding_count_max: u32,
    /// `transaction-nodes`: nodes one transaction may touch (`quota_trans_nodes`).
    pub transaction_nodes_count_max: u32,
    /// `memory`: hard memory quota (reported, not enforced).
    pub memory_bytes_max: u32,
    /// `memory` soft quota (reported, not enforced).
    pub memory_bytes_soft: u32,
    /// `node-size`: bytes of one node record (`quota_max_entry_size`).
    pub node_bytes_max: u32,
    /// `path-max`: path bytes after `/local/domain/<N>/` (`quota_max_path_len`).
    pub path_bytes_max: u32,
    /// `permissions`: entries in one `SET_PERMS` (`quota_nb_perms_per_node`).
    pub perms_count_max: u32,
}

impl Quotas {
    /// Xen 4.17's defaults.
    pub const XEN_4_17: Quotas = Quotas {
        nodes_count_max: 1000,
        watches_count_max: 128,
        transactions_count_max: 10,
        outstanding_count_max: 20,
        transaction_nodes_count_max: 1024,
        memory_bytes_max: 2 * 1024 * 1024 + 512 * 1024,
        memory_bytes_soft: 2 * 1024 * 1024,
        node_bytes_max: 2048,
        path_bytes_max: 2048,
        perms_count_max: 5,
    };
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas::XEN_4_17
    }
}

/// Daemon configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XsConfig {
    /// The quota table.
    pub quotas: Quotas,
    /// Give `@releaseDomain` the extra entry `r32757` (DOMID_ANY) at boot, as upstream does
    /// since 4.22 (spec §2.1); `false` is 4.17's `n0` only.
    pub release_domain_readable_by_all: bool,
}

impl Default for XsConfig {
    fn default() -> XsConfig {
        XsConfig {
            quotas: Quotas::XEN_4_17,
            release_domain_readable_by_all: true,
        }
    }
}

/// What the transport must do with a connection after a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Keep serving it.
    Continue,
    /// A protocol violation: drop a socket client; for a ring, stop serving it and set the
    /// ring's `error` field to the given value (cxenstored's `ignore_connection`).
    Disconnect {
        /// `XENSTORE_ERROR_*` value for the ring's `error` field.
        ring_error: u32,
    },
}

/// Most `CONTROL print` strings kept for the simulator to collect.
pub const CONTROL_PRINTS_MAX: usize = 1024;

/// One connection (`struct connection`).
#[derive(Debug)]
struct Conn {
    /// The domain whose ring this is; `None` for a socket client.
    domid: Option<u32>,
    /// `SET_TARGET`: the domain this one acts for as well.
    target: Option<u32>,
    /// Frames waiting for the transport, in order.
    out: out_queue::OutQueue,
    /// Registered watches, in registration order.
    watches: Vec<Watch>,
    /// Open transactions by id.
    txs: BTreeMap<u32, Transaction>,
    /// `next_transaction_id`.
    next_tx_id: u32,
    /// Stopped after a protocol error (`is_ignored`).
    ignored: bool,
    /// Bytes received but not yet a whole frame.
    decoder: FrameDecoder,
    /// A domain connection's ring page (`None` for sockets), the encoded frame xenstored
    /// is copying into its response ring, and how many of its bytes went.
    ring: Option<ring::RingPage>,
    ring_out: Vec<u8>,
    ring_out_used: usize,
}

impl Conn {
    fn new(domid: Option<u32>) -> Conn {
        Conn {
            domid,
            target: None,
            out: out_queue::OutQueue::default(),
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx_id: 1,
            ignored: false,
            decoder: FrameDecoder::new(),
            ring: domid.map(|_| ring::RingPage::new()),
            ring_out: Vec::new(),
            ring_out_used: 0,
        }
    }
}

/// One domain the store knows (`struct domain`).
#[derive(Clone, Debug)]
struct DomainRec {
    /// Global generation when the record was made (`chk_domain_generation`).
    generation: u64,
    /// `XS_INTRODUCE` done and not released.
    introduced: bool,
    /// Its ring connection while introduced.
    conn: Option<XsConnId>,
    /// Shutdown already reported through `@releaseDomain`.
    shutdown: bool,
    /// Nodes it owns (`nbentry`).
    nodes_count: i64,
    /// Event channel port of its ring.
    port: u32,
}

/// The whole daemon state of one host.
#[derive(Debug)]
pub struct XenStore {
    cfg: XsConfig,
    tree: tree::Tree,
    /// The global generation counter (`generation` in xenstored_transaction.c).
    generation: u64,
    conns: BTreeMap<XsConnId, Conn>,
    next_conn: u32,
    dom0_conn: XsConnId,
    domains: BTreeMap<u32, DomainRec>,
    release_perms: Vec<Perm>,
    introduce_perms: Vec<Perm>,
    log_enabled: bool,
    control_prints: Vec<String>,
    /// Wire requests handled on live connections (frames through [`XenStore::handle`]).
    requests_handled: u64,
    /// Domains whose ring connection got output not yet offered to the ring.
    rings_with_output: BTreeSet<u32>,
    /// Every connection's watches by node, so that a change visits only the connections
    /// that may watch it.
    watch_index: watch_index::WatchIndex,
}

/// The privileged store domain (dom0 in every xensim configuration).
pub const PRIV_DOMID: u32 = 0;
/// `DOMID_SELF`.
pub const DOMID_SELF: u32 = 0x7FF0;

impl XenStore {
    /// A fresh daemon: the initial tree (`/`, `/tool`, `/tool/xenstored`, all `n0`), the
    /// special nodes, and dom0 introduced with its ring connection.
    pub fn new(cfg: XsConfig) -> XenStore {
        let mut release_perms = alloc::vec![Perm::new(PRIV_DOMID, 0)];
        if cfg.release_domain_readable_by_all {
            release_perms.push(Perm::new(perms::DOMID_ANY, perms::PERM_READ));
        }
        let mut xs = XenStore {
            cfg,
            tree: tree::Tree::new(),
            generation: 0,
            conns: BTreeMap::new(),
            next_conn: 0,
            dom0_conn: XsConnId(0),
            domains: BTreeMap::new(),
            release_perms,
            introduce_perms: alloc::vec![Perm::new(PRIV_DOMID, 0)],
            log_enabled: false,
            control_prints: Vec::new(),
            requests_handled: 0,
            rings_with_output: BTreeSet::new(),
            watch_index: watch_index::WatchIndex::default(),
        };
        xs.dom0_conn = xs.introduce_master();
        xs.setup_structure();
        xs
    }

    /// The configuration.
    pub fn config(&self) -> &XsConfig {
        &self.cfg
    }

    /// dom0's ring connection (privileged).
    pub fn dom0_conn(&self) -> XsConnId {
        self.dom0_conn
    }

    /// A new unix-socket client: privileged, acting as the store domain.
    pub fn connect_socket(&mut self) -> XsConnId {
        self.add_conn(None)
    }

    /// The socket client closed: its watches and transactions go, with no events.
    pub fn disconnect(&mut self, conn: XsConnId) {
        if let Some(c) = self.conns.get(&conn) {
            assert!(
                c.domid.is_none(),
                "{conn:?} is a domain ring; release the domain"
            );
            self.drop_conn_state(conn);
            self.conns.remove(&conn);
        }
    }

    /// The connection of an introduced domain.
    pub fn domain_conn(&self, domid: u32) -> Option<XsConnId> {
        self.domains
            .get(&domid)
            .filter(|d| d.introduced)
            .and_then(|d| d.conn)
    }

    /// The domain behind a connection (`None` for sockets and unknown ids).
    pub fn conn_domid(&self, conn: XsConnId) -> Option<u32> {
        self.conns.get(&conn).and_then(|c| c.domid)
    }

    /// Whether the connection exists and still serves requests.
    pub fn is_live(&self, conn: XsConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.ignored)
    }

    /// The next queued frame for `conn`.
    pub fn take_output(&mut self, conn: XsConnId) -> Option<Frame> {
        self.conns.get_mut(&conn).and_then(|c| c.out.pop_front())
    }

    /// Number of frames queued for `conn`.
    pub fn output_count(&self, conn: XsConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.out.len())
    }

    /// Encodes every queued frame of `conn` onto `out` and empties the queue.
    pub fn drain_output_bytes(&mut self, conn: XsConnId, out: &mut Vec<u8>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            for frame in c.out.drain() {
                frame.encode_into(out);
            }
        }
    }

    /// Connections with queued output, in connection order.
    pub fn conns_with_output(&self) -> Vec<XsConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.out.is_empty())
            .map(|(id, _)| *id)
            .collect()
    }

    /// `CONTROL print` strings since the last call, oldest first.
    pub fn take_control_prints(&mut self) -> Vec<String> {
        core::mem::take(&mut self.control_prints)
    }

    /// Wire requests handled so far on live connections (sockets and rings).
    pub fn requests_handled(&self) -> u64 {
        self.requests_handled
    }

    /// The global generation counter.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn add_conn(&mut self, domid: Option<u32>) -> XsConnId {
        let id = XsConnId(self.next_conn);
        self.next_conn = self
            .next_conn
            .checked_add(1)
            .expect("connection ids exhausted");
        let old = self.conns.insert(id, Conn::new(domid));
        assert!(old.is_none(), "connection id {id:?} reused");
        id
    }

    /// `++generation`: the value a modified node or a new transaction gets.
    fn next_generation(&mut self) -> u64 {
        self.generation = self.generation.checked_add(1).expect("generation overflow");
        self.generation
    }

    /// The identity a connection's requests are checked with.
    fn who(&self, conn: XsConnId) -> Option<Who> {
        let c = self.conns.get(&conn)?;
        let domid = c.domid.unwrap_or(PRIV_DOMID);
        Some(Who {
            privileged: domid == PRIV_DOMID,
            domid,
            target: c.target,
        })
    }

    fn push_frame(&mut self, conn: XsConnId, frame: Frame) {
        if let Some(c) = self.conns.get_mut(&conn) {
            assert!(frame.payload.len() <= wire::XENSTORE_PAYLOAD_MAX);
            c.out.push_back(frame);
            self.mark_output(conn);
        }
    }

    /// Domains whose ring connection got output since the last call, in domid order:
    /// xenstored's next turn on each writes it into the ring.
    pub fn take_rings_with_output(&mut self) -> BTreeSet<u32> {
        core::mem::take(&mut self.rings_with_output)
    }

    /// Whether [`XenStore::take_rings_with_output`] has anything.
    pub fn has_rings_with_output(&self) -> bool {
        !self.rings_with_output.is_empty()
    }

    /// Notes that `conn` got output: a domain connection's ring is marked (dom0's too:
    /// its kernel's xenbus talks over a ring as every guest's does).
    fn mark_output(&mut self, conn: XsConnId) {
        if let Some(domid) = self.conns.get(&conn).and_then(|c| c.domid) {
            self.rings_with_output.insert(domid);
        }
    }
}
