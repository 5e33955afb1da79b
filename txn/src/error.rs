//! The transaction layer's errors. Callers branch on [`Error::is_retryable`]:
//! a serialization failure means "run the whole transaction again".

use std::path::PathBuf;

use strata_lsm::Timestamp;

/// Why a transaction failed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// A key this transaction wrote (or read FOR UPDATE) was written by a
    /// transaction that committed after this one's snapshot.
    WriteWrite,
    /// SERIALIZABLE: a key this transaction read was written after its snapshot.
    ReadWrite,
    /// SERIALIZABLE: a key was written after the snapshot inside a range this
    /// transaction scanned.
    Phantom,
}

impl std::fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConflictKind::WriteWrite => "write-write conflict",
            ConflictKind::ReadWrite => "read-write conflict",
            ConflictKind::Phantom => "phantom in a scanned range",
        })
    }
}

/// Everything that can go wrong in a transaction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Serialization failure (SQLSTATE 40001): retry the transaction.
    #[error(
        "could not serialize access: {kind} on key {} (written at {committed_ts}, after this \
         transaction's snapshot at {start_ts}); retry the transaction",
        display_key(key)
    )]
    Conflict { kind: ConflictKind, key: Vec<u8>, start_ts: Timestamp, committed_ts: Timestamp },
    /// A timestamp from elsewhere is further ahead than the clock may be pushed.
    #[error(
        "timestamp from a peer is {remote_ms} ms, local clock {local_ms} ms: more than the maximum offset of {max_offset_ms} ms"
    )]
    ClockOffset { remote_ms: u64, local_ms: u64, max_offset_ms: u64 },
    /// The snapshot is older than the retained history.
    #[error("snapshot at {read_ts} is older than the retained history (oldest readable {oldest})")]
    SnapshotTooOld { read_ts: Timestamp, oldest: Timestamp },
    /// The transaction ran longer than `TxnOptions::max_txn_age`.
    #[error("transaction is {age_ms} ms old, over the limit of {limit_ms} ms")]
    TransactionTooOld { age_ms: u64, limit_ms: u64 },
    /// The buffered writes exceed `TxnOptions::max_write_set_bytes`.
    #[error("transaction writes {bytes} bytes, over the limit of {limit} bytes")]
    WriteSetTooLarge { bytes: usize, limit: usize },
    /// A write in a read-only transaction.
    #[error("cannot write in a read-only transaction")]
    ReadOnly,
    /// A time-travel read asked for the future.
    #[error("cannot read at {requested}: it is after the present ({now})")]
    FutureTimestamp { requested: Timestamp, now: Timestamp },
    /// No prepared transaction with that id.
    #[error("no prepared transaction {0}")]
    UnknownTransaction(u64),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(strata_lsm::Error),
    /// The shard cannot serve the operation now (a replicated shard whose
    /// replica set has no reachable leader, or is overloaded): nothing was
    /// done, and running the transaction again may succeed.
    #[error("shard unavailable: {source}; retry the transaction")]
    Unavailable {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corruption: {0}")]
    Corruption(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias for the transaction layer.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether running the transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict { .. } | Error::Unavailable { .. } => true,
            Error::Storage(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    /// The same error again, for each member of a failed write group: same
    /// variant (so the same [`Error::is_retryable`]) and the same message.
    /// (`std::io::Error` is not `Clone`; its kind and message are kept.)
    pub(crate) fn duplicate(&self) -> Error {
        use strata_lsm::Error as Lsm;
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Error::Conflict { kind, key, start_ts, committed_ts } => Error::Conflict {
                kind: *kind,
                key: key.clone(),
                start_ts: *start_ts,
                committed_ts: *committed_ts,
            },
            Error::ClockOffset { remote_ms, local_ms, max_offset_ms } => Error::ClockOffset {
                remote_ms: *remote_ms,
                local_ms: *local_ms,
                max_offset_ms: *max_offset_ms,
            },
            Error::SnapshotTooOld { read_ts, oldest } => {
                Error::SnapshotTooOld { read_ts: *read_ts, oldest: *oldest }
            }
            Error::TransactionTooOld { age_ms, limit_ms } => {
                Error::TransactionTooOld { age_ms: *age_ms, limit_ms: *limit_ms }
            }
            Error::WriteSetTooLarge { bytes, limit } => {
                Error::WriteSetTooLarge { bytes: *bytes, limit: *limit }
            }
            Error::ReadOnly => Error::ReadOnly,
            Error::FutureTimestamp { requested, now } => {
                Error::FutureTimestamp { requested: *requested, now: *now }
            }
            Error::UnknownTransaction(id) => Error::UnknownTransaction(*id),
            Error::Storage(e) => Error::Storage(match e {
                Lsm::Io { path, source } => Lsm::Io { path: path.clone(), source: io(source) },
                Lsm::Corruption { path, offset, reason } => {
                    Lsm::Corruption { path: path.clone(), offset: *offset, reason: reason.clone() }
                }
                Lsm::PreviousIo(reason) => Lsm::PreviousIo(reason.clone()),
                Lsm::WriteStall { reason, waited_ms } => {
                    Lsm::WriteStall { reason: *reason, waited_ms: *waited_ms }
                }
                Lsm::SnapshotTooOld { read_ts, watermark } => {
                    Lsm::SnapshotTooOld { read_ts: *read_ts, watermark: *watermark }
                }
                Lsm::InvalidArgument(m) => Lsm::InvalidArgument(m.clone()),
                Lsm::Locked(path) => Lsm::Locked(path.clone()),
            }),
            Error::Unavailable { source } => {
                Error::Unavailable { source: source.to_string().into() }
            }
            Error::Io { path, source } => Error::Io { path: path.clone(), source: io(source) },
            Error::Corruption(m) => Error::Corruption(m.clone()),
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        }
    }
}

impl From<strata_lsm::Error> for Error {
    fn from(e: strata_lsm::Error) -> Error {
        match e {
            strata_lsm::Error::SnapshotTooOld { read_ts, watermark } => {
                Error::SnapshotTooOld { read_ts, oldest: watermark }
            }
            other => Error::Storage(other),
        }
    }
}

/// A key as people read it: printable ASCII as is, other bytes as `\xNN`.
pub fn display_key(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len() + 2);
    s.push('"');
    for &b in key {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_names_key_and_timestamps() {
        let e = Error::Conflict {
            kind: ConflictKind::WriteWrite,
            key: b"acct\x00\x07".to_vec(),
            start_ts: 5,
            committed_ts: 9,
        };
        let msg = e.to_string();
        assert!(msg.contains(r#""acct\x00\x07""#), "{msg}");
        assert!(msg.contains("written at 9") && msg.contains("snapshot at 5"), "{msg}");
        assert!(e.is_retryable());
        assert!(!Error::ReadOnly.is_retryable());
    }

    #[test]
    fn a_duplicated_error_keeps_its_message_and_retryability() {
        let stall = Error::Storage(strata_lsm::Error::WriteStall {
            reason: strata_lsm::StallReason::L0Stop,
            waited_ms: 7,
        });
        let io = Error::Storage(strata_lsm::Error::PreviousIo("disk full".into()));
        let unavailable = Error::Unavailable { source: "no leader".into() };
        for e in [stall, io, unavailable] {
            let copy = e.duplicate();
            assert_eq!(copy.to_string(), e.to_string());
            assert_eq!(copy.is_retryable(), e.is_retryable());
        }
    }
}
