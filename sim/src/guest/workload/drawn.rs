//! [`Drawn`]: one distribution of a workload (`guest/workload.rs`) with its own stream,
//! and `exp` draws computed ahead in batches ([`ExpAhead`]).
//!
//! # Invariants
//! - The stream has no other reader, so values computed ahead are handed out in draw order
//!   and equal those of one draw at a time.

use super::FieldStreams;
use crate::guest::dist::{sample, ExpAhead, EXP_LANES};
use crate::rng::Stream;
use crate::scenario::model::Dist;

/// A distribution with its stream (the stream is this field's alone).
///
/// `exp` draws are computed [`EXP_LANES`] at a time ([`ExpAhead`]) and handed out in
/// order: the stream has no other reader, so the values are those of one draw at a time.
#[derive(Debug, Clone)]
pub(crate) struct Drawn {
    dist: Dist,
    /// The sampler of an `exp` distribution (built once, with its mean's parameters).
    exp: Option<ExpAhead>,
    stream: Stream,
    /// `exp` samples computed ahead; `ahead[ahead_index..]` are still to be handed out.
    ahead: [u64; EXP_LANES],
    ahead_index: usize,
}

impl Drawn {
    pub(crate) fn new(dist: Dist, streams: &FieldStreams<'_>, field: &str) -> Self {
        let exp = match dist {
            Dist::Exp { mean } => Some(ExpAhead::new(mean)),
            _ => None,
        };
        Self {
            dist,
            exp,
            stream: streams.field(field),
            ahead: [0; EXP_LANES],
            ahead_index: EXP_LANES,
        }
    }

    /// The next draw.
    pub(crate) fn draw(&mut self) -> u64 {
        let Some(exp) = &self.exp else {
            return sample(&self.dist, &mut self.stream);
        };
        if self.ahead_index == EXP_LANES {
            self.ahead = exp.sample(&mut self.stream);
            self.ahead_index = 0;
        }
        let value = self.ahead[self.ahead_index];
        self.ahead_index += 1;
        value
    }

    /// The next draw, at least 1 (for recurrences; see the module doc).
    pub(crate) fn draw_positive(&mut self) -> u64 {
        self.draw().max(1)
    }
}
