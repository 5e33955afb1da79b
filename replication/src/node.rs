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
//! # Snapshots as files
//!
//! Every `snapshot_every` applied entries the driver asks the state machine
//! for a snapshot into an empty staging directory of the log store
//! ([`FileStore::staging_dir`]): a replicated shard writes an engine
//! checkpoint there (hard links to its tables) and returns only small
//! metadata. The driver lists the files (names, sizes, CRC32C; a file
//! that is a hard link to the previous snapshot's keeps its checksum, so
//! only tables written since are read) and hands
//! metadata and list to the core ([`Raft::compact_with_files`]); storing
//! the snapshot moves the directory into place beside the log (see
//! `storage::file`). A state machine that writes no files has snapshots
//! that are all inline, as before.
//!
//! A `Snapshot` message carries only that list. When one arrives that the
//! core would install (above the commit index, not matching the log) and
//! its files are not here, the driver does not step it yet: it starts a
//! fetch ([`transport::fetch_snapshot`]) on the tokio runtime, never on the
//! driver thread, at most one at a time (a second snapshot message while
//! one runs is dropped; Raft resends). The fetch streams the files from
//! the sender in chunks into `DIR/fetch/`, checks every chunk and file,
//! fsyncs, and leaves its outcome in a slot the driver polls each loop
//! (no lock is held across an await). On success the driver renames the
//! directory to the snapshot's staging name and only then steps the
//! message; the core installs it, the store moves the files into place,
//! and the state machine restores from them. A failed or stale fetch (the
//! leader compacted again and no longer has those files) is dropped and
//! counted; the leader sends its newer snapshot when its own retry timer
//! fires. So that a fetch slower than the leader's snapshot interval does
//! not chase snapshots forever, a leader takes no new snapshot while it
//! is sending one ([`Raft::sending_snapshot`]), for up to
//! `SNAPSHOT_HOLD_INTERVALS` intervals (its log stays bounded). On start, the stored snapshot's files are verified in full
//! (sizes and checksums) before the state machine restores from them: a
//! damaged file stops the start with [`Error::CorruptFile`].
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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::message::{Body, Message};
use crate::raft::{Config, Raft, Ready, Status};
use crate::storage::{FileStore, FileStoreOptions, LogStore, persist_ready, snapshot_files};
use crate::transport::{self, Outbox, ShardHandler, ShardSlot, TransportConfig, TransportStats};
use crate::types::{Index, NodeId, Payload, Persisted, SnapshotFile, Term};

/// The application state a replica set agrees on.
///
/// `apply` must be deterministic: every replica applies the same commands in
/// the same order and must reach the same state. `restore(snapshot(dir),
/// dir)` must give back the same state, also on another node to which the
/// files of `dir` were copied.
pub trait StateMachine: Send + 'static {
    /// Applies the committed command at `index`; returns the answer for
    /// whoever proposed it. An error (the state machine's storage failed)
    /// stops the node rather than let it diverge: it must be restarted,
    /// and recovers from its log.
    fn apply(&mut self, index: Index, command: &[u8]) -> std::result::Result<Vec<u8>, String>;
    /// Answers a read-only query from the current state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
    /// The whole state: files written into `dir` (an existing, empty
    /// directory; files there must never change afterwards) and returned
    /// bytes, which should be small (they travel in one Raft message and
    /// are stored whole). An error stops the node like `apply`'s.
    fn snapshot(&self, dir: &Path) -> std::result::Result<Vec<u8>, String>;
    /// Replaces the state with a snapshot's: `data` as `snapshot` returned
    /// it and `dir` holding its files (verified; absent if it wrote none).
    /// The files belong to the log store: read or hard-link them, never
    /// modify or move them. An error stops the node.
    fn restore(&mut self, data: &[u8], dir: &Path) -> std::result::Result<(), String>;
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
    /// Set to `true` when the node stops (see `start`).
    closing: tokio::sync::watch::Sender<bool>,
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
        let snapshot = &persisted.snapshot;
        if snapshot.index > 0 {
            let dir = store.snapshot_dir(snapshot.index, snapshot.term);
            snapshot_files::verify(&dir, &snapshot.files, true)?;
            state_machine.restore(&snapshot.data, &dir).map_err(Error::Corrupt)?;
        }
        // What an earlier run was fetching is of no use now.
        let fetch_root = config.dir.join("fetch");
        if fetch_root.exists() {
            std::fs::remove_dir_all(&fetch_root)
                .map_err(|e| Error::Io(format!("{}: remove: {e}", fetch_root.display())))?;
        }
        let snapshot_index = persisted.snapshot.index;
        let last_snapshot =
            (snapshot_index, persisted.snapshot.term, persisted.snapshot.files.clone());
        let mut raft_config = config.raft.clone();
        raft_config.id = config.id;
        let raft = Raft::new(raft_config, persisted, seed(config.id))?;
        let status = Arc::new(Mutex::new(NodeStatus { raft: raft.status(), failed: None }));
        let lease = Arc::new(Mutex::new(LeaseView::default()));
        let stats = Arc::new(TransportStats::default());
        let (inputs, rx) = sync_channel(config.input_queue.max(1));

        let shard = ShardSlot::default();
        // Set when the node stops: ends the server and the peers' streams
        // into it, which never end on their own.
        let (closing, closed) = tokio::sync::watch::channel(false);
        let service = transport::Service::new(
            config.id,
            Inbox(inputs.clone()),
            &config.transport,
            stats.clone(),
            shard.clone(),
            Some(config.dir.clone()),
            closed.clone(),
        );
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let keepalive = Some(config.transport.rpc_timeout);
        let server = runtime.spawn(async move {
            let mut closed = closed;
            let _ = tonic::transport::Server::builder()
                .http2_keepalive_interval(keepalive)
                .http2_keepalive_timeout(keepalive)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = closed.wait_for(|c| *c).await;
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
            fetch: Fetcher {
                runtime: runtime.clone(),
                peers: config.peers.clone(),
                transport: config.transport.clone(),
                stats: stats.clone(),
                root: fetch_root,
                running: None,
                done: Arc::new(Mutex::new(None)),
                // Distinct from an earlier run's in this process, whose
                // task may still be writing.
                started: seed(config.id) >> 16,
            },
            last_snapshot,
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
            closing,
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
        self.closing.send_replace(true);
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
        self.closing.send_replace(true);
    }
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
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
    fetch: Fetcher,
    /// The index, term and files of the latest snapshot, stored or about
    /// to be: a new checkpoint's hard links to its files reuse their
    /// checksums (`snapshot_files::describe_reusing`).
    last_snapshot: (Index, Term, Vec<SnapshotFile>),
}

/// What a finished fetch leaves for the driver: the snapshot message it
/// was for, and the directory of its files or why it failed.
type FetchOutcome = (Message, std::result::Result<PathBuf, String>);

/// The driver's side of snapshot fetches (module doc).
struct Fetcher {
    runtime: tokio::runtime::Handle,
    peers: BTreeMap<NodeId, String>,
    transport: TransportConfig,
    stats: Arc<TransportStats>,
    /// `DIR/fetch`: each fetch writes into a directory of its own here.
    root: PathBuf,
    /// The snapshot being fetched, if any (at most one at a time).
    running: Option<(Index, Term)>,
    /// Set by the fetch task when it ends; taken by the driver.
    done: Arc<Mutex<Option<FetchOutcome>>>,
    /// Fetches started, naming their directories.
    started: u64,
}

/// How many `snapshot_every` intervals a leader lets its log grow while a
/// follower is being sent its snapshot, before it compacts anyway.
const SNAPSHOT_HOLD_INTERVALS: u64 = 4;

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
            if let Err(e) = self.finish_fetch() {
                break Err(e);
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
            Input::Message(msg) => {
                if self.needs_fetch(&msg) {
                    self.start_fetch(msg);
                } else {
                    self.raft.step(msg);
                }
            }
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

    /// Whether `msg` is a snapshot the core would install whose files are
    /// not here yet (module doc).
    fn needs_fetch(&self, msg: &Message) -> bool {
        let Body::Snapshot { snapshot, .. } = &msg.body else { return false };
        !snapshot.files.is_empty()
            && msg.term >= self.raft.term()
            && snapshot.index > self.raft.commit_index()
            && self.raft.log_term(snapshot.index) != Some(snapshot.term)
    }

    /// Starts fetching the files of the snapshot in `msg` from its sender,
    /// unless a fetch is running (then `msg` is dropped: Raft resends).
    fn start_fetch(&mut self, msg: Message) {
        let f = &mut self.fetch;
        let Body::Snapshot { snapshot, .. } = &msg.body else { return };
        if f.running.is_some() {
            bump(&f.stats.snapshot_fetches_busy);
            return;
        }
        let Some(addr) = f.peers.get(&msg.from).cloned() else {
            bump(&f.stats.snapshot_fetch_failures);
            return;
        };
        f.running = Some((snapshot.index, snapshot.term));
        f.started += 1;
        let dir = f.root.join(format!("{}-{}-{}", snapshot.index, snapshot.term, f.started));
        let (index, term, files) = (snapshot.index, snapshot.term, snapshot.files.clone());
        let (transport, stats, done) = (f.transport.clone(), f.stats.clone(), f.done.clone());
        f.runtime.spawn(async move {
            let result =
                transport::fetch_snapshot(&addr, index, term, &files, &dir, &transport, &stats)
                    .await;
            if result.is_err() {
                // Bounded by nothing but the disk: do not leave it behind.
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
            }
            *done.lock().unwrap_or_else(|e| e.into_inner()) = Some((msg, result));
        });
    }

    /// Takes a finished fetch's outcome: on success, moves its files to
    /// the snapshot's staging directory and steps the message; on failure,
    /// drops it (module doc). Only a failing log store is an error.
    fn finish_fetch(&mut self) -> Result<()> {
        let outcome = self.fetch.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((msg, result)) = outcome else { return Ok(()) };
        self.fetch.running = None;
        let Body::Snapshot { snapshot, .. } = &msg.body else { return Ok(()) };
        let fetched = match result {
            Ok(dir) => dir,
            Err(_) => {
                bump(&self.fetch.stats.snapshot_fetch_failures);
                return Ok(());
            }
        };
        bump(&self.fetch.stats.snapshot_fetches);
        let staged = self.store.staged_path(snapshot.index, snapshot.term);
        if staged.exists() {
            std::fs::remove_dir_all(&staged)
                .map_err(|e| Error::Io(format!("{}: remove: {e}", staged.display())))?;
        }
        std::fs::rename(&fetched, &staged)
            .map_err(|e| Error::Io(format!("{}: rename: {e}", fetched.display())))?;
        snapshot_files::sync_dir(self.store.dir())?;
        let (index, term) = (snapshot.index, snapshot.term);
        self.raft.step(msg);
        // The core may have moved past it meanwhile and ignored it: then
        // the files are of no use (an install takes effect in the core at
        // once, so its snapshot index tells).
        if self.raft.status().snapshot_index != index {
            let _ = std::fs::remove_dir_all(self.store.staged_path(index, term));
        }
        Ok(())
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
            let base = self.raft.status().snapshot_index;
            // While a follower fetches the current snapshot, a newer one
            // would leave it a snapshot behind the log once it installs
            // (module doc); hold off, for a bounded number of intervals.
            let hold = self.raft.sending_snapshot()
                && applied < base + self.snapshot_every * SNAPSHOT_HOLD_INTERVALS;
            if applied >= base + self.snapshot_every && !hold {
                let term = self.raft.log_term(applied).ok_or_else(|| {
                    Error::Corrupt(format!("applied entry {applied} is not in the log"))
                })?;
                let dir = self.store.staging_dir(applied, term)?;
                let data = self.state_machine.snapshot(&dir).map_err(Error::ApplyFailed)?;
                let (index, last_term, files) = &self.last_snapshot;
                let previous = self.store.snapshot_dir(*index, *last_term);
                let files =
                    snapshot_files::describe_reusing(&dir, Some((&previous, files.as_slice())))?;
                self.last_snapshot = (applied, term, files.clone());
                self.raft.compact_with_files(applied, data, files)?;
            }
        }
        Ok(())
    }

    /// Steps 3 and 4 of `raft`'s contract for `ready`: restore its
    /// snapshot, apply its committed entries and answer their proposals,
    /// then answer the reads whose index is applied.
    fn apply(&mut self, ready: &Ready) -> Result<()> {
        if let Some(snapshot) = &ready.snapshot {
            self.last_snapshot = (snapshot.index, snapshot.term, snapshot.files.clone());
            let dir = self.store.snapshot_dir(snapshot.index, snapshot.term);
            self.state_machine.restore(&snapshot.data, &dir).map_err(Error::Corrupt)?;
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
