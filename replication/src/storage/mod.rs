//! The log store: where a node keeps its hard state, snapshot and log.
//!
//! The Raft core never touches it; the driver writes what each `Ready` asks
//! for through [`persist_ready`] and, on start, hands [`LogStore::load`]'s
//! result to `Raft::new`. Contract for implementations:
//!
//! - Writes may be buffered; `sync` makes every earlier write durable. After a
//!   crash the store holds everything synced and, of what was not, at most a
//!   prefix of the writes in the order they were made (never a later write
//!   without an earlier one).
//! - `append` replaces every stored entry at or after the first given index.
//! - A failed write or sync leaves the store in an unknown state: the node
//!   must stop and recover from `load` (as after a crash).
//!
//! [`MemStore`] is the simulator's disk: a store in memory that can crash,
//! keeping a random prefix of its unsynced writes. [`FileStore`] (in
//! [`file`](mod@file)) is the real one: checksummed, segmented, fsynced files,
//! and beside them the files of the current snapshot ([`snapshot_files`]).

pub mod file;
pub mod snapshot_files;

pub use file::{FileStore, FileStoreOptions};

use crate::error::Result;
use crate::raft::Ready;
use crate::rng::Rng;
use crate::types::{Entry, HardState, Index, Persisted, Snapshot};

/// Durable storage for one node's Raft state. See the module doc.
pub trait LogStore {
    /// Everything stored, as the node recovers it.
    fn load(&self) -> Result<Persisted>;
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<()>;
    /// Stores entries, replacing stored ones from `entries[0].index` on.
    fn append(&mut self, entries: &[Entry]) -> Result<()>;
    /// Stores a snapshot the node took, dropping the entries it covers.
    fn compact(&mut self, snapshot: &Snapshot) -> Result<()>;
    /// Stores a snapshot from the leader, dropping the whole log.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()>;
    fn sync(&mut self) -> Result<()>;
}

/// Step 1 of the driver's contract: write what `ready` asks, in an order that
/// keeps every crash-prefix consistent (snapshot before the entries after it,
/// entries before a commit index that covers them), then sync unless all it
/// changed is the commit index ([`Ready::must_sync`]).
pub fn persist_ready(store: &mut impl LogStore, ready: &Ready) -> Result<()> {
    if let Some(snapshot) = &ready.snapshot {
        store.install_snapshot(snapshot)?;
    }
    if let Some(snapshot) = &ready.compacted {
        store.compact(snapshot)?;
    }
    if !ready.entries.is_empty() {
        store.append(&ready.entries)?;
    }
    if let Some(hard_state) = ready.hard_state {
        store.set_hard_state(hard_state)?;
    }
    if ready.must_sync { store.sync() } else { Ok(()) }
}

#[derive(Clone, Debug)]
enum Write {
    HardState(HardState),
    Append(Vec<Entry>),
    Compact(Snapshot),
    Install(Snapshot),
}

/// A log store in memory that forgets unsynced writes when it "crashes".
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    /// What survives a crash.
    durable: Persisted,
    /// What the running node sees (durable plus unsynced writes).
    current: Persisted,
    unsynced: Vec<Write>,
    /// Total syncs, for statistics.
    pub syncs: u64,
}

impl MemStore {
    /// A store holding `initial`, durable.
    pub fn new(initial: Persisted) -> MemStore {
        MemStore { durable: initial.clone(), current: initial, unsynced: Vec::new(), syncs: 0 }
    }

    /// A crash: of the unsynced writes, a random prefix (chosen by `rng`)
    /// reaches the disk, the rest is lost.
    pub fn crash(&mut self, rng: &mut Rng) {
        let keep = rng.below(self.unsynced.len() as u64 + 1) as usize;
        for write in self.unsynced.drain(..).take(keep) {
            apply(&mut self.durable, write);
        }
        self.current = self.durable.clone();
    }

    /// What would survive a crash right now if no unsynced write made it.
    pub fn durable(&self) -> &Persisted {
        &self.durable
    }

    /// The durable term of `index`, if the durable log or snapshot covers it.
    pub fn durable_term(&self, index: Index) -> Option<u64> {
        let d = &self.durable;
        if index == d.snapshot.index {
            return Some(d.snapshot.term);
        }
        let first = d.snapshot.index + 1;
        if index < first {
            return None;
        }
        d.entries.get((index - first) as usize).map(|e| e.term)
    }
}

fn apply(state: &mut Persisted, write: Write) {
    match write {
        Write::HardState(hs) => state.hard_state = hs,
        Write::Append(entries) => {
            let Some(first) = entries.first() else { return };
            let base = state.snapshot.index + 1;
            assert!(first.index >= base, "append below the snapshot");
            let keep = ((first.index - base) as usize).min(state.entries.len());
            assert_eq!(keep as u64, first.index - base, "append leaves a gap");
            state.entries.truncate(keep);
            state.entries.extend(entries);
        }
        Write::Compact(snapshot) => {
            let drop = (snapshot.index - state.snapshot.index) as usize;
            state.entries.drain(..drop.min(state.entries.len()));
            state.snapshot = snapshot;
        }
        Write::Install(snapshot) => {
            state.entries.clear();
            state.snapshot = snapshot;
        }
    }
}

impl LogStore for MemStore {
    fn load(&self) -> Result<Persisted> {
        Ok(self.current.clone())
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<()> {
        self.write(Write::HardState(hard_state));
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.write(Write::Append(entries.to_vec()));
        Ok(())
    }

    fn compact(&mut self, snapshot: &Snapshot) -> Result<()> {
        assert!(snapshot.index > self.current.snapshot.index, "compaction goes backwards");
        self.write(Write::Compact(snapshot.clone()));
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.write(Write::Install(snapshot.clone()));
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.syncs += 1;
        for write in self.unsynced.drain(..) {
            apply(&mut self.durable, write);
        }
        Ok(())
    }
}

impl MemStore {
    fn write(&mut self, write: Write) {
        apply(&mut self.current, write.clone());
        self.unsynced.push(write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;

    fn e(index: Index, term: u64) -> Entry {
        Entry { index, term, payload: Payload::Empty }
    }

    #[test]
    fn crash_keeps_synced_writes_and_a_prefix_of_the_rest() {
        let mut store = MemStore::new(Persisted::bootstrap([1, 2, 3]));
        store.append(&[e(1, 1), e(2, 1)]).unwrap();
        store.set_hard_state(HardState { term: 1, vote: Some(1), commit: 2 }).unwrap();
        store.sync().unwrap();
        store.append(&[e(2, 2), e(3, 2)]).unwrap();
        assert_eq!(store.load().unwrap().entries, vec![e(1, 1), e(2, 2), e(3, 2)]);
        store.crash(&mut Rng::new(1));
        let after = store.load().unwrap();
        assert_eq!(after.hard_state.commit, 2);
        assert!(
            after.entries == vec![e(1, 1), e(2, 1)]
                || after.entries == vec![e(1, 1), e(2, 2), e(3, 2)]
        );
    }

    #[test]
    fn snapshots_replace_the_prefix_or_the_whole_log() {
        let mut store = MemStore::new(Persisted::default());
        store.append(&[e(1, 1), e(2, 1), e(3, 1)]).unwrap();
        store.compact(&Snapshot { index: 2, term: 1, ..Snapshot::default() }).unwrap();
        assert_eq!(store.load().unwrap().entries, vec![e(3, 1)]);
        store.install_snapshot(&Snapshot { index: 9, term: 3, ..Snapshot::default() }).unwrap();
        store.sync().unwrap();
        let p = store.load().unwrap();
        assert!(p.entries.is_empty());
        assert_eq!((p.snapshot.index, store.durable_term(9)), (9, Some(3)));
    }
}
