//! Whole-host rtds timing tests.
