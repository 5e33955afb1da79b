//! A node of a replica set in real time: the Raft core driven by a clock,
//! persisted through a [`FileStore`], talking to its peers over the gRPC
//! transport, applying committed commands to a [`StateMachine`].
//!
//! # Threads
//!
//! The core and everything that touches it run on one OS thread, the
//! *driver* (`raft-<id>`), so the core needs no locks and no tokio, and a
//! blocking `fsync` stalls only this node. The driver waits on one bounded
//! input queue (peer messages from the gRPC service, client proposals and
//! reads) with a timeout until the next tick; it never blocks on the
//! network: outgoing messages go to the transport's per-peer queues
//! ([`transport::Outbox`]), which drop when full. The tokio runtime the node
//! was started on runs the gRPC server and the per-peer sender tasks.
//!
//! # The driver's loop
//!
//! 1. Catch up the clock: one `tick` per elapsed tick interval of the
//!    monotonic clock, *before* handling inputs, so a stalled driver (a slow
//!    fsync) never serves a lease read with a stale clock: a stall makes the
//!    node's ticks late, and the catch-up makes them count real time again.
//! 2. Handle the inputs that are queued (up to a bound).
//! 3. Drain the core's `Ready`s as `raft`'s module doc requires, with both
//!    relaxations it allows: send a leader's appends and heartbeats, apply
//!    the committed entries (answering their proposals) and answer reads
//!    whose index is applied, then persist and sync, then send the other
//!    messages (a `Ready` with a snapshot to install is persisted before it
//!    is applied); take a snapshot every `snapshot_every` applied entries.
//!
//! # Lease reads without the driver
//!
//! A read under the leader's lease would cost a round trip through the
//! driver's queue (two thread switches, and a wait behind the fsync the
//! driver may be doing). Instead the driver publishes a `LeaseView`:
//! the instant its lease ends on the monotonic clock, the index of the
//! first entry of its term, and its applied index. [`Node::holds_lease`] checks it
//! from the caller's thread; when it says yes, the caller reads the state
//! machine directly. That is the read the driver would have served at that
//! instant:
//!
//! - The end is the instant of the tick at which the core's lease ends
//!   (`next_tick + (lease_ticks_left - 1) * tick`), on the nominal tick
//!   schedule, which never runs behind real time (ticks are caught up
//!   before anything else), so checking it against `Instant::now()` in
//!   any thread is the core's check done at that instant, or stricter.
//! - The view is republished after every `Ready` is taken and *before* its
//!   messages are sent, so anything that ends the lease early (a
//!   leadership transfer's `TimeoutNow`, stepping down after removing
//!   itself) revokes it before another node can act on it; a transfer
//!   revokes it as soon as it is asked for, and a stopped driver revokes it.
//! - The index it carries, the first of the leader's term
//!   ([`Raft::term_start_index`]), is above every entry committed before
//!   this term (the lease needs an entry of its term committed), and every
//!   command this leader acknowledged was applied before it was answered;
//!   so once the applied index reaches it, the state machine holds
//!   everything acknowledged before the check. Entries committed but not
//!   yet applied were acknowledged to nobody and are visible nowhere (only
//!   the leader serves reads), so the read is ordered before them. Waiting
//!   for the current commit index instead, as the first version did, sent
//!   most reads under write load through the driver: the view's applied
//!   index trails the commit index while each batch applies.
//!
//! A failed write stops the driver (durability unknown): pending requests
//! are answered `Ambiguous`, and the node must be restarted, which recovers
//! from the store.
//!
//! # Answers
//!
//! A proposal is answered when the entry at its index is applied: with the
//! state machine's answer if the entry is the proposal (same term), with
//! [`Error::ProposalDropped`] if another leader's entry took the index. If
//! the node stops first, or a snapshot from the leader jumps over the index,
//! the answer is [`Error::Ambiguous`]: the command may or may not have been
//! applied, and the caller must not guess.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::raft::{Config, Raft, Ready, Status};
use crate::storage::{FileStore, FileStoreOptions, LogStore, persist_ready};
use crate::transport::{self, Outbox, ShardHandler, ShardSlot, TransportConfig, TransportStats};
use crate::types::{Index, NodeId, Payload, Persisted, Term};

/// The application state a replica set agrees on.
///
/// `apply` must be deterministic: every replica applies the same commands in
/// the same order and must reach the same state. `restore(snapshot())` must
/// give back the same state.
pub trait StateMachine: Send + 'static {
    /// Applies the committed command at `index`; returns the answer for
    /// whoever proposed it. An error (the state machine's storage failed)
    /// stops the node rather than let it diverge: it must be restarted,
    /// and recovers from its log.
    fn apply(&mut self, index: Index, command: &[u8]) -> std::result::Result<Vec<u8>, String>;
    /// Answers a read-only query from the current state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
    /// The whole state, serialized; an error stops the node like `apply`'s.
    fn snapshot(&self) -> std::result::Result<Vec<u8>, String>;
    /// Replaces the state with a snapshot's; an error stops the node.
    fn restore(&mut self, snapshot: &[u8]) -> std::result::Result<(), String>;
}

/// How to run one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// The other founding voters and their `host:port`.
    pub peers: BTreeMap<NodeId, String>,
    /// Where the log store lives.
    pub dir: PathBuf,
    /// One tick of the Raft core (its `election_ticks` and `heartbeat_ticks`
    /// count these).
    pub tick: Duration,
    /// The core's configuration (`id` is set from `id`).
    pub raft: Config,
    pub transport: TransportConfig,
    pub store: FileStoreOptions,
    /// Inputs (peer messages, proposals, reads) queued before new ones are
    /// refused.
    pub input_queue: usize,
    /// Take a snapshot every this many applied entries.
    pub snapshot_every: u64,
}

impl NodeConfig {
    pub fn new(id: NodeId, peers: BTreeMap<NodeId, String>, dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            id,
            peers,
            dir: dir.into(),
            tick: Duration::from_millis(50),
            raft: Config::new(id),
            transport: TransportConfig::default(),
            store: FileStoreOptions::default(),
            input_queue: 8192,
            snapshot_every: 10_000,
        }
    }
}

/// What the driver publishes for lease reads from other threads (module doc).
#[derive(Clone, Copy, Debug, Default)]
struct LeaseView {
    /// When the lease ends; `None`: no lease.
    until: Option<Instant>,
    /// The first index of the leader's term: a lease read waits until it is applied.
    term_start: Index,
    /// The state machine has applied at least this index.
    applied: Index,
}

/// What a node looks like from outside.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub raft: Status,
    /// Set when the driver stopped on an error (the node must be restarted).
    pub failed: Option<Error>,
}

enum Input {
    Message(Message),
    Propose { command: Vec<u8>, reply: oneshot::Sender<Result<Vec<u8>>> },
    Read { query: Vec<u8>, reply: oneshot::Sender<Result<Vec<u8>>> },
    Transfer { target: NodeId, reply: oneshot::Sender<Result<()>> },
}

/// The gRPC service's way into the driver: never blocks.
struct Inbox(SyncSender<Input>);

impl transport::Inbox for Inbox {
    fn deliver(&self, msg: Message) -> std::result::Result<bool, tonic::Status> {
        match self.0.try_send(Input::Message(msg)) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Err(tonic::Status::unavailable("node stopped")),
        }
    }
}

/// A running node. Stop it with [`Node::stop`]; dropping it stops it too,
/// without waiting.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    inputs: SyncSender<Input>,
    status: Arc<Mutex<NodeStatus>>,
    lease: Arc<Mutex<LeaseView>>,
    stats: Arc<TransportStats>,
    stopping: Arc<AtomicBool>,
    driver: Option<std::thread::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    shard: ShardSlot,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Message(m) => write!(f, "Message({m})"),
            Input::Propose { .. } => write!(f, "Propose"),
            Input::Read { .. } => write!(f, "Read"),
            Input::Transfer { target, .. } => write!(f, "Transfer({target})"),
        }
    }
}

impl Node {
    /// Starts a node on the current tokio runtime, serving its peers on
    /// `listener`. A new directory bootstraps a replica set of `id` and its
    /// peers; an existing one is recovered (recovery is the normal start).
    pub async fn start(
        config: NodeConfig,
        mut state_machine: impl StateMachine,
        listener: tokio::net::TcpListener,
    ) -> Result<Node> {
        let runtime = tokio::runtime::Handle::current();
        let voters = config.peers.keys().copied().chain([config.id]);
        let store =
            FileStore::open(&config.dir, config.store.clone(), &Persisted::bootstrap(voters))?;
        let persisted = store.load()?;
        if persisted.snapshot.index > 0 {
            state_machine.restore(&persisted.snapshot.data).map_err(Error::Corrupt)?;
        }
        let snapshot_index = persisted.snapshot.index;
        let mut raft_config = config.raft.clone();
        raft_config.id = config.id;
        let raft = Raft::new(raft_config, persisted, seed(config.id))?;
        let status = Arc::new(Mutex::new(NodeStatus { raft: raft.status(), failed: None }));
        let lease = Arc::new(Mutex::new(LeaseView::default()));
        let stats = Arc::new(TransportStats::default());
        let (inputs, rx) = sync_channel(config.input_queue.max(1));

        let shard = ShardSlot::default();
        let service = transport::Service::new(
            config.id,
            Inbox(inputs.clone()),
            &config.transport,
            stats.clone(),
            shard.clone(),
        );
        let (shutdown, signal) = oneshot::channel::<()>();
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = runtime.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = signal.await;
                })
                .await;
        });

        let outbox = Outbox::start(&runtime, &config.peers, &config.transport, stats.clone());
        let stopping = Arc::new(AtomicBool::new(false));
        let mut driver = Driver {
            raft,
            store,
            state_machine,
            outbox,
            applied: snapshot_index,
            snapshot_every: config.snapshot_every.max(1),
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_read: 0,
            status: status.clone(),
            lease: lease.clone(),
            tick: config.tick,
            next_tick: Instant::now() + config.tick,
        };
        let flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raft-{}", config.id))
            .spawn(move || driver.run(rx, &flag))
            .map_err(|e| Error::Io(format!("spawn driver thread: {e}")))?;
        Ok(Node {
            id: config.id,
            inputs,
            status,
            lease,
            stats,
            stopping,
            driver: Some(thread),
            server: Some(server),
            shutdown: Some(shutdown),
            shard,
        })
    }

    /// Serves shard operations other nodes forward here with `handler`
    /// (set once; later calls are ignored). Until then they are refused.
    pub fn serve_shard(&self, handler: Arc<dyn ShardHandler>) {
        let _ = self.shard.set(handler);
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn status(&self) -> NodeStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether this node leads under a lease that holds now and its state
    /// machine has applied what the lease needs (module doc): if so, a read
    /// of the state machine made after this call is linearizable, without a
    /// trip through the driver. `false` says nothing: ask [`Node::read`].
    pub fn holds_lease(&self) -> bool {
        let view = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        view.applied >= view.term_start && view.until.is_some_and(|until| Instant::now() < until)
    }

    pub fn transport_stats(&self) -> &TransportStats {
        &self.stats
    }

    /// Proposes `command`; answers once it is applied (see the module doc).
    pub async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.input(Input::Propose { command, reply })?;
        answer.await.unwrap_or(Err(Error::Ambiguous("the node stopped")))
    }

    /// Queues `command` for proposal now (so proposals submitted in some
    /// order from one thread reach the core in that order) and returns a
    /// future of its answer, as [`Node::propose`]'s. Needs no runtime to await.
    pub fn submit(
        &self,
        command: Vec<u8>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<u8>>> + Send + 'static> {
        let (reply, answer) = oneshot::channel();
        self.input(Input::Propose { command, reply })?;
        Ok(async move { answer.await.unwrap_or(Err(Error::Ambiguous("the node stopped"))) })
    }

    /// Queues a linearizable read now, as [`Node::read`].
    pub fn submit_read(
        &self,
        query: Vec<u8>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<u8>>> + Send + 'static> {
        let (reply, answer) = oneshot::channel();
        self.input(Input::Read { query, reply })?;
        Ok(async move { answer.await.unwrap_or(Err(Error::NotLeader { leader: None })) })
    }

    /// A linearizable read: `StateMachine::query` at a state that includes
    /// every command acknowledged before the call (leader lease or read index).
    pub async fn read(&self, query: Vec<u8>) -> Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.input(Input::Read { query, reply })?;
        answer.await.unwrap_or(Err(Error::NotLeader { leader: None }))
    }

    /// Hands leadership to `target` (this node must lead).
    pub async fn transfer_leader(&self, target: NodeId) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.input(Input::Transfer { target, reply })?;
        answer.await.unwrap_or(Err(Error::NotLeader { leader: None }))
    }

    fn input(&self, input: Input) -> Result<()> {
        match self.inputs.try_send(input) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(Error::NotLeader { leader: None }),
        }
    }

    /// Stops the node: the driver finishes its current step, pending
    /// requests are answered `Ambiguous`, the server stops listening.
    pub async fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.driver.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), server).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A seed for the node's election timeouts: differs between nodes and runs.
fn seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

type Reply = oneshot::Sender<Result<Vec<u8>>>;

struct PendingRead {
    query: Vec<u8>,
    reply: Reply,
    index: Option<Index>,
}

struct Driver<S> {
    raft: Raft,
    store: FileStore,
    state_machine: S,
    outbox: Outbox,
    applied: Index,
    snapshot_every: u64,
    /// Proposals by log index: the term they were proposed in, and whom to answer.
    proposals: BTreeMap<Index, (Term, Reply)>,
    reads: BTreeMap<u64, PendingRead>,
    next_read: u64,
    status: Arc<Mutex<NodeStatus>>,
    lease: Arc<Mutex<LeaseView>>,
    /// One tick, and the instant the next one is due (the nominal schedule).
    tick: Duration,
    next_tick: Instant,
}

/// Most inputs handled between two looks at the clock.
const INPUT_BATCH: usize = 256;

impl<S: StateMachine> Driver<S> {
    fn run(&mut self, rx: Receiver<Input>, stopping: &AtomicBool) {
        let result = loop {
            if stopping.load(Ordering::SeqCst) {
                break Ok(());
            }
            let wait = self.next_tick.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            };
            // The clock first (see the module doc).
            while Instant::now() >= self.next_tick {
                self.raft.tick();
                self.next_tick += self.tick;
            }
            if let Some(input) = first {
                self.handle(input);
                for input in rx.try_iter().take(INPUT_BATCH) {
                    self.handle(input);
                }
            }
            if let Err(e) = self.drive() {
                break Err(e);
            }
            self.publish_lease();
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status.raft = self.raft.status();
        };
        // No more lease reads: nothing is applied any more.
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = LeaseView::default();
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.failed = result.err();
        // Pending requests: dropping their senders answers them (Ambiguous
        // for proposals, NotLeader for reads).
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Message(msg) => self.raft.step(msg),
            Input::Propose { command, reply } => match self.raft.propose(command) {
                Ok(index) => {
                    let term = self.raft.term();
                    if let Some((_, old)) = self.proposals.insert(index, (term, reply)) {
                        // An earlier proposal at this index lost it to ours.
                        let _ = old.send(Err(Error::ProposalDropped));
                    }
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Input::Read { query, reply } => {
                let id = self.next_read;
                self.next_read += 1;
                match self.raft.read_index(id) {
                    Ok(()) => {
                        self.reads.insert(id, PendingRead { query, reply, index: None });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Input::Transfer { target, reply } => {
                // A transfer ends the lease (the target will not wait for
                // it): revoke it before the core can send `TimeoutNow`.
                self.lease.lock().unwrap_or_else(|e| e.into_inner()).until = None;
                let _ = reply.send(self.raft.transfer_leader(target));
            }
        }
    }

    fn lock_lease(&self) -> std::sync::MutexGuard<'_, LeaseView> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the core's lease as an instant (module doc).
    fn publish_lease(&self) {
        let left = self.raft.lease_ticks_left();
        let until = (left > 0).then(|| {
            let ticks = u32::try_from(left - 1).unwrap_or(u32::MAX);
            self.next_tick + self.tick.saturating_mul(ticks)
        });
        let term_start = self.raft.term_start_index();
        let mut view = self.lock_lease();
        view.until = until;
        view.term_start = term_start;
        view.applied = self.applied;
    }

    /// Step 3 of the loop: drain every `Ready` (see `raft`'s module doc).
    fn drive(&mut self) -> Result<()> {
        while self.raft.has_ready() {
            let ready = self.raft.ready();
            // Before any of its messages leave (module doc).
            self.publish_lease();
            // The two relaxations of `raft`'s module doc: a leader's appends
            // leave before its fsync, and entries committed before this
            // `Ready` are applied (and their proposals answered) before it.
            let (early, late) = ready.messages.split_at(ready.early_messages);
            for msg in early {
                self.outbox.send(msg);
            }
            let apply_first = ready.snapshot.is_none();
            if apply_first {
                self.apply(&ready)?;
            }
            persist_ready(&mut self.store, &ready)?;
            for msg in late {
                self.outbox.send(msg);
            }
            if !apply_first {
                self.apply(&ready)?;
            }
            let applied = self.applied;
            if applied >= self.raft.status().snapshot_index + self.snapshot_every {
                let data = self.state_machine.snapshot().map_err(Error::ApplyFailed)?;
                self.raft.compact(applied, data)?;
            }
        }
        Ok(())
    }

    /// Steps 3 and 4 of `raft`'s contract for `ready`: restore its
    /// snapshot, apply its committed entries and answer their proposals,
    /// then answer the reads whose index is applied.
    fn apply(&mut self, ready: &Ready) -> Result<()> {
        if let Some(snapshot) = &ready.snapshot {
            self.state_machine.restore(&snapshot.data).map_err(Error::Corrupt)?;
            self.applied = snapshot.index;
            let later = self.proposals.split_off(&(snapshot.index + 1));
            for (_, (_, reply)) in std::mem::replace(&mut self.proposals, later) {
                let _ = reply.send(Err(Error::Ambiguous("a snapshot replaced the log")));
            }
        }
        for entry in &ready.committed {
            let answer = match &entry.payload {
                Payload::Command(command) => {
                    self.state_machine.apply(entry.index, command).map_err(Error::ApplyFailed)?
                }
                Payload::Empty | Payload::Membership(_) => Vec::new(),
            };
            self.applied = entry.index;
            if let Some((term, reply)) = self.proposals.remove(&entry.index) {
                let result =
                    if term == entry.term { Ok(answer) } else { Err(Error::ProposalDropped) };
                let _ = reply.send(result);
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
                    if let Some(pending) = self.reads.remove(&read.id) {
                        let _ = pending.reply.send(Err(Error::NotLeader { leader: None }));
                    }
                }
            }
        }
        let applied = self.applied;
        let servable: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|i| i <= applied))
            .map(|(id, _)| *id)
            .collect();
        for id in servable {
            let read = self.reads.remove(&id).expect("listed above");
            let _ = read.reply.send(Ok(self.state_machine.query(&read.query)));
        }
        self.lock_lease().applied = applied;
        Ok(())
    }
}
