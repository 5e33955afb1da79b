//! The engine's error type: one enum whose variants say what a caller can do.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// Why writes are slowed or stopped (see [`crate::StatsSnapshot::stall_reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StallReason {
    /// The active memtable is full and the flush queue already holds the maximum
    /// number of immutable memtables.
    MemtableLimit,
    /// Level 0 holds `l0_stop_files` files or more: compaction is behind.
    L0Stop,
    /// Level 0 holds `l0_slowdown_files` files or more: writes are rate-limited.
    L0Slowdown,
}

impl std::fmt::Display for StallReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StallReason::MemtableLimit => "memtable limit reached, waiting for flush",
            StallReason::L0Stop => "too many level-0 files, waiting for compaction",
            StallReason::L0Slowdown => "many level-0 files, writes rate-limited",
        })
    }
}

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stored data failed a checksum or structural check. Never retried.
    #[error("corruption in {path} at offset {offset}: {reason}")]
    Corruption { path: PathBuf, offset: u64, reason: String },
    /// A write or fsync failed earlier; the page cache can no longer be trusted,
    /// so the engine refuses writes until it is reopened.
    #[error("the engine refuses writes after an earlier failure ({0}); reopen it")]
    PreviousIo(String),
    /// Writes waited longer than `Options::max_stall` for background work.
    #[error("write stalled for {waited_ms} ms: {reason}")]
    WriteStall { reason: StallReason, waited_ms: u64 },
    /// A read asked for history that garbage collection may already have removed.
    #[error(
        "read at timestamp {read_ts} is below the GC watermark {watermark}: \
         that history may have been garbage-collected"
    )]
    SnapshotTooOld { read_ts: u64, watermark: u64 },
    /// The caller passed an option or argument the engine cannot honour.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Another process (or another `Db` in this one) has the directory open.
    #[error("database directory {0} is in use by another process")]
    Locked(PathBuf),
}

impl Error {
    /// Whether the same operation may succeed if simply tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::WriteStall { .. })
    }

    /// Whether this error reports damaged data on disk.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corruption { path: path.into(), offset, reason: reason.into() }
    }
}
