//! The embedded transaction API: time travel, limits, own writes, two-phase
//! commit on a local shard, and the bounded conflict state.

use std::sync::Arc;
use std::time::Duration;

use strata_lsm::{Durability, KeyRange};
use strata_txn::clock::{self, ManualClock, MemoryHighWater, PhysicalClock};
use strata_txn::{
    CommitRequest, ConflictKind, Error, Hlc, Isolation, LocalShard, Shard, Store, TxnOptions,
};

fn open(dir: &std::path::Path, opts: TxnOptions) -> Store {
    Store::open(dir, opts).unwrap()
}

fn write(store: &Store, key: &str, value: &str) -> u64 {
    let mut t = store.begin();
    t.put(key.as_bytes(), value.as_bytes()).unwrap();
    t.commit().unwrap()
}

fn read_at(store: &Store, ts: u64, key: &str) -> Result<Option<String>, Error> {
    let mut t = store.begin_at(ts)?;
    Ok(t.get(key.as_bytes())?.map(|v| String::from_utf8(v).unwrap()))
}

#[test]
fn time_travel_reads_history_within_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        TxnOptions { history_retention: Duration::from_secs(3600), ..TxnOptions::default() },
    );
    let c1 = write(&store, "k", "one");
    let c2 = write(&store, "k", "two");
    assert_eq!(read_at(&store, c1, "k").unwrap().as_deref(), Some("one"));
    assert_eq!(read_at(&store, c2 - 1, "k").unwrap().as_deref(), Some("one"));
    assert_eq!(read_at(&store, c2, "k").unwrap().as_deref(), Some("two"));
    let future = clock::from_millis(clock::to_millis(c2) + 60_000);
    assert!(matches!(read_at(&store, future, "k"), Err(Error::FutureTimestamp { .. })));
    // A time-travel transaction cannot write.
    let mut t = store.begin_at(c1).unwrap();
    assert!(matches!(t.put(b"k", b"x"), Err(Error::ReadOnly)));
    // After a restart the history is still there.
    drop(t);
    drop(store);
    let store = open(
        dir.path(),
        TxnOptions { history_retention: Duration::from_secs(3600), ..TxnOptions::default() },
    );
    assert_eq!(read_at(&store, c1, "k").unwrap().as_deref(), Some("one"));
    assert!(write(&store, "k", "three") > c2, "commit timestamps keep growing across restarts");
}

#[test]
fn history_older_than_retention_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        open(dir.path(), TxnOptions { history_retention: Duration::ZERO, ..TxnOptions::default() });
    let c1 = write(&store, "k", "one");
    // Retention is measured in physical milliseconds: let a few pass.
    std::thread::sleep(Duration::from_millis(3));
    write(&store, "k", "two");
    std::thread::sleep(Duration::from_millis(3));
    store.refresh_horizons();
    match read_at(&store, c1, "k") {
        Err(Error::SnapshotTooOld { read_ts, oldest }) => assert!(read_ts == c1 && oldest > c1),
        other => panic!("expected SnapshotTooOld, got {other:?}"),
    }
}

#[test]
fn active_snapshots_hold_back_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        open(dir.path(), TxnOptions { history_retention: Duration::ZERO, ..TxnOptions::default() });
    write(&store, "k", "old");
    let mut long_reader = store.begin_read_only();
    for i in 0..300 {
        write(&store, "k", &format!("new{i}"));
    }
    store.refresh_horizons();
    assert!(store.shard_stats().engine.unwrap().gc_watermark <= long_reader.start_ts());
    assert_eq!(long_reader.get(b"k").unwrap(), Some(b"old".to_vec()));
}

#[test]
fn limits_fail_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), TxnOptions { max_write_set_bytes: 100, ..TxnOptions::default() });
    let mut t = store.begin();
    t.put(b"a", &[0; 60]).unwrap();
    match t.put(b"b", &[0; 60]) {
        Err(e @ Error::WriteSetTooLarge { bytes: 122, limit: 100 }) => {
            assert!(e.to_string().contains("limit of 100"))
        }
        other => panic!("expected WriteSetTooLarge, got {other:?}"),
    }
    let mut ro = store.begin_read_only();
    assert!(matches!(ro.put(b"a", b"b"), Err(Error::ReadOnly)));
    assert!(matches!(ro.get_for_update(b"a"), Err(Error::ReadOnly)));
}

#[derive(Debug)]
struct SharedClock(Arc<ManualClock>);
impl PhysicalClock for SharedClock {
    fn now_millis(&self) -> u64 {
        self.0.now_millis()
    }
}

#[test]
fn transactions_older_than_the_limit_fail() {
    let dir = tempfile::tempdir().unwrap();
    let physical = Arc::new(ManualClock::new(1_000_000));
    let hlc = Arc::new(
        Hlc::new(
            Box::new(SharedClock(physical.clone())),
            Box::<MemoryHighWater>::default(),
            0,
            500,
        )
        .unwrap(),
    );
    let db = strata_lsm::Db::open(dir.path(), strata_lsm::Options::default()).unwrap();
    let shard = Arc::new(LocalShard::new(db, hlc.clone(), Durability::Sync, 1 << 20));
    let opts = TxnOptions { max_txn_age: Duration::from_secs(60), ..TxnOptions::default() };
    let store = Store::with_shard(shard, hlc, opts);
    let mut t = store.begin();
    t.put(b"k", b"v").unwrap();
    physical.advance(61_000);
    match t.get(b"other") {
        Err(Error::TransactionTooOld { limit_ms: 60_000, age_ms }) => assert!(age_ms >= 61_000),
        other => panic!("expected TransactionTooOld, got {other:?}"),
    }
    assert!(matches!(t.commit(), Err(Error::TransactionTooOld { .. })));
    assert_eq!(store.stats().aborts_other, 1);
}

#[test]
fn reads_and_scans_see_own_writes_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), TxnOptions::default());
    let mut setup = store.begin();
    for k in ["a", "b", "c", "d"] {
        setup.put(k.as_bytes(), b"stored").unwrap();
    }
    setup.commit().unwrap();
    let mut t = store.begin();
    t.put(b"b", b"mine").unwrap();
    t.delete(b"c").unwrap();
    t.put(b"e", b"new").unwrap();
    assert_eq!(t.get(b"b").unwrap(), Some(b"mine".to_vec()));
    assert_eq!(t.get(b"c").unwrap(), None);
    let collect = |reverse| -> Vec<String> {
        let mut t2 = store.begin();
        t2.put(b"b", b"mine").unwrap();
        t2.delete(b"c").unwrap();
        t2.put(b"e", b"new").unwrap();
        t2.scan(KeyRange::all(), reverse)
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                format!("{}={}", String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
            })
            .collect()
    };
    assert_eq!(collect(false), ["a=stored", "b=mine", "d=stored", "e=new"]);
    assert_eq!(collect(true), ["e=new", "d=stored", "b=mine", "a=stored"]);
    // Nobody else sees them until commit.
    let mut other = store.begin_read_only();
    assert_eq!(other.get(b"b").unwrap(), Some(b"stored".to_vec()));
    t.commit().unwrap();
    assert_eq!(store.begin_read_only().get(b"e").unwrap(), Some(b"new".to_vec()));
}

fn local_shard(dir: &std::path::Path, max_conflict_entries: usize) -> (Arc<LocalShard>, Store) {
    let hlc = Arc::new(Hlc::system_volatile(500));
    hlc.now().unwrap();
    let db = strata_lsm::Db::open(dir, strata_lsm::Options::default()).unwrap();
    let shard = Arc::new(LocalShard::new(db, hlc.clone(), Durability::Sync, max_conflict_entries));
    let store = Store::with_shard(shard.clone(), hlc, TxnOptions::default());
    (shard, store)
}

fn request(start_ts: u64, key: &str, value: &str) -> CommitRequest {
    CommitRequest {
        start_ts,
        isolation: Isolation::Snapshot,
        writes: vec![(key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))],
        ..CommitRequest::default()
    }
}

#[test]
fn prepared_transactions_reserve_keys_and_hold_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, store) = local_shard(dir.path(), 1 << 20);
    let start = shard.snapshot_ts();
    let prepare_ts = shard.prepare(1, &request(start, "x", "prepared")).unwrap();
    // A concurrent writer of the same key loses to the reservation.
    match shard.commit(&request(start, "x", "other")) {
        Err(Error::Conflict { kind: ConflictKind::WriteWrite, committed_ts, .. }) => {
            assert_eq!(committed_ts, prepare_ts)
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Snapshots do not pass the unresolved prepare.
    assert!(shard.snapshot_ts() < prepare_ts);
    let commit_ts = store.clock().now().unwrap() + 1000;
    shard.commit_prepared(1, commit_ts).unwrap();
    assert!(shard.snapshot_ts() >= commit_ts);
    assert_eq!(shard.get(b"x", commit_ts).unwrap(), Some(b"prepared".to_vec()));
    assert_eq!(shard.get(b"x", commit_ts - 1).unwrap(), None, "applied at the commit timestamp");
    assert!(store.clock().now().unwrap() > commit_ts, "the clock moved past the commit");
    // Abort releases without applying; unknown ids are errors.
    let start = shard.snapshot_ts();
    shard.prepare(2, &request(start, "y", "never")).unwrap();
    shard.abort(2).unwrap();
    assert_eq!(shard.get(b"y", shard.snapshot_ts()).unwrap(), None);
    assert!(matches!(shard.abort(2), Err(Error::UnknownTransaction(2))));
    assert!(matches!(shard.commit_prepared(9, commit_ts), Err(Error::UnknownTransaction(9))));
}

#[test]
fn bounded_conflict_state_still_catches_old_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, store) = local_shard(dir.path(), 16);
    let mut old = store.begin();
    old.get(b"hot").unwrap();
    write(&store, "hot", "changed");
    // Enough other commits to force pruning past the old snapshot.
    for i in 0..600 {
        write(&store, &format!("filler{i}"), "x");
    }
    assert!(
        shard.stats().conflict_entries <= 16 + 256,
        "conflict state grew to {}",
        shard.stats().conflict_entries
    );
    old.put(b"hot", b"lost update").unwrap();
    assert!(matches!(old.commit(), Err(Error::Conflict { kind: ConflictKind::WriteWrite, .. })));
}

#[test]
fn savepoints_undo_later_writes_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), TxnOptions::default());
    let mut t = store.begin();
    t.put(b"a", b"1").unwrap();
    let sp = t.savepoint();
    t.put(b"a", b"2").unwrap();
    t.put(b"b", b"2").unwrap();
    t.rollback_to(&sp);
    assert_eq!(t.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(t.get(b"b").unwrap(), None);
    t.commit().unwrap();
    let mut r = store.begin_read_only();
    assert_eq!((r.get(b"a").unwrap(), r.get(b"b").unwrap()), (Some(b"1".to_vec()), None));
}
