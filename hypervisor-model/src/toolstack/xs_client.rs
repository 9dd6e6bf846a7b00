//! The xenstore-* clients as typed commands: what `xenstore-ls`, `-read`, `-list`,
//! `-write`, `-rm` and `-exists` do once their arguments are parsed (the sim parses the
//! command line), their canonical encoding for the trace, and their run against a store
//! through [`crate::xenstore::client`].
//!
//! Follows tools/xenstore/xenstore_client.c of Xen 4.17 (`main`, `perform`): every client
//! is a privileged dom0 process on xenstored's socket.
//!
//! # Invariants
//! - [`XsClientCmd::is_query`] commands change nothing in the store; the others are
//!   toolstack operations and go through the trace.

use alloc::string::String;
use alloc::vec::Vec;

use crate::encode::{DecodeError, Decoder, Encoder, FieldSink};
use crate::xenstore::client::{self, ClientOutput, LsFlags, StoreView};

/// One parsed xenstore-* command line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum XsClientCmd {
    /// `xenstore-ls [-f] [-p] [path]`.
    Ls {
        /// `path` (default `/`).
        path: Option<String>,
        /// `-f`.
        full: bool,
        /// `-p`.
        perms: bool,
    },
    /// `xenstore-read [-p] [-R] key...`.
    Read {
        /// Keys.
        keys: Vec<String>,
        /// `-p`.
        prefix: bool,
        /// `-R`.
        raw: bool,
    },
    /// `xenstore-list [-p] key...`.
    List {
        /// Keys.
        keys: Vec<String>,
        /// `-p`.
        prefix: bool,
    },
    /// `xenstore-exists key...`.
    Exists {
        /// Keys.
        keys: Vec<String>,
    },
    /// `xenstore-write [-R] key value...`.
    Write {
        /// `(key, value)` pairs, values as given on the command line.
        pairs: Vec<(String, Vec<u8>)>,
        /// `-R`.
        raw: bool,
    },
    /// `xenstore-rm [-t] key...`.
    Rm {
        /// Keys.
        keys: Vec<String>,
        /// `-t`.
        tidy: bool,
    },
}

impl XsClientCmd {
    /// Whether the command only reads.
    pub fn is_query(&self) -> bool {
        !matches!(self, XsClientCmd::Write { .. } | XsClientCmd::Rm { .. })
    }

    /// Runs the command against `view`, as the client process would.
    pub fn run(&self, view: &mut dyn StoreView) -> ClientOutput {
        let strs = |keys: &[String]| -> Vec<String> { keys.to_vec() };
        match self {
            XsClientCmd::Ls { path, full, perms } => {
                let flags = LsFlags {
                    full: *full,
                    perms: *perms,
                };
                client::ls(view, path.as_deref(), flags, None)
            }
            XsClientCmd::Read { keys, prefix, raw } => {
                let keys = strs(keys);
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                client::read(view, &refs, *prefix, *raw)
            }
            XsClientCmd::List { keys, prefix } => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                client::list(view, &refs, *prefix)
            }
            XsClientCmd::Exists { keys } => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                client::exists(view, &refs)
            }
            XsClientCmd::Write { pairs, raw } => {
                let refs: Vec<(&str, &[u8])> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                client::write(view, &refs, *raw)
            }
            XsClientCmd::Rm { keys, tidy } => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                client::rm(view, &refs, *tidy)
            }
        }
    }

    /// Number of XenStore requests the command makes at most (for its dom0 time).
    pub fn request_count(&self) -> u32 {
        let n = match self {
            XsClientCmd::Ls { .. } => 1,
            XsClientCmd::Read { keys, .. }
            | XsClientCmd::List { keys, .. }
            | XsClientCmd::Exists { keys }
            | XsClientCmd::Rm { keys, .. } => keys.len(),
            XsClientCmd::Write { pairs, .. } => pairs.len(),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Appends the pinned canonical encoding.
    pub fn encode(&self, e: &mut Encoder<'_>) {
        let list = |e: &mut Encoder<'_>, keys: &[String]| {
            e.u32(u32::try_from(keys.len()).unwrap_or(u32::MAX));
            for key in keys {
                e.str(key);
            }
        };
        match self {
            XsClientCmd::Ls { path, full, perms } => {
                e.u8(1).bool(*full).bool(*perms).bool(path.is_some());
                e.str(path.as_deref().unwrap_or(""));
            }
            XsClientCmd::Read { keys, prefix, raw } => {
                e.u8(2).bool(*prefix).bool(*raw);
                list(e, keys);
            }
            XsClientCmd::List { keys, prefix } => {
                e.u8(3).bool(*prefix);
                list(e, keys);
            }
            XsClientCmd::Exists { keys } => {
                e.u8(4);
                list(e, keys);
            }
            XsClientCmd::Write { pairs, raw } => {
                e.u8(5).bool(*raw);
                e.u32(u32::try_from(pairs.len()).unwrap_or(u32::MAX));
                for (key, value) in pairs {
                    e.str(key).bytes(value);
                }
            }
            XsClientCmd::Rm { keys, tidy } => {
                e.u8(6).bool(*tidy);
                list(e, keys);
            }
        }
    }

    /// Reads a command back from its canonical encoding.
    pub fn decode(d: &mut Decoder<'_>) -> Result<XsClientCmd, DecodeError> {
        fn list(d: &mut Decoder<'_>) -> Result<Vec<String>, DecodeError> {
            let len = d.u32()?;
            if len > KEYS_MAX {
                return Err(d.error("at most 4096 keys"));
            }
            (0..len).map(|_| d.str()).collect()
        }
        Ok(match d.u8()? {
            1 => {
                let (full, perms, has_path) = (d.bool()?, d.bool()?, d.bool()?);
                let text = d.str()?;
                XsClientCmd::Ls {
                    path: has_path.then_some(text),
                    full,
                    perms,
                }
            }
            2 => {
                let (prefix, raw) = (d.bool()?, d.bool()?);
                XsClientCmd::Read {
                    keys: list(d)?,
                    prefix,
                    raw,
                }
            }
            3 => {
                let prefix = d.bool()?;
                XsClientCmd::List {
                    keys: list(d)?,
                    prefix,
                }
            }
            4 => XsClientCmd::Exists { keys: list(d)? },
            5 => {
                let raw = d.bool()?;
                let len = d.u32()?;
                if len > KEYS_MAX {
                    return Err(d.error("at most 4096 pairs"));
                }
                let pairs = (0..len)
                    .map(|_| Ok((d.str()?, d.bytes()?)))
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                XsClientCmd::Write { pairs, raw }
            }
            6 => {
                let tidy = d.bool()?;
                XsClientCmd::Rm {
                    keys: list(d)?,
                    tidy,
                }
            }
            _ => return Err(d.error("a xenstore client tag")),
        })
    }
}

/// Most keys a decoded command may claim (a bound against corrupt lengths).
const KEYS_MAX: u32 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_roundtrips_through_encoding() {
        let cmd = XsClientCmd::Write {
            pairs: alloc::vec![(String::from("/a"), b"x\\ty".to_vec())],
            raw: false,
        };
        let mut bytes = Vec::new();
        cmd.encode(&mut Encoder::new(&mut bytes));
        let decoded = XsClientCmd::decode(&mut Decoder::new(&bytes));
        assert_eq!(decoded, Ok(cmd));
    }

    #[test]
    fn ls_is_a_query_and_rm_is_not() {
        let ls = XsClientCmd::Ls {
            path: None,
            full: true,
            perms: false,
        };
        let rm = XsClientCmd::Rm {
            keys: alloc::vec![String::from("/a")],
            tidy: false,
        };
        assert!(ls.is_query());
        assert!(!rm.is_query());
    }
}
