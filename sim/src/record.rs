//! The replay trace and the run hash.
//!
//! Every core input and every core event becomes one record:
//! `kind: u8 (0 input, 1 event, 2 mark) | host: u16 LE | time_ns: u64 LE | payload` where
//! the payload is the core's pinned canonical encoding (`hypervisor_model::encode`), or for
//! a mark the simulator's own bytes (a serve session's start and end, `serve::session`).
//! The run hash is XXH3-64 with a fixed seed over `len: u32 LE | record` for every record
//! in order (the same algorithm hashes the header's sources and cost table: [`pinned_hash`]).
//! The simulator's random streams are derived with SipHash instead (`rng.rs`): the two are
//! independent, so changing this hash changed no random draw.
//!
//! The trace file (`--trace`) is self-contained so `xensim replay` needs nothing else:
//! `MAGIC | file format: u32 | record format: u32 | hash algorithm name | seed: u64 |
//! scenario name | sources (count, then name and text of the scenario and every xl.cfg) |
//! sources hash u64 | cost table hash u64 | records (u32 length then bytes) | END marker
//! u32::MAX | run hash u64`. Strings are u32 length + UTF-8.
//!
//! # Invariants
//! - The hash depends only on the records: not on whether a file is written, the build
//!   profile, the thread, or the machine.
//! - A recorder `keeps` records exactly when it writes, captures or compares them.
//! - [`HASH_ALGORITHM`] names [`HASH_SEED`]; a trace written with another algorithm or an
//!   older file format is refused, never replayed against a hash it cannot match.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use hypervisor_model::encode::{Encoder, FieldSink, FixedEncoder, TRACE_FORMAT_VERSION};
use hypervisor_model::event::CoreInput;
use hypervisor_model::trace::TraceEvent;
use twox_hash::XxHash3_64;

use stream::HashStream;

/// File magic of a replay trace.
pub const TRACE_MAGIC: &[u8; 8] = b"XSTRACE\0";
/// Version of the file framing (the record payloads have `TRACE_FORMAT_VERSION`).
/// Version 1 hashed with SipHash-1-3; version 2 with XXH3-64.
pub const FILE_FORMAT_VERSION: u32 = 2;
/// Name of the pinned hash, written in the header.
pub const HASH_ALGORITHM: &str = "xxh3-64/seed=0x3265636172747378";
/// The fixed XXH3 seed ("xstrace2" as a little-endian u64).
const HASH_SEED: u64 = 0x3265_6361_7274_7378;
const END_MARKER: u32 = u32::MAX;
/// Bytes of the window an event record is first written into: its 15-byte header and
/// any event with no text, bytes or list (37 bytes at most) fit.
const EVENT_WINDOW_BYTES: usize = 64;
/// Bytes of the window an input record is first written into: its 15-byte header and any
/// input but a toolstack operation, console text or a read of over 8 sectors fit (a frame
/// input, the longest fixed one, is 56 bytes).
const INPUT_WINDOW_BYTES: usize = 96;
const KIND_INPUT: u8 = 0;
const KIND_EVENT: u8 = 1;
const KIND_MARK: u8 = 2;

/// A run hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunHash(pub u64);

impl std::fmt::Display for RunHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Errors reading or writing a trace file.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a trace, or is cut short, or from another format version.
    #[error("{path}: not a usable xensim trace: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The header of a replay trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    /// Seed of the run.
    pub seed: u64,
    /// Scenario file name.
    pub scenario_name: String,
    /// (name, text) of the scenario and every xl.cfg it read, scenario first.
    pub sources: Vec<(String, String)>,
    /// Hash of the effective cost table of every host (defaults, profile, overrides), so
    /// a replay by an xensim with other default costs is refused rather than diverging.
    pub costs_hash: u64,
}

/// The pinned hash of arbitrary bytes (the run hash's algorithm and seed).
pub fn pinned_hash(bytes: &[u8]) -> u64 {
    XxHash3_64::oneshot_with_seed(HASH_SEED, bytes)
}

/// Hash of the scenario and xl.cfg texts, in order (written in the header for tools).
pub fn sources_hash(sources: &[(String, String)]) -> u64 {
    let mut bytes = Vec::new();
    for (name, text) in sources {
        for part in [name, text] {
            bytes.extend_from_slice(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
    }
    pinned_hash(&bytes)
}

/// Where the first divergence of a replay was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Record index (0-based).
    pub index: u64,
    /// Virtual time of the record produced now, if any.
    pub time_ns: Option<u64>,
    /// The recorded bytes (`None` = the recording ended earlier).
    pub expected: Option<Vec<u8>>,
    /// The bytes produced now (`None` = the run ended earlier).
    pub actual: Option<Vec<u8>>,
}

/// Hashes records, and writes or checks them.
#[derive(Debug)]
pub struct Recorder {
    stream: HashStream,
    record_count: u64,
    keepers: Keepers,
    /// A trace file, a capture or a replay comparison is set: records go to
    /// [`Keepers::keep`].
    keeps: bool,
    /// Where a record too long for its window is built (kept for its capacity).
    spill: Vec<u8>,
}

/// What a recorder does with each record besides hashing it (nothing in a plain run).
#[derive(Debug, Default)]
struct Keepers {
    writer: Option<(String, BufWriter<File>)>,
    expected: Option<std::vec::IntoIter<Vec<u8>>>,
    divergence: Option<Divergence>,
    write_error: Option<std::io::Error>,
    captured: Option<Vec<Vec<u8>>>,
}

impl Recorder {
    /// A recorder that only hashes.
    pub fn new() -> Recorder {
        Recorder {
            stream: HashStream::new(HASH_SEED),
            record_count: 0,
            keepers: Keepers::default(),
            keeps: false,
            spill: Vec::new(),
        }
    }

    /// A recorder that also writes a trace file with `header`.
    pub fn to_file(path: &Path, header: &TraceHeader) -> Result<Recorder, TraceError> {
        let name = path.display().to_string();
        let io = |source| TraceError::Io {
            path: name.clone(),
            source,
        };
        let file = File::create(path).map_err(io)?;
        let mut writer = BufWriter::new(file);
        write_header(&mut writer, header).map_err(io)?;
        let mut recorder = Recorder::new();
        recorder.keepers.writer = Some((name, writer));
        recorder.keep_every_record();
        Ok(recorder)
    }

    /// A recorder that also keeps every record in memory (tests, core-only replay).
    pub fn capturing() -> Recorder {
        let mut recorder = Recorder::new();
        recorder.keepers.captured = Some(Vec::new());
        recorder.keep_every_record();
        recorder
    }

    /// The records kept by a [`Recorder::capturing`] recorder so far.
    pub fn captured(&self) -> &[Vec<u8>] {
        self.keepers.captured.as_deref().unwrap_or(&[])
    }

    /// Takes the records kept so far (empty unless capturing).
    pub fn take_captured(&mut self) -> Vec<Vec<u8>> {
        self.keepers
            .captured
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// A recorder that compares every record with `expected` (a replay).
    pub fn checking(expected: Vec<Vec<u8>>) -> Recorder {
        let mut recorder = Recorder::new();
        recorder.keepers.expected = Some(expected.into_iter());
        recorder.keep_every_record();
        recorder
    }

    /// Makes every record go to [`Keepers::keep`] (a keeper was just set).
    fn keep_every_record(&mut self) {
        self.keeps = true;
        self.stream.watch_every_record();
    }

    /// Records a core input: as [`Self::event`], in one window of [`INPUT_WINDOW_BYTES`],
    /// and only a toolstack operation or an input with longer bytes field by field.
    #[inline(always)]
    pub fn input(&mut self, host: u16, time_ns: u64, input: &CoreInput) {
        // No closure: written here, the window's offsets stay constants.
        let written = match self.stream.window::<INPUT_WINDOW_BYTES>() {
            Some((_, window)) => {
                let mut e = FixedEncoder::new(window);
                head(&mut e, KIND_INPUT, host, time_ns);
                if !input.encode_fields(&mut e) {
                    e.refuse();
                }
                let written = e.written_len();
                if let Some(len) = written {
                    put_len(window, len);
                }
                written
            }
            None => None,
        };
        match written {
            Some(len) => self.commit_window(len, time_ns),
            None => self.input_unwindowed(host, time_ns, input),
        }
    }

    /// [`Self::input`] for an input too long for the window, or a toolstack operation:
    /// header and input field by field.
    #[cold]
    #[inline(never)]
    fn input_unwindowed(&mut self, host: u16, time_ns: u64, input: &CoreInput) {
        let mut record = self.begin_spill(KIND_INPUT, host, time_ns);
        input.encode(&mut record);
        self.commit_spill(record, time_ns);
    }

    /// Records a core event: header and event are written into one window of
    /// [`EVENT_WINDOW_BYTES`] at the hash stream's cursor (one bounds check for the
    /// record, its length patched in the window), and only an event with longer text or
    /// bytes again field by field. Inlined into the run loop's sinks, whose frame it
    /// shares.
    #[inline(always)]
    pub fn event(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        match self.event_window(host, time_ns, event) {
            Some(len) => self.commit_window(len, time_ns),
            None => self.event_unwindowed(host, time_ns, event),
        }
    }

    /// Writes `event`'s record into the window of [`EVENT_WINDOW_BYTES`] at the hash
    /// stream's cursor, its length patched: the record's length, or `None` when it does not
    /// fit (nothing is taken into the stream yet).
    #[inline(always)]
    fn event_window(&mut self, host: u16, time_ns: u64, event: &TraceEvent) -> Option<usize> {
        // No closure: written here, the window's offsets stay constants.
        let (_, window) = self.stream.window::<EVENT_WINDOW_BYTES>()?;
        let mut e = FixedEncoder::new(window);
        head(&mut e, KIND_EVENT, host, time_ns);
        event.encode_fields(&mut e);
        let len = e.written_len()?;
        put_len(window, len);
        Some(len)
    }

    /// [`Self::event`] of an event whose record always fits [`EVENT_WINDOW_BYTES`] (no text,
    /// bytes or list: a `Runstate`, a `TimerSet`, a `Tickle`), for a caller that builds the
    /// event from its fields: no path here keeps a reference to it (a record that did not
    /// fit would panic), so the caller never stores the event in memory.
    #[inline(always)]
    pub fn event_fixed(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        debug_assert!(matches!(
            event,
            TraceEvent::Runstate { .. } | TraceEvent::TimerSet { .. } | TraceEvent::Tickle { .. }
        ));
        let Some(len) = self.event_window(host, time_ns, event) else {
            no_window()
        };
        self.commit_window(len, time_ns);
    }

    /// [`Self::event`] of a `Runstate` or a `Schedule` (52 bytes at most: their records
    /// always fit [`EVENT_WINDOW_BYTES`]) for a caller with more work after it: the record
    /// is written, counted and taken into the stream, and what remains of it (the chunk's
    /// flush, the trace file, the capture or the replay comparison) is left to
    /// [`Self::after_window`], which the caller runs when this returns a length (not 0),
    /// after its own work and before the next record. It calls nothing, so the caller
    /// keeps no value across a call (its one call can be a tail call).
    #[inline(always)]
    #[must_use]
    pub fn event_pending(&mut self, host: u16, time_ns: u64, event: &TraceEvent) -> usize {
        debug_assert!(matches!(
            event,
            TraceEvent::Runstate { .. } | TraceEvent::Schedule { .. }
        ));
        let Some(len) = self.event_window(host, time_ns, event) else {
            no_window()
        };
        if self.count_record(len) {
            len
        } else {
            0
        }
    }

    /// [`Self::event`] for an event too long for the window (a console line, XenStore
    /// bytes): header and event field by field.
    #[cold]
    #[inline(never)]
    fn event_unwindowed(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        let mut record = self.begin_spill(KIND_EVENT, host, time_ns);
        event.encode(&mut record);
        self.commit_spill(record, time_ns);
    }

    /// Records a simulator mark: how the run loop was driven (a serve session's start and
    /// end), which a replay needs and the core never sees.
    pub fn mark(&mut self, host: u16, time_ns: u64, payload: &[u8]) {
        let mut record = self.begin_spill(KIND_MARK, host, time_ns);
        record.extend_from_slice(payload);
        self.commit_spill(record, time_ns);
    }

    /// Ends the record of `len` bytes written in the window at the stream's cursor (its
    /// length already patched). The hash chunk's flush and the trace file, the capture and
    /// the replay comparison (none in a plain run) are out of line, behind one compare;
    /// they find the record and its number again from the counts.
    #[inline(always)]
    fn commit_window(&mut self, len: usize, time_ns: u64) {
        if self.count_record(len) {
            self.after_window(len, time_ns);
        }
    }

    /// Counts the `len`-byte record just written at the stream's cursor and takes it into
    /// the stream: true when [`Self::after_window`] has work left for it.
    #[inline(always)]
    fn count_record(&mut self, len: usize) -> bool {
        debug_assert_eq!(self.keeps, self.keepers.any());
        self.record_count += 1;
        self.stream.advance(len)
    }

    /// [`Self::commit_window`] when the chunk is full or records are kept: the record is
    /// the stream's last `len` bytes, and number `record_count - 1` (also the rest of an
    /// [`Self::event_pending`] record).
    #[cold]
    #[inline(never)]
    pub fn after_window(&mut self, len: usize, time_ns: u64) {
        if self.keeps {
            let index = self.record_count - 1;
            self.keepers
                .keep(self.stream.last_record(len), index, time_ns);
        }
        self.stream.flush_if_full();
    }

    /// Starts a record outside the stream (the spill buffer, taken): a length
    /// placeholder, then the record header.
    fn begin_spill(&mut self, kind: u8, host: u16, time_ns: u64) -> Vec<u8> {
        let mut record = std::mem::take(&mut self.spill);
        record.clear();
        head(&mut Encoder::new(&mut record), kind, host, time_ns);
        record
    }

    /// Ends a record built by [`Self::begin_spill`]: its length, then the stream, and the
    /// spill buffer is handed back.
    fn commit_spill(&mut self, mut record: Vec<u8>, time_ns: u64) {
        let len = u32::try_from(record.len() - 4)
            .expect("record under 4 GiB")
            .to_le_bytes();
        record[..4].copy_from_slice(&len);
        self.stream.push(&record);
        if self.keeps {
            self.keepers.keep(&record, self.record_count, time_ns);
        }
        self.record_count += 1;
        self.spill = record;
    }

    /// True once a replay has diverged.
    pub fn diverged(&self) -> bool {
        self.keepers.divergence.is_some()
    }

    /// Number of records so far.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Ends the recording: the run hash, and for a replay the first divergence (including
    /// a recording that has records this run did not produce).
    pub fn finish(self) -> Result<(RunHash, Option<Divergence>), TraceError> {
        let hash = RunHash(self.stream.digest());
        let mut keepers = self.keepers;
        if let Some((name, mut writer)) = keepers.writer.take() {
            let io = |source| TraceError::Io {
                path: name.clone(),
                source,
            };
            if let Some(error) = keepers.write_error.take() {
                return Err(io(error));
            }
            writer.write_all(&END_MARKER.to_le_bytes()).map_err(io)?;
            writer.write_all(&hash.0.to_le_bytes()).map_err(io)?;
            writer.flush().map_err(io)?;
        }
        if keepers.divergence.is_none() {
            if let Some(extra) = keepers.expected.as_mut().and_then(Iterator::next) {
                keepers.divergence = Some(Divergence {
                    index: self.record_count,
                    time_ns: None,
                    expected: Some(extra),
                    actual: None,
                });
            }
        }
        Ok((hash, keepers.divergence))
    }
}

impl Keepers {
    /// True if a trace file, a capture or a replay comparison is set.
    fn any(&self) -> bool {
        self.writer.is_some() || self.captured.is_some() || self.expected.is_some()
    }

    /// Writes, captures or compares `record` (its length first), record number `index`.
    #[cold]
    #[inline(never)]
    fn keep(&mut self, record: &[u8], index: u64, time_ns: u64) {
        let (len, record) = record.split_at(4);
        if let Some((_, writer)) = &mut self.writer {
            // The first write error is kept and reported by `finish`.
            let written = writer
                .write_all(len)
                .and_then(|()| writer.write_all(record));
            if let (Err(error), None) = (written, &self.write_error) {
                self.write_error = Some(error);
            }
        }
        if let Some(captured) = &mut self.captured {
            captured.push(record.to_vec());
        }
        if let Some(expected) = &mut self.expected {
            if self.divergence.is_none() {
                let want = expected.next();
                if want.as_deref() != Some(record) {
                    self.divergence = Some(Divergence {
                        index,
                        time_ns: Some(time_ns),
                        expected: want,
                        actual: Some(record.to_vec()),
                    });
                }
            }
        }
    }
}

/// The panic of a record that did not fit its window where it always does: the stream's
/// cursor is below a chunk between records, and a `Runstate`, `Schedule`, `TimerSet` or
/// `Tickle` record is 52 bytes at most (out of line, so the record path calls nothing).
#[cold]
#[inline(never)]
fn no_window() -> ! {
    panic!("a fixed-size record did not fit its window")
}

/// A record's header in an event's window: a length placeholder (patched by `put_len`
/// or `commit_spill`), kind, host, time.
#[inline(always)]
fn head<E: FieldSink>(e: &mut E, kind: u8, host: u16, time_ns: u64) {
    e.u32(0).u8(kind).u16(host).u64(time_ns);
}

/// Patches the length of the `len`-byte record written from the start of `window` (the
/// bytes after the length field). Below 256, so only the low byte: `head` wrote the zeros
/// of the other three. The low byte is stored as is (one store; a checked narrowing was
/// a compare and a select for every record of variable length): the window's size bounds
/// it.
#[inline(always)]
fn put_len<const N: usize>(window: &mut [u8; N], len: usize) {
    const { assert!(N <= 255) };
    debug_assert!((4..=N).contains(&len));
    debug_assert_eq!(window[1..4], [0; 3]);
    let [low, ..] = (len - 4).to_le_bytes();
    window[0] = low;
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    let len = u32::try_from(s.len()).map_err(|_| std::io::Error::other("string over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_header(w: &mut impl Write, h: &TraceHeader) -> std::io::Result<()> {
    w.write_all(TRACE_MAGIC)?;
    w.write_all(&FILE_FORMAT_VERSION.to_le_bytes())?;
    w.write_all(&TRACE_FORMAT_VERSION.to_le_bytes())?;
    put_str(w, HASH_ALGORITHM)?;
    w.write_all(&h.seed.to_le_bytes())?;
    put_str(w, &h.scenario_name)?;
    let count =
        u32::try_from(h.sources.len()).map_err(|_| std::io::Error::other("too many sources"))?;
    w.write_all(&count.to_le_bytes())?;
    for (name, text) in &h.sources {
        put_str(w, name)?;
        put_str(w, text)?;
    }
    w.write_all(&sources_hash(&h.sources).to_le_bytes())?;
    w.write_all(&h.costs_hash.to_le_bytes())
}

/// A trace file read back: header, records and the recorded hash.
#[derive(Debug)]
pub struct TraceFile {
    /// The header.
    pub header: TraceHeader,
    /// Every record, in order.
    pub records: Vec<Vec<u8>>,
    /// The hash written at the end.
    pub hash: RunHash,
}

/// Reads a trace file written by [`Recorder::to_file`].
pub fn read_trace(path: &Path) -> Result<TraceFile, TraceError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| TraceError::Io {
        path: name.clone(),
        source,
    })?;
    let mut r = Reader {
        inner: BufReader::new(file),
        path: name,
    };
    let mut magic = [0u8; 8];
    r.bytes(&mut magic)?;
    if &magic != TRACE_MAGIC {
        return Err(r.bad("wrong magic"));
    }
    let file_version = r.u32()?;
    let record_version = r.u32()?;
    if file_version != FILE_FORMAT_VERSION || record_version != TRACE_FORMAT_VERSION {
        let want = format!("{FILE_FORMAT_VERSION}/{TRACE_FORMAT_VERSION}");
        let older = if (file_version, record_version) < (FILE_FORMAT_VERSION, TRACE_FORMAT_VERSION)
        {
            " (written by an older xensim: record it again with this one)"
        } else {
            ""
        };
        return Err(r.bad(&format!(
            "format {file_version}/{record_version}, this xensim reads {want}{older}"
        )));
    }
    let algorithm = r.string()?;
    if algorithm != HASH_ALGORITHM {
        return Err(r.bad(&format!("hash algorithm {algorithm:?}")));
    }
    let seed = r.u64()?;
    let scenario_name = r.string()?;
    let source_count = r.u32()?;
    let mut sources = Vec::new();
    for _ in 0..source_count {
        let source_name = r.string()?;
        sources.push((source_name, r.string()?));
    }
    let recorded_sources_hash = r.u64()?;
    if recorded_sources_hash != sources_hash(&sources) {
        return Err(r.bad("the scenario texts do not match their recorded hash"));
    }
    let costs_hash = r.u64()?;
    let mut records = Vec::new();
    loop {
        let len = r.u32()?;
        if len == END_MARKER {
            break;
        }
        let mut record = vec![0u8; usize::try_from(len).map_err(|_| r.bad("record length"))?];
        r.bytes(&mut record)?;
        records.push(record);
    }
    let hash = RunHash(r.u64()?);
    Ok(TraceFile {
        header: TraceHeader {
            seed,
            scenario_name,
            sources,
            costs_hash,
        },
        records,
        hash,
    })
}

struct Reader {
    inner: BufReader<File>,
    path: String,
}

impl Reader {
    fn bad(&self, reason: &str) -> TraceError {
        TraceError::Format {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn bytes(&mut self, buf: &mut [u8]) -> Result<(), TraceError> {
        self.inner
            .read_exact(buf)
            .map_err(|_| self.bad("file ends early"))
    }

    fn u32(&mut self) -> Result<u32, TraceError> {
        let mut b = [0u8; 4];
        self.bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, TraceError> {
        let mut b = [0u8; 8];
        self.bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self) -> Result<String, TraceError> {
        let len = self.u32()?;
        if len > (1 << 30) {
            return Err(self.bad("string too long"));
        }
        let mut b = vec![0u8; usize::try_from(len).map_err(|_| self.bad("string length"))?];
        self.bytes(&mut b)?;
        String::from_utf8(b).map_err(|_| self.bad("string is not UTF-8"))
    }
}

/// Splits a record into (kind, host, time) and its payload, for divergence reports.
pub fn record_fields(record: &[u8]) -> Option<(&'static str, u16, u64, &[u8])> {
    let kind = match *record.first()? {
        KIND_INPUT => "input",
        KIND_EVENT => "event",
        KIND_MARK => "mark",
        _ => "unknown",
    };
    let host = u16::from_le_bytes(record.get(1..3)?.try_into().ok()?);
    let time_ns = u64::from_le_bytes(record.get(3..11)?.try_into().ok()?);
    Some((kind, host, time_ns, record.get(11..)?))
}

#[path = "record_stream.rs"]
mod stream;

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
