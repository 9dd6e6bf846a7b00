//! `xensim bench`: the reference performance scenarios of `specs/scenario.md` §11
//! ([`scenarios`]) and the engine speed table measured on them ([`measure`]).

pub mod measure;
pub mod scenarios;
