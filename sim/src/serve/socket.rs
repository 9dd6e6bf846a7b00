//! The unix socket side of `xensim serve`: bind, then one thread polls the listener and
//! every client, cuts what each client sent into whole requests, hands them to the
//! session in arrival order and writes xenstored's output back (spec `xenstore-io.md`
//! §1.6, §1.7; Xen: tools/xenstore/xenstored_posix.c and the socket half of
//! xenstored_core.c).
//!
//! Clients are numbered in accept order from 1. A client that hangs up becomes
//! `XsSocketClosed`; one the core drops (a protocol violation) is closed here after its
//! pending output is written. Reading from a client pauses while more than
//! [`CLIENT_OUT_BYTES_MAX`] of its output is unwritten, as cxenstored stops reading a
//! connection whose output is stuck.
//!
//! # Invariants
//! - The only thing the sockets decide is the order in which requests reach the session,
//!   and the session records that order.
//! - A client number is never reused within a session.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use super::frame::RequestSplitter;
use super::session::ServeSession;
use super::ServeError;
use crate::run::platform::XsOut;

/// Unwritten output above which a client's requests are no longer read.
pub const CLIENT_OUT_BYTES_MAX: usize = 1 << 20;
/// Most clients connected at once; later ones are closed at accept.
pub const CLIENTS_MAX: usize = 4096;
/// Bytes read from one client in one `read`.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// `sun_path` holds 108 bytes including the terminating NUL.
const SOCKET_PATH_BYTES_MAX: usize = 107;
/// How long one poll waits, so a stop signal or `--run`'s clock is seen promptly.
const POLL_TIMEOUT: Duration = Duration::from_millis(20);
const LISTENER: Token = Token(0);

/// One connected client.
#[derive(Debug)]
struct Client {
    stream: UnixStream,
    splitter: RequestSplitter,
    out: Vec<u8>,
    /// The core dropped this client: write what is pending, then close.
    dropping: bool,
    /// Reading stopped (output backlog) before the socket said "would block".
    paused: bool,
}

/// A bound socket and its clients.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    poll: Poll,
    listener: UnixListener,
    clients: BTreeMap<u32, Client>,
    next_client: u32,
    accepted_count: u32,
    /// Clients with output queued since the last flush.
    dirty: BTreeSet<u32>,
    /// The read buffer, reused across reads.
    chunk: Vec<u8>,
}

/// What the poll loop saw by the end of a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopStats {
    /// Clients accepted.
    pub accepted_count: u32,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Socket {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes a stale socket at `path`; refuses anything else there, or a live server.
fn clear_path(path: &Path) -> Result<(), ServeError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io_error(path))
        }
        Ok(_) => Err(ServeError::NotASocket {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => std::fs::create_dir_all(parent).map_err(io_error(parent)),
                None => Ok(()),
            }
        }
        Err(e) => Err(io_error(path)(e)),
    }
}

impl Server {
    /// Binds a unix socket at `path` (mode 0600), replacing a stale socket file.
    pub fn bind(path: &Path) -> Result<Server, ServeError> {
        if path.as_os_str().len() > SOCKET_PATH_BYTES_MAX {
            return Err(ServeError::PathTooLong {
                path: path.to_path_buf(),
                len_bytes: path.as_os_str().len(),
            });
        }
        clear_path(path)?;
        let mut listener = UnixListener::bind(path).map_err(io_error(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error(path))?;
        let poll = Poll::new().map_err(io_error(path))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(io_error(path))?;
        Ok(Server {
            path: path.to_path_buf(),
            poll,
            listener,
            clients: BTreeMap::new(),
            next_client: 1,
            accepted_count: 0,
            dirty: BTreeSet::new(),
            chunk: vec![0u8; READ_CHUNK_BYTES],
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `stop` is set. `clock_ns` gives, for `--run`, the instant the timeline
    /// should have reached (called once per poll round).
    pub fn run(
        &mut self,
        session: &mut ServeSession<'_>,
        stop: &AtomicBool,
        clock_ns: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<LoopStats, ServeError> {
        let mut events = Events::with_capacity(1024);
        let mut ready = BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            let timeout = if ready.is_empty() {
                Some(POLL_TIMEOUT)
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&self.path)(e)),
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept_all()?;
                } else if let Ok(client) = u32::try_from(event.token().0) {
                    ready.insert(client);
                }
            }
            let round: Vec<u32> = std::mem::take(&mut ready).into_iter().collect();
            for client in round {
                self.service(session, client)?;
            }
            ready.extend(self.flush_all());
            if let Some(time_ns) = clock_ns() {
                session.catch_up(time_ns)?;
            }
        }
        Ok(LoopStats {
            accepted_count: self.accepted_count,
        })
    }

    fn accept_all(&mut self) -> Result<(), ServeError> {
        loop {
            let (mut stream, _addr) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A client that vanished between connect and accept: nothing to serve.
                Err(_) => return Ok(()),
            };
            if self.clients.len() >= CLIENTS_MAX {
                continue;
            }
            let number = self.next_client;
            self.next_client = self
                .next_client
                .checked_add(1)
                .ok_or(ServeError::TooManyClients)?;
            self.accepted_count += 1;
            let token = Token(usize::try_from(number).map_err(|_| ServeError::TooManyClients)?);
            self.poll
                .registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .map_err(io_error(&self.path))?;
            let client = Client {
                stream,
                splitter: RequestSplitter::new(),
                out: Vec::new(),
                dropping: false,
                paused: false,
            };
            self.clients.insert(number, client);
        }
    }

    /// Writes what is pending for `number`, then reads and handles what it sent.
    fn service(&mut self, session: &mut ServeSession<'_>, number: u32) -> Result<(), ServeError> {
        let Some(client) = self.clients.get_mut(&number) else {
            return Ok(());
        };
        if write_pending(client) {
            self.close(number);
            return Ok(());
        }
        loop {
            let Some(client) = self.clients.get_mut(&number) else {
                return Ok(());
            };
            if client.dropping {
                return Ok(());
            }
            if client.out.len() > CLIENT_OUT_BYTES_MAX {
                client.paused = true;
                return Ok(());
            }
            client.paused = false;
            let read = match client.stream.read(&mut self.chunk) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => None,
            };
            let Some(n) = read else {
                return self.hangup(session, number);
            };
            client.splitter.push(&self.chunk[..n]);
            self.handle_requests(session, number)?;
            let _resumable = self.flush_all();
        }
    }

    fn handle_requests(
        &mut self,
        session: &mut ServeSession<'_>,
        number: u32,
    ) -> Result<(), ServeError> {
        loop {
            let Some(client) = self.clients.get_mut(&number) else {
                return Ok(());
            };
            if client.dropping {
                return Ok(());
            }
            let Some(request) = client.splitter.next_request() else {
                return Ok(());
            };
            let request = request.to_vec();
            let out = session.request(number, &request)?;
            self.apply(out);
        }
    }

    fn hangup(&mut self, session: &mut ServeSession<'_>, number: u32) -> Result<(), ServeError> {
        self.close(number);
        let out = session.hangup(number)?;
        self.apply(out);
        Ok(())
    }

    /// Queues xenstored's output on its clients (watch events may go to any client).
    fn apply(&mut self, out: Vec<XsOut>) {
        for item in out {
            match item {
                XsOut::Send { client, bytes } => {
                    if let Some(c) = self.clients.get_mut(&client) {
                        c.out.extend_from_slice(&bytes);
                        self.dirty.insert(client);
                    }
                }
                XsOut::Close { client } => {
                    if let Some(c) = self.clients.get_mut(&client) {
                        c.dropping = true;
                        self.dirty.insert(client);
                    }
                }
            }
        }
    }

    /// Writes every client's pending output and closes dropped clients once written.
    /// Returns the paused clients that may read again.
    fn flush_all(&mut self) -> Vec<u32> {
        let mut closing = Vec::new();
        let mut resumable = Vec::new();
        for number in std::mem::take(&mut self.dirty) {
            let Some(client) = self.clients.get_mut(&number) else {
                continue;
            };
            if write_pending(client) {
                closing.push(number);
            } else if !client.out.is_empty() {
                // The socket is full: the client's writable event brings it back.
                continue;
            } else if client.paused {
                resumable.push(number);
            }
        }
        for number in closing {
            self.close(number);
        }
        resumable
    }

    fn close(&mut self, number: u32) {
        if let Some(mut client) = self.clients.remove(&number) {
            let _ = self.poll.registry().deregister(&mut client.stream);
            let _ = client.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Writes as much of `client.out` as the socket takes. True if the client should be
/// closed now: dropped by the core and fully written, or dropped and its socket broken. A
/// live client whose socket broke loses its output; its next read sees the hang-up.
fn write_pending(client: &mut Client) -> bool {
    let mut written = 0;
    let broken = loop {
        if written == client.out.len() {
            break false;
        }
        match client.stream.write(&client.out[written..]) {
            Ok(0) => break true,
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    client.out.drain(..written);
    if broken {
        client.out.clear();
    }
    client.dropping && client.out.is_empty()
}

impl Drop for Server {
    fn drop(&mut self) {
        // The socket file is ours: leave no stale socket behind.
        let _ = std::fs::remove_file(&self.path);
    }
}
