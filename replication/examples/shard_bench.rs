//! Commit and read throughput of a three-replica `ReplicatedShard` on
//! loopback against a `LocalShard`, through `strata_txn::Store`:
//!
//! ```text
//! cargo run --release -p strata-replication --example shard_bench -- [SECONDS] [CLIENTS...]
//! ```
//!
//! Commits: each client thread commits one-key write transactions (a random
//! key of 100 000, 100-byte values) for SECONDS. Reads: each client runs
//! read-only transactions of one `get` of a preloaded key. Both durable: the
//! local shard fsyncs its WAL (group commit), the replicas fsync their Raft
//! logs before acknowledging.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_replication::node::NodeConfig;
use strata_replication::raft::Role;
use strata_replication::{NodeId, ReplicatedShard};
use strata_txn::{Hlc, Store, TxnOptions};

const KEYS: u64 = 100_000;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

struct Run {
    ops: u64,
    failed: u64,
    latencies_us: Vec<u64>,
    seconds: f64,
}

impl Run {
    fn line(&self, what: &str, clients: usize) -> String {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)));
        format!(
            "{what:<28} clients {clients:>3}: {:>9.0} ops/s  p50 {:>6} us  p99 {:>6} us  ({} failed)",
            self.ops as f64 / self.seconds,
            pct(0.5).copied().unwrap_or(0),
            pct(0.99).copied().unwrap_or(0),
            self.failed
        )
    }
}

/// Runs `op` from `clients` threads for `seconds`.
fn drive(clients: usize, seconds: f64, op: impl Fn(u64) -> bool + Sync) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results: Vec<(u64, u64, Vec<u64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let op = &op;
                s.spawn(move || {
                    let mut x = (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let (mut ok, mut failed, mut lat) = (0, 0, Vec::new());
                    while Instant::now() < deadline {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let t = Instant::now();
                        if op(x % KEYS) {
                            ok += 1;
                            lat.push(t.elapsed().as_micros() as u64);
                        } else {
                            failed += 1;
                        }
                    }
                    (ok, failed, lat)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut run = Run { ops: 0, failed: 0, latencies_us: Vec::new(), seconds };
    for (ok, failed, lat) in results {
        run.ops += ok;
        run.failed += failed;
        run.latencies_us.extend(lat);
    }
    run
}

fn commit(store: &Store, k: u64) -> bool {
    let mut txn = store.begin();
    txn.put(&key(k), &[7u8; 100]).is_ok() && txn.commit().is_ok()
}

fn read(store: &Store, k: u64) -> bool {
    let mut txn = store.begin_read_only();
    matches!(txn.get(&key(k % 10_000)), Ok(Some(_)))
}

fn preload(store: &Store) {
    for chunk in 0..10 {
        let mut txn = store.begin();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            txn.put(&key(i), &[1u8; 100]).expect("buffered");
        }
        txn.commit().expect("preload");
    }
}

fn bench(name: &str, store: &Store, seconds: f64, clients: &[usize]) {
    preload(store);
    for &c in clients {
        println!("{}", drive(c, seconds, |k| commit(store, k)).line(&format!("{name} commit"), c));
    }
    for &c in &[1, 16] {
        println!("{}", drive(c, seconds, |k| read(store, k)).line(&format!("{name} read"), c));
    }
}

async fn replicated(root: &std::path::Path) -> BTreeMap<NodeId, Arc<ReplicatedShard>> {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.insert(id, listener.local_addr().expect("addr").to_string());
        listeners.insert(id, listener);
    }
    let mut shards = BTreeMap::new();
    for (id, listener) in listeners {
        let peers = addrs.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
        let mut config = NodeConfig::new(id, peers, root.join(format!("n{id}")));
        config.tick = Duration::from_millis(20);
        let hlc = Arc::new(Hlc::system_volatile(500));
        let shard =
            ReplicatedShard::start(config, strata_lsm::Options::default(), hlc, listener).await;
        shards.insert(id, Arc::new(shard.expect("start")));
    }
    shards
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let clients: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    let clients = if clients.is_empty() { vec![1, 16, 64] } else { clients };

    let dir = tempfile::tempdir().expect("tempdir");
    let local = Store::open(dir.path().join("local"), TxnOptions::default()).expect("open");
    bench("local shard", &local, seconds, &clients);
    drop(local);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let shards = runtime.block_on(replicated(dir.path()));
    let leader = loop {
        let leader = shards
            .iter()
            .find(|(_, s)| s.node().status().raft.role == Role::Leader && s.leader_round().is_ok());
        if let Some((_, s)) = leader {
            break s.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let store = Store::with_shard(
        leader.clone(),
        Arc::new(Hlc::system_volatile(500)),
        TxnOptions::default(),
    );
    bench("replicated shard (3 nodes)", &store, seconds, &clients);
    drop((store, leader));
    for (_, shard) in shards {
        if let Some(shard) = Arc::into_inner(shard) {
            runtime.block_on(shard.stop());
        }
    }
}
