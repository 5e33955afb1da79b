//! The gRPC transport between the nodes of a replica set (tonic), and the
//! protobuf form of [`Message`] (`proto/raft.proto`, compiled by protox in
//! `build.rs`, so no system `protoc` is needed).
//!
//! The Raft core never sees this module: the node runtime (`crate::node`)
//! converts messages at the edge. The transport may lose messages, never
//! corrupt them into something else, and never blocks the core:
//!
//! - **Sending**: one bounded queue and one task per peer. The core's
//!   driver never waits: when a peer's queue is full the message is dropped
//!   and counted (Raft retransmits). The task keeps one client-streaming
//!   `Stream` call open to the peer and sends whatever is queued as one
//!   batch on it, without waiting for the peer to answer: a batch costs
//!   its data frames only, where a call of its own cost a request, a
//!   response and a round trip before the next batch could leave. A batch
//!   stops growing at [`BATCH_TARGET_BYTES`] (a single message may be up
//!   to `max_message_bytes`), and at most [`STREAM_BATCHES`] batches wait
//!   for the connection, so a peer's memory is bounded by those and its
//!   queue. When the call fails, its batches are lost and the task
//!   reconnects, with exponential backoff while connecting fails or calls
//!   fail as soon as they open, discarding what queued up while the peer
//!   was unreachable (stale by then). HTTP/2 keep-alive pings every
//!   `rpc_timeout`, each to be answered within `rpc_timeout`, find a peer
//!   that stopped answering, on both ends of the connection. A single
//!   message larger than `max_message_bytes` is dropped and counted (a
//!   snapshot's files do not travel in messages: see below; only an
//!   inline snapshot of a state machine that writes no files can be too
//!   large).
//! - **Receiving**: a message that does not decode, or that is addressed to
//!   another node, fails the call (ending the stream) with
//!   `InvalidArgument`, never a panic; a full inbound queue drops the
//!   message (counted). When the node stops, the streams into it end with
//!   `Unavailable`. `Deliver` takes a single batch in a call of its own.
//! - **Forwarded shard operations** (`Shard`): a node whose SQL front end
//!   serves a client sends reads and commits to the leader
//!   (`crate::shard::forward`). The service hands each to the node's
//!   [`ShardHandler`] on tokio's blocking pool (a shard operation waits on
//!   the Raft driver), at most [`MAX_FORWARDED`] at once: more are refused
//!   as retryable, never queued without bound. Before a handler is
//!   registered the call fails with `Unavailable`.
//! - **Snapshot files** (`FetchSnapshot`): a `Snapshot` message carries only
//!   the list of its files (an engine checkpoint); the follower fetches
//!   them from the sender with this server-streaming call
//!   ([`fetch_snapshot`], run by `crate::node` off its driver thread). The
//!   server opens every asked-for file of its *current* snapshot first (so
//!   a compaction that deletes them meanwhile does not cut the stream; a
//!   snapshot that is no longer current is `NotFound`), then a blocking
//!   task reads them a chunk at a time into a channel of two chunks:
//!   memory per stream is bounded by the chunk size (at most
//!   [`MAX_CHUNK_BYTES`], and below `max_message_bytes`), never by the
//!   snapshot. At most [`MAX_SNAPSHOT_STREAMS`] streams are served at once.
//!   The client checks every chunk ([`Receiver`]) and the whole files.

pub mod pb {
    //! Generated from `proto/raft.proto`.
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("strata.raft.v1");
}

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::message::{Body, Message};
use crate::storage::file::snapshot_dir;
pub use crate::storage::snapshot_files::MAX_CHUNK_BYTES;
use crate::storage::snapshot_files::Receiver;
use crate::types::{Entry, Membership, NodeId, Payload, Snapshot, SnapshotFile};
use pb::raft_transport_client::RaftTransportClient;

/// Why a protobuf message is not a valid Raft message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message without a body")]
    NoBody,
    #[error("entry {0} without a payload")]
    NoPayload(u64),
    #[error("snapshot without a membership")]
    NoMembership,
    #[error("snapshot file name {0:?} is not a plain file name")]
    BadFileName(String),
}

/// The wire form of `msg`.
pub fn to_proto(msg: &Message) -> pb::RaftMessage {
    use pb::raft_message::Body as B;
    let body = match &msg.body {
        Body::PreVote { last_index, last_term } => {
            B::PreVote(pb::PreVote { last_index: *last_index, last_term: *last_term })
        }
        Body::PreVoteResp { granted } => B::PreVoteResp(pb::VoteResp { granted: *granted }),
        Body::Vote { last_index, last_term, transfer } => B::Vote(pb::Vote {
            last_index: *last_index,
            last_term: *last_term,
            transfer: *transfer,
        }),
        Body::VoteResp { granted } => B::VoteResp(pb::VoteResp { granted: *granted }),
        Body::Append { prev_index, prev_term, entries, commit, round } => B::Append(pb::Append {
            prev_index: *prev_index,
            prev_term: *prev_term,
            entries: entries.iter().map(entry_to_proto).collect(),
            commit: *commit,
            round: *round,
        }),
        Body::AppendResp { accepted, index, hint_index, hint_term, round } => {
            B::AppendResp(pb::AppendResp {
                accepted: *accepted,
                index: *index,
                hint_index: *hint_index,
                hint_term: *hint_term,
                round: *round,
            })
        }
        Body::Heartbeat { commit, round } => {
            B::Heartbeat(pb::Heartbeat { commit: *commit, round: *round })
        }
        Body::HeartbeatResp { round } => B::HeartbeatResp(pb::HeartbeatResp { round: *round }),
        Body::Snapshot { snapshot, round } => B::Snapshot(pb::InstallSnapshot {
            index: snapshot.index,
            term: snapshot.term,
            membership: Some(membership_to_proto(&snapshot.membership)),
            data: snapshot.data.clone(),
            round: *round,
            files: snapshot.files.iter().map(snapshot_file_to_proto).collect(),
        }),
        Body::TimeoutNow => B::TimeoutNow(pb::TimeoutNow {}),
    };
    pb::RaftMessage { from: msg.from, to: msg.to, term: msg.term, body: Some(body) }
}

/// The message `m` carries, or why it carries none.
pub fn from_proto(m: pb::RaftMessage) -> Result<Message, DecodeError> {
    use pb::raft_message::Body as B;
    let body = match m.body.ok_or(DecodeError::NoBody)? {
        B::PreVote(b) => Body::PreVote { last_index: b.last_index, last_term: b.last_term },
        B::PreVoteResp(b) => Body::PreVoteResp { granted: b.granted },
        B::Vote(b) => {
            Body::Vote { last_index: b.last_index, last_term: b.last_term, transfer: b.transfer }
        }
        B::VoteResp(b) => Body::VoteResp { granted: b.granted },
        B::Append(b) => Body::Append {
            prev_index: b.prev_index,
            prev_term: b.prev_term,
            entries: b.entries.into_iter().map(entry_from_proto).collect::<Result<_, _>>()?,
            commit: b.commit,
            round: b.round,
        },
        B::AppendResp(b) => Body::AppendResp {
            accepted: b.accepted,
            index: b.index,
            hint_index: b.hint_index,
            hint_term: b.hint_term,
            round: b.round,
        },
        B::Heartbeat(b) => Body::Heartbeat { commit: b.commit, round: b.round },
        B::HeartbeatResp(b) => Body::HeartbeatResp { round: b.round },
        B::Snapshot(b) => Body::Snapshot {
            snapshot: Snapshot {
                index: b.index,
                term: b.term,
                membership: Membership::new(b.membership.ok_or(DecodeError::NoMembership)?.voters),
                data: b.data,
                files: b
                    .files
                    .into_iter()
                    .map(snapshot_file_from_proto)
                    .collect::<Result<_, _>>()?,
            },
            round: b.round,
        },
        B::TimeoutNow(_) => Body::TimeoutNow,
    };
    Ok(Message { from: m.from, to: m.to, term: m.term, body })
}

fn snapshot_file_to_proto(f: &SnapshotFile) -> pb::SnapshotFile {
    pb::SnapshotFile { name: f.name.clone(), size: f.size, crc32c: f.crc32c }
}

fn snapshot_file_from_proto(f: pb::SnapshotFile) -> Result<SnapshotFile, DecodeError> {
    if !SnapshotFile::valid_name(&f.name) {
        return Err(DecodeError::BadFileName(f.name));
    }
    Ok(SnapshotFile { name: f.name, size: f.size, crc32c: f.crc32c })
}

fn membership_to_proto(m: &Membership) -> pb::Membership {
    pb::Membership { voters: m.voters.iter().copied().collect() }
}

fn entry_to_proto(e: &Entry) -> pb::Entry {
    use pb::entry::Payload as P;
    let payload = match &e.payload {
        Payload::Empty => P::Empty(pb::NoPayload {}),
        Payload::Command(c) => P::Command(c.clone()),
        Payload::Membership(m) => P::Membership(membership_to_proto(m)),
    };
    pb::Entry { index: e.index, term: e.term, payload: Some(payload) }
}

fn entry_from_proto(e: pb::Entry) -> Result<Entry, DecodeError> {
    use pb::entry::Payload as P;
    let payload = match e.payload.ok_or(DecodeError::NoPayload(e.index))? {
        P::Empty(_) => Payload::Empty,
        P::Command(c) => Payload::Command(c),
        P::Membership(m) => Payload::Membership(Membership::new(m.voters)),
    };
    Ok(Entry { index: e.index, term: e.term, payload })
}

/// Tunables of the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Messages queued per peer before new ones are dropped.
    pub queue_messages: usize,
    /// Largest batch (and so largest single message), both ways.
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    /// A peer that answers no keep-alive ping for this long is given up
    /// (and the sender reconnects); also the limit on snapshot fetch calls.
    pub rpc_timeout: Duration,
    /// Reconnection backoff: doubles from `min` to `max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            queue_messages: 4096,
            max_message_bytes: 64 << 20,
            connect_timeout: Duration::from_millis(500),
            rpc_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_millis(500),
        }
    }
}

/// Counters of the transport, for metrics and tests.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Messages handed to the open call's connection (a call that fails
    /// afterwards loses the ones still on their way).
    pub sent: AtomicU64,
    /// Dropped because a peer's queue was full.
    pub dropped_full: AtomicU64,
    /// Dropped because they were larger than `max_message_bytes`.
    pub dropped_oversize: AtomicU64,
    /// Dropped with a failed call or while the peer was unreachable.
    pub dropped_unreachable: AtomicU64,
    pub connects: AtomicU64,
    pub received: AtomicU64,
    /// Received but dropped because the inbound queue was full.
    pub dropped_inbound: AtomicU64,
    /// Calls refused because a message did not decode or was misaddressed.
    pub rejected_calls: AtomicU64,
    /// Snapshot fetches this node completed, and failed (bad chunk, stale
    /// snapshot, peer unreachable), as the receiving side.
    pub snapshot_fetches: AtomicU64,
    pub snapshot_fetch_failures: AtomicU64,
    /// Snapshot file bytes received in chunks, and the largest chunk.
    pub snapshot_bytes_received: AtomicU64,
    pub snapshot_max_chunk_bytes: AtomicU64,
    /// Snapshot messages dropped because a fetch was already running.
    pub snapshot_fetches_busy: AtomicU64,
    /// Snapshot file bytes this node streamed to peers.
    pub snapshot_bytes_sent: AtomicU64,
}

impl TransportStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The sending side: a bounded queue and a task per peer. Dropping it ends
/// the tasks.
#[derive(Debug)]
pub struct Outbox {
    queues: BTreeMap<NodeId, mpsc::Sender<pb::RaftMessage>>,
    stats: Arc<TransportStats>,
}

impl Outbox {
    /// Starts a sender task on `runtime` for each peer `(id, "host:port")`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        peers: &BTreeMap<NodeId, String>,
        config: &TransportConfig,
        stats: Arc<TransportStats>,
    ) -> Outbox {
        let mut queues = BTreeMap::new();
        for (&id, addr) in peers {
            let (tx, rx) = mpsc::channel(config.queue_messages.max(1));
            runtime.spawn(run_peer(addr.clone(), rx, config.clone(), stats.clone()));
            queues.insert(id, tx);
        }
        Outbox { queues, stats }
    }

    /// Queues `msg` for its destination; never waits (see the module doc).
    pub fn send(&self, msg: &Message) {
        let Some(queue) = self.queues.get(&msg.to) else {
            bump(&self.stats.dropped_unreachable, 1);
            return;
        };
        if queue.try_send(to_proto(msg)).is_err() {
            bump(&self.stats.dropped_full, 1);
        }
    }
}

/// Batches a sender hands to its open `Stream` call before it waits for
/// the connection to take them.
pub const STREAM_BATCHES: usize = 16;

/// A batch takes no further message once it is this large.
pub const BATCH_TARGET_BYTES: usize = 1 << 20;

/// What `msg` adds to a `MessageBatch`: its field tag, length and bytes.
fn framed_len(msg: &pb::RaftMessage) -> usize {
    let len = msg.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// One peer's sender: connect, open a `Stream` call, send batches on it;
/// reconnect when it fails.
async fn run_peer(
    addr: String,
    mut rx: mpsc::Receiver<pb::RaftMessage>,
    config: TransportConfig,
    stats: Arc<TransportStats>,
) {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
        // A peer address that is no URI: nothing can ever reach it.
        while rx.recv().await.is_some() {
            bump(&stats.dropped_unreachable, 1);
        }
        return;
    };
    // No per-call timeout: the call lives as long as the connection.
    let endpoint = endpoint
        .connect_timeout(config.connect_timeout)
        .http2_keep_alive_interval(config.rpc_timeout)
        .keep_alive_timeout(config.rpc_timeout)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let mut backoff = config.reconnect_min;
    let mut carry: Option<pb::RaftMessage> = None;
    loop {
        let Ok(channel) = endpoint.connect().await else {
            if !pause(&mut backoff, &config, &mut rx, &mut carry, &stats).await {
                return;
            }
            continue;
        };
        bump(&stats.connects, 1);
        let opened = tokio::time::Instant::now();
        let mut client = RaftTransportClient::new(channel)
            .max_encoding_message_size(config.max_message_bytes)
            .max_decoding_message_size(config.max_message_bytes);
        let (batches, outgoing) = mpsc::channel(STREAM_BATCHES);
        let outgoing = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(outgoing);
        let mut call = std::pin::pin!(client.stream(outgoing));
        loop {
            let first = match carry.take() {
                Some(m) => m,
                None => tokio::select! {
                    next = rx.recv() => match next {
                        Some(m) => m,
                        None => return, // the node stopped
                    },
                    // The call ended: only a failure ends it.
                    _ = &mut call => break,
                },
            };
            // A batch is the messages' framed bytes, and gRPC adds its own
            // 5-byte frame header, within `max_message_bytes`.
            let limit = config.max_message_bytes.saturating_sub(64);
            let mut bytes = framed_len(&first);
            if bytes > limit {
                bump(&stats.dropped_oversize, 1);
                continue;
            }
            let mut messages = vec![first];
            while bytes < BATCH_TARGET_BYTES {
                let Ok(m) = rx.try_recv() else { break };
                let len = framed_len(&m);
                if bytes + len > limit {
                    carry = Some(m);
                    break;
                }
                bytes += len;
                messages.push(m);
            }
            let n = messages.len() as u64;
            tokio::select! {
                queued = batches.send(pb::MessageBatch { messages }) => match queued {
                    Ok(()) => bump(&stats.sent, n),
                    Err(_) => {
                        bump(&stats.dropped_unreachable, n);
                        break;
                    }
                },
                _ = &mut call => {
                    bump(&stats.dropped_unreachable, n);
                    break;
                }
            }
        }
        // The call failed. One that lived reconnects at once; one that
        // failed soon after it opened (a peer that refuses the stream)
        // backs off like a failed connect, not to spin.
        if opened.elapsed() >= config.reconnect_max {
            backoff = config.reconnect_min;
        } else if !pause(&mut backoff, &config, &mut rx, &mut carry, &stats).await {
            return;
        }
    }
}

/// Waits out `backoff` (doubling it, up to `reconnect_max`) before a
/// reconnect, then drops what queued up meanwhile: stale by then. Returns
/// `false` when the node stopped.
async fn pause(
    backoff: &mut Duration,
    config: &TransportConfig,
    rx: &mut mpsc::Receiver<pb::RaftMessage>,
    carry: &mut Option<pb::RaftMessage>,
    stats: &TransportStats,
) -> bool {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(config.reconnect_max);
    let mut dropped = u64::from(carry.take().is_some());
    let stopped = loop {
        match rx.try_recv() {
            Ok(_) => dropped += 1,
            Err(mpsc::error::TryRecvError::Empty) => break false,
            Err(mpsc::error::TryRecvError::Disconnected) => break true,
        }
    };
    bump(&stats.dropped_unreachable, dropped);
    !stopped
}

/// Fetches the files of snapshot `index`@`term` from the node at `addr`
/// into `dir` (created; emptied first), checking every chunk and every
/// whole file, fsynced; see the module doc. Memory: one chunk at a time.
/// Errors say why, for the caller to drop the fetch (Raft resends).
pub async fn fetch_snapshot(
    addr: &str,
    index: u64,
    term: u64,
    files: &[SnapshotFile],
    dir: &Path,
    config: &TransportConfig,
    stats: &TransportStats,
) -> Result<PathBuf, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("peer address {addr}: {e}"))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| format!("connect to {addr}: {e}"))?;
    let chunk = chunk_bytes_for(config.max_message_bytes);
    let mut client = RaftTransportClient::new(channel)
        .max_encoding_message_size(config.max_message_bytes)
        .max_decoding_message_size(config.max_message_bytes);
    let request = pb::SnapshotRef {
        index,
        term,
        files: files.iter().map(|f| f.name.clone()).collect(),
        max_chunk_bytes: u32::try_from(chunk).unwrap_or(u32::MAX),
    };
    let call = tokio::time::timeout(config.rpc_timeout, client.fetch_snapshot(request));
    let mut stream = call
        .await
        .map_err(|_| format!("fetch from {addr} timed out"))?
        .map_err(|s| format!("fetch from {addr}: {}", s.message()))?
        .into_inner();
    // File work runs on the blocking pool, never on a runtime worker.
    let blocking = |e: tokio::task::JoinError| format!("snapshot fetch task: {e}");
    let (dir, listed) = (dir.to_path_buf(), files.to_vec());
    let mut receiver = tokio::task::spawn_blocking(move || Receiver::new(&dir, &listed, chunk))
        .await
        .map_err(blocking)?
        .map_err(|e| e.to_string())?;
    loop {
        let next = tokio::time::timeout(config.rpc_timeout, stream.message())
            .await
            .map_err(|_| format!("snapshot stream from {addr} stalled"))?
            .map_err(|s| format!("snapshot stream from {addr}: {}", s.message()))?;
        let Some(c) = next else { break };
        let len = c.data.len() as u64;
        receiver = tokio::task::spawn_blocking(move || {
            receiver.accept(&c.file, c.offset, &c.data, c.crc32c).map(|()| receiver)
        })
        .await
        .map_err(blocking)?
        .map_err(|e| e.to_string())?;
        bump(&stats.snapshot_bytes_received, len);
        stats.snapshot_max_chunk_bytes.fetch_max(len, Ordering::Relaxed);
    }
    tokio::task::spawn_blocking(move || receiver.finish())
        .await
        .map_err(blocking)?
        .map_err(|e| e.to_string())
}

/// Where the receiving side hands decoded messages: must not block.
pub trait Inbox: Send + Sync + 'static {
    /// Queues a message for the core; false if the queue is full (dropped).
    fn deliver(&self, msg: Message) -> Result<bool, tonic::Status>;
}

/// Serves shard operations forwarded by other nodes (see the module doc).
/// Called on a blocking thread; may wait.
pub trait ShardHandler: Send + Sync + std::fmt::Debug + 'static {
    fn handle(&self, request: pb::ShardRequest) -> pb::ShardReply;
}

/// Where a node's [`ShardHandler`] is registered once its shard exists.
pub type ShardSlot = Arc<OnceLock<Arc<dyn ShardHandler>>>;

/// Forwarded shard operations served at once by one node; more are refused
/// as retryable (admission control).
pub const MAX_FORWARDED: usize = 256;

/// Snapshot streams served at once by one node; more are refused
/// (`ResourceExhausted`) and retried by Raft.
pub const MAX_SNAPSHOT_STREAMS: usize = 2;

/// The tonic service of the receiving side.
pub struct Service<I> {
    id: NodeId,
    inbox: I,
    stats: Arc<TransportStats>,
    shard: ShardSlot,
    forwarded: Arc<tokio::sync::Semaphore>,
    /// The log store's directory, where the current snapshot's files are.
    snapshots: Option<PathBuf>,
    streams: Arc<tokio::sync::Semaphore>,
    max_message_bytes: usize,
    /// Becomes `true` when the node stops: ends the peers' `Stream` calls.
    closing: tokio::sync::watch::Receiver<bool>,
}

impl<I> std::fmt::Debug for Service<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<I: Inbox> Service<I> {
    /// Queues `batch`'s messages for the core; returns how many it took
    /// (the rest met a full queue). A malformed or misaddressed message
    /// fails the call (module doc).
    fn accept(&self, batch: pb::MessageBatch) -> Result<u32, tonic::Status> {
        let mut accepted = 0u32;
        for m in batch.messages {
            let msg = from_proto(m).map_err(|e| {
                bump(&self.stats.rejected_calls, 1);
                tonic::Status::invalid_argument(e.to_string())
            })?;
            if msg.to != self.id || msg.from == self.id {
                bump(&self.stats.rejected_calls, 1);
                return Err(tonic::Status::invalid_argument(format!(
                    "message from {} to {} delivered to node {}",
                    msg.from, msg.to, self.id
                )));
            }
            bump(&self.stats.received, 1);
            if self.inbox.deliver(msg)? {
                accepted += 1;
            } else {
                bump(&self.stats.dropped_inbound, 1);
            }
        }
        Ok(accepted)
    }

    /// The service of node `id`, with the message size limit applied;
    /// forwarded shard operations go to the handler in `shard`, once set;
    /// snapshot files are served from the log store in `snapshots` (none:
    /// `FetchSnapshot` is `Unavailable`).
    pub fn new(
        id: NodeId,
        inbox: I,
        config: &TransportConfig,
        stats: Arc<TransportStats>,
        shard: ShardSlot,
        snapshots: Option<PathBuf>,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> pb::raft_transport_server::RaftTransportServer<Service<I>> {
        let forwarded = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDED));
        pb::raft_transport_server::RaftTransportServer::new(Service {
            id,
            inbox,
            stats,
            shard,
            forwarded,
            snapshots,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_SNAPSHOT_STREAMS)),
            max_message_bytes: config.max_message_bytes,
            closing,
        })
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes)
    }
}

/// The largest chunk that fits a message of `max_message_bytes` with room
/// for the chunk's other fields.
pub fn chunk_bytes_for(max_message_bytes: usize) -> usize {
    MAX_CHUNK_BYTES.min(max_message_bytes.saturating_sub(1024)).max(1024)
}

type ChunkStream = Pin<
    Box<
        dyn tonic::codegen::tokio_stream::Stream<Item = Result<pb::SnapshotChunk, tonic::Status>>
            + Send,
    >,
>;

/// Opens every file `request` asks for in the snapshot it names (see the
/// module doc); `NotFound` if it is not the current snapshot any more.
fn open_snapshot_files(
    root: &Path,
    request: &pb::SnapshotRef,
) -> Result<Vec<(String, std::fs::File)>, tonic::Status> {
    let dir = snapshot_dir(root, request.index, request.term);
    let mut files = Vec::with_capacity(request.files.len());
    let mut seen = std::collections::HashSet::new();
    for name in &request.files {
        // Each name once: the files opened are then at most the snapshot's own.
        if !seen.insert(name.as_str()) {
            return Err(tonic::Status::invalid_argument(format!(
                "snapshot file {name:?} asked for twice"
            )));
        }
        if !SnapshotFile::valid_name(name) {
            return Err(tonic::Status::invalid_argument(format!(
                "bad snapshot file name {name:?}"
            )));
        }
        match std::fs::File::open(dir.join(name)) {
            Ok(f) => files.push((name.clone(), f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(tonic::Status::not_found(format!(
                    "snapshot {}@{} (file {name}) is not this node's current snapshot",
                    request.index, request.term
                )));
            }
            Err(e) => return Err(tonic::Status::internal(format!("open {name}: {e}"))),
        }
    }
    Ok(files)
}

/// Reads `files` a chunk at a time into `tx` (on a blocking thread); stops
/// when the receiver goes away.
fn stream_files(
    files: Vec<(String, std::fs::File)>,
    chunk: usize,
    tx: &mpsc::Sender<Result<pb::SnapshotChunk, tonic::Status>>,
    stats: &TransportStats,
) {
    for (name, mut file) in files {
        let mut offset = 0u64;
        loop {
            let mut data = vec![0; chunk];
            let mut filled = 0;
            while filled < chunk {
                match file.read(&mut data[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(tonic::Status::internal(format!(
                            "read snapshot file {name}: {e}"
                        ))));
                        return;
                    }
                }
            }
            if filled == 0 {
                break;
            }
            data.truncate(filled);
            let crc32c = crc32c::crc32c(&data);
            let len = data.len() as u64;
            let chunk = pb::SnapshotChunk { file: name.clone(), offset, data, crc32c };
            if tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
            bump(&stats.snapshot_bytes_sent, len);
            offset += len;
        }
    }
}

#[tonic::async_trait]
impl<I: Inbox> pb::raft_transport_server::RaftTransport for Service<I> {
    type FetchSnapshotStream = ChunkStream;

    async fn fetch_snapshot(
        &self,
        request: tonic::Request<pb::SnapshotRef>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        let Some(root) = &self.snapshots else {
            return Err(tonic::Status::unavailable("this node keeps no snapshot files"));
        };
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            return Err(tonic::Status::resource_exhausted(format!(
                "node {} is already streaming {MAX_SNAPSHOT_STREAMS} snapshots",
                self.id
            )));
        };
        let request = request.into_inner();
        let files = open_snapshot_files(root, &request)?;
        let asked = if request.max_chunk_bytes == 0 {
            MAX_CHUNK_BYTES
        } else {
            request.max_chunk_bytes as usize
        };
        let chunk = asked.min(chunk_bytes_for(self.max_message_bytes)).max(1);
        let (tx, rx) = mpsc::channel(2);
        let stats = self.stats.clone();
        tokio::task::spawn_blocking(move || {
            stream_files(files, chunk, &tx, &stats);
            drop(permit);
        });
        Ok(tonic::Response::new(Box::pin(
            tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<pb::MessageBatch>>,
    ) -> Result<tonic::Response<pb::DeliverReply>, tonic::Status> {
        let mut batches = request.into_inner();
        let mut closing = self.closing.clone();
        let mut accepted = 0u32;
        loop {
            tokio::select! {
                batch = batches.message() => match batch? {
                    Some(batch) => accepted = accepted.saturating_add(self.accept(batch)?),
                    None => break,
                },
                // The node stops (or is gone): end the call, or the
                // server's graceful shutdown would wait for the peer.
                _ = closing.wait_for(|c| *c) => {
                    return Err(tonic::Status::unavailable(format!("node {} is stopping", self.id)));
                }
            }
        }
        Ok(tonic::Response::new(pb::DeliverReply { accepted }))
    }

    async fn deliver(
        &self,
        request: tonic::Request<pb::MessageBatch>,
    ) -> Result<tonic::Response<pb::DeliverReply>, tonic::Status> {
        let accepted = self.accept(request.into_inner())?;
        Ok(tonic::Response::new(pb::DeliverReply { accepted }))
    }

    async fn shard(
        &self,
        request: tonic::Request<pb::ShardRequest>,
    ) -> Result<tonic::Response<pb::ShardReply>, tonic::Status> {
        let Some(handler) = self.shard.get().cloned() else {
            return Err(tonic::Status::unavailable("this node serves no shard yet"));
        };
        let Ok(permit) = self.forwarded.clone().try_acquire_owned() else {
            let failure = pb::shard_failure::Kind::Retry(format!(
                "node {} is serving {MAX_FORWARDED} forwarded operations",
                self.id
            ));
            return Ok(tonic::Response::new(pb::ShardReply {
                failure: Some(pb::ShardFailure { kind: Some(failure) }),
                ..Default::default()
            }));
        };
        let request = request.into_inner();
        let reply = tokio::task::spawn_blocking(move || {
            let reply = handler.handle(request);
            drop(permit);
            reply
        })
        .await
        .map_err(|e| tonic::Status::internal(format!("shard operation failed: {e}")))?;
        Ok(tonic::Response::new(reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_survives_the_wire() {
        let snapshot = Snapshot {
            index: 9,
            term: 3,
            membership: Membership::new([1, 2, 3]),
            data: b"state".to_vec(),
            files: vec![SnapshotFile { name: "000007.sst".into(), size: 4096, crc32c: 77 }],
        };
        let entries = vec![
            Entry { index: 5, term: 2, payload: Payload::Empty },
            Entry { index: 6, term: 2, payload: Payload::Command(b"put".to_vec()) },
            Entry { index: 7, term: 3, payload: Payload::Membership(Membership::new([1, 4])) },
        ];
        let bodies = vec![
            Body::PreVote { last_index: 4, last_term: 2 },
            Body::PreVoteResp { granted: true },
            Body::Vote { last_index: 4, last_term: 2, transfer: true },
            Body::VoteResp { granted: false },
            Body::Append { prev_index: 4, prev_term: 2, entries, commit: 3, round: 7 },
            Body::AppendResp { accepted: false, index: 4, hint_index: 2, hint_term: 1, round: 7 },
            Body::Heartbeat { commit: 3, round: 8 },
            Body::HeartbeatResp { round: 8 },
            Body::Snapshot { snapshot, round: 9 },
            Body::TimeoutNow,
        ];
        for body in bodies {
            let msg = Message { from: 1, to: 2, term: 3, body };
            let bytes = to_proto(&msg).encode_to_vec();
            let decoded = pb::RaftMessage::decode(bytes.as_slice()).unwrap();
            assert_eq!(from_proto(decoded).unwrap(), msg);
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        let m = pb::RaftMessage { from: 1, to: 2, term: 1, body: None };
        assert_eq!(from_proto(m), Err(DecodeError::NoBody));
        let append = pb::Append {
            entries: vec![pb::Entry { index: 3, term: 1, payload: None }],
            ..Default::default()
        };
        let m = pb::RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            body: Some(pb::raft_message::Body::Append(append)),
        };
        assert_eq!(from_proto(m), Err(DecodeError::NoPayload(3)));
        // Garbage bytes are a decode error, not a panic.
        assert!(pb::RaftMessage::decode(&b"\xff\xff\xff\xff"[..]).is_err());
    }
}
