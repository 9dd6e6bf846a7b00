//! XenStore path rules: validation, canonicalisation of relative paths, parent and base
//! names, and the watch subtree match.
//!
//! Follows tools/xenstore/xenstored_core.c of Xen 4.17 (`is_valid_nodename`,
//! `valid_chars`, `canonicalize`, `get_parent`, `basename`) and xenstored_watch.c
//! (`is_child`, `get_watch_path`, `check_watch_path`).
//!
//! # Invariants
//! - A valid node path starts with `/`, has no empty component, no trailing `/` (except the
//!   root), only the characters `A-Z a-z 0-9 - / _ @`, and at most `path-max` bytes after a
//!   leading `/local/domain/<N>/`.
//!
//! xensim differs: none. 4.17 applies the `path-max` quota to every connection (privileged
//! too), and so does xensim.

use alloc::format;
use alloc::string::String;

/// `XENSTORE_ABS_PATH_MAX` (xs_wire.h).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX` (xs_wire.h), also 4.17's default `path-max` quota.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

const fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// [`valid_char`] of every byte value, so that validating a path costs one load a byte.
const VALID_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b: u8 = 0;
    loop {
        table[b as usize] = valid_char(b);
        if b == u8::MAX {
            break table;
        }
        b += 1;
    }
};

/// Length of the `/local/domain/<N>/` prefix that `path-max` does not count: 4.17 scans
/// `"/local/domain/%5u/%n"`, so up to five digits followed by a slash.
fn local_prefix_bytes(path: &[u8]) -> usize {
    const PREFIX: &[u8] = b"/local/domain/";
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return 0;
    };
    let digits = rest
        .iter()
        .take(5)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || rest.get(digits) != Some(&b'/') {
        return 0;
    }
    PREFIX.len() + digits + 1
}

/// `is_valid_nodename`: an absolute, well-formed node path within `path_max_bytes`.
pub fn is_valid_node_path(path: &[u8], path_max_bytes: usize) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    if path.len() > 1 && path.last() == Some(&b'/') {
        return false;
    }
    if path.len() > local_prefix_bytes(path) + path_max_bytes {
        return false;
    }
    // One pass without branches (paths are almost always valid, so stopping early at a
    // bad byte saves nothing): every byte valid, and no `//`.
    let mut ok = true;
    let mut after_slash = false;
    for &b in path {
        let slash = b == b'/';
        ok &= VALID_CHARS[usize::from(b)] & !(slash & after_slash);
        after_slash = slash;
    }
    ok
}

/// A special (`@`) path.
pub fn is_special(path: &[u8]) -> bool {
    path.first() == Some(&b'@')
}

/// `raw` as text: a copy when it is UTF-8 (almost always), else its lossy conversion
/// (`String::from_utf8_lossy` of it in both cases, without the slower lossy scan).
pub fn lossy_string(raw: &[u8]) -> String {
    match core::str::from_utf8(raw) {
        Ok(text) => String::from(text),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// `canonicalize`: a relative path gets `home/` in front; absolute and `@` paths are
/// returned as they are. Bytes that are not UTF-8 cannot be valid paths and come back
/// lossily converted (validation rejects them afterwards).
pub fn canonicalize(home: &str, path: &[u8]) -> String {
    if path.first() == Some(&b'/') || is_special(path) {
        return lossy_string(path);
    }
    let text = String::from_utf8_lossy(path);
    format!("{home}/{text}")
}

/// `get_parent`: `/a/b` → `/a`, `/a` → `/`, `/` → `/`.
pub fn parent(path: &str) -> &str {
    match path.get(1..).and_then(|rest| rest.rfind('/')) {
        Some(i) => &path[..i + 1],
        None => "/",
    }
}

/// The last component (`basename` of a non-root path).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// The path of child `name` under `dir` (`child_name`).
pub fn child(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `is_child`: `path` equals `dir` or lies below it; everything lies below `/`.
pub fn is_at_or_below(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return true;
    }
    match path.strip_prefix(dir) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `get_watch_path`: the event path as the watcher sees it; `home` is set for a watch
/// registered with a relative path and is stripped together with the following `/`.
pub fn event_path<'a>(path: &'a str, home: Option<&str>) -> &'a str {
    match home {
        Some(prefix) => {
            let rest = path.get(prefix.len()..).unwrap_or("");
            rest.strip_prefix('/').unwrap_or(rest)
        }
        None => path,
    }
}

/// A domain's home, `/local/domain/<domid>`.
pub fn domain_home(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// The number of components below the root (`/` is 0, `/a/b` is 2).
pub fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|&b| b == b'/').count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = XENSTORE_REL_PATH_MAX;

    /// `is_valid_node_path` as written before its one-pass form.
    fn valid_node_path_reference(path: &[u8], path_max_bytes: usize) -> bool {
        path.first() == Some(&b'/')
            && !(path.len() > 1 && path.last() == Some(&b'/'))
            && !path.windows(2).any(|w| w == b"//")
            && path.len() <= local_prefix_bytes(path) + path_max_bytes
            && path.iter().all(|&b| valid_char(b))
    }

    #[test]
    fn lossy_string_equals_from_utf8_lossy() {
        // Valid UTF-8 (ASCII and a two-byte character), then a stray continuation byte.
        for raw in [&b"/local/domain/1"[..], "/é".as_bytes(), b"/a\x80b"] {
            assert_eq!(lossy_string(raw), String::from_utf8_lossy(raw));
        }
    }

    proptest! {
        #[test]
        fn one_pass_validation_matches_reference(
            path in prop::collection::vec(
                // Slashes, valid and invalid characters, digits for the local prefix.
                prop::sample::select(b"/a1-_@.\x80 ld".to_vec()),
                0..24,
            ),
            // Small limits exercise the length rule.
            max in 0usize..12,
        ) {
            prop_assert_eq!(
                is_valid_node_path(&path, max),
                valid_node_path_reference(&path, max)
            );
        }
    }

    #[test]
    fn valid_path_rules_match_xenstored() {
        assert!(is_valid_node_path(b"/", MAX));
        assert!(is_valid_node_path(b"/a/b-c_D9@x", MAX));
        assert!(!is_valid_node_path(b"a", MAX));
        assert!(!is_valid_node_path(b"/a/", MAX));
        assert!(!is_valid_node_path(b"/a//b", MAX));
        assert!(!is_valid_node_path(b"/a.b", MAX));
        assert!(!is_valid_node_path(b"/a b", MAX));
        assert!(!is_valid_node_path(b"/local/domain/", MAX));
    }

    #[test]
    fn path_max_excludes_local_domain_prefix() {
        let mut long = String::from("/local/domain/12345/");
        long.push_str(&"x".repeat(MAX));
        assert!(is_valid_node_path(long.as_bytes(), MAX));
        long.push('x');
        assert!(!is_valid_node_path(long.as_bytes(), MAX));
        let plain = format!("/{}", "x".repeat(MAX));
        assert!(!is_valid_node_path(plain.as_bytes(), MAX));
    }

    #[test]
    fn relative_path_is_prefixed_with_home() {
        assert_eq!(
            canonicalize("/local/domain/3", b"data/x"),
            "/local/domain/3/data/x"
        );
        assert_eq!(canonicalize("/local/domain/3", b"/abs"), "/abs");
        assert_eq!(
            canonicalize("/local/domain/3", b"@releaseDomain"),
            "@releaseDomain"
        );
    }

    #[test]
    fn parent_and_basename_of_nested_and_top_level() {
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
    }

    #[test]
    fn subtree_match_needs_component_boundary() {
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/x", "/"));
    }

    #[test]
    fn relative_watch_event_strips_home_and_slash() {
        assert_eq!(
            event_path("/local/domain/1/x", Some("/local/domain/1")),
            "x"
        );
        assert_eq!(event_path("/local/domain/1/x", None), "/local/domain/1/x");
    }
}
