//! The shard interface: what the transaction coordinator needs from the place
//! where data lives, whether one local engine or a Raft replica set.
//!
//! Contract for implementations:
//! - Reads are at a timestamp and see exactly the commits at or below it.
//! - [`Shard::snapshot_ts`] returns a timestamp at or below which every commit
//!   is applied, and no later commit will be assigned a timestamp at or below
//!   it (the snapshot invariant).
//! - [`Shard::commit`] validates (first committer wins, plus the read set for
//!   SERIALIZABLE) and applies all writes atomically at a commit timestamp
//!   larger than the snapshot, or applies nothing and returns the conflict.
//!   It returns only when the commit is durable and visible to new snapshots.
//! - `prepare` / `commit_prepared` / `abort` split the same work for
//!   transactions spanning shards: a prepared transaction's keys conflict with
//!   later validations, and snapshots do not advance past it until it is
//!   resolved.

use strata_lsm::{KeyRange, Timestamp};

use crate::error::Result;

/// Isolation level of a transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Snapshot isolation: reads see one snapshot; write-write conflicts abort
    /// (first committer wins). Write skew is possible. PostgreSQL's REPEATABLE READ.
    #[default]
    Snapshot,
    /// Snapshot isolation plus validation of the read set (keys and scanned
    /// ranges): no anomalies among SERIALIZABLE transactions.
    Serializable,
}

/// What a read-write transaction asks a shard to commit.
#[derive(Clone, Debug, Default)]
pub struct CommitRequest {
    pub start_ts: Timestamp,
    pub isolation: Isolation,
    /// Writes in key order: `None` deletes.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Keys read FOR UPDATE: validated and recorded as if written.
    pub for_update: Vec<Vec<u8>>,
    /// SERIALIZABLE only: keys read.
    pub reads: Vec<Vec<u8>>,
    /// SERIALIZABLE only: ranges scanned.
    pub ranges: Vec<KeyRange>,
}

/// Counters a shard keeps about validation.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub validations: u64,
    /// Total time spent validating, in nanoseconds.
    pub validation_nanos: u64,
    /// Keys currently held by the in-memory conflict index.
    pub conflict_entries: u64,
    /// The storage engine's statistics, for a shard with a local engine.
    pub engine: Option<strata_lsm::StatsSnapshot>,
}

/// Rows from a scan: `(key, value)` in the requested order.
pub type RowIter = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send>;

/// Where a transaction's data lives. See the module doc for the contract.
pub trait Shard: Send + Sync + std::fmt::Debug {
    /// A timestamp safe to read at now (the snapshot invariant holds for it).
    fn snapshot_ts(&self) -> Timestamp;

    /// Makes `ts` safe to read at: waits for commits at or below it to apply
    /// and keeps later commits above it. Fails for a future timestamp.
    fn snapshot_at(&self, ts: Timestamp) -> Result<()>;

    /// The value of `key` at `ts`.
    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>>;

    /// The rows of `range` at `ts`.
    fn scan(&self, range: KeyRange, ts: Timestamp, reverse: bool) -> Result<RowIter>;

    /// Validates and applies a transaction in one step; returns its commit timestamp.
    fn commit(&self, request: &CommitRequest) -> Result<Timestamp>;

    /// Validates a transaction and reserves its keys; returns the prepare
    /// timestamp (a lower bound for its commit timestamp).
    fn prepare(&self, txn_id: u64, request: &CommitRequest) -> Result<Timestamp>;

    /// Applies a prepared transaction at `commit_ts` (at least its prepare timestamp).
    fn commit_prepared(&self, txn_id: u64, commit_ts: Timestamp) -> Result<()>;

    /// Releases a prepared transaction without applying it.
    fn abort(&self, txn_id: u64) -> Result<()>;

    /// Tells the shard the oldest snapshot still in use and the GC watermark
    /// (at most that snapshot): history below the watermark may be collected.
    fn set_horizons(&self, oldest_active: Timestamp, gc_watermark: Timestamp);

    /// The GC watermark in force: reads below it fail.
    fn gc_watermark(&self) -> Timestamp;

    fn stats(&self) -> ShardStats;
}
