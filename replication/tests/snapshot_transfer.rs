//! Snapshots as engine checkpoints, streamed in chunks (issue 7), on three
//! real replicated-shard nodes over loopback gRPC:
//!
//! - a replica that was down while the others wrote (and compacted their
//!   logs) catches up through a snapshot whose files are several times the
//!   transport's message limit, fetched in chunks below it, and then reads
//!   the same as the leader at every timestamp; also while the leader
//!   keeps committing (and snapshotting) during the catch-up;
//! - nodes restarted after snapshots rebuild their engines from the stored
//!   checkpoint plus the log after it;
//! - a damaged checkpoint file stops a start (corruption, never a panic),
//!   and a server that sends a bad chunk gets its stream refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_replication::node::NodeConfig;
use strata_replication::transport::{self, TransportConfig, TransportStats, pb};
use strata_replication::{Error, FileStoreOptions, NodeId, ReplicatedShard, ShardError};
use strata_txn::{CommitRequest, Hlc, Shard};

mod common;
use common::leader;

const MAX_MESSAGE_BYTES: usize = 256 << 10;

fn config(id: NodeId, addrs: &BTreeMap<NodeId, String>, root: &Path) -> NodeConfig {
    let peers = addrs.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
    let mut c = NodeConfig::new(id, peers, root.join(format!("n{id}")));
    c.tick = Duration::from_millis(20);
    c.store = FileStoreOptions { segment_size_bytes: 256 << 10 };
    c.snapshot_every = 40;
    c.transport.max_message_bytes = MAX_MESSAGE_BYTES;
    // Appends of at most 16 commands of ~8 KiB stay below the limit.
    c.raft.max_append_entries = 16;
    c
}

async fn start_one(
    id: NodeId,
    addrs: &BTreeMap<NodeId, String>,
    root: &Path,
) -> Result<Arc<ReplicatedShard>, ShardError> {
    let listener = tokio::net::TcpListener::bind(&addrs[&id]).await.unwrap();
    let hlc = Arc::new(Hlc::system_volatile(500));
    let shard = ReplicatedShard::start(
        config(id, addrs, root),
        strata_lsm::Options::default(),
        hlc,
        listener,
    );
    Ok(Arc::new(shard.await?))
}

/// Picks three free loopback addresses.
async fn addresses() -> BTreeMap<NodeId, String> {
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, listener.local_addr().unwrap().to_string());
    }
    addrs
}

/// Every version written: key -> (commit timestamp, value), oldest first.
type Model = BTreeMap<Vec<u8>, Vec<(u64, Vec<u8>)>>;

fn key(k: u64) -> Vec<u8> {
    format!("key-{k:04}").into_bytes()
}

/// `commits` commits on `shard`, each writing 8 keys (of 600, so keys get
/// several versions) with 1 KiB values that do not compress. Returns the
/// commit timestamps.
fn write(shard: &ReplicatedShard, model: &mut Model, first: u64, commits: u64) -> Vec<u64> {
    let mut x = first.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut stamps = Vec::new();
    for c in first..first + commits {
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..8)
            .map(|j| {
                let value: Vec<u8> = (0..128).flat_map(|_| next().to_le_bytes()).collect();
                (key((c * 8 + j) % 600), Some(value))
            })
            .collect();
        writes.sort();
        let request = CommitRequest {
            start_ts: shard.snapshot_ts(),
            writes: writes.clone(),
            ..Default::default()
        };
        let ts = shard.commit_with_id(shard.next_id(), &request).expect("commit");
        for (k, v) in writes {
            model.entry(k).or_default().push((ts, v.unwrap()));
        }
        stamps.push(ts);
    }
    stamps
}

/// Checks that `shard`'s engine holds exactly the model at `ts`.
fn check_at(shard: &ReplicatedShard, model: &Model, ts: u64, who: &str) {
    for k in 0..600 {
        let want = model
            .get(&key(k))
            .and_then(|versions| versions.iter().rev().find(|(t, _)| *t <= ts))
            .map(|(_, v)| v.clone());
        let got = shard.local_get(&key(k), ts).unwrap();
        assert!(got == want, "{who}: key {k} at {ts} differs from what was written");
    }
}

async fn wait_applied(shard: &ReplicatedShard, last_ts: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while shard.local_last_ts() < last_ts {
        assert!(shard.node().status().failed.is_none(), "{what}: {:?}", shard.node().status());
        assert!(Instant::now() < deadline, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stat(
    stats: &TransportStats,
    f: impl Fn(&TransportStats) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    TransportStats::get(f(stats))
}

async fn stop_all(shards: BTreeMap<NodeId, Arc<ReplicatedShard>>) {
    for (_, shard) in shards {
        Arc::into_inner(shard).unwrap().stop().await;
    }
}

fn snapshot_dirs(node_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(node_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(".d"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_catches_up_through_a_snapshot_larger_than_a_message() {
    let root = tempfile::tempdir().unwrap();
    let addrs = addresses().await;
    let mut shards = BTreeMap::new();
    for id in 1..=3 {
        shards.insert(id, start_one(id, &addrs, root.path()).await.unwrap());
    }
    let first = leader(&shards).await;
    let lagging = *shards.keys().find(|id| **id != first).unwrap();
    Arc::into_inner(shards.remove(&lagging).unwrap()).unwrap().stop().await;

    // About 3 MiB of values while it is down; the others snapshot every 40
    // entries, so their logs no longer reach back to where it stopped.
    let s = shards[&first].clone();
    let (model, stamps) = tokio::task::spawn_blocking(move || {
        let mut model = Model::new();
        let stamps = write(&s, &mut model, 0, 400);
        (model, stamps)
    })
    .await
    .unwrap();
    let status = shards[&first].node().status().raft;
    assert!(status.snapshot_index > 300, "the leader compacted its log: {status:?}");
    let files = snapshot_dirs(&root.path().join(format!("n{first}")));
    assert_eq!(files.len(), 1, "one current snapshot directory: {files:?}");
    let checkpoint_bytes: u64 =
        std::fs::read_dir(&files[0]).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(
        checkpoint_bytes > 4 * MAX_MESSAGE_BYTES as u64,
        "the checkpoint ({checkpoint_bytes} bytes) is several messages large"
    );

    // It comes back and catches up through the snapshot, fetched in chunks.
    shards.insert(lagging, start_one(lagging, &addrs, root.path()).await.unwrap());
    let last = *stamps.last().unwrap();
    wait_applied(&shards[&lagging], last, "the lagging replica").await;
    let stats = shards[&lagging].node().transport_stats();
    assert!(stat(stats, |s| &s.snapshot_fetches) >= 1, "it fetched a snapshot");
    let received = stat(stats, |s| &s.snapshot_bytes_received);
    assert!(received >= checkpoint_bytes / 2, "{received} of {checkpoint_bytes} bytes");
    let largest = stat(stats, |s| &s.snapshot_max_chunk_bytes);
    assert!(largest > 0 && largest < MAX_MESSAGE_BYTES as u64, "chunks of {largest} bytes");
    let leader_stats = shards[&first].node().transport_stats();
    assert_eq!(stat(leader_stats, |s| &s.dropped_oversize), 0, "no message was too large");
    assert!(stat(leader_stats, |s| &s.snapshot_bytes_sent) >= received);
    let lag_status = shards[&lagging].node().status().raft;
    assert!(lag_status.snapshot_index > 300, "it installed a snapshot: {lag_status:?}");

    // Identical reads, at every timestamp (all MVCC versions came along).
    for ts in stamps.iter().step_by(37).chain([&last]) {
        check_at(&shards[&first], &model, *ts, "leader");
        check_at(&shards[&lagging], &model, *ts, "caught-up replica");
    }
    assert!(shards.values().all(|s| s.node().status().raft.protocol_violations == 0));

    // A fetch of a snapshot that is not the leader's current one (it
    // compacted again) fails, saying so: the follower drops it.
    let stale = strata_replication::SnapshotFile { name: "000001.sst".into(), size: 1, crc32c: 0 };
    let config = TransportConfig::default();
    let dir = root.path().join("stale-fetch");
    let e = transport::fetch_snapshot(&addrs[&first], 1, 1, &[stale], &dir, &config, stats)
        .await
        .unwrap_err();
    assert!(e.contains("not this node's current snapshot"), "{e}");

    // A request that names one file twice is refused (a peer cannot make
    // the leader open more files than its snapshot has).
    let (index, term, name) = current_snapshot_file(&root.path().join(format!("n{first}")));
    let file = strata_replication::SnapshotFile { name, size: 1, crc32c: 0 };
    let twice = [file.clone(), file];
    let e = transport::fetch_snapshot(&addrs[&first], index, term, &twice, &dir, &config, stats)
        .await
        .unwrap_err();
    assert!(e.contains("asked for twice"), "{e}");

    // It takes its own snapshots from the installed engine, and goes on.
    let s = shards[&first].clone();
    let (model2, stamps2) = tokio::task::spawn_blocking(move || {
        let mut model = model;
        let stamps = write(&s, &mut model, 400, 60);
        (model, stamps)
    })
    .await
    .unwrap();
    let last = *stamps2.last().unwrap();
    wait_applied(&shards[&lagging], last, "the caught-up replica").await;
    check_at(&shards[&lagging], &model2, last, "caught-up replica, later");

    // Restarted, it recovers from the snapshot it stored (installed or
    // taken since) and its log, with no fetch.
    Arc::into_inner(shards.remove(&lagging).unwrap()).unwrap().stop().await;
    shards.insert(lagging, start_one(lagging, &addrs, root.path()).await.unwrap());
    wait_applied(&shards[&lagging], last, "the restarted replica").await;
    for ts in stamps2.iter().step_by(13).chain([&last]) {
        check_at(&shards[&lagging], &model2, *ts, "restarted replica");
    }
    check_at(&shards[&lagging], &model2, stamps[100], "restarted replica, old history");
    let stats = shards[&lagging].node().transport_stats();
    assert_eq!(stat(stats, |s| &s.snapshot_fetches), 0, "nothing fetched after the restart");
    stop_all(shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_catches_up_while_writes_go_on() {
    let root = tempfile::tempdir().unwrap();
    let addrs = addresses().await;
    let mut shards = BTreeMap::new();
    for id in 1..=3 {
        shards.insert(id, start_one(id, &addrs, root.path()).await.unwrap());
    }
    let first = leader(&shards).await;
    let lagging = *shards.keys().find(|id| **id != first).unwrap();
    Arc::into_inner(shards.remove(&lagging).unwrap()).unwrap().stop().await;
    let s = shards[&first].clone();
    let model = tokio::task::spawn_blocking(move || {
        let mut model = Model::new();
        write(&s, &mut model, 0, 200);
        model
    })
    .await
    .unwrap();

    // It comes back while the leader keeps committing (and would keep
    // snapshotting every 40 entries): it still converges.
    let s = shards[&first].clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut model = model;
        let stamps = write(&s, &mut model, 200, 200);
        (model, stamps)
    });
    shards.insert(lagging, start_one(lagging, &addrs, root.path()).await.unwrap());
    let (model, stamps) = writer.await.unwrap();
    let last = *stamps.last().unwrap();
    wait_applied(&shards[&lagging], last, "the lagging replica under load").await;
    let stats = shards[&lagging].node().transport_stats();
    assert!(stat(stats, |s| &s.snapshot_fetches) >= 1, "it fetched a snapshot");
    for ts in stamps.iter().step_by(41).chain([&last]) {
        check_at(&shards[&lagging], &model, *ts, "replica caught up under load");
    }
    assert!(shards.values().all(|s| s.node().status().raft.protocol_violations == 0));
    stop_all(shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_nodes_recover_from_the_checkpoint_and_the_log_tail_and_refuse_damage() {
    let root = tempfile::tempdir().unwrap();
    let addrs = addresses().await;
    let mut shards = BTreeMap::new();
    for id in 1..=3 {
        shards.insert(id, start_one(id, &addrs, root.path()).await.unwrap());
    }
    let first = leader(&shards).await;
    // 130 commits: snapshots at 40-entry steps, and a log tail after the last.
    let s = shards[&first].clone();
    let (model, stamps) = tokio::task::spawn_blocking(move || {
        let mut model = Model::new();
        let stamps = write(&s, &mut model, 0, 130);
        (model, stamps)
    })
    .await
    .unwrap();
    let last = *stamps.last().unwrap();
    for (id, shard) in &shards {
        wait_applied(shard, last, &format!("replica {id}")).await;
    }
    let before: BTreeMap<NodeId, _> =
        shards.iter().map(|(id, s)| (*id, s.node().status().raft)).collect();
    for status in before.values() {
        assert!(status.snapshot_index >= 40, "{status:?}");
        assert!(status.applied > status.snapshot_index, "a log tail: {status:?}");
    }
    stop_all(shards).await;

    let mut shards = BTreeMap::new();
    for id in 1..=3 {
        shards.insert(id, start_one(id, &addrs, root.path()).await.unwrap());
    }
    for (id, shard) in &shards {
        let status = shard.node().status().raft;
        assert_eq!(status.snapshot_index, before[id].snapshot_index, "recovered its snapshot");
        // Recovered from the checkpoint plus the log tail, before any new write.
        wait_applied(shard, last, &format!("restarted replica {id}")).await;
        for ts in stamps.iter().step_by(29).chain([&last]) {
            check_at(shard, &model, *ts, &format!("restarted replica {id}"));
        }
    }
    stop_all(shards).await;

    // A damaged checkpoint file: the node refuses to start from it.
    let node_dir = root.path().join("n1");
    let dirs = snapshot_dirs(&node_dir);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let table = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .expect("the checkpoint holds tables");
    let mut bytes = std::fs::read(&table).unwrap();
    std::fs::remove_file(&table).unwrap(); // break the hard link first
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&table, &bytes).unwrap();
    match start_one(1, &addrs, root.path()).await {
        Err(ShardError::Raft(Error::CorruptFile { path, .. })) => assert_eq!(path, table),
        Err(e) => panic!("expected CorruptFile, got {e}"),
        Ok(_) => panic!("a node started from a damaged checkpoint"),
    }
    // A missing one is corruption too (found when the store opens).
    std::fs::remove_file(&table).unwrap();
    match start_one(1, &addrs, root.path()).await {
        Err(ShardError::Raft(Error::CorruptFile { .. })) => {}
        Err(e) => panic!("expected CorruptFile, got {e}"),
        Ok(_) => panic!("a node started from an incomplete checkpoint"),
    }
}

/// A peer that answers `FetchSnapshot` with the chunks it was given.
struct FakePeer {
    chunks: Vec<pb::SnapshotChunk>,
}

type Chunks = std::pin::Pin<
    Box<
        dyn tonic::codegen::tokio_stream::Stream<Item = Result<pb::SnapshotChunk, tonic::Status>>
            + Send,
    >,
>;

#[tonic::async_trait]
impl pb::raft_transport_server::RaftTransport for FakePeer {
    type FetchSnapshotStream = Chunks;

    async fn stream(
        &self,
        _: tonic::Request<tonic::Streaming<pb::MessageBatch>>,
    ) -> Result<tonic::Response<pb::DeliverReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn deliver(
        &self,
        _: tonic::Request<pb::MessageBatch>,
    ) -> Result<tonic::Response<pb::DeliverReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn shard(
        &self,
        _: tonic::Request<pb::ShardRequest>,
    ) -> Result<tonic::Response<pb::ShardReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn fetch_snapshot(
        &self,
        _: tonic::Request<pb::SnapshotRef>,
    ) -> Result<tonic::Response<Chunks>, tonic::Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(self.chunks.len().max(1));
        for c in &self.chunks {
            tx.try_send(Ok(c.clone())).unwrap();
        }
        Ok(tonic::Response::new(Box::pin(
            tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_forged_or_short_chunk_streams_are_refused() {
    let data: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let file = strata_replication::SnapshotFile {
        name: "000001.sst".into(),
        size: data.len() as u64,
        crc32c: crc32c::crc32c(&data),
    };
    let chunk = |offset: usize, bytes: &[u8], crc: u32| pb::SnapshotChunk {
        file: file.name.clone(),
        offset: offset as u64,
        data: bytes.to_vec(),
        crc32c: crc,
    };
    let good: Vec<_> =
        data.chunks(4096).enumerate().map(|(k, c)| chunk(k * 4096, c, crc32c::crc32c(c))).collect();
    let mut flipped = good.clone();
    flipped[2].data[7] ^= 0x20; // the chunk's checksum no longer matches
    let mut forged = good.clone();
    let mut body = forged[1].data.clone();
    body[0] ^= 1; // a consistent chunk checksum, but the file's is wrong
    forged[1] = chunk(4096, &body, crc32c::crc32c(&body));
    let short = good[..good.len() - 1].to_vec();

    let root = tempfile::tempdir().unwrap();
    let stats = TransportStats::default();
    let config = TransportConfig::default();
    for (name, chunks, ok) in [
        ("good", good, true),
        ("flipped", flipped, false),
        ("forged", forged, false),
        ("short", short, false),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::raft_transport_server::RaftTransportServer::new(FakePeer {
                    chunks,
                }))
                .serve_with_incoming(incoming),
        );
        let dir = root.path().join(name);
        let result = transport::fetch_snapshot(
            &addr,
            5,
            1,
            std::slice::from_ref(&file),
            &dir,
            &config,
            &stats,
        )
        .await;
        if ok {
            let out = result.unwrap();
            assert_eq!(std::fs::read(out.join(&file.name)).unwrap(), data);
        } else {
            let e = result.unwrap_err();
            assert!(!e.is_empty(), "{name}: refused with a reason");
        }
        server.abort();
    }
}

/// The index, term and one file name of the snapshot stored under `dir`
/// (its `snap-<index>-<term>.d` directory, found by walking).
fn current_snapshot_file(dir: &Path) -> (u64, u64, String) {
    find_snapshot_file(dir).unwrap_or_else(|| panic!("no snapshot under {}", dir.display()))
}

fn find_snapshot_file(dir: &Path) -> Option<(u64, u64, String)> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if !path.is_dir() {
            continue;
        }
        let name = path.file_name()?.to_string_lossy().to_string();
        if let Some(stem) = name.strip_prefix("snap-").and_then(|n| n.strip_suffix(".d")) {
            let (index, term) = stem.split_once('-')?;
            let file = std::fs::read_dir(&path).ok()?.next()?.ok()?;
            let file = file.file_name().to_string_lossy().to_string();
            return Some((index.parse().ok()?, term.parse().ok()?, file));
        }
        if let Some(found) = find_snapshot_file(&path) {
            return Some(found);
        }
    }
    None
}
