//! The toolstack's view: typed xl operations and the domain configuration model.

pub mod config;
