//! The `xensim` command line.

fn main() {}
