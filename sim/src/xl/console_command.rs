//! `xl console [-t pv|serial|vuart] [-n NUM] DOM` parsed with xl's option string (`"n:t:"`)
//! and messages.
//!
//! Follows tools/xl/xl_console.c (`main_console`) and tools/xl/xl_cmdtable.c.
//!
//! # Invariants
//! - A command that parses here passes every check `main_console` makes before libxl; the
//!   domain is resolved when the command runs.

use super::command::{XlCommand, XlParseError};

/// `-t`: which console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleType {
    /// `pv`: the PV console ring.
    Pv,
    /// `serial`: the emulated serial port.
    Serial,
    /// `vuart`: the Arm virtual UART.
    Vuart,
}

/// `xl console` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleArgs {
    /// The domain.
    pub domain: String,
    /// `-t`; `None` means the primary console.
    pub kind: Option<ConsoleType>,
    /// `-n` (C's `atoi`).
    pub num: i32,
}

fn fail(word_index: usize, message: &str) -> XlParseError {
    XlParseError {
        word_index,
        message: message.to_string(),
    }
}

/// `atoi`: optional sign and leading digits, 0 without any, wrapping as glibc's long
/// truncated to int does.
fn atoi(s: &str) -> i32 {
    let t = s.trim_start_matches([' ', '\t', '\n']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let value = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |acc, b| {
            acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        });
    let value = if neg { -value } else { value };
    // Low 32 bits, as the int conversion keeps them.
    i32::from_le_bytes(value.to_le_bytes()[..4].try_into().unwrap_or([0; 4]))
}

/// Parses `words` (`words[0] == "console"`).
pub fn parse(words: &[String]) -> Result<XlCommand, XlParseError> {
    let mut kind = None;
    let mut num = 0;
    let mut index = 1;
    while let Some(word) = words.get(index) {
        if word == "--" {
            index += 1;
            break;
        }
        if word.len() < 2 || !word.starts_with('-') {
            break;
        }
        let Some(letter) = word[1..].chars().next() else {
            break;
        };
        if letter != 't' && letter != 'n' {
            return Err(fail(
                index,
                &format!("xl console: invalid option -- '{letter}'"),
            ));
        }
        // The option's argument: the rest of this word, or the next word.
        let rest = &word[1 + letter.len_utf8()..];
        let value = if rest.is_empty() {
            index += 1;
            match words.get(index) {
                Some(v) => v.as_str(),
                None => {
                    return Err(fail(
                        index - 1,
                        &format!("xl console: option requires an argument -- '{letter}'"),
                    ))
                }
            }
        } else {
            rest
        };
        if letter == 't' {
            kind = Some(match value {
                "pv" => ConsoleType::Pv,
                "serial" => ConsoleType::Serial,
                "vuart" => ConsoleType::Vuart,
                _ => return Err(fail(index, "console type supported are: pv, serial, vuart")),
            });
        } else {
            num = atoi(value);
        }
        index += 1;
    }
    let Some(domain) = words.get(index) else {
        return Err(fail(0, "'xl console' requires at least 1 argument."));
    };
    // `main_console` reads argv[optind] only; later words are ignored.
    Ok(XlCommand::Console(ConsoleArgs {
        domain: domain.clone(),
        kind,
        num,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn args(line: &str) -> ConsoleArgs {
        match parse(&words(line)) {
            Ok(XlCommand::Console(a)) => a,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn options_and_domain() {
        let a = args("console guest1");
        assert_eq!((a.domain.as_str(), a.kind, a.num), ("guest1", None, 0));
        let a = args("console -t pv -n 2 3");
        assert_eq!(
            (a.domain.as_str(), a.kind, a.num),
            ("3", Some(ConsoleType::Pv), 2)
        );
        let a = args("console -tserial -n1x d");
        assert_eq!((a.kind, a.num), (Some(ConsoleType::Serial), 1));
        assert_eq!(args("console -- -x").domain, "-x");
    }

    #[test]
    fn errors_in_xl_words() {
        let e = parse(&words("console")).unwrap_err();
        assert_eq!(e.message, "'xl console' requires at least 1 argument.");
        let e = parse(&words("console -t tty 1")).unwrap_err();
        assert_eq!(e.message, "console type supported are: pv, serial, vuart");
        let e = parse(&words("console -x 1")).unwrap_err();
        assert_eq!(e.message, "xl console: invalid option -- 'x'");
        let e = parse(&words("console -n")).unwrap_err();
        assert_eq!(e.message, "xl console: option requires an argument -- 'n'");
    }
}
