//! [`LocalShard`]: the shard interface over one storage engine on this node.
//!
//! Commit pipeline (`LocalShard::commit`):
//! 1. Take the commit gate shared (exclusive for SERIALIZABLE transactions
//!    that scanned ranges, so the phantom check sees every earlier commit).
//! 2. Lock the conflict-index shards of the transaction's keys, validate, take
//!    a commit timestamp from the clock and mark it pending in the
//!    [`CommitTracker`] (one step), record the keys at that timestamp.
//! 3. Release the locks, encode the batch, and hand it to the tracker's write
//!    groups ([`CommitTracker::apply`]): one committer leads, writing every
//!    queued batch to the WAL with one write and one fsync
//!    ([`Db::write_group`]) and into the memtable, while the others sleep.
//!    No lock is held across the fsync.
//! 4. The leader marks its group applied and wakes each committer the
//!    watermark passed, in commit order; a committer sleeps and wakes once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use strata_lsm::{Db, Durability, GroupStage, KeyRange, MAX_TS, Timestamp, WriteBatch};

use crate::clock::Hlc;
use crate::conflicts::{ConflictIndex, LockedShards};
use crate::error::{ConflictKind, Error, Result};
use crate::shard::{CommitRequest, Isolation, RowIter, Shard, ShardStats};
use crate::tracker::{CommitTracker, GroupWriter};

/// How often (in commits) the conflict index is pruned.
const PRUNE_EVERY: u64 = 256;

#[derive(Debug)]
struct Prepared {
    ts: Timestamp,
    request: CommitRequest,
}

/// A shard on one local [`strata_lsm::Db`].
#[derive(Debug)]
pub struct LocalShard {
    db: Db,
    hlc: Arc<Hlc>,
    tracker: CommitTracker,
    conflicts: ConflictIndex,
    gate: RwLock<()>,
    prepared: Mutex<HashMap<u64, Prepared>>,
    durability: Durability,
    max_conflict_entries: usize,
    oldest_active: AtomicU64,
    commits: AtomicU64,
    validations: AtomicU64,
    validation_nanos: AtomicU64,
}

impl LocalShard {
    /// A shard over `db`. `hlc` must already be past every timestamp in `db`.
    pub fn new(
        db: Db,
        hlc: Arc<Hlc>,
        durability: Durability,
        max_conflict_entries: usize,
    ) -> LocalShard {
        let start = hlc.peek();
        assert!(start >= db.max_timestamp(), "clock behind the data it serves");
        LocalShard {
            db,
            hlc,
            tracker: CommitTracker::new(start),
            conflicts: ConflictIndex::new(start),
            gate: RwLock::new(()),
            prepared: Mutex::new(HashMap::new()),
            durability,
            max_conflict_entries,
            oldest_active: AtomicU64::new(start),
            commits: AtomicU64::new(0),
            validations: AtomicU64::new(0),
            validation_nanos: AtomicU64::new(0),
        }
    }

    /// The storage engine underneath.
    pub fn engine(&self) -> &Db {
        &self.db
    }

    fn locked_keys(request: &CommitRequest) -> impl Iterator<Item = &[u8]> {
        let reads =
            if request.isolation == Isolation::Serializable { &request.reads[..] } else { &[] };
        request
            .writes
            .iter()
            .map(|(k, _)| k.as_slice())
            .chain(request.for_update.iter().map(Vec::as_slice))
            .chain(reads.iter().map(Vec::as_slice))
    }

    /// First committer wins, plus the read set for SERIALIZABLE.
    fn validate(&self, locked: &LockedShards<'_>, request: &CommitRequest) -> Result<()> {
        let started = Instant::now();
        let start_ts = request.start_ts;
        let horizon = self.conflicts.horizon();
        let check = |key: &[u8], kind: ConflictKind| -> Result<()> {
            let newest = match locked.latest(key) {
                Some(ts) => Some(ts),
                // Pruned commits are applied, so the engine knows them exactly.
                None if start_ts < horizon => self.db.get_version(key, MAX_TS)?.map(|(ts, _)| ts),
                None => None,
            };
            match newest {
                Some(committed_ts) if committed_ts > start_ts => {
                    Err(Error::Conflict { kind, key: key.to_vec(), start_ts, committed_ts })
                }
                _ => Ok(()),
            }
        };
        let result = (|| {
            for (key, _) in &request.writes {
                check(key, ConflictKind::WriteWrite)?;
            }
            for key in &request.for_update {
                check(key, ConflictKind::WriteWrite)?;
            }
            if request.isolation == Isolation::Serializable {
                for key in &request.reads {
                    check(key, ConflictKind::ReadWrite)?;
                }
                for range in &request.ranges {
                    if start_ts < horizon {
                        // The log no longer covers this snapshot: refuse rather
                        // than risk a missed phantom.
                        let key = match &range.lower {
                            std::ops::Bound::Included(k) | std::ops::Bound::Excluded(k) => {
                                k.clone()
                            }
                            std::ops::Bound::Unbounded => Vec::new(),
                        };
                        return Err(Error::Conflict {
                            kind: ConflictKind::Phantom,
                            key,
                            start_ts,
                            committed_ts: horizon,
                        });
                    }
                    if let Some((key, committed_ts)) = self.conflicts.phantom(range, start_ts) {
                        return Err(Error::Conflict {
                            kind: ConflictKind::Phantom,
                            key,
                            start_ts,
                            committed_ts,
                        });
                    }
                }
            }
            Ok(())
        })();
        self.validations.fetch_add(1, Ordering::Relaxed);
        self.validation_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    }

    /// Validates, assigns a timestamp with `assign`, and records the keys.
    fn validate_and_reserve(&self, request: &CommitRequest) -> Result<Timestamp> {
        // Any clock fsync happens here, before the locks below.
        self.hlc.reserve_headroom()?;
        let scans_ranges =
            request.isolation == Isolation::Serializable && !request.ranges.is_empty();
        let _shared;
        let _exclusive;
        if scans_ranges {
            _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        } else {
            _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        }
        let mut locked = self.conflicts.lock(Self::locked_keys(request));
        self.validate(&locked, request)?;
        let ts = self.tracker.assign(|| self.hlc.now())?;
        for (key, _) in &request.writes {
            locked.record(key, ts);
        }
        for key in &request.for_update {
            locked.record(key, ts);
        }
        self.conflicts.log_write_set(ts, request.writes.iter().map(|(k, _)| k.clone()).collect());
        Ok(ts)
    }

    /// Applies at `ts` through a write group, then acknowledges in commit
    /// order (see [`CommitTracker::apply`]).
    fn apply_and_acknowledge(&self, request: &CommitRequest, ts: Timestamp) -> Result<()> {
        let bytes: usize = request
            .writes
            .iter()
            .map(|(k, v)| {
                k.len() + v.as_ref().map_or(0, Vec::len) + WriteBatch::ENTRY_OVERHEAD_BYTES
            })
            .sum();
        let mut batch = WriteBatch::with_capacity(bytes);
        for (key, value) in &request.writes {
            match value {
                Some(v) => batch.put(key, ts, v),
                None => batch.delete(key, ts),
            };
        }
        // Even a failed write finishes the timestamp, or snapshots would
        // stop advancing; the engine refuses further writes after a failure.
        self.tracker.apply(
            ts,
            batch,
            &EngineWriter { db: &self.db, durability: self.durability },
        )?;
        if self.commits.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        Ok(())
    }

    fn prune(&self) {
        let applied = self.tracker.watermark();
        let mut up_to = self.oldest_active.load(Ordering::SeqCst).min(applied);
        if self.conflicts.entries() > self.max_conflict_entries {
            // Over budget: forget everything applied; older snapshots then
            // validate against the engine.
            up_to = applied;
        }
        self.conflicts.prune(up_to);
    }
}

/// Write groups go to the engine: one WAL write, one fsync.
struct EngineWriter<'a> {
    db: &'a Db,
    durability: Durability,
}

impl GroupWriter for EngineWriter<'_> {
    fn write_group(
        &self,
        group: &[WriteBatch],
        progress: &mut dyn FnMut(GroupStage),
    ) -> Result<()> {
        Ok(self.db.write_group(group, self.durability, progress)?)
    }
}

impl Shard for LocalShard {
    fn snapshot_ts(&self) -> Timestamp {
        self.tracker.watermark()
    }

    fn snapshot_at(&self, ts: Timestamp) -> Result<()> {
        let now = self.hlc.now()?;
        if ts > now {
            return Err(Error::FutureTimestamp { requested: ts, now });
        }
        self.tracker.cover(ts);
        Ok(())
    }

    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key, ts)?)
    }

    fn scan(&self, range: KeyRange, ts: Timestamp, reverse: bool) -> Result<RowIter> {
        let scan = self.db.scan(range, ts, reverse)?;
        Ok(Box::new(scan.map(|r| r.map_err(Error::from))))
    }

    fn commit(&self, request: &CommitRequest) -> Result<Timestamp> {
        let ts = self.validate_and_reserve(request)?;
        self.apply_and_acknowledge(request, ts)?;
        Ok(ts)
    }

    fn prepare(&self, txn_id: u64, request: &CommitRequest) -> Result<Timestamp> {
        let ts = self.validate_and_reserve(request)?;
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.contains_key(&txn_id) {
            drop(prepared);
            self.tracker.finish(ts);
            return Err(Error::InvalidArgument(format!(
                "transaction {txn_id} is already prepared"
            )));
        }
        prepared.insert(txn_id, Prepared { ts, request: request.clone() });
        Ok(ts)
    }

    fn commit_prepared(&self, txn_id: u64, commit_ts: Timestamp) -> Result<()> {
        let Prepared { ts, request } = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&txn_id)
            .ok_or(Error::UnknownTransaction(txn_id))?;
        if commit_ts < ts {
            self.tracker.finish(ts);
            return Err(Error::InvalidArgument(format!(
                "commit timestamp {commit_ts} below prepare timestamp {ts}"
            )));
        }
        if commit_ts > ts {
            self.hlc.update(commit_ts)?;
            self.tracker.reassign(ts, commit_ts);
            let mut locked = self.conflicts.lock(Self::locked_keys(&request));
            for key in request
                .writes
                .iter()
                .map(|(k, _)| k.as_slice())
                .chain(request.for_update.iter().map(Vec::as_slice))
            {
                locked.record(key, commit_ts);
            }
        }
        self.apply_and_acknowledge(&request, commit_ts)
    }

    fn abort(&self, txn_id: u64) -> Result<()> {
        let p = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&txn_id)
            .ok_or(Error::UnknownTransaction(txn_id))?;
        // The reserved keys stay in the conflict index at the prepare
        // timestamp: later validations may see a spurious conflict, never miss one.
        self.tracker.finish(p.ts);
        Ok(())
    }

    fn set_horizons(&self, oldest_active: Timestamp, gc_watermark: Timestamp) {
        assert!(gc_watermark <= oldest_active, "GC watermark above a live snapshot");
        self.oldest_active.fetch_max(oldest_active, Ordering::SeqCst);
        // Only history that every commit has reached may be collected.
        self.db.set_gc_watermark(gc_watermark.min(self.tracker.watermark()));
    }

    fn gc_watermark(&self) -> Timestamp {
        self.db.gc_watermark()
    }

    fn stats(&self) -> ShardStats {
        ShardStats {
            validations: self.validations.load(Ordering::Relaxed),
            validation_nanos: self.validation_nanos.load(Ordering::Relaxed),
            conflict_entries: self.conflicts.entries() as u64,
            engine: Some(self.db.stats()),
        }
    }
}
