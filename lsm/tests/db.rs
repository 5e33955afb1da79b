//! Scenario tests of the whole engine through its public API.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use strata_lsm::{
    Db, Durability, Error, KeyRange, MAX_TS, Options, StallReason, Value, WriteBatch,
};

fn small() -> Options {
    Options { background_compaction: false, ..Options::small_for_tests() }
}

fn scan_keys(db: &Db, range: KeyRange, ts: u64, reverse: bool) -> Vec<String> {
    db.scan(range, ts, reverse).unwrap().map(|r| String::from_utf8(r.unwrap().0).unwrap()).collect()
}

#[test]
fn time_travel_survives_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let check = |db: &Db| {
        assert_eq!(db.get(b"k", 5).unwrap(), None);
        assert_eq!(db.get(b"k", 10).unwrap(), Some(b"v10".to_vec()));
        assert_eq!(db.get(b"k", 25).unwrap(), None, "deleted at 20");
        assert_eq!(db.get(b"k", 30).unwrap(), Some(b"v30".to_vec()));
        assert_eq!(db.get_version(b"k", 29).unwrap(), Some((20, Value::Delete)));
    };
    {
        let db = Db::open(dir.path(), small()).unwrap();
        db.put(b"k", 10, b"v10", Durability::Sync).unwrap();
        db.flush().unwrap();
        db.delete(b"k", 20, Durability::Sync).unwrap();
        db.flush().unwrap();
        db.put(b"k", 30, b"v30", Durability::Sync).unwrap(); // stays in the memtable
        check(&db);
        db.compact().unwrap();
        check(&db);
    }
    let db = Db::open(dir.path(), small()).unwrap();
    check(&db);
    assert_eq!(db.max_timestamp(), 30);
}

#[test]
fn unflushed_writes_are_replayed_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), small()).unwrap();
        let mut b = WriteBatch::new();
        for i in 0..100u32 {
            b.put(format!("key{i:03}").as_bytes(), 1, &i.to_le_bytes());
        }
        db.write(&b, Durability::Buffered).unwrap();
    }
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(db.stats().wal_records_recovered, 1);
    assert_eq!(db.get(b"key042", 1).unwrap(), Some(42u32.to_le_bytes().to_vec()));
    assert_eq!(scan_keys(&db, KeyRange::all(), 1, false).len(), 100);
}

#[test]
fn scans_merge_memtable_and_every_level_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    // Three generations: compacted into level 1, flushed to level 0, in memory.
    for i in 0..300u32 {
        db.put(format!("a{i:04}").as_bytes(), 1, b"old", Durability::Buffered).unwrap();
    }
    db.compact().unwrap();
    for i in (0..300u32).step_by(3) {
        db.delete(format!("a{i:04}").as_bytes(), 2, Durability::Buffered).unwrap();
    }
    db.flush().unwrap();
    for i in (0..300u32).step_by(5) {
        db.put(format!("a{i:04}").as_bytes(), 3, b"new", Durability::Buffered).unwrap();
    }
    let visible: Vec<String> =
        (0..300u32).filter(|i| i % 3 != 0 || i % 5 == 0).map(|i| format!("a{i:04}")).collect();
    assert_eq!(scan_keys(&db, KeyRange::all(), 3, false), visible);
    let mut reversed = visible.clone();
    reversed.reverse();
    assert_eq!(scan_keys(&db, KeyRange::all(), 3, true), reversed);
    // At ts 1 everything is still there.
    assert_eq!(scan_keys(&db, KeyRange::all(), 1, false).len(), 300);
    // Prefix scans use the same machinery.
    let in_a01: Vec<String> = visible.iter().filter(|k| k.starts_with("a01")).cloned().collect();
    assert_eq!(scan_keys(&db, KeyRange::prefix(b"a01"), 3, false), in_a01);
    let mut scan = db.scan(KeyRange::prefix(b"a0150"), 3, false).unwrap();
    assert_eq!(scan.next_entry().unwrap(), Some((&b"a0150"[..], &b"new"[..])));
    assert_eq!(scan.next_entry().unwrap(), None);
}

#[test]
fn gc_watermark_drops_shadowed_versions_and_bottom_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for ts in 1..=5 {
        db.put(b"versions", ts, format!("v{ts}").as_bytes(), Durability::Buffered).unwrap();
    }
    db.put(b"gone", 1, b"x", Durability::Buffered).unwrap();
    db.delete(b"gone", 2, Durability::Buffered).unwrap();
    db.flush().unwrap();
    db.set_gc_watermark(4);
    db.compact().unwrap();
    let stats = db.stats();
    // versions@1..3 are shadowed by versions@4; gone@1 by its tombstone, which
    // is itself dropped at the bottom level.
    assert_eq!(stats.versions_dropped, 4, "{stats:?}");
    assert_eq!(stats.tombstones_dropped, 1, "{stats:?}");
    assert_eq!(db.get(b"versions", 4).unwrap(), Some(b"v4".to_vec()));
    assert_eq!(db.get(b"versions", 5).unwrap(), Some(b"v5".to_vec()));
    assert!(matches!(
        db.get(b"versions", 3),
        Err(Error::SnapshotTooOld { read_ts: 3, watermark: 4 })
    ));
    assert!(matches!(db.scan(KeyRange::all(), 2, false), Err(Error::SnapshotTooOld { .. })));
    assert_eq!(db.get(b"gone", MAX_TS).unwrap(), None);
    drop(db);
    // The watermark a compaction used is persisted with its result.
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(db.gc_watermark(), 4);
}

#[test]
fn background_compaction_keeps_levels_in_shape() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::small_for_tests()).unwrap();
    for i in 0..20_000u32 {
        let key = format!("key{:06}", (i * 7919) % 5000);
        db.put(key.as_bytes(), u64::from(i) + 1, &[b'v'; 40], Durability::Buffered).unwrap();
        if i % 1000 == 0 {
            db.set_gc_watermark(u64::from(i));
        }
    }
    db.flush().unwrap();
    // Wait for background compaction to settle level 0.
    for _ in 0..200 {
        if db.stats().levels[0].files < 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = db.stats();
    assert!(stats.compactions > 0, "{stats:?}");
    assert!(stats.levels[0].files < 2, "level 0 not compacted: {:?}", stats.levels);
    assert!(stats.versions_dropped > 0);
    assert!(stats.write_amplification() > 1.0);
    assert_eq!(scan_keys(&db, KeyRange::all(), MAX_TS, false).len(), 5000);
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::small_for_tests()).unwrap());
    let writers: Vec<_> = (0..4u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..2000u32 {
                    let mut b = WriteBatch::new();
                    b.put(format!("t{t}/{i:05}").as_bytes(), 1, &i.to_le_bytes());
                    b.put(format!("t{t}/last").as_bytes(), u64::from(i) + 1, &i.to_le_bytes());
                    let d = if i % 10 == 0 { Durability::Sync } else { Durability::Buffered };
                    db.write(&b, d).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            // A batch's two keys become visible together for a reader that
            // reads below in-flight writes; here we check monotonic progress.
            let mut last_seen = 0;
            for _ in 0..200 {
                let seen = db.scan(KeyRange::prefix(b"t0/"), MAX_TS, false).unwrap().count();
                assert!(seen >= last_seen, "a scan lost keys: {seen} < {last_seen}");
                last_seen = seen;
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    for t in 0..4 {
        assert_eq!(
            db.get(format!("t{t}/last").as_bytes(), MAX_TS).unwrap(),
            Some(1999u32.to_le_bytes().to_vec())
        );
        assert_eq!(
            scan_keys(&db, KeyRange::prefix(format!("t{t}/0").as_bytes()), MAX_TS, false).len(),
            2000
        );
    }
    let stats = db.stats();
    assert!(stats.wal_syncs <= 800, "one fsync at most per sync batch: {}", stats.wal_syncs);
}

#[test]
fn writes_stall_with_a_reason_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        background_compaction: false,
        l0_compaction_trigger: 1,
        l0_slowdown_files: 2,
        l0_stop_files: 2,
        slowdown_rate_bytes_per_sec: 1 << 30,
        max_stall: Duration::from_millis(300),
        ..Options::small_for_tests()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let value = [7u8; 1000];
    let mut i = 0u32;
    let err = loop {
        match db.put(format!("k{i:06}").as_bytes(), 1, &value, Durability::Buffered) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
        assert!(i < 10_000, "writes never stalled");
    };
    assert!(matches!(err, Error::WriteStall { reason: StallReason::L0Stop, .. }), "{err}");
    assert!(err.is_retryable());
    let stats = db.stats();
    assert_eq!(stats.last_stall_reason, Some(StallReason::L0Stop));
    assert!(stats.stalls >= 1 && stats.stall_micros >= 300_000, "{stats:?}");
    // Memory stayed bounded: at most the active memtable and the flush queue.
    assert!(stats.memtable_bytes <= 3 * (32 << 10), "{}", stats.memtable_bytes);
    db.compact().unwrap();
    db.put(b"after", 1, b"ok", Durability::Sync).unwrap();
    assert_eq!(db.get(b"after", 1).unwrap(), Some(b"ok".to_vec()));
    assert_eq!(db.get(format!("k{:06}", i - 1).as_bytes(), 1).unwrap(), Some(value.to_vec()));
}

#[test]
fn failed_io_poisons_writes_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, small()).unwrap();
    db.put(b"before", 1, b"x", Durability::Sync).unwrap();
    // Pull the directory out from under the engine: the next memtable
    // rotation cannot create its WAL.
    std::fs::remove_dir_all(&path).unwrap();
    let mut first_err = None;
    for i in 0..10_000u32 {
        if let Err(e) = db.put(format!("k{i}").as_bytes(), 1, &[0; 100], Durability::Buffered) {
            first_err = Some(e);
            break;
        }
    }
    let first_err = first_err.expect("a write failed once the directory was gone");
    assert!(matches!(first_err, Error::Io { .. }), "{first_err}");
    let next = db.put(b"again", 1, b"x", Durability::Sync).unwrap_err();
    assert!(matches!(next, Error::PreviousIo(_)), "{next}");
    // Reads still work from memory.
    assert_eq!(db.get(b"before", 1).unwrap(), Some(b"x".to_vec()));
}

#[test]
fn a_directory_is_opened_by_one_db_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    assert!(matches!(Db::open(dir.path(), small()), Err(Error::Locked(_))));
    drop(db);
    Db::open(dir.path(), small()).unwrap();
}

#[test]
fn invalid_options_and_missing_directories_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Options { num_levels: 1, ..Options::default() };
    assert!(matches!(Db::open(dir.path(), bad), Err(Error::InvalidArgument(_))));
    let no_create = Options { create_if_missing: false, ..Options::default() };
    assert!(matches!(Db::open(dir.path().join("nope"), no_create), Err(Error::InvalidArgument(_))));
}

#[test]
fn unlogged_writes_skip_the_wal_and_survive_only_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), small()).unwrap();
        db.put(b"flushed", 1, b"a", Durability::Unlogged).unwrap();
        db.flush().unwrap();
        let wal_before = db.stats().wal_bytes_written;
        db.put(b"logged", 2, b"b", Durability::Buffered).unwrap();
        let logged = db.stats().wal_bytes_written - wal_before;
        db.put(b"unlogged", 3, b"c", Durability::Unlogged).unwrap();
        assert!(logged > 0);
        assert_eq!(db.stats().wal_bytes_written - wal_before, logged, "no WAL bytes for it");
        assert_eq!(db.get(b"unlogged", MAX_TS).unwrap(), Some(b"c".to_vec()), "readable at once");
    }
    // Reopened without a flush: the WAL replays the logged write only.
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(db.get(b"flushed", MAX_TS).unwrap(), Some(b"a".to_vec()));
    assert_eq!(db.get(b"logged", MAX_TS).unwrap(), Some(b"b".to_vec()));
    assert_eq!(db.get(b"unlogged", MAX_TS).unwrap(), None);
}

#[test]
fn first_written_after_sees_every_version_in_the_range_tombstones_included() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    db.put(b"a", 10, b"1", Durability::Buffered).unwrap();
    db.put(b"c", 10, b"1", Durability::Buffered).unwrap();
    db.flush().unwrap();
    // "b" is inserted and deleted after 10: no visible row, still a write.
    db.put(b"b", 20, b"x", Durability::Buffered).unwrap();
    db.delete(b"b", 30, Durability::Buffered).unwrap();
    db.put(b"d", 40, b"2", Durability::Buffered).unwrap();
    let first = |lo: &[u8], hi: &[u8], ts| {
        let range = KeyRange::new(Bound::Included(lo), Bound::Excluded(hi));
        db.scan(range, MAX_TS, false).unwrap().first_written_after(ts).unwrap()
    };
    assert_eq!(
        scan_keys(&db, KeyRange::new(Bound::Included(b"a"), Bound::Excluded(b"d")), MAX_TS, false),
        ["a", "c"]
    );
    assert_eq!(first(b"a", b"d", 10).map(|(k, _)| k), Some(b"b".to_vec()));
    assert_eq!(first(b"a", b"b", 10), None, "\"a\" was written at 10, not after");
    assert_eq!(first(b"c", b"z", 10), Some((b"d".to_vec(), 40)));
    assert_eq!(first(b"a", b"z", 40), None);
}
