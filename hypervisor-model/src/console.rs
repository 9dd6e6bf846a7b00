//! The hypervisor console ring that `xl dmesg` reads.
//!
//! Follows xen/drivers/char/console.c: `printk` writes `(XEN) ` and the message into a
//! fixed-size ring (`conring`, `conring_size=`, 16 KiB by default); when the ring is full
//! the oldest bytes are overwritten, so the first remaining line may be cut.
//! `XEN_SYSCTL_readconsole` with `clear` empties it (`xl dmesg -c`).
//!
//! # Invariants
//! - The ring never holds more than its capacity.
//!
//! xensim differs: `console_timestamps=` is not modelled yet; lines carry no timestamp,
//! which is Xen's default (`none`).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// The console ring.
#[derive(Debug, Clone)]
pub struct Console {
    ring: VecDeque<u8>,
    capacity_bytes: usize,
}

impl Console {
    /// An empty ring of `capacity_bytes` (clamped to `1..=CONRING_BYTES_MAX`).
    pub fn new(capacity_bytes: usize) -> Console {
        let capacity_bytes = capacity_bytes.clamp(1, crate::limits::CONRING_BYTES_MAX);
        Console {
            ring: VecDeque::with_capacity(capacity_bytes),
            capacity_bytes,
        }
    }

    /// `printk(line)`: appends `(XEN) <line>\n`.
    pub fn printk(&mut self, line: &str) {
        self.push_bytes(b"(XEN) ");
        self.push_bytes(line.as_bytes());
        self.push_bytes(b"\n");
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            if self.ring.len() == self.capacity_bytes {
                self.ring.pop_front();
            }
            self.ring.push_back(*byte);
        }
        assert!(self.ring.len() <= self.capacity_bytes);
    }

    /// The ring's contents, oldest first (what `xl dmesg` prints).
    pub fn read(&self) -> String {
        let bytes: Vec<u8> = self.ring.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Empties the ring (`xl dmesg -c`).
    pub fn clear(&mut self) {
        self.ring.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Console;

    #[test]
    fn printk_prefixes_xen_tag() {
        let mut console = Console::new(64);
        console.printk("Brought up 4 CPUs");
        assert_eq!(console.read(), "(XEN) Brought up 4 CPUs\n");
    }

    #[test]
    fn full_ring_drops_oldest_bytes() {
        // 8 bytes hold the last 8 of "(XEN) ab\n(XEN) cd\n".
        let mut console = Console::new(8);
        console.printk("ab");
        console.printk("cd");
        assert_eq!(console.read(), "XEN) cd\n");
    }
}
