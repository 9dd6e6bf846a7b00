//! The console text of a workload (`guest/workload.rs`): what its printing models (`io`'s
//! driver lines, `periodic`'s deadline misses) and its streams wrote since the last look,
//! for the run loop to hand to the guest's console ring.

use super::{Behavior, GuestVcpu};

impl GuestVcpu {
    /// [`Self::take_console`] would hand over some text. A look, not a take: the run loop
    /// asks after every demand-done of a printing model, and mostly nothing was printed.
    #[inline]
    pub fn console_pending(&self) -> bool {
        if !self.prints {
            return false;
        }
        let models = match &self.behavior {
            Behavior::Mixed(_) => self.behavior.leaves().any(leaf_console_pending),
            single => leaf_console_pending(single),
        };
        models || self.senders.console_pending()
    }

    /// The kernel messages the workload printed since the last call (printk lines
    /// without their time prefix), for the guest's console: `io`'s driver lines,
    /// `periodic`'s deadline misses.
    ///
    /// Called after every demand-done: a workload that never prints (`idle`, `cpu_bound`,
    /// `bursty`, without streams) returns at once.
    pub fn take_console(&mut self) -> String {
        if !self.prints {
            return String::new();
        }
        // One match for a single model (most), the leaves' walk for a `mixed` one.
        let mut text = match &mut self.behavior {
            Behavior::Mixed(_) => {
                let mut text = String::new();
                for leaf in self.behavior.leaves_mut() {
                    if let Some(lines) = leaf_console(leaf) {
                        append_console(&mut text, lines);
                    }
                }
                text
            }
            single => leaf_console(single).unwrap_or_default(),
        };
        if !self.senders.is_empty() {
            append_console(&mut text, self.senders.take_console());
        }
        text
    }
}

/// The kernel lines of one model that prints (`io`, `periodic`); `None` for the others.
fn leaf_console(leaf: &mut Behavior) -> Option<String> {
    match leaf {
        Behavior::Io(model) => Some(model.queue.take_console()),
        Behavior::Periodic(model) => Some(model.take_console()),
        _ => None,
    }
}

/// [`leaf_console`] would hand over some text.
#[inline]
fn leaf_console_pending(leaf: &Behavior) -> bool {
    match leaf {
        Behavior::Io(model) => model.queue.console_pending(),
        Behavior::Periodic(model) => model.console_pending(),
        _ => false,
    }
}

/// Appends `lines` to `text`; the first non-empty piece is moved, not copied.
fn append_console(text: &mut String, lines: String) {
    if text.is_empty() {
        *text = lines;
    } else {
        text.push_str(&lines);
    }
}
