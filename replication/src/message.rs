//! Messages between the nodes of a replica set.
//!
//! Every message carries its sender's term. The transport may lose, delay,
//! duplicate and reorder them; the core treats each as a possibly stale
//! statement and never trusts one to be the latest. A message that no correct
//! peer could send is dropped and counted, never a panic.

use std::fmt;

use crate::types::{Entry, Index, NodeId, Snapshot, Term};

/// A message from one node to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: Body,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Would you vote for me at `term` (the sender's term + 1, not yet taken)?
    /// (Raft thesis §9.6, pre-vote.)
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    /// Answer to `PreVote`; granted answers carry the asked-for term.
    PreVoteResp {
        granted: bool,
    },
    /// Vote for me at `term` (Raft §5.2). `transfer` marks an election started
    /// by a leadership transfer, which voters grant even while they hear from
    /// a leader.
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResp {
        granted: bool,
    },
    /// Append `entries` after `prev_index`/`prev_term` (Raft §5.3). `round` is
    /// the leader's heartbeat round, echoed back for reads and leases.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        round: u64,
    },
    /// Answer to `Append` (and to `Snapshot`). Accepted: the follower's log
    /// matches the leader's through `index`. Rejected: `index` is the rejected
    /// `prev_index`, and `hint_index`/`hint_term` guess where the logs agree.
    AppendResp {
        accepted: bool,
        index: Index,
        hint_index: Index,
        hint_term: Term,
        round: u64,
    },
    /// Leadership and commit index (at most the follower's known match).
    Heartbeat {
        commit: Index,
        round: u64,
    },
    HeartbeatResp {
        round: u64,
    },
    /// Replace your log with this snapshot (Raft §7).
    Snapshot {
        snapshot: Snapshot,
        round: u64,
    },
    /// Start an election now, skipping pre-vote (leadership transfer, Raft thesis §3.10).
    TimeoutNow,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}→{} t{} ", self.from, self.to, self.term)?;
        match &self.body {
            Body::PreVote { last_index, last_term } => {
                write!(f, "PreVote last={last_index}@{last_term}")
            }
            Body::PreVoteResp { granted } => write!(f, "PreVoteResp granted={granted}"),
            Body::Vote { last_index, last_term, transfer } => {
                write!(f, "Vote last={last_index}@{last_term}")?;
                if *transfer {
                    write!(f, " transfer")?;
                }
                Ok(())
            }
            Body::VoteResp { granted } => write!(f, "VoteResp granted={granted}"),
            Body::Append { prev_index, prev_term, entries, commit, round } => {
                write!(f, "Append prev={prev_index}@{prev_term} commit={commit} round={round} [")?;
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, "]")
            }
            Body::AppendResp { accepted: true, index, round, .. } => {
                write!(f, "AppendResp ok index={index} round={round}")
            }
            Body::AppendResp { accepted: false, index, hint_index, hint_term, round } => write!(
                f,
                "AppendResp reject index={index} hint={hint_index}@{hint_term} round={round}"
            ),
            Body::Heartbeat { commit, round } => {
                write!(f, "Heartbeat commit={commit} round={round}")
            }
            Body::HeartbeatResp { round } => write!(f, "HeartbeatResp round={round}"),
            Body::Snapshot { snapshot, round } => write!(
                f,
                "Snapshot {}@{} config {} round={round}",
                snapshot.index, snapshot.term, snapshot.membership
            ),
            Body::TimeoutNow => write!(f, "TimeoutNow"),
        }
    }
}
