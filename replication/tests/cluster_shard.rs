//! `ClusterShard` on three in-process nodes over loopback gRPC: a
//! follower's `Store` serves transactions by forwarding to the leader;
//! the leader stops while commits are in flight, and the follower's
//! commits go on at the new leader (retried with their command ids, never
//! twice) with a history that passes the checker; forwarded scans come in
//! pages that add up to the whole range, both ways; and with no leader a
//! commit fails retryable (nothing was sent anywhere), not ambiguous.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_replication::node::NodeConfig;
use strata_replication::raft::Role;
use strata_replication::{
    ClusterShard, FileStoreOptions, ForwardConfig, NodeId, ReplicatedShard, ShardError,
};
use strata_txn::history::{self, Op, Outcome, Recorded};
use strata_txn::{Isolation, KeyRange, Store, TxnOptions};

type Nodes = BTreeMap<NodeId, (Arc<ReplicatedShard>, ClusterShard)>;

async fn start(root: &std::path::Path, forward: ForwardConfig) -> Nodes {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, listener.local_addr().unwrap().to_string());
        listeners.insert(id, listener);
    }
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let peers: BTreeMap<NodeId, String> =
            addrs.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
        let mut config = NodeConfig::new(id, peers.clone(), root.join(format!("n{id}")));
        config.tick = Duration::from_millis(20);
        config.store = FileStoreOptions { segment_size_bytes: 64 << 10 };
        let hlc = Arc::new(strata_txn::Hlc::system_volatile(500));
        let shard = ReplicatedShard::start(config, strata_lsm::Options::default(), hlc, listener);
        let shard = Arc::new(shard.await.unwrap());
        let handle = tokio::runtime::Handle::current();
        let cluster = ClusterShard::new(shard.clone(), &peers, handle, forward.clone()).unwrap();
        nodes.insert(id, (shard, cluster));
    }
    nodes
}

async fn leader(nodes: &Nodes) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: Vec<NodeId> = nodes
            .iter()
            .filter(|(_, (s, _))| s.node().status().raft.role == Role::Leader)
            .map(|(id, _)| *id)
            .collect();
        if let [id] = leaders[..] {
            let shard = nodes[&id].0.clone();
            if tokio::task::spawn_blocking(move || shard.leader_round()).await.unwrap().is_ok() {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops node `id` (its `ClusterShard` first: it holds the replica).
async fn stop(nodes: &mut Nodes, id: NodeId) {
    let (shard, cluster) = nodes.remove(&id).unwrap();
    drop(cluster);
    Arc::into_inner(shard).expect("nothing else holds the replica").stop().await;
}

fn store(nodes: &Nodes, id: NodeId) -> Store {
    let (shard, cluster) = &nodes[&id];
    Store::with_shard(Arc::new(cluster.clone()), shard.hlc().clone(), TxnOptions::default())
}

fn key(k: u64) -> Vec<u8> {
    format!("list-{k}").into_bytes()
}

fn decode(v: Option<Vec<u8>>) -> Vec<u64> {
    v.unwrap_or_default()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// `txns` list-append transactions from each of `clients` threads; values
/// are unique per `round`.
fn workload(store: &Store, round: u64, clients: u64, txns: u64) -> Vec<Recorded> {
    let history = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..clients {
            let (store, history) = (store.clone(), &history);
            s.spawn(move || {
                let mut x = (round * 31 + c).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for t in 0..txns {
                    let mut txn = store.begin();
                    let mut ops = Vec::new();
                    let mut failed = false;
                    for i in 0..(1 + next() % 3) {
                        let k = next() % 5;
                        let Ok(list) = txn.get(&key(k)).map(decode) else {
                            failed = true;
                            break;
                        };
                        if next() % 2 == 0 {
                            ops.push(Op::Read { key: k, values: list });
                        } else {
                            let value = round * 100_000_000 + c * 1_000_000 + t * 10 + i + 1;
                            let mut list = list;
                            list.push(value);
                            let bytes: Vec<u8> =
                                list.iter().flat_map(|v| v.to_le_bytes()).collect();
                            txn.put(&key(k), &bytes).unwrap();
                            ops.push(Op::Append { key: k, value });
                        }
                    }
                    let outcome = if failed {
                        Outcome::Aborted
                    } else {
                        match txn.commit() {
                            Ok(_) => Outcome::Committed,
                            Err(e) if e.is_retryable() => Outcome::Aborted,
                            Err(e) => match ShardError::of(&e) {
                                Some(ShardError::Ambiguous { .. }) => Outcome::Unknown,
                                Some(e) if e.is_retryable() => Outcome::Aborted,
                                _ => panic!("commit failed: {e}"),
                            },
                        }
                    };
                    history.lock().unwrap().push(Recorded { ops, outcome });
                }
            });
        }
    });
    history.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_through_a_leader_change_and_the_history_checks() {
    let root = tempfile::tempdir().unwrap();
    // Two rows per scan page, so scans of five keys take several pages.
    let forward = ForwardConfig { scan_page_rows: 2, ..ForwardConfig::default() };
    let mut nodes = start(root.path(), forward).await;
    let first = leader(&nodes).await;
    let follower = *nodes.keys().find(|id| **id != first).unwrap();
    let store = store(&nodes, follower);

    // Transactions through the follower; the leader stops while they run.
    let during = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || workload(&store, 1, 3, 40))
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(&mut nodes, first).await;
    let mut recorded = during.await.unwrap();
    let second = leader(&nodes).await;
    assert_ne!(second, first);
    let after = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || workload(&store, 2, 3, 20))
    };
    recorded.extend(after.await.unwrap());
    let committed = recorded.iter().filter(|r| r.outcome == Outcome::Committed).count();
    assert!(committed > 40, "only {committed} of {} committed", recorded.len());

    // A read-only transaction through the follower: gets, and scans in pages
    // both ways, agree; the final lists join the history.
    let final_reads = tokio::task::spawn_blocking(move || {
        let mut txn = store.begin_read_only();
        let gets: Vec<(Vec<u8>, Vec<u8>)> =
            (0..5).filter_map(|k| txn.get(&key(k)).unwrap().map(|v| (key(k), v))).collect();
        let forward: Vec<_> =
            txn.scan(KeyRange::all(), false).unwrap().map(Result::unwrap).collect();
        let mut backward: Vec<_> =
            txn.scan(KeyRange::all(), true).unwrap().map(Result::unwrap).collect();
        backward.reverse();
        assert_eq!(forward, gets);
        assert_eq!(backward, gets);
        (0..5).map(|k| Op::Read { key: k, values: decode(txn.get(&key(k)).unwrap()) }).collect()
    })
    .await
    .unwrap();
    recorded.push(Recorded { ops: final_reads, outcome: Outcome::Committed });
    let anomalies = history::check(&recorded, Isolation::Snapshot);
    assert!(anomalies.is_empty(), "{anomalies:?}");
    for id in nodes.keys().copied().collect::<Vec<_>>() {
        stop(&mut nodes, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_leader_a_commit_fails_retryable_not_ambiguous() {
    let root = tempfile::tempdir().unwrap();
    let forward = ForwardConfig {
        leader_wait: Duration::from_millis(500),
        commit_wait: Duration::from_secs(2),
        ..ForwardConfig::default()
    };
    let mut nodes = start(root.path(), forward).await;
    let first = leader(&nodes).await;
    let survivor = *nodes.keys().find(|id| **id != first).unwrap();
    let store = store(&nodes, survivor);
    for id in nodes.keys().copied().filter(|id| *id != survivor).collect::<Vec<_>>() {
        stop(&mut nodes, id).await;
    }
    // The survivor's election timer runs out: it knows no leader.
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes[&survivor].0.node().status().raft.leader.is_some() {
        assert!(Instant::now() < deadline, "the survivor still names a leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outcome = tokio::task::spawn_blocking(move || {
        let mut txn = store.begin();
        txn.put(b"k", b"v").unwrap();
        txn.commit()
    })
    .await
    .unwrap();
    let e = outcome.expect_err("no quorum, yet the commit succeeded");
    let shard = ShardError::of(&e).unwrap_or_else(|| panic!("not a shard error: {e}"));
    assert!(
        shard.is_retryable() && !matches!(shard, ShardError::Ambiguous { .. }),
        "expected a retryable refusal, got {shard}"
    );
    stop(&mut nodes, survivor).await;
}
