//! Running a compaction: merge the input tables and write new ones, dropping
//! versions no reader can see.
//!
//! Garbage-collection rule, per user key, with `W` the GC watermark (readers
//! never read below `W`):
//!
//! - versions newer than `W` are kept;
//! - of the versions at or below `W`, the newest is kept (a reader at `W` sees
//!   it) and the older ones are dropped: every reader sees the kept one first;
//! - that newest version is dropped too if it is a tombstone, the output is the
//!   bottommost level for its range, and no newer source (memtable or table not
//!   in the compaction) holds a version older than the tombstone
//!   (`tombstone_horizon`), since such a version would otherwise reappear.
//!
//! When two inputs hold the same key and timestamp, the newer input's version
//! wins and the other is dropped.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::iter::Cursor;
use crate::key::{Timestamp, ValueRef};
use crate::table::{TableBuilder, TableMeta};

/// What to keep while merging.
#[derive(Clone, Copy, Debug)]
pub struct GcRules {
    pub watermark: Timestamp,
    pub bottommost: bool,
    /// Tombstones at or below this timestamp may be dropped (see module doc).
    pub tombstone_horizon: Timestamp,
}

/// What a merge produced and dropped.
#[derive(Debug, Default)]
pub struct MergeOutcome {
    pub tables: Vec<TableMeta>,
    pub versions_dropped: u64,
    pub tombstones_dropped: u64,
}

/// Decides, version by version, what survives. Fed versions in merge order.
#[derive(Debug)]
pub struct GcFilter {
    rules: GcRules,
    key: Vec<u8>,
    last_ts: Option<Timestamp>,
    seen_at_or_below_watermark: bool,
}

/// The verdict on one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Same key and timestamp as a version from a newer input.
    Duplicate,
    /// Shadowed below the watermark.
    Shadowed,
    /// A bottommost tombstone below the watermark.
    TombstoneDropped,
}

impl GcFilter {
    pub fn new(rules: GcRules) -> GcFilter {
        GcFilter { rules, key: Vec::new(), last_ts: None, seen_at_or_below_watermark: false }
    }

    /// Whether `key` starts a new user key (the previous one is complete).
    pub fn is_new_key(&self, key: &[u8]) -> bool {
        self.last_ts.is_none() || self.key != key
    }

    pub fn judge(&mut self, key: &[u8], ts: Timestamp, value: ValueRef<'_>) -> Verdict {
        if self.is_new_key(key) {
            self.key.clear();
            self.key.extend_from_slice(key);
            self.seen_at_or_below_watermark = false;
        } else if self.last_ts == Some(ts) {
            return Verdict::Duplicate;
        }
        self.last_ts = Some(ts);
        if ts > self.rules.watermark {
            return Verdict::Keep;
        }
        if self.seen_at_or_below_watermark {
            return Verdict::Shadowed;
        }
        self.seen_at_or_below_watermark = true;
        if value.is_delete() && self.rules.bottommost && ts <= self.rules.tombstone_horizon {
            return Verdict::TombstoneDropped;
        }
        Verdict::Keep
    }
}

/// Where output tables come from, and how fast they may be written.
pub struct OutputSink<'a> {
    /// Creates the builder for the next output table.
    pub new_table: &'a mut dyn FnMut() -> Result<TableBuilder>,
    pub target_file_size: u64,
    pub rate_bytes_per_sec: Option<u64>,
}

impl std::fmt::Debug for OutputSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSink").field("target_file_size", &self.target_file_size).finish()
    }
}

/// Merges `input` (already positioned at its first version, walking forward)
/// into new tables, applying `rules`.
pub fn merge_into_tables(
    input: &mut dyn Cursor,
    rules: GcRules,
    sink: &mut OutputSink<'_>,
) -> Result<MergeOutcome> {
    let mut out = MergeOutcome::default();
    let mut filter = GcFilter::new(rules);
    let mut builder: Option<TableBuilder> = None;
    let started = Instant::now();
    let mut finished_bytes = 0u64;
    let result = (|| -> Result<()> {
        while input.valid() {
            let (key, ts, value) = (input.key(), input.ts(), input.value());
            // Cut outputs only between user keys.
            if filter.is_new_key(key)
                && builder.as_ref().is_some_and(|b| b.estimated_size() >= sink.target_file_size)
            {
                let done = builder.take().expect("checked").finish()?;
                finished_bytes += done.size;
                out.tables.push(done);
                throttle(started, finished_bytes, sink.rate_bytes_per_sec);
            }
            match filter.judge(key, ts, value) {
                Verdict::Keep => {
                    if builder.is_none() {
                        builder = Some((sink.new_table)()?);
                    }
                    builder.as_mut().expect("just created").add(key, ts, value)?;
                }
                Verdict::Duplicate | Verdict::Shadowed => out.versions_dropped += 1,
                Verdict::TombstoneDropped => out.tombstones_dropped += 1,
            }
            input.advance()?;
        }
        if let Some(b) = builder.take() {
            if b.is_empty() {
                b.abandon();
            } else {
                out.tables.push(b.finish()?);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        if let Some(b) = builder {
            b.abandon();
        }
        return Err(e);
    }
    Ok(out)
}

/// Sleeps as needed to keep the write rate at or under `rate`.
fn throttle(started: Instant, bytes: u64, rate: Option<u64>) {
    if let Some(rate) = rate {
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(rules: GcRules, versions: &[(&[u8], Timestamp, bool)]) -> Vec<Verdict> {
        let mut f = GcFilter::new(rules);
        versions
            .iter()
            .map(|(k, ts, del)| {
                f.judge(k, *ts, if *del { ValueRef::Delete } else { ValueRef::Put(b"v") })
            })
            .collect()
    }

    #[test]
    fn keeps_newest_at_or_below_watermark_and_everything_above() {
        let rules = GcRules { watermark: 10, bottommost: false, tombstone_horizon: 0 };
        let v = verdicts(
            rules,
            &[(b"a", 15, false), (b"a", 10, false), (b"a", 5, false), (b"b", 3, false)],
        );
        use Verdict::*;
        assert_eq!(v, [Keep, Keep, Shadowed, Keep]);
    }

    #[test]
    fn tombstones_dropped_only_at_bottom_and_under_horizon() {
        use Verdict::*;
        let versions: &[(&[u8], Timestamp, bool)] = &[(b"a", 8, true), (b"a", 4, false)];
        let bottom = GcRules { watermark: 10, bottommost: true, tombstone_horizon: u64::MAX };
        assert_eq!(verdicts(bottom, versions), [TombstoneDropped, Shadowed]);
        let not_bottom = GcRules { bottommost: false, ..bottom };
        assert_eq!(verdicts(not_bottom, versions), [Keep, Shadowed]);
        // A newer source holds a version older than the tombstone: keep it.
        let horizon = GcRules { tombstone_horizon: 7, ..bottom };
        assert_eq!(verdicts(horizon, versions), [Keep, Shadowed]);
        // A tombstone above the watermark is always kept.
        let low = GcRules { watermark: 5, ..bottom };
        assert_eq!(verdicts(low, versions), [Keep, Keep]);
    }

    #[test]
    fn duplicates_from_older_inputs_are_dropped() {
        let rules = GcRules { watermark: 0, bottommost: false, tombstone_horizon: 0 };
        use Verdict::*;
        assert_eq!(
            verdicts(rules, &[(b"a", 5, false), (b"a", 5, true), (b"a", 4, false)]),
            [Keep, Duplicate, Keep]
        );
    }
}
