//! xl.cfg syntax (`specs/memory-iommu-migration.md` §12.1): the lexer and parser of
//! libxlu, giving settings with byte offsets. Semantics are in `xlcfg_map.rs`.
//!
//! Follows tools/libs/util/libxlu_cfg_l.l (tokens, the `[+-.():]` lexical error that marks
//! the file as likely Python), libxlu_cfg_y.y (assignments, `+=`, nested lists with
//! newlines and a trailing comma) and libxlu_cfg.c (`+=` appends; the last assignment
//! wins). As in libxlu, numbers and strings are both scalars: `memory = "512"` reads as 512.
//!
//! # Invariants
//! - Every setting and value carries the byte offset where it starts.
//! - No backslash line continuation; a value spans lines only inside `[...]`.

/// The hint libxlu prints when a lexical error looks like Python.
pub const PYTHON_HINT: &str = "Config file looks like it contains Python code. Arbitrary \
     Python is no longer supported. See https://wiki.xen.org/wiki/PythonInXlConfig";

/// One xl.cfg value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlValue {
    /// Byte offset of the value.
    pub offset_bytes: usize,
    /// The value.
    pub kind: XlValueKind,
}

/// Scalars (numbers and strings) and lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XlValueKind {
    /// A NUMBER or STRING (escapes decoded); `quoted` tells which.
    Scalar {
        /// The text.
        text: String,
        /// True for a STRING.
        quoted: bool,
    },
    /// `[ ... ]`.
    List(Vec<XlValue>),
}

/// `name = value` after `+=` merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlSetting {
    /// The key.
    pub name: String,
    /// Byte offset of the key of the last assignment.
    pub name_offset_bytes: usize,
    /// The value.
    pub value: XlValue,
}

/// A syntax error: where and libxlu's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlSyntaxError {
    /// Byte offset.
    pub offset_bytes: usize,
    /// The message.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Assign,
    Append,
    Comma,
    Open,
    Close,
    Semi,
    Newline,
    End,
}

struct Lexer<'t> {
    text: &'t str,
    pos: usize,
}

fn near(text: &str) -> String {
    text.split([' ', '\t', '\n'])
        .next()
        .unwrap_or("")
        .to_string()
}

impl Lexer<'_> {
    fn lex_error(&self, at: usize, python: bool) -> XlSyntaxError {
        let mut message = format!(
            "config parsing error near `{}': lexical error",
            near(&self.text[at..])
        );
        if python {
            message.push_str("; ");
            message.push_str(PYTHON_HINT);
        }
        XlSyntaxError {
            offset_bytes: at,
            message,
        }
    }

    fn next(&mut self) -> Result<(usize, Tok), XlSyntaxError> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.pos < bytes.len() && bytes[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let start = self.pos;
        let Some(&c) = bytes.get(start) else {
            return Ok((start, Tok::End));
        };
        let take = |lexer: &mut Self, len: usize, tok: Tok| {
            lexer.pos += len;
            Ok((start, tok))
        };
        match c {
            b'\n' => take(self, 1, Tok::Newline),
            b'=' => take(self, 1, Tok::Assign),
            b',' => take(self, 1, Tok::Comma),
            b'[' => take(self, 1, Tok::Open),
            b']' => take(self, 1, Tok::Close),
            b';' => take(self, 1, Tok::Semi),
            b'+' if bytes.get(start + 1) == Some(&b'=') => take(self, 2, Tok::Append),
            b'a'..=b'z' => {
                let len = self.run(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_'));
                Ok((start, Tok::Ident(self.text[start..start + len].to_string())))
            }
            b'0'..=b'9' => {
                let len = self.run(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'x'));
                Ok((
                    start,
                    Tok::Number(self.text[start..start + len].to_string()),
                ))
            }
            b'"' | b'\'' => self.string(c),
            b'+' | b'-' | b'.' | b'(' | b')' | b':' => Err(self.lex_error(start, true)),
            _ => Err(self.lex_error(start, false)),
        }
    }

    fn run(&mut self, accept: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.pos < self.text.len() && accept(self.text.as_bytes()[self.pos]) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A quoted string with C escapes (`\n`, `\t`, `\\`, `\"`, `\'`, `\xHH`, octal).
    fn string(&mut self, quote: u8) -> Result<(usize, Tok), XlSyntaxError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '\n' => break,
                c if u32::from(c) == u32::from(quote) => {
                    self.pos = start + 1 + i + 1;
                    return Ok((start, Tok::Str(out)));
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 'a')) => out.push('\u{7}'),
                    Some((_, 'b')) => out.push('\u{8}'),
                    Some((_, 'f')) => out.push('\u{c}'),
                    Some((_, 'v')) => out.push('\u{b}'),
                    Some((_, 'x')) => {
                        let rest = &self.text[start + 1 + i + 2..];
                        let hex: String = rest
                            .chars()
                            .take(2)
                            .take_while(char::is_ascii_hexdigit)
                            .collect();
                        let Ok(v) = u8::from_str_radix(&hex, 16) else {
                            return Err(self.lex_error(start, false));
                        };
                        out.push(char::from(v));
                        for _ in 0..hex.len() {
                            chars.next();
                        }
                    }
                    Some((_, d @ '0'..='7')) => {
                        let rest = &self.text[start + 1 + i + 2..];
                        let more: String = rest
                            .chars()
                            .take(2)
                            .take_while(|c| ('0'..='7').contains(c))
                            .collect();
                        let digits = format!("{d}{more}");
                        let v = u32::from_str_radix(&digits, 8).unwrap_or(0) & 0xff;
                        out.push(char::from_u32(v).unwrap_or('?'));
                        for _ in 0..more.len() {
                            chars.next();
                        }
                    }
                    Some((_, '\n')) | None => break,
                    Some((_, other)) => out.push(other),
                },
                other => out.push(other),
            }
        }
        Err(XlSyntaxError {
            offset_bytes: start,
            message: "config parsing error: unterminated string (strings cannot span lines)"
                .to_string(),
        })
    }
}

struct Parser<'t> {
    lexer: Lexer<'t>,
    peeked: Option<(usize, Tok)>,
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<&(usize, Tok), XlSyntaxError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn bump(&mut self) -> Result<(usize, Tok), XlSyntaxError> {
        self.peek()?;
        Ok(self.peeked.take().expect("just peeked"))
    }

    fn syntax_error(&self, at: usize) -> XlSyntaxError {
        let rest = &self.lexer.text[at..];
        let token = if rest.starts_with('\n') || rest.is_empty() {
            "end of line".to_string()
        } else {
            near(rest)
        };
        XlSyntaxError {
            offset_bytes: at,
            message: format!("config parsing error near `{token}': syntax error"),
        }
    }

    fn skip_newlines(&mut self) -> Result<(), XlSyntaxError> {
        while self.peek()?.1 == Tok::Newline {
            self.bump()?;
        }
        Ok(())
    }

    fn value(&mut self) -> Result<XlValue, XlSyntaxError> {
        let (at, tok) = self.bump()?;
        let kind = match tok {
            Tok::Number(text) => XlValueKind::Scalar {
                text,
                quoted: false,
            },
            Tok::Str(text) => XlValueKind::Scalar { text, quoted: true },
            Tok::Open => XlValueKind::List(self.list_rest()?),
            _ => return Err(self.syntax_error(at)),
        };
        Ok(XlValue {
            offset_bytes: at,
            kind,
        })
    }

    /// After `[`: values separated by commas, newlines anywhere, optional trailing comma.
    fn list_rest(&mut self) -> Result<Vec<XlValue>, XlSyntaxError> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines()?;
            if self.peek()?.1 == Tok::Close {
                self.bump()?;
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_newlines()?;
            let (at, tok) = self.bump()?;
            match tok {
                Tok::Comma => {}
                Tok::Close => return Ok(items),
                _ => return Err(self.syntax_error(at)),
            }
        }
    }
}

/// Parses xl.cfg text into settings in first-assignment order, `+=` applied.
pub fn parse_syntax(text: &str) -> Result<Vec<XlSetting>, XlSyntaxError> {
    let mut parser = Parser {
        lexer: Lexer { text, pos: 0 },
        peeked: None,
    };
    let mut settings: Vec<XlSetting> = Vec::new();
    loop {
        let (at, tok) = parser.bump()?;
        let (name, append) = match tok {
            Tok::End => return Ok(settings),
            Tok::Newline | Tok::Semi => continue,
            Tok::Ident(name) => {
                let (op_at, op) = parser.bump()?;
                match op {
                    Tok::Assign => (name, false),
                    Tok::Append => (name, true),
                    _ => return Err(parser.syntax_error(op_at)),
                }
            }
            _ => return Err(parser.syntax_error(at)),
        };
        let value = parser.value()?;
        let (end_at, end) = parser.bump()?;
        if !matches!(end, Tok::Newline | Tok::Semi | Tok::End) {
            return Err(parser.syntax_error(end_at));
        }
        store(&mut settings, name, at, value, append)?;
        if end == Tok::End {
            return Ok(settings);
        }
    }
}

fn store(
    settings: &mut Vec<XlSetting>,
    name: String,
    at: usize,
    value: XlValue,
    append: bool,
) -> Result<(), XlSyntaxError> {
    let Some(previous) = settings.iter_mut().find(|s| s.name == name) else {
        settings.push(XlSetting {
            name,
            name_offset_bytes: at,
            value,
        });
        return Ok(());
    };
    previous.name_offset_bytes = at;
    if !append {
        previous.value = value;
        return Ok(());
    }
    match (&mut previous.value.kind, value.kind) {
        (XlValueKind::List(items), XlValueKind::List(more)) => items.extend(more),
        (XlValueKind::Scalar { text, .. }, XlValueKind::Scalar { text: more, .. }) => {
            text.push_str(&more);
        }
        _ => {
            return Err(XlSyntaxError {
                offset_bytes: at,
                message: format!(
                    "`{name}': += cannot add a list to a string or a string to a list"
                ),
            })
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_syntax, XlValueKind};

    #[test]
    fn parse_syntax_reads_lists_across_lines() {
        let settings =
            parse_syntax("name = \"a\" # c\nvif = [\n 'x',\n \"y\",\n]\nvcpus=2;cap=0x10")
                .expect("valid cfg");
        assert_eq!(settings.len(), 4);
        let XlValueKind::List(items) = &settings[1].value.kind else {
            panic!("vif is a list");
        };
        assert_eq!(items.len(), 2);
        assert_eq!(settings[3].name, "cap");
    }

    #[test]
    fn parse_syntax_python_like_token_gives_hint() {
        let error = parse_syntax("memory = 512\nllc-colors = \"9-13\"\n").expect_err("'-'");
        assert!(error
            .message
            .starts_with("config parsing error near `-colors': lexical error"));
        assert!(error.message.contains("Python"));
        assert_eq!(error.offset_bytes, 16);
    }

    #[test]
    fn parse_syntax_append_concatenates_lists() {
        let settings = parse_syntax("disk = ['a']\ndisk += ['b']\n").expect("valid cfg");
        let XlValueKind::List(items) = &settings[0].value.kind else {
            panic!("disk is a list");
        };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn parse_syntax_escapes_decoded() {
        let settings = parse_syntax(r#"extra = "a\"b\x41\n""#).expect("valid cfg");
        assert_eq!(
            settings[0].value.kind,
            XlValueKind::Scalar {
                text: "a\"bA\n".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn parse_syntax_uppercase_key_is_lexical_error() {
        let error = parse_syntax("Memory = 5\n").expect_err("upper case");
        assert!(error.message.contains("lexical error"));
        assert!(!error.message.contains("Python"));
    }

    #[test]
    fn parse_syntax_missing_value_is_syntax_error() {
        let error = parse_syntax("memory =\n").expect_err("no value");
        assert_eq!(
            error.message,
            "config parsing error near `end of line': syntax error"
        );
    }
}
