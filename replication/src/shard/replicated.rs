//! [`ReplicatedShard`]: `strata_txn::Shard` over a Raft replica set, one per
//! node, each replica applying the log to its own `strata_lsm::Db`.
//!
//! # Life of a replicated commit (`ReplicatedShard::commit_with_id`)
//!
//! 1. A leader round: under a lease that holds now, checked on the caller's
//!    thread ([`Node::holds_lease`]), nothing more; otherwise a read through
//!    the driver ([`Node::submit_read`], a read-index round without a
//!    lease); it answers once this node leads, has
//!    committed an entry of its term, and has applied up to the read index,
//!    so every entry that committed before is in the engine. A follower
//!    answers [`ShardError::NotLeader`] naming the leader.
//! 2. If the command id was applied before, its first answer is returned
//!    (a retry through a leader change never commits twice). A commit
//!    through the `Shard` trait has a fresh id and skips this look.
//! 3. Under the sequencer lock: if the id is in flight here, answer
//!    `Ambiguous` (a retry must not validate against its own first attempt);
//!    otherwise validate against the engine and the
//!    proposals in flight, assign the commit timestamp, and queue the
//!    proposal ([`Node::submit`]), so proposals reach the log in timestamp
//!    order (see `sequencer`).
//! 4. Wait for the answer: the entry committed and was applied here (and is
//!    applied by every replica, see `machine`). [`crate::Error::Ambiguous`]
//!    from the node becomes [`ShardError::Ambiguous`]: the outcome is not
//!    guessed; retrying with the same id tells it.
//!
//! # Reads
//!
//! `snapshot_ts` is the newest applied commit timestamp after a leader round
//! (every commit at or below it is applied here, every later one is above
//! it: `machine`'s invariant), so a transaction's snapshot is linearizable.
//! `get` and `scan` at a timestamp at or below the applied one need no
//! round: what is visible there is final on every replica, even on a leader
//! that was just deposed. Only a node that believes it leads serves them; a
//! follower answers `NotLeader` naming the leader. A read above the applied
//! state makes a leader round and waits for the leader's own proposals at
//! or below it, keeping later ones above it.
//!
//! # The engine is rebuilt from the snapshot and the log
//!
//! The Raft log (a [`crate::FileStore`]) and its snapshot are the durable
//! record. A snapshot is an engine checkpoint ([`Db::checkpoint`]: hard
//! links to the engine's tables and a fresh manifest) in the directory the
//! node gives, plus the shard machine's metadata (`applied`, `last_ts`, the
//! outcomes) inline; the store keeps the files beside the log. Each start
//! wipes the engine directory, then rebuilds the engine from the stored
//! checkpoint (tables hard-linked into a new engine generation, the
//! manifest copied: [`strata_lsm::clone_checkpoint`]) and replays the log
//! after it (recovery is the normal start-up path), so engine writes need
//! no fsync of their own. Installing a snapshot from the leader does the
//! same with the checkpoint its files hold once fetched, opening the new
//! generation beside the old one and switching readers over.
//!
//! Taking a checkpoint flushes the memtable on the driver thread (the only
//! writer of the engine, so the checkpoint is exactly the applied state);
//! the shard machine's lock is not held meanwhile.
//!
//! The driver applies under the shard machine's lock, and publishes the
//! newest applied commit timestamp in an atomic after each apply: every
//! transaction start and commit reads it, and taking the lock for that
//! made 64 committers queue on the lock the driver applies under.
//!
//! # Errors through the `Shard` trait
//!
//! A refusal a retry may get past (not the leader, no leader, overloaded)
//! arrives as `strata_txn::Error::Unavailable`, which every layer treats
//! as retryable (SQL: 40001), on reads as well as commits; the others
//! ("outcome unknown", a failed leader) as `strata_txn::Error::Io`. Both
//! carry the [`ShardError`]; [`ShardError::of`] recovers it for callers
//! that branch.
//! Not supported yet: `prepare` / `commit_prepared` / `abort` (multi-shard
//! transactions) fail clearly.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use strata_lsm::{Db, Durability, KeyRange, MAX_TS, WriteBatch};
use strata_txn::{CommitRequest, Hlc, RowIter, Shard, ShardStats, Timestamp};

use crate::error::Error;
use crate::node::{Node, NodeConfig, StateMachine};
use crate::raft::Role;
use crate::shard::command::{Answer, CommandId, ShardCommand, Write};
use crate::shard::machine::{Row, ShardMachine, Versions};
use crate::shard::recent::{self, RECENT_WRITES, RecentWrites};
use crate::shard::sequencer::Sequencer;
use crate::types::{Index, NodeId};

/// What a replicated shard's caller can branch on.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// This node does not lead: send the request to `leader` (at `address`) if known.
    #[error("{}", not_leader(*leader, address.as_deref()))]
    NotLeader { leader: Option<NodeId>, address: Option<String> },
    /// The commit may or may not have been applied (the node stopped, or a
    /// snapshot replaced its log, before the answer). Retry with the same
    /// id to learn the outcome; never assume either.
    #[error("outcome of commit {id:?} unknown: {reason}")]
    Ambiguous { id: CommandId, reason: String },
    /// The replica set refused or failed (no quorum yet, overloaded, proposal
    /// dropped by a leader change, node failed); see [`Error::is_retryable`].
    #[error("replication: {0}")]
    Raft(Error),
    /// Validation or storage failed.
    #[error(transparent)]
    Txn(#[from] strata_txn::Error),
    /// The operation is not available on replicated shards yet.
    #[error("{0} is not supported on replicated shards yet")]
    NotSupported(&'static str),
    /// The leader could not serve a forwarded operation for now (no quorum
    /// yet, overloaded, proposal dropped): nothing was applied; retry.
    #[error("replica set unavailable: {0}")]
    Unavailable(String),
    /// The leader failed a forwarded operation for a reason a retry will
    /// not fix (storage, corruption, unsupported).
    #[error("the leader failed: {0}")]
    Remote(String),
}

/// `NotLeader`'s message: who leads, or that nobody is known to.
fn not_leader(leader: Option<NodeId>, address: Option<&str>) -> String {
    match (leader, address) {
        (None, _) => "no Raft leader is known (an election is under way, or too few replicas \
                      are up for one); retry"
            .to_string(),
        (Some(l), Some(a)) => format!("not the leader: node {l} at {a} leads"),
        (Some(l), None) => format!("not the leader: node {l} leads"),
    }
}

impl ShardError {
    /// The replicated shard's error inside a `strata_txn::Error` that came
    /// through the `Shard` trait, if it is one.
    pub fn of(e: &strata_txn::Error) -> Option<&ShardError> {
        match e {
            strata_txn::Error::Io { source, .. } => source.get_ref()?.downcast_ref(),
            strata_txn::Error::Unavailable { source } => source.downcast_ref(),
            _ => None,
        }
    }

    /// Whether trying again (at the leader) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ShardError::NotLeader { .. } | ShardError::Unavailable(_) => true,
            ShardError::Raft(e) => e.is_retryable(),
            ShardError::Txn(e) => e.is_retryable(),
            ShardError::Ambiguous { .. } | ShardError::NotSupported(_) | ShardError::Remote(_) => {
                false
            }
        }
    }

    /// This error through the `Shard` trait: a transaction error as is; a
    /// refusal that a retry may get past (no leader, unavailable) as
    /// `Unavailable`, which is retryable everywhere (SQLSTATE 40001); the
    /// rest (an unknown outcome, a failed leader) as `Io`.
    pub fn into_txn(self) -> strata_txn::Error {
        match self {
            ShardError::Txn(e) => e,
            other if other.is_retryable() => {
                strata_txn::Error::Unavailable { source: Box::new(other) }
            }
            other => strata_txn::Error::Io {
                path: PathBuf::from("the replica set"),
                source: std::io::Error::other(other),
            },
        }
    }
}

/// Runs a future to completion on this thread. The node's futures wait on
/// channels its driver thread answers, so they need no runtime; do not call
/// this from inside a current-thread tokio runtime that runs the transport.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// The engine a replica applies to, replaced whole when a snapshot is
/// installed (a new generation directory).
#[derive(Debug)]
struct Engine {
    dir: PathBuf,
    options: strata_lsm::Options,
    current: RwLock<(u64, Arc<Db>)>,
}

impl Engine {
    /// Wipes `dir` and opens an empty engine in it (module doc).
    fn open(dir: &Path, options: strata_lsm::Options) -> Result<Engine, String> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("wipe {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let db = Db::open(dir.join("engine-0"), options.clone()).map_err(|e| e.to_string())?;
        Ok(Engine { dir: dir.to_path_buf(), options, current: RwLock::new((0, Arc::new(db))) })
    }

    fn db(&self) -> Arc<Db> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

/// [`Versions`] over the replica's engine, and the index of the keys the
/// most recent commits wrote ([`RecentWrites`]), kept on every replica as it
/// applies; the leader validates young transactions against the index
/// instead of reading the engine for every written key.
#[derive(Debug, Clone)]
struct DbVersions {
    engine: Arc<Engine>,
    recent: Arc<RwLock<RecentWrites>>,
}

impl Versions for DbVersions {
    fn latest(&self, key: &[u8]) -> Result<Option<Timestamp>, String> {
        let db = self.db();
        let floor = db.gc_watermark();
        let newest = db.get_version(key, MAX_TS).map_err(|e| e.to_string())?.map(|(ts, _)| ts);
        Ok(newest.or((floor > 0).then_some(floor)))
    }

    /// From the recent-writes index when it covers `start_ts` (and the
    /// snapshot is not below the GC floor, which `latest` reports as a
    /// version); from the engine otherwise.
    fn newest_since(&self, key: &[u8], start_ts: Timestamp) -> Result<Option<Timestamp>, String> {
        let recent = self.recent.read().unwrap_or_else(|p| p.into_inner());
        recent::newest_since(
            &recent,
            key,
            start_ts,
            || self.db().gc_watermark(),
            || self.latest(key),
        )
    }

    /// Every version in the range, tombstones included
    /// ([`strata_lsm::Scan::first_written_after`]): a key inserted and
    /// deleted again since `ts` counts too (its writers may have read what
    /// the validating transaction writes).
    fn newer_in_range(
        &self,
        range: &KeyRange,
        ts: Timestamp,
    ) -> Result<Option<(Vec<u8>, Timestamp)>, String> {
        let db = self.db();
        let floor = db.gc_watermark();
        if floor > ts {
            return Ok(Some((Vec::new(), floor)));
        }
        let mut scan = db.scan(range.clone(), MAX_TS, false).map_err(|e| e.to_string())?;
        scan.first_written_after(ts).map_err(|e| e.to_string())
    }

    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>, String> {
        self.db().get(key, ts).map_err(|e| e.to_string())
    }

    fn write(&mut self, ts: Timestamp, writes: &[Write]) -> Result<(), String> {
        let mut batch = WriteBatch::new();
        for (key, value) in writes {
            match value {
                Some(v) => batch.put(key, ts, v),
                None => batch.delete(key, ts),
            };
        }
        // The Raft log is the durable record (module doc).
        self.db().write(&batch, Durability::Unlogged).map_err(|e| e.to_string())?;
        // After the engine write: until here the commit is in the
        // sequencer's in-flight set on a leader, which validation checks too.
        let mut recent = self.recent.write().unwrap_or_else(|p| p.into_inner());
        recent.record(ts, writes.iter().map(|(key, _)| key.as_slice()));
        Ok(())
    }

    fn dump(&self) -> Result<Vec<Row>, String> {
        let db = self.db();
        let mut rows = Vec::new();
        for row in db.scan(KeyRange::all(), MAX_TS, false).map_err(|e| e.to_string())? {
            let (key, value) = row.map_err(|e| e.to_string())?;
            let ts = db.get_version(&key, MAX_TS).map_err(|e| e.to_string())?.map_or(0, |v| v.0);
            rows.push((key, ts, value));
        }
        Ok(rows)
    }

    fn reset(&mut self, rows: Vec<Row>, floor: Timestamp) -> Result<(), String> {
        self.forget_recent();
        self.engine.replace(|dir, options| {
            let db = Db::open(dir, options).map_err(|e| e.to_string())?;
            let mut batch = WriteBatch::new();
            for (key, ts, value) in &rows {
                batch.put(key, *ts, value);
            }
            if !batch.is_empty() {
                db.write(&batch, Durability::Buffered).map_err(|e| e.to_string())?;
            }
            db.set_gc_watermark(floor);
            Ok(db)
        })
    }
}

impl DbVersions {
    fn new(engine: Arc<Engine>) -> DbVersions {
        DbVersions { engine, recent: Arc::new(RwLock::new(RecentWrites::new(RECENT_WRITES))) }
    }

    fn db(&self) -> Arc<Db> {
        self.engine.db()
    }

    fn forget_recent(&self) {
        self.recent.write().unwrap_or_else(|p| p.into_inner()).reset();
    }

    /// Writes an engine checkpoint into `dir` (module doc).
    fn checkpoint(&self, dir: &Path) -> Result<(), String> {
        self.db().checkpoint(dir).map(|_| ()).map_err(|e| format!("checkpoint: {e}"))
    }

    /// Replaces the engine with one opened from a clone of the checkpoint
    /// in `dir`, which is left untouched.
    fn restore_checkpoint(&mut self, dir: &Path) -> Result<(), String> {
        self.forget_recent();
        self.engine.replace(|generation, options| {
            strata_lsm::clone_checkpoint(dir, generation)
                .map_err(|e| format!("restore checkpoint {}: {e}", dir.display()))?;
            Db::open(generation, options).map_err(|e| format!("open restored checkpoint: {e}"))
        })
    }
}

impl Engine {
    /// Opens the next generation with `open` (given its fresh directory)
    /// and switches readers over to it.
    fn replace(
        &self,
        open: impl FnOnce(&Path, strata_lsm::Options) -> Result<Db, String>,
    ) -> Result<(), String> {
        let generation = self.current.read().unwrap_or_else(|p| p.into_inner()).0 + 1;
        let dir = self.dir.join(format!("engine-{generation}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("wipe {}: {e}", dir.display()))?;
        }
        let db = open(&dir, self.options.clone())?;
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            (generation, Arc::new(db)),
        );
        let old_dir = self.dir.join(format!("engine-{}", old.0));
        drop(old);
        // Readers may still hold the old engine; its files go once they do.
        let _ = std::fs::remove_dir_all(old_dir);
        Ok(())
    }
}

type Machine = Arc<Mutex<ShardMachine<DbVersions>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The node's [`StateMachine`]: the shard machine behind a lock the shard
/// shares, and its newest applied commit timestamp published beside it, so
/// that the shard's callers read it without taking the lock the driver
/// applies under (every transaction start and commit reads it).
struct Applier {
    machine: Machine,
    last_ts: Arc<AtomicU64>,
}

impl Applier {
    fn publish(&self, machine: &ShardMachine<DbVersions>) {
        self.last_ts.store(machine.last_ts(), Ordering::Release);
    }
}

impl StateMachine for Applier {
    fn apply(&mut self, index: Index, command: &[u8]) -> Result<Vec<u8>, String> {
        let mut machine = lock(&self.machine);
        let answer = machine.apply(index, command)?;
        self.publish(&machine);
        Ok(answer.encode().to_vec())
    }

    /// Every query answers the newest applied commit timestamp.
    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.last_ts.load(Ordering::Acquire).to_le_bytes().to_vec()
    }

    /// An engine checkpoint into `dir`, and the machine's metadata (module
    /// doc). Called on the driver thread, the engine's only writer, so the
    /// checkpoint holds exactly what the metadata says is applied.
    fn snapshot(&self, dir: &Path) -> Result<Vec<u8>, String> {
        let (meta, versions) = {
            let machine = lock(&self.machine);
            (machine.snapshot_meta(), machine.versions().clone())
        };
        versions.checkpoint(dir)?;
        Ok(meta)
    }

    /// From a checkpoint (or an inline snapshot stored by an older version).
    fn restore(&mut self, data: &[u8], dir: &Path) -> Result<(), String> {
        let mut machine = lock(&self.machine);
        let restored = if ShardMachine::<DbVersions>::is_checkpoint_meta(data) {
            machine.restore_with(data, |versions| versions.restore_checkpoint(dir))
        } else {
            machine.restore(data)
        };
        self.publish(&machine);
        restored
    }
}

/// A shard replicated by Raft (module doc). One per node; only the
/// leader's serves.
#[derive(Debug)]
pub struct ReplicatedShard {
    node: Node,
    peers: std::collections::BTreeMap<NodeId, String>,
    machine: Machine,
    /// The machine's store (this replica's engine and its index of recent
    /// writes), shared: reads and the leader's validation go to it.
    versions: DbVersions,
    /// The machine's newest applied commit timestamp (see [`Applier`]).
    last_ts: Arc<AtomicU64>,
    hlc: Arc<Hlc>,
    sequencer: Mutex<Sequencer>,
    /// Signalled when a commit is answered, for [`Self::readable_at`]
    /// waiting out proposals below its timestamp; `cover_waiters` counts
    /// them (changed under the sequencer's lock), so that commits signal
    /// only when someone waits.
    answered: Condvar,
    cover_waiters: AtomicU64,
    next_seq: AtomicU64,
    client: u64,
    validations: AtomicU64,
    validation_nanos: AtomicU64,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Applier")
    }
}

impl ReplicatedShard {
    /// Starts this node's replica: the Raft node of `config` (log in
    /// `config.dir`) and an engine in `config.dir/engine`, rebuilt from the
    /// log. `hlc` gives commit timestamps while this node leads.
    pub async fn start(
        config: NodeConfig,
        engine: strata_lsm::Options,
        hlc: Arc<Hlc>,
        listener: tokio::net::TcpListener,
    ) -> Result<ReplicatedShard, ShardError> {
        let engine = Arc::new(
            Engine::open(&config.dir.join("engine"), engine)
                .map_err(|e| ShardError::Raft(Error::Io(e)))?,
        );
        let versions = DbVersions::new(engine.clone());
        let machine: Machine = Arc::new(Mutex::new(ShardMachine::new(versions.clone())));
        let peers = config.peers.clone();
        let id = config.id;
        let last_ts = Arc::new(AtomicU64::new(0));
        let applier = Applier { machine: machine.clone(), last_ts: last_ts.clone() };
        let node = Node::start(config, applier, listener).await.map_err(ShardError::Raft)?;
        // Command ids: this node's id and the start time, so ids from two
        // incarnations of a node never collide.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(ReplicatedShard {
            node,
            peers,
            machine,
            versions,
            last_ts,
            hlc,
            sequencer: Mutex::new(Sequencer::default()),
            answered: Condvar::new(),
            cover_waiters: AtomicU64::new(0),
            next_seq: AtomicU64::new(nanos),
            client: id,
            validations: AtomicU64::new(0),
            validation_nanos: AtomicU64::new(0),
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The clock that gives this node's commit timestamps.
    pub fn hlc(&self) -> &Arc<Hlc> {
        &self.hlc
    }

    /// The `host:port` of peer `id`'s gRPC service, if it is one.
    pub fn peer_address(&self, id: NodeId) -> Option<&str> {
        self.peers.get(&id).map(String::as_str)
    }

    /// This replica's engine, for reads whose timestamp [`Self::readable_at`] cleared.
    pub(crate) fn engine_db(&self) -> Arc<Db> {
        self.versions.db()
    }

    /// Stops the node (pending commits are answered `Ambiguous`).
    pub async fn stop(self) {
        self.node.stop().await;
    }

    /// A fresh command id from this node.
    pub fn next_id(&self) -> CommandId {
        CommandId { client: self.client, seq: self.next_seq.fetch_add(1, Ordering::Relaxed) }
    }

    fn raft_error(&self, e: Error) -> ShardError {
        match e {
            Error::NotLeader { leader } => ShardError::NotLeader {
                leader,
                address: leader.and_then(|l| self.peers.get(&l).cloned()),
            },
            other => ShardError::Raft(other),
        }
    }

    /// This replica's newest applied commit timestamp, without a leader
    /// round (not linearizable: for tests and monitoring).
    pub fn local_last_ts(&self) -> Timestamp {
        self.last_applied_ts()
    }

    fn last_applied_ts(&self) -> Timestamp {
        self.last_ts.load(Ordering::Acquire)
    }

    /// `key` at `ts` in this replica's engine, without a leader round (not
    /// linearizable: for tests that compare replicas).
    pub fn local_get(&self, key: &[u8], ts: Timestamp) -> strata_txn::Result<Option<Vec<u8>>> {
        Ok(self.versions.db().get(key, ts)?)
    }

    /// Step 1 of a commit, and the start of every read (module doc):
    /// returns the newest applied commit timestamp. Under a lease that
    /// holds now this is answered on the caller's thread
    /// ([`Node::holds_lease`]); otherwise through the driver.
    pub fn leader_round(&self) -> Result<Timestamp, ShardError> {
        if self.node.holds_lease() {
            return Ok(self.last_applied_ts());
        }
        let read = self.node.submit_read(Vec::new()).map_err(|e| self.raft_error(e))?;
        let bytes = block_on(read).map_err(|e| self.raft_error(e))?;
        let ts = bytes.try_into().map(u64::from_le_bytes).map_err(|_| {
            ShardError::Raft(Error::Corrupt("read answer is not a timestamp".into()))
        })?;
        Ok(ts)
    }

    /// Commits `request` under `id` (module doc). A retry with the same id
    /// returns the first attempt's outcome if it was applied.
    pub fn commit_with_id(
        &self,
        id: CommandId,
        request: &CommitRequest,
    ) -> Result<Timestamp, ShardError> {
        self.leader_round()?;
        if let Some(answer) = lock(&self.machine).outcome(id) {
            return answer_to_result(answer);
        }
        self.validate_and_propose(id, request)
    }

    /// The rest of a commit, once the leader round is done and `id` is
    /// known to have no outcome yet (a retry's first attempt may have one).
    fn validate_and_propose(
        &self,
        id: CommandId,
        request: &CommitRequest,
    ) -> Result<Timestamp, ShardError> {
        let (ts, pending) = {
            let mut sequencer = lock(&self.sequencer);
            let started = Instant::now();
            let last_applied = self.last_applied_ts();
            let versions = &self.versions;
            let now = self.hlc.now()?;
            if sequencer.is_in_flight(id) {
                return Err(ShardError::Ambiguous {
                    id,
                    reason: "a commit with this id is in flight".into(),
                });
            }
            let assigned = sequencer.validate_and_assign(id, request, versions, last_applied, now);
            self.validations.fetch_add(1, Ordering::Relaxed);
            self.validation_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let ts = assigned?;
            let command = ShardCommand {
                id,
                start_ts: request.start_ts,
                commit_ts: ts,
                writes: request.writes.clone(),
            };
            match self.node.submit(command.encode()) {
                Ok(pending) => (ts, pending),
                Err(e) => {
                    sequencer.finish(ts);
                    return Err(self.raft_error(e));
                }
            }
        };
        let answer = block_on(pending);
        lock(&self.sequencer).finish(ts);
        if self.cover_waiters.load(Ordering::SeqCst) > 0 {
            self.answered.notify_all();
        }
        match answer {
            Ok(bytes) => match Answer::decode(&bytes) {
                Some(answer) => answer_to_result(answer),
                None => Err(ShardError::Raft(Error::Corrupt("malformed commit answer".into()))),
            },
            Err(Error::Ambiguous(reason)) => {
                Err(ShardError::Ambiguous { id, reason: reason.to_string() })
            }
            Err(e) => Err(self.raft_error(e)),
        }
    }

    /// Makes `ts` readable here (module doc). At or below the newest
    /// applied commit timestamp the data is final on any replica (every
    /// later commit is above it), so a node that leads serves at once; a
    /// follower refuses, naming the leader. Above it: a leader round, then
    /// wait for this leader's proposals at or below `ts`.
    pub(crate) fn readable_at(&self, ts: Timestamp) -> Result<(), ShardError> {
        if !self.node.holds_lease() {
            let raft = self.node.status().raft;
            if raft.role != Role::Leader {
                return Err(self.raft_error(Error::NotLeader { leader: raft.leader }));
            }
        }
        if ts <= self.last_applied_ts() {
            return Ok(());
        }
        let last = self.leader_round()?;
        if ts <= last {
            return Ok(());
        }
        let mut sequencer = lock(&self.sequencer);
        // Counted under the lock, before the first look: a commit answered
        // after that look sees the count when it signals (field doc).
        self.cover_waiters.fetch_add(1, Ordering::SeqCst);
        while sequencer.cover(ts) {
            sequencer = self.answered.wait(sequencer).unwrap_or_else(|p| p.into_inner());
        }
        self.cover_waiters.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

fn answer_to_result(answer: Answer) -> Result<Timestamp, ShardError> {
    match answer {
        Answer::Committed(ts) => Ok(ts),
        Answer::StaleTimestamp(last) => Err(ShardError::Raft(Error::Corrupt(format!(
            "commit refused: its timestamp was not above the newest applied, {last}"
        )))),
        Answer::Malformed => {
            Err(ShardError::Raft(Error::Corrupt("commit refused as malformed".into())))
        }
    }
}

impl Shard for ReplicatedShard {
    /// The newest applied commit timestamp after a leader round; on a node
    /// that cannot lead right now, its own newest applied one (a consistent
    /// but possibly old snapshot: its reads then fail with `NotLeader`).
    fn snapshot_ts(&self) -> Timestamp {
        self.leader_round().unwrap_or_else(|_| self.last_applied_ts())
    }

    fn snapshot_at(&self, ts: Timestamp) -> strata_txn::Result<()> {
        let now = self.hlc.now()?;
        if ts > now {
            return Err(strata_txn::Error::FutureTimestamp { requested: ts, now });
        }
        self.readable_at(ts).map_err(ShardError::into_txn)
    }

    fn get(&self, key: &[u8], ts: Timestamp) -> strata_txn::Result<Option<Vec<u8>>> {
        self.readable_at(ts).map_err(ShardError::into_txn)?;
        Ok(self.versions.db().get(key, ts)?)
    }

    fn scan(&self, range: KeyRange, ts: Timestamp, reverse: bool) -> strata_txn::Result<RowIter> {
        self.readable_at(ts).map_err(ShardError::into_txn)?;
        let scan = self.versions.db().scan(range, ts, reverse)?;
        Ok(Box::new(scan.map(|r| r.map_err(strata_txn::Error::from))))
    }

    /// A fresh id has no outcome to look up: straight to validation.
    fn commit(&self, request: &CommitRequest) -> strata_txn::Result<Timestamp> {
        self.leader_round().map_err(ShardError::into_txn)?;
        self.validate_and_propose(self.next_id(), request).map_err(ShardError::into_txn)
    }

    fn prepare(&self, _txn_id: u64, _request: &CommitRequest) -> strata_txn::Result<Timestamp> {
        Err(ShardError::NotSupported("prepare (multi-shard commit)").into_txn())
    }

    fn commit_prepared(&self, _txn_id: u64, _commit_ts: Timestamp) -> strata_txn::Result<()> {
        Err(ShardError::NotSupported("commit_prepared (multi-shard commit)").into_txn())
    }

    fn abort(&self, _txn_id: u64) -> strata_txn::Result<()> {
        Err(ShardError::NotSupported("abort of a prepared transaction").into_txn())
    }

    fn set_horizons(&self, oldest_active: Timestamp, gc_watermark: Timestamp) {
        assert!(gc_watermark <= oldest_active, "GC watermark above a live snapshot");
        let applied = self.last_applied_ts();
        self.versions.db().set_gc_watermark(gc_watermark.min(applied));
    }

    fn gc_watermark(&self) -> Timestamp {
        self.versions.db().gc_watermark()
    }

    fn stats(&self) -> ShardStats {
        ShardStats {
            validations: self.validations.load(Ordering::Relaxed),
            validation_nanos: self.validation_nanos.load(Ordering::Relaxed),
            conflict_entries: lock(&self.sequencer).in_flight() as u64,
            engine: Some(self.versions.db().stats()),
        }
    }
}
