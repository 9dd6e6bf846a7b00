//! Sweep output on disk and `xensim sweep merge`.
//!
//! `--out DIR` holds `shard-I-of-N.jsonl`: a header line (scenario, its content hash, the
//! seed range, the shard, the replay arguments) and one result line per seed of the shard,
//! by seed; and `summary.json`, the summary of those seeds. `merge DIR...` reads every shard
//! file of the directories, checks they are the `N` shards of one sweep (same header, every
//! index once, each with exactly its seeds) and summarizes all lines, so its `summary.json`
//! equals a one-machine sweep's byte for byte.
//!
//! # Invariants
//! - Nothing read from a file is trusted: every line is parsed and validated, and a problem
//!   is a [`SweepError`] naming the file and line.
//! - Directory listings are sorted before use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

use super::line::SeedResult;
use super::summary::{self, ReplayCommand, SweepSummary};
use super::{SeedRange, Shard, SweepError};
use crate::scenario::Scenario;

/// `schema` of a shard file's header line.
pub const SHARD_SCHEMA: &str = "xensim.sweep.shard";
/// The summary's file name in an output directory.
pub const SUMMARY_FILE: &str = "summary.json";
/// Longest line `merge` reads (a line carries one seed's pooled samples).
const LINE_BYTES_MAX: usize = 256 << 20;

/// The first line of a shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardHeader {
    /// [`SHARD_SCHEMA`].
    pub schema: String,
    /// The xensim that wrote it.
    pub xensim_version: String,
    /// Scenario file as given.
    pub scenario: String,
    /// SipHash-1-3 of the scenario and every xl.cfg it read, 16 hex digits.
    pub scenario_hash: String,
    /// `A..B`.
    pub seeds: String,
    /// `i/n`.
    pub shard: String,
    /// Extra replay arguments (`--scheduler rtds`), usually empty.
    pub replay_extra: String,
}

/// The content hash of a scenario's sources (length-prefixed names and texts).
pub fn scenario_hash(scenario: &Scenario) -> String {
    use std::hash::Hasher as _;
    let mut hasher = SipHasher13::new();
    for source in &scenario.sources {
        for part in [source.name.as_bytes(), source.text.as_bytes()] {
            hasher.write(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
            hasher.write(part);
        }
    }
    format!("{:016x}", hasher.finish())
}

/// The header of `shard` of a sweep of `scenario` over `range`; `replay` names the scenario
/// as the replay commands will (the path given on the command line).
pub fn header(
    scenario: &Scenario,
    range: SeedRange,
    shard: Shard,
    replay: &ReplayCommand,
) -> ShardHeader {
    ShardHeader {
        schema: SHARD_SCHEMA.to_owned(),
        xensim_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario: replay.scenario.clone(),
        scenario_hash: scenario_hash(scenario),
        seeds: range.to_string(),
        shard: shard.to_string(),
        replay_extra: replay.extra.clone(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `shard-I-of-N.jsonl` and `summary.json` into `dir` (created if needed).
pub fn write_dir(
    dir: &Path,
    header: &ShardHeader,
    shard: Shard,
    lines: &[SeedResult],
    summary: &SweepSummary,
) -> Result<(), SweepError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut text = serde_json::to_string(header).expect("a header holds strings only");
    text.push('\n');
    for line in lines {
        text.push_str(&line.to_line());
        text.push('\n');
    }
    let path = dir.join(format!("shard-{}-of-{}.jsonl", shard.index, shard.count));
    std::fs::write(&path, text).map_err(io_error(&path))?;
    let path = dir.join(SUMMARY_FILE);
    std::fs::write(&path, summary.to_json()).map_err(io_error(&path))
}

/// One shard file read back.
#[derive(Debug)]
struct ShardFile {
    path: String,
    header: ShardHeader,
    lines: Vec<SeedResult>,
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> SweepError {
    SweepError::BadFile {
        path: path.display().to_string(),
        line,
        message: message.into(),
    }
}

fn read_shard(path: &Path) -> Result<ShardFile, SweepError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let mut rows = text.lines().enumerate();
    let (_, first) = rows
        .next()
        .ok_or_else(|| bad(path, 0, "empty shard file"))?;
    let header: ShardHeader = serde_json::from_str(first)
        .map_err(|e| bad(path, 1, format!("not a shard header: {e}")))?;
    if header.schema != SHARD_SCHEMA {
        return Err(bad(path, 1, format!("schema is not {SHARD_SCHEMA:?}")));
    }
    let mut lines = Vec::new();
    for (index, row) in rows {
        if row.len() > LINE_BYTES_MAX {
            return Err(bad(path, index + 1, "line too long"));
        }
        let result: SeedResult = serde_json::from_str(row)
            .map_err(|e| bad(path, index + 1, format!("not a seed result: {e}")))?;
        result.validate().map_err(|m| bad(path, index + 1, m))?;
        lines.push(result);
    }
    Ok(ShardFile {
        path: path.display().to_string(),
        header,
        lines,
    })
}

/// Every `shard-*.jsonl` in `dir`, sorted by name.
fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>, SweepError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("shard-") && name.ends_with(".jsonl") {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(bad(
            dir,
            0,
            "no shard-*.jsonl file (not a sweep --out directory)",
        ));
    }
    Ok(paths)
}

/// `xensim sweep merge DIR...`: the summary of all shards in `dirs`.
pub fn merge(dirs: &[PathBuf]) -> Result<SweepSummary, SweepError> {
    let mut shards = Vec::new();
    for dir in dirs {
        for path in shard_paths(dir)? {
            shards.push(read_shard(&path)?);
        }
    }
    let first = shards
        .first()
        .ok_or_else(|| SweepError::Inconsistent("no directory given".to_owned()))?;
    let reference = first.header.clone();
    let range = SeedRange::parse(&reference.seeds)
        .map_err(|e| bad(Path::new(&first.path), 1, e.to_string()))?;
    let count = Shard::parse(&reference.shard)
        .map_err(|e| bad(Path::new(&first.path), 1, e.to_string()))?
        .count;
    let mut seen = vec![false; usize::try_from(count).unwrap_or(usize::MAX).min(1 << 20)];
    let mut lines = Vec::new();
    for file in shards {
        let shard = check_shard(&file, &reference, range)?;
        let slot = usize::try_from(shard.index)
            .ok()
            .and_then(|i| seen.get_mut(i));
        match slot {
            Some(slot) if !*slot => *slot = true,
            _ => {
                return Err(SweepError::Inconsistent(format!(
                    "shard {shard} appears twice ({})",
                    file.path
                )))
            }
        }
        lines.extend(file.lines);
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(SweepError::Inconsistent(format!(
            "shard {missing}/{count} is missing"
        )));
    }
    let replay = ReplayCommand {
        scenario: reference.scenario,
        extra: reference.replay_extra,
    };
    Ok(summary::summarize(&replay, &lines)?)
}

/// Checks one shard file against the first header; returns its shard.
fn check_shard(
    file: &ShardFile,
    reference: &ShardHeader,
    range: SeedRange,
) -> Result<Shard, SweepError> {
    let path = Path::new(&file.path);
    let h = &file.header;
    let same_sweep = h.scenario == reference.scenario
        && h.scenario_hash == reference.scenario_hash
        && h.seeds == reference.seeds
        && h.replay_extra == reference.replay_extra
        && h.xensim_version == reference.xensim_version;
    if !same_sweep {
        return Err(SweepError::Inconsistent(format!(
            "{} is from another sweep (scenario, its hash, seeds, xensim version or replay \
             arguments differ from the first shard's)",
            file.path
        )));
    }
    let shard = Shard::parse(&h.shard).map_err(|e| bad(path, 1, e.to_string()))?;
    let expected_count = Shard::parse(&reference.shard)
        .map_err(|e| bad(path, 1, e.to_string()))?
        .count;
    if shard.count != expected_count {
        return Err(SweepError::Inconsistent(format!(
            "{} is shard {shard}, the first shard was one of {expected_count}",
            file.path
        )));
    }
    let seeds: Vec<u64> = file.lines.iter().map(|l| l.seed).collect();
    if seeds != range.shard_seeds(shard) {
        return Err(bad(
            path,
            0,
            format!("its seeds are not exactly shard {shard} of {range}, in order"),
        ));
    }
    Ok(shard)
}
