//! A simulated node: a Raft core with its driver, as a real node would run
//! it (persist, send, apply, answer), over a [`MemStore`] disk and the
//! [`Kv`] state machine. It reports what happened inside so the checker can
//! watch every step.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::message::Message;
use crate::raft::{Config, Raft};
use crate::rng::Rng;
use crate::sim::kv::{Command, Kv, payload_hash};
use crate::storage::{LogStore, MemStore, persist_ready};
use crate::types::{Index, NodeId, Persisted, Term};

/// What a client asks a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Append(Command),
    Read { key: u64 },
}

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The append committed and was applied at `index`.
    Appended { index: Index },
    /// The append was proposed but another entry took its index: it never commits.
    NotApplied,
    /// A linearizable read: the list, as of the state after applying `served_at`.
    Read { values: Vec<u64>, served_at: Index },
    /// Refused before doing anything (not the leader, no quorum yet, ...).
    Rejected { leader: Option<NodeId> },
}

/// An entry a node applied, for the checker.
#[derive(Clone, Debug)]
pub struct Applied {
    pub index: Index,
    pub term: Term,
    pub payload_hash: u64,
    /// The state machine's digest after applying it.
    pub digest: u64,
    pub command: Option<Command>,
}

/// What one round of driving a node did, for the simulator and checker.
#[derive(Debug, Default)]
pub struct Observed {
    /// Entries written to the store: `(index, term, payload hash, term of index - 1)`.
    pub persisted: Vec<(Index, Term, u64, Term)>,
    pub applied: Vec<Applied>,
    /// A snapshot installed from the leader: `(index, term, digest of its state)`.
    pub restored: Vec<(Index, Term, u64)>,
    pub messages: Vec<Message>,
    pub replies: Vec<(u64, Reply)>,
    /// Snapshots this node took.
    pub compactions: u64,
    /// The node crashed while persisting.
    pub crashed: bool,
}

#[derive(Clone, Copy, Debug)]
struct PendingRead {
    key: u64,
    index: Option<Index>,
}

/// One simulated node. While crashed, `raft` is `None` and only `store` survives.
#[derive(Debug)]
pub struct SimNode {
    pub id: NodeId,
    pub raft: Option<Raft>,
    pub store: MemStore,
    pub kv: Kv,
    /// True microseconds per tick of this node's (drifting) clock.
    pub tick_us: u64,
    /// Proposed appends by index: the term they were proposed in and the request.
    proposals: BTreeMap<Index, (Term, u64)>,
    reads: BTreeMap<u64, PendingRead>,
}

impl SimNode {
    /// A node whose disk holds `initial`, not yet started.
    pub fn new(id: NodeId, initial: Persisted, tick_us: u64) -> SimNode {
        SimNode {
            id,
            raft: None,
            store: MemStore::new(initial),
            kv: Kv::default(),
            tick_us,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
        }
    }

    /// Starts (or restarts) the node from its disk: recovery is the start-up path.
    pub fn start(&mut self, config: Config, seed: u64) -> Result<()> {
        let persisted = self.store.load()?;
        self.kv = Kv::restore(&persisted.snapshot.data)
            .ok_or_else(|| crate::Error::Corrupt("snapshot data".into()))?;
        self.raft = Some(Raft::new(config, persisted, seed)?);
        Ok(())
    }

    /// Kills the node: memory is lost, and so is a random part of what it did not sync.
    pub fn crash(&mut self, rng: &mut Rng) {
        self.raft = None;
        self.store.crash(rng);
        self.proposals.clear();
        self.reads.clear();
    }

    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// A client request. Returns the answer if it is immediate; otherwise it
    /// comes later in `Observed::replies`.
    pub fn request(&mut self, id: u64, request: Request) -> Option<Reply> {
        let Some(raft) = self.raft.as_mut() else { return Some(Reply::Rejected { leader: None }) };
        // Refused: name the leader if known (this node itself for a leader
        // that cannot serve yet).
        let me = raft.id();
        let rejected = |e: crate::Error| match e {
            crate::Error::NotLeader { leader } => Reply::Rejected { leader },
            _ => Reply::Rejected { leader: Some(me) },
        };
        match request {
            Request::Append(command) => match raft.propose(command.encode()) {
                Ok(index) => {
                    self.proposals.insert(index, (raft.term(), id));
                    None
                }
                Err(e) => Some(rejected(e)),
            },
            Request::Read { key } => match raft.read_index(id) {
                Ok(()) => {
                    self.reads.insert(id, PendingRead { key, index: None });
                    None
                }
                Err(e) => Some(rejected(e)),
            },
        }
    }

    /// Drives the node until it has nothing ready: persist, send, apply,
    /// answer, and snapshot every `snapshot_every` applied entries. With
    /// probability `crash_chance` per `Ready`, crashes between writing and syncing.
    pub fn drive(
        &mut self,
        rng: &mut Rng,
        crash_chance: f64,
        snapshot_every: u64,
        out: &mut Observed,
    ) {
        while let Some(raft) = self.raft.as_mut() {
            if !raft.has_ready() {
                break;
            }
            let ready = raft.ready();
            if crash_chance > 0.0 && rng.chance(crash_chance) {
                write_unsynced(&mut self.store, &ready);
                self.crash(rng);
                out.crashed = true;
                return;
            }
            persist_ready(&mut self.store, &ready).expect("the simulated disk does not fail");
            let mut prev_term =
                ready.entries.first().map(|e| raft.log_term(e.index - 1).unwrap_or(0));
            for e in &ready.entries {
                out.persisted.push((
                    e.index,
                    e.term,
                    payload_hash(&e.payload),
                    prev_term.unwrap_or(0),
                ));
                prev_term = Some(e.term);
            }
            out.messages.extend(ready.messages);
            if let Some(snapshot) = &ready.snapshot {
                self.kv = Kv::restore(&snapshot.data).unwrap_or_default();
                out.restored.push((snapshot.index, snapshot.term, self.kv.digest()));
                let index = snapshot.index;
                self.proposals.retain(|i, _| *i > index);
            }
            for entry in &ready.committed {
                let command = self.kv.apply(entry);
                out.applied.push(Applied {
                    index: entry.index,
                    term: entry.term,
                    payload_hash: payload_hash(&entry.payload),
                    digest: self.kv.digest(),
                    command,
                });
                if let Some((term, request)) = self.proposals.remove(&entry.index) {
                    let reply = if term == entry.term {
                        Reply::Appended { index: entry.index }
                    } else {
                        Reply::NotApplied
                    };
                    out.replies.push((request, reply));
                }
            }
            for read in ready.reads {
                match read.index {
                    Some(index) => {
                        if let Some(pending) = self.reads.get_mut(&read.id) {
                            pending.index = Some(index);
                        }
                    }
                    None => {
                        if self.reads.remove(&read.id).is_some() {
                            out.replies.push((read.id, Reply::Rejected { leader: None }));
                        }
                    }
                }
            }
            let applied = self.kv.applied();
            let ready_reads: Vec<u64> = self
                .reads
                .iter()
                .filter(|(_, r)| r.index.is_some_and(|i| i <= applied))
                .map(|(id, _)| *id)
                .collect();
            for id in ready_reads {
                let read = self.reads.remove(&id).expect("listed above");
                let values = self.kv.get(read.key);
                out.replies.push((id, Reply::Read { values, served_at: applied }));
            }
            let snapshot_index = raft.status().snapshot_index;
            if applied >= snapshot_index + snapshot_every {
                raft.compact(applied, self.kv.snapshot())
                    .expect("applied entries can be compacted");
                out.compactions += 1;
            }
        }
    }
}

/// Writes a `Ready` without syncing (a crash is about to happen).
fn write_unsynced(store: &mut MemStore, ready: &crate::raft::Ready) {
    if let Some(s) = &ready.snapshot {
        store.install_snapshot(s).expect("memory");
    }
    if let Some(s) = &ready.compacted {
        store.compact(s).expect("memory");
    }
    if !ready.entries.is_empty() {
        store.append(&ready.entries).expect("memory");
    }
    if let Some(hs) = ready.hard_state {
        store.set_hard_state(hs).expect("memory");
    }
}
