//! xenstored on the host: the [`XenStore`] daemon state and its unix-socket clients.
//!
//! Socket clients are dom0 processes (`xenstore-ls`, libxl, `test-xenstore`), privileged as
//! on Xen. The platform numbers them; the first bytes of a new number open a connection.
//! Whatever xenstored queues for a socket connection (replies, watch events) is written to
//! the platform after each input, in connection order, and traced; each reply is one
//! request of xenstored's work in dom0 (`xenstored.rs`).
//!
//! # Invariants
//! - `xs_clients` maps each open client number to exactly one live socket connection.

use alloc::vec::Vec;

use super::Hypervisor;
use crate::platform::Platform;
use crate::trace::TraceEvent;
use crate::xenstore::{MsgType, Verdict};

impl Hypervisor {
    /// Bytes from socket client `client`.
    pub(crate) fn xs_socket_data<P: Platform + ?Sized>(
        &mut self,
        client: u32,
        bytes: &[u8],
        p: &mut P,
    ) {
        let conn = match self.xs_clients.get(&client) {
            Some(conn) => *conn,
            None => {
                let conn = self.xenstore.connect_socket();
                self.xs_clients.insert(client, conn);
                conn
            }
        };
        let verdict = self.xenstore.feed(conn, bytes);
        self.xs_flush(p);
        if let Verdict::Disconnect { .. } = verdict {
            self.xs_drop(client, p);
            p.xs_socket_close(client);
            p.trace(&TraceEvent::XsSocketDrop { client });
        }
    }

    /// Socket client `client` hung up.
    pub(crate) fn xs_socket_closed<P: Platform + ?Sized>(&mut self, client: u32, p: &mut P) {
        self.xs_drop(client, p);
    }

    fn xs_drop<P: Platform + ?Sized>(&mut self, client: u32, p: &mut P) {
        if let Some(conn) = self.xs_clients.remove(&client) {
            self.xenstore.disconnect(conn);
            self.xs_flush(p);
        }
    }

    /// Writes every socket client's queued output to the platform, in client order. Each
    /// reply answers one request xenstored handled: it is counted as xenstored's work.
    pub(crate) fn xs_flush<P: Platform + ?Sized>(&mut self, p: &mut P) {
        let mut bytes = Vec::new();
        let mut replies: u32 = 0;
        for (client, conn) in &self.xs_clients {
            bytes.clear();
            while let Some(frame) = self.xenstore.take_output(*conn) {
                if frame.msg_type() != Some(MsgType::WatchEvent) {
                    replies = replies.saturating_add(1);
                }
                frame.encode_into(&mut bytes);
            }
            if !bytes.is_empty() {
                p.xs_socket_send(*client, &bytes);
                p.trace(&TraceEvent::XsSocketSend {
                    client: *client,
                    bytes: bytes.clone(),
                });
            }
        }
        self.xsd_count(replies);
    }

    /// The host's XenStore.
    pub fn xenstore(&self) -> &crate::xenstore::XenStore {
        &self.xenstore
    }
}
