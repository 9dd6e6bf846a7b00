//! xl's scheduler, cpupool and vCPU commands as typed values: `vcpu-list`, `vcpu-pin`,
//! `sched-credit2`, `sched-rtds`, `cpupool-create`, `-destroy`, `-cpu-add`, `-cpu-remove`,
//! `-migrate`, `-list`, parsed with xl's option strings and xl's messages.
//!
//! Follows tools/xl/xl_cmdtable.c, tools/xl/xl_vcpu.c (`main_vcpupin`), tools/xl/xl_sched.c
//! (`main_sched_credit2`, `main_sched_rtds`: option letters and the checks made before any
//! libxl call), tools/xl/xl_cpupool.c and tools/libs/util/libxlu_cfg_y.y (the `key=value`
//! syntax of `cpupool-create`).
//!
//! # Invariants
//! - A command that parses here passes every check xl makes before calling libxl; the
//!   checks that need the host (domains, pools, CPUs) happen when the command runs.
//!
//! Left out on purpose: `cpupool-create` config files (a scenario has no dom0 file
//! system; the `name=... sched=... cpus=...` words are taken instead) and xl's global
//! `-N` dry run (the parser takes no global options). `xl sched-rtds -c` takes no
//! argument in 4.17's option string (`"d:p:b:e:v:c"`), so `-c POOL` selects nothing and
//! `POOL` is ignored, as on Xen.

use super::command::{XlCommand, XlParseError};
use super::cpulist::CpuList;

/// `-v` of `xl sched-rtds`: the vCPU ids (strtol'd) or `all`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtdsArgs {
    /// `-d`.
    pub domain: Option<String>,
    /// `-v N` values, in order.
    pub vcpus: Vec<i64>,
    /// `-v all`.
    pub all: bool,
    /// `-p` values (µs).
    pub periods: Vec<i64>,
    /// `-b` values (µs).
    pub budgets: Vec<i64>,
    /// `-e` values.
    pub extratimes: Vec<bool>,
}

/// `xl sched-credit2` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credit2Args {
    /// `-d`.
    pub domain: Option<String>,
    /// `-w`.
    pub weight: Option<i64>,
    /// `-c`.
    pub cap: Option<i64>,
    /// `-s`.
    pub schedparam: bool,
    /// `-r`.
    pub ratelimit_us: Option<i64>,
    /// `-p`.
    pub pool: Option<String>,
}

/// The `cpus=` of a `cpupool-create` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolCpusSpec {
    /// `cpus="2-3,5"` (a cpu range string, or a bare number).
    Range(String),
    /// `cpus=["2","3"]`: each item through `atoi`.
    List(Vec<String>),
}

/// `xl cpupool-create` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolCreateArgs {
    /// `-n`: print what would be done, create nothing.
    pub dry_run: bool,
    /// `name=`.
    pub name: Option<String>,
    /// `sched=`.
    pub sched: Option<String>,
    /// `cpus=`.
    pub cpus: Option<PoolCpusSpec>,
    /// `nodes=` items.
    pub nodes: Option<Vec<String>>,
}

/// `xl vcpu-pin` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuPinArgs {
    /// `-f`.
    pub force: bool,
    /// The domain.
    pub domain: String,
    /// The vCPU, `None` for `all`.
    pub vcpu: Option<u32>,
    /// Hard affinity (`None` = `-`).
    pub hard: Option<String>,
    /// Soft affinity (`None` = not given or `-`).
    pub soft: Option<String>,
}

/// `cpupool-create FILE` / `-f FILE`: xensim reads no dom0 files.
const NO_CONFIG_FILES: &str = "xl cpupool-create: config files are not supported by xensim; \
     give name=\"...\" sched=\"...\" cpus=\"...\" words";

fn err(word_index: usize, message: &str) -> XlParseError {
    XlParseError {
        word_index,
        message: message.to_string(),
    }
}

/// getopt with a `+` option string: options (with `:` arguments, attached or next word)
/// until the first positional word.
struct Opts {
    opts: Vec<(usize, char, String)>,
    positional: Vec<(usize, String)>,
}

fn getopt(words: &[String], spec: &str, required: usize) -> Result<Opts, XlParseError> {
    let sub = words.first().map_or("", String::as_str);
    let mut opts = Vec::new();
    let mut positional = Vec::new();
    let mut index = 1;
    while index < words.len() {
        let word = &words[index];
        if !positional.is_empty() || word == "-" || !word.starts_with('-') {
            positional.push((index, word.clone()));
        } else if word == "--" {
            positional.extend(
                words
                    .iter()
                    .enumerate()
                    .skip(index + 1)
                    .map(|(i, w)| (i, w.clone())),
            );
            break;
        } else {
            let letters: Vec<char> = word.chars().skip(1).collect();
            let mut at = 0;
            while at < letters.len() {
                let c = letters[at];
                let Some(pos) = spec.find(c).filter(|_| c != ':') else {
                    return Err(err(index, &format!("xl {sub}: invalid option -- '{c}'")));
                };
                if spec[pos + 1..].starts_with(':') {
                    let rest: String = letters[at + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        index += 1;
                        words.get(index).cloned().ok_or_else(|| {
                            err(
                                index - 1,
                                &format!("xl {sub}: option requires an argument -- '{c}'"),
                            )
                        })?
                    } else {
                        rest
                    };
                    opts.push((index, c, value));
                    break;
                }
                opts.push((index, c, String::new()));
                at += 1;
            }
        }
        index += 1;
    }
    if positional.len() < required {
        let plural = if required > 1 { "s" } else { "" };
        return Err(err(
            0,
            &format!("'xl {sub}' requires at least {required} argument{plural}."),
        ));
    }
    Ok(Opts { opts, positional })
}

/// `strtol(text, NULL, 10)`: leading blanks and sign, then digits; junk after them and a
/// text with no digits give what was read (0). Saturates like strtol.
pub fn strtol(text: &str) -> i64 {
    hypervisor_model::cnum::c_strtol(text.as_bytes(), 10).0
}

/// xl's `parse_cpurange` syntax check (an empty string is an empty map, as in xl).
pub fn check_cpurange(text: &str, word_index: usize) -> Result<(), XlParseError> {
    if text.split(',').all(str::is_empty) {
        return Ok(());
    }
    CpuList::parse(text)
        .map(|_| ())
        .map_err(|e| err(word_index, &e.message))
}

/// Parses the commands of this file; `None` for any other subcommand.
pub fn parse(words: &[String]) -> Option<Result<XlCommand, XlParseError>> {
    let sub = words.first()?.as_str();
    Some(match sub {
        "vcpu-list" => getopt(words, "", 0).map(|o| XlCommand::VcpuList {
            domains: o.positional.into_iter().map(|(_, w)| w).collect(),
        }),
        "vcpu-pin" => parse_vcpu_pin(words),
        "sched-credit2" => parse_credit2(words),
        "sched-rtds" => parse_rtds(words),
        "cpupool-create" => parse_pool_create(words),
        "cpupool-list" => getopt(words, "c", 0).map(|o| XlCommand::CpupoolList {
            cpus: o.opts.iter().any(|(_, c, _)| *c == 'c'),
            pool: o.positional.into_iter().next().map(|(_, w)| w),
        }),
        "cpupool-destroy" => getopt(words, "", 1).map(|o| XlCommand::CpupoolDestroy {
            pool: o.positional[0].1.clone(),
        }),
        "cpupool-cpu-add" | "cpupool-cpu-remove" => {
            parse_pool_cpus(words, sub == "cpupool-cpu-add")
        }
        "cpupool-migrate" => getopt(words, "", 2).map(|o| XlCommand::CpupoolMigrate {
            domain: o.positional[0].1.clone(),
            pool: o.positional[1].1.clone(),
        }),
        _ => return None,
    })
}

fn parse_vcpu_pin(words: &[String]) -> Result<XlCommand, XlParseError> {
    let o = getopt(words, "fi", 3)?;
    let force = o.opts.iter().any(|(_, c, _)| *c == 'f');
    let (vcpu_index, vcpu_text) = &o.positional[1];
    let value = strtol(vcpu_text);
    let has_digits = vcpu_text
        .trim_start()
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit());
    let vcpu = if !has_digits || value < 0 {
        if vcpu_text != "all" {
            return Err(err(
                *vcpu_index,
                &format!("Error: Invalid argument {vcpu_text} as VCPU."),
            ));
        }
        if force {
            return Err(err(
                *vcpu_index,
                "Error: --force and 'all' as VCPU not allowed.",
            ));
        }
        None
    } else {
        Some(u32::try_from(value).map_err(|_| err(*vcpu_index, "vCPU id out of range"))?)
    };
    let mut maps = [None, None];
    for (slot, position) in [2usize, 3].into_iter().enumerate() {
        if let Some((index, text)) = o.positional.get(position) {
            if text != "-" {
                check_cpurange(text, *index)?;
                maps[slot] = Some(text.clone());
            }
        }
    }
    let [hard, soft] = maps;
    Ok(XlCommand::VcpuPin(VcpuPinArgs {
        force,
        domain: o.positional[0].1.clone(),
        vcpu,
        hard,
        soft,
    }))
}

fn parse_credit2(words: &[String]) -> Result<XlCommand, XlParseError> {
    let o = getopt(words, "d:w:c:p:r:s", 0)?;
    let mut a = Credit2Args::default();
    for (_, c, value) in &o.opts {
        match c {
            'd' => a.domain = Some(value.clone()),
            'w' => a.weight = Some(strtol(value)),
            'c' => a.cap = Some(strtol(value)),
            's' => a.schedparam = true,
            'r' => a.ratelimit_us = Some(strtol(value)),
            _ => a.pool = Some(value.clone()),
        }
    }
    let setting = a.weight.is_some() || a.cap.is_some();
    if a.pool.is_some() && (a.domain.is_some() || setting) {
        return Err(err(
            0,
            "Specifying a cpupool is not allowed with other options.",
        ));
    }
    if a.domain.is_none() && setting {
        return Err(err(0, "Must specify a domain."));
    }
    Ok(XlCommand::SchedCredit2(a))
}

fn parse_rtds(words: &[String]) -> Result<XlCommand, XlParseError> {
    let o = getopt(words, "d:p:b:e:v:c", 0)?;
    let mut a = RtdsArgs::default();
    for (index, c, value) in &o.opts {
        match c {
            'd' => a.domain = Some(value.clone()),
            'p' => a.periods.push(strtol(value)),
            'b' => a.budgets.push(strtol(value)),
            'e' => match value.as_str() {
                "0" => a.extratimes.push(false),
                "1" => a.extratimes.push(true),
                _ => return Err(err(*index, "Invalid extratime.")),
            },
            'v' if value == "all" => a.all = true,
            'v' => a.vcpus.push(strtol(value)),
            // -c: no argument in 4.17's option string, so no pool is selected.
            _ => {}
        }
    }
    let params = !a.periods.is_empty() || !a.budgets.is_empty() || !a.extratimes.is_empty();
    let opt_v = !a.vcpus.is_empty();
    if a.domain.is_none() && (params || opt_v) {
        return Err(err(0, "Missing parameters."));
    }
    if a.domain.is_some() && !opt_v && !a.all && params {
        return Err(err(0, "Must specify VCPU."));
    }
    if opt_v && a.all {
        return Err(err(0, "Incorrect VCPU IDs."));
    }
    let (v, p, b, e) = (
        a.vcpus.len(),
        a.periods.len(),
        a.budgets.len(),
        a.extratimes.len(),
    );
    if (v > b && b > 0) || (v > p && p > 0) || (v > e && e > 0) || p != b || p != e {
        return Err(err(0, "Incorrect number of period, budget and extratime"));
    }
    Ok(XlCommand::SchedRtds(a))
}

fn parse_pool_cpus(words: &[String], add: bool) -> Result<XlCommand, XlParseError> {
    let o = getopt(words, "", 2)?;
    let (index, cpus) = &o.positional[1];
    check_cpurange(cpus, *index)?;
    let pool = o.positional[0].1.clone();
    let cpus = cpus.clone();
    Ok(if add {
        XlCommand::CpupoolCpuAdd { pool, cpus }
    } else {
        XlCommand::CpupoolCpuRemove { pool, cpus }
    })
}

fn parse_pool_create(words: &[String]) -> Result<XlCommand, XlParseError> {
    let o = getopt(words, "nf:", 0)?;
    let mut a = PoolCreateArgs {
        dry_run: o.opts.iter().any(|(_, c, _)| *c == 'n'),
        ..PoolCreateArgs::default()
    };
    if let Some((index, _, _)) = o.opts.iter().find(|(_, c, _)| *c == 'f') {
        return Err(err(*index, NO_CONFIG_FILES));
    }
    for (index, word) in &o.positional {
        let Some((key, value)) = word.split_once('=') else {
            return Err(err(*index, NO_CONFIG_FILES));
        };
        let value = cfg_value(value.trim()).ok_or_else(|| {
            err(
                *index,
                &format!(
                    "command line:1: config parsing error near `{}': syntax error",
                    value.trim()
                ),
            )
        })?;
        match (key.trim(), value) {
            ("name", CfgValue::Atom(v)) => a.name = Some(v),
            ("sched", CfgValue::Atom(v)) => a.sched = Some(v),
            ("cpus", CfgValue::Atom(v)) => {
                check_cpurange(&v, *index)?;
                a.cpus = Some(PoolCpusSpec::Range(v));
            }
            ("cpus", CfgValue::List(items)) => a.cpus = Some(PoolCpusSpec::List(items)),
            ("nodes", CfgValue::List(items)) => a.nodes = Some(items),
            ("nodes", CfgValue::Atom(v)) => a.nodes = Some(vec![v]),
            // xlu keeps unknown keys; cpupool-create reads only the keys above.
            _ => {}
        }
    }
    Ok(XlCommand::CpupoolCreate(a))
}

enum CfgValue {
    Atom(String),
    List(Vec<String>),
}

/// One xlu config value: `"string"`, a number, or `[ value, ... ]`.
fn cfg_value(text: &str) -> Option<CfgValue> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let items: Option<Vec<String>> = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(cfg_atom)
            .collect();
        return items.map(CfgValue::List);
    }
    cfg_atom(text).map(CfgValue::Atom)
}

fn cfg_atom(text: &str) -> Option<String> {
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Some(inner.to_string());
    }
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Some(inner.to_string());
    }
    let number = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    number.then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::{parse, strtol, Credit2Args, PoolCpusSpec, VcpuPinArgs};
    use crate::xl::command::XlCommand;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn message(line: &str) -> String {
        match parse(&words(line)) {
            Some(Err(e)) => e.message,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn strtol_reads_leading_number_and_ignores_junk() {
        assert_eq!(strtol("12abc"), 12);
        assert_eq!(strtol("abc"), 0);
        assert_eq!(strtol("-3"), -3);
    }

    #[test]
    fn vcpu_pin_all_with_hard_and_soft() {
        let parsed = parse(&words("vcpu-pin vm1 all 0-3,^2 -")).and_then(Result::ok);
        let expected = XlCommand::VcpuPin(VcpuPinArgs {
            force: false,
            domain: "vm1".into(),
            vcpu: None,
            hard: Some("0-3,^2".into()),
            soft: None,
        });
        assert_eq!(parsed, Some(expected));
    }

    #[test]
    fn vcpu_pin_errors_are_xls() {
        assert_eq!(
            message("vcpu-pin vm1 x 1"),
            "Error: Invalid argument x as VCPU."
        );
        assert_eq!(
            message("vcpu-pin -f vm1 all 1"),
            "Error: --force and 'all' as VCPU not allowed."
        );
        assert_eq!(message("vcpu-pin vm1 0 3-1"), "Invalid pcpu range: 3-1.");
        assert_eq!(
            message("vcpu-pin vm1 0 ^all"),
            "Can't combine \"^\" and \"all\"."
        );
        assert_eq!(
            message("vcpu-pin vm1 0"),
            "'xl vcpu-pin' requires at least 3 arguments."
        );
    }

    #[test]
    fn sched_credit2_option_checks() {
        assert_eq!(message("sched-credit2 -w 5"), "Must specify a domain.");
        assert_eq!(
            message("sched-credit2 -p Pool-0 -d vm1"),
            "Specifying a cpupool is not allowed with other options."
        );
        let parsed = parse(&words("sched-credit2 -s -r100 -p Pool-0")).and_then(Result::ok);
        let expected = XlCommand::SchedCredit2(Credit2Args {
            schedparam: true,
            ratelimit_us: Some(100),
            pool: Some("Pool-0".into()),
            ..Credit2Args::default()
        });
        assert_eq!(parsed, Some(expected));
    }

    #[test]
    fn sched_rtds_option_checks() {
        assert_eq!(message("sched-rtds -p 100"), "Missing parameters.");
        assert_eq!(
            message("sched-rtds -d vm1 -p 100 -b 50 -e 1"),
            "Must specify VCPU."
        );
        assert_eq!(
            message("sched-rtds -d vm1 -v all -v 1"),
            "Incorrect VCPU IDs."
        );
        assert_eq!(message("sched-rtds -d vm1 -v 0 -e 2"), "Invalid extratime.");
        assert_eq!(
            message("sched-rtds -d vm1 -v 0 -v 1 -p 100 -b 50 -e 1"),
            "Incorrect number of period, budget and extratime"
        );
    }

    #[test]
    fn cpupool_create_takes_quoted_values_and_lists() {
        let line = [
            "cpupool-create",
            "name=\"rt\"",
            "sched=\"null\"",
            "cpus=[\"2\",\"3\"]",
        ];
        let owned: Vec<String> = line.iter().map(|w| (*w).to_string()).collect();
        let Some(Ok(XlCommand::CpupoolCreate(a))) = parse(&owned) else {
            panic!("cpupool-create parses");
        };
        assert_eq!(a.name.as_deref(), Some("rt"));
        assert_eq!(
            a.cpus,
            Some(PoolCpusSpec::List(vec!["2".into(), "3".into()]))
        );
    }

    #[test]
    fn cpupool_create_unquoted_name_is_a_syntax_error() {
        assert!(message("cpupool-create name=rt").contains("syntax error"));
    }
}
