//! The in-memory conflict state used by optimistic validation.
//!
//! For every key written (or read FOR UPDATE) by a recent commit, the index
//! holds the newest such commit's timestamp, in 64 independently locked
//! shards: a commit locks only the shards of its own keys (in index order, so
//! two commits never deadlock), and commits with disjoint keys validate in
//! parallel. A log of recent write sets serves SERIALIZABLE range (phantom)
//! checks.
//!
//! Entries at or below the *horizon* may have been pruned. Pruning only ever
//! removes commits that are applied and older than every active snapshot (or,
//! past `max_entries`, older than the applied watermark), and raises the
//! horizon before touching any shard, so a validator either finds the entry or
//! sees a horizon above its snapshot and asks the storage engine instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use strata_lsm::{KeyRange, Timestamp};

const SHARDS: usize = 64;

type ShardMap = HashMap<Vec<u8>, Timestamp>;

#[derive(Debug)]
pub struct ConflictIndex {
    shards: Vec<Mutex<ShardMap>>,
    log: Mutex<Vec<(Timestamp, Vec<Vec<u8>>)>>,
    horizon: AtomicU64,
    entries: AtomicUsize,
}

fn shard_of(key: &[u8]) -> usize {
    (strata_lsm_hash(key) % SHARDS as u64) as usize
}

/// FNV-1a: cheap, and good enough to spread keys over 64 shards.
fn strata_lsm_hash(key: &[u8]) -> u64 {
    key.iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The shards a validation holds, in index order.
#[derive(Debug)]
pub struct LockedShards<'a> {
    guards: Vec<(usize, MutexGuard<'a, ShardMap>)>,
    index: &'a ConflictIndex,
}

impl<'a> LockedShards<'a> {
    fn shard(&self, key: &[u8]) -> &ShardMap {
        let i = shard_of(key);
        let pos = self.guards.binary_search_by_key(&i, |(s, _)| *s).expect("key's shard is locked");
        &self.guards[pos].1
    }

    /// The newest recorded commit of `key`, if it is still in the index.
    pub fn latest(&self, key: &[u8]) -> Option<Timestamp> {
        self.shard(key).get(key).copied()
    }

    /// Records that `key` was written at `ts`.
    pub fn record(&mut self, key: &[u8], ts: Timestamp) {
        let i = shard_of(key);
        let pos = self.guards.binary_search_by_key(&i, |(s, _)| *s).expect("key's shard is locked");
        let map = &mut self.guards[pos].1;
        match map.get_mut(key) {
            Some(old) => *old = (*old).max(ts),
            None => {
                map.insert(key.to_vec(), ts);
                self.index.entries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Default for ConflictIndex {
    fn default() -> Self {
        ConflictIndex::new(0)
    }
}

impl ConflictIndex {
    /// An empty index: nothing after `horizon` has committed yet.
    pub fn new(horizon: Timestamp) -> ConflictIndex {
        ConflictIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            log: Mutex::new(Vec::new()),
            horizon: AtomicU64::new(horizon),
            entries: AtomicUsize::new(0),
        }
    }

    /// Locks the shards holding `keys`.
    pub fn lock<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> LockedShards<'_> {
        let mut ids: Vec<usize> = keys.into_iter().map(shard_of).collect();
        ids.sort_unstable();
        ids.dedup();
        let guards = ids
            .into_iter()
            .map(|i| (i, self.shards[i].lock().unwrap_or_else(|p| p.into_inner())))
            .collect();
        LockedShards { guards, index: self }
    }

    /// Commits at or below this may be missing from the index.
    pub fn horizon(&self) -> Timestamp {
        self.horizon.load(Ordering::SeqCst)
    }

    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Appends a write set to the log used for phantom checks.
    pub fn log_write_set(&self, ts: Timestamp, keys: Vec<Vec<u8>>) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push((ts, keys));
    }

    /// A key in `range` written by a commit newer than `start_ts`, if any.
    /// `None` from the log is exact only when `start_ts >= horizon()`.
    pub fn phantom(&self, range: &KeyRange, start_ts: Timestamp) -> Option<(Vec<u8>, Timestamp)> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().filter(|(ts, _)| *ts > start_ts).find_map(|(ts, keys)| {
            keys.iter().find(|k| range.contains(k)).map(|k| (k.clone(), *ts))
        })
    }

    /// Forgets commits at or below `up_to` (see the module doc).
    pub fn prune(&self, up_to: Timestamp) {
        if up_to <= self.horizon.fetch_max(up_to, Ordering::SeqCst) {
            return;
        }
        let mut remaining = 0;
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, ts| *ts > up_to);
            remaining += map.len();
        }
        self.entries.store(remaining, Ordering::Relaxed);
        self.log.lock().unwrap_or_else(|p| p.into_inner()).retain(|(ts, _)| *ts > up_to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_newest_commit_per_key() {
        let idx = ConflictIndex::new(0);
        let keys: [&[u8]; 2] = [b"a", b"b"];
        let mut l = idx.lock(keys);
        l.record(b"a", 5);
        l.record(b"a", 3);
        l.record(b"b", 7);
        assert_eq!((l.latest(b"a"), l.latest(b"b")), (Some(5), Some(7)));
        drop(l);
        assert_eq!(idx.entries(), 2);
    }

    #[test]
    fn pruning_raises_the_horizon_and_drops_old_entries() {
        let idx = ConflictIndex::new(0);
        {
            let keys: [&[u8]; 2] = [b"old", b"new"];
            let mut l = idx.lock(keys);
            l.record(b"old", 10);
            l.record(b"new", 20);
        }
        idx.log_write_set(10, vec![b"old".to_vec()]);
        idx.log_write_set(20, vec![b"new".to_vec()]);
        idx.prune(15);
        assert_eq!(idx.horizon(), 15);
        assert_eq!(idx.entries(), 1);
        let keys: [&[u8]; 2] = [b"old", b"new"];
        let l = idx.lock(keys);
        assert_eq!((l.latest(b"old"), l.latest(b"new")), (None, Some(20)));
        drop(l);
        assert_eq!(idx.phantom(&KeyRange::all(), 0), Some((b"new".to_vec(), 20)));
        idx.prune(12);
        assert_eq!(idx.horizon(), 15, "the horizon never moves back");
    }

    #[test]
    fn phantom_check_sees_only_newer_commits_in_range() {
        let idx = ConflictIndex::new(0);
        idx.log_write_set(8, vec![b"m".to_vec(), b"q".to_vec()]);
        assert_eq!(idx.phantom(&KeyRange::prefix(b"q"), 5), Some((b"q".to_vec(), 8)));
        assert_eq!(idx.phantom(&KeyRange::prefix(b"q"), 8), None);
        assert_eq!(idx.phantom(&KeyRange::prefix(b"z"), 0), None);
    }
}
