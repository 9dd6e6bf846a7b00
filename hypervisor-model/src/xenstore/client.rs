//! What the stock clients print: `xenstore-ls`, `xenstore-read`, `xenstore-list`,
//! `xenstore-write`, `xenstore-rm`, `xenstore-exists`, byte for byte, over any
//! [`StoreView`] (an in-process connection, or a test double).
//!
//! Follows tools/xenstore/xenstore_client.c and xs_lib.c of Xen 4.17 (`do_ls`, `perform`,
//! `sanitise_value`, `unsanitise_value`); spec `xenstore-io.md` §5; checked against
//! `reference/real-xen-4.17-dom0-only-cxenstored.txt`.
//!
//! # Invariants
//! - Every function here is pure over the view: it issues the same requests the client
//!   would, in the same order, and renders stdout, stderr and the exit status.
//!
//! Left out: the clients' transactions and `EAGAIN` retries (they change nothing when one
//! caller runs at a time), usage errors, and `xenstore-watch`/`xenstore-chmod` output.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::perms::Perm;
use super::{XenStore, XsError};
use crate::ids::XsConnId;

/// The requests the clients make.
pub trait StoreView {
    /// `xs_directory`.
    fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError>;
    /// `xs_read`.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError>;
    /// `xs_get_permissions`.
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError>;
    /// `xs_write`.
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError>;
    /// `xs_rm`.
    fn rm(&mut self, path: &str) -> Result<(), XsError>;
}

/// A store seen through one of its connections (a socket client acts as dom0).
#[derive(Debug)]
pub struct ConnView<'a> {
    /// The store.
    pub xs: &'a mut XenStore,
    /// The connection the requests go through.
    pub conn: XsConnId,
}

impl StoreView for ConnView<'_> {
    fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.xs.directory(self.conn, None, path.as_bytes())
    }
    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.xs.read(self.conn, None, path.as_bytes())
    }
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.xs.get_perms(self.conn, None, path.as_bytes())
    }
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.xs.write(self.conn, None, path.as_bytes(), value)
    }
    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.xs.rm(self.conn, None, path.as_bytes())
    }
}

/// What a client run produced.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ClientOutput {
    /// Bytes on stdout.
    pub stdout: Vec<u8>,
    /// Text on stderr.
    pub stderr: String,
    /// Exit status.
    pub exit_code: i32,
}

impl ClientOutput {
    fn fail(mut self, prog: &str, msg: &str) -> ClientOutput {
        self.stderr.push_str(&format!("{prog}: {msg}\n"));
        self.exit_code = 1;
        self
    }
}

/// `sanitise_value`: printable ASCII as is, `\t \n \r \\` escaped, bytes below 8 as three
/// octal digits, every other byte as `\xHH`.
pub fn sanitise_value(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        match b {
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(char::from(b)),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0..=7 => out.push_str(&format!("\\{b:03o}")),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// `unsanitise_value`: the inverse `xenstore-write` applies to its arguments.
pub fn unsanitise_value(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = input.get(i) else {
            // A trailing backslash becomes a NUL byte, as in the C loop.
            out.push(0);
            break;
        };
        i += 1;
        let byte = match c {
            b't' => b'\t',
            b'n' => b'\n',
            b'r' => b'\r',
            b'x' => take_digits(input, &mut i, 2, 16).unwrap_or(b'x'),
            b'0'..=b'7' => {
                i -= 1;
                take_digits(input, &mut i, 3, 8).unwrap_or(c)
            }
            other => other,
        };
        out.push(byte);
    }
    out
}

fn take_digits(input: &[u8], i: &mut usize, max: usize, radix: u32) -> Option<u8> {
    let mut value: u32 = 0;
    let mut n = 0;
    while n < max {
        let Some(d) = input.get(*i).and_then(|&b| char::from(b).to_digit(radix)) else {
            break;
        };
        value = value * radix + d;
        *i += 1;
        n += 1;
    }
    // The C code stores into a char: keep the low byte.
    (n > 0).then(|| value.to_le_bytes()[0])
}

/// `xenstore-ls` options.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LsFlags {
    /// `-f`: full paths, no width limit (unless stdout is a terminal).
    pub full: bool,
    /// `-p`: permissions.
    pub perms: bool,
}

/// `TAG_LEN`: `strlen(" = \"...\"")`.
const TAG_BYTES: i64 = 8;
/// Where `-p` padding stops.
const DESIRED_WIDTH: i64 = 60;

struct Ls {
    max_width: i64,
    desired_width: i64,
    flags: LsFlags,
    out: ClientOutput,
}

/// `xenstore-ls [-f] [-p] [path]`; `tty_cols` is the terminal width when stdout is one.
pub fn ls(
    view: &mut dyn StoreView,
    path: Option<&str>,
    flags: LsFlags,
    tty_cols: Option<u16>,
) -> ClientOutput {
    let mut st = Ls {
        max_width: if flags.full {
            i64::from(i32::MAX / 2)
        } else {
            80
        },
        desired_width: if flags.full { 0 } else { DESIRED_WIDTH },
        flags,
        out: ClientOutput::default(),
    };
    // The terminal width replaces the limit even with -f, as the 4.17 client does.
    if let Some(cols) = tty_cols {
        st.max_width = i64::from(cols) - 2;
    }
    let root = path.unwrap_or("/");
    match st.walk(view, root) {
        Ok(()) => st.out,
        Err(e) => {
            let msg = format!("xs_directory ({root}): {}", e.strerror());
            st.out.fail("xenstore-ls", &msg)
        }
    }
}

impl Ls {
    /// `do_ls`, iteratively: a stack of (directory, children, next child, depth).
    fn walk(&mut self, view: &mut dyn StoreView, root: &str) -> Result<(), XsError> {
        let mut stack = alloc::vec![(String::from(root), view.directory(root)?, 0usize)];
        while let Some((dir, names, next)) = stack.last_mut() {
            let Some(name) = names.get(*next).cloned() else {
                stack.pop();
                continue;
            };
            *next += 1;
            let sep = if dir.ends_with('/') { "" } else { "/" };
            let full = format!("{dir}{sep}{name}");
            let depth = stack.len() - 1;
            self.line(view, &full, &name, depth);
            match view.directory(&full) {
                Ok(children) => stack.push((full, children, 0)),
                Err(XsError::Enoent) => {}
                Err(e) => {
                    let msg = format!("xs_directory ({full}): {}", e.strerror());
                    self.out = core::mem::take(&mut self.out).fail("xenstore-ls", &msg);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn print(&mut self, s: &str) -> i64 {
        self.out.stdout.extend_from_slice(s.as_bytes());
        i64::try_from(s.len()).unwrap_or(i64::MAX)
    }

    fn line(&mut self, view: &mut dyn StoreView, full: &str, name: &str, depth: usize) {
        let mut width: i64 = 0;
        if self.flags.full {
            self.print(full);
        } else {
            for _ in 0..depth {
                width += self.print(" ");
            }
            let shown = truncate(name, self.max_width - TAG_BYTES - width);
            width += self.print(shown);
        }
        match view.read(full) {
            Err(_) => {
                self.print(":\n");
            }
            Ok(value) => self.value(&value, width),
        }
        if self.flags.perms {
            match view.get_perms(full) {
                Ok(perms) => {
                    let list: Vec<String> = perms.iter().map(perm_text).collect();
                    self.print(&format!("  ({})", list.join(",")));
                }
                Err(e) => {
                    let msg = format!("xenstore-ls: \ncould not access permissions for {name}");
                    self.out
                        .stderr
                        .push_str(&format!("{msg}: {}\n", e.strerror()));
                }
            }
        }
        self.print("\n");
    }

    fn value(&mut self, value: &[u8], mut width: i64) {
        let text = sanitise_value(value);
        let raw_len = i64::try_from(value.len()).unwrap_or(i64::MAX);
        if self.max_width < width + raw_len + TAG_BYTES {
            let shown = truncate(&text, self.max_width - TAG_BYTES - width);
            self.print(&format!(" = \"{shown}\\...\""));
            return;
        }
        width += self.print(&format!(" = \"{text}\""));
        if self.flags.perms {
            self.print(" ");
            width += 1;
            while width < self.desired_width.min(self.max_width) {
                self.print(if width & 1 == 1 { "." } else { " " });
                width += 1;
            }
        }
    }
}

/// `%.*s`: at most `max` bytes; a negative precision prints everything.
fn truncate(s: &str, max: i64) -> &str {
    match usize::try_from(max) {
        Ok(n) if n < s.len() => s.get(..n).unwrap_or(s),
        _ => s,
    }
}

fn perm_text(p: &Perm) -> String {
    let mut v = Vec::new();
    p.write_to(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// `xenstore-read [-p] [-R] key...`.
pub fn read(view: &mut dyn StoreView, keys: &[&str], prefix: bool, raw: bool) -> ClientOutput {
    let mut out = ClientOutput::default();
    for key in keys {
        let Ok(value) = view.read(key) else {
            return out.fail("xenstore-read", &format!("couldn't read path {key}"));
        };
        if prefix {
            out.stdout.extend_from_slice(format!("{key}: ").as_bytes());
        }
        if raw {
            out.stdout.extend_from_slice(&value);
        } else {
            out.stdout
                .extend_from_slice(sanitise_value(&value).as_bytes());
            out.stdout.push(b'\n');
        }
    }
    out
}

/// `xenstore-list [-p] key...` (the 4.17 client prints `//tool` for `-p /`).
pub fn list(view: &mut dyn StoreView, keys: &[&str], prefix: bool) -> ClientOutput {
    let mut out = ClientOutput::default();
    for key in keys {
        let Ok(names) = view.directory(key) else {
            return out.fail("xenstore-list", &format!("could not list path {key}"));
        };
        for name in names {
            let line = if prefix {
                format!("{key}/{name}\n")
            } else {
                format!("{name}\n")
            };
            out.stdout.extend_from_slice(line.as_bytes());
        }
    }
    out
}

/// `xenstore-write [-R] key value...`.
pub fn write(view: &mut dyn StoreView, pairs: &[(&str, &[u8])], raw: bool) -> ClientOutput {
    let out = ClientOutput::default();
    for (key, value) in pairs {
        let bytes = if raw {
            value.to_vec()
        } else {
            unsanitise_value(value)
        };
        if view.write(key, &bytes).is_err() {
            return out.fail("xenstore-write", &format!("could not write path {key}"));
        }
    }
    out
}

/// `xenstore-rm [-t] key...`: with `tidy`, empty value-less ancestors go too.
pub fn rm(view: &mut dyn StoreView, keys: &[&str], tidy: bool) -> ClientOutput {
    let out = ClientOutput::default();
    for key in keys {
        let mut path = String::from(*key);
        loop {
            if view.rm(&path).is_err() {
                return out.fail("xenstore-rm", &format!("could not remove path {path}"));
            }
            let Some(slash) = path.rfind('/').filter(|_| tidy) else {
                break;
            };
            path.truncate(slash);
            let empty_value = view.read(&path).is_ok_and(|v| v.is_empty());
            let no_children = empty_value && view.directory(&path).is_ok_and(|d| d.is_empty());
            if !no_children {
                break;
            }
        }
    }
    out
}

/// `xenstore-exists key...`: exit 0 when every key reads.
pub fn exists(view: &mut dyn StoreView, keys: &[&str]) -> ClientOutput {
    let mut out = ClientOutput::default();
    if keys.iter().any(|k| view.read(k).is_err()) {
        out.exit_code = 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::XsConfig;

    fn text(o: &ClientOutput) -> String {
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The reference's /t: three values written by dom0 (reference file, PHASE 1b).
    fn reference_t() -> XenStore {
        let mut xs = XenStore::new(XsConfig::default());
        let d0 = xs.dom0_conn();
        xs.write(d0, None, b"/t/v", b"a\tb\x01").expect("v");
        xs.write(d0, None, b"/t/w", b"\x7f").expect("w");
        xs.write(d0, None, b"/t/long", &[b'x'; 100]).expect("long");
        xs
    }

    #[test]
    fn sanitise_matches_reference_escapes() {
        assert_eq!(sanitise_value(b"a\tb\x01"), "a\\tb\\001");
        assert_eq!(sanitise_value(b"\x7f\\\x0b"), "\\x7f\\\\\\x0b");
    }

    #[test]
    fn unsanitise_inverts_write_arguments() {
        assert_eq!(unsanitise_value(b"a\\tb\\x01"), b"a\tb\x01");
        assert_eq!(unsanitise_value(b"\\101\\q"), b"Aq");
        assert_eq!(unsanitise_value(b"x\\"), b"x\0");
    }

    #[test]
    fn ls_truncates_long_value_at_eighty_columns() {
        let mut xs = reference_t();
        let conn = xs.connect_socket();
        let out = ls(
            &mut ConnView { xs: &mut xs, conn },
            Some("/t"),
            LsFlags::default(),
            None,
        );
        let long = format!("long = \"{}\\...\"\n", "x".repeat(68));
        assert_eq!(
            text(&out),
            format!("v = \"a\\tb\\001\"\nw = \"\\x7f\"\n{long}")
        );
    }

    #[test]
    fn ls_p_pads_with_dots_to_column_sixty() {
        let mut xs = reference_t();
        let conn = xs.connect_socket();
        let flags = LsFlags {
            full: false,
            perms: true,
        };
        let out = ls(&mut ConnView { xs: &mut xs, conn }, Some("/t"), flags, None);
        let first = text(&out).lines().next().map(String::from);
        let want = "v = \"a\\tb\\001\" . . . . . . . . . . . . . . . . . . . . . . .  (n0)";
        assert_eq!(first.as_deref(), Some(want));
    }

    #[test]
    fn ls_fp_separates_value_and_perms_by_three_spaces() {
        let mut xs = reference_t();
        let conn = xs.connect_socket();
        let flags = LsFlags {
            full: true,
            perms: true,
        };
        let out = ls(&mut ConnView { xs: &mut xs, conn }, Some("/t"), flags, None);
        let first = text(&out).lines().next().map(String::from);
        assert_eq!(first.as_deref(), Some("/t/v = \"a\\tb\\001\"   (n0)"));
    }

    #[test]
    fn ls_of_missing_path_reports_strerror_and_exits_one() {
        let mut xs = reference_t();
        let conn = xs.connect_socket();
        let out = ls(
            &mut ConnView { xs: &mut xs, conn },
            Some("/nonexistent"),
            LsFlags::default(),
            None,
        );
        let want = "xenstore-ls: xs_directory (/nonexistent): No such file or directory\n";
        assert_eq!(out.stderr, want);
        assert_eq!(out.exit_code, 1);
    }

    #[test]
    fn list_p_of_root_doubles_the_slash() {
        let mut xs = XenStore::new(XsConfig::default());
        let conn = xs.connect_socket();
        let out = list(&mut ConnView { xs: &mut xs, conn }, &["/"], true);
        assert_eq!(text(&out), "//tool\n");
    }

    #[test]
    fn read_missing_path_warns_and_exits_one() {
        let mut xs = XenStore::new(XsConfig::default());
        let conn = xs.connect_socket();
        let out = read(
            &mut ConnView { xs: &mut xs, conn },
            &["/nonexistent"],
            false,
            false,
        );
        assert_eq!(
            out.stderr,
            "xenstore-read: couldn't read path /nonexistent\n"
        );
        assert_eq!(out.exit_code, 1);
    }

    #[test]
    fn rm_tidy_removes_empty_valueless_ancestors() {
        let mut xs = XenStore::new(XsConfig::default());
        let conn = xs.connect_socket();
        xs.write(conn, None, b"/a/b/c", b"1").expect("write");
        let out = rm(&mut ConnView { xs: &mut xs, conn }, &["/a/b/c"], true);
        assert_eq!(out.exit_code, 0);
        assert!(xs.node("/a").is_none());
    }
}
