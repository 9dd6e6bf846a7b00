//! xenstore-* command lines (`xenstore-ls`, `-read`, `-list`, `-exists`, `-write`, `-rm`)
//! parsed into the core's [`XsClientCmd`], with the clients' option letters and usage rules.
//!
//! Follows tools/xenstore/xenstore_client.c of Xen 4.17 (`main`: `getopt_long` with
//! "hfspturn:R", each letter valid only for its modes; `-s` is accepted and ignored; a
//! missing key, or an odd number of `xenstore-write` arguments, is a usage error).
//! xensim differs: an unknown option (which the client reports and ignores) and a usage
//! error are refused when the command is parsed, so a scenario cannot carry one.

use hypervisor_model::toolstack::xs_client::XsClientCmd;

use super::command::XlParseError;

/// Parses `words` (`words[0]` is the tool, `xenstore-ls` or `xenstore ls`-style `ls`).
pub fn parse(words: &[String]) -> Result<XsClientCmd, XlParseError> {
    let err = |word_index: usize, message: String| XlParseError {
        word_index,
        message,
    };
    let tool = words.first().map(String::as_str).unwrap_or("");
    let mode = tool.strip_prefix("xenstore-").unwrap_or("");
    let allowed: &[u8] = match mode {
        "ls" => b"fps",
        "read" => b"pRs",
        "list" => b"ps",
        "exists" => b"s",
        "write" => b"Rs",
        "rm" => b"ts",
        _ => {
            let message = format!(
                "unknown xenstore client {tool:?} (expected xenstore-ls, xenstore-read, \
                 xenstore-list, xenstore-exists, xenstore-write or xenstore-rm)"
            );
            return Err(err(0, message));
        }
    };
    let mut flags = Vec::new();
    let mut args: Vec<String> = Vec::new();
    for (index, word) in words.iter().enumerate().skip(1) {
        let options = word
            .strip_prefix('-')
            .filter(|o| !o.is_empty() && args.is_empty());
        let Some(options) = options else {
            args.push(word.clone());
            continue;
        };
        for letter in options.bytes() {
            if !allowed.contains(&letter) {
                let message = format!("{tool}: option -{} is not valid here", char::from(letter));
                return Err(err(index, format!("{message}; {}", usage(mode, tool))));
            }
            flags.push(letter);
        }
    }
    let has = |letter: u8| flags.contains(&letter);
    let usage_error = || err(0, usage(mode, tool));
    if mode != "ls" && args.is_empty() {
        return Err(usage_error());
    }
    Ok(match mode {
        "ls" => {
            if args.len() > 1 {
                return Err(err(2, format!("{tool}: takes at most one path")));
            }
            XsClientCmd::Ls {
                path: args.into_iter().next(),
                full: has(b'f'),
                perms: has(b'p'),
            }
        }
        "read" => XsClientCmd::Read {
            keys: args,
            prefix: has(b'p'),
            raw: has(b'R'),
        },
        "list" => XsClientCmd::List {
            keys: args,
            prefix: has(b'p'),
        },
        "exists" => XsClientCmd::Exists { keys: args },
        "write" => {
            if args.len() % 2 == 1 {
                return Err(usage_error());
            }
            let pairs = args
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone().into_bytes()))
                .collect();
            XsClientCmd::Write {
                pairs,
                raw: has(b'R'),
            }
        }
        _ => XsClientCmd::Rm {
            keys: args,
            tidy: has(b't'),
        },
    })
}

/// The client's usage line for `mode`.
fn usage(mode: &str, tool: &str) -> String {
    let rest = match mode {
        "read" => "[-h] [-p] [-s] [-R] key [...]",
        "write" => "[-h] [-s] [-R] key value [...]",
        "rm" => "[-h] [-s] [-t] key [...]",
        "ls" => "[-h] [-f] [-p] [-s] [path]",
        _ => "[-h] [-p] [-s] key [...]",
    };
    format!("Usage: {tool} {rest}")
}

/// Whether `words` names a xenstore client rather than an xl subcommand.
pub fn is_xenstore(words: &[String]) -> bool {
    words.first().is_some_and(|w| w.starts_with("xenstore-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn ls_fp_with_path_parses() {
        let cmd = parse(&words("xenstore-ls -fp /local/domain/1"));
        let want = XsClientCmd::Ls {
            path: Some("/local/domain/1".to_string()),
            full: true,
            perms: true,
        };
        assert_eq!(cmd, Ok(want));
    }

    #[test]
    fn write_with_odd_arguments_is_a_usage_error() {
        let cmd = parse(&words("xenstore-write /a 1 /b"));
        let message = cmd.map_err(|e| e.message);
        assert_eq!(
            message,
            Err("Usage: xenstore-write [-h] [-s] [-R] key value [...]".to_string())
        );
    }

    #[test]
    fn rm_rejects_the_ls_flag() {
        let cmd = parse(&words("xenstore-rm -f /a"));
        assert_eq!(cmd.map_err(|e| e.word_index), Err(1));
    }
}
