//! A TOML document as a small tree with byte offsets, and a table reader that types values,
//! reports located errors and rejects unknown keys.
//!
//! Built from `toml_edit`'s span-preserving parse. The reader marks every key it is asked
//! for; `finish` reports the rest as unknown keys (`specs/scenario.md` §9: a misspelt key is
//! never silently ignored).
//!
//! # Invariants
//! - Every node has an offset into the scenario text (its own span, else its key's).
//! - A TOML float never converts to an integer, duration, size or rate.

use std::cell::RefCell;

use toml_edit::{ImDocument, Item, Value};

use super::diag::{Diags, Loc};

/// Where a string's decoded text sits in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrOrigin {
    /// Byte offset of the first content character.
    pub content_offset: usize,
    /// True if the raw content equals the decoded text (no escapes), so offsets map 1:1.
    pub exact: bool,
}

/// A TOML value with its position.
#[derive(Debug, Clone)]
pub struct Node {
    /// Byte offset of the value in the file.
    pub offset: usize,
    /// The value.
    pub kind: Kind,
}

/// The value kinds of TOML.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A string and where its content starts.
    Str(String, StrOrigin),
    /// An integer.
    Int(i64),
    /// A float, as written (always rejected).
    Float(String),
    /// A boolean.
    Bool(bool),
    /// A date-time, as written (never accepted).
    Datetime(String),
    /// An array (or array of tables).
    Array(Vec<Node>),
    /// A table (standard, inline or dotted).
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Byte offset of the key.
    pub key_offset: usize,
    /// The value.
    pub value: Node,
}

impl Node {
    /// How the value reads in a `found ...` message.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Str(s, _) => format!("{s:?}"),
            Kind::Int(i) => i.to_string(),
            Kind::Float(raw) => format!("the float {raw} (TOML floats are not accepted)"),
            Kind::Bool(b) => b.to_string(),
            Kind::Datetime(raw) => format!("the date-time {raw}"),
            Kind::Array(_) => "an array".to_string(),
            Kind::Table(_) => "a table".to_string(),
        }
    }
}

/// Parses TOML text into a root table node, or the parse error's offset and message.
pub fn parse_document(text: &str) -> Result<Node, (usize, String)> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim().to_string();
        (offset, message)
    })?;
    let builder = Builder { text };
    Ok(builder.table(doc.as_table(), 0))
}

struct Builder<'t> {
    text: &'t str,
}

impl Builder<'_> {
    fn table(&self, table: &toml_edit::Table, fallback: usize) -> Node {
        let offset = table.span().map_or(fallback, |s| s.start);
        let mut entries = Vec::new();
        for (key, item) in table.iter() {
            let key_offset = table
                .key(key)
                .and_then(toml_edit::Key::span)
                .map_or(offset, |s| s.start);
            if let Some(value) = self.item(item, key_offset) {
                entries.push(Entry {
                    key: key.to_string(),
                    key_offset,
                    value,
                });
            }
        }
        Node {
            offset,
            kind: Kind::Table(entries),
        }
    }

    fn item(&self, item: &Item, fallback: usize) -> Option<Node> {
        match item {
            Item::None => None,
            Item::Value(value) => Some(self.value(value, fallback)),
            Item::Table(table) => Some(self.table(table, fallback)),
            Item::ArrayOfTables(array) => {
                let offset = array.span().map_or(fallback, |s| s.start);
                let nodes = array.iter().map(|t| self.table(t, offset)).collect();
                Some(Node {
                    offset,
                    kind: Kind::Array(nodes),
                })
            }
        }
    }

    fn value(&self, value: &Value, fallback: usize) -> Node {
        let span = value.span();
        let offset = span.as_ref().map_or(fallback, |s| s.start);
        let raw = span
            .as_ref()
            .and_then(|s| self.text.get(s.clone()))
            .unwrap_or("");
        let kind = match value {
            Value::String(s) => Kind::Str(s.value().clone(), str_origin(raw, offset, s.value())),
            Value::Integer(i) => Kind::Int(*i.value()),
            Value::Float(_) => Kind::Float(raw.to_string()),
            Value::Boolean(b) => Kind::Bool(*b.value()),
            Value::Datetime(_) => Kind::Datetime(raw.to_string()),
            Value::Array(array) => {
                Kind::Array(array.iter().map(|v| self.value(v, offset)).collect())
            }
            Value::InlineTable(table) => {
                let mut entries = Vec::new();
                for (key, item) in table.iter() {
                    let key_offset = table
                        .key(key)
                        .and_then(toml_edit::Key::span)
                        .map_or(offset, |s| s.start);
                    entries.push(Entry {
                        key: key.to_string(),
                        key_offset,
                        value: self.value(item, key_offset),
                    });
                }
                Kind::Table(entries)
            }
        };
        Node { offset, kind }
    }
}

fn str_origin(raw: &str, offset: usize, decoded: &str) -> StrOrigin {
    let (delim_bytes, body) = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        let inner = raw.get(3..raw.len().saturating_sub(3)).unwrap_or("");
        // TOML trims a newline right after the opening delimiter.
        if let Some(rest) = inner.strip_prefix("\r\n") {
            (5, rest)
        } else if let Some(rest) = inner.strip_prefix('\n') {
            (4, rest)
        } else {
            (3, inner)
        }
    } else {
        (1, raw.get(1..raw.len().saturating_sub(1)).unwrap_or(""))
    };
    StrOrigin {
        content_offset: offset + delim_bytes,
        exact: body == decoded,
    }
}

/// Converts one node: the value, or the "expected ..." text for the message.
pub type Convert<T> = fn(&Node) -> Result<T, String>;

/// Reads one TOML table: typed getters with located errors; unknown keys reported on
/// [`Tbl::finish`].
#[derive(Debug)]
pub struct Tbl<'a> {
    node: &'a Node,
    entries: &'a [Entry],
    file_index: usize,
    context: String,
    prefix: String,
    asked: RefCell<Vec<String>>,
}

impl<'a> Tbl<'a> {
    /// A reader for `node`; messages start with `context` (`[host.h0]`) and `prefix`
    /// (`topology.`). A non-table node gives an error and an empty reader.
    pub fn new(d: &Diags, file_index: usize, node: &'a Node, context: &str, prefix: &str) -> Self {
        let entries: &'a [Entry] = match &node.kind {
            Kind::Table(entries) => entries,
            _ => {
                let what = prefix.trim_end_matches('.');
                d.error(
                    Loc {
                        file_index,
                        offset_bytes: node.offset,
                    },
                    format!(
                        "{context} {what}: expected a table, found {}",
                        node.describe()
                    ),
                );
                &[]
            }
        };
        Tbl {
            node,
            entries,
            file_index,
            context: context.to_string(),
            prefix: prefix.to_string(),
            asked: RefCell::new(Vec::new()),
        }
    }

    /// The location of a byte offset in this table's file.
    pub fn loc(&self, offset_bytes: usize) -> Loc {
        Loc {
            file_index: self.file_index,
            offset_bytes,
        }
    }

    /// The table's own location.
    pub fn here(&self) -> Loc {
        self.loc(self.node.offset)
    }

    /// `"[host.h0] topology.numa"` for `key`.
    pub fn path(&self, key: &str) -> String {
        format!("{} {}{key}", self.context, self.prefix)
    }

    /// The context (`[host.h0]`).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The key prefix (`topology.`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The file this table is in.
    pub fn file_index(&self) -> usize {
        self.file_index
    }

    /// The raw node under `key`, marking the key as known.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.asked.borrow_mut().push(key.to_string());
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// True if the key is present (marks it known).
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An error at `node` about `key`.
    pub fn error_at(&self, d: &Diags, node: &Node, key: &str, message: &str) {
        d.error(
            self.loc(node.offset),
            format!("{}: {message}", self.path(key)),
        );
    }

    /// Converts `key` if present; a bad value is an error (and `None`).
    pub fn opt<T>(&self, d: &Diags, key: &str, convert: Convert<T>) -> Option<T> {
        let node = self.get(key)?;
        match convert(node) {
            Ok(value) => Some(value),
            Err(expected) => {
                let message = format!("expected {expected}, found {}", node.describe());
                self.error_at(d, node, key, &message);
                None
            }
        }
    }

    /// Converts `key`; missing is an error at the table.
    pub fn req<T>(&self, d: &Diags, key: &str, convert: Convert<T>) -> Option<T> {
        if self.get(key).is_none() {
            d.error(
                self.here(),
                format!("{}: missing required key", self.path(key)),
            );
            return None;
        }
        self.opt(d, key, convert)
    }

    /// A sub-table reader for an (inline) table under `key`.
    pub fn sub(&self, d: &Diags, key: &str) -> Option<Tbl<'a>> {
        let node = self.get(key)?;
        let prefix = format!("{}{key}.", self.prefix);
        Some(Tbl::new(d, self.file_index, node, &self.context, &prefix))
    }

    /// The elements of an array under `key` (an error if not an array).
    pub fn array(&self, d: &Diags, key: &str) -> Option<&'a [Node]> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Array(items) => Some(items),
            _ => {
                let message = format!("expected an array, found {}", node.describe());
                self.error_at(d, node, key, &message);
                None
            }
        }
    }

    /// The entries of the table, for tables keyed by name (`[host.<name>]`).
    pub fn entries(&self) -> &'a [Entry] {
        self.entries
    }

    /// Reports keys never asked for as unknown.
    pub fn finish(&self, d: &Diags) {
        let asked = self.asked.borrow();
        for entry in self.entries {
            if !asked.contains(&entry.key) {
                let mut known: Vec<&str> = asked.iter().map(String::as_str).collect();
                known.sort_unstable();
                known.dedup();
                d.error(
                    self.loc(entry.key_offset),
                    format!(
                        "{}: unknown key; expected one of: {}",
                        self.path(&entry.key),
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// Converters for [`Tbl::opt`] / [`Tbl::req`].
pub mod conv {
    use super::super::values::{
        is_name, parse_duration, parse_rate, parse_size, DURATION_EXPECTED, NAME_EXPECTED,
        RATE_EXPECTED, SIZE_EXPECTED,
    };
    use super::{Kind, Node};

    /// A `u64` TOML integer.
    pub fn u64_(node: &Node) -> Result<u64, String> {
        match node.kind {
            Kind::Int(i) => u64::try_from(i).map_err(|_| "a non-negative integer".to_string()),
            _ => Err("a non-negative integer".to_string()),
        }
    }

    /// A `u32` TOML integer.
    pub fn u32_(node: &Node) -> Result<u32, String> {
        match node.kind {
            Kind::Int(i) => u32::try_from(i).map_err(|_| "an integer 0..=4294967295".into()),
            _ => Err("an integer 0..=4294967295".to_string()),
        }
    }

    /// An `i64` TOML integer.
    pub fn i64_(node: &Node) -> Result<i64, String> {
        match node.kind {
            Kind::Int(i) => Ok(i),
            _ => Err("an integer".to_string()),
        }
    }

    /// An `i32` TOML integer.
    pub fn i32_(node: &Node) -> Result<i32, String> {
        match node.kind {
            Kind::Int(i) => i32::try_from(i).map_err(|_| "a 32-bit integer".to_string()),
            _ => Err("a 32-bit integer".to_string()),
        }
    }

    /// A boolean.
    pub fn bool_(node: &Node) -> Result<bool, String> {
        match node.kind {
            Kind::Bool(b) => Ok(b),
            _ => Err("true or false".to_string()),
        }
    }

    /// Any string.
    pub fn string(node: &Node) -> Result<String, String> {
        match &node.kind {
            Kind::Str(s, _) => Ok(s.clone()),
            _ => Err("a string".to_string()),
        }
    }

    /// A name (`[A-Za-z0-9_-]{1,64}`).
    pub fn name(node: &Node) -> Result<String, String> {
        match &node.kind {
            Kind::Str(s, _) if is_name(s) => Ok(s.clone()),
            _ => Err(NAME_EXPECTED.to_string()),
        }
    }

    fn int_or_str(
        node: &Node,
        parse: fn(&str) -> Result<u64, String>,
        expected: &str,
    ) -> Result<u64, String> {
        match &node.kind {
            Kind::Int(i) => u64::try_from(*i).map_err(|_| expected.to_string()),
            Kind::Str(s, _) => parse(s),
            _ => Err(expected.to_string()),
        }
    }

    /// A duration, ns.
    pub fn duration(node: &Node) -> Result<u64, String> {
        int_or_str(node, parse_duration, DURATION_EXPECTED)
    }

    /// A size, bytes.
    pub fn size(node: &Node) -> Result<u64, String> {
        int_or_str(node, parse_size, SIZE_EXPECTED)
    }

    /// A memory size, bytes, a multiple of 4 KiB.
    pub fn mem_size(node: &Node) -> Result<u64, String> {
        let bytes = size(node)?;
        if bytes % 4096 != 0 {
            return Err(format!("{SIZE_EXPECTED} that is a multiple of 4KiB"));
        }
        Ok(bytes)
    }

    /// A rate, bytes/s.
    pub fn rate(node: &Node) -> Result<u64, String> {
        int_or_str(node, parse_rate, RATE_EXPECTED)
    }

    /// Parts per million, `0..=1_000_000`.
    pub fn ppm(node: &Node) -> Result<u32, String> {
        match node.kind {
            Kind::Int(i @ 0..=1_000_000) => {
                u32::try_from(i).map_err(|_| "an integer 0..=1000000 (ppm)".into())
            }
            _ => Err("an integer 0..=1000000 (ppm)".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_document, Kind};

    #[test]
    fn parse_document_keeps_key_offsets() {
        let root = parse_document("[sim]\nseed = 4\n").expect("valid toml");
        let Kind::Table(entries) = &root.kind else {
            panic!("root is a table");
        };
        let Kind::Table(sim) = &entries[0].value.kind else {
            panic!("sim is a table");
        };
        assert_eq!(sim[0].key, "seed");
        assert_eq!(sim[0].key_offset, 6);
        assert_eq!(sim[0].value.offset, 13);
    }

    #[test]
    fn multiline_string_origin_skips_first_newline() {
        let root = parse_document("x = \"\"\"\nab\n\"\"\"\n").expect("valid toml");
        let Kind::Table(entries) = &root.kind else {
            panic!("root is a table");
        };
        let Kind::Str(text, origin) = &entries[0].value.kind else {
            panic!("x is a string");
        };
        assert_eq!(text, "ab\n");
        assert_eq!(origin.content_offset, 8);
        assert!(origin.exact);
    }
}
