//! The scenario value grammar (`specs/scenario.md` §1 and §6.2): durations, sizes, rates,
//! names and distributions, parsed from their string forms.
//!
//! Each parser returns the value or the "expected ..." part of the message; the caller adds
//! the location, the key and the `found ...` part.
//!
//! # Invariants
//! - Integer-only: no float ever parsed or produced; overflow is an error, never a wrap.
//! - Sizes accept binary units only (`KiB`...), rates decimal SI units only.

use super::model::Dist;

/// What a duration looks like, for messages.
pub const DURATION_EXPECTED: &str =
    "a duration (an integer of ns, or digits followed by ns, us, µs, ms or s, e.g. \"10ms\")";
/// What a size looks like, for messages.
pub const SIZE_EXPECTED: &str =
    "a size (an integer of bytes, or digits followed by B, KiB, MiB, GiB or TiB)";
/// What a rate looks like, for messages.
pub const RATE_EXPECTED: &str = "a rate (an integer of bytes/s, or digits followed by bit/s, \
     Kbit/s, Mbit/s, Gbit/s, B/s, KB/s, MB/s or GB/s)";
/// What a name looks like, for messages.
pub const NAME_EXPECTED: &str = "a name of 1 to 64 characters from [A-Za-z0-9_-]";
/// What a distribution looks like, for messages.
pub const DIST_EXPECTED: &str = "a distribution (VALUE, const:VALUE, uniform:A..B, exp:MEAN \
     or lognormal:MEDIAN,SIGMA)";

/// Splits `text` into its leading decimal digits and the rest.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn scaled(digits: &str, factor: u64) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// `"500us"`, `"10ms"`, `"2s"`, `"750ns"`, `"20µs"`, `"1500"` (ns) → ns.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_digits(text);
    let factor = match unit {
        "" | "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(DURATION_EXPECTED.to_string()),
    };
    scaled(digits, factor).ok_or_else(|| DURATION_EXPECTED.to_string())
}

/// `"64GiB"`, `"4096B"`, `"123"` (bytes) → bytes. `KB`/`MB`/`GB` are errors.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_digits(text);
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "MB" | "GB" | "TB" | "K" | "M" | "G" | "T" => {
            return Err(format!(
                "{SIZE_EXPECTED}; decimal unit {unit:?} is not accepted, write {:?}",
                format!("{digits}{}iB", &unit[..1])
            ))
        }
        _ => return Err(SIZE_EXPECTED.to_string()),
    };
    scaled(digits, factor).ok_or_else(|| SIZE_EXPECTED.to_string())
}

/// `"10Gbit/s"`, `"2GB/s"`, `"1000"` (bytes/s) → bytes/s, rounded down.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_digits(text);
    // (multiplier, divisor): bits are divided by 8 after scaling.
    let (mul, div): (u64, u64) = match unit {
        "" | "B/s" => (1, 1),
        "KB/s" => (1_000, 1),
        "MB/s" => (1_000_000, 1),
        "GB/s" => (1_000_000_000, 1),
        "bit/s" => (1, 8),
        "Kbit/s" => (1_000, 8),
        "Mbit/s" => (1_000_000, 8),
        "Gbit/s" => (1_000_000_000, 8),
        _ => return Err(RATE_EXPECTED.to_string()),
    };
    scaled(digits, mul)
        .map(|v| v / div)
        .ok_or_else(|| RATE_EXPECTED.to_string())
}

/// True for `[A-Za-z0-9_-]{1,64}`.
pub fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A sigma with at most 3 fractional digits → thousandths (`"0.5"` → 500).
fn parse_sigma_milli(text: &str) -> Option<u32> {
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) => (whole, frac),
        None => (text, ""),
    };
    let whole_ok = !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit());
    if !whole_ok || !frac_ok || (text.contains('.') && frac.is_empty()) {
        return None;
    }
    let whole_milli = whole.parse::<u32>().ok()?.checked_mul(1000)?;
    let frac_milli = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse::<u32>().ok()?
    };
    whole_milli.checked_add(frac_milli)
}

/// A distribution (§6.2) whose values are parsed by `value` (durations or sizes).
pub fn parse_dist(text: &str, value: fn(&str) -> Result<u64, String>) -> Result<Dist, String> {
    let bad = |why: String| format!("{DIST_EXPECTED}: {why}");
    if let Some(rest) = text.strip_prefix("const:") {
        return value(rest).map(Dist::Const).map_err(bad);
    }
    if let Some(rest) = text.strip_prefix("uniform:") {
        let Some((lo, hi)) = rest.split_once("..") else {
            return Err(bad("uniform needs A..B".to_string()));
        };
        let lo = value(lo).map_err(bad)?;
        let hi = value(hi).map_err(bad)?;
        if lo > hi {
            return Err(bad(format!("uniform bounds reversed ({lo} > {hi})")));
        }
        return Ok(Dist::Uniform { lo, hi });
    }
    if let Some(rest) = text.strip_prefix("exp:") {
        return value(rest).map(|mean| Dist::Exp { mean }).map_err(bad);
    }
    if let Some(rest) = text.strip_prefix("lognormal:") {
        let Some((median, sigma)) = rest.split_once(',') else {
            return Err(bad("lognormal needs MEDIAN,SIGMA".to_string()));
        };
        let median = value(median).map_err(bad)?;
        let Some(sigma_milli) = parse_sigma_milli(sigma) else {
            return Err(bad(format!(
                "sigma {sigma:?} must be a decimal with at most 3 fractional digits"
            )));
        };
        return Ok(Dist::LogNormal {
            median,
            sigma_milli,
        });
    }
    value(text).map(Dist::Const).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::{is_name, parse_dist, parse_duration, parse_rate, parse_size};
    use crate::scenario::model::Dist;

    #[test]
    fn duration_units_scale_to_ns() {
        assert_eq!(parse_duration("500us"), Ok(500_000));
        assert_eq!(parse_duration("20µs"), Ok(20_000));
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration("750"), Ok(750));
    }

    #[test]
    fn duration_fraction_is_rejected() {
        parse_duration("1.5ms").expect_err("must be rejected");
        parse_duration("-1ms").expect_err("must be rejected");
        parse_duration("ms").expect_err("must be rejected");
        parse_duration("99999999999999999999s").expect_err("must be rejected");
    }

    #[test]
    fn size_decimal_unit_is_rejected_with_hint() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        let message = parse_size("4GB").expect_err("GB is decimal");
        assert!(message.contains("\"4GiB\""), "{message}");
    }

    #[test]
    fn rate_bits_round_down_to_bytes() {
        assert_eq!(parse_rate("10Gbit/s"), Ok(1_250_000_000));
        assert_eq!(parse_rate("9bit/s"), Ok(1));
        assert_eq!(parse_rate("2GB/s"), Ok(2_000_000_000));
    }

    #[test]
    fn name_charset_and_length_enforced() {
        assert!(is_name("web-1_a"));
        assert!(!is_name("web.1"));
        assert!(!is_name(""));
        assert!(!is_name(&"a".repeat(65)));
    }

    #[test]
    fn dist_forms_parse() {
        assert_eq!(
            parse_dist("exp:200us", parse_duration),
            Ok(Dist::Exp { mean: 200_000 })
        );
        assert_eq!(
            parse_dist("uniform:1ms..3ms", parse_duration),
            Ok(Dist::Uniform {
                lo: 1_000_000,
                hi: 3_000_000
            })
        );
        assert_eq!(
            parse_dist("lognormal:1ms,0.25", parse_duration),
            Ok(Dist::LogNormal {
                median: 1_000_000,
                sigma_milli: 250
            })
        );
        assert_eq!(parse_dist("5us", parse_duration), Ok(Dist::Const(5_000)));
    }

    #[test]
    fn dist_bad_sigma_and_reversed_uniform_rejected() {
        parse_dist("lognormal:1ms,0.2501", parse_duration).expect_err("must be rejected");
        parse_dist("uniform:3ms..1ms", parse_duration).expect_err("must be rejected");
        parse_dist("gauss:1ms", parse_duration).expect_err("must be rejected");
    }
}
