//! `xensim serve`: a scenario's XenStore on a unix socket, speaking the real XenStore wire
//! protocol to unmodified clients (`xenstore-ls`, libxenstore, pyxs, `test-xenstore`).
//! Spec: `xenstore-io.md` §1.6 (connecting), §1.7 (execution model).
//!
//! Layers: [`socket`] (bind, the single-threaded poll loop, client numbering and output),
//! [`frame`] (a client's byte stream cut into whole requests), [`session`] (requests into
//! the World at the current virtual time, recorded; replay of a recorded session).
//!
//! Time: the scenario runs to `--at`; each request then advances virtual time by
//! `io.xenstored_request_ns`. Without `--run` nothing else moves. With `--run` the timeline
//! follows the wall clock, one virtual ns per wall ns from the moment the socket opens
//! (requests that arrive faster than that push virtual time ahead of the wall clock, never
//! back). The wall clock only decides *where* between requests the timeline has caught
//! up; each request's virtual time is recorded, and a replay catches up to exactly those
//! instants, so the recorded run replays bit for bit.
//!
//! The core also charges each request as xenstored's CPU work to dom0's vCPU 0 (as for
//! every request, `hypervisor/xenstored.rs`); the reply goes out at once. With a frozen
//! timeline that work waits, unrun, with the rest of the timeline; with `--run` dom0 runs
//! it as the timeline catches up.
//!
//! # Invariants
//! - Socket clients are privileged and act as dom0 (the core's `connect_socket`).
//! - The only nondeterminism is the order of client bytes, which is recorded.

pub mod frame;
pub mod session;
pub mod socket;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::run::RunError;

pub use session::{ServeSession, SessionOptions};
pub use socket::Server;

/// Why a serve session could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another live server answers on the socket path.
    #[error("{path}: a server is already listening on this socket")]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is at the path.
    #[error("{path}: exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The path does not fit a unix socket address.
    #[error("{path}: {len_bytes} bytes; a unix socket path must be at most 107 bytes")]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len_bytes: usize,
    },
    /// The run itself failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Installing the SIGINT/SIGTERM handler failed.
    #[error("installing the SIGINT/SIGTERM handler")]
    Signal(#[source] std::io::Error),
    /// A socket operation failed.
    #[error("{path}")]
    Socket {
        /// The socket path (or its directory).
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Client numbers ran out (2^32 connections in one session).
    #[error("too many client connections in one session")]
    TooManyClients,
}

impl ServeError {
    /// True for errors caused by the command line (exit 2) rather than a failed session.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::InUse { .. }
                | ServeError::NotASocket { .. }
                | ServeError::PathTooLong { .. }
                | ServeError::Socket { .. }
        )
    }
}

/// A flag that SIGINT and SIGTERM set: the poll loop stops at its next round.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, ServeError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(ServeError::Signal)?;
    }
    Ok(stop)
}
