//! Reports: everything xensim prints or writes about a run, computed from the typed trace.

pub mod metrics;
