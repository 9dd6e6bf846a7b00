//! Unit tests of the console ring page, xenconsoled's buffer and its drain (`console.rs`).

use alloc::vec::Vec;

use super::*;
use crate::ids::DomId;
use crate::sched::Violation;

fn dom(raw: u16) -> DomId {
    DomId::new(raw).unwrap()
}

fn violations(x: &Xenconsoled) -> Vec<Violation> {
    let mut out = Vec::new();
    x.check(&mut out);
    out
}

#[test]
fn guest_output_reaches_the_buffer_in_order() {
    let mut x = Xenconsoled::new();
    x.connect(dom(1), XENCONSOLE_LIMIT_BYTES);
    assert_eq!(
        x.console(dom(1)).unwrap().page.connection,
        XENCONSOLE_CONNECTED
    );
    let w = x.guest_write(dom(1), b"Linux version 6.1\n");
    assert_eq!(
        w,
        GuestWrite {
            bytes: 18,
            notify: true
        }
    );
    x.guest_write(dom(1), b"hello\n");
    assert_eq!(x.drain(dom(1)), 24);
    assert_eq!(x.drain(dom(1)), 0);
    let con = x.console(dom(1)).unwrap();
    assert_eq!(con.buffer.contents(), b"Linux version 6.1\nhello\n");
    assert_eq!(con.page.indices(), [0, 0, 24, 24]);
    assert!(violations(&x).is_empty());
}

#[test]
fn a_full_ring_takes_only_what_fits_and_wraps() {
    let mut page = ConsolePage::new();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251).to_le_bytes()[0]).collect();
    let w = page.guest_write(&data).unwrap();
    assert_eq!(w.bytes, XENCONS_OUT_BYTES as usize);
    assert_eq!(
        page.guest_write(b"x").unwrap(),
        GuestWrite {
            bytes: 0,
            notify: false
        }
    );
    let mut out = Vec::new();
    assert_eq!(page.daemon_read(&mut out).unwrap(), 2048);
    // The rest goes in across the wrap point.
    assert_eq!(page.guest_write(&data[2048..]).unwrap().bytes, 952);
    assert_eq!(page.daemon_read(&mut out).unwrap(), 952);
    assert_eq!(out, data);
}

#[test]
fn indices_free_run_across_u32_wrap() {
    let mut page = ConsolePage::new();
    page.poke_index(ConsIndex::OutCons, u32::MAX - 2);
    page.poke_index(ConsIndex::OutProd, u32::MAX - 2);
    page.guest_write(b"abcdef").unwrap();
    assert_eq!(page.indices()[3], 3);
    let mut out = Vec::new();
    assert_eq!(page.daemon_read(&mut out).unwrap(), 6);
    assert_eq!(out, b"abcdef");
}

#[test]
fn garbage_indices_are_ignored_and_logged() {
    let mut x = Xenconsoled::new();
    x.connect(dom(3), XENCONSOLE_LIMIT_BYTES);
    x.guest_write(dom(3), b"ok\n");
    x.drain(dom(3));
    let con = x.console_mut(dom(3)).unwrap();
    con.page.poke_index(ConsIndex::OutProd, 0x8000_0000);
    assert_eq!(x.drain(dom(3)), 0);
    assert_eq!(x.guest_write(dom(3), b"more"), GuestWrite::default());
    let log: Vec<&str> = x.log().collect();
    assert_eq!(
        log,
        [
            "d3: console ring indices cons 3 prod 2147483648 out of range, ignored",
            "d3: guest console write: illegal ring indices cons 3 prod 2147483648",
        ]
    );
    assert_eq!(x.console(dom(3)).unwrap().buffer.contents(), b"ok\n");
    // A scribble is the guest's input, not a bug of either end.
    assert!(violations(&x).is_empty());
}

#[test]
fn the_log_is_bounded() {
    let mut x = Xenconsoled::new();
    x.connect(dom(2), XENCONSOLE_LIMIT_BYTES);
    x.console_mut(dom(2))
        .unwrap()
        .page
        .poke_index(ConsIndex::OutProd, 5000);
    for _ in 0..DAEMON_LOG_LINES + 10 {
        x.drain(dom(2));
    }
    assert_eq!(x.log().count(), DAEMON_LOG_LINES);
}

#[test]
fn the_checker_catches_a_bad_pair_and_a_backwards_index() {
    let mut page = ConsolePage::new();
    page.guest_write(b"abc").unwrap();
    let mut out = Vec::new();
    page.check("d1", &mut out);
    assert!(out.is_empty(), "{out:?}");
    // An end's bug (not a scribble): out_cons moves back, and out_prod runs too far.
    page.out_cons = 0xF000_0000;
    page.check("d1", &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].invariant, "console.ring.indexes");
    assert_eq!(out[1].invariant, "console.ring.monotonic");
    assert_eq!(out[1].detail, "d1: out_cons moved from 0 to 4026531840");
}

#[test]
fn overflow_discards_the_middle_and_keeps_the_newest() {
    let limit = 4096;
    let mut x = Xenconsoled::new();
    x.connect(dom(4), limit);
    let mut all = Vec::new();
    for i in 0..6u32 {
        let chunk: Vec<u8> = (0..1024u32).map(|j| (i * 7 + j).to_le_bytes()[0]).collect();
        x.guest_write(dom(4), &chunk);
        x.drain(dom(4));
        all.extend_from_slice(&chunk);
    }
    let con = x.console(dom(4)).unwrap();
    // 5120 bytes is exactly 5/4 of the limit: kept whole; the sixth drain passes it.
    let held = con.buffer.contents();
    assert_eq!(con.buffer.discarded_bytes, 2048);
    assert_eq!(held.len(), 6144 - 2048);
    assert_eq!(&held[..2048], &all[..2048]);
    assert_eq!(&held[2048..], &all[4096..]);
    assert!(violations(&x).is_empty());
}

mod random {
    //! Random writes, drains and scribbles: nothing panics, a well-behaved sequence keeps
    //! every invariant, and the buffer holds exactly what the guest managed to write
    //! (minus what the overflow rule discarded).

    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::super::*;
    use crate::ids::DomId;

    #[derive(Clone, Debug)]
    enum Op {
        Write(Vec<u8>),
        Drain,
        Poke(u8, u32),
    }

    fn op(scribble: bool) -> impl Strategy<Value = Op> {
        let write = proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Op::Write);
        if scribble {
            prop_oneof![
                write,
                Just(Op::Drain),
                (0u8..4, any::<u32>()).prop_map(|(w, v)| Op::Poke(w, v)),
            ]
            .boxed()
        } else {
            prop_oneof![write, Just(Op::Drain)].boxed()
        }
    }

    fn run(ops: &[Op]) -> (Xenconsoled, Vec<u8>) {
        let dom = DomId::new(1).unwrap();
        let mut x = Xenconsoled::new();
        x.connect(dom, 4096);
        let mut written = Vec::new();
        for op in ops {
            match op {
                Op::Write(data) => {
                    let w = x.guest_write(dom, data);
                    written.extend_from_slice(&data[..w.bytes]);
                }
                Op::Drain => {
                    x.drain(dom);
                }
                Op::Poke(which, value) => {
                    let which = match which {
                        0 => ConsIndex::InCons,
                        1 => ConsIndex::InProd,
                        2 => ConsIndex::OutCons,
                        _ => ConsIndex::OutProd,
                    };
                    x.console_mut(dom).unwrap().page.poke_index(which, *value);
                }
            }
            let mut out = Vec::new();
            x.check(&mut out);
            assert!(out.is_empty(), "{op:?}: {out:?}");
        }
        x.drain(dom);
        (x, written)
    }

    proptest! {
        #[test]
        fn well_behaved_ends_lose_nothing_but_the_discarded_middle(
            ops in proptest::collection::vec(op(false), 0..40)
        ) {
            let (x, written) = run(&ops);
            let con = x.console(DomId::new(1).unwrap()).unwrap();
            let held = con.buffer.contents();
            let discarded = usize::try_from(con.buffer.discarded_bytes).unwrap();
            prop_assert_eq!(held.len() + discarded, written.len());
            prop_assert!(written.ends_with(&held[held.len().min(2048)..]));
            if discarded == 0 {
                prop_assert_eq!(held, &written[..]);
            } else {
                prop_assert_eq!(&held[..2048], &written[..2048]);
            }
            prop_assert!(x.log().next().is_none());
        }

        #[test]
        fn scribbles_never_panic_or_break_an_invariant(
            ops in proptest::collection::vec(op(true), 0..40)
        ) {
            let (x, _) = run(&ops);
            prop_assert!(x.log().count() <= DAEMON_LOG_LINES);
        }
    }
}
