//! The used byte runs of a block map inside a range, found by word-skipping search, so a nearly
//! empty multi-terabyte partition costs its runs, not its blocks.

/// The used byte runs inside `[at, at + n)` of a map of `unit`-byte blocks (`units` of them; blocks
/// past the end count as free), as `(start, end)` pairs in bytes, clipped to the range.
/// `next_with(from, used, limit)` is the map's search: the first block in `[from, limit)` that is
/// used (or free), `limit` when none is — so the walk costs the number of runs, not of blocks (a
/// 2 TiB map of 512-byte blocks has four billion). Runs whose gap is at most `merge_gap` bytes are
/// joined (a backup reads through small holes rather than issue many small reads; a restore
/// passes 0 and writes exactly the used blocks).
pub fn used_runs(
    unit: u64,
    units: u64,
    next_with: impl Fn(u64, bool, u64) -> u64,
    at: u64,
    n: u64,
    merge_gap: u64,
) -> Vec<(u64, u64)> {
    let end = at.saturating_add(n);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    if unit == 0 {
        return runs;
    }
    let last = end.div_ceil(unit).min(units);
    let mut u = at / unit;
    while u < last {
        let first_used = next_with(u, true, last);
        if first_used >= last {
            break;
        }
        let first_free = next_with(first_used, false, last).clamp(first_used + 1, last);
        let s = first_used.saturating_mul(unit).max(at);
        let e = first_free.saturating_mul(unit).min(end);
        match runs.last_mut() {
            Some(last) if s <= last.1.saturating_add(merge_gap) => last.1 = e,
            _ => runs.push((s, e)),
        }
        u = first_free;
    }
    runs
}

#[cfg(test)]
mod tests {
    #[test]
    fn used_runs_are_clipped_joined_across_small_gaps_and_stop_at_the_map_end() {
        let used = [true, true, false, true, false, false, false, true];
        let is_used = |from: u64, state: bool, limit: u64| {
            (from..limit.min(8))
                .find(|&u| used[u as usize] == state)
                .unwrap_or(limit.min(8))
        };
        // Exact runs, clipped to a range that starts and ends inside blocks.
        assert_eq!(
            super::used_runs(4, 8, is_used, 2, 28, 0),
            vec![(2, 8), (12, 16), (28, 30)]
        );
        // A one-block gap is read through with merge_gap = 4, a three-block gap is not.
        assert_eq!(
            super::used_runs(4, 8, is_used, 0, 32, 4),
            vec![(0, 16), (28, 32)]
        );
        // Blocks past the map's end are free; a zero unit yields nothing.
        let all = |from: u64, state: bool, limit: u64| if state { from } else { limit };
        assert_eq!(super::used_runs(4, 2, all, 0, 100, 0), vec![(0, 8)]);
        assert!(super::used_runs(0, 8, all, 0, 100, 0).is_empty());
    }
}
