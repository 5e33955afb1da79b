//! Errors callers can branch on.

use crate::types::{ConfChange, Index, NodeId};

/// What went wrong, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Only the leader proposes and serves reads: redirect (to `leader` if known).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// A new leader has not yet committed an entry of its term, so it does not
    /// know the commit index yet: retry shortly.
    #[error("leader has not committed an entry of its term yet")]
    NotReady,
    /// Proposals are refused while leadership is being handed over: retry at the new leader.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A membership change is already in the log and not yet committed: retry later.
    #[error("a membership change is in progress")]
    ConfChangeInProgress,
    /// The change would not leave a valid membership (adds a voter twice,
    /// removes a non-member or the last voter).
    #[error("invalid membership change {0:?}")]
    InvalidConfChange(ConfChange),
    /// Leadership transfer to a node that is not another voter.
    #[error("cannot transfer leadership to {0}")]
    InvalidTransfer(NodeId),
    /// A snapshot must cover applied entries beyond the current snapshot.
    #[error("cannot snapshot at {index}: applied {applied}, current snapshot {snapshot}")]
    InvalidSnapshot { index: Index, applied: Index, snapshot: Index },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// Recovered state that no correct run could have persisted.
    #[error("corrupt persisted state: {0}")]
    Corrupt(String),
    /// A file of the log store is damaged where a crash cannot have damaged
    /// it (not a torn tail): the node must not start from it. Restore the
    /// replica from a peer.
    #[error("corrupt log store file {path} at offset {offset}: {reason}")]
    CorruptFile { path: std::path::PathBuf, offset: u64, reason: String },
    /// The log store failed; the node must stop (its durability is unknown).
    #[error("log store I/O: {0}")]
    Io(String),
    /// The state machine could not apply a committed entry (its storage
    /// failed): the node stopped rather than diverge; restart it.
    #[error("applying a committed entry failed: {0}")]
    ApplyFailed(String),
    /// The node's input queue is full: retry later (admission control).
    #[error("node overloaded: input queue full")]
    Overloaded,
    /// The proposal's log position went to another leader's entry: it was
    /// definitely not applied, and may be retried.
    #[error("proposal dropped: another leader's entry took its place")]
    ProposalDropped,
    /// The node stopped (or its store failed, or a snapshot replaced its log)
    /// before the request finished: a proposal may or may not have been
    /// applied. The outcome is unknown; it is not guessed.
    #[error("outcome unknown: {0}")]
    Ambiguous(&'static str),
}

impl Error {
    /// Whether the same request may succeed if retried (here or at the leader).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader { .. }
                | Error::NotReady
                | Error::TransferInProgress
                | Error::ConfChangeInProgress
                | Error::Overloaded
                | Error::ProposalDropped
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
