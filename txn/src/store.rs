//! [`Store`]: the transaction coordinator and embedded key-value API.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_lsm::{Durability, Timestamp};

use crate::clock::{self, FileHighWater, Hlc, SystemClock};
use crate::error::{ConflictKind, Error, Result};
use crate::local::LocalShard;
use crate::shard::{Isolation, Shard, ShardStats};
use crate::txn::Txn;

/// Retries of [`Store::run`].
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 20,
            base_backoff: Duration::from_micros(200),
            max_backoff: Duration::from_millis(50),
        }
    }
}

/// Options for [`Store::open`].
#[derive(Clone, Debug)]
pub struct TxnOptions {
    pub engine: strata_lsm::Options,
    pub durability: Durability,
    /// Timestamps from peers may be at most this far ahead of the local clock.
    pub max_clock_offset_ms: u64,
    /// How far back time-travel reads can go; history older than this (and
    /// older than every active snapshot) is garbage-collected.
    pub history_retention: Duration,
    /// A transaction older than this fails at its next read or commit.
    pub max_txn_age: Duration,
    /// The most a transaction may buffer, keys plus values.
    pub max_write_set_bytes: usize,
    /// Keys the in-memory conflict index may hold before older snapshots fall
    /// back to validating against storage.
    pub max_conflict_entries: usize,
    pub retry: RetryPolicy,
    /// Seed for retry jitter.
    pub seed: u64,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            engine: strata_lsm::Options::default(),
            durability: Durability::Sync,
            max_clock_offset_ms: 500,
            history_retention: Duration::from_secs(10),
            max_txn_age: Duration::from_secs(600),
            max_write_set_bytes: 64 << 20,
            max_conflict_entries: 1 << 20,
            retry: RetryPolicy::default(),
            seed: 0x5eed,
        }
    }
}

/// Counters of transaction outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnStats {
    /// Read-write transactions committed.
    pub commits: u64,
    /// Transactions that ended without writing.
    pub read_only_commits: u64,
    pub rollbacks: u64,
    pub aborts_write_write: u64,
    pub aborts_read_write: u64,
    pub aborts_phantom: u64,
    /// Failures other than serialization failures (limits, storage errors).
    pub aborts_other: u64,
    /// Attempts [`Store::run`] made again after a serialization failure.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    read_only_commits: AtomicU64,
    rollbacks: AtomicU64,
    aborts_write_write: AtomicU64,
    aborts_read_write: AtomicU64,
    aborts_phantom: AtomicU64,
    aborts_other: AtomicU64,
    retries: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    shard: Arc<dyn Shard>,
    hlc: Arc<Hlc>,
    opts: TxnOptions,
    /// Snapshots in use: timestamp to count.
    active: Mutex<BTreeMap<Timestamp, usize>>,
    ended: AtomicU64,
    counters: Counters,
    rng: Mutex<u64>,
}

/// A transactional key-value store: the coordinator over a [`Shard`].
/// Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

/// How often (in ended transactions) horizons are pushed to the shard.
const HORIZON_EVERY: u64 = 64;

impl Store {
    /// Opens (recovering) or creates a store in `path` on one local engine.
    pub fn open(path: impl AsRef<Path>, opts: TxnOptions) -> Result<Store> {
        let path = path.as_ref();
        let db = strata_lsm::Db::open(path, opts.engine.clone())?;
        let hlc = Arc::new(Hlc::new(
            Box::new(SystemClock),
            Box::new(FileHighWater::new(path)),
            db.max_timestamp(),
            opts.max_clock_offset_ms,
        )?);
        // Start above everything already stored, before the first snapshot.
        hlc.now()?;
        let shard = LocalShard::new(db, hlc.clone(), opts.durability, opts.max_conflict_entries);
        Ok(Store::with_shard(Arc::new(shard), hlc, opts))
    }

    /// A coordinator over any shard (a replicated one, or one in a simulator).
    pub fn with_shard(shard: Arc<dyn Shard>, hlc: Arc<Hlc>, opts: TxnOptions) -> Store {
        let seed = opts.seed;
        Store {
            inner: Arc::new(Inner {
                shard,
                hlc,
                opts,
                active: Mutex::new(BTreeMap::new()),
                ended: AtomicU64::new(0),
                counters: Counters::default(),
                rng: Mutex::new(seed | 1),
            }),
        }
    }

    pub(crate) fn shard(&self) -> &dyn Shard {
        &*self.inner.shard
    }

    pub(crate) fn options(&self) -> &TxnOptions {
        &self.inner.opts
    }

    pub(crate) fn physical_millis(&self) -> u64 {
        self.inner.hlc.physical_millis()
    }

    /// The clock, for callers that pass timestamps between nodes.
    pub fn clock(&self) -> &Hlc {
        &self.inner.hlc
    }

    fn active(&self) -> std::sync::MutexGuard<'_, BTreeMap<Timestamp, usize>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a snapshot and registers it as active.
    ///
    /// The shard is asked for the timestamp *without* the lock on active
    /// snapshots (on a replicated shard's follower `snapshot_ts` is an RPC
    /// to the leader, and holding the lock across it would serialise every
    /// transaction start). The invariant is kept by checking afterwards:
    /// `refresh_horizons` raises the GC watermark only while holding that
    /// lock, from the active snapshots it sees, so once a snapshot is
    /// registered under the lock and found at or above the shard's
    /// watermark, no later raise can pass it. A snapshot the watermark
    /// already passed (a refresh ran between taking it and registering it)
    /// is dropped and a newer one taken; the watermark never exceeds a
    /// snapshot the shard handed out before, so the retry ends.
    fn start(&self, isolation: Isolation, read_only: bool, at: Option<Timestamp>) -> Result<Txn> {
        if let Some(ts) = at {
            self.inner.shard.snapshot_at(ts)?;
        }
        let ts = loop {
            let ts = match at {
                Some(ts) => ts,
                None => self.inner.shard.snapshot_ts(),
            };
            let mut active = self.active();
            let oldest = self.inner.shard.gc_watermark();
            if ts >= oldest {
                *active.entry(ts).or_insert(0) += 1;
                break ts;
            }
            if at.is_some() {
                return Err(Error::SnapshotTooOld { read_ts: ts, oldest });
            }
            // The watermark moved past the snapshot before it was
            // registered: take a newer one.
        };
        Ok(Txn::new(self.clone(), ts, isolation, read_only, self.physical_millis()))
    }

    /// A read-write snapshot-isolation transaction.
    pub fn begin(&self) -> Txn {
        self.begin_with(Isolation::Snapshot)
    }

    /// A read-write transaction at the given isolation level.
    pub fn begin_with(&self, isolation: Isolation) -> Txn {
        self.start(isolation, false, None).expect("beginning at the current snapshot cannot fail")
    }

    /// A read-only transaction at the current snapshot. It never validates
    /// and never waits for writers.
    pub fn begin_read_only(&self) -> Txn {
        self.start(Isolation::Snapshot, true, None)
            .expect("beginning at the current snapshot cannot fail")
    }

    /// A read-only transaction at `ts` (time travel). Fails if `ts` is in the
    /// future or older than the retained history.
    pub fn begin_at(&self, ts: Timestamp) -> Result<Txn> {
        self.start(Isolation::Snapshot, true, Some(ts))
    }

    /// Runs `body` in a transaction and commits it, running it again after a
    /// serialization failure (with jittered exponential backoff) up to
    /// `RetryPolicy::max_attempts` times.
    pub fn run<T>(
        &self,
        isolation: Isolation,
        mut body: impl FnMut(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        let policy = &self.inner.opts.retry;
        let mut attempt = 1;
        loop {
            let mut txn = self.begin_with(isolation);
            let outcome = body(&mut txn).and_then(|value| txn.commit().map(|_| value));
            match outcome {
                Err(e) if e.is_retryable() && attempt < policy.max_attempts => {
                    self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let policy = &self.inner.opts.retry;
        let exp = policy.base_backoff.saturating_mul(1 << attempt.min(16)).min(policy.max_backoff);
        let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        // Uniform in [exp/2, exp).
        let jitter = (*rng % 1000) as f64 / 2000.0 + 0.5;
        exp.mul_f64(jitter)
    }

    pub(crate) fn record_outcome(&self, result: &Result<Timestamp>) {
        let c = &self.inner.counters;
        let counter = match result {
            Ok(_) => &c.commits,
            Err(Error::Conflict { kind: ConflictKind::WriteWrite, .. }) => &c.aborts_write_write,
            Err(Error::Conflict { kind: ConflictKind::ReadWrite, .. }) => &c.aborts_read_write,
            Err(Error::Conflict { kind: ConflictKind::Phantom, .. }) => &c.aborts_phantom,
            Err(_) => &c.aborts_other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_read_only(&self) {
        self.inner.counters.read_only_commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_rollback(&self) {
        self.inner.counters.rollbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Called when a transaction's snapshot is released.
    pub(crate) fn end_snapshot(&self, ts: Timestamp) {
        let mut active = self.active();
        match active.get_mut(&ts) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                active.remove(&ts);
            }
            None => unreachable!("snapshot {ts} ended twice"),
        }
        drop(active);
        if self.inner.ended.fetch_add(1, Ordering::Relaxed).is_multiple_of(HORIZON_EVERY) {
            self.refresh_horizons();
        }
    }

    /// Tells the shard the oldest snapshot in use and how much history to keep.
    ///
    /// The horizons are set while holding the lock on active snapshots, so
    /// a transaction start that registers its snapshot under that lock and
    /// then finds it at or above the watermark is safe from later raises
    /// (see `start`). The shard's `snapshot_ts` (an RPC on a follower) is
    /// never called under the lock.
    pub fn refresh_horizons(&self) {
        let any_active = !self.active().is_empty();
        // With nothing active, the next snapshot is no older than now's.
        let now = (!any_active).then(|| self.inner.shard.snapshot_ts());
        let retention_ms = self.inner.opts.history_retention.as_millis() as u64;
        let retained = clock::from_millis(self.physical_millis().saturating_sub(retention_ms));
        let active = self.active();
        let Some(oldest_active) = active.keys().next().copied().or(now) else {
            // Snapshots came and went in between: refresh another time.
            return;
        };
        self.inner.shard.set_horizons(oldest_active, retained.min(oldest_active));
        drop(active);
    }

    /// Counters of transaction outcomes.
    pub fn stats(&self) -> TxnStats {
        let c = &self.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TxnStats {
            commits: g(&c.commits),
            read_only_commits: g(&c.read_only_commits),
            rollbacks: g(&c.rollbacks),
            aborts_write_write: g(&c.aborts_write_write),
            aborts_read_write: g(&c.aborts_read_write),
            aborts_phantom: g(&c.aborts_phantom),
            aborts_other: g(&c.aborts_other),
            retries: g(&c.retries),
        }
    }

    /// The shard's validation and storage statistics.
    pub fn shard_stats(&self) -> ShardStats {
        self.inner.shard.stats()
    }
}
