//! A simulated node: a Raft core with its driver, as a real node would run
//! it (persist, send, apply, answer), over a [`MemStore`] disk and the
//! [`Kv`] state machine. It reports what happened inside so the checker can
//! watch every step.
//!
//! Every node also runs the replicated shard's pieces exactly as
//! `ReplicatedShard` does: a [`ShardMachine`] over [`MemVersions`] applies
//! every committed shard command (the `Kv` only digests those entries), and
//! a leader answers a transaction's snapshot and commit after a read-index
//! (or lease) round, validating with a [`Sequencer`]. Snapshots carry both
//! states.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::message::Message;
use crate::raft::{Config, Raft};
use crate::rng::Rng;
use crate::shard::{
    Answer, CommandId, MemVersions, Sequencer, ShardCommand, ShardMachine, Versions,
};
use crate::sim::kv::{Command, Kv, payload_hash};
use crate::storage::{LogStore, MemStore, persist_ready};
use crate::types::{Index, NodeId, Payload, Persisted, Term};
use strata_txn::{CommitRequest, Timestamp};

/// What a client asks a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Append(Command),
    Read {
        key: u64,
    },
    /// A transaction's snapshot: the newest applied commit timestamp and the
    /// lists of keys `0..keys` at it (list-append values, 8 bytes each).
    Snapshot {
        keys: u64,
    },
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
    /// A transaction snapshot (see [`Request::Snapshot`]).
    Snapshot { ts: Timestamp, lists: Vec<Vec<u64>> },
    /// The transaction committed (now or, for a retry, earlier) at `ts`.
    TxnCommitted { ts: Timestamp },
    /// The transaction will never commit (validation failed, or its
    /// proposal lost its index, or the log refused its timestamp).
    TxnAborted,
    /// A commit with the same id is in flight here: the outcome is not known yet.
    TxnInFlight,
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

#[derive(Clone, Debug)]
enum ReadKind {
    Kv { key: u64 },
    Snapshot { keys: u64 },
    Commit { id: CommandId, request: CommitRequest },
}

#[derive(Clone, Debug)]
struct PendingRead {
    kind: ReadKind,
    index: Option<Index>,
}

/// A proposal waiting for its index to apply.
#[derive(Clone, Copy, Debug)]
struct Proposal {
    term: Term,
    request: u64,
    /// A transaction's commit timestamp (in the sequencer until answered).
    commit_ts: Option<Timestamp>,
}

/// One simulated node. While crashed, `raft` is `None` and only `store` survives.
#[derive(Debug)]
pub struct SimNode {
    pub id: NodeId,
    pub raft: Option<Raft>,
    pub store: MemStore,
    pub kv: Kv,
    /// The replicated shard's state (see the module doc).
    pub shard: ShardMachine<MemVersions>,
    /// The leader's validation state; lost on a crash.
    sequencer: Sequencer,
    /// True microseconds per tick of this node's (drifting) clock.
    pub tick_us: u64,
    /// Proposals by index.
    proposals: BTreeMap<Index, Proposal>,
    reads: BTreeMap<u64, PendingRead>,
}

/// Snapshot data: the `Kv`'s, length-prefixed, then the shard's.
fn snapshot_data(kv: &Kv, shard: &ShardMachine<MemVersions>) -> Vec<u8> {
    let kv = kv.snapshot();
    let mut out = (kv.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&kv);
    out.extend_from_slice(&shard.snapshot().expect("memory does not fail"));
    out
}

/// The states in snapshot data (empty: the initial states), or `None` if malformed.
fn restore_data(data: &[u8]) -> Option<(Kv, ShardMachine<MemVersions>)> {
    let mut shard = ShardMachine::new(MemVersions::default());
    if data.is_empty() {
        return Some((Kv::default(), shard));
    }
    let len = usize::try_from(u64::from_le_bytes(data.get(..8)?.try_into().ok()?)).ok()?;
    let kv = Kv::restore(data.get(8..8usize.checked_add(len)?)?)?;
    shard.restore(&data[8 + len..]).ok()?;
    Some((kv, shard))
}

/// Decodes a list-append value.
pub fn decode_list(value: Option<Vec<u8>>) -> Vec<u64> {
    value
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

impl SimNode {
    /// A node whose disk holds `initial`, not yet started.
    pub fn new(id: NodeId, initial: Persisted, tick_us: u64) -> SimNode {
        SimNode {
            id,
            raft: None,
            store: MemStore::new(initial),
            kv: Kv::default(),
            shard: ShardMachine::new(MemVersions::default()),
            sequencer: Sequencer::default(),
            tick_us,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
        }
    }

    /// Starts (or restarts) the node from its disk: recovery is the start-up path.
    pub fn start(&mut self, config: Config, seed: u64) -> Result<()> {
        let persisted = self.store.load()?;
        (self.kv, self.shard) = restore_data(&persisted.snapshot.data)
            .ok_or_else(|| crate::Error::Corrupt("snapshot data".into()))?;
        self.sequencer = Sequencer::default();
        self.raft = Some(Raft::new(config, persisted, seed)?);
        Ok(())
    }

    /// Kills the node: memory is lost, and so is a random part of what it did not sync.
    pub fn crash(&mut self, rng: &mut Rng) {
        self.raft = None;
        self.store.crash(rng);
        self.proposals.clear();
        self.reads.clear();
        self.sequencer = Sequencer::default();
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
                    let proposal = Proposal { term: raft.term(), request: id, commit_ts: None };
                    self.proposals.insert(index, proposal);
                    None
                }
                Err(e) => Some(rejected(e)),
            },
            Request::Read { key } => self.read(id, ReadKind::Kv { key }),
            Request::Snapshot { keys } => self.read(id, ReadKind::Snapshot { keys }),
        }
    }

    /// A transaction's commit, as `ReplicatedShard::commit_with_id` does it:
    /// a read-index round first, then (once applied) dedup, validation and
    /// the proposal.
    pub fn commit(&mut self, id: u64, command: CommandId, request: CommitRequest) -> Option<Reply> {
        self.read(id, ReadKind::Commit { id: command, request })
    }

    fn read(&mut self, id: u64, kind: ReadKind) -> Option<Reply> {
        let Some(raft) = self.raft.as_mut() else { return Some(Reply::Rejected { leader: None }) };
        let me = raft.id();
        match raft.read_index(id) {
            Ok(()) => {
                self.reads.insert(id, PendingRead { kind, index: None });
                None
            }
            Err(crate::Error::NotLeader { leader }) => Some(Reply::Rejected { leader }),
            Err(_) => Some(Reply::Rejected { leader: Some(me) }),
        }
    }

    /// Serves a read whose index is applied.
    fn serve(&mut self, id: u64, kind: ReadKind, served_at: Index) -> Option<Reply> {
        match kind {
            ReadKind::Kv { key } => Some(Reply::Read { values: self.kv.get(key), served_at }),
            ReadKind::Snapshot { keys } => {
                let ts = self.shard.last_ts();
                let versions = self.shard.versions();
                let lists = (0..keys)
                    .map(|k| {
                        decode_list(versions.get(&k.to_le_bytes(), ts).expect("at the applied ts"))
                    })
                    .collect();
                Some(Reply::Snapshot { ts, lists })
            }
            ReadKind::Commit { id: command, request } => {
                if let Some(answer) = self.shard.outcome(command) {
                    return Some(match answer {
                        Answer::Committed(ts) => Reply::TxnCommitted { ts },
                        _ => Reply::TxnAborted,
                    });
                }
                if self.sequencer.is_in_flight(command) {
                    return Some(Reply::TxnInFlight);
                }
                let versions = self.shard.versions();
                let ts = match self.sequencer.validate_and_assign(
                    command,
                    &request,
                    versions,
                    self.shard.last_ts(),
                    0,
                ) {
                    Ok(ts) => ts,
                    Err(_) => return Some(Reply::TxnAborted),
                };
                let raft = self.raft.as_mut().expect("serving reads while up");
                let bytes = ShardCommand {
                    id: command,
                    start_ts: request.start_ts,
                    commit_ts: ts,
                    writes: request.writes,
                }
                .encode();
                match raft.propose(bytes) {
                    Ok(index) => {
                        let proposal =
                            Proposal { term: raft.term(), request: id, commit_ts: Some(ts) };
                        // An earlier proposal at this index lost it: never commits.
                        let replaced = self.proposals.insert(index, proposal);
                        if let Some(t) = replaced.and_then(|old| old.commit_ts) {
                            self.sequencer.finish(t);
                        }
                        None
                    }
                    Err(e) => {
                        self.sequencer.finish(ts);
                        Some(match e {
                            crate::Error::NotLeader { leader } => Reply::Rejected { leader },
                            _ => Reply::Rejected { leader: None },
                        })
                    }
                }
            }
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
            // The driver's relaxations (`raft`'s module doc), as the real
            // node takes them, so the checker sees them: a leader's appends
            // leave before its disk write, and entries committed before this
            // `Ready` are applied before it (unless it installs a snapshot).
            out.messages.extend(ready.messages[..ready.early_messages].iter().cloned());
            let apply_first = ready.snapshot.is_none();
            if apply_first {
                self.apply(&ready, out);
            }
            if crash_chance > 0.0 && rng.chance(crash_chance) {
                write_unsynced(&mut self.store, &ready);
                self.crash(rng);
                out.crashed = true;
                return;
            }
            persist_ready(&mut self.store, &ready).expect("the simulated disk does not fail");
            let raft = self.raft.as_mut().expect("up");
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
            out.messages.extend(ready.messages[ready.early_messages..].iter().cloned());
            if !apply_first {
                self.apply(&ready, out);
            }
            let applied = self.kv.applied();
            let raft = self.raft.as_mut().expect("up");
            let snapshot_index = raft.status().snapshot_index;
            if applied >= snapshot_index + snapshot_every {
                raft.compact(applied, snapshot_data(&self.kv, &self.shard))
                    .expect("applied entries can be compacted");
                out.compactions += 1;
            }
        }
    }

    /// Restores `ready`'s snapshot, applies its committed entries (answering
    /// their proposals) and serves the reads whose index is applied.
    fn apply(&mut self, ready: &crate::raft::Ready, out: &mut Observed) {
        if let Some(snapshot) = &ready.snapshot {
            let (kv, shard) = restore_data(&snapshot.data)
                .expect("snapshots come from correct peers in the simulation");
            (self.kv, self.shard) = (kv, shard);
            out.restored.push((snapshot.index, snapshot.term, self.kv.digest()));
            let index = snapshot.index;
            let later = self.proposals.split_off(&(index + 1));
            // Their outcome is unknown: the clients time out.
            for p in std::mem::replace(&mut self.proposals, later).into_values() {
                if let Some(ts) = p.commit_ts {
                    self.sequencer.finish(ts);
                }
            }
        }
        for entry in &ready.committed {
            let command = self.kv.apply(entry);
            let answer = match &entry.payload {
                Payload::Command(bytes) if ShardCommand::is_shard_command(bytes) => {
                    Some(self.shard.apply(entry.index, bytes).expect("memory does not fail"))
                }
                _ => None,
            };
            out.applied.push(Applied {
                index: entry.index,
                term: entry.term,
                payload_hash: payload_hash(&entry.payload),
                digest: self.kv.digest(),
                command,
            });
            if let Some(p) = self.proposals.remove(&entry.index) {
                let reply = match (p.commit_ts, answer) {
                    (Some(ts), answer) => {
                        self.sequencer.finish(ts);
                        match answer {
                            Some(Answer::Committed(t)) if p.term == entry.term => {
                                Reply::TxnCommitted { ts: t }
                            }
                            _ if p.term == entry.term => Reply::TxnAborted,
                            // Another leader's entry took the index: ours never commits.
                            _ => Reply::TxnAborted,
                        }
                    }
                    (None, _) if p.term == entry.term => Reply::Appended { index: entry.index },
                    (None, _) => Reply::NotApplied,
                };
                out.replies.push((p.request, reply));
            }
        }
        for read in &ready.reads {
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
            if let Some(reply) = self.serve(id, read.kind, applied) {
                out.replies.push((id, reply));
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
