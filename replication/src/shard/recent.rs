//! The keys written by the most recent commits a replica applied, with
//! their commit timestamps: what a leader validates a young transaction
//! against instead of reading the engine for every key it writes.
//!
//! Validation asks, per written key, "is there a committed version newer
//! than the transaction's snapshot `start_ts`?". The engine answers by
//! reading the key's newest version (memtable, then tables); this index
//! answers from memory for every transaction whose snapshot is at or above
//! its *horizon*, and says "ask the engine" for older ones.
//!
//! Invariants:
//! - Every version in the engine with a timestamp above `horizon` was
//!   recorded here, and `newest[key]` is the largest such timestamp of
//!   `key` still remembered. Commits are applied in increasing timestamp
//!   order (the shard machine refuses a stale one), so forgetting the
//!   oldest record moves the horizon up to it and keeps this true.
//! - After the engine's contents are replaced (a fresh start, a snapshot
//!   restored) nothing is known: the horizon is [`Timestamp::MAX`] until the
//!   next commit is recorded, whose timestamp is above everything the
//!   restored engine holds; the horizon becomes one below it.
//!
//! The index holds at most `capacity` recorded writes: memory is bounded,
//! and a transaction older than the last `capacity` writes is validated
//! against the engine, as before.
//!
//! Keys are remembered by a 64-bit hash (SipHash of a per-index salt, random
//! on real nodes and fixed in the simulator, which must replay exactly,
//! then the key), so recording a write allocates nothing. Two keys with the same hash
//! share one entry holding the newer of their timestamps: a collision can
//! only report a conflict that is not there (a spurious serialization
//! failure, retried), never miss one, and with `capacity` entries it
//! happens for about one validation in `2^64 / capacity`.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hasher, RandomState};

use strata_txn::Timestamp;

/// How many recent writes a replica remembers by default.
pub const RECENT_WRITES: usize = 1 << 16;

/// The index (module doc).
#[derive(Clone)]
pub struct RecentWrites {
    /// Key hash -> newest recorded commit timestamp.
    newest: HashMap<u64, Timestamp, BuildHasherDefault<Prehashed>>,
    /// Recorded writes, oldest first: `(commit ts, key hash)`.
    order: VecDeque<(Timestamp, u64)>,
    /// See the module invariants.
    horizon: Timestamp,
    capacity: usize,
    /// Hashed ahead of every key.
    salt: u64,
}

impl std::fmt::Debug for RecentWrites {
    /// A summary: a real node's index holds tens of thousands of entries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentWrites")
            .field("writes", &self.order.len())
            .field("capacity", &self.capacity)
            .field("horizon", &self.horizon)
            .finish()
    }
}

/// The map's keys are hashes already: use them as they are.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in, to stay a hasher.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl RecentWrites {
    /// An index that knows nothing yet (module doc), remembering up to
    /// `capacity` writes, with a random salt.
    pub fn new(capacity: usize) -> RecentWrites {
        RecentWrites::with_salt(capacity, RandomState::new().hash_one(0u64))
    }

    /// As [`RecentWrites::new`], with a fixed salt (deterministic: the
    /// simulator).
    pub fn with_salt(capacity: usize, salt: u64) -> RecentWrites {
        assert!(capacity > 0, "a recent-writes index needs room");
        RecentWrites {
            newest: HashMap::default(),
            order: VecDeque::new(),
            horizon: Timestamp::MAX,
            capacity,
            salt,
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = DefaultHasher::new();
        h.write_u64(self.salt);
        h.write(key);
        h.finish()
    }

    /// The engine's contents were replaced: forget everything.
    pub fn reset(&mut self) {
        self.newest.clear();
        self.order.clear();
        self.horizon = Timestamp::MAX;
    }

    /// Records that a commit at `ts` wrote `keys` (applied in timestamp order).
    pub fn record<'a>(&mut self, ts: Timestamp, keys: impl IntoIterator<Item = &'a [u8]>) {
        if self.horizon == Timestamp::MAX {
            self.horizon = ts - 1;
        }
        debug_assert!(ts > self.horizon, "commit {ts} recorded at or below the horizon");
        for key in keys {
            let hash = self.hash(key);
            self.newest.insert(hash, ts);
            self.order.push_back((ts, hash));
        }
        while self.order.len() > self.capacity {
            let (old, hash) = self.order.pop_front().expect("longer than capacity");
            if self.newest.get(&hash) == Some(&old) {
                self.newest.remove(&hash);
            }
            self.horizon = self.horizon.max(old);
        }
        // Small indexes (unit tests, the simulator) check every step.
        if cfg!(debug_assertions) && self.capacity <= 4096 {
            self.check_invariants();
        }
    }

    /// The module invariants, as far as the index alone can tell.
    fn check_invariants(&self) {
        assert!(self.order.len() <= self.capacity);
        // At the horizon: the rest of a commit some of whose writes went.
        assert!(self.order.iter().all(|(ts, _)| *ts >= self.horizon), "a write below the horizon");
        assert!(self.order.iter().zip(self.order.iter().skip(1)).all(|(a, b)| a.0 <= b.0));
        let mut newest = HashMap::<u64, Timestamp>::new();
        for &(ts, hash) in &self.order {
            newest.insert(hash, ts);
        }
        assert_eq!(newest.len(), self.newest.len(), "newest does not match the writes");
        assert!(newest.iter().all(|(h, ts)| self.newest.get(h) == Some(ts)));
    }

    /// For a transaction whose snapshot is `start_ts`: `Some` with the
    /// timestamp of `key`'s newest version above the horizon (`None` in it:
    /// no version above the horizon, so none above `start_ts`), or `None`
    /// when `start_ts` is below the horizon and only the engine can tell.
    pub fn newest_since(&self, key: &[u8], start_ts: Timestamp) -> Option<Option<Timestamp>> {
        (start_ts >= self.horizon).then(|| self.newest.get(&self.hash(key)).copied())
    }

    /// Below this timestamp the index knows nothing ([`Timestamp::MAX`]:
    /// nothing recorded since the engine's contents were replaced).
    pub fn horizon(&self) -> Timestamp {
        self.horizon
    }
}

/// [`crate::shard::Versions::newest_since`] for a store that keeps
/// `recent` as it applies and whose GC floor is `floor()`: from the index
/// when it covers `start_ts` and `start_ts` is not below the floor (which
/// `latest` reports as a version of every key); from `latest` otherwise.
pub fn newest_since(
    recent: &RecentWrites,
    key: &[u8],
    start_ts: Timestamp,
    floor: impl FnOnce() -> Timestamp,
    latest: impl FnOnce() -> Result<Option<Timestamp>, String>,
) -> Result<Option<Timestamp>, String> {
    match recent.newest_since(key, start_ts) {
        Some(newest) if start_ts >= floor() => Ok(newest),
        _ => latest(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(r: &mut RecentWrites, ts: Timestamp, keys: &[&str]) {
        r.record(ts, keys.iter().map(|k| k.as_bytes()));
    }

    #[test]
    fn knows_nothing_until_the_first_commit_after_a_reset() {
        let mut r = RecentWrites::new(8);
        assert_eq!(r.newest_since(b"a", 1_000_000), None, "the engine may hold anything");
        record(&mut r, 100, &["a"]);
        assert_eq!(r.horizon(), 99);
        assert_eq!(r.newest_since(b"a", 99), Some(Some(100)));
        assert_eq!(r.newest_since(b"b", 99), Some(None), "no version above 99");
        assert_eq!(r.newest_since(b"a", 98), None, "below the horizon: ask the engine");
        r.reset();
        assert_eq!(r.newest_since(b"a", 1_000_000), None);
        record(&mut r, 200, &["b"]);
        assert_eq!(r.newest_since(b"a", 199), Some(None));
    }

    #[test]
    fn forgetting_the_oldest_writes_raises_the_horizon_to_them() {
        let mut r = RecentWrites::new(3);
        record(&mut r, 10, &["a", "b"]);
        record(&mut r, 20, &["a"]);
        assert_eq!(r.horizon(), 9);
        record(&mut r, 30, &["c"]);
        // 4 writes, room for 3: (10, a) goes; a's newest is 20, kept.
        assert_eq!(r.horizon(), 10);
        assert_eq!(r.newest_since(b"a", 10), Some(Some(20)));
        assert_eq!(r.newest_since(b"b", 10), Some(Some(10)));
        record(&mut r, 40, &["d"]);
        // (10, b) goes: b has no version above the horizon now.
        assert_eq!(r.horizon(), 10);
        assert_eq!(r.newest_since(b"b", 10), Some(None));
        record(&mut r, 50, &["e"]);
        assert_eq!(r.horizon(), 20);
        assert_eq!(r.newest_since(b"a", 20), Some(None));
        assert_eq!(r.newest_since(b"a", 19), None);
        assert_eq!(r.newest_since(b"e", 35), Some(Some(50)));
    }
}
