//! Random sequences of grant operations over three domains, including hostile entry
//! writes and domain deaths: every invariant holds after every step, nothing panics, and a
//! copy never changes pins.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{
    CopyOp, CopyPtr, CopySide, FrameError, GrantConfig, GrantEntry, GrantHandle, GrantTables,
    GuestFrames, MapFlags, MapRequest,
};
use crate::ids::{DomId, Gfn, GrantRef, Mfn};

const DOMAIN_COUNT: u16 = 3;

/// gfns below 48 exist; 13 is paged out (also the frames of `copy`'s tests).
pub(super) struct Frames;

impl GuestFrames for Frames {
    fn translate(&self, dom: DomId, gfn: Gfn, _readonly: bool) -> Result<Mfn, FrameError> {
        match gfn.raw() {
            13 => Err(FrameError::PagedOut),
            raw if raw < 48 => Ok(Mfn::new(u64::from(dom.raw()) << 32 | raw)),
            _ => Err(FrameError::Invalid),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Grant {
        granter: u16,
        gref: u32,
        grantee: u16,
        gfn: u32,
        readonly: bool,
    },
    Write {
        granter: u16,
        gref: u32,
        flags: u16,
        domid: u16,
        frame: u32,
    },
    EndAccess {
        granter: u16,
        gref: u32,
    },
    Map {
        mapper: u16,
        granter: u16,
        gref: u32,
        flags: u32,
    },
    Unmap {
        mapper: u16,
        handle: u32,
    },
    Copy {
        caller: u16,
        granter: u16,
        gref: u32,
        to_grant: bool,
        offset: u16,
        len: u16,
    },
    Setup {
        caller: u16,
        dom: u16,
        frames: u32,
    },
    Kill {
        dom: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DOMAIN_COUNT;
    // Refs up to 520 reach past the first 512-entry frame.
    let r = prop_oneof![0u32..12, 500u32..520];
    prop_oneof![
        4 => (d.clone(), r.clone(), d.clone(), 0u32..50, any::<bool>()).prop_map(
            |(granter, gref, grantee, gfn, readonly)| {
                Op::Grant { granter, gref, grantee, gfn, readonly }
            }
        ),
        1 => (d.clone(), r.clone(), any::<u16>(), 0u16..4, 0u32..50).prop_map(
            |(granter, gref, flags, domid, frame)| Op::Write { granter, gref, flags, domid, frame }
        ),
        1 => (d.clone(), r.clone()).prop_map(|(granter, gref)| Op::EndAccess { granter, gref }),
        6 => (d.clone(), d.clone(), r.clone(), 0u32..8).prop_map(
            |(mapper, granter, gref, flags)| Op::Map { mapper, granter, gref, flags }
        ),
        3 => (d.clone(), 0u32..300).prop_map(|(mapper, handle)| Op::Unmap { mapper, handle }),
        2 => (d.clone(), d.clone(), r, any::<bool>(), 0u16..4200, 0u16..200).prop_map(
            |(caller, granter, gref, to_grant, offset, len)| {
                Op::Copy { caller, granter, gref, to_grant, offset, len }
            }
        ),
        1 => (d.clone(), d.clone(), 0u32..70)
            .prop_map(|(caller, dom, frames)| Op::Setup { caller, dom, frames }),
        1 => d.prop_map(|dom| Op::Kill { dom }),
    ]
}

fn dom(raw: u16) -> DomId {
    DomId::new(raw).unwrap_or(DomId::DOM0)
}

fn host() -> GrantTables {
    let mut gt = GrantTables::new();
    let configs = [
        GrantConfig {
            privileged: true,
            ..GrantConfig::guest_default(false)
        },
        GrantConfig {
            max_maptrack_frames: 1,
            ..GrantConfig::guest_default(true)
        },
        GrantConfig {
            max_grant_frames: 2,
            ..GrantConfig::guest_default(false)
        },
    ];
    for (raw, config) in (0u16..).zip(configs) {
        let _ = gt.create(dom(raw), config);
    }
    gt
}

fn apply(gt: &mut GrantTables, op: &Op) {
    match *op {
        Op::Grant {
            granter,
            gref,
            grantee,
            gfn,
            readonly,
        } => {
            if let Some(t) = gt.table_mut(dom(granter)) {
                let _ = t.guest_grant_access(GrantRef::new(gref), dom(grantee), gfn, readonly);
            }
        }
        Op::Write {
            granter,
            gref,
            flags,
            domid,
            frame,
        } => {
            if let Some(t) = gt.table_mut(dom(granter)) {
                let _ = t.guest_write_entry(
                    GrantRef::new(gref),
                    GrantEntry {
                        flags,
                        domid,
                        frame,
                    },
                );
            }
        }
        Op::EndAccess { granter, gref } => {
            if let Some(t) = gt.table_mut(dom(granter)) {
                let _ = t.guest_end_access(GrantRef::new(gref));
            }
        }
        Op::Map {
            mapper,
            granter,
            gref,
            flags,
        } => {
            let req = MapRequest {
                granter: dom(granter),
                gref: GrantRef::new(gref),
                flags: MapFlags::from_bits(flags),
            };
            let _ = gt.map_grant_ref(dom(mapper), req, &Frames);
        }
        Op::Unmap { mapper, handle } => {
            let _ = gt.unmap_grant_ref(dom(mapper), GrantHandle(handle));
        }
        Op::Copy { .. } => apply_copy(gt, op),
        Op::Setup {
            caller,
            dom: d,
            frames,
        } => {
            let _ = gt.setup_table(dom(caller), dom(d), frames);
        }
        Op::Kill { dom: d } => {
            gt.release_mappings(dom(d));
            gt.remove(dom(d));
        }
    }
}

fn apply_copy(gt: &mut GrantTables, op: &Op) {
    let Op::Copy {
        caller,
        granter,
        gref,
        to_grant,
        offset,
        len,
    } = *op
    else {
        return;
    };
    let grant = CopySide {
        ptr: CopyPtr::Gref {
            dom: dom(granter),
            gref: GrantRef::new(gref),
        },
        offset_bytes: offset,
    };
    let local = CopySide {
        ptr: CopyPtr::LocalGfn(Gfn::new(3)),
        offset_bytes: 0,
    };
    let (source, dest) = if to_grant {
        (local, grant)
    } else {
        (grant, local)
    };
    let before = pins_snapshot(gt);
    let _ = gt.copy(
        dom(caller),
        &CopyOp {
            source,
            dest,
            len_bytes: len,
        },
        &Frames,
    );
    assert_eq!(before, pins_snapshot(gt), "a copy changed pins");
}

fn pins_snapshot(gt: &GrantTables) -> Vec<(GrantRef, Mfn)> {
    let mut all = vec![];
    for raw in 0..DOMAIN_COUNT {
        all.extend(gt.pinned_frames(dom(raw)));
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_grant_ops_keep_every_invariant(ops in proptest::collection::vec(op(), 1..150)) {
        let mut gt = host();
        for op in &ops {
            apply(&mut gt, op);
            let mut out = Vec::new();
            gt.check_invariants(&mut out);
            prop_assert!(out.is_empty(), "after {:?}: {:?}", op, out);
        }
    }

    #[test]
    fn killing_every_domain_after_random_ops_frees_every_table(
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        let mut gt = host();
        for op in &ops {
            apply(&mut gt, op);
        }
        for raw in 0..DOMAIN_COUNT {
            gt.release_mappings(dom(raw));
        }
        let removed = (0..DOMAIN_COUNT).filter(|raw| gt.remove(dom(*raw))).count();
        prop_assert_eq!(removed, usize::from(DOMAIN_COUNT));
    }
}
