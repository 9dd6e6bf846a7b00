//! XenBus device states and the transitions each end of a split device may write (spec
//! `xenstore-io.md` §4.1–4.2, invariant XB-STATE).
//!
//! Follows xen/include/public/io/xenbus.h (`enum xenbus_state`) and the state diagram in
//! xen/include/public/io/blkif.h.
//!
//! # Invariants
//! - A state's number is its `XenbusState*` value; `Unknown` (0) is never written.
//! - [`legal`] accepts exactly the table of §4.2 for the writer's side.

/// `enum xenbus_state`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum XenbusState {
    /// 0: key missing or unparsable.
    Unknown = 0,
    /// 1: the toolstack created the device.
    Initialising = 1,
    /// 2: backend ready, waiting for the frontend's transport keys.
    InitWait = 2,
    /// 3: frontend's transport keys published.
    Initialised = 3,
    /// 4: connected.
    Connected = 4,
    /// 5: orderly shutdown in progress.
    Closing = 5,
    /// 6: disconnected, rings unmapped.
    Closed = 6,
    /// 7: pvscsi/pci reconfiguration.
    Reconfiguring = 7,
    /// 8: pvscsi/pci reconfiguration done.
    Reconfigured = 8,
}

impl XenbusState {
    /// The state a `state` key's value names; anything else reads as `Unknown`
    /// (`xenbus_read_driver_state`).
    pub fn parse(value: &[u8]) -> XenbusState {
        match value {
            b"1" => XenbusState::Initialising,
            b"2" => XenbusState::InitWait,
            b"3" => XenbusState::Initialised,
            b"4" => XenbusState::Connected,
            b"5" => XenbusState::Closing,
            b"6" => XenbusState::Closed,
            b"7" => XenbusState::Reconfiguring,
            b"8" => XenbusState::Reconfigured,
            _ => XenbusState::Unknown,
        }
    }

    /// The decimal value written to the key.
    pub const fn number(self) -> u8 {
        self as u8
    }
}

/// Which end of a split device writes the state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    /// The guest's driver (netfront, blkfront).
    Frontend,
    /// The driver domain's driver (netback, blkback).
    Backend,
}

/// Whether `end` may write `to` over `from` (spec §4.2). Rewriting the same state is not
/// a transition and is always allowed.
pub fn legal(end: End, from: XenbusState, to: XenbusState) -> bool {
    use XenbusState::{Closed, Closing, Connected, InitWait, Initialised, Initialising};
    if from == to {
        return to != XenbusState::Unknown;
    }
    match end {
        End::Frontend => matches!(
            (from, to),
            (Initialising, Initialised)
                | (Initialising, Connected)
                | (Initialised, Connected)
                | (Initialising | Initialised | Connected, Closing)
                | (Closing, Closed)
                | (Closed, Initialising)
                | (_, Closed)
        ),
        End::Backend => matches!(
            (from, to),
            (Initialising, InitWait)
                | (InitWait, Connected)
                | (Initialising, Initialised)
                | (InitWait | Connected, Closing)
                | (Closing, Closed)
                | (Closed, InitWait)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_numbers_match_xenbus_h() {
        assert_eq!(XenbusState::Connected.number(), 4);
        assert_eq!(XenbusState::parse(b"6"), XenbusState::Closed);
        assert_eq!(XenbusState::parse(b"x"), XenbusState::Unknown);
    }

    #[test]
    fn netfront_may_skip_initialised() {
        let ok = legal(
            End::Frontend,
            XenbusState::Initialising,
            XenbusState::Connected,
        );
        assert!(ok);
    }

    #[test]
    fn backend_cannot_jump_from_initialising_to_connected() {
        let ok = legal(
            End::Backend,
            XenbusState::Initialising,
            XenbusState::Connected,
        );
        assert!(!ok);
    }

    #[test]
    fn frontend_may_close_from_any_state_when_backend_vanishes() {
        assert!(legal(
            End::Frontend,
            XenbusState::InitWait,
            XenbusState::Closed
        ));
    }

    #[test]
    fn backend_reconnects_from_closed_to_initwait_only() {
        assert!(legal(
            End::Backend,
            XenbusState::Closed,
            XenbusState::InitWait
        ));
        assert!(!legal(
            End::Backend,
            XenbusState::Closed,
            XenbusState::Connected
        ));
    }
}
