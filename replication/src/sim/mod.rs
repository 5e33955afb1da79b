//! Deterministic simulation of a whole replica set in one thread, from one
//! `u64` seed.
//!
//! Everything that could differ between two runs comes from the seed: the
//! order of events (a priority queue on simulated time, ties broken by
//! insertion order), message delays, losses, duplicates and reorderings,
//! partitions (random splits, an isolated leader, one cut link, a node that
//! hears nobody, slow links), crashes (including crashes between writing and
//! syncing, which lose a random suffix of the unsynced writes), restarts,
//! leadership transfers, clock drift (each node's tick interval differs from
//! the nominal one by up to `max_drift`), the nodes' election timeouts, the
//! clients' choices, and (with `randomize`) the Raft configuration. So a
//! failing seed replays exactly: `run(seed, &config)` again, with
//! `config.trace = true` to see every step.
//!
//! A run has three phases:
//!
//! 1. **faults** (`fault_ms`): clients append and read while faults are injected;
//! 2. **heal** (`heal_ms`): the network heals and every node restarts; clients
//!    go on, and at least one append must be acknowledged (liveness);
//! 3. **drain** (`drain_ms`): clients stop; at the end every node must have
//!    applied the same log to the same state.
//!
//! After every event the [`check::Checker`] verifies Raft's safety
//! properties on what the nodes just did; at the end it checks the client
//! history for linearizability (lease reads included). See `check` for the
//! properties.
//!
//! # Transactions mode
//!
//! With [`SimConfig::transactions`], clients run list-append transactions
//! (one to three operations, each a read of a key's list or an append of a
//! unique value) through the replicated shard's own pieces on every node
//! (`shard::ShardMachine` over `shard::MemVersions`, `shard::Sequencer` on
//! the leader), the way `ReplicatedShard` drives them: a snapshot is a
//! read-index (or lease) round answered with the newest applied commit
//! timestamp and the lists at it; a commit is another round, then the
//! dedup check, validation and the proposal of the write set. A commit that
//! times out is retried at another node with the same id, up to five times,
//! then recorded with an unknown outcome; a node answers a retry whose id
//! is still in flight there as "in flight", never as aborted. At the end
//! `strata_txn::history::check` must find no anomaly forbidden under
//! snapshot isolation (G0, G1a, G1b, G1c, G-single, incompatible orders),
//! and the replicas must agree on the newest commit timestamp too.
//! Skipping validation, ignoring in-flight proposals in it, or answering an
//! in-flight retry as aborted each fails most seeds.
//!
//! # Schedules
//!
//! [`Schedule::Random`] draws every fault at random. It rarely produces the
//! narrow timing that breaks a lease that is slightly too long, so
//! [`Schedule::LeaseRace`] ([`SimConfig::lease_race`]) builds it on
//! purpose, over and over: wait until a leader holds its lease, then cut it
//! off from everyone at a random phase of its heartbeat rounds; at that
//! moment set its clock to the slowest rate the drift bound allows and the
//! others' to the fastest (so its lease lasts as long as it may in true time,
//! and their election timeouts as short as they may), with the drift bound
//! itself at the largest value the lease configuration tolerates. While it
//! is isolated, half the clients keep sending reads to the old leader and
//! the other half write through the majority, which elects a new leader and
//! commits. A lease that outlives the followers' promise not to vote lets
//! the old leader answer a read that misses an append acknowledged before
//! the read began, and the checker reports a stale read.

pub mod check;
pub mod kv;
pub mod node;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;

use crate::message::Message;
use crate::raft::{Config, Role};
use crate::rng::Rng;
use crate::types::{NodeId, Persisted, Term};
use check::{Checker, HistoryOp, OpKind, OpResult, Violation};
use kv::Command;
use node::{Observed, Reply, Request, SimNode};
use strata_txn::history::{self, Op, Outcome, Recorded};
use strata_txn::{CommitRequest, Isolation};

use crate::shard::CommandId;

/// What to simulate. Times in milliseconds of simulated time unless named `_us`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub clients: usize,
    /// Clients append to and read keys `0..keys`.
    pub keys: u64,
    pub fault_ms: u64,
    pub heal_ms: u64,
    pub drain_ms: u64,
    /// Nominal tick interval.
    pub tick_us: u64,
    /// Each node's tick interval is within `tick_us * (1 ± max_drift)`; must
    /// respect the lease drift bound in `raft` (see `raft`'s module doc).
    pub max_drift: f64,
    /// Usual one-way delay range.
    pub min_delay_us: u64,
    pub max_delay_us: u64,
    /// Chance that a message is delayed up to 20 times `max_delay_us` (reordering).
    pub long_delay: f64,
    pub duplicate: f64,
    /// Chance, per `Ready`, that a node crashes after writing and before syncing.
    pub crash_on_persist: f64,
    /// A fault is injected every `fault_every_ms.0..fault_every_ms.1`.
    pub fault_every_ms: (u64, u64),
    /// Nodes snapshot their state machine every this many applied entries.
    pub snapshot_every: u64,
    pub client_timeout_us: u64,
    /// The nodes' Raft configuration (the id is set per node).
    pub raft: Config,
    /// Draw per seed the batch and in-flight bounds, the snapshot interval and
    /// the protocol options (leases, read-index only, or plain Raft without
    /// pre-vote and check-quorum), so the seeds cover the configuration space.
    pub randomize: bool,
    /// How faults are chosen (see the module doc).
    pub schedule: Schedule,
    /// A client waits up to this long between an answer and its next request.
    pub think_us: u64,
    /// A client that was refused waits this long before it retries.
    pub reject_backoff_us: u64,
    /// Record a line per event in the report or failure.
    pub trace: bool,
    /// Clients run list-append transactions through the replicated shard's
    /// machinery instead of single appends and reads (see the module doc).
    pub transactions: bool,
}

/// How long clients think between requests while a leader is isolated in
/// the lease race.
const RACE_THINK_US: u64 = 500;

/// How the simulator picks faults (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Random faults of every kind.
    Random,
    /// Repeatedly isolate a leader that holds its lease, with the clocks at
    /// the drift bound, while clients read from it and write elsewhere.
    LeaseRace,
}

impl SimConfig {
    /// A replica set of `nodes` with faults enabled and small batches, so a
    /// short run exercises probing, pipelining and snapshots.
    pub fn new(nodes: usize) -> SimConfig {
        let mut raft = Config::new(0);
        raft.max_append_entries = 4;
        raft.max_inflight_entries = 12;
        SimConfig {
            nodes,
            clients: 4,
            keys: 4,
            fault_ms: 2_500,
            heal_ms: 1_500,
            drain_ms: 600,
            tick_us: 10_000,
            max_drift: 0.1,
            min_delay_us: 500,
            max_delay_us: 12_000,
            long_delay: 0.02,
            duplicate: 0.02,
            crash_on_persist: 0.002,
            fault_every_ms: (30, 300),
            snapshot_every: 24,
            client_timeout_us: 50_000,
            raft,
            randomize: true,
            schedule: Schedule::Random,
            think_us: 3_000,
            reject_backoff_us: 5_000,
            trace: false,
            transactions: false,
        }
    }

    /// Transactions mode (see the module doc): clients run list-append
    /// transactions of one to three operations over `keys` keys through
    /// the replicated shard's leader path, under the random fault schedule.
    pub fn transactions(nodes: usize) -> SimConfig {
        let mut c = SimConfig::new(nodes);
        c.transactions = true;
        c.clients = 5;
        c.keys = 5;
        c
    }

    /// The targeted schedule that catches leases that are too long (see the
    /// module doc): leases on, the clock drift at the largest rate the lease
    /// configuration is meant to tolerate, a fast network without loss, no
    /// crashes, and eager clients.
    pub fn lease_race(nodes: usize) -> SimConfig {
        let mut c = SimConfig::new(nodes);
        c.clients = 6;
        c.schedule = Schedule::LeaseRace;
        c.randomize = false;
        c.raft.lease_drift_ticks = Some(2);
        c.max_drift = c.raft.max_drift().expect("leases are on");
        c.min_delay_us = 200;
        c.max_delay_us = 2_000;
        c.long_delay = 0.0;
        c.duplicate = 0.0;
        c.crash_on_persist = 0.0;
        c.keys = 16;
        c.reject_backoff_us = 1_000;
        c
    }

    /// This configuration as seed `rng` draws it (see `randomize`).
    fn randomized(&self, rng: &mut Rng) -> SimConfig {
        let mut c = self.clone();
        if !self.randomize {
            return c;
        }
        c.raft.max_append_entries = [1, 2, 4, 8, 64][rng.below(5) as usize];
        c.raft.max_inflight_entries = [1, 4, 12, 64][rng.below(4) as usize];
        c.snapshot_every = [3, 8, 24, 100][rng.below(4) as usize];
        match rng.below(20) {
            0..=13 => {}
            14..=16 => c.raft.lease_drift_ticks = None,
            _ => {
                c.raft.lease_drift_ticks = None;
                c.raft.check_quorum = false;
                c.raft.pre_vote = false;
            }
        }
        c
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub events: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub max_term: Term,
    pub committed: u64,
    pub acked_appends: u64,
    pub failed_appends: u64,
    pub unknown_ops: u64,
    pub reads: u64,
    /// Reads the leader answered under its lease (the rest took a read-index round).
    pub lease_reads: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub partitions: u64,
    /// Leaders isolated while holding their lease (the lease-race schedule).
    pub lease_isolations: u64,
    /// Transactions mode: transactions committed, aborted, and of unknown outcome.
    pub txn_committed: u64,
    pub txn_aborted: u64,
    pub txn_unknown: u64,
    pub transfers: u64,
    pub snapshots_installed: u64,
    pub compactions: u64,
    pub trace: Vec<String>,
}

/// A seed that broke a property, with the trace leading to it (when traced).
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub time_us: u64,
    pub violation: Violation,
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {} at {}us: {}", self.seed, self.time_us, self.violation)
    }
}

impl std::error::Error for Failure {}

/// Runs one seed.
pub fn run(seed: u64, config: &SimConfig) -> Result<Report, Failure> {
    let mut sim = Simulation::new(seed, config.clone());
    match sim.run() {
        Ok(()) => {
            sim.report.trace = std::mem::take(&mut sim.trace);
            Ok(sim.report)
        }
        Err(violation) => Err(Failure {
            seed,
            time_us: sim.now,
            violation,
            trace: std::mem::take(&mut sim.trace),
        }),
    }
}

#[derive(Debug)]
enum Event {
    Tick(usize),
    Deliver(Message),
    Client(usize),
    Timeout(usize, u64),
    Fault,
}

#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Faults,
    Heal,
    Drain,
}

#[derive(Debug, Default)]
struct Client {
    /// The request in flight and its history entry.
    outstanding: Option<(u64, usize)>,
    /// Where the client thinks the leader is.
    hint: Option<NodeId>,
    seq: u64,
    /// Transactions mode: the transaction under way.
    txn: Option<ClientTxn>,
}

/// A client's transaction: its operations, then (once it has a snapshot)
/// the commit it asks for, retried with the same id after a timeout.
#[derive(Debug)]
struct ClientTxn {
    ops: Vec<Op>,
    /// Node index that served the snapshot.
    node: usize,
    commit: Option<(CommandId, CommitRequest)>,
    /// Commit attempts made so far.
    attempts: u32,
}

/// Commit attempts (with one id) before a client gives up: outcome unknown.
const MAX_COMMIT_ATTEMPTS: u32 = 5;

struct Simulation {
    config: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    /// `blocked[a][b]`: messages from node index `a` to `b` are dropped.
    blocked: Vec<Vec<bool>>,
    /// `slow[a][b]`: messages from `a` to `b` take this many times longer.
    slow: Vec<Vec<u64>>,
    loss: f64,
    clients: Vec<Client>,
    history: Vec<HistoryOp>,
    /// Transactions mode: every transaction that finished or tried to commit.
    txns: Vec<Recorded>,
    checker: Checker,
    seen: Vec<(Role, Term)>,
    /// Lease reads of each node's current incarnation.
    lease_reads: Vec<u64>,
    /// The lease-race schedule: waiting for a fresh lease to cut off.
    armed: bool,
    /// The lease-race schedule: the isolated leader.
    isolated: Option<usize>,
    phase: Phase,
    next_value: u64,
    report: Report,
    trace: Vec<String>,
}

impl Simulation {
    fn new(seed: u64, config: SimConfig) -> Simulation {
        assert!(config.nodes >= 1 && config.clients >= 1 && config.keys >= 1);
        let mut rng = Rng::new(seed);
        let config = config.randomized(&mut rng);
        let voters: Vec<NodeId> = (1..=config.nodes as NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let tick_us = drifted(&mut rng, &config);
                SimNode::new(id, Persisted::bootstrap(voters.clone()), tick_us)
            })
            .collect();
        Simulation {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            blocked: vec![vec![false; config.nodes]; config.nodes],
            slow: vec![vec![1; config.nodes]; config.nodes],
            loss: 0.0,
            clients: (0..config.clients).map(|_| Client::default()).collect(),
            history: Vec::new(),
            txns: Vec::new(),
            checker: Checker::default(),
            seen: vec![(Role::Follower, 0); config.nodes],
            lease_reads: vec![0; config.nodes],
            armed: false,
            isolated: None,
            phase: Phase::Faults,
            next_value: 1,
            report: Report { seed, ..Report::default() },
            trace: Vec::new(),
            config,
        }
    }

    fn run(&mut self) -> Result<(), Violation> {
        for i in 0..self.nodes.len() {
            self.start(i);
            let first = self.rng.below(self.nodes[i].tick_us);
            self.schedule(first, Event::Tick(i));
        }
        for c in 0..self.clients.len() {
            let at = self.rng.below(50_000);
            self.schedule(at, Event::Client(c));
        }
        let at = self.fault_delay();
        self.schedule(at, Event::Fault);
        let fault_end = self.config.fault_ms * 1000;
        let heal_end = fault_end + self.config.heal_ms * 1000;
        let end = heal_end + self.config.drain_ms * 1000;
        let mut acked_at_heal = 0;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.time > end {
                break;
            }
            self.now = next.time;
            if self.phase == Phase::Faults && self.now >= fault_end {
                self.heal_all();
                self.phase = Phase::Heal;
                acked_at_heal = self.report.acked_appends;
            }
            if self.phase == Phase::Heal && self.now >= heal_end {
                self.phase = Phase::Drain;
                if self.report.acked_appends == acked_at_heal {
                    return Err(Violation::Liveness("no append acknowledged after healing".into()));
                }
            }
            self.report.events += 1;
            self.handle(next.event)?;
        }
        self.finish()
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Tick(i) => {
                let interval = self.nodes[i].tick_us;
                self.schedule(interval, Event::Tick(i));
                if let Some(raft) = self.nodes[i].raft.as_mut() {
                    raft.tick();
                    self.after(i)?;
                }
            }
            Event::Deliver(msg) => {
                let (from, to) = (msg.from as usize - 1, msg.to as usize - 1);
                if self.blocked[from][to] || !self.nodes[to].is_up() {
                    self.report.dropped += 1;
                    return Ok(());
                }
                if self.config.trace {
                    self.log(format!("deliver {msg}"));
                }
                self.report.delivered += 1;
                self.nodes[to].raft.as_mut().expect("up").step(msg);
                self.after(to)?;
            }
            Event::Client(c) => self.client_step(c)?,
            Event::Timeout(c, request) if self.config.transactions => {
                if self.clients[c].outstanding.is_some_and(|(r, _)| r == request) {
                    self.clients[c].outstanding = None;
                    self.clients[c].hint = None;
                    self.txn_retry(c);
                }
            }
            Event::Timeout(c, request) => {
                if self.clients[c].outstanding.is_some_and(|(r, _)| r == request) {
                    self.clients[c].outstanding = None;
                    self.clients[c].hint = None;
                    self.report.unknown_ops += 1;
                    let at = self.rng.below(5_000);
                    self.schedule(at, Event::Client(c));
                }
            }
            Event::Fault => {
                if self.phase == Phase::Faults {
                    match self.config.schedule {
                        Schedule::Random => {
                            self.inject_fault()?;
                            let at = self.fault_delay();
                            self.schedule(at, Event::Fault);
                        }
                        Schedule::LeaseRace => self.lease_race_step(),
                    }
                }
            }
        }
        Ok(())
    }

    /// Drives node `i` after an input and checks what it did.
    fn after(&mut self, i: usize) -> Result<(), Violation> {
        let mut out = Observed::default();
        let crash_chance =
            if self.phase == Phase::Faults { self.config.crash_on_persist } else { 0.0 };
        self.nodes[i].drive(&mut self.rng, crash_chance, self.config.snapshot_every, &mut out);
        let id = self.nodes[i].id;
        for p in &out.persisted {
            self.checker.persisted(id, *p)?;
        }
        for &(index, term, digest) in &out.restored {
            self.report.snapshots_installed += 1;
            self.checker.restored(id, index, term, digest)?;
        }
        let quorum = self.nodes.len() / 2 + 1;
        for a in &out.applied {
            let disks: Vec<_> = self.nodes.iter().map(|n| &n.store).collect();
            self.checker.applied(id, a, &disks, quorum)?;
        }
        self.report.committed = self.checker.max_committed();
        self.report.compactions += out.compactions;
        for msg in out.messages {
            self.send(msg);
        }
        for (request, reply) in out.replies {
            self.client_reply(request, reply)?;
        }
        if out.crashed {
            self.report.crashes += 1;
            self.log(format!("n{id} crashed while persisting"));
        }
        if self.armed {
            self.maybe_isolate(i);
        }
        let Some(raft) = self.nodes[i].raft.as_ref() else { return Ok(()) };
        raft.assert_invariants();
        let (role, term) = (raft.role(), raft.term());
        self.report.max_term = self.report.max_term.max(term);
        let new_leader = role == Role::Leader && self.seen[i] != (role, term);
        if role == Role::Leader {
            self.checker.leader(id, term)?;
            if new_leader {
                let snapshot_index = raft.status().snapshot_index;
                self.checker.new_leader(id, term, snapshot_index, |x| raft.log_term(x))?;
            }
        }
        let status = raft.status();
        self.lease_reads[i] = status.lease_reads;
        let count = status.protocol_violations;
        if count > 0 {
            return Err(Violation::Protocol { node: id, count });
        }
        self.seen[i] = (role, term);
        if new_leader {
            self.log(format!("n{id} leads term {term}"));
        }
        Ok(())
    }

    fn send(&mut self, msg: Message) {
        let (from, to) = (msg.from as usize - 1, msg.to as usize - 1);
        if to >= self.nodes.len() || self.blocked[from][to] || self.rng.chance(self.loss) {
            self.report.dropped += 1;
            return;
        }
        let delay = self.delay() * self.slow[from][to];
        if self.rng.chance(self.config.duplicate) {
            let again = self.delay() * self.slow[from][to];
            self.schedule(again, Event::Deliver(msg.clone()));
        }
        self.schedule(delay, Event::Deliver(msg));
    }

    fn client_step(&mut self, c: usize) -> Result<(), Violation> {
        if self.config.transactions {
            return self.txn_step(c);
        }
        if self.phase == Phase::Drain || self.clients[c].outstanding.is_some() {
            return Ok(());
        }
        let client = c as u64 + 1;
        let key = self.rng.below(self.config.keys);
        // Clients differ: from mostly appending to mostly reading. While a
        // leader is isolated in the lease race, even clients read from it and
        // odd ones write through the others.
        let append_ratio = match self.isolated {
            Some(_) => [0.0, 1.0][c % 2],
            None => [0.8, 0.5, 0.2, 0.05][c % 4],
        };
        let (kind, request) = if self.rng.chance(append_ratio) {
            let value = self.next_value;
            self.next_value += 1;
            let seq = self.clients[c].seq;
            let command = Command { client, seq, key, value };
            (OpKind::Append { key, value }, Request::Append(command))
        } else {
            (OpKind::Read { key }, Request::Read { key })
        };
        let n = self.nodes.len() as u64;
        let target = match (self.isolated, self.clients[c].hint) {
            (Some(l), _) if c.is_multiple_of(2) => l,
            (Some(l), Some(id)) if id >= 1 && id <= n && id as usize - 1 != l => id as usize - 1,
            (Some(l), _) => (l + 1 + self.rng.below(n - 1) as usize) % n as usize,
            (None, Some(id)) if id >= 1 && id <= n => id as usize - 1,
            (None, _) => self.rng.below(n) as usize,
        };
        let request_id = (client << 40) | self.clients[c].seq;
        self.clients[c].seq += 1;
        self.history.push(HistoryOp {
            client,
            kind,
            invoked: self.now,
            completed: None,
            result: OpResult::Unknown,
        });
        self.clients[c].outstanding = Some((request_id, self.history.len() - 1));
        if self.config.trace {
            self.log(format!("client {client} asks n{} {request:?}", target + 1));
        }
        match self.nodes[target].request(request_id, request) {
            Some(reply) => self.client_reply(request_id, reply)?,
            None => {
                // After healing, clients are patient: liveness is about
                // progress, not about beating a short timeout.
                let patience = if self.phase == Phase::Faults { 1 } else { 10 };
                let at = self.config.client_timeout_us * patience;
                self.schedule(at, Event::Timeout(c, request_id));
            }
        }
        self.after(target)
    }

    /// The node a client sends to: its hint of the leader, or any node.
    fn target(&mut self, c: usize) -> usize {
        let n = self.nodes.len() as u64;
        match self.clients[c].hint {
            Some(id) if id >= 1 && id <= n => id as usize - 1,
            _ => self.rng.below(n) as usize,
        }
    }

    /// Transactions mode: start a transaction (ask a node for a snapshot),
    /// or send its commit (again).
    fn txn_step(&mut self, c: usize) -> Result<(), Violation> {
        if self.clients[c].outstanding.is_some() {
            return Ok(());
        }
        let client = c as u64 + 1;
        let request_id = (client << 40) | self.clients[c].seq;
        self.clients[c].seq += 1;
        let (target, reply) = match &self.clients[c].txn {
            Some(ClientTxn { commit: Some((id, request)), node, .. }) => {
                let (id, request, node) = (*id, request.clone(), *node);
                if self.phase == Phase::Drain {
                    self.txn_end(c, Outcome::Unknown);
                    return Ok(());
                }
                if self.config.trace {
                    self.log(format!("client {client} commits {id:?} at n{}", node + 1));
                }
                (node, self.nodes[node].commit(request_id, id, request))
            }
            _ => {
                if self.phase == Phase::Drain {
                    return Ok(());
                }
                let mut ops = Vec::new();
                for _ in 0..self.rng.range(1, 4) {
                    let key = self.rng.below(self.config.keys);
                    if self.rng.chance(0.5) {
                        ops.push(Op::Read { key, values: Vec::new() });
                    } else {
                        ops.push(Op::Append { key, value: self.next_value });
                        self.next_value += 1;
                    }
                }
                let target = self.target(c);
                self.clients[c].txn =
                    Some(ClientTxn { ops, node: target, commit: None, attempts: 0 });
                let keys = self.config.keys;
                (target, self.nodes[target].request(request_id, Request::Snapshot { keys }))
            }
        };
        self.clients[c].outstanding = Some((request_id, 0));
        match reply {
            Some(reply) => self.client_reply(request_id, reply)?,
            None => {
                let patience = if self.phase == Phase::Faults { 1 } else { 10 };
                let at = self.config.client_timeout_us * patience;
                self.schedule(at, Event::Timeout(c, request_id));
            }
        }
        self.after(target)
    }

    /// Records the client's transaction with `outcome` and schedules the next.
    fn txn_end(&mut self, c: usize, outcome: Outcome) {
        let Some(txn) = self.clients[c].txn.take() else { return };
        match outcome {
            Outcome::Committed => self.report.txn_committed += 1,
            Outcome::Aborted => self.report.txn_aborted += 1,
            Outcome::Unknown => self.report.txn_unknown += 1,
        }
        if txn.ops.iter().any(|op| matches!(op, Op::Append { .. })) && outcome == Outcome::Committed
        {
            self.report.acked_appends += 1;
        }
        if self.config.trace {
            self.log(format!("client {} txn {outcome:?}: {:?}", c + 1, txn.ops));
        }
        self.txns.push(Recorded { ops: txn.ops, outcome });
        let at = self.rng.below(self.config.think_us);
        self.schedule(at, Event::Client(c));
    }

    /// A transaction's request timed out or must be asked again: a commit
    /// goes to another node with the same id, up to `MAX_COMMIT_ATTEMPTS`.
    fn txn_retry(&mut self, c: usize) {
        let n = self.nodes.len() as u64;
        let Some(txn) = self.clients[c].txn.as_mut() else { return };
        if txn.commit.is_none() {
            // No commit was sent: nothing to record.
            self.clients[c].txn = None;
            let at = self.rng.below(5_000);
            self.schedule(at, Event::Client(c));
            return;
        }
        txn.attempts += 1;
        if txn.attempts >= MAX_COMMIT_ATTEMPTS {
            self.txn_end(c, Outcome::Unknown);
            return;
        }
        let node = match self.clients[c].hint {
            Some(id) if id >= 1 && id <= n => id as usize - 1,
            _ => self.rng.below(n) as usize,
        };
        let txn = self.clients[c].txn.as_mut().expect("checked above");
        txn.node = node;
        let at = self.config.reject_backoff_us + self.rng.below(5_000);
        self.schedule(at, Event::Client(c));
    }

    fn txn_reply(&mut self, c: usize, reply: Reply) {
        let seq = self.clients[c].seq;
        let Some(txn) = self.clients[c].txn.as_mut() else { return };
        match reply {
            Reply::Snapshot { ts, lists } => {
                let mut lists = lists;
                let mut written = std::collections::BTreeSet::new();
                for op in &mut txn.ops {
                    match op {
                        Op::Read { key, values } => *values = lists[*key as usize].clone(),
                        Op::Append { key, value } => {
                            lists[*key as usize].push(*value);
                            written.insert(*key);
                        }
                    }
                }
                if written.is_empty() {
                    self.txn_end(c, Outcome::Committed);
                    return;
                }
                let writes = written
                    .into_iter()
                    .map(|k| {
                        let bytes =
                            lists[k as usize].iter().flat_map(|v| v.to_le_bytes()).collect();
                        (k.to_le_bytes().to_vec(), Some(bytes))
                    })
                    .collect();
                let request = CommitRequest {
                    start_ts: ts,
                    isolation: Isolation::Snapshot,
                    writes,
                    ..CommitRequest::default()
                };
                txn.commit = Some((CommandId { client: c as u64 + 1, seq }, request));
                self.schedule(0, Event::Client(c));
            }
            Reply::TxnCommitted { .. } => self.txn_end(c, Outcome::Committed),
            // Definite (see `node`): this attempt never commits, and an
            // earlier attempt with the id could not commit any more either.
            Reply::TxnAborted => self.txn_end(c, Outcome::Aborted),
            Reply::TxnInFlight => self.txn_retry(c),
            Reply::Rejected { leader } => {
                let definite = txn.commit.is_some() && txn.attempts == 0;
                self.clients[c].hint = leader;
                if definite {
                    // Refused before proposing, and no earlier attempt exists.
                    self.txn_end(c, Outcome::Aborted);
                } else {
                    self.txn_retry(c);
                }
            }
            other => unreachable!("transactions get transaction replies, not {other:?}"),
        }
    }

    fn client_reply(&mut self, request: u64, reply: Reply) -> Result<(), Violation> {
        let c = (request >> 40) as usize - 1;
        let Some((r, op)) = self.clients[c].outstanding else { return Ok(()) };
        if r != request {
            return Ok(()); // a late answer to a request given up on
        }
        self.clients[c].outstanding = None;
        if self.config.transactions {
            if self.config.trace {
                self.log(format!("client {} gets {reply:?}", c + 1));
            }
            self.txn_reply(c, reply);
            return Ok(());
        }
        if self.config.trace {
            self.log(format!("client {} gets {reply:?}", c + 1));
        }
        let now = self.now;
        let mut backoff = 0;
        self.history[op].completed = Some(now);
        match reply {
            Reply::Appended { index } => {
                self.history[op].result = OpResult::Appended { index };
                self.checker.acked(now, index);
                self.report.acked_appends += 1;
            }
            Reply::NotApplied => {
                self.history[op].result = OpResult::Failed;
                self.report.failed_appends += 1;
            }
            Reply::Read { values, served_at } => {
                self.history[op].result = OpResult::Read { values, served_at };
                self.checker.read(&self.history[op])?;
                self.report.reads += 1;
            }
            Reply::Rejected { leader } => {
                self.history[op].result = OpResult::Failed;
                self.clients[c].hint = leader;
                backoff = self.config.reject_backoff_us;
            }
            other => unreachable!("appends and reads get no transaction replies: {other:?}"),
        }
        // The lease race makes clients eager while a leader is isolated.
        let think = if self.isolated.is_some() { RACE_THINK_US } else { self.config.think_us };
        let at = backoff + self.rng.below(think);
        self.schedule(at, Event::Client(c));
        Ok(())
    }

    fn inject_fault(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        let i = self.rng.below(n as u64) as usize;
        let up = self.nodes.iter().filter(|x| x.is_up()).count();
        match self.rng.below(100) {
            0..=24 if self.nodes[i].is_up() && up > 1 => {
                self.nodes[i].crash(&mut self.rng);
                self.report.crashes += 1;
                self.log(format!("crash n{}", i + 1));
            }
            0..=49 if !self.nodes[i].is_up() => {
                self.start(i);
                self.after(i)?;
            }
            50..=59 => {
                let sides: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        self.blocked[a][b] = sides[a] != sides[b];
                    }
                }
                self.report.partitions += 1;
                self.log(format!("partition {sides:?}"));
            }
            60..=64 => {
                // Isolate the leader, the classic way to get two nodes that think they lead.
                let leader = self
                    .nodes
                    .iter()
                    .position(|x| x.raft.as_ref().is_some_and(|r| r.role() == Role::Leader));
                let l = leader.unwrap_or(i);
                for a in 0..n {
                    self.blocked[a][l] = a != l;
                    self.blocked[l][a] = a != l;
                }
                self.report.partitions += 1;
                self.log(format!("isolate n{}", l + 1));
            }
            65..=68 => {
                // Cut one link both ways: the others still reach both ends.
                let j = (i + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                if i != j {
                    self.blocked[i][j] = true;
                    self.blocked[j][i] = true;
                    self.report.partitions += 1;
                    self.log(format!("cut n{} - n{}", i + 1, j + 1));
                }
            }
            69..=71 => {
                // One-way: i hears nobody, but everyone hears i.
                for a in 0..n {
                    self.blocked[a][i] = a != i;
                }
                self.report.partitions += 1;
                self.log(format!("n{} deaf", i + 1));
            }
            72..=77 => {
                // Slow links out of and into one node (often the leader):
                // its news reaches the others late, and theirs reach it late.
                let leader = self
                    .nodes
                    .iter()
                    .position(|x| x.raft.as_ref().is_some_and(|r| r.role() == Role::Leader));
                let l = if self.rng.chance(0.7) { leader.unwrap_or(i) } else { i };
                let factor = self.rng.range(5, 30);
                for a in 0..n {
                    if a != l && self.rng.chance(0.7) {
                        self.slow[l][a] = factor;
                        self.slow[a][l] = factor;
                    }
                }
                self.log(format!("slow links at n{} x{factor}", l + 1));
            }
            78..=84 => {
                self.blocked = vec![vec![false; n]; n];
                self.slow = vec![vec![1; n]; n];
                self.log("heal network".into());
            }
            85..=91 => {
                self.loss = [0.0, 0.02, 0.1, 0.3][self.rng.below(4) as usize];
                self.log(format!("loss {}", self.loss));
            }
            92..=99 => {
                let leader = self
                    .nodes
                    .iter()
                    .position(|x| x.raft.as_ref().is_some_and(|r| r.role() == Role::Leader));
                if let Some(l) = leader {
                    let target = self.rng.below(n as u64) + 1;
                    let raft = self.nodes[l].raft.as_mut().expect("leader is up");
                    if raft.transfer_leader(target).is_ok() {
                        self.report.transfers += 1;
                        self.log(format!("transfer n{} -> n{target}", l + 1));
                        self.after(l)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A `Fault` event of the lease-race schedule (see the module doc): heal
    /// an isolated leader, or arm the trigger that isolates the next one.
    fn lease_race_step(&mut self) {
        let n = self.nodes.len();
        if let Some(l) = self.isolated.take() {
            self.blocked = vec![vec![false; n]; n];
            self.log(format!("heal n{}", l + 1));
            // Arm again after a while, so the cluster settles at a random phase.
            let at = self.rng.range(1_000, 40_000);
            self.schedule(at, Event::Fault);
        } else {
            self.armed = true;
        }
    }

    /// Armed: isolates node `i` if it leads and its lease is fresh (a
    /// majority just acknowledged a round it started this tick or the one
    /// before), so the lease has as long as possible left to run.
    fn maybe_isolate(&mut self, i: usize) {
        let Some(raft) = self.nodes[i].raft.as_ref() else { return };
        let Some(lease_ticks) = self.config.raft.lease_ticks() else { return };
        let left = raft.status().lease_ticks_left;
        if left == 0 || left + self.rng.below(2) < lease_ticks {
            return;
        }
        let n = self.nodes.len();
        for a in 0..n {
            self.blocked[a][i] = a != i;
            self.blocked[i][a] = a != i;
        }
        // The worst clocks the drift bound allows: the old leader's runs slow
        // (its lease lasts longest in true time), the others' fast (they time
        // out soonest).
        let (tick, drift) = (self.config.tick_us as f64, self.config.max_drift);
        for (j, node) in self.nodes.iter_mut().enumerate() {
            let rate = if j == i { 1.0 + drift } else { 1.0 - drift };
            node.tick_us = (tick * rate).round().max(1.0) as u64;
        }
        self.armed = false;
        self.isolated = Some(i);
        self.report.lease_isolations += 1;
        self.log(format!("isolate n{} with {left} ticks of lease left", i + 1));
        // Long enough for the others to elect a leader and commit in most
        // seeds; what matters happens within the first lease.
        let at = 2 * self.config.raft.election_ticks * self.config.tick_us;
        self.schedule(at, Event::Fault);
    }

    fn heal_all(&mut self) {
        self.isolated = None;
        self.armed = false;
        let n = self.nodes.len();
        self.blocked = vec![vec![false; n]; n];
        self.slow = vec![vec![1; n]; n];
        self.loss = 0.0;
        for i in 0..n {
            if !self.nodes[i].is_up() {
                self.start(i);
            }
        }
        self.log("heal all".into());
    }

    fn start(&mut self, i: usize) {
        let mut config = self.config.raft.clone();
        config.id = self.nodes[i].id;
        self.nodes[i].tick_us = drifted(&mut self.rng, &self.config);
        let seed = self.rng.next_u64();
        self.nodes[i].start(config, seed).expect("a node restarts from its own disk");
        self.seen[i] = (Role::Follower, 0);
        self.report.lease_reads += std::mem::take(&mut self.lease_reads[i]);
        if self.report.events > 0 {
            self.report.restarts += 1;
        }
        self.log(format!("start n{}", i + 1));
    }

    fn finish(&mut self) -> Result<(), Violation> {
        self.report.lease_reads += self.lease_reads.iter().sum::<u64>();
        self.checker.history(&self.history)?;
        for c in 0..self.clients.len() {
            if self.clients[c].txn.as_ref().is_some_and(|t| t.commit.is_some()) {
                self.txn_end(c, Outcome::Unknown);
            }
        }
        let anomalies = history::check(&self.txns, Isolation::Snapshot);
        if !anomalies.is_empty() {
            let shown: Vec<String> = anomalies.iter().take(5).map(|a| format!("{a:?}")).collect();
            return Err(Violation::Transactions(format!(
                "{} anomalies under snapshot isolation in {} transactions: {}",
                anomalies.len(),
                self.txns.len(),
                shown.join("; ")
            )));
        }
        let mut leader = None;
        let mut states = Vec::new();
        for node in &self.nodes {
            let Some(raft) = node.raft.as_ref() else {
                return Err(Violation::Liveness(format!("n{} is down at the end", node.id)));
            };
            if raft.role() == Role::Leader {
                leader = Some(node.id);
            }
            states.push((node.kv.applied(), node.kv.digest(), node.shard.last_ts()));
        }
        if leader.is_none() {
            return Err(Violation::Liveness("no leader at the end".into()));
        }
        if states.iter().any(|s| *s != states[0]) {
            return Err(Violation::Liveness(format!("replicas differ at the end: {states:?}")));
        }
        Ok(())
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { time: self.now + delay, seq: self.seq, event }));
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) =
            (self.config.min_delay_us, self.config.max_delay_us.max(self.config.min_delay_us + 1));
        if self.rng.chance(self.config.long_delay) {
            self.rng.range(hi, 20 * hi)
        } else {
            self.rng.range(lo, hi)
        }
    }

    fn fault_delay(&mut self) -> u64 {
        let (lo, hi) = self.config.fault_every_ms;
        self.rng.range(lo * 1000, hi.max(lo + 1) * 1000)
    }

    fn log(&mut self, line: String) {
        if self.config.trace {
            self.trace.push(format!("{:>10}us {line}", self.now));
        }
    }
}

/// A tick interval within the configured drift of the nominal one.
fn drifted(rng: &mut Rng, config: &SimConfig) -> u64 {
    let factor = rng.float(1.0 - config.max_drift, 1.0 + config.max_drift);
    ((config.tick_us as f64) * factor).round().max(1.0) as u64
}
