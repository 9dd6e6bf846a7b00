//! xl's cpumap printing (`print_bitmap` in tools/xl/xl_utils.c; `specs/schedulers.md` §6.2):
//! `none`, `all` for one run from bit 0 to the last bit, else comma-separated runs `a` or
//! `a-b`.

use std::fmt::Write;

use hypervisor_model::cpumask::CpuMask;
use hypervisor_model::ids::PcpuId;

/// `print_bitmap(map, nr_bits)`: the first `nr_bits` bits of `mask`.
pub fn print_bitmap(mask: &CpuMask, nr_bits: u32) -> String {
    let is_set = |bit: u32| PcpuId::new(bit).is_some_and(|cpu| mask.test(cpu));
    let mut out = String::new();
    let mut runs = 0u32;
    let mut start: Option<u32> = None;
    for bit in 0..nr_bits {
        match (start, is_set(bit)) {
            (None, true) => start = Some(bit),
            (Some(first), false) => {
                push_run(&mut out, runs, first, bit - 1);
                runs += 1;
                start = None;
            }
            _ => {}
        }
    }
    match start {
        Some(0) if runs == 0 => out.push_str("all"),
        Some(first) => push_run(&mut out, runs, first, nr_bits - 1),
        None if runs == 0 => out.push_str("none"),
        None => {}
    }
    out
}

fn push_run(out: &mut String, runs_before: u32, first: u32, last: u32) {
    if runs_before > 0 {
        out.push(',');
    }
    let _ = write!(out, "{first}");
    if last > first {
        let _ = write!(out, "-{last}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(bits: &[u32], width: u32) -> CpuMask {
        let mut m = CpuMask::empty(width);
        for b in bits {
            m.set(PcpuId::new(*b).expect("small cpu"));
        }
        m
    }

    #[test]
    fn print_bitmap_follows_xl_utils_examples() {
        assert_eq!(print_bitmap(&mask(&[0, 1, 2, 3, 5], 8), 8), "0-3,5");
        assert_eq!(print_bitmap(&mask(&[2], 8), 8), "2");
        assert_eq!(print_bitmap(&mask(&[0, 1, 2, 3, 4, 5, 6, 7], 8), 8), "all");
        assert_eq!(print_bitmap(&mask(&[1, 2, 3, 4, 5, 6, 7], 8), 8), "1-7");
        assert_eq!(print_bitmap(&mask(&[0, 1, 2, 3, 4, 5, 6], 8), 8), "0-6");
        assert_eq!(print_bitmap(&mask(&[], 8), 8), "none");
    }

    #[test]
    fn print_bitmap_ignores_bits_past_nr_bits() {
        // A full mask of a wider width still prints `all` over the host's CPUs.
        assert_eq!(print_bitmap(&CpuMask::full(16), 4), "all");
        assert_eq!(print_bitmap(&mask(&[0, 1, 4], 8), 4), "0-1");
    }
}
