//! Starting a transaction asks the shard for a snapshot without holding the
//! store's lock on active snapshots (on a replicated shard's follower that
//! is an RPC to the leader), and still never registers a snapshot the GC
//! watermark has passed.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use strata_lsm::{Db, Durability, KeyRange};
use strata_txn::{
    CommitRequest, Hlc, LocalShard, Result, RowIter, Shard, ShardStats, Store, Timestamp,
    TxnOptions,
};

/// A local shard whose `snapshot_ts` can be held at a gate (a slow RPC) or
/// made to answer a stale timestamp once (a snapshot taken just before a
/// watermark raise).
#[derive(Debug)]
struct TestShard {
    inner: LocalShard,
    /// While true, `snapshot_ts` waits (after saying so on `entered`).
    closed: Mutex<bool>,
    opened: Condvar,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    /// Answered by the next `snapshot_ts` instead of the real one.
    stale: Mutex<Option<Timestamp>>,
    /// Every `oldest_active` the store reported.
    horizons: Mutex<Vec<Timestamp>>,
}

impl TestShard {
    fn new(dir: &std::path::Path) -> (Arc<TestShard>, Arc<Hlc>) {
        let db = Db::open(dir, strata_lsm::Options::default()).unwrap();
        let hlc = Arc::new(Hlc::system_volatile(500));
        hlc.now().unwrap();
        let inner = LocalShard::new(db, hlc.clone(), Durability::Buffered, 100_000);
        let shard = TestShard {
            inner,
            closed: Mutex::new(false),
            opened: Condvar::new(),
            entered: Mutex::new(None),
            stale: Mutex::new(None),
            horizons: Mutex::new(Vec::new()),
        };
        (Arc::new(shard), hlc)
    }

    fn open_gate(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }
}

impl Shard for TestShard {
    fn snapshot_ts(&self) -> Timestamp {
        if let Some(ts) = self.stale.lock().unwrap().take() {
            return ts;
        }
        let mut closed = self.closed.lock().unwrap();
        if *closed && let Some(tx) = self.entered.lock().unwrap().take() {
            let _ = tx.send(());
        }
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
        drop(closed);
        self.inner.snapshot_ts()
    }
    fn snapshot_at(&self, ts: Timestamp) -> Result<()> {
        self.inner.snapshot_at(ts)
    }
    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        self.inner.get(key, ts)
    }
    fn scan(&self, range: KeyRange, ts: Timestamp, reverse: bool) -> Result<RowIter> {
        self.inner.scan(range, ts, reverse)
    }
    fn commit(&self, request: &CommitRequest) -> Result<Timestamp> {
        self.inner.commit(request)
    }
    fn prepare(&self, txn_id: u64, request: &CommitRequest) -> Result<Timestamp> {
        self.inner.prepare(txn_id, request)
    }
    fn commit_prepared(&self, txn_id: u64, commit_ts: Timestamp) -> Result<()> {
        self.inner.commit_prepared(txn_id, commit_ts)
    }
    fn abort(&self, txn_id: u64) -> Result<()> {
        self.inner.abort(txn_id)
    }
    fn set_horizons(&self, oldest_active: Timestamp, gc_watermark: Timestamp) {
        self.horizons.lock().unwrap().push(oldest_active);
        self.inner.set_horizons(oldest_active, gc_watermark)
    }
    fn gc_watermark(&self) -> Timestamp {
        self.inner.gc_watermark()
    }
    fn stats(&self) -> ShardStats {
        self.inner.stats()
    }
}

fn options() -> TxnOptions {
    TxnOptions { history_retention: Duration::ZERO, ..TxnOptions::default() }
}

#[test]
fn a_slow_snapshot_does_not_hold_up_other_transaction_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, hlc) = TestShard::new(dir.path());
    let store = Store::with_shard(shard.clone(), hlc, options());
    let (entered_tx, entered) = mpsc::channel();
    *shard.entered.lock().unwrap() = Some(entered_tx);
    *shard.closed.lock().unwrap() = true;

    // The first start waits inside `snapshot_ts` (an RPC that hangs).
    let slow = {
        let store = store.clone();
        std::thread::spawn(move || store.begin().start_ts())
    };
    entered.recv_timeout(Duration::from_secs(10)).expect("the slow start reached the shard");

    // Another start meanwhile: it must not wait for the first. (Its own
    // `snapshot_ts` is answered by `stale`, so it does not hit the gate.)
    *shard.stale.lock().unwrap() = Some(shard.inner.snapshot_ts());
    let (done_tx, done) = mpsc::channel();
    {
        let store = store.clone();
        std::thread::spawn(move || {
            let txn = store.begin_read_only();
            let _ = done_tx.send(txn.start_ts());
        });
    }
    let fast = done.recv_timeout(Duration::from_secs(10));
    shard.open_gate();
    assert!(fast.is_ok(), "a transaction start waited for another one's snapshot");
    slow.join().unwrap();
}

#[test]
fn a_snapshot_the_watermark_passed_before_registration_is_retaken() {
    let dir = tempfile::tempdir().unwrap();
    let (shard, hlc) = TestShard::new(dir.path());
    let store = Store::with_shard(shard.clone(), hlc, options());
    let before = store.begin_read_only().start_ts();
    // History is kept down to the current millisecond: let one pass.
    std::thread::sleep(Duration::from_millis(5));
    for i in 0..3u8 {
        let mut txn = store.begin();
        txn.put(&[i], b"v").unwrap();
        txn.commit().unwrap();
    }
    // Nothing active: the watermark rises to the current snapshot, above
    // `before` (no history is retained).
    store.refresh_horizons();
    let watermark = shard.gc_watermark();
    assert!(watermark > before, "watermark {watermark} should pass {before}");

    // A start whose snapshot was taken before that raise (the shard
    // answers the stale `before` once) must not register it.
    *shard.stale.lock().unwrap() = Some(before);
    let mut txn = store.begin_read_only();
    assert!(txn.start_ts() >= watermark, "snapshot {} below the watermark", txn.start_ts());
    assert_eq!(txn.get(&[0]).unwrap(), Some(b"v".to_vec()));

    // And the store never reports an active snapshot below the watermark.
    store.refresh_horizons();
    let horizons = shard.horizons.lock().unwrap().clone();
    assert!(horizons.iter().skip(1).all(|&h| h >= watermark), "{horizons:?}");
}
