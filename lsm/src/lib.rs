//! `strata-lsm`: Strata's versioned storage engine, an LSM tree of MVCC versions.
//!
//! Every entry is a version of a user key at a u64 timestamp: a value or a
//! tombstone. [`Db::get`] returns the newest version at or below a read
//! timestamp; [`Db::scan`] streams a key range at a timestamp, forwards or
//! backwards. Writes arrive in atomic [`WriteBatch`]es, are logged to a
//! checksummed write-ahead log with group commit, land in a concurrent skiplist
//! memtable, and reach immutable sorted tables (read through `mmap`) by
//! background flush and leveled compaction. Compaction also garbage-collects
//! versions that no reader at or above the GC watermark can see.
//! [`Db::checkpoint`] writes a consistent copy made of hard links to the
//! immutable tables and a fresh manifest ([`checkpoint`]).
//!
//! ```
//! use strata_lsm::{Db, Durability, KeyRange, Options, WriteBatch};
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"apple", 10, b"red").put(b"banana", 10, b"yellow");
//! db.write(&batch, Durability::Sync)?;
//! db.delete(b"apple", 20, Durability::Sync)?;
//!
//! assert_eq!(db.get(b"apple", 15)?, Some(b"red".to_vec()));   // as of ts 15
//! assert_eq!(db.get(b"apple", 25)?, None);                     // deleted at 20
//! let keys: Vec<_> = db.scan(KeyRange::all(), 25, false)?.map(|r| r.unwrap().0).collect();
//! assert_eq!(keys, vec![b"banana".to_vec()]);
//! # Ok::<(), strata_lsm::Error>(())
//! ```
//!
//! # Invariants
//! - Versions are immutable; a table is never modified after it is written.
//! - An acknowledged [`Durability::Sync`] write survives a crash at any instant;
//!   a batch is never partly present after recovery.
//! - Damaged data is reported as [`Error::Corruption`], never returned.
//! - Levels 1 and deeper hold sorted, non-overlapping tables.
//!
//! The on-disk format is documented in `lsm/docs/format.md`.

// A library reports through its return values, never by printing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod batch;
mod block;
mod bloom;
pub mod checkpoint;
mod codec;
mod compaction;
mod db;
mod error;
mod fs;
mod iter;
mod key;
mod manifest;
mod memtable;
mod options;
mod record;
mod stats;
mod table;
mod version;
mod wal;

pub use batch::{BatchIter, WriteBatch};
pub use checkpoint::{CheckpointInfo, clone_checkpoint};
pub use db::{Db, GroupStage};
pub use error::{Error, Result, StallReason};
pub use fs::write_zeros;
pub use iter::{KeyRange, Scan};
pub use key::{MAX_TS, Timestamp, Value, ValueRef, compare, prefix_successor};
pub use options::{Durability, Options};
pub use stats::{LevelStats, StatsSnapshot};

/// Building blocks exposed for the micro-benchmarks in `strata-benches`.
/// Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::block::{Block, BlockBuilder};
    pub use crate::bloom::{BloomBuilder, hash_key, may_contain};
    pub use crate::iter::{Cursor, Seek};
    pub use crate::memtable::MemTable;
}
