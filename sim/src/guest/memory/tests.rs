use super::{
    div_ppm_down, mul_ppm_up, FloorNotice, GuestMemory, MemoryCosts, NumaView, Stretch, PPM,
};
use crate::scenario::model::MemoryWorkload;

/// 1 GiB in 4 KiB pages.
const GIB_PAGES: u64 = 262_144;

fn spec(working_set_gib: u64) -> MemoryWorkload {
    MemoryWorkload {
        working_set_bytes: working_set_gib << 30,
        page_cache_bytes: 0,
        dirty_pages_per_s: 0,
        hot_ppm: 1_000_000,
        hot_set_bytes: working_set_gib << 30,
        floor_ppm: 500_000,
    }
}

fn booted(spec: MemoryWorkload, resident_pages: u64) -> GuestMemory {
    let mut m = GuestMemory::new(spec, 0);
    m.set_resident(resident_pages, &[resident_pages], 0);
    m
}

#[test]
fn boot_tells_balloon_the_floor_of_half_the_working_set() {
    let mut m = GuestMemory::new(spec(2), 0);
    let notice = m.set_resident(4 * GIB_PAGES, &[4 * GIB_PAGES], 0);
    assert_eq!(
        notice,
        Some(FloorNotice {
            floor_pages: GIB_PAGES,
            oom_kill: false
        })
    );
}

#[test]
fn resident_above_working_set_has_no_stretch() {
    let m = booted(spec(2), 4 * GIB_PAGES);
    assert_eq!(m.miss_ppm(), 0);
    assert_eq!(m.swap_stretch_ppm(), PPM);
}

#[test]
fn half_resident_uniform_access_halves_throughput() {
    // C/W = 0.5 and the whole W is hot: throughput × 0.5, demand × 2.
    let m = booted(spec(2), GIB_PAGES);
    assert_eq!(m.miss_ppm(), 500_000);
    assert_eq!(m.swap_stretch_ppm(), 2 * PPM);
}

#[test]
fn small_hot_set_that_fits_misses_only_cold_accesses() {
    // W = 2 GiB, hot 1 GiB gets 90% of accesses; 1.5 GiB resident: the hot set fits, half
    // of the cold GiB is out, so 10% × 50% = 5% of accesses miss.
    let mut s = spec(2);
    s.hot_set_bytes = 1 << 30;
    s.hot_ppm = 900_000;
    let m = booted(s, GIB_PAGES + GIB_PAGES / 2);
    assert_eq!(m.miss_ppm(), 50_000);
}

#[test]
fn throughput_never_drops_below_five_percent() {
    // 1% of W resident (no floor, so no OOM kill): the stretch stops at 20×.
    let mut s = spec(1);
    s.floor_ppm = 0;
    let m = booted(s, GIB_PAGES / 100);
    assert_eq!(m.swap_stretch_ppm(), 20 * PPM);
}

#[test]
fn boot_below_floor_oom_kills_and_working_set_drops() {
    let mut m = GuestMemory::new(spec(4), 0);
    let notice = m.set_resident(GIB_PAGES, &[GIB_PAGES], 0);
    assert_eq!(notice.map(|n| n.oom_kill), Some(true));
    assert_eq!(m.working_set_pages(), GIB_PAGES);
    assert_eq!(m.stats().oom_kill_count, 1);
}

#[test]
fn ballooning_below_working_set_swaps_out_the_difference() {
    let mut m = booted(spec(2), 3 * GIB_PAGES);
    let notice = m.set_resident(GIB_PAGES + 10, &[GIB_PAGES + 10], 5);
    assert_eq!(notice, None);
    assert_eq!(m.stats().swap_out_count, GIB_PAGES - 10);
}

#[test]
fn stretched_run_counts_swap_ins_by_their_cost() {
    // Stretch 2×: 1 ms of run time is 0.5 ms of work and 0.5 ms of swapping, i.e. 4
    // swap cycles of 103 µs (with 88 µs carried to the next segment).
    let mut m = booted(spec(2), GIB_PAGES);
    let stretch = Stretch::new(m.swap_stretch_ppm(), PPM);
    m.ran(1_000_000, 0, stretch, &MemoryCosts::DEFAULT);
    assert_eq!(m.stats().swap_in_count, 4);
    assert_eq!(m.stats().swap_stall_ns, 500_000);
    assert_eq!(m.stats().work_ns, 500_000);
}

#[test]
fn remote_pages_stretch_the_memory_bound_share() {
    // All pages on node 0, vCPU on node 1 at SLIT 20: factor 1.5, 30% memory-bound:
    // 1 + 0.3 × 0.5 = 1.15.
    let numa = NumaView {
        cpu_node: vec![0, 1],
        distances: vec![10, 20, 20, 10],
    };
    let mut m = GuestMemory::new(spec(1), 0);
    m.set_resident(2 * GIB_PAGES, &[2 * GIB_PAGES, 0], 0);
    let costs = MemoryCosts::DEFAULT;
    assert_eq!(m.numa_stretch_ppm(&numa, 1, &costs), 1_150_000);
    assert_eq!(m.numa_stretch_ppm(&numa, 0, &costs), PPM);
}

/// The `u128` formulas `mul_ppm_up` and `div_ppm_down` shortcut (no stretch, a product
/// that fits `u64`): the shortcuts must give the same values.
#[test]
fn ppm_shortcuts_match_the_u128_formulas() {
    let values = [
        0,
        1,
        2,
        999_999,
        PPM,
        PPM + 1,
        123_456_789,
        u64::MAX / PPM,
        u64::MAX,
    ];
    let ppms = [
        1,
        2,
        999_999,
        PPM,
        PPM + 1,
        1_150_000,
        3 * PPM,
        u64::MAX / 7,
        u64::MAX,
    ];
    for value in values {
        for ppm in ppms {
            let up = (u128::from(value) * u128::from(ppm)).div_ceil(u128::from(PPM));
            let up = u64::try_from(up).unwrap_or(u64::MAX);
            assert_eq!(mul_ppm_up(value, ppm), up, "{value} x {ppm}");
            let down = u128::from(value) * u128::from(PPM) / u128::from(ppm);
            let down = u64::try_from(down).unwrap_or(u64::MAX);
            assert_eq!(div_ppm_down(value, ppm), down, "{value} / {ppm}");
        }
    }
}
