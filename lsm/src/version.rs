//! The set of live tables (a [`Version`]) and the compaction policy.
//!
//! Level 0 holds tables flushed from memtables; they may overlap and are kept
//! newest first. Levels 1 and below hold tables sorted by key that do not
//! overlap, and data in a level is always newer than the same key's data in
//! deeper levels. All versions of one user key in a level live in one table
//! (compaction never splits a key across outputs), so a point lookup consults
//! at most one table per level below 0.
//!
//! [`pick_compaction`] is a pure function from the shape of the levels to a
//! task, so the policy can be tested, and simulated, without files.

use std::collections::HashSet;
use std::sync::Arc;

use crate::table::{Table, TableMeta};

/// An immutable snapshot of the live tables.
#[derive(Clone, Debug, Default)]
pub struct Version {
    pub levels: Vec<Vec<Arc<Table>>>,
}

impl Version {
    pub fn new(num_levels: usize) -> Version {
        Version { levels: vec![Vec::new(); num_levels] }
    }

    /// The version after removing `deleted` table numbers and adding `added`.
    pub fn apply(&self, deleted: &HashSet<u64>, added: Vec<(usize, Arc<Table>)>) -> Version {
        let mut levels: Vec<Vec<Arc<Table>>> = self
            .levels
            .iter()
            .map(|l| l.iter().filter(|t| !deleted.contains(&t.meta().number)).cloned().collect())
            .collect();
        for (level, table) in added {
            levels[level].push(table);
        }
        levels[0].sort_by_key(|t| std::cmp::Reverse(t.meta().number));
        for level in &mut levels[1..] {
            level.sort_by(|a, b| a.meta().smallest.cmp(&b.meta().smallest));
        }
        let v = Version { levels };
        v.assert_invariants();
        v
    }

    /// Levels 1 and deeper are sorted and free of overlap, even at the
    /// granularity of user keys.
    pub fn assert_invariants(&self) {
        for (n, level) in self.levels.iter().enumerate().skip(1) {
            for pair in level.windows(2) {
                let (a, b) = (pair[0].meta(), pair[1].meta());
                assert!(
                    a.largest < b.smallest,
                    "level {n}: table {} [{:?}..{:?}] overlaps table {} [{:?}..{:?}]",
                    a.number,
                    a.smallest,
                    a.largest,
                    b.number,
                    b.smallest,
                    b.largest
                );
            }
        }
    }

    pub fn metas(&self) -> Vec<Vec<&TableMeta>> {
        self.levels.iter().map(|l| l.iter().map(|t| t.meta()).collect()).collect()
    }
}

/// The knobs of the leveled policy.
#[derive(Clone, Debug)]
pub struct CompactionPolicy {
    pub l0_trigger: usize,
    pub level1_bytes: u64,
    pub multiplier: u64,
}

impl CompactionPolicy {
    /// Target size in bytes of level `n >= 1`.
    pub fn level_target(&self, n: usize) -> u64 {
        assert!(n >= 1);
        (1..n).fold(self.level1_bytes, |acc, _| acc.saturating_mul(self.multiplier))
    }
}

/// A compaction to run: merge `upper` (tables of `level`) with `lower` (the
/// overlapping tables of `level + 1`) into new tables of `level + 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionTask {
    pub level: usize,
    pub upper: Vec<u64>,
    pub lower: Vec<u64>,
    pub output_level: usize,
    /// No deeper level holds data in the task's key range, so tombstones at or
    /// below the GC watermark can be dropped.
    pub bottommost: bool,
    /// The inputs overlap nothing in the output level nor (for level 0) each
    /// other, so they can be re-assigned to it without rewriting: a *trivial
    /// move*. Never set for a full compaction, which promises GC.
    pub trivial_move: bool,
}

fn key_span<'a>(tables: &[&'a TableMeta]) -> (&'a [u8], &'a [u8]) {
    let smallest = tables.iter().map(|t| t.smallest.as_slice()).min().expect("non-empty");
    let largest = tables.iter().map(|t| t.largest.as_slice()).max().expect("non-empty");
    (smallest, largest)
}

fn overlapping<'a>(level: &[&'a TableMeta], lo: &[u8], hi: &[u8]) -> Vec<&'a TableMeta> {
    level
        .iter()
        .filter(|t| t.largest.as_slice() >= lo && t.smallest.as_slice() <= hi)
        .copied()
        .collect()
}

fn is_bottommost(levels: &[Vec<&TableMeta>], output: usize, lo: &[u8], hi: &[u8]) -> bool {
    levels[output + 1..].iter().all(|l| overlapping(l, lo, hi).is_empty())
}

/// Chooses the most urgent compaction, if any level is over its target.
///
/// Scores: level 0 is `files / l0_trigger`; level `n >= 1` is
/// `bytes / level_target(n)`; the last level is never a source. The level with
/// the highest score of at least 1 is compacted: all of level 0, or in a deeper
/// level the table whose overlap with the next level is smallest relative to
/// its own size (RocksDB's `kMinOverlappingRatio`: the least rewriting per
/// byte moved down), together with the overlapping tables of the next level.
/// Ties go to the first table after that level's `pointer` (round robin).
pub fn pick_compaction(
    levels: &[Vec<&TableMeta>],
    policy: &CompactionPolicy,
    pointers: &[Vec<u8>],
) -> Option<CompactionTask> {
    let last = levels.len() - 1;
    let mut best: Option<(f64, usize)> = None;
    for (n, level) in levels.iter().enumerate().take(last) {
        let score = if n == 0 {
            level.len() as f64 / policy.l0_trigger as f64
        } else {
            level.iter().map(|t| t.size).sum::<u64>() as f64 / policy.level_target(n) as f64
        };
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, n));
        }
    }
    let (_, level) = best?;
    let upper: Vec<&TableMeta> = if level == 0 {
        levels[0].clone()
    } else {
        let pointer = pointers.get(level).map_or(&[][..], |p| p.as_slice());
        let start = levels[level].iter().position(|t| t.smallest.as_slice() > pointer).unwrap_or(0);
        let n = levels[level].len();
        let ratio = |t: &TableMeta| {
            let below: u64 = overlapping(&levels[level + 1], &t.smallest, &t.largest)
                .iter()
                .map(|o| o.size)
                .sum();
            below as f64 / t.size.max(1) as f64
        };
        // Scan in round-robin order from the pointer so ties rotate.
        let pick = (0..n)
            .map(|i| levels[level][(start + i) % n])
            .min_by(|a, b| ratio(a).total_cmp(&ratio(b)))?;
        vec![pick]
    };
    let (lo, hi) = key_span(&upper);
    let lower = overlapping(&levels[level + 1], lo, hi);
    let disjoint = {
        let mut spans: Vec<(&[u8], &[u8])> =
            upper.iter().map(|t| (t.smallest.as_slice(), t.largest.as_slice())).collect();
        spans.sort();
        spans.windows(2).all(|w| w[0].1 < w[1].0)
    };
    let trivial_move = lower.is_empty() && disjoint;
    let mut all = upper.clone();
    all.extend(&lower);
    let (lo, hi) = key_span(&all);
    Some(CompactionTask {
        level,
        upper: upper.iter().map(|t| t.number).collect(),
        lower: lower.iter().map(|t| t.number).collect(),
        output_level: level + 1,
        bottommost: is_bottommost(levels, level + 1, lo, hi),
        trivial_move,
    })
}

/// A task that merges every table into the deepest non-empty level (at least
/// level 1), as a manual full compaction does.
pub fn full_compaction(levels: &[Vec<&TableMeta>]) -> Option<CompactionTask> {
    let deepest = levels.iter().rposition(|l| !l.is_empty())?;
    let output_level = deepest.max(1);
    let mut upper = Vec::new();
    for level in &levels[..output_level] {
        upper.extend(level.iter().map(|t| t.number));
    }
    let lower = levels[output_level].iter().map(|t| t.number).collect();
    Some(CompactionTask {
        level: output_level - 1,
        upper,
        lower,
        output_level,
        bottommost: true,
        trivial_move: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(number: u64, lo: &str, hi: &str, size: u64) -> TableMeta {
        TableMeta {
            number,
            size,
            smallest: lo.as_bytes().to_vec(),
            smallest_ts: 1,
            largest: hi.as_bytes().to_vec(),
            largest_ts: 1,
            min_ts: 1,
            max_ts: 1,
            entries: 1,
            tombstones: 0,
        }
    }

    fn policy() -> CompactionPolicy {
        CompactionPolicy { l0_trigger: 2, level1_bytes: 100, multiplier: 10 }
    }

    #[test]
    fn level_targets_grow_by_the_multiplier() {
        let p = policy();
        assert_eq!([p.level_target(1), p.level_target(2), p.level_target(3)], [100, 1000, 10_000]);
    }

    #[test]
    fn nothing_to_do_under_targets() {
        let (a, b) = (meta(1, "a", "c", 10), meta(2, "d", "f", 50));
        let levels = vec![vec![&a], vec![&b], vec![]];
        assert_eq!(pick_compaction(&levels, &policy(), &[]), None);
    }

    #[test]
    fn level0_compacts_all_files_with_overlapping_level1() {
        let (l0a, l0b) = (meta(9, "b", "d", 10), meta(8, "c", "e", 10));
        let (l1a, l1b, l1c) = (meta(3, "a", "a", 10), meta(4, "c", "c", 10), meta(5, "x", "z", 10));
        let l2 = meta(2, "d", "d", 10);
        let levels = vec![vec![&l0a, &l0b], vec![&l1a, &l1b, &l1c], vec![&l2]];
        let task = pick_compaction(&levels, &policy(), &[]).unwrap();
        assert_eq!(task.level, 0);
        assert_eq!(task.upper, vec![9, 8]);
        assert_eq!(task.lower, vec![4]);
        assert!(!task.bottommost, "level 2 holds key d inside the task's range");
        assert!(!task.trivial_move);
    }

    #[test]
    fn non_overlapping_inputs_move_without_rewriting() {
        // Sequential data: level-0 tables after everything in level 1.
        let (a, b) = (meta(9, "m", "n", 10), meta(8, "k", "l", 10));
        let old = meta(3, "a", "c", 10);
        let levels = vec![vec![&a, &b], vec![&old], vec![]];
        let task = pick_compaction(&levels, &policy(), &[]).unwrap();
        assert!(task.trivial_move && task.lower.is_empty(), "{task:?}");
        // Overlapping level-0 tables must be merged.
        let c = meta(7, "k", "m", 10);
        let levels = vec![vec![&a, &c], vec![&old], vec![]];
        assert!(!pick_compaction(&levels, &policy(), &[]).unwrap().trivial_move);
        assert!(
            !full_compaction(&[vec![&a], vec![]]).unwrap().trivial_move,
            "full compactions rewrite (GC)"
        );
    }

    #[test]
    fn deeper_level_picks_the_least_overlapping_table() {
        // Table 1 overlaps 10 bytes below per 80 bytes; table 2 overlaps 200.
        let (a, b) = (meta(1, "a", "b", 80), meta(2, "m", "n", 80));
        let (c, d) = (meta(3, "a", "a", 10), meta(4, "m", "m", 200));
        let levels = vec![vec![], vec![&a, &b], vec![&c, &d]];
        let task = pick_compaction(&levels, &policy(), &[]).unwrap();
        assert_eq!((task.upper, task.lower), (vec![1], vec![3]));
        // Even when the round-robin pointer has passed it.
        let pointers = vec![vec![], b"a".to_vec()];
        assert_eq!(pick_compaction(&levels, &policy(), &pointers).unwrap().upper, vec![1]);
    }

    #[test]
    fn equal_overlap_rotates_with_the_pointer() {
        let (a, b) = (meta(1, "a", "b", 80), meta(2, "m", "n", 80));
        let levels = vec![vec![], vec![&a, &b], vec![]];
        let first = pick_compaction(&levels, &policy(), &[]).unwrap();
        assert_eq!(first.upper, vec![1]);
        assert!(first.bottommost && first.trivial_move);
        let pointers = vec![vec![], b"a".to_vec()];
        assert_eq!(pick_compaction(&levels, &policy(), &pointers).unwrap().upper, vec![2]);
    }

    #[test]
    fn most_urgent_level_wins() {
        let l0 = [meta(10, "a", "z", 1), meta(11, "a", "z", 1)]; // score 1.0
        let l1 = [meta(1, "a", "c", 150), meta(2, "d", "f", 150)]; // score 3.0
        let levels = vec![l0.iter().collect(), l1.iter().collect(), vec![]];
        assert_eq!(pick_compaction(&levels, &policy(), &[]).unwrap().level, 1);
    }

    #[test]
    fn full_compaction_targets_deepest_level() {
        let (a, b, c) = (meta(1, "a", "b", 1), meta(2, "c", "d", 1), meta(3, "a", "z", 1));
        let levels = vec![vec![&a], vec![], vec![&b, &c], vec![]];
        let task = full_compaction(&levels).unwrap();
        assert_eq!((task.upper, task.lower, task.output_level), (vec![1], vec![2, 3], 2));
        let only_l0 = vec![vec![&a], vec![], vec![]];
        assert_eq!(full_compaction(&only_l0).unwrap().output_level, 1);
        assert_eq!(full_compaction(&[vec![], vec![]]), None);
    }
}
