//! Any node serves: [`ClusterShard`] is the `strata_txn::Shard` a node's SQL
//! front end runs on. It serves from the node's own [`ReplicatedShard`]
//! while that leads, and otherwise forwards each operation to the leader
//! over the gRPC transport (the `Shard` RPC of `proto/raft.proto`), where
//! [`serve`] hands it to the leader's replica.
//!
//! # Routing
//!
//! Every operation goes to the node this node's Raft status names as
//! leader (or the leader a refusal named). While no leader is known, or the
//! one named does not answer (it died and the election is not over), the
//! operation waits and tries again, every `retry_pause`, for up to
//! `leader_wait`; then it fails with [`ShardError::NotLeader`] (retryable).
//! Validation conflicts and other transaction errors are the leader's
//! answer and are returned as they are.
//!
//! # Commits through a leader change
//!
//! A commit takes one command id from this node ([`ReplicatedShard::next_id`])
//! and keeps it for every attempt, for up to `commit_wait`. An attempt
//! whose answer is lost (the RPC failed after it may have been delivered:
//! anything but a refused connection; or the leader answered `Ambiguous`)
//! is retried with the same id at whichever node leads then. That is safe
//! because of how the leader treats an id (`replicated`): after its leader
//! round every entry of an earlier term that can still commit is applied,
//! so it either finds the id's first outcome and returns it, or knows the
//! first attempt can never commit and validates afresh; an attempt still in
//! flight at that same leader is answered `Ambiguous`, and waited out. A
//! commit never applies twice. If `commit_wait` runs out after an attempt
//! that may have been delivered, the error is [`ShardError::Ambiguous`]
//! (the SQL layer reports SQLSTATE 40003): the outcome is not guessed.
//!
//! # Reads
//!
//! `snapshot_ts` asks the leader (a leader round there), so a follower's
//! transactions see every commit acknowledged before they began. Scans are
//! paged (`scan_page_rows` rows or about 1 MiB per call): a read at a fixed
//! timestamp is repeatable, so each page continues after the last key of the
//! previous one, at whichever node leads by then.
//!
//! Not forwarded: `set_horizons` and `gc_watermark` concern this replica's
//! engine only. The leader collects history by its own clients' snapshots
//! and retention; a follower's transaction older than that fails with
//! `SnapshotTooOld`, never reads wrong data. Multi-shard operations are not
//! supported on replicated shards yet.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use strata_lsm::KeyRange;
use strata_txn::{
    CommitRequest, ConflictKind, Hlc, Isolation, RowIter, Shard, ShardStats, Timestamp,
};
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::raft::Role;
use crate::shard::command::CommandId;
use crate::shard::replicated::{ReplicatedShard, ShardError, block_on};
use crate::transport::ShardHandler;
use crate::transport::pb::raft_transport_client::RaftTransportClient;
use crate::transport::pb::{self, shard_failure::Kind, shard_request::Op};
use crate::types::NodeId;

/// Tunables of forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// How long a read waits for a leader before failing `NotLeader`.
    pub leader_wait: Duration,
    /// How long a commit keeps trying (with one id) through leader changes.
    pub commit_wait: Duration,
    /// One forwarded call; a call that takes longer counts as lost.
    pub rpc_timeout: Duration,
    /// Pause before trying again.
    pub retry_pause: Duration,
    /// Rows per forwarded scan page.
    pub scan_page_rows: u32,
}

impl Default for ForwardConfig {
    fn default() -> ForwardConfig {
        ForwardConfig {
            leader_wait: Duration::from_secs(5),
            commit_wait: Duration::from_secs(10),
            rpc_timeout: Duration::from_secs(3),
            retry_pause: Duration::from_millis(20),
            scan_page_rows: 1024,
        }
    }
}

/// Bytes of rows per scan page, about (at least one row).
const SCAN_PAGE_BYTES: usize = 1 << 20;

/// Registers `shard` as the server of operations other nodes forward to
/// this node (held weakly: the node's service must not keep it alive).
pub fn serve(shard: &Arc<ReplicatedShard>) {
    shard.node().serve_shard(Arc::new(Serve(Arc::downgrade(shard))));
}

/// The leader's side: a forwarded operation on the local replica.
#[derive(Debug)]
struct Serve(Weak<ReplicatedShard>);

impl ShardHandler for Serve {
    fn handle(&self, request: pb::ShardRequest) -> pb::ShardReply {
        let Some(shard) = self.0.upgrade() else {
            return failure(&ShardError::Unavailable("the node is stopping".into()));
        };
        let result = match request.op {
            None => Err(ShardError::Remote("empty shard request".into())),
            Some(Op::SnapshotTs(_)) => {
                shard.leader_round().map(|ts| pb::ShardReply { ts, ..Default::default() })
            }
            Some(Op::SnapshotAt(r)) => {
                local_snapshot_at(&shard, r.ts).map(|()| pb::ShardReply::default())
            }
            Some(Op::Get(r)) => local_get(&shard, &r.key, r.ts).map(|value| pb::ShardReply {
                found: value.is_some(),
                value: value.unwrap_or_default(),
                ..Default::default()
            }),
            Some(Op::Scan(r)) => {
                let range = range_from_proto(r.range);
                local_scan_page(&shard, range, r.ts, r.reverse, r.limit).map(|(rows, more)| {
                    pb::ShardReply {
                        rows: rows.into_iter().map(|(key, value)| pb::Row { key, value }).collect(),
                        more,
                        ..Default::default()
                    }
                })
            }
            Some(Op::Commit(c)) => {
                let id = CommandId { client: c.client, seq: c.seq };
                shard
                    .commit_with_id(id, &commit_from_proto(c))
                    .map(|ts| pb::ShardReply { ts, ..Default::default() })
            }
        };
        result.unwrap_or_else(|e| failure(&e))
    }
}

fn local_snapshot_at(shard: &ReplicatedShard, ts: Timestamp) -> Result<(), ShardError> {
    let now = shard.hlc().now()?;
    if ts > now {
        return Err(strata_txn::Error::FutureTimestamp { requested: ts, now }.into());
    }
    shard.readable_at(ts)
}

fn local_get(
    shard: &ReplicatedShard,
    key: &[u8],
    ts: Timestamp,
) -> Result<Option<Vec<u8>>, ShardError> {
    shard.readable_at(ts)?;
    Ok(shard.engine_db().get(key, ts).map_err(strata_txn::Error::from)?)
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Up to `limit` rows (and about [`SCAN_PAGE_BYTES`]) of `range` at `ts`,
/// and whether more follow.
fn local_scan_page(
    shard: &ReplicatedShard,
    range: KeyRange,
    ts: Timestamp,
    reverse: bool,
    limit: u32,
) -> Result<(Rows, bool), ShardError> {
    shard.readable_at(ts)?;
    let db = shard.engine_db();
    let mut scan = db.scan(range, ts, reverse).map_err(strata_txn::Error::from)?.peekable();
    let (mut rows, mut bytes) = (Vec::new(), 0);
    while rows.len() < limit.max(1) as usize && bytes < SCAN_PAGE_BYTES {
        match scan.next() {
            Some(row) => {
                let (key, value) = row.map_err(strata_txn::Error::from)?;
                bytes += key.len() + value.len();
                rows.push((key, value));
            }
            None => return Ok((rows, false)),
        }
    }
    Ok((rows, scan.peek().is_some()))
}

/// A node's shard for its SQL front end (module doc).
#[derive(Debug, Clone)]
pub struct ClusterShard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: Arc<ReplicatedShard>,
    id: NodeId,
    clients: BTreeMap<NodeId, RaftTransportClient<Channel>>,
    runtime: tokio::runtime::Handle,
    hlc: Arc<Hlc>,
    config: ForwardConfig,
}

/// Where an operation goes now.
enum Route {
    Local,
    Remote(NodeId),
    /// No leader known.
    Wait,
}

impl ClusterShard {
    /// The shard of the node running `local`, forwarding to its peers over
    /// gRPC on `runtime` (the runtime the node runs on); also serves what
    /// the peers forward here ([`serve`]).
    pub fn new(
        local: Arc<ReplicatedShard>,
        peers: &BTreeMap<NodeId, String>,
        runtime: tokio::runtime::Handle,
        config: ForwardConfig,
    ) -> Result<ClusterShard, ShardError> {
        serve(&local);
        let _enter = runtime.enter();
        let mut clients = BTreeMap::new();
        for (&id, addr) in peers {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| ShardError::Raft(Error::Io(format!("peer {id} at {addr}: {e}"))))?
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true);
            clients.insert(id, RaftTransportClient::new(endpoint.connect_lazy()));
        }
        let id = local.node().id();
        let hlc = local.hlc().clone();
        Ok(ClusterShard { inner: Arc::new(Inner { local, id, clients, runtime, hlc, config }) })
    }

    /// This node's replica.
    pub fn local(&self) -> &Arc<ReplicatedShard> {
        &self.inner.local
    }
}

impl Inner {
    fn route(&self, hint: Option<NodeId>) -> Route {
        let status = self.local.node().status().raft;
        if status.role == Role::Leader {
            return Route::Local;
        }
        match hint.or(status.leader) {
            Some(l) if l != self.id && self.clients.contains_key(&l) => Route::Remote(l),
            _ => Route::Wait,
        }
    }

    /// One forwarded call to `to`.
    fn call(&self, to: NodeId, request: pb::ShardRequest) -> Result<pb::ShardReply, CallFailed> {
        let Some(client) = self.clients.get(&to) else {
            let reason = format!("node {to} is not a peer");
            return Err(CallFailed { reason, maybe_delivered: false });
        };
        let mut client = client.clone();
        let timeout = self.config.rpc_timeout;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(tokio::time::timeout(timeout, client.shard(request)).await);
        });
        let (reason, maybe_delivered) = match block_on(rx) {
            Ok(Ok(Ok(reply))) => return Ok(reply.into_inner()),
            Ok(Ok(Err(status))) => {
                (format!("node {to}: {}", status.message()), !connection_refused(&status))
            }
            Ok(Err(_)) => (format!("node {to} did not answer within {timeout:?}"), true),
            Err(_) => ("the runtime stopped".to_string(), true),
        };
        Err(CallFailed { reason, maybe_delivered })
    }

    /// Runs a read at the leader, waiting for one (module doc).
    fn read<T>(
        &self,
        request: pb::ShardRequest,
        local: impl Fn(&ReplicatedShard) -> Result<T, ShardError>,
        remote: impl Fn(pb::ShardReply) -> T,
    ) -> Result<T, ShardError> {
        let deadline = Instant::now() + self.config.leader_wait;
        let mut hint = None;
        loop {
            let result = match self.route(hint.take()) {
                Route::Local => local(&self.local),
                Route::Remote(to) => match self.call(to, request.clone()) {
                    Ok(reply) => reply_result(reply, self).map(&remote),
                    Err(failed) => Err(ShardError::Unavailable(failed.reason)),
                },
                Route::Wait => Err(ShardError::NotLeader { leader: None, address: None }),
            };
            match result {
                Err(e) if retry_here(&e) && Instant::now() < deadline => {
                    if let ShardError::NotLeader { leader: Some(l), .. } = e {
                        hint = Some(l);
                    }
                    std::thread::sleep(self.config.retry_pause);
                }
                other => return other,
            }
        }
    }

    /// A commit under one id through leader changes (module doc).
    fn commit(&self, request: &CommitRequest) -> Result<Timestamp, ShardError> {
        let id = self.local.next_id();
        let message = pb::ShardRequest { op: Some(Op::Commit(commit_to_proto(id, request))) };
        let deadline = Instant::now() + self.config.commit_wait;
        let mut unknown: Option<String> = None;
        let mut hint = None;
        loop {
            let result = match self.route(hint.take()) {
                Route::Local => self.local.commit_with_id(id, request),
                Route::Remote(to) => match self.call(to, message.clone()) {
                    Ok(reply) => reply_result(reply, self).map(|r| r.ts),
                    Err(failed) => {
                        // A call that may have been delivered leaves the
                        // outcome unknown until a retry with the same id tells.
                        if failed.maybe_delivered {
                            unknown = Some(failed.reason.clone());
                        }
                        Err(ShardError::Unavailable(failed.reason))
                    }
                },
                Route::Wait => Err(ShardError::NotLeader { leader: None, address: None }),
            };
            let error = match result {
                Ok(ts) => {
                    // Keep this node's clock causally after the commit.
                    let _ = self.hlc.update(ts);
                    return Ok(ts);
                }
                Err(ShardError::Ambiguous { reason, .. }) => {
                    unknown = Some(reason.clone());
                    ShardError::Ambiguous { id, reason }
                }
                Err(e) if retry_here(&e) => e,
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return Err(match unknown {
                    Some(reason) => ShardError::Ambiguous { id, reason },
                    None => error,
                });
            }
            if let ShardError::NotLeader { leader: Some(l), .. } = error {
                hint = Some(l);
            }
            std::thread::sleep(self.config.retry_pause);
        }
    }

    fn scan_page(
        &self,
        range: &KeyRange,
        ts: Timestamp,
        reverse: bool,
    ) -> Result<(Rows, bool), ShardError> {
        let limit = self.config.scan_page_rows;
        let request = pb::ShardRequest {
            op: Some(Op::Scan(pb::Scan { range: Some(range_to_proto(range)), ts, reverse, limit })),
        };
        self.read(
            request,
            |shard| local_scan_page(shard, range.clone(), ts, reverse, limit),
            |reply| (reply.rows.into_iter().map(|r| (r.key, r.value)).collect(), reply.more),
        )
    }
}

/// A forwarded call that got no answer.
struct CallFailed {
    reason: String,
    /// False only when the request surely never left: the connection was refused.
    maybe_delivered: bool,
}

/// Whether the call failed because the peer refused the connection (so no
/// byte of the request was sent).
fn connection_refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether trying the same operation again here (at the leader named next)
/// may succeed: leadership and availability, never a transaction's own error.
fn retry_here(e: &ShardError) -> bool {
    !matches!(e, ShardError::Txn(_)) && e.is_retryable()
}

/// A scan forwarded page by page (module doc).
struct RemoteScan {
    inner: Arc<Inner>,
    range: KeyRange,
    ts: Timestamp,
    reverse: bool,
    rows: VecDeque<(Vec<u8>, Vec<u8>)>,
    more: bool,
}

impl Iterator for RemoteScan {
    type Item = strata_txn::Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rows.is_empty() && self.more {
            match self.inner.scan_page(&self.range, self.ts, self.reverse) {
                Ok((rows, more)) => {
                    self.rows = rows.into();
                    self.more = more && !self.rows.is_empty();
                }
                Err(e) => {
                    self.more = false;
                    return Some(Err(e.into_txn()));
                }
            }
        }
        let (key, value) = self.rows.pop_front()?;
        if self.rows.is_empty() && self.more {
            // The next page continues after this key.
            if self.reverse {
                self.range.upper = Bound::Excluded(key.clone());
            } else {
                self.range.lower = Bound::Excluded(key.clone());
            }
        }
        Some(Ok((key, value)))
    }
}

impl Shard for ClusterShard {
    /// The leader's newest applied commit timestamp after a leader round;
    /// with no leader within `leader_wait`, this replica's own newest
    /// applied one (consistent, possibly old; reads then wait for a leader).
    fn snapshot_ts(&self) -> Timestamp {
        let inner = &self.inner;
        let request = pb::ShardRequest { op: Some(Op::SnapshotTs(pb::SnapshotTs {})) };
        match inner.read(request, ReplicatedShard::leader_round, |reply| reply.ts) {
            Ok(ts) => {
                let _ = inner.hlc.update(ts);
                ts
            }
            Err(_) => inner.local.local_last_ts(),
        }
    }

    fn snapshot_at(&self, ts: Timestamp) -> strata_txn::Result<()> {
        let request = pb::ShardRequest { op: Some(Op::SnapshotAt(pb::SnapshotAt { ts })) };
        self.inner
            .read(request, |shard| local_snapshot_at(shard, ts), |_| ())
            .map_err(ShardError::into_txn)
    }

    fn get(&self, key: &[u8], ts: Timestamp) -> strata_txn::Result<Option<Vec<u8>>> {
        let request = pb::ShardRequest { op: Some(Op::Get(pb::Get { key: key.to_vec(), ts })) };
        self.inner
            .read(
                request,
                |shard| local_get(shard, key, ts),
                |reply| reply.found.then_some(reply.value),
            )
            .map_err(ShardError::into_txn)
    }

    fn scan(&self, range: KeyRange, ts: Timestamp, reverse: bool) -> strata_txn::Result<RowIter> {
        let inner = &self.inner;
        if matches!(inner.route(None), Route::Local) {
            // The local engine's own scan, unpaged; if this node stopped
            // leading meanwhile, the paged path below finds the leader.
            match inner.local.scan(range.clone(), ts, reverse) {
                Err(e) if ShardError::of(&e).is_some_and(retry_here) => {}
                other => return other,
            }
        }
        let (rows, more) = inner.scan_page(&range, ts, reverse).map_err(ShardError::into_txn)?;
        let mut scan =
            RemoteScan { inner: inner.clone(), range, ts, reverse, rows: VecDeque::new(), more };
        scan.more = more && !rows.is_empty();
        if let Some((last, _)) = rows.last()
            && scan.more
        {
            if reverse {
                scan.range.upper = Bound::Excluded(last.clone());
            } else {
                scan.range.lower = Bound::Excluded(last.clone());
            }
        }
        scan.rows = rows.into();
        Ok(Box::new(scan))
    }

    fn commit(&self, request: &CommitRequest) -> strata_txn::Result<Timestamp> {
        self.inner.commit(request).map_err(ShardError::into_txn)
    }

    fn prepare(&self, txn_id: u64, request: &CommitRequest) -> strata_txn::Result<Timestamp> {
        self.inner.local.prepare(txn_id, request)
    }

    fn commit_prepared(&self, txn_id: u64, commit_ts: Timestamp) -> strata_txn::Result<()> {
        self.inner.local.commit_prepared(txn_id, commit_ts)
    }

    fn abort(&self, txn_id: u64) -> strata_txn::Result<()> {
        self.inner.local.abort(txn_id)
    }

    fn set_horizons(&self, oldest_active: Timestamp, gc_watermark: Timestamp) {
        self.inner.local.set_horizons(oldest_active, gc_watermark);
    }

    fn gc_watermark(&self) -> Timestamp {
        self.inner.local.gc_watermark()
    }

    fn stats(&self) -> ShardStats {
        self.inner.local.stats()
    }
}

// ---- The wire form ----

fn failure(e: &ShardError) -> pb::ShardReply {
    pb::ShardReply { failure: Some(failure_to_proto(e)), ..Default::default() }
}

/// The reply, or the error it carries.
fn reply_result(reply: pb::ShardReply, inner: &Inner) -> Result<pb::ShardReply, ShardError> {
    match reply.failure {
        None => Ok(reply),
        Some(f) => {
            Err(failure_from_proto(f, |id| inner.local.peer_address(id).map(str::to_string)))
        }
    }
}

fn failure_to_proto(e: &ShardError) -> pb::ShardFailure {
    let kind = match e {
        ShardError::NotLeader { leader, .. } => {
            Kind::NotLeader(pb::NotLeader { leader: leader.unwrap_or(0) })
        }
        ShardError::Ambiguous { reason, .. } => Kind::Ambiguous(reason.clone()),
        ShardError::Raft(Error::NotLeader { leader }) => {
            Kind::NotLeader(pb::NotLeader { leader: leader.unwrap_or(0) })
        }
        ShardError::Raft(Error::Ambiguous(reason)) => Kind::Ambiguous((*reason).to_string()),
        ShardError::Raft(e) if e.is_retryable() => Kind::Retry(e.to_string()),
        ShardError::Unavailable(reason) => Kind::Retry(reason.clone()),
        ShardError::Txn(e) => txn_failure(e),
        ShardError::Raft(_) | ShardError::NotSupported(_) | ShardError::Remote(_) => {
            Kind::Failed(e.to_string())
        }
    };
    pb::ShardFailure { kind: Some(kind) }
}

fn txn_failure(e: &strata_txn::Error) -> Kind {
    use strata_txn::Error as E;
    match e {
        E::Conflict { kind, key, start_ts, committed_ts } => Kind::Conflict(pb::Conflict {
            kind: match kind {
                ConflictKind::WriteWrite => 0,
                ConflictKind::ReadWrite => 1,
                ConflictKind::Phantom => 2,
            },
            key: key.clone(),
            start_ts: *start_ts,
            committed_ts: *committed_ts,
        }),
        E::SnapshotTooOld { read_ts, oldest } => {
            Kind::TooOld(pb::TooOld { read_ts: *read_ts, oldest: *oldest })
        }
        E::FutureTimestamp { requested, now } => {
            Kind::Future(pb::FutureTs { requested: *requested, now: *now })
        }
        E::InvalidArgument(m) => Kind::Invalid(m.clone()),
        // The replicated shard's own error, carried inside a txn error.
        other => match ShardError::of(other) {
            Some(inner) => failure_to_proto(inner).kind.unwrap_or(Kind::Failed(other.to_string())),
            None => Kind::Failed(other.to_string()),
        },
    }
}

fn failure_from_proto(
    f: pb::ShardFailure,
    address: impl Fn(NodeId) -> Option<String>,
) -> ShardError {
    use strata_txn::Error as E;
    match f.kind {
        Some(Kind::NotLeader(n)) => {
            let leader = (n.leader != 0).then_some(n.leader);
            ShardError::NotLeader { leader, address: leader.and_then(address) }
        }
        Some(Kind::Retry(m)) => ShardError::Unavailable(m),
        Some(Kind::Ambiguous(reason)) => {
            // The id is the caller's: it fills it in.
            ShardError::Ambiguous { id: CommandId { client: 0, seq: 0 }, reason }
        }
        Some(Kind::Conflict(c)) => ShardError::Txn(E::Conflict {
            kind: match c.kind {
                1 => ConflictKind::ReadWrite,
                2 => ConflictKind::Phantom,
                _ => ConflictKind::WriteWrite,
            },
            key: c.key,
            start_ts: c.start_ts,
            committed_ts: c.committed_ts,
        }),
        Some(Kind::TooOld(t)) => {
            ShardError::Txn(E::SnapshotTooOld { read_ts: t.read_ts, oldest: t.oldest })
        }
        Some(Kind::Future(t)) => {
            ShardError::Txn(E::FutureTimestamp { requested: t.requested, now: t.now })
        }
        Some(Kind::Invalid(m)) => ShardError::Txn(E::InvalidArgument(m)),
        Some(Kind::Failed(m)) => ShardError::Remote(m),
        None => ShardError::Remote("a failure without a kind".into()),
    }
}

fn bound_to_proto(b: &Bound<Vec<u8>>) -> Option<pb::Bound> {
    use pb::bound::Bound as B;
    match b {
        Bound::Included(k) => Some(pb::Bound { bound: Some(B::Included(k.clone())) }),
        Bound::Excluded(k) => Some(pb::Bound { bound: Some(B::Excluded(k.clone())) }),
        Bound::Unbounded => None,
    }
}

fn bound_from_proto(b: Option<pb::Bound>) -> Bound<Vec<u8>> {
    use pb::bound::Bound as B;
    match b.and_then(|b| b.bound) {
        Some(B::Included(k)) => Bound::Included(k),
        Some(B::Excluded(k)) => Bound::Excluded(k),
        None => Bound::Unbounded,
    }
}

fn range_to_proto(r: &KeyRange) -> pb::KeyRange {
    pb::KeyRange { lower: bound_to_proto(&r.lower), upper: bound_to_proto(&r.upper) }
}

fn range_from_proto(r: Option<pb::KeyRange>) -> KeyRange {
    let r = r.unwrap_or_default();
    KeyRange { lower: bound_from_proto(r.lower), upper: bound_from_proto(r.upper) }
}

fn commit_to_proto(id: CommandId, r: &CommitRequest) -> pb::Commit {
    pb::Commit {
        client: id.client,
        seq: id.seq,
        start_ts: r.start_ts,
        serializable: r.isolation == Isolation::Serializable,
        writes: r
            .writes
            .iter()
            .map(|(key, value)| pb::Write {
                key: key.clone(),
                put: value.is_some(),
                value: value.clone().unwrap_or_default(),
            })
            .collect(),
        for_update: r.for_update.clone(),
        reads: r.reads.clone(),
        ranges: r.ranges.iter().map(range_to_proto).collect(),
    }
}

fn commit_from_proto(c: pb::Commit) -> CommitRequest {
    CommitRequest {
        start_ts: c.start_ts,
        isolation: if c.serializable { Isolation::Serializable } else { Isolation::Snapshot },
        writes: c.writes.into_iter().map(|w| (w.key, w.put.then_some(w.value))).collect(),
        for_update: c.for_update,
        reads: c.reads,
        ranges: c.ranges.into_iter().map(|r| range_from_proto(Some(r))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_ranges_and_failures_survive_the_wire() {
        let request = CommitRequest {
            start_ts: 7,
            isolation: Isolation::Serializable,
            writes: vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)],
            for_update: vec![b"c".to_vec()],
            reads: vec![b"d".to_vec()],
            ranges: vec![KeyRange {
                lower: Bound::Included(b"e".to_vec()),
                upper: Bound::Excluded(b"f".to_vec()),
            }],
        };
        let id = CommandId { client: 2, seq: 9 };
        let wire = commit_to_proto(id, &request);
        assert_eq!((wire.client, wire.seq), (2, 9));
        let back = commit_from_proto(wire);
        assert_eq!(back.start_ts, 7);
        assert_eq!(back.isolation, Isolation::Serializable);
        assert_eq!(back.writes, request.writes);
        assert_eq!((back.for_update, back.reads), (request.for_update, request.reads));
        assert_eq!(back.ranges[0].lower, Bound::Included(b"e".to_vec()));
        assert_eq!(back.ranges[0].upper, Bound::Excluded(b"f".to_vec()));
        assert_eq!(range_from_proto(None).lower, Bound::Unbounded);

        let addr = |id: NodeId| Some(format!("n{id}"));
        let not_leader = ShardError::NotLeader { leader: Some(3), address: None };
        let e = failure_from_proto(failure_to_proto(&not_leader), addr);
        assert!(
            matches!(e, ShardError::NotLeader { leader: Some(3), address: Some(a) } if a == "n3")
        );
        let none = ShardError::Raft(Error::NotLeader { leader: None });
        let e = failure_from_proto(failure_to_proto(&none), addr);
        assert!(matches!(e, ShardError::NotLeader { leader: None, .. }));
        // Retryable refusals stay retryable; ambiguity stays ambiguous.
        let e = failure_from_proto(failure_to_proto(&ShardError::Raft(Error::NotReady)), addr);
        assert!(matches!(e, ShardError::Unavailable(_)) && e.is_retryable());
        let ambiguous = ShardError::Raft(Error::Ambiguous("the node stopped"));
        let e = failure_from_proto(failure_to_proto(&ambiguous), addr);
        assert!(matches!(e, ShardError::Ambiguous { .. }) && !e.is_retryable());
        // A conflict arrives as the transaction error it was (SQLSTATE 40001).
        let conflict = ShardError::Txn(strata_txn::Error::Conflict {
            kind: ConflictKind::WriteWrite,
            key: b"k".to_vec(),
            start_ts: 1,
            committed_ts: 2,
        });
        let e = failure_from_proto(failure_to_proto(&conflict), addr);
        assert!(matches!(e, ShardError::Txn(strata_txn::Error::Conflict { committed_ts: 2, .. })));
        // The replicated shard's error wrapped in a txn error is unwrapped.
        let wrapped = ShardError::Txn(ShardError::Unavailable("x".into()).into_txn());
        let e = failure_from_proto(failure_to_proto(&wrapped), addr);
        assert!(matches!(e, ShardError::Unavailable(_)));
        let e = failure_from_proto(pb::ShardFailure { kind: None }, addr);
        assert!(matches!(e, ShardError::Remote(_)) && !e.is_retryable());
    }
}
