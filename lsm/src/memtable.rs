//! The memtable: recent writes in a concurrent skiplist (`crossbeam-skiplist`).
//!
//! Writers insert without a lock. Each memtable belongs to one WAL file; a
//! batch goes into the memtable whose WAL holds its record. When a memtable is
//! frozen no new writer may start on it, and it is flushed only after the
//! writers already inside have finished (`writers` drops to zero), so a flushed
//! table always contains every record of its WAL.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_skiplist::SkipMap;
use crossbeam_skiplist::map::Entry;

use crate::error::Result;
use crate::iter::{Cursor, Seek};
use crate::key::{KeyRef, KeyView, Timestamp, Value, ValueRef, VersionedKey};
use crate::wal::Wal;

const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;

/// Bytes charged per entry on top of key and value (skiplist node, pointers).
const ENTRY_OVERHEAD: usize = 64;

type Stored = Box<[u8]>;

fn encode_value(value: ValueRef<'_>) -> Stored {
    match value {
        ValueRef::Put(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(TAG_PUT);
            out.extend_from_slice(v);
            out.into_boxed_slice()
        }
        ValueRef::Delete => Box::new([TAG_DELETE]),
    }
}

fn decode_value(stored: &[u8]) -> ValueRef<'_> {
    match stored[0] {
        TAG_PUT => ValueRef::Put(&stored[1..]),
        tag => {
            debug_assert_eq!(tag, TAG_DELETE);
            ValueRef::Delete
        }
    }
}

#[derive(Debug)]
pub struct MemTable {
    map: SkipMap<VersionedKey, Stored>,
    wal: Option<Arc<Wal>>,
    size_bytes: AtomicUsize,
    min_ts: AtomicU64,
    max_ts: AtomicU64,
    writers: AtomicUsize,
    frozen: AtomicBool,
}

impl MemTable {
    /// A memtable whose writes are logged in `wal` (`None` during recovery).
    pub fn new(wal: Option<Arc<Wal>>) -> MemTable {
        MemTable {
            map: SkipMap::new(),
            wal,
            size_bytes: AtomicUsize::new(0),
            min_ts: AtomicU64::new(u64::MAX),
            max_ts: AtomicU64::new(0),
            writers: AtomicUsize::new(0),
            frozen: AtomicBool::new(false),
        }
    }

    pub fn wal(&self) -> Option<&Arc<Wal>> {
        self.wal.as_ref()
    }

    /// Registers a writer. Fails once the memtable is frozen; the caller then
    /// retries on the new active memtable.
    pub fn begin_write(&self) -> bool {
        self.writers.fetch_add(1, Ordering::SeqCst);
        if self.frozen.load(Ordering::SeqCst) {
            self.writers.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub fn end_write(&self) {
        let before = self.writers.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "end_write without begin_write");
    }

    /// Stops new writers from starting on this memtable.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Waits until every writer that started before [`MemTable::freeze`] is done.
    pub fn wait_for_writers(&self) {
        assert!(self.frozen.load(Ordering::SeqCst), "waiting on a memtable that is not frozen");
        while self.writers.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    pub fn insert(&self, key: &[u8], ts: Timestamp, value: ValueRef<'_>) {
        let stored = encode_value(value);
        let charge = key.len() + stored.len() + ENTRY_OVERHEAD;
        self.map.insert(VersionedKey { key: key.into(), ts }, stored);
        self.size_bytes.fetch_add(charge, Ordering::Relaxed);
        self.min_ts.fetch_min(ts, Ordering::Relaxed);
        self.max_ts.fetch_max(ts, Ordering::Relaxed);
    }

    /// The newest version of `key` at or below `read_ts`, copied out (an
    /// entry may be replaced by a later insert of the same key and timestamp).
    pub fn get(&self, key: &[u8], read_ts: Timestamp) -> Option<(Timestamp, Value)> {
        let probe = KeyRef { key, ts: read_ts };
        let entry = self.map.lower_bound(Bound::Included(&probe as &dyn KeyView))?;
        if &*entry.key().key != key {
            return None;
        }
        Some((entry.key().ts, decode_value(entry.value()).to_owned()))
    }

    pub fn approximate_size(&self) -> usize {
        self.size_bytes.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Smallest and largest timestamps stored (`(MAX, 0)` when empty).
    pub fn ts_range(&self) -> (Timestamp, Timestamp) {
        (self.min_ts.load(Ordering::Relaxed), self.max_ts.load(Ordering::Relaxed))
    }

    /// A cursor over all versions, positioned by `seek`.
    pub fn cursor(self: &Arc<Self>, seek: Seek<'_>) -> MemCursor {
        let entry = match seek {
            Seek::Forward(None) => self.map.front(),
            Seek::Forward(Some((key, ts))) => {
                self.map.lower_bound(Bound::Included(&KeyRef { key, ts } as &dyn KeyView))
            }
            Seek::Reverse(None) => self.map.back(),
            Seek::Reverse(Some((key, ts))) => {
                self.map.upper_bound(Bound::Excluded(&KeyRef { key, ts } as &dyn KeyView))
            }
        };
        // SAFETY: the entry borrows `self.map`. The cursor stores a clone of the
        // `Arc` owning the map, the map never moves (it lives in the Arc's heap
        // allocation), and `entry` is declared before `_mem` in `MemCursor`, so
        // it is dropped before that Arc clone. The 'static lifetime therefore
        // never outlives the map.
        let entry = entry.map(|e| unsafe {
            std::mem::transmute::<
                Entry<'_, VersionedKey, Stored>,
                Entry<'static, VersionedKey, Stored>,
            >(e)
        });
        MemCursor { entry, reverse: seek.is_reverse(), _mem: self.clone() }
    }
}

/// A cursor over a memtable's versions in one direction.
pub struct MemCursor {
    // Field order matters: `entry` must be dropped before `_mem` (see `cursor`).
    entry: Option<Entry<'static, VersionedKey, Stored>>,
    reverse: bool,
    _mem: Arc<MemTable>,
}

impl std::fmt::Debug for MemCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCursor").field("reverse", &self.reverse).finish_non_exhaustive()
    }
}

impl Cursor for MemCursor {
    fn valid(&self) -> bool {
        self.entry.is_some()
    }

    fn key(&self) -> &[u8] {
        &self.entry.as_ref().expect("valid cursor").key().key
    }

    fn ts(&self) -> Timestamp {
        self.entry.as_ref().expect("valid cursor").key().ts
    }

    fn value(&self) -> ValueRef<'_> {
        decode_value(self.entry.as_ref().expect("valid cursor").value())
    }

    fn advance(&mut self) -> Result<()> {
        let entry = self.entry.take().expect("advance on a valid cursor");
        self.entry = if self.reverse { entry.prev() } else { entry.next() };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut c: MemCursor) -> Vec<(Vec<u8>, Timestamp)> {
        let mut out = Vec::new();
        while c.valid() {
            out.push((c.key().to_vec(), c.ts()));
            c.advance().unwrap();
        }
        out
    }

    #[test]
    fn get_returns_newest_version_at_or_below() {
        let m = MemTable::new(None);
        m.insert(b"k", 10, ValueRef::Put(b"v10"));
        m.insert(b"k", 20, ValueRef::Delete);
        m.insert(b"k", 30, ValueRef::Put(b"old"));
        m.insert(b"j", 25, ValueRef::Put(b"j"));
        assert_eq!(m.get(b"k", 9), None);
        assert_eq!(m.get(b"k", 10), Some((10, Value::Put(b"v10".to_vec()))));
        assert_eq!(m.get(b"k", 29), Some((20, Value::Delete)));
        m.insert(b"k", 30, ValueRef::Put(b"v30"));
        assert_eq!(
            m.get(b"k", u64::MAX),
            Some((30, Value::Put(b"v30".to_vec()))),
            "re-insert wins"
        );
        assert_eq!(m.get(b"l", u64::MAX), None);
        assert_eq!(m.ts_range(), (10, 30));
    }

    #[test]
    fn cursors_walk_both_directions() {
        let m = Arc::new(MemTable::new(None));
        for (k, ts) in [(b"a", 1), (b"b", 2), (b"b", 5), (b"c", 1)] {
            m.insert(k, ts, ValueRef::Put(b"x"));
        }
        let fwd = collect(m.cursor(Seek::Forward(Some((b"b", u64::MAX)))));
        assert_eq!(fwd, vec![(b"b".to_vec(), 5), (b"b".to_vec(), 2), (b"c".to_vec(), 1)]);
        let rev = collect(m.cursor(Seek::Reverse(Some((b"b", 2)))));
        assert_eq!(rev, vec![(b"b".to_vec(), 5), (b"a".to_vec(), 1)]);
        assert_eq!(collect(m.cursor(Seek::Reverse(None))).len(), 4);
    }

    #[test]
    fn frozen_memtable_refuses_new_writers() {
        let m = MemTable::new(None);
        assert!(m.begin_write());
        m.freeze();
        assert!(!m.begin_write());
        m.end_write();
        m.wait_for_writers();
    }
}
