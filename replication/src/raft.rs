//! The Raft core: a pure state machine driven by `tick`, `step` and
//! `propose`, whose outputs the caller drains with `ready`.
//!
//! # The driver's contract
//!
//! ```text
//! loop {
//!     feed inputs:  raft.tick() every tick interval of the node's clock,
//!                   raft.step(msg) for each message received,
//!                   raft.propose(cmd) / read_index(id) / ... for clients
//!     while raft.has_ready() {
//!         let rd = raft.ready();
//!         1. persist: rd.snapshot (install), rd.compacted, rd.entries
//!            (overwriting any stored suffix from rd.entries[0].index),
//!            rd.hard_state; then sync if rd.must_sync. -- storage::persist_ready
//!         2. send rd.messages (only now: they may acknowledge what step 1 wrote)
//!         3. restore the state machine from rd.snapshot, then apply
//!            rd.committed in order
//!         4. answer rd.reads once the state machine has applied their index
//!     }
//! }
//! ```
//!
//! Two relaxations a driver may take for speed (the node and the simulator
//! do; the scripted tests keep the plain order):
//!
//! - **The leader sends before it syncs** (Raft thesis §10.2.1): the first
//!   `rd.early_messages` of `rd.messages` are a leader's `Append`s and
//!   `Heartbeat`s, which promise nothing about its own disk, and may be sent
//!   before step 1, so the followers' fsyncs overlap the leader's. The
//!   leader still counts itself towards a quorum only for entries it handed
//!   out for persistence, and a commit index that counts them leaves only
//!   in a later message or `Ready`, after the driver synced them.
//! - **Committed entries do not wait for this `Ready`'s writes**:
//!   `rd.committed` holds only entries whose commit a majority's *synced*
//!   logs justify (the commit index as it stood before this `Ready` handed
//!   out new entries), so without a snapshot to install (`rd.snapshot` is
//!   `None`) the driver may apply them, and answer reads, before step 1.
//!   A node that crashes then has applied entries it may not hold on disk;
//!   they are committed, so it gets them back from the leader, and a state
//!   machine rebuilt from the log (as the replicated shard's is) never
//!   runs ahead of it.
//!
//! `ready` assumes the caller does all of this before calling into the core
//! again; if persisting fails the node must stop (its durability is unknown)
//! and restart from what its store holds. That is what makes "persisted
//! before acknowledged" hold: a vote or an `AppendResp` leaves the node only
//! after the state it promises is on disk, and the leader counts its own log
//! towards a quorum only up to what it persisted.
//!
//! # Invariants
//!
//! - At most one leader per term: a node votes once per term (the vote is
//!   persisted before the `VoteResp` is sent) and a leader needs a majority.
//! - Only entries of the current term commit by counting replicas (Raft
//!   §5.4.2); earlier ones commit with them.
//! - A node ignores vote requests while it believes a leader is alive
//!   (`election_ticks` since it last heard from one, or while it is the
//!   leader), unless the request comes from a leadership transfer. This is
//!   what check-quorum and pre-vote rely on to keep a partitioned node from
//!   disrupting a healthy leader (Raft thesis §4.2.3), and what leases rely on.
//!
//! # Leases
//!
//! A leader stamps every `Append`/`Heartbeat` with its current *round*; a
//! round starts when the leader broadcasts a heartbeat, at a known tick of its
//! own clock. When a majority (the leader included) has acknowledged round
//! `r`, each of them received a message of this leader at or after the start
//! of `r`, and will refuse to vote for anyone else for `election_ticks` of its
//! own clock after that. So no other leader can be elected before that
//! long has passed, and the leader may serve reads from its own state until
//! `start(r) + lease_ticks` on its clock, where
//!
//! ```text
//! lease_ticks = election_ticks - 1 - lease_drift_ticks
//! ```
//!
//! The `1` accounts for a follower's first tick coming arbitrarily soon after
//! it heard from the leader; `lease_drift_ticks` bounds how far apart two
//! clocks may drift over an election timeout. With clock rates within a
//! factor `1 ± ρ` of true time, safety needs
//! `lease_ticks * (1 + ρ) <= (election_ticks - 1) * (1 - ρ)`. Safety depends
//! on that drift bound only, never on clocks being right. The lease also needs
//! the leader to have committed an entry of its term (so its commit index
//! covers everything acknowledged before), and is given up for the rest of the
//! term once a leadership transfer starts (transfer votes ignore the rule
//! above). Without a lease, reads take a read-index round (Raft thesis
//! §6.4): note the commit index, start a new round, and serve once a majority
//! acknowledged it and the state machine caught up with the noted index.

use std::collections::{BTreeMap, VecDeque};

use crate::error::{Error, Result};
use crate::log::RaftLog;
use crate::message::{Body, Message};
use crate::progress::{Progress, ProgressState};
use crate::rng::Rng;
use crate::types::{
    ConfChange, Entry, HardState, Index, Membership, NodeId, Payload, Persisted, Snapshot,
    SnapshotFile, Term, quorum_value,
};

/// Tunables of one node. Times are in ticks of the node's own clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    /// Minimum election timeout; each timeout is drawn from
    /// `election_ticks..2 * election_ticks`.
    pub election_ticks: u64,
    /// A leader broadcasts a heartbeat (and starts a new round) this often.
    pub heartbeat_ticks: u64,
    /// Most entries in one `Append` (batching).
    pub max_append_entries: usize,
    /// Most entries sent to one follower and not yet acknowledged (pipelining bound).
    pub max_inflight_entries: u64,
    /// Ask for votes without raising the term first (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a majority for an
    /// election timeout; followers ignore vote requests while they hear from a
    /// leader (Raft thesis §6.2, §4.2.3).
    pub check_quorum: bool,
    /// `Some(d)`: serve reads under a lease, assuming clocks drift apart by at
    /// most `d` ticks over an election timeout (see the module doc).
    /// `None`: every read takes a read-index round. Needs `check_quorum`.
    pub lease_drift_ticks: Option<u64>,
}

impl Config {
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_append_entries: 64,
            max_inflight_entries: 256,
            pre_vote: true,
            check_quorum: true,
            lease_drift_ticks: Some(2),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(Error::Config("need 0 < heartbeat_ticks < election_ticks"));
        }
        if self.max_append_entries == 0 || self.max_inflight_entries == 0 {
            return Err(Error::Config("batch and in-flight bounds must be positive"));
        }
        if let Some(drift) = self.lease_drift_ticks {
            if !self.check_quorum {
                return Err(Error::Config("leases need check_quorum"));
            }
            if drift + 1 >= self.election_ticks {
                return Err(Error::Config("lease_drift_ticks leaves no lease"));
            }
        }
        Ok(())
    }

    /// How long a lease lasts after the start of the round that established it.
    pub fn lease_ticks(&self) -> Option<u64> {
        self.lease_drift_ticks.map(|d| self.election_ticks - 1 - d)
    }

    /// The largest clock-rate error `ρ` (each clock runs within `1 ± ρ` of
    /// true time) that `lease_drift_ticks` tolerates: the solution of
    /// `(e - 1 - d) * (1 + ρ) = (e - 1) * (1 - ρ)` with `e = election_ticks`
    /// and `d = lease_drift_ticks` (see the module doc). `None` without leases.
    pub fn max_drift(&self) -> Option<f64> {
        let e = self.election_ticks.checked_sub(1)? as f64;
        self.lease_drift_ticks.map(|d| d as f64 / (2.0 * e - d as f64))
    }
}

/// A node's role (Raft §5.1, plus pre-candidate for pre-vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// The outcome of a read request: serve it once the state machine has applied
/// `index`; `None` means the node lost leadership first (retry elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub id: u64,
    pub index: Option<Index>,
}

/// What the driver must do, in order (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// A snapshot from the leader: replace the stored log and the state machine with it.
    pub snapshot: Option<Snapshot>,
    /// A snapshot this node took (`Raft::compact`): store it, drop the log up to it.
    pub compacted: Option<Snapshot>,
    /// Entries to write, replacing any stored entries from the first one's index on.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Whether the writes above must be synced before `messages` leave:
    /// false when all they change is the commit index. The commit index
    /// promises nothing to anyone (a majority's synced logs make an entry
    /// committed, not this record), so losing it in a crash only makes the
    /// restarted node learn it again; syncing it would cost the leader a
    /// second fsync per batch, in series with the next one (etcd's
    /// `MustSync` makes the same call).
    pub must_sync: bool,
    /// To send once the above is durable; the first `early_messages` of them
    /// may be sent before (module doc).
    pub messages: Vec<Message>,
    /// How many of `messages`, from the first, may be sent before the
    /// writes above are durable: a leader's `Append`s and `Heartbeat`s.
    pub early_messages: usize,
    /// Committed entries to apply, in order. Their commit does not depend on
    /// the writes above, so without `snapshot` they may be applied first
    /// (module doc).
    pub committed: Vec<Entry>,
    pub reads: Vec<ReadState>,
}

/// A view of a node for drivers, tests and checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub last_index: Index,
    pub last_term: Term,
    pub snapshot_index: Index,
    pub membership: Membership,
    pub lease: bool,
    /// Ticks of this node's clock until its lease expires (0 without one).
    pub lease_ticks_left: u64,
    /// Messages dropped because no correct peer could have sent them.
    pub protocol_violations: u64,
    /// Reads served under the lease since start.
    pub lease_reads: u64,
}

#[derive(Clone, Copy, Debug)]
struct PendingRead {
    id: u64,
    index: Index,
    round: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Campaign {
    PreVote,
    Election,
    Transfer,
}

/// One node of a replica set. See the module doc.
#[derive(Debug)]
pub struct Raft {
    config: Config,
    rng: Rng,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    role: Role,
    log: RaftLog,
    /// Membership entries in the log, oldest first; the first is the snapshot's.
    memberships: Vec<(Index, Membership)>,

    /// Ticks since start (the node's clock, for leases).
    ticks: u64,
    election_elapsed: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
    /// Ticks since this node last heard from (or was) a leader of its term.
    since_leader: u64,

    /// Candidate: votes received.
    votes: BTreeMap<NodeId, bool>,

    /// Leader: per-follower replication state.
    progress: BTreeMap<NodeId, Progress>,
    round: u64,
    /// Leader: start tick of each round not yet known to be acknowledged by a majority.
    round_ticks: VecDeque<(u64, u64)>,
    pending_reads: VecDeque<PendingRead>,
    transferee: Option<NodeId>,
    /// Leader: a transfer was started this term, so no more lease reads.
    lease_fenced: bool,
    /// Leader: the index of the first entry of its term (the empty entry it
    /// appended on election). Every entry committed by earlier leaders is
    /// below it.
    term_start: Index,

    /// Leader: commands were appended since the last broadcast; `ready`
    /// sends them (all of them in one `Append` per follower, batching).
    broadcast_pending: bool,
    msgs: Vec<Message>,
    reads: Vec<ReadState>,
    install: Option<Snapshot>,
    compaction: Option<Snapshot>,
    persisted_hard_state: HardState,
    protocol_violations: u64,
    lease_reads: u64,
}

impl Raft {
    /// A node starting (or restarting) from what its log store holds.
    /// `seed` seeds its election timeouts.
    pub fn new(config: Config, persisted: Persisted, seed: u64) -> Result<Raft> {
        config.validate()?;
        let Persisted { hard_state, snapshot, entries } = persisted;
        let mut term = snapshot.term;
        for (k, e) in entries.iter().enumerate() {
            if e.index != snapshot.index + 1 + k as u64 || e.term < term {
                return Err(Error::Corrupt(format!("log not contiguous at entry {}", e.index)));
            }
            term = e.term;
        }
        // A crash can keep a `Ready`'s entries (or snapshot) and lose its
        // hard state, written after them. Then this node never synced
        // anything of the newer term, so it never voted or acknowledged in
        // it: taking the log's term with no vote is safe.
        let hard_state = if hard_state.term < term {
            HardState { term, vote: None, commit: hard_state.commit }
        } else {
            hard_state
        };
        let mut memberships = vec![(snapshot.index, snapshot.membership.clone())];
        for e in &entries {
            if let Payload::Membership(m) = &e.payload {
                memberships.push((e.index, m.clone()));
            }
        }
        let log = RaftLog::new(snapshot, entries, hard_state.commit);
        let persisted_hard_state = HardState { commit: log.commit, ..hard_state };
        let mut raft = Raft {
            config,
            rng: Rng::new(seed),
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            role: Role::Follower,
            log,
            memberships,
            ticks: 0,
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            // A restarted node may have promised a leader (by acknowledging
            // it) not to vote for a while; it does not remember when, so it
            // waits a full election timeout.
            since_leader: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            round: 0,
            round_ticks: VecDeque::new(),
            pending_reads: VecDeque::new(),
            transferee: None,
            lease_fenced: false,
            term_start: 0,
            broadcast_pending: false,
            msgs: Vec::new(),
            reads: Vec::new(),
            install: None,
            compaction: None,
            persisted_hard_state,
            protocol_violations: 0,
            lease_reads: 0,
        };
        raft.reset_election_timeout();
        Ok(raft)
    }

    // ---------------------------------------------------------------- inputs

    /// One tick of this node's clock.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.since_leader = self.since_leader.saturating_add(1);
        self.election_elapsed += 1;
        if self.role == Role::Leader {
            self.since_leader = 0;
            self.heartbeat_elapsed += 1;
            if self.election_elapsed >= self.config.election_ticks {
                self.election_elapsed = 0;
                self.transferee = None; // a transfer that did not finish in time is abandoned
                if self.config.check_quorum && !self.quorum_active() {
                    self.become_follower(self.term, None);
                    return;
                }
            }
            if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.broadcast_heartbeat();
            }
        } else if self.election_elapsed >= self.election_timeout && self.is_voter() {
            self.start_campaign(if self.config.pre_vote {
                Campaign::PreVote
            } else {
                Campaign::Election
            });
        }
    }

    /// Starts an election now (pre-vote first if configured), as if the
    /// election timer had fired. Unlike the timer it does not wait out the
    /// promise a follower makes by acknowledging a leader's round (see
    /// Leases): with leases on, call it only on a node that has not heard
    /// from a leader for an election timeout (bootstrapping, tests), or a
    /// leader still serving lease reads may be deposed under its lease.
    pub fn campaign(&mut self) {
        if self.role != Role::Leader && self.is_voter() {
            let kind = if self.config.pre_vote { Campaign::PreVote } else { Campaign::Election };
            self.start_campaign(kind);
        }
    }

    /// Proposes a command; returns the index it will have if committed.
    ///
    /// The entry goes to the followers with the next `ready`, together with
    /// every other command proposed before it: proposals queued between two
    /// `ready`s become one `Append` per follower and one write and sync of
    /// the log (group commit).
    pub fn propose(&mut self, command: Vec<u8>) -> Result<Index> {
        self.check_can_propose()?;
        Ok(self.append_as_leader(Payload::Command(command)))
    }

    /// Proposes a single-voter membership change. Refused while another
    /// change is uncommitted and until the leader committed an entry of its
    /// term (the fix Ongaro posted to raft-dev in 2015 for single-server
    /// changes across leader changes).
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index> {
        self.check_can_propose()?;
        if !self.committed_in_term() {
            return Err(Error::NotReady);
        }
        if self.memberships.last().expect("memberships never empty").0 > self.log.commit {
            return Err(Error::ConfChangeInProgress);
        }
        let next = self.membership().apply(change)?;
        Ok(self.append_as_leader(Payload::Membership(next)))
    }

    /// Asks for a linearizable read; the answer comes as a `ReadState` with
    /// this `id` in a later `Ready` (at once under a lease).
    pub fn read_index(&mut self, id: u64) -> Result<()> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader { leader: self.leader });
        }
        if !self.committed_in_term() {
            return Err(Error::NotReady);
        }
        if self.lease_valid() {
            self.lease_reads += 1;
            self.reads.push(ReadState { id, index: Some(self.log.commit) });
            return Ok(());
        }
        self.broadcast_heartbeat();
        self.pending_reads.push_back(PendingRead { id, index: self.log.commit, round: self.round });
        self.release_reads();
        Ok(())
    }

    /// Hands leadership to `target` (Raft thesis §3.10): stop accepting
    /// proposals, bring it up to date, then tell it to start an election.
    /// Abandoned after an election timeout.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<()> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader { leader: self.leader });
        }
        if target == self.config.id || !self.membership().contains(target) {
            return Err(Error::InvalidTransfer(target));
        }
        self.transferee = Some(target);
        self.lease_fenced = true;
        self.election_elapsed = 0;
        self.maybe_send_timeout_now(target);
        if self.transferee.is_some() {
            self.send_append(target, false);
        }
        Ok(())
    }

    /// Records that the state machine's state at `index` (at most the applied
    /// index) is `data`, and drops the log up to it (Raft §7).
    pub fn compact(&mut self, index: Index, data: Vec<u8>) -> Result<()> {
        self.compact_with_files(index, data, Vec::new())
    }

    /// As [`Raft::compact`], for a state kept partly in `files` (which the
    /// driver stores beside the log; the core only carries their list).
    pub fn compact_with_files(
        &mut self,
        index: Index,
        data: Vec<u8>,
        files: Vec<SnapshotFile>,
    ) -> Result<()> {
        if index <= self.log.snapshot.index || index > self.log.applied {
            return Err(Error::InvalidSnapshot {
                index,
                applied: self.log.applied,
                snapshot: self.log.snapshot.index,
            });
        }
        let term = self.log.term(index).expect("applied entries are in the log");
        let membership = self.membership_at(index).clone();
        let snapshot = Snapshot { index, term, membership, data, files };
        self.log.compact(snapshot.clone());
        let keep = self.memberships.iter().rposition(|(i, _)| *i <= index).unwrap_or(0);
        self.memberships.drain(..keep);
        self.memberships[0].0 = index;
        self.compaction = Some(snapshot);
        Ok(())
    }

    /// Handles a message from a peer. Stale or impossible messages are ignored.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.config.id || msg.from == self.config.id {
            self.protocol_violations += 1;
            return;
        }
        if matches!(msg.body, Body::PreVote { .. } | Body::Vote { .. }) && self.ignores_vote(&msg) {
            return;
        }
        if msg.term > self.term {
            match msg.body {
                // Pre-votes do not change terms: that is their point.
                Body::PreVote { .. } | Body::PreVoteResp { granted: true } => {}
                Body::Append { .. } | Body::Heartbeat { .. } | Body::Snapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from))
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match msg.body {
                // A stale leader learns the newer term from the answer and steps down.
                Body::Append { .. } | Body::Heartbeat { .. } | Body::Snapshot { .. } => {
                    self.send(msg.from, Body::HeartbeatResp { round: 0 })
                }
                Body::PreVote { .. } => self.send(msg.from, Body::PreVoteResp { granted: false }),
                _ => {}
            }
            return;
        }
        let from = msg.from;
        match msg.body {
            Body::PreVote { last_index, last_term } => {
                self.handle_vote(msg.term, from, last_index, last_term, true)
            }
            Body::Vote { last_index, last_term, .. } => {
                self.handle_vote(msg.term, from, last_index, last_term, false)
            }
            Body::PreVoteResp { granted } => {
                if self.role == Role::PreCandidate && (!granted || msg.term == self.term + 1) {
                    self.poll(from, granted);
                }
            }
            Body::VoteResp { granted } => {
                if self.role == Role::Candidate {
                    self.poll(from, granted);
                }
            }
            Body::Append { prev_index, prev_term, entries, commit, round } => {
                if self.follow(msg.term, from) {
                    self.handle_append(from, prev_index, prev_term, entries, commit, round);
                }
            }
            Body::Heartbeat { commit, round } => {
                if self.follow(msg.term, from) {
                    self.log.commit_to(commit.min(self.log.last_index()));
                    self.send(from, Body::HeartbeatResp { round });
                }
            }
            Body::Snapshot { snapshot, round } => {
                if self.follow(msg.term, from) {
                    self.handle_snapshot(from, snapshot, round);
                }
            }
            Body::TimeoutNow => {
                if self.role == Role::Follower && self.is_voter() {
                    self.start_campaign(Campaign::Transfer);
                }
            }
            Body::AppendResp { accepted, index, hint_index, hint_term, round } => {
                if self.role == Role::Leader {
                    self.handle_append_resp(from, accepted, index, hint_index, hint_term, round);
                }
            }
            Body::HeartbeatResp { round } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_resp(from, round);
                }
            }
        }
    }

    // --------------------------------------------------------------- outputs

    /// Whether `ready` has anything for the driver.
    pub fn has_ready(&self) -> bool {
        self.install.is_some()
            || self.compaction.is_some()
            || self.log.persisted < self.log.last_index()
            || self.hard_state() != self.persisted_hard_state
            || self.log.applied < self.log.commit
            || !self.msgs.is_empty()
            || !self.reads.is_empty()
            || self.broadcast_pending
    }

    /// Takes what the driver must persist, send, apply and answer, and
    /// assumes it is done before the next call (see the module doc).
    pub fn ready(&mut self) -> Ready {
        if std::mem::take(&mut self.broadcast_pending) && self.role == Role::Leader {
            self.broadcast_append();
        }
        // Everything queued so far was decided on synced state only: the
        // previous `Ready`'s writes were synced before this call. A leader
        // whose term and vote are durable may send its appends and
        // heartbeats among them before syncing this `Ready` (module doc);
        // they go first.
        let mut messages = std::mem::take(&mut self.msgs);
        let early_messages =
            if self.role == Role::Leader && self.persisted_hard_state.term == self.term {
                let (early, late): (Vec<Message>, Vec<Message>) = messages
                    .into_iter()
                    .partition(|m| matches!(m.body, Body::Append { .. } | Body::Heartbeat { .. }));
                let n = early.len();
                messages = early;
                messages.extend(late);
                n
            } else {
                0
            };
        // Committed by synced state alone (see above), so appliable before
        // this `Ready`'s writes are.
        let apply_to = self.log.commit;
        let snapshot = self.install.take();
        let compacted = self.compaction.take();
        let entries = self.log.slice(self.log.persisted + 1, self.log.last_index()).to_vec();
        self.log.persisted = self.log.last_index();
        if self.role == Role::Leader && self.maybe_commit() {
            // Counts the entries just handed out: leaves after they are
            // synced, as a late message (and their apply in a later `Ready`).
            self.broadcast_append();
        }
        messages.append(&mut self.msgs);
        let hard_state = self.hard_state();
        let durable = self.persisted_hard_state;
        let hard_state = (hard_state != durable).then(|| {
            self.persisted_hard_state = hard_state;
            hard_state
        });
        let must_sync = snapshot.is_some()
            || compacted.is_some()
            || !entries.is_empty()
            || hard_state.is_some_and(|h| (h.term, h.vote) != (durable.term, durable.vote));
        let committed = self.log.slice(self.log.applied + 1, apply_to).to_vec();
        self.log.applied = self.log.applied.max(apply_to);
        Ready {
            snapshot,
            compacted,
            entries,
            hard_state,
            must_sync,
            messages,
            early_messages,
            committed,
            reads: std::mem::take(&mut self.reads),
        }
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.log.commit,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            snapshot_index: self.log.snapshot.index,
            membership: self.membership().clone(),
            lease: self.lease_valid(),
            lease_ticks_left: self.lease_ticks_left(),
            protocol_violations: self.protocol_violations,
            lease_reads: self.lease_reads,
        }
    }

    /// Whether this node leads and is sending a follower a snapshot (the
    /// follower's progress is in the snapshot state, until it acknowledges
    /// it or stalls). A driver may hold off compacting meanwhile: a
    /// follower that installs the snapshot then finds the entries after it
    /// in the log instead of needing the next snapshot.
    pub fn sending_snapshot(&self) -> bool {
        self.role == Role::Leader
            && self.progress.values().any(|p| matches!(p.state, ProgressState::Snapshot { .. }))
    }

    /// The highest index known to be committed.
    pub fn commit_index(&self) -> Index {
        self.log.commit
    }

    /// Leader: the index of the first entry of its term. Once that entry
    /// commits, every entry any earlier leader committed is at or below it,
    /// so a state machine that applied it holds everything committed
    /// before this term, and, with every command this leader answered
    /// applied before the answer, everything acknowledged so far: what a
    /// lease read needs (`node`'s module doc). 0 on other roles.
    pub fn term_start_index(&self) -> Index {
        if self.role == Role::Leader { self.term_start } else { 0 }
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> Term {
        self.term
    }

    /// The term of the entry at `index`, if the log (or its snapshot base) has it.
    pub fn log_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }

    pub fn log_entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The entries after the snapshot.
    pub fn log_entries(&self) -> &[Entry] {
        self.log.slice(self.log.first_index(), self.log.last_index())
    }

    /// Checks the internal invariants; for tests and the simulator.
    pub fn assert_invariants(&self) {
        self.log.assert_invariants();
        assert_eq!(self.memberships[0].0, self.log.snapshot.index);
        assert_eq!(self.memberships[0].1, self.log.snapshot.membership);
        for (index, m) in &self.memberships[1..] {
            assert_eq!(
                self.log.entry(*index).map(|e| &e.payload),
                Some(&Payload::Membership(m.clone()))
            );
        }
        if self.role == Role::Leader {
            assert_eq!(self.leader, Some(self.config.id));
            assert_eq!(self.vote, Some(self.config.id));
            for (id, pr) in &self.progress {
                assert!(self.membership().contains(*id) && *id != self.config.id);
                assert!(pr.match_index < pr.next_index, "progress of {id}: {pr:?}");
                assert!(pr.match_index <= self.log.last_index());
            }
        } else {
            assert!(self.progress.is_empty() && self.pending_reads.is_empty());
        }
    }

    // ----------------------------------------------------------- roles

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term);
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.role == Role::Leader {
            self.since_leader = 0;
            for read in std::mem::take(&mut self.pending_reads) {
                self.reads.push(ReadState { id: read.id, index: None });
            }
        }
        self.role = Role::Follower;
        self.leader = leader;
        if leader.is_some() {
            self.since_leader = 0;
        }
        self.progress.clear();
        self.round_ticks.clear();
        self.transferee = None;
        self.broadcast_pending = false;
        self.votes.clear();
        self.reset_election_timeout();
    }

    /// A message from the leader of our term: follow it. Returns false for
    /// one that cannot come from a correct leader.
    fn follow(&mut self, term: Term, from: NodeId) -> bool {
        assert_eq!(term, self.term);
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                self.protocol_violations += 1; // two leaders in one term
                return false;
            }
            (Role::Follower, Some(leader)) if leader != from => {
                self.protocol_violations += 1;
                return false;
            }
            (Role::Follower, Some(_)) => {}
            _ => self.become_follower(term, Some(from)),
        }
        self.election_elapsed = 0;
        self.since_leader = 0;
        true
    }

    fn start_campaign(&mut self, kind: Campaign) {
        self.votes.clear();
        self.leader = None;
        self.reset_election_timeout();
        let term = if kind == Campaign::PreVote {
            self.role = Role::PreCandidate;
            self.term + 1
        } else {
            self.role = Role::Candidate;
            self.term += 1;
            self.vote = Some(self.config.id);
            self.term
        };
        self.progress.clear();
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for to in self.peers() {
            let body = match kind {
                Campaign::PreVote => Body::PreVote { last_index, last_term },
                _ => Body::Vote { last_index, last_term, transfer: kind == Campaign::Transfer },
            };
            self.msgs.push(Message { from: self.config.id, to, term, body });
        }
        self.poll(self.config.id, true);
    }

    fn poll(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        let m = self.membership();
        let yes = self.votes.iter().filter(|(id, g)| **g && m.contains(**id)).count();
        let no = self.votes.iter().filter(|(id, g)| !**g && m.contains(**id)).count();
        if yes >= m.quorum() {
            if self.role == Role::PreCandidate {
                self.start_campaign(Campaign::Election);
            } else {
                self.become_leader();
            }
        } else if no > m.voters.len() - m.quorum() {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate);
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.since_leader = 0;
        self.lease_fenced = false;
        self.transferee = None;
        self.round = 1;
        self.round_ticks = VecDeque::from([(1, self.ticks)]);
        self.sync_progress();
        // Raft §8: an entry of its own term, so it can commit (and learn the commit index).
        self.append_as_leader(Payload::Empty);
        self.term_start = self.log.last_index();
    }

    fn ignores_vote(&self, msg: &Message) -> bool {
        let transfer = matches!(msg.body, Body::Vote { transfer: true, .. });
        let in_lease = self.role == Role::Leader || self.since_leader < self.config.election_ticks;
        let revote = msg.term == self.term && self.vote == Some(msg.from);
        self.config.check_quorum && in_lease && !transfer && !revote
    }

    fn handle_vote(&mut self, term: Term, from: NodeId, li: Index, lt: Term, pre: bool) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && term > self.term);
        if can_vote && self.log.is_up_to_date(li, lt) {
            if !pre {
                self.vote = Some(from);
                self.election_elapsed = 0;
            }
            let body = if pre {
                Body::PreVoteResp { granted: true }
            } else {
                Body::VoteResp { granted: true }
            };
            self.msgs.push(Message { from: self.config.id, to: from, term, body });
        } else {
            let body = if pre {
                Body::PreVoteResp { granted: false }
            } else {
                Body::VoteResp { granted: false }
            };
            self.send(from, body);
        }
    }

    // ------------------------------------------------------------ follower

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        round: u64,
    ) {
        let ok =
            |index| Body::AppendResp { accepted: true, index, hint_index: 0, hint_term: 0, round };
        if prev_index < self.log.commit {
            // Everything through our commit index matches the leader's log (Raft §5.4).
            self.send(from, ok(self.log.commit));
            return;
        }
        let well_formed = entries.iter().enumerate().all(|(k, e)| {
            prev_index.checked_add(1 + k as u64) == Some(e.index)
                && e.term <= self.term
                && e.term >= if k == 0 { prev_term } else { entries[k - 1].term }
        });
        if !well_formed {
            self.protocol_violations += 1;
            return;
        }
        if !self.log.matches(prev_index, prev_term) {
            let hint_index = self.log.find_conflict_by_term(prev_index, prev_term);
            let hint_term = self.log.term(hint_index).unwrap_or(0);
            let body = Body::AppendResp {
                accepted: false,
                index: prev_index,
                hint_index,
                hint_term,
                round,
            };
            self.send(from, body);
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        if let Some(conflict) = self.log.find_conflict(&entries) {
            if conflict <= self.log.commit {
                self.protocol_violations += 1; // would overwrite a committed entry
                return;
            }
            self.log.truncate_from(conflict);
            while self.memberships.last().is_some_and(|(i, _)| *i >= conflict) {
                self.memberships.pop();
            }
            let start = (conflict - prev_index - 1) as usize;
            for e in entries.into_iter().skip(start) {
                self.append_entry(e);
            }
            self.on_membership_change();
        }
        self.log.commit_to(commit.min(last_new));
        self.send(from, ok(last_new));
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot, round: u64) {
        let ok =
            |index| Body::AppendResp { accepted: true, index, hint_index: 0, hint_term: 0, round };
        if snapshot.index <= self.log.commit {
            self.send(from, ok(self.log.commit));
            return;
        }
        if snapshot.membership.voters.is_empty() || snapshot.term > self.term {
            self.protocol_violations += 1;
            return;
        }
        if self.log.matches(snapshot.index, snapshot.term) {
            // We have the entries already: the snapshot just tells us they are committed.
            self.log.commit_to(snapshot.index);
        } else {
            self.memberships = vec![(snapshot.index, snapshot.membership.clone())];
            self.log.restore(snapshot.clone());
            self.compaction = None;
            self.install = Some(snapshot);
            self.on_membership_change();
        }
        self.send(from, ok(self.log.commit.max(self.log.snapshot.index)));
    }

    // -------------------------------------------------------------- leader

    fn check_can_propose(&self) -> Result<()> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader { leader: self.leader });
        }
        if self.transferee.is_some() {
            return Err(Error::TransferInProgress);
        }
        if !self.membership().contains(self.config.id) {
            return Err(Error::NotLeader { leader: None }); // being removed
        }
        Ok(())
    }

    fn append_as_leader(&mut self, payload: Payload) -> Index {
        let index = self.log.last_index() + 1;
        let is_membership = matches!(payload, Payload::Membership(_));
        self.append_entry(Entry { index, term: self.term, payload });
        if is_membership {
            self.on_membership_change();
            self.broadcast_append();
        } else {
            // Sent by `ready`, batched with the commands proposed after it.
            self.broadcast_pending = true;
        }
        index
    }

    fn append_entry(&mut self, entry: Entry) {
        if let Payload::Membership(m) = &entry.payload {
            self.memberships.push((entry.index, m.clone()));
        }
        self.log.append(entry);
    }

    fn handle_append_resp(
        &mut self,
        from: NodeId,
        accepted: bool,
        index: Index,
        hint_index: Index,
        hint_term: Term,
        round: u64,
    ) {
        let (last, tick) = (self.log.last_index(), self.ticks);
        if index > last || round > self.round {
            self.protocol_violations += 1;
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round);
        if !accepted {
            let probe = if hint_term > 0 {
                self.log.find_conflict_by_term(hint_index, hint_term)
            } else {
                hint_index
            };
            let pr = self.progress.get_mut(&from).expect("checked above");
            if pr.maybe_decrease_to(index, probe, tick) {
                self.send_append(from, false);
            }
        } else if pr.maybe_update(index, tick) {
            match pr.state {
                ProgressState::Probe => pr.become_replicate(tick),
                ProgressState::Snapshot { index: snap } if pr.match_index >= snap => {
                    pr.become_probe(tick);
                    pr.become_replicate(tick);
                }
                _ => {}
            }
            // Whatever this answer allows (new entries for `from`, a
            // commit index for everyone) leaves in the next `Ready`, one
            // `Append` per follower however many answers came before it.
            self.maybe_commit();
            self.broadcast_pending = true;
            if self.transferee == Some(from) {
                self.maybe_send_timeout_now(from);
            }
        }
        self.release_reads();
    }

    fn handle_heartbeat_resp(&mut self, from: NodeId, round: u64) {
        if round > self.round {
            self.protocol_violations += 1;
            return;
        }
        let (last, tick) = (self.log.last_index(), self.ticks);
        let stall_ticks = 2 * self.config.heartbeat_ticks;
        let election_ticks = self.config.election_ticks;
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round);
        if pr.match_index < last {
            match pr.state {
                ProgressState::Probe => pr.probe_sent = false,
                // Entries outstanding and no progress: a message was lost; start over.
                ProgressState::Replicate if tick - pr.progress_tick >= stall_ticks => {
                    pr.become_probe(tick)
                }
                ProgressState::Snapshot { .. } if tick - pr.progress_tick >= election_ticks => {
                    pr.become_probe(tick)
                }
                _ => {}
            }
            self.send_append(from, false);
        }
        if self.transferee == Some(from) {
            self.maybe_send_timeout_now(from);
        }
        self.release_reads();
    }

    /// Sends `to` the next batch of entries (or a snapshot if they are compacted
    /// away); with `empty`, sends an empty `Append` even if there is nothing
    /// new (to carry the commit index).
    fn send_append(&mut self, to: NodeId, empty: bool) {
        let max_inflight = self.config.max_inflight_entries;
        let Some(pr) = self.progress.get(&to) else { return };
        if pr.is_paused(max_inflight) {
            return;
        }
        let (next, state) = (pr.next_index, pr.state);
        let prev_index = next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // Compacted away (Raft §7): send the snapshot.
            let snapshot = self.log.snapshot.clone();
            let pr = self.progress.get_mut(&to).expect("checked above");
            pr.state = ProgressState::Snapshot { index: snapshot.index };
            pr.progress_tick = self.ticks;
            let round = self.round;
            self.send(to, Body::Snapshot { snapshot, round });
            return;
        };
        let room = match state {
            ProgressState::Replicate => max_inflight - pr.inflight(),
            _ => max_inflight,
        };
        let count = (self.config.max_append_entries as u64).min(room);
        let entries = self.log.slice(next, next + count - 1).to_vec();
        if entries.is_empty() && !empty && state == ProgressState::Replicate {
            return;
        }
        let pr = self.progress.get_mut(&to).expect("checked above");
        match state {
            ProgressState::Replicate => pr.next_index = next + entries.len() as u64,
            _ => pr.probe_sent = true,
        }
        let commit = self.log.commit;
        pr.commit_sent = commit;
        let round = self.round;
        self.send(to, Body::Append { prev_index, prev_term, entries, commit, round });
    }

    /// Sends every follower what it lacks: its next entries, or, with none
    /// to send, an empty `Append` if the commit index moved since its last
    /// one (so answers and proposals arriving together cost one message
    /// per follower, not one each).
    fn broadcast_append(&mut self) {
        for to in self.peers() {
            let commit_moved =
                self.progress.get(&to).is_some_and(|pr| pr.commit_sent < self.log.commit);
            self.send_append(to, commit_moved);
        }
    }

    /// Starts a new round and tells every follower we are alive.
    fn broadcast_heartbeat(&mut self) {
        self.round += 1;
        self.round_ticks.push_back((self.round, self.ticks));
        for to in self.peers() {
            let commit = self.progress.get(&to).map_or(0, |pr| pr.match_index).min(self.log.commit);
            let round = self.round;
            self.send(to, Body::Heartbeat { commit, round });
        }
    }

    /// Raft §5.3/§5.4.2: commit the largest index a majority has persisted, if
    /// it is of the current term. Returns whether the commit index advanced.
    fn maybe_commit(&mut self) -> bool {
        let id = self.config.id;
        let mut matches: Vec<Index> = self
            .membership()
            .voters
            .iter()
            .map(|v| if *v == id { self.log.persisted } else { self.progress[v].match_index })
            .collect();
        let index = quorum_value(&mut matches);
        if index <= self.log.commit || self.log.term(index) != Some(self.term) {
            return false;
        }
        self.log.commit_to(index);
        // A leader that removed itself steps down once the removal is
        // committed (Raft thesis §4.2.2), and hands over to a follower that
        // has the whole log so the replica set need not wait for a timeout.
        let last_change = self.memberships.last().expect("memberships never empty").0;
        if !self.membership().contains(id) && last_change <= self.log.commit {
            let last = self.log.last_index();
            let successor =
                self.progress.iter().find(|(_, pr)| pr.match_index == last).map(|(id, _)| *id);
            self.become_follower(self.term, None);
            if let Some(successor) = successor {
                self.send(successor, Body::TimeoutNow);
            }
            return false;
        }
        self.release_reads();
        true
    }

    fn maybe_send_timeout_now(&mut self, to: NodeId) {
        let caught_up =
            self.progress.get(&to).is_some_and(|pr| pr.match_index == self.log.last_index());
        if caught_up {
            self.send(to, Body::TimeoutNow);
        }
    }

    fn quorum_active(&mut self) -> bool {
        let id = self.config.id;
        let m = self.membership().clone();
        let active = m
            .voters
            .iter()
            .filter(|v| **v == id || self.progress.get(v).is_some_and(|pr| pr.recent_active))
            .count();
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        active >= m.quorum()
    }

    /// The highest round a majority of voters acknowledged (the leader
    /// acknowledges its own current round).
    fn quorum_round(&self) -> u64 {
        let id = self.config.id;
        let mut rounds: Vec<u64> = self
            .membership()
            .voters
            .iter()
            .map(|v| {
                if *v == id {
                    self.round
                } else {
                    self.progress.get(v).map_or(0, |pr| pr.acked_round)
                }
            })
            .collect();
        quorum_value(&mut rounds)
    }

    fn release_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let acked = self.quorum_round();
        while self.pending_reads.front().is_some_and(|r| r.round <= acked) {
            let read = self.pending_reads.pop_front().expect("checked");
            self.reads.push(ReadState { id: read.id, index: Some(read.index) });
        }
        // Forget round starts below the acknowledged one (the lease needs only it).
        while self.round_ticks.len() > 1 && self.round_ticks[1].0 <= acked {
            self.round_ticks.pop_front();
        }
    }

    fn lease_valid(&self) -> bool {
        self.lease_ticks_left() > 0
    }

    /// How many more ticks the lease holds (0: no lease; see the module
    /// doc): this node may serve reads from its state machine, once it has
    /// applied [`Raft::commit_index`], until that many more ticks of its
    /// clock have passed (the tick that brings it to 0 ends the lease).
    pub fn lease_ticks_left(&self) -> u64 {
        let Some(lease_ticks) = self.config.lease_ticks() else { return 0 };
        if self.role != Role::Leader || self.lease_fenced || !self.committed_in_term() {
            return 0;
        }
        let acked = self.quorum_round();
        self.round_ticks
            .iter()
            .find(|(round, _)| *round == acked)
            .map_or(0, |(_, start)| (start + lease_ticks).saturating_sub(self.ticks))
    }

    // --------------------------------------------------------- membership

    fn membership(&self) -> &Membership {
        &self.memberships.last().expect("memberships never empty").1
    }

    fn membership_at(&self, index: Index) -> &Membership {
        &self.memberships.iter().rev().find(|(i, _)| *i <= index).expect("base at snapshot").1
    }

    fn is_voter(&self) -> bool {
        self.membership().contains(self.config.id)
    }

    fn peers(&self) -> Vec<NodeId> {
        self.membership().voters.iter().copied().filter(|v| *v != self.config.id).collect()
    }

    /// The membership may have changed (appended or truncated entries, a snapshot).
    fn on_membership_change(&mut self) {
        if self.role == Role::Leader {
            self.sync_progress();
        } else if !self.is_voter() && matches!(self.role, Role::PreCandidate | Role::Candidate) {
            self.become_follower(self.term, None);
        }
    }

    fn sync_progress(&mut self) {
        let (next, tick) = (self.log.last_index() + 1, self.ticks);
        let peers = self.peers();
        self.progress.retain(|id, _| peers.contains(id));
        for id in peers {
            self.progress.entry(id).or_insert_with(|| Progress::new(next, tick));
        }
    }

    // ------------------------------------------------------------ helpers

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.commit) == Some(self.term)
    }

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit }
    }

    fn reset_election_timeout(&mut self) {
        self.election_elapsed = 0;
        let e = self.config.election_ticks;
        self.election_timeout = self.rng.range(e, 2 * e);
    }

    fn send(&mut self, to: NodeId, body: Body) {
        self.msgs.push(Message { from: self.config.id, to, term: self.term, body });
    }
}
