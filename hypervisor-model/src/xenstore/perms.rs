//! Node permissions: one entry is a letter (`n`, `r`, `w`, `b`) and a domid; the first
//! entry names the owner and gives the default access of every other domain.
//!
//! Follows tools/xenstore/xs_lib.c of Xen 4.17 (`xs_strings_to_perms`,
//! `xs_perm_to_string`) and xenstored_core.c (`perm_for_conn`).
//!
//! # Invariants
//! - A permission list has at least one entry.
//! - An entry marked `ignore` (its domain died, or never existed when the list was set)
//!   grants nothing, but is still listed by `GET_PERMS`, as in 4.17 (`XS_PERM_IGNORE`).
//!
//! Xen 4.17 has no `DOMID_ANY` entries; xensim matches 32757 against every domain anyway
//! (spec §2.2), which only matters for lists that name it.

use alloc::vec::Vec;

use super::XsError;

/// `XS_PERM_READ`.
pub const PERM_READ: u8 = 0x01;
/// `XS_PERM_WRITE`.
pub const PERM_WRITE: u8 = 0x02;
/// `XS_PERM_OWNER` (internal: may change permissions).
pub const PERM_OWNER: u8 = 0x08;
/// Everything an owner or a privileged connection gets.
pub const PERM_ALL: u8 = PERM_READ | PERM_WRITE | PERM_OWNER;
/// `DOMID_ANY` (0x7FF5), matched against every domain.
pub const DOMID_ANY: u32 = 0x7FF5;

/// One permission entry (`struct xs_permissions`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Perm {
    /// The domain it names.
    pub domid: u32,
    /// `PERM_READ` / `PERM_WRITE` bits.
    pub access: u8,
    /// `XS_PERM_IGNORE`: the named domain is gone; the entry grants nothing.
    pub ignore: bool,
}

impl Perm {
    /// An entry with the given access letter bits.
    pub const fn new(domid: u32, access: u8) -> Perm {
        Perm {
            domid,
            access,
            ignore: false,
        }
    }

    /// The wire letter.
    pub fn letter(&self) -> u8 {
        match self.access & (PERM_READ | PERM_WRITE) {
            PERM_READ => b'r',
            PERM_WRITE => b'w',
            0 => b'n',
            _ => b'b',
        }
    }

    /// Appends the wire form (`r5`); the domid prints as C `%i` of an `unsigned int`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.letter());
        let signed = i32::from_le_bytes(self.domid.to_le_bytes());
        push_decimal(out, i64::from(signed));
    }
}

/// Appends `value` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the narrowing is exact.
        digits[i] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// The wire form of a whole list: each entry followed by a NUL (`perms_to_strings`).
pub fn perms_to_wire(perms: &[Perm]) -> Vec<u8> {
    let mut out = Vec::with_capacity(perms.len() * 4);
    for p in perms {
        p.write_to(&mut out);
        out.push(0);
    }
    out
}

/// C `strtol(s, &end, 0)` over the whole string: `None` when the string is empty or has
/// junk after the number. Keeps the low 32 bits, as the C code stores it in `unsigned int`.
fn strtol_base0_exact(s: &[u8]) -> Option<u32> {
    let (value, end, any_digit) = crate::cnum::c_strtol(s, 0);
    (any_digit && end == s.len()).then(|| u32::from_le_bytes(crate::cnum::low_32_bits(value)))
}

/// Parses one entry (`xs_strings_to_perms` for one string).
pub fn parse_perm(s: &[u8]) -> Result<Perm, XsError> {
    let access = match s.first() {
        Some(b'n') => 0,
        Some(b'r') => PERM_READ,
        Some(b'w') => PERM_WRITE,
        Some(b'b') => PERM_READ | PERM_WRITE,
        _ => return Err(XsError::Einval),
    };
    let domid = strtol_base0_exact(&s[1..]).ok_or(XsError::Einval)?;
    Ok(Perm::new(domid, access))
}

/// Who is asking, for a permission check (`struct connection`'s `id`, `target`, and
/// `domain_is_unprivileged`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Who {
    /// Privileged connections (sockets, dom0) get everything.
    pub privileged: bool,
    /// The connection's domid (0 for sockets).
    pub domid: u32,
    /// The domain it acts for as well (`SET_TARGET`).
    pub target: Option<u32>,
}

impl Who {
    /// A privileged caller (the toolstack, a socket client).
    pub const PRIVILEGED: Who = Who {
        privileged: true,
        domid: 0,
        target: None,
    };

    fn names(&self, domid: u32) -> bool {
        domid == self.domid || self.target == Some(domid)
    }
}

/// `perm_for_conn`: the access `who` has through `perms`. `live` says whether an entry
/// after the first still counts (its domain existed when the node was written).
pub fn perm_for(who: &Who, perms: &[Perm], live: impl Fn(&Perm) -> bool) -> u8 {
    let Some(owner) = perms.first() else {
        return 0;
    };
    if who.privileged || who.names(owner.domid) {
        return PERM_ALL;
    }
    for p in &perms[1..] {
        if !p.ignore && (who.names(p.domid) || p.domid == DOMID_ANY) && live(p) {
            return p.access & PERM_ALL;
        }
    }
    owner.access & PERM_ALL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpriv(domid: u32) -> Who {
        Who {
            privileged: false,
            domid,
            target: None,
        }
    }

    #[test]
    fn parse_accepts_c_strtol_bases_and_rejects_junk() {
        assert_eq!(parse_perm(b"r5"), Ok(Perm::new(5, PERM_READ)));
        assert_eq!(
            parse_perm(b"b0x10"),
            Ok(Perm::new(16, PERM_READ | PERM_WRITE))
        );
        assert_eq!(parse_perm(b"w010"), Ok(Perm::new(8, PERM_WRITE)));
        assert_eq!(parse_perm(b"n"), Err(XsError::Einval));
        assert_eq!(parse_perm(b"r5x"), Err(XsError::Einval));
        assert_eq!(parse_perm(b"x5"), Err(XsError::Einval));
    }

    #[test]
    fn wire_form_prints_domid_as_signed_int() {
        assert_eq!(
            perms_to_wire(&[Perm::new(0, 0), Perm::new(3, PERM_READ)]),
            b"n0\0r3\0"
        );
        assert_eq!(perms_to_wire(&[Perm::new(u32::MAX, PERM_WRITE)]), b"w-1\0");
    }

    #[test]
    fn owner_gets_everything_and_default_applies_to_others() {
        let perms = [Perm::new(5, 0), Perm::new(7, PERM_READ)];
        assert_eq!(perm_for(&unpriv(5), &perms, |_| true), PERM_ALL);
        assert_eq!(perm_for(&unpriv(7), &perms, |_| true), PERM_READ);
        assert_eq!(perm_for(&unpriv(8), &perms, |_| true), 0);
        assert_eq!(perm_for(&Who::PRIVILEGED, &perms, |_| true), PERM_ALL);
    }

    #[test]
    fn ignored_or_dead_entry_grants_nothing() {
        let mut perms = [Perm::new(5, 0), Perm::new(7, PERM_READ)];
        assert_eq!(perm_for(&unpriv(7), &perms, |_| false), 0);
        perms[1].ignore = true;
        assert_eq!(perm_for(&unpriv(7), &perms, |_| true), 0);
    }

    #[test]
    fn target_domain_rights_apply_to_stub_domain() {
        let perms = [Perm::new(5, 0)];
        let stub = Who {
            privileged: false,
            domid: 9,
            target: Some(5),
        };
        assert_eq!(perm_for(&stub, &perms, |_| true), PERM_ALL);
    }
}
