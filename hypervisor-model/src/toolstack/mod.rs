//! The toolstack's view: typed xl operations (`ops.rs`; the codec of the cpupool and
//! scheduler-parameter ones in `ops_sched.rs`), the domain configuration model
//! (`config.rs`) and the multi-step jobs that carry operations out in virtual time
//! (`jobs.rs`, the destroy in `jobs_destroy.rs`, the builder's memory in `populate.rs`,
//! populate-on-demand in `pod_build.rs`, libxl's automatic NUMA placement in
//! `placement.rs`, the device-model stub domain in `stubdom.rs`).

pub mod config;
pub mod jobs;
mod jobs_create;
mod jobs_destroy;
pub mod mem_ops;
pub mod ops;
pub mod ops_sched;
pub mod placement;
mod pod_build;
mod populate;
pub mod stubdom;
pub mod xs_client;
pub mod xs_tree;
