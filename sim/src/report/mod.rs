//! Reports: everything xensim prints or writes about a run. Renderers here are pure
//! functions of the core's state or of the typed trace; they never change the run.
//!
//! - [`xl`]: xl's own output formats (`xl list`, `xl info`, `xl dmesg`), byte for byte.
//! - [`metrics`]: the metrics of a run (JSON, `[[expect]]` paths, the summary table).
//! - [`timeline`]: the captured timeline of a run (slices, instants, counters).
//! - [`perfetto`]: the timeline as Chrome/Perfetto trace-event JSON (metrics.md §4.3).
//! - [`html`]: the self-contained HTML report (Gantt, latency CDFs, fairness bars).
//! - [`fairness`]: credit2 pools' entitlements, Jain's index and maximum deviation.
//! - [`aggregate`]: means, confidence intervals and pooled percentiles across seeds.

pub mod aggregate;
pub mod fairness;
pub mod html;
pub mod metrics;
pub mod perfetto;
pub mod timeline;
pub mod xl;
