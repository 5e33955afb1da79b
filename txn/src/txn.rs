//! [`Txn`]: one transaction, buffering its writes until commit.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;

use strata_lsm::{KeyRange, Timestamp};

use crate::error::{Error, Result};
use crate::shard::{CommitRequest, Isolation, RowIter};
use crate::store::Store;

/// A transaction. Reads see its snapshot plus its own writes; writes are
/// buffered and applied atomically by [`Txn::commit`]. Dropping a transaction
/// without committing rolls it back.
#[derive(Debug)]
pub struct Txn {
    store: Store,
    start_ts: Timestamp,
    isolation: Isolation,
    read_only: bool,
    began_ms: u64,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    write_bytes: usize,
    for_update: BTreeSet<Vec<u8>>,
    reads: Vec<Vec<u8>>,
    ranges: Vec<KeyRange>,
}

impl Txn {
    pub(crate) fn new(
        store: Store,
        start_ts: Timestamp,
        isolation: Isolation,
        read_only: bool,
        began_ms: u64,
    ) -> Txn {
        Txn {
            store,
            start_ts,
            isolation,
            read_only,
            began_ms,
            writes: BTreeMap::new(),
            write_bytes: 0,
            for_update: BTreeSet::new(),
            reads: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// The snapshot this transaction reads.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// The store this transaction runs on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn check_age(&self) -> Result<()> {
        let limit_ms = self.store.options().max_txn_age.as_millis() as u64;
        let age_ms = self.store.physical_millis().saturating_sub(self.began_ms);
        if age_ms > limit_ms {
            return Err(Error::TransactionTooOld { age_ms, limit_ms });
        }
        Ok(())
    }

    /// The value of `key`: this transaction's own write, else the snapshot's.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(own) = self.writes.get(key) {
            return Ok(own.clone());
        }
        self.check_age()?;
        if self.isolation == Isolation::Serializable && !self.read_only {
            self.reads.push(key.to_vec());
        }
        self.store.shard().get(key, self.start_ts)
    }

    /// Reads `key` and adds it to the conflict set as if written: a concurrent
    /// transaction writing (or locking) it makes one of the two fail.
    pub fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.for_update.insert(key.to_vec());
        self.get(key)
    }

    /// Buffers a write of `value` under `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.buffer(key, Some(value.to_vec()))
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.buffer(key, None)
    }

    fn buffer(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let added = key.len() + value.as_ref().map_or(0, Vec::len);
        let limit = self.store.options().max_write_set_bytes;
        if self.write_bytes + added > limit {
            return Err(Error::WriteSetTooLarge { bytes: self.write_bytes + added, limit });
        }
        self.write_bytes += added;
        self.writes.insert(key.to_vec(), value);
        Ok(())
    }

    /// The rows of `range` as this transaction sees them, ascending or
    /// (`reverse`) descending. Streams from storage; own writes are merged in.
    pub fn scan(&mut self, range: KeyRange, reverse: bool) -> Result<TxnScan> {
        self.check_age()?;
        let base = self.store.shard().scan(range.clone(), self.start_ts, reverse)?;
        let mut own: Vec<BufferedWrite> = self
            .writes
            .range::<[u8], _>((
                range.lower.as_ref().map(Vec::as_slice),
                range.upper.as_ref().map(Vec::as_slice),
            ))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if reverse {
            own.reverse();
        }
        if self.isolation == Isolation::Serializable && !self.read_only {
            self.ranges.push(range);
        }
        Ok(TxnScan { base: base.peekable(), own: own.into_iter().peekable(), reverse })
    }

    /// Commits: validates and applies the writes atomically, returning the
    /// commit timestamp. A transaction that wrote nothing just ends and
    /// returns its snapshot timestamp. On a serialization failure nothing is
    /// applied and the error says which key conflicted.
    pub fn commit(mut self) -> Result<Timestamp> {
        if self.writes.is_empty() && self.for_update.is_empty() {
            self.store.record_read_only();
            return Ok(self.start_ts);
        }
        let result = self.commit_writes();
        self.store.record_outcome(&result);
        result
    }

    fn commit_writes(&mut self) -> Result<Timestamp> {
        self.check_age()?;
        let request = CommitRequest {
            start_ts: self.start_ts,
            isolation: self.isolation,
            writes: std::mem::take(&mut self.writes).into_iter().collect(),
            for_update: std::mem::take(&mut self.for_update).into_iter().collect(),
            reads: std::mem::take(&mut self.reads),
            ranges: std::mem::take(&mut self.ranges),
        };
        self.store.shard().commit(&request)
    }

    /// Marks the current state of the buffered writes, to return to with
    /// [`Txn::rollback_to`] (SQL `SAVEPOINT`). Reads stay recorded: what was
    /// read still constrains validation.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            writes: self.writes.clone(),
            write_bytes: self.write_bytes,
            for_update: self.for_update.clone(),
        }
    }

    /// Discards writes made since `savepoint`.
    pub fn rollback_to(&mut self, savepoint: &Savepoint) {
        self.writes = savepoint.writes.clone();
        self.write_bytes = savepoint.write_bytes;
        self.for_update = savepoint.for_update.clone();
    }

    /// Ends the transaction without applying anything.
    pub fn rollback(self) {
        self.store.record_rollback();
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        self.store.end_snapshot(self.start_ts);
    }
}

/// A point in a transaction's writes ([`Txn::savepoint`]).
#[derive(Clone, Debug)]
pub struct Savepoint {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    write_bytes: usize,
    for_update: BTreeSet<Vec<u8>>,
}

/// A buffered write: the key and its new value, `None` for a delete.
type BufferedWrite = (Vec<u8>, Option<Vec<u8>>);

/// Rows of a transaction's scan: storage merged with its own writes.
pub struct TxnScan {
    base: Peekable<RowIter>,
    own: Peekable<std::vec::IntoIter<BufferedWrite>>,
    reverse: bool,
}

impl std::fmt::Debug for TxnScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnScan").field("reverse", &self.reverse).finish_non_exhaustive()
    }
}

impl Iterator for TxnScan {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let base_key = match self.base.peek() {
                Some(Ok((k, _))) => Some(k),
                Some(Err(_)) => return self.base.next(),
                None => None,
            };
            let own_key = self.own.peek().map(|(k, _)| k);
            let take_own = match (base_key, own_key) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(b), Some(o)) => {
                    if b == o {
                        self.base.next(); // own write replaces the stored row
                        true
                    } else {
                        (o < b) != self.reverse
                    }
                }
            };
            if !take_own {
                return self.base.next();
            }
            let (key, value) = self.own.next().expect("peeked");
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
            // An own delete hides the row; keep going.
        }
    }
}
