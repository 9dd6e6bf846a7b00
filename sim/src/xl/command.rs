//! xl command lines as typed values: the subset of `tools/xl/xl_cmdtable.c` xensim runs,
//! parsed with xl's option letters and xl's messages for bad arguments.
//!
//! Used both by `[[at]] xl = "..."` timeline entries (parsed at load time, so errors are
//! located) and by `xensim xl FILE -- <command>`.

use std::fmt;

pub use super::sched_command::{Credit2Args, PoolCpusSpec, PoolCreateArgs, RtdsArgs, VcpuPinArgs};

/// A domain argument as written: a name or a numeric id (`find_domain` decides later).
pub type DomainArg = String;

/// One parsed xl command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XlCommand {
    /// `xl create [-p] [-q] CFG [key=value ...]`.
    Create {
        /// Path to the xl.cfg file, as written.
        config_path: String,
        /// `-p`: leave it paused.
        paused: bool,
    },
    /// `xl destroy DOM`.
    Destroy(DomainArg),
    /// `xl pause DOM`.
    Pause(DomainArg),
    /// `xl unpause DOM`.
    Unpause(DomainArg),
    /// `xl shutdown [-w] [-F] DOM` (or `-a` for all).
    Shutdown {
        /// `None` with `-a`.
        domain: Option<DomainArg>,
        /// `-w`: wait for the domain to finish shutting down.
        wait: bool,
    },
    /// `xl reboot [-w] [-F] DOM`.
    Reboot {
        /// The domain.
        domain: DomainArg,
    },
    /// `xl list [-l] [-v] [-c] [-n] [DOM ...]`.
    List {
        /// `-l`: JSON configuration.
        long: bool,
        /// `-v`: UUID, reason code, security label.
        verbose: bool,
        /// `-c`: cpupool column.
        cpupool: bool,
        /// `-n`: NUMA node affinity column.
        numa: bool,
        /// Domains to list (all when empty).
        domains: Vec<DomainArg>,
    },
    /// `xl claims`: `xl list` with each domain's outstanding claim.
    Claims,
    /// `xl mem-set DOM SIZE`.
    MemSet {
        /// The domain.
        domain: DomainArg,
        /// The size as written (parsed when it runs, as xl does).
        size: String,
    },
    /// `xl mem-max DOM SIZE`.
    MemMax {
        /// The domain.
        domain: DomainArg,
        /// The size as written.
        size: String,
    },
    /// `xl info [-n] [key]`.
    Info {
        /// `-n`: topology and NUMA tables.
        numa: bool,
        /// A key prefix to print values for.
        key: Option<String>,
    },
    /// `xl dmesg [-c]`.
    Dmesg {
        /// `-c`: clear the ring after printing.
        clear: bool,
    },
    /// `xl console [-t TYPE] [-n NUM] DOM`.
    Console(super::console_command::ConsoleArgs),
    /// `xl vcpu-list [DOM ...]`.
    VcpuList {
        /// Domains (all when empty).
        domains: Vec<DomainArg>,
    },
    /// `xl vcpu-pin [-f] [-i] DOM VCPU|all HARD [SOFT]`.
    VcpuPin(VcpuPinArgs),
    /// `xl sched-credit2 [...]`.
    SchedCredit2(Credit2Args),
    /// `xl sched-rtds [...]`.
    SchedRtds(RtdsArgs),
    /// `xl cpupool-create [-n] key=value...`.
    CpupoolCreate(PoolCreateArgs),
    /// `xl cpupool-list [-c] [POOL]`.
    CpupoolList {
        /// `-c`: CPU list instead of the table.
        cpus: bool,
        /// Only this pool.
        pool: Option<String>,
    },
    /// `xl cpupool-destroy POOL`.
    CpupoolDestroy {
        /// Pool name or id.
        pool: String,
    },
    /// `xl cpupool-cpu-add POOL CPUS`.
    CpupoolCpuAdd {
        /// Pool name or id.
        pool: String,
        /// cpu range string.
        cpus: String,
    },
    /// `xl cpupool-cpu-remove POOL CPUS`.
    CpupoolCpuRemove {
        /// Pool name or id.
        pool: String,
        /// cpu range string.
        cpus: String,
    },
    /// `xl cpupool-migrate DOM POOL`.
    CpupoolMigrate {
        /// The domain.
        domain: DomainArg,
        /// Pool name or id.
        pool: String,
    },
}

/// A bad xl command line: which word, and what xl would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlParseError {
    /// Index of the offending word (0 = the subcommand).
    pub word_index: usize,
    /// Message in xl's words.
    pub message: String,
}

impl fmt::Display for XlParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for XlParseError {}

impl XlCommand {
    /// Parses `words` (without the leading `xl`).
    pub fn parse(words: &[String]) -> Result<XlCommand, XlParseError> {
        let Some(sub) = words.first() else {
            return Err(err(0, "no xl command given"));
        };
        if let Some(parsed) = super::sched_command::parse(words) {
            return parsed;
        }
        let args = Args::new(words);
        match sub.as_str() {
            "create" => parse_create(args),
            "destroy" => args.single_domain().map(XlCommand::Destroy),
            "pause" => args.single_domain().map(XlCommand::Pause),
            "unpause" => args.single_domain().map(XlCommand::Unpause),
            "shutdown" => parse_shutdown(args),
            "reboot" => parse_reboot(args),
            "list" => parse_list(args),
            "info" => parse_info(args),
            // SWITCH_FOREACH_OPT(opt, "", NULL, "claims", 0): no options; extra words
            // are ignored.
            "claims" => args.check_flags("").map(|()| XlCommand::Claims),
            "mem-set" | "mem-max" => parse_mem(args),
            "dmesg" => parse_dmesg(args),
            "console" => super::console_command::parse(words),
            other => Err(err(0, &format!("command not implemented: {other}"))),
        }
    }

    /// True for commands that only read state (safe for `xensim xl FILE -- ...`).
    pub fn is_query(&self) -> bool {
        match self {
            XlCommand::List { .. }
            | XlCommand::Claims
            | XlCommand::Info { .. }
            | XlCommand::Dmesg { .. }
            | XlCommand::Console(_)
            | XlCommand::VcpuList { .. }
            | XlCommand::CpupoolList { .. } => true,
            XlCommand::SchedCredit2(a) => {
                a.weight.is_none() && a.cap.is_none() && a.ratelimit_us.is_none()
            }
            XlCommand::SchedRtds(a) => a.periods.is_empty(),
            _ => false,
        }
    }
}

fn err(word_index: usize, message: &str) -> XlParseError {
    XlParseError {
        word_index,
        message: message.to_string(),
    }
}

/// Options (letters) and positional words after the subcommand, with their indices.
struct Args<'a> {
    sub: &'a str,
    flags: Vec<(usize, char)>,
    positional: Vec<(usize, &'a str)>,
}

impl<'a> Args<'a> {
    fn new(words: &'a [String]) -> Args<'a> {
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        let mut options_done = false;
        for (index, word) in words.iter().enumerate().skip(1) {
            if !options_done && word == "--" {
                options_done = true;
            } else if !options_done && word.len() > 1 && word.starts_with('-') {
                flags.extend(word.chars().skip(1).map(|c| (index, c)));
            } else {
                // xl uses getopt with "+" semantics for most commands: options stop at the
                // first positional word.
                options_done = true;
                positional.push((index, word.as_str()));
            }
        }
        Args {
            sub: words[0].as_str(),
            flags,
            positional,
        }
    }

    /// Fails on any option letter not in `allowed`, with getopt's message.
    fn check_flags(&self, allowed: &str) -> Result<(), XlParseError> {
        match self.flags.iter().find(|(_, c)| !allowed.contains(*c)) {
            Some((index, c)) => Err(err(
                *index,
                &format!("xl {}: invalid option -- '{c}'", self.sub),
            )),
            None => Ok(()),
        }
    }

    fn has(&self, flag: char) -> bool {
        self.flags.iter().any(|(_, c)| *c == flag)
    }

    fn single_domain(&self) -> Result<DomainArg, XlParseError> {
        self.check_flags("")?;
        match self.positional.as_slice() {
            [(_, dom)] => Ok((*dom).to_string()),
            [] => Err(err(
                0,
                &format!("'xl {}' requires at least 1 argument.", self.sub),
            )),
            [_, (index, _), ..] => {
                Err(err(*index, &format!("xl {}: too many arguments", self.sub)))
            }
        }
    }
}

fn parse_create(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("pq")?;
    let Some((_, path)) = args.positional.first() else {
        return Err(err(
            0,
            "xl create: a config file is required (xensim has no default config)",
        ));
    };
    if let Some((index, extra)) = args.positional.get(1) {
        return Err(err(
            *index,
            &format!("xl create: key=value overrides are not supported by xensim: {extra}"),
        ));
    }
    Ok(XlCommand::Create {
        config_path: (*path).to_string(),
        paused: args.has('p'),
    })
}

fn parse_shutdown(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("awF")?;
    let wait = args.has('w');
    if args.has('a') {
        if let Some((index, _)) = args.positional.first() {
            return Err(err(
                *index,
                "xl shutdown: -a and a domain argument are mutually exclusive",
            ));
        }
        return Ok(XlCommand::Shutdown { domain: None, wait });
    }
    match args.positional.as_slice() {
        [(_, dom)] => Ok(XlCommand::Shutdown {
            domain: Some((*dom).to_string()),
            wait,
        }),
        [] => Err(err(0, "'xl shutdown' requires at least 1 argument.")),
        [_, (index, _), ..] => Err(err(*index, "xl shutdown: too many arguments")),
    }
}

fn parse_reboot(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("wF")?;
    match args.positional.as_slice() {
        [(_, dom)] => Ok(XlCommand::Reboot {
            domain: (*dom).to_string(),
        }),
        [] => Err(err(0, "'xl reboot' requires at least 1 argument.")),
        [_, (index, _), ..] => Err(err(*index, "xl reboot: too many arguments")),
    }
}

fn parse_list(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("lvcn")?;
    Ok(XlCommand::List {
        long: args.has('l'),
        verbose: args.has('v'),
        cpupool: args.has('c'),
        numa: args.has('n'),
        domains: args
            .positional
            .iter()
            .map(|(_, d)| (*d).to_string())
            .collect(),
    })
}

/// `xl mem-set|mem-max DOM SIZE` (`SWITCH_FOREACH_OPT(opt, "", NULL, ..., 2)`).
fn parse_mem(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("")?;
    let (Some((_, domain)), Some((_, size))) = (args.positional.first(), args.positional.get(1))
    else {
        let message = format!("'xl {}' requires at least 2 arguments.", args.sub);
        return Err(err(0, &message));
    };
    let (domain, size) = ((*domain).to_string(), (*size).to_string());
    Ok(if args.sub == "mem-set" {
        XlCommand::MemSet { domain, size }
    } else {
        XlCommand::MemMax { domain, size }
    })
}

fn parse_info(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("n")?;
    if let Some((index, _)) = args.positional.get(1) {
        return Err(err(*index, "xl info: too many arguments"));
    }
    Ok(XlCommand::Info {
        numa: args.has('n'),
        key: args.positional.first().map(|(_, k)| (*k).to_string()),
    })
}

fn parse_dmesg(args: Args<'_>) -> Result<XlCommand, XlParseError> {
    args.check_flags("c")?;
    if let Some((index, _)) = args.positional.first() {
        return Err(err(*index, "xl dmesg: too many arguments"));
    }
    Ok(XlCommand::Dmesg {
        clear: args.has('c'),
    })
}

/// Splits a command line into words as POSIX `sh` does (quotes and backslashes, no
/// expansion). Returns the byte offset of each word's start for located errors.
pub fn split_words(line: &str) -> Result<Vec<(usize, String)>, XlParseError> {
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            '\'' => {
                let word = current.get_or_insert_with(|| (offset, String::new()));
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, ch)) => word.1.push(ch),
                        None => return Err(err(words.len(), "unterminated single quote")),
                    }
                }
            }
            '"' => {
                let word = current.get_or_insert_with(|| (offset, String::new()));
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, ch @ ('"' | '\\' | '$' | '`'))) => word.1.push(ch),
                            Some((_, '\n')) => {}
                            Some((_, ch)) => {
                                word.1.push('\\');
                                word.1.push(ch);
                            }
                            None => return Err(err(words.len(), "unterminated double quote")),
                        },
                        Some((_, ch)) => word.1.push(ch),
                        None => return Err(err(words.len(), "unterminated double quote")),
                    }
                }
            }
            '\\' => {
                let word = current.get_or_insert_with(|| (offset, String::new()));
                match chars.next() {
                    Some((_, '\n')) => {}
                    Some((_, ch)) => word.1.push(ch),
                    None => return Err(err(words.len(), "trailing backslash")),
                }
            }
            other => current
                .get_or_insert_with(|| (offset, String::new()))
                .1
                .push(other),
        }
    }
    if let Some(word) = current.take() {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::{split_words, XlCommand};

    fn words(line: &str) -> Vec<String> {
        split_words(line)
            .expect("test line splits")
            .into_iter()
            .map(|(_, w)| w)
            .collect()
    }

    #[test]
    fn split_words_honours_quotes() {
        assert_eq!(
            words(r#"create -p "my vm.cfg" 'a b'"#),
            ["create", "-p", "my vm.cfg", "a b"]
        );
    }

    #[test]
    fn mem_set_keeps_size_text_for_run_time_parsing() {
        assert_eq!(
            XlCommand::parse(&words("mem-set vm1 2gb")),
            Ok(XlCommand::MemSet {
                domain: "vm1".into(),
                size: "2gb".into()
            })
        );
    }

    #[test]
    fn mem_max_without_size_is_refused() {
        let refused = XlCommand::parse(&words("mem-max vm1")).map_err(|e| e.message);
        assert_eq!(
            refused,
            Err("'xl mem-max' requires at least 2 arguments.".to_string())
        );
    }

    #[test]
    fn claims_is_a_query() {
        assert_eq!(XlCommand::parse(&words("claims")), Ok(XlCommand::Claims));
        assert!(XlCommand::Claims.is_query());
    }

    #[test]
    fn pause_takes_one_domain() {
        assert_eq!(
            XlCommand::parse(&words("pause vm1")),
            Ok(XlCommand::Pause("vm1".into()))
        );
    }

    #[test]
    fn unknown_list_option_names_the_letter() {
        let error = XlCommand::parse(&words("list -q")).expect_err("-q is not an xl list option");
        assert_eq!(error.message, "xl list: invalid option -- 'q'");
        assert_eq!(error.word_index, 1);
    }

    #[test]
    fn destroy_without_domain_is_an_error() {
        let error = XlCommand::parse(&words("destroy")).expect_err("destroy needs a domain");
        assert_eq!(error.message, "'xl destroy' requires at least 1 argument.");
    }
}
