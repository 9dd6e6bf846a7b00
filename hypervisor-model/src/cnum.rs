//! C number parsing as Xen's C code does it (`strtol`, `simple_strtol`): shared by the
//! XenStore request parsers and, through the crate's public face, the simulator's reading of
//! the Xen command line. Integer-only and saturating; never panics on any input.

/// C `strtol(s, &end, base)` for base 10, or base 0 (`0x` hex, `0` octal, else decimal):
/// optional blanks and sign, then digits, saturating; junk ends the number. Returns the value,
/// the index where parsing stopped, and whether any digit was read.
pub fn c_strtol(s: &[u8], base: u32) -> (i64, usize, bool) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let radix: u32 = if base != 0 {
        base
    } else if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
        16
    } else if s.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    let start = i;
    let mut value: i64 = 0;
    while let Some(d) = s.get(i).and_then(|&b| char::from(b).to_digit(radix)) {
        value = value
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(d));
        i += 1;
    }
    if negative {
        value = value.saturating_neg();
    }
    (value, i, i > start)
}

/// The low 32 bits of a C `long`, as an `int` or `unsigned int` conversion keeps them.
pub fn low_32_bits(value: i64) -> [u8; 4] {
    let low = value.to_le_bytes();
    [low[0], low[1], low[2], low[3]]
}

#[cfg(test)]
mod tests {
    use super::c_strtol;

    #[test]
    fn c_strtol_base0_reads_prefixes_and_stops_at_junk() {
        assert_eq!(c_strtol(b"0x10", 0), (16, 4, true));
        assert_eq!(c_strtol(b"010", 0), (8, 3, true));
        assert_eq!(c_strtol(b" -3ms", 0), (-3, 3, true));
        // "0x" without a hex digit is the number 0, ending before the x.
        assert_eq!(c_strtol(b"0xz", 0), (0, 1, true));
        assert_eq!(c_strtol(b"junk", 10), (0, 0, false));
    }
}
