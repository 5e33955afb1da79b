//! The nouns of the Raft core: log entries, membership, hard state, snapshots.

use std::collections::BTreeSet;
use std::fmt;

/// A node's identifier, unique within a replica set (never 0 in practice).
pub type NodeId = u64;
/// A Raft term (Raft §5.1): grows monotonically; at most one leader per term.
pub type Term = u64;
/// A position in the replicated log, starting at 1; 0 is the empty log.
pub type Index = u64;

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Appended by every new leader so it can commit something of its own term
    /// (Raft §8: needed before reads and configuration changes).
    Empty,
    /// An opaque command for the application's state machine.
    Command(Vec<u8>),
    /// The whole new membership; takes effect as soon as it is in a log.
    Membership(Membership),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub index: Index,
    pub term: Term,
    pub payload: Payload,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.index, self.term)?;
        match &self.payload {
            Payload::Empty => Ok(()),
            Payload::Command(c) => write!(f, " {}", String::from_utf8_lossy(c)),
            Payload::Membership(m) => write!(f, " config {m}"),
        }
    }
}

/// The voters of a replica set. Changes go one voter at a time (see the crate doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
}

impl Membership {
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership { voters: voters.into_iter().collect() }
    }

    /// How many voters make a majority (Raft §5.2).
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// The membership after `change`, or why the change is not allowed.
    pub fn apply(&self, change: ConfChange) -> Result<Membership, crate::Error> {
        let mut next = self.clone();
        match change {
            ConfChange::AddVoter(id) if !next.voters.insert(id) => {
                Err(crate::Error::InvalidConfChange(change))
            }
            ConfChange::RemoveVoter(id) if !next.voters.remove(&id) || next.voters.is_empty() => {
                Err(crate::Error::InvalidConfChange(change))
            }
            _ => Ok(next),
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.voters.iter().map(|id| id.to_string()).collect();
        write!(f, "{{{}}}", ids.join(","))
    }
}

/// A single-voter membership change (Raft thesis §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChange {
    AddVoter(NodeId),
    RemoveVoter(NodeId),
}

/// What must survive a crash besides the log (Raft Figure 2, "persistent
/// state"), plus the commit index so a restart re-applies without waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// The application's state at `index`, replacing the log up to it (Raft §7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    /// The membership in force at `index`.
    pub membership: Membership,
    /// Opaque to Raft: the application's serialized state machine, or
    /// (with `files`) the small part of it that is not in the files.
    pub data: Vec<u8>,
    /// Files that hold the rest of the state (an engine checkpoint), by
    /// name, size and checksum. Raft carries only this list; the node keeps
    /// the files beside its log store and a follower fetches them in chunks
    /// before it steps the snapshot (`crate::node`). Empty in the simulator.
    pub files: Vec<SnapshotFile>,
}

/// One file of a snapshot (see [`Snapshot::files`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotFile {
    /// A plain file name (no directory part), unique within the snapshot.
    pub name: String,
    pub size: u64,
    /// CRC32C of the whole file.
    pub crc32c: u32,
}

impl SnapshotFile {
    /// Whether `name` may name a snapshot file: one plain component of
    /// safe characters, so a peer's list can never reach outside the
    /// snapshot's directory.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 255
            && name != "."
            && name != ".."
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    }
}

/// Everything a node recovers from its log store on start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    pub hard_state: HardState,
    /// The latest snapshot (index 0 and no data for a log that was never compacted).
    pub snapshot: Snapshot,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl Persisted {
    /// The state of a founding member of a new replica set: an empty log whose
    /// base (index 0) carries the initial membership. A node that joins later
    /// starts from `Persisted::default()` (no membership) and learns it from
    /// the leader.
    pub fn bootstrap(voters: impl IntoIterator<Item = NodeId>) -> Persisted {
        Persisted {
            snapshot: Snapshot { membership: Membership::new(voters), ..Snapshot::default() },
            ..Persisted::default()
        }
    }
}

/// The value a majority of `values` is at or above: the largest `v` such that
/// more than half of the values are `>= v`. Used for the commit index (Raft
/// §5.3) and for acknowledged heartbeat rounds (reads and leases).
pub fn quorum_value(values: &mut [u64]) -> u64 {
    assert!(!values.is_empty(), "quorum of nobody");
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_value_table() {
        for (values, want) in [
            (vec![5], 5),
            (vec![5, 1], 1),
            (vec![5, 3, 1], 3),
            (vec![1, 3, 5], 3),
            (vec![7, 7, 0, 0], 0),
            (vec![9, 8, 2, 1, 0], 2),
            (vec![4, 4, 4, 4, 4], 4),
        ] {
            let mut v = values.clone();
            assert_eq!(quorum_value(&mut v), want, "{values:?}");
        }
    }

    #[test]
    fn quorum_sizes_and_one_at_a_time_changes() {
        assert_eq!(Membership::new([1]).quorum(), 1);
        assert_eq!(Membership::new([1, 2]).quorum(), 2);
        assert_eq!(Membership::new([1, 2, 3]).quorum(), 2);
        assert_eq!(Membership::new([1, 2, 3, 4]).quorum(), 3);
        let m = Membership::new([1, 2, 3]);
        assert_eq!(m.apply(ConfChange::AddVoter(4)).unwrap(), Membership::new([1, 2, 3, 4]));
        assert_eq!(m.apply(ConfChange::RemoveVoter(2)).unwrap(), Membership::new([1, 3]));
        assert!(m.apply(ConfChange::AddVoter(3)).is_err());
        assert!(m.apply(ConfChange::RemoveVoter(9)).is_err());
        assert!(Membership::new([1]).apply(ConfChange::RemoveVoter(1)).is_err());
    }
}
