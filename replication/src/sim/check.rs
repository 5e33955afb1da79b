//! The simulator's checker: Raft's safety properties (Raft §5.2–§5.4,
//! Figure 3) after every step, and linearizability of the client history.
//!
//! - **Election safety**: at most one leader per term.
//! - **Log matching**: entries with the same index and term carry the same
//!   payload and follow an entry of the same term, so (by induction) the logs
//!   are identical up to them. Checked on every entry a node persists.
//! - **Leader completeness**: a node that becomes leader holds every entry
//!   any node has applied (applied implies committed).
//! - **State machine safety**: every node applies the same entry at each
//!   index, and reaches the same state digest; an installed snapshot carries
//!   the digest of the same prefix.
//! - **Durability**: when an entry is first applied, a majority of the nodes
//!   hold it (or a snapshot covering it) on their *synced* disks, so no set of
//!   crashes that keeps a majority's disks can lose it. This is the check
//!   that "persisted before acknowledged" holds.
//! - **Linearizable history**: the log order is the linearization of the
//!   appends, and a read served at index `s` is linearized at `s`. So: every
//!   acknowledged append is in the log at its reported index; appends reported
//!   as not applied are not in it; if one append completed before another
//!   began, it has the lower index; a read returns exactly the appends at or
//!   below `s`, every append that completed before the read began is at or
//!   below `s`, and every append that began after the read completed is above
//!   `s`. Lease reads are checked by exactly this.

use std::collections::{BTreeMap, HashMap};

use crate::sim::kv::Command;
use crate::sim::node::Applied;
use crate::storage::MemStore;
use crate::types::{Index, NodeId, Term};

/// A broken property, naming the nodes and indexes involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("election safety: nodes {first} and {second} both led term {term}")]
    TwoLeaders { term: Term, first: NodeId, second: NodeId },
    #[error(
        "log matching: node {node} persisted {index}@{term} unlike another node's {index}@{term}"
    )]
    LogMatching { node: NodeId, index: Index, term: Term },
    #[error("leader completeness: node {node} leads term {term} without committed entry {index}")]
    LeaderCompleteness { node: NodeId, term: Term, index: Index },
    #[error("state machine safety: node {node} applied {index}@{term} unlike another node")]
    StateMachine { node: NodeId, index: Index, term: Term },
    #[error(
        "durability: entry {index} was applied while on {copies} synced disks, quorum {quorum}"
    )]
    NotDurable { index: Index, copies: usize, quorum: usize },
    #[error("linearizability: {0}")]
    History(String),
    #[error("node {node} dropped {count} messages no correct peer sends")]
    Protocol { node: NodeId, count: u64 },
    #[error("liveness after healing: {0}")]
    Liveness(String),
    /// Transactions mode: the history checker found anomalies.
    #[error("transactions: {0}")]
    Transactions(String),
}

/// An operation as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryOp {
    pub client: u64,
    pub kind: OpKind,
    /// True time (µs) the client sent it.
    pub invoked: u64,
    /// True time it got its answer (`None`: never, the outcome is unknown).
    pub completed: Option<u64>,
    pub result: OpResult,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Append { key: u64, value: u64 },
    Read { key: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// No answer (timed out, node crashed).
    Unknown,
    /// Definitely had no effect.
    Failed,
    Appended {
        index: Index,
    },
    Read {
        values: Vec<u64>,
        served_at: Index,
    },
}

#[derive(Clone, Debug)]
struct Committed {
    term: Term,
    payload_hash: u64,
    digest: u64,
    command: Option<Command>,
}

/// Watches a simulated replica set. See the module doc.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: BTreeMap<Term, NodeId>,
    /// `(index, term)` → (payload hash, term of the entry before).
    entries: HashMap<(Index, Term), (u64, Term)>,
    /// The committed log as applied, from index 1.
    committed: Vec<Committed>,
    /// The committed appends by key: (index, value), in log order.
    by_key: HashMap<u64, Vec<(Index, u64)>>,
    /// Snapshot digests by index (snapshots may be installed past what this
    /// checker saw applied, in principle).
    snapshot_digests: HashMap<Index, u64>,
    /// Acknowledged appends in completion order: (completion time, index), and
    /// the running maximum of the index.
    acked: Vec<(u64, Index, Index)>,
}

impl Checker {
    /// The highest index any node applied.
    pub fn max_committed(&self) -> Index {
        self.committed.len() as Index
    }

    pub fn leader(&mut self, node: NodeId, term: Term) -> Result<(), Violation> {
        let first = *self.leaders.entry(term).or_insert(node);
        if first != node {
            return Err(Violation::TwoLeaders { term, first, second: node });
        }
        Ok(())
    }

    pub fn persisted(
        &mut self,
        node: NodeId,
        (index, term, hash, prev_term): (Index, Term, u64, Term),
    ) -> Result<(), Violation> {
        let known = *self.entries.entry((index, term)).or_insert((hash, prev_term));
        if known != (hash, prev_term) {
            return Err(Violation::LogMatching { node, index, term });
        }
        Ok(())
    }

    /// A node just became leader: it must hold every committed entry after
    /// its snapshot (`log_term` gives the term of its entries).
    pub fn new_leader(
        &self,
        node: NodeId,
        term: Term,
        snapshot_index: Index,
        log_term: impl Fn(Index) -> Option<Term>,
    ) -> Result<(), Violation> {
        for index in snapshot_index.max(1)..=self.max_committed() {
            if log_term(index) != Some(self.committed[index as usize - 1].term) {
                return Err(Violation::LeaderCompleteness { node, term, index });
            }
        }
        Ok(())
    }

    /// A node applied an entry. On its first application anywhere, checks
    /// that a majority of `disks` hold it synced.
    pub fn applied(
        &mut self,
        node: NodeId,
        a: &Applied,
        disks: &[&MemStore],
        quorum: usize,
    ) -> Result<(), Violation> {
        let i = a.index as usize;
        if i <= self.committed.len() {
            let c = &self.committed[i - 1];
            if (c.term, c.payload_hash, c.digest) != (a.term, a.payload_hash, a.digest) {
                return Err(Violation::StateMachine { node, index: a.index, term: a.term });
            }
            return Ok(());
        }
        assert_eq!(i, self.committed.len() + 1, "a node applied beyond every other's commit");
        let copies = disks
            .iter()
            .filter(|d| {
                d.durable_term(a.index) == Some(a.term) || d.durable().snapshot.index >= a.index
            })
            .count();
        if copies < quorum {
            return Err(Violation::NotDurable { index: a.index, copies, quorum });
        }
        if let Some(cmd) = a.command {
            self.by_key.entry(cmd.key).or_default().push((a.index, cmd.value));
        }
        self.committed.push(Committed {
            term: a.term,
            payload_hash: a.payload_hash,
            digest: a.digest,
            command: a.command,
        });
        Ok(())
    }

    /// A node installed a snapshot at `index` whose state has `digest`.
    pub fn restored(
        &mut self,
        node: NodeId,
        index: Index,
        term: Term,
        digest: u64,
    ) -> Result<(), Violation> {
        let applied = index.checked_sub(1).and_then(|i| self.committed.get(i as usize));
        if applied.is_some_and(|c| (c.term, c.digest) != (term, digest)) {
            return Err(Violation::StateMachine { node, index, term });
        }
        let known = *self.snapshot_digests.entry(index).or_insert(digest);
        if known != digest {
            return Err(Violation::StateMachine { node, index, term });
        }
        Ok(())
    }

    /// An append was acknowledged at `time`.
    pub fn acked(&mut self, time: u64, index: Index) {
        let max = self.acked.last().map_or(index, |(_, _, m)| index.max(*m));
        self.acked.push((time, index, max));
    }

    /// The largest index of appends acknowledged strictly before `time`.
    fn max_acked_before(&self, time: u64) -> Index {
        let n = self.acked.partition_point(|(t, _, _)| *t < time);
        if n == 0 { 0 } else { self.acked[n - 1].2 }
    }

    /// The values at `key` in the committed log through `index`.
    fn values_at(&self, key: u64, index: Index) -> Vec<u64> {
        let Some(appends) = self.by_key.get(&key) else { return Vec::new() };
        let n = appends.partition_point(|(i, _)| *i <= index);
        appends[..n].iter().map(|(_, v)| *v).collect()
    }

    /// Checks a read as it completes: it saw the committed state at
    /// `served_at`, which includes every append acknowledged before it began.
    pub fn read(&self, op: &HistoryOp) -> Result<(), Violation> {
        let (OpKind::Read { key }, OpResult::Read { values, served_at }) = (&op.kind, &op.result)
        else {
            return Ok(());
        };
        if *served_at > self.max_committed() {
            return Err(Violation::History(format!(
                "read served at {served_at}, beyond every apply"
            )));
        }
        let want = self.values_at(*key, *served_at);
        if &want != values {
            return Err(Violation::History(format!(
                "read of key {key} at {served_at} returned {values:?}, the log has {want:?}"
            )));
        }
        let before = self.max_acked_before(op.invoked);
        if before > *served_at {
            return Err(Violation::History(format!(
                "stale read of key {key} at {served_at} invoked at {}us: append at {before} was \
                 acknowledged before it began",
                op.invoked
            )));
        }
        Ok(())
    }

    /// Checks the whole history against the committed log (see the module doc).
    pub fn history(&self, ops: &[HistoryOp]) -> Result<(), Violation> {
        let mut index_of: HashMap<u64, Index> = HashMap::new();
        for (i, c) in self.committed.iter().enumerate() {
            if let Some(cmd) = c.command
                && index_of.insert(cmd.value, i as Index + 1).is_some()
            {
                return Err(Violation::History(format!("value {} appended twice", cmd.value)));
            }
        }
        // Appends that committed, by invocation time, with the suffix minimum of their index.
        let mut by_invocation: Vec<(u64, Index)> = Vec::new();
        for op in ops {
            let OpKind::Append { key, value } = op.kind else { continue };
            let at = index_of.get(&value).copied();
            match (&op.result, at) {
                (OpResult::Appended { index }, Some(at)) if *index == at => {}
                (OpResult::Appended { index }, _) => {
                    return Err(Violation::History(format!(
                        "append {value} to key {key} acknowledged at {index}, log has it at {at:?}"
                    )));
                }
                (OpResult::Failed, Some(at)) => {
                    return Err(Violation::History(format!(
                        "append {value} reported as failed but committed at {at}"
                    )));
                }
                _ => {}
            }
            if let Some(at) = at {
                by_invocation.push((op.invoked, at));
                let before = self.max_acked_before(op.invoked);
                if before >= at {
                    return Err(Violation::History(format!(
                        "append at {at} ordered before an append at {before} that completed \
                         before it began"
                    )));
                }
            }
        }
        by_invocation.sort_unstable();
        let mut suffix_min = vec![Index::MAX; by_invocation.len() + 1];
        for i in (0..by_invocation.len()).rev() {
            suffix_min[i] = suffix_min[i + 1].min(by_invocation[i].1);
        }
        for op in ops {
            let (OpResult::Read { served_at, .. }, Some(done)) = (&op.result, op.completed) else {
                continue;
            };
            self.read(op)?;
            let later = by_invocation.partition_point(|(t, _)| *t <= done);
            if suffix_min[later] <= *served_at {
                return Err(Violation::History(format!(
                    "read served at {served_at} (done at {done}us) saw the append at {} that began \
                     after it",
                    suffix_min[later]
                )));
            }
        }
        Ok(())
    }
}
