//! Wire requests: checks every request goes through, argument parsing per message type,
//! and the reply each handler queues.
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`process_message`, `wire_funcs[]`,
//! `handle_input`, the `do_*` argument checks) and the handlers in xenstored_domain.c,
//! xenstored_transaction.c, xenstored_watch.c and xenstored_control.c.
//!
//! # Invariants
//! - Every request on a live connection gets exactly one reply, with its `req_id` and
//!   `tx_id`, typed as the request or `XS_ERROR`, queued after any watch event the request
//!   caused on the same connection and before the initial event of a new watch.
//! - A connection that sent a header with `len > 4096` is ignored from then on.

use alloc::format;
use alloc::vec::Vec;

use super::perms::{parse_perm, Perm};
use super::wire::{self, atou, count_strings, onearg, split_strings, Frame, MsgType};
use super::{Verdict, XenStore, XsError};
use crate::ids::{XsConnId, XsTxId};

/// What a handler answers: a reply payload, or the ack plus a watch's initial event.
enum Reply {
    Payload(Vec<u8>),
    WatchAdded {
        path: alloc::string::String,
        token: Vec<u8>,
    },
}

fn ok() -> Result<Reply, XsError> {
    Ok(Reply::Payload(b"OK\0".to_vec()))
}

impl XenStore {
    /// Bytes from `conn`'s transport: every whole frame is handled in order. After a
    /// protocol error the connection is ignored and nothing more is read.
    pub fn feed(&mut self, conn: XsConnId, bytes: &[u8]) -> Verdict {
        let Some(k) = self.conns.get_mut(&conn) else {
            return Verdict::Disconnect { ring_error: 1 };
        };
        if k.ignored {
            return Verdict::Disconnect { ring_error: 3 };
        }
        k.decoder.feed(bytes);
        loop {
            let Some(k) = self.conns.get_mut(&conn) else {
                return Verdict::Disconnect { ring_error: 1 };
            };
            match k.decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Verdict::Disconnect { ring_error } = self.handle(conn, &frame) {
                        return Verdict::Disconnect { ring_error };
                    }
                }
                Ok(None) => return Verdict::Continue,
                Err(e) => {
                    self.ignore_connection(conn);
                    return Verdict::Disconnect {
                        ring_error: e.ring_error(),
                    };
                }
            }
        }
    }

    /// One request frame from `conn`; the reply (and any events) are queued.
    pub fn handle(&mut self, conn: XsConnId, frame: &Frame) -> Verdict {
        let Some(k) = self.conns.get(&conn) else {
            return Verdict::Disconnect { ring_error: 1 };
        };
        if k.ignored {
            return Verdict::Disconnect { ring_error: 3 };
        }
        self.requests_handled = self.requests_handled.wrapping_add(1);
        let len_ok = frame.header.len as usize == frame.payload.len();
        if !len_ok || frame.payload.len() > wire::XENSTORE_PAYLOAD_MAX {
            self.ignore_connection(conn);
            return Verdict::Disconnect { ring_error: 3 };
        }
        let h = frame.header;
        let reply = match self.process(conn, frame) {
            Ok(Reply::Payload(p)) => {
                let t = frame.msg_type().unwrap_or(MsgType::Error);
                Frame::reply(&h, t, p)
            }
            Ok(Reply::WatchAdded { path, token }) => {
                self.push_frame(conn, Frame::reply(&h, MsgType::Watch, b"OK\0".to_vec()));
                self.send_event(conn, &path, &token);
                return Verdict::Continue;
            }
            Err(e) => Frame::error(&h, e),
        };
        self.push_frame(conn, reply);
        Verdict::Continue
    }

    /// `ignore_connection`: stop serving, drop watches, transactions and queued output.
    pub(super) fn ignore_connection(&mut self, conn: XsConnId) {
        self.drop_conn_state(conn);
        if let Some(k) = self.conns.get_mut(&conn) {
            k.ignored = true;
            k.out.clear();
            k.ring_out.clear();
            k.ring_out_used = 0;
        }
    }

    /// `process_message`: type, privilege and transaction checks, then the handler.
    fn process(&mut self, conn: XsConnId, frame: &Frame) -> Result<Reply, XsError> {
        let t = match frame.msg_type() {
            Some(MsgType::WatchEvent | MsgType::Error) | None => return Err(XsError::Enosys),
            Some(t) => t,
        };
        let who = self.who(conn).ok_or(XsError::Enoent)?;
        if t.privileged_only() && !who.privileged {
            return Err(XsError::Eacces);
        }
        let tx = if t.ignores_tx_id() {
            None
        } else {
            let tx = XsTxId::new(frame.header.tx_id);
            self.caller(conn, tx)?;
            tx
        };
        let p = frame.payload.as_slice();
        match t {
            MsgType::Read => Ok(Reply::Payload(self.read(conn, tx, one(p)?)?)),
            MsgType::Directory => {
                let c = self.caller(conn, tx)?;
                Ok(Reply::Payload(self.directory_wire(&c, one(p)?)?))
            }
            MsgType::DirectoryPart => {
                let [path, off] = strings::<2>(p, true)?;
                Ok(Reply::Payload(self.directory_part(
                    conn,
                    tx,
                    path,
                    atou(off),
                )?))
            }
            MsgType::GetPerms => {
                let perms = self.get_perms(conn, tx, one(p)?)?;
                Ok(Reply::Payload(super::perms::perms_to_wire(&perms)))
            }
            MsgType::Write => {
                let path = split_strings(p).next().ok_or(XsError::Einval)?;
                self.write(conn, tx, path, &p[path.len() + 1..])?;
                ok()
            }
            MsgType::Mkdir => self.mkdir(conn, tx, one(p)?).and_then(|()| ok()),
            MsgType::Rm => self.rm(conn, tx, one(p)?).and_then(|()| ok()),
            MsgType::SetPerms => self.wire_set_perms(conn, tx, p).and_then(|()| ok()),
            MsgType::Watch => {
                let [path, token] = strings::<2>(p, true)?;
                let (path, token) = self.add_watch(conn, path, token)?;
                Ok(Reply::WatchAdded { path, token })
            }
            MsgType::Unwatch => {
                let [path, token] = strings::<2>(p, true)?;
                self.unwatch(conn, path, token).and_then(|()| ok())
            }
            MsgType::TransactionStart => {
                let id = self.transaction_start(conn, tx)?;
                Ok(Reply::Payload(format!("{}\0", id.raw()).into_bytes()))
            }
            MsgType::TransactionEnd => {
                let commit = match onearg(p) {
                    Some(b"T") => true,
                    Some(b"F") => false,
                    _ => return Err(XsError::Einval),
                };
                self.transaction_end(conn, tx, commit).and_then(|()| ok())
            }
            _ => self.process_domain(conn, t, p),
        }
    }

    /// Domain management, `CONTROL` and `RESET_WATCHES`.
    fn process_domain(&mut self, conn: XsConnId, t: MsgType, p: &[u8]) -> Result<Reply, XsError> {
        match t {
            MsgType::Introduce => {
                let [domid, _gfn, port] = strings::<3>(p, false)?;
                self.introduce_domain(atou(domid), atou(port))?;
                ok()
            }
            MsgType::Release => {
                let domid = onearg_domid(p)?;
                self.release_domain(domid).and_then(|()| ok())
            }
            MsgType::Resume => {
                let domid = onearg_domid(p)?;
                self.resume_domain(domid).and_then(|()| ok())
            }
            MsgType::SetTarget => {
                let [domid, target] = strings::<2>(p, false)?;
                self.set_target(atou(domid), atou(target))
                    .and_then(|()| ok())
            }
            MsgType::GetDomainPath => {
                let domid = atou(one(p)?);
                Ok(Reply::Payload(
                    format!("/local/domain/{domid}\0").into_bytes(),
                ))
            }
            MsgType::IsDomainIntroduced => {
                let yes = self.is_domain_introduced(atou(one(p)?));
                Ok(Reply::Payload(if yes { b"T\0" } else { b"F\0" }.to_vec()))
            }
            MsgType::ResetWatches => self.reset_watches(conn).and_then(|()| ok()),
            MsgType::Control => {
                if wire::string_len_at(p, 0) == 0 {
                    return Err(XsError::Einval);
                }
                let args: Vec<&[u8]> = split_strings(p).collect();
                self.control(&args).map(Reply::Payload)
            }
            _ => Err(XsError::Enosys),
        }
    }

    /// `do_set_perms` argument handling: count, quota, then parse.
    fn wire_set_perms(
        &mut self,
        conn: XsConnId,
        tx: Option<XsTxId>,
        p: &[u8],
    ) -> Result<(), XsError> {
        let n = count_strings(p);
        if n < 2 {
            return Err(XsError::Einval);
        }
        let who = self.who(conn).ok_or(XsError::Enoent)?;
        let max = self.cfg.quotas.perms_count_max as usize;
        if !who.privileged && max != 0 && n - 1 > max {
            return Err(XsError::Enospc);
        }
        let mut it = split_strings(p);
        let path = it.next().ok_or(XsError::Einval)?;
        let perms: Vec<Perm> = it.map(parse_perm).collect::<Result<_, _>>()?;
        self.set_perms(conn, tx, path, &perms)
    }
}

/// `onearg`, as `EINVAL` when malformed.
fn one(p: &[u8]) -> Result<&[u8], XsError> {
    onearg(p).ok_or(XsError::Einval)
}

/// `onearg_domain`'s parsing: domid 0 (or junk) is `EINVAL`.
fn onearg_domid(p: &[u8]) -> Result<u32, XsError> {
    match atou(one(p)?) {
        0 => Err(XsError::Einval),
        d => Ok(d),
    }
}

/// The first `N` strings; `exact` demands exactly `N` NULs (`get_strings(...) != N`),
/// otherwise at least `N`.
fn strings<const N: usize>(p: &[u8], exact: bool) -> Result<[&[u8]; N], XsError> {
    let n = count_strings(p);
    if n < N || (exact && n != N) {
        return Err(XsError::Einval);
    }
    let mut out: [&[u8]; N] = [&[]; N];
    for (slot, s) in out.iter_mut().zip(split_strings(p)) {
        *slot = s;
    }
    Ok(out)
}
