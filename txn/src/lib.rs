//! `strata-txn`: transactions with snapshot isolation and optimistic
//! validation, timestamped by a hybrid logical clock.
//!
//! # Versions and snapshots
//!
//! Every committed write is a version of its key at the transaction's commit
//! timestamp, kept by the storage engine ([`strata_lsm`]). A transaction reads
//! the newest version at or below its snapshot timestamp `start_ts`:
//!
//! ```text
//!   key   ts=100      ts=105        ts=110
//!   a     a=1                       a=3      T(start 107) reads a=1, b=2
//!   b                 b=2                    T(start 112) reads a=3, b=2
//! ```
//!
//! Writes are buffered in the transaction (reads see them first) and applied
//! atomically at commit, in one WAL batch, at a commit timestamp larger than
//! every snapshot handed out before.
//!
//! # Validation
//!
//! First committer wins: a read-write transaction commits only if no key it
//! writes (or read with [`Txn::get_for_update`]) has a version newer than its
//! `start_ts`; otherwise it fails with a serialization failure
//! ([`Error::Conflict`], retryable) naming the key and both timestamps. Under
//! [`Isolation::Serializable`] the keys it read and the ranges it scanned must
//! not have changed either. Read-only transactions never validate and never
//! wait.
//!
//! Snapshot isolation allows *write skew*: two transactions each read both `x`
//! and `y` and each write a different one; both commit. SERIALIZABLE, or
//! reading with `get_for_update`, prevents it. The tests in
//! `txn/tests/anomalies.rs` assert each anomaly of the Adya catalogue as
//! prevented or allowed.
//!
//! # The snapshot invariant
//!
//! A snapshot at `S` is handed out only when every commit at or below `S` is
//! applied, so no reader misses a commit below its snapshot and no commit
//! lands below a snapshot already read ([`Shard`] contract; see `tracker.rs`).
//!
//! ```
//! use strata_txn::{Isolation, Store, TxnOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), TxnOptions::default())?;
//! store.run(Isolation::Snapshot, |txn| {
//!     let n = txn.get(b"counter")?.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
//!     txn.put(b"counter", &(n + 1).to_le_bytes())
//! })?;
//! let mut reader = store.begin_read_only();
//! assert_eq!(reader.get(b"counter")?, Some(1u64.to_le_bytes().to_vec()));
//! # Ok::<(), strata_txn::Error>(())
//! ```

// A library reports through its return values, never by printing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod clock;
mod conflicts;
mod error;
mod futex;
pub mod history;
mod local;
mod shard;
mod store;
mod tracker;
mod txn;

pub use clock::Hlc;
pub use error::{ConflictKind, Error, Result, display_key};
pub use local::LocalShard;
pub use shard::{CommitRequest, Isolation, RowIter, Shard, ShardStats};
pub use store::{RetryPolicy, Store, TxnOptions, TxnStats};
pub use strata_lsm::{KeyRange, Timestamp};
pub use tracker::{CommitTracker, GroupWriter};
pub use txn::{Savepoint, Txn, TxnScan};
