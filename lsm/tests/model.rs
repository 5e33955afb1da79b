//! Model test: random operations against the engine and an in-memory model of
//! versioned keys must agree at every step.
//!
//! Timestamps of writes are random above the GC watermark (not increasing),
//! keys collide often, and flushes, compactions (background and manual),
//! watermark moves and reopens are interleaved, so every layer (memtable,
//! level 0, deeper levels, WAL replay, garbage collection) is exercised.
//! `PROPTEST_CASES` raises the number of cases.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use strata_lsm::{Db, Durability, Error, KeyRange, Options, Value, WriteBatch};

#[derive(Clone, Debug)]
enum Op {
    /// Writes (key, ts offset above the watermark, value or tombstone).
    Write(Vec<(u8, u8, Option<u8>)>),
    Get {
        key: u8,
        ts: u8,
    },
    Scan {
        lo: Option<u8>,
        hi: Option<u8>,
        ts: u8,
        reverse: bool,
        limit: u8,
    },
    Flush,
    Compact,
    RaiseWatermark(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let write =
        prop::collection::vec((0u8..24, 0u8..40, prop::option::weighted(0.8, any::<u8>())), 1..6);
    prop_oneof![
        30 => write.prop_map(Op::Write),
        20 => (0u8..24, any::<u8>()).prop_map(|(key, ts)| Op::Get { key, ts }),
        10 => (prop::option::of(0u8..24), prop::option::of(0u8..24), any::<u8>(), any::<bool>(), 1u8..30)
            .prop_map(|(lo, hi, ts, reverse, limit)| Op::Scan { lo, hi, ts, reverse, limit }),
        3 => Just(Op::Flush),
        2 => Just(Op::Compact),
        3 => (0u8..20).prop_map(Op::RaiseWatermark),
        2 => Just(Op::Reopen),
    ]
}

fn key(k: u8) -> Vec<u8> {
    // Keys of different lengths, some prefixes of others.
    format!("k{}", k).into_bytes()
}

fn value(v: u8, ts: u64) -> Vec<u8> {
    let mut out = format!("v{v}@{ts}").into_bytes();
    out.resize(20 + usize::from(v) * 3, b'.');
    out
}

/// Versions by key, then timestamp. The newest write of a (key, ts) wins.
#[derive(Default)]
struct Model {
    versions: BTreeMap<Vec<u8>, BTreeMap<u64, Option<Vec<u8>>>>,
    watermark: u64,
}

impl Model {
    fn get(&self, key: &[u8], ts: u64) -> Option<(u64, Option<Vec<u8>>)> {
        let (t, v) = self.versions.get(key)?.range(..=ts).next_back()?;
        Some((*t, v.clone()))
    }

    fn scan(&self, range: &KeyRange, ts: u64, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<_> = self
            .versions
            .keys()
            .filter(|k| range.contains(k))
            .filter_map(|k| match self.get(k, ts) {
                Some((_, Some(v))) => Some((k.clone(), v)),
                _ => None,
            })
            .collect();
        if reverse {
            out.reverse();
        }
        out
    }
}

fn options() -> Options {
    Options {
        memtable_size_bytes: 2048,
        block_size_bytes: 128,
        target_file_size_bytes: 1024,
        level1_size_bytes: 4096,
        level_size_multiplier: 2,
        num_levels: 4,
        l0_compaction_trigger: 2,
        wal_preallocate_bytes: Some(4096),
        ..Options::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Some(Db::open(dir.path(), options()).unwrap());
    let mut model = Model::default();
    for op in ops {
        let d = db.as_ref().unwrap();
        match op {
            Op::Write(writes) => {
                let mut batch = WriteBatch::new();
                for (k, ts_off, v) in writes {
                    // Strictly above the watermark, in any order.
                    let ts = model.watermark + 1 + u64::from(ts_off);
                    match v {
                        Some(v) => {
                            batch.put(&key(k), ts, &value(v, ts));
                            model
                                .versions
                                .entry(key(k))
                                .or_default()
                                .insert(ts, Some(value(v, ts)));
                        }
                        None => {
                            batch.delete(&key(k), ts);
                            model.versions.entry(key(k)).or_default().insert(ts, None);
                        }
                    }
                }
                d.write(&batch, Durability::Buffered).unwrap();
            }
            Op::Get { key: k, ts } => {
                let ts = model.watermark + u64::from(ts) % 50;
                let got = d.get_version(&key(k), ts).unwrap();
                let want =
                    model.get(&key(k), ts).map(|(t, v)| (t, v.map_or(Value::Delete, Value::Put)));
                // Garbage collection may remove a tombstone at or below the
                // watermark: to every permitted reader that equals absence.
                let gc_tombstone = matches!(want, Some((t, Value::Delete)) if t <= model.watermark);
                if !(gc_tombstone && got.is_none()) {
                    prop_assert_eq!(got, want, "get {} at {}", k, ts);
                }
            }
            Op::Scan { lo, hi, ts, reverse, limit } => {
                let ts = model.watermark + u64::from(ts) % 50;
                let lo_b = lo.map_or(Bound::Unbounded, |k| {
                    if k % 2 == 0 { Bound::Included(key(k)) } else { Bound::Excluded(key(k)) }
                });
                let hi_b = hi.map_or(Bound::Unbounded, |k| {
                    if k % 2 == 0 { Bound::Excluded(key(k)) } else { Bound::Included(key(k)) }
                });
                let range = KeyRange { lower: lo_b, upper: hi_b };
                let got: Vec<_> = d
                    .scan(range.clone(), ts, reverse)
                    .unwrap()
                    .take(usize::from(limit))
                    .collect::<Result<_, _>>()
                    .unwrap();
                let mut want = model.scan(&range, ts, reverse);
                want.truncate(usize::from(limit));
                prop_assert_eq!(got, want, "scan {:?} at {} reverse {}", range, ts, reverse);
            }
            Op::Flush => d.flush().unwrap(),
            Op::Compact => d.compact().unwrap(),
            Op::RaiseWatermark(by) => {
                model.watermark += u64::from(by);
                d.set_gc_watermark(model.watermark);
                if model.watermark > 0 {
                    let too_old = d.get(b"k1", model.watermark - 1);
                    let is_too_old = matches!(too_old, Err(Error::SnapshotTooOld { .. }));
                    prop_assert!(is_too_old, "read below the watermark: {:?}", too_old);
                }
            }
            Op::Reopen => {
                drop(db.take());
                let reopened = Db::open(dir.path(), options()).unwrap();
                // The persisted watermark never exceeds what was set.
                prop_assert!(reopened.gc_watermark() <= model.watermark);
                reopened.set_gc_watermark(model.watermark);
                db = Some(reopened);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_model(ops in prop::collection::vec(op(), 1..250)) {
        run(ops)?;
    }
}
