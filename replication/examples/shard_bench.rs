//! Commit and read throughput of a three-replica `ReplicatedShard` on
//! loopback against a `LocalShard`, through `strata_txn::Store`:
//!
//! ```text
//! cargo run --release -p strata-replication --example shard_bench -- [--only local|single|replicated] [SECONDS] [CLIENTS...]
//! ```
//!
//! `--only local|single|replicated` runs one side (for profiling one of
//! them with `perf record`). Besides the local shard and the three-replica
//! shard it runs a one-node replica set (`single`): the same Raft log,
//! driver and shard machine without followers, which isolates what the
//! two followers cost.
//! The replicas tick every 50 ms (the `NodeConfig` default), or every
//! `TICK_MS` milliseconds from the environment, and take a snapshot every
//! `NodeConfig::snapshot_every` entries, or every `SNAPSHOT_EVERY`. Each line ends with the
//! number of failed operations and the first failure's message; after the
//! replicated runs each node's role, term and transport counters go to
//! stderr.
//!
//! Each line gives the process's CPU time per operation (all nodes and
//! clients share the process), less noisy than throughput on a shared
//! machine.
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
    /// The first failure, to say why.
    first_error: Option<String>,
    latencies_us: Vec<u64>,
    seconds: f64,
    /// CPU time the whole process (every node, every client) used.
    cpu_seconds: Option<f64>,
}

impl Run {
    fn line(&self, what: &str, clients: usize) -> String {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)));
        let cpu = self
            .cpu_seconds
            .map_or("-".into(), |c| format!("{:.1}", c * 1e6 / self.ops.max(1) as f64));
        format!(
            "{what:<28} clients {clients:>3}: {:>9.0} ops/s  p50 {:>6} us  p99 {:>6} us  cpu {cpu:>5} us/op  ({} failed{})",
            self.ops as f64 / self.seconds,
            pct(0.5).copied().unwrap_or(0),
            pct(0.99).copied().unwrap_or(0),
            self.failed,
            self.first_error.as_ref().map_or(String::new(), |e| format!(", first: {e}"))
        )
    }
}

/// CPU seconds (user and system) this process has used, from
/// `/proc/self/stat` (Linux; clock ticks of 10 ms), if readable.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs `op` from `clients` threads for `seconds`.
fn drive(clients: usize, seconds: f64, op: impl Fn(u64) -> Result<(), String> + Sync) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    type Outcome = (u64, u64, Vec<u64>, Option<String>);
    let results: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let op = &op;
                s.spawn(move || {
                    let mut x = (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let (mut ok, mut failed, mut lat, mut first) = (0, 0, Vec::new(), None);
                    while Instant::now() < deadline {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let t = Instant::now();
                        match op(x % KEYS) {
                            Ok(()) => {
                                ok += 1;
                                lat.push(t.elapsed().as_micros() as u64);
                            }
                            Err(e) => {
                                failed += 1;
                                first.get_or_insert(e);
                            }
                        }
                    }
                    (ok, failed, lat, first)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let mut run = Run {
        ops: 0,
        failed: 0,
        first_error: None,
        latencies_us: Vec::new(),
        seconds,
        cpu_seconds,
    };
    for (ok, failed, lat, first) in results {
        run.ops += ok;
        run.failed += failed;
        run.latencies_us.extend(lat);
        if run.first_error.is_none() {
            run.first_error = first;
        }
    }
    run
}

fn commit(store: &Store, k: u64) -> Result<(), String> {
    let mut txn = store.begin();
    txn.put(&key(k), &[7u8; 100]).map_err(|e| e.to_string())?;
    txn.commit().map(|_| ()).map_err(|e| e.to_string())
}

fn read(store: &Store, k: u64) -> Result<(), String> {
    let mut txn = store.begin_read_only();
    match txn.get(&key(k % 10_000)) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("preloaded key missing".into()),
        Err(e) => Err(e.to_string()),
    }
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

/// A replica set of `nodes` nodes on loopback, each under `root/n<id>`.
async fn replicated(
    root: &std::path::Path,
    nodes: NodeId,
) -> BTreeMap<NodeId, Arc<ReplicatedShard>> {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=nodes {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.insert(id, listener.local_addr().expect("addr").to_string());
        listeners.insert(id, listener);
    }
    let mut shards = BTreeMap::new();
    for (id, listener) in listeners {
        let peers = addrs.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
        let mut config = NodeConfig::new(id, peers, root.join(format!("n{id}")));
        config.tick = Duration::from_millis(
            std::env::var("TICK_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(50),
        );
        if let Some(n) = std::env::var("SNAPSHOT_EVERY").ok().and_then(|s| s.parse().ok()) {
            config.snapshot_every = n;
        }
        let hlc = Arc::new(Hlc::system_volatile(500));
        let shard =
            ReplicatedShard::start(config, strata_lsm::Options::default(), hlc, listener).await;
        shards.insert(id, Arc::new(shard.expect("start")));
    }
    shards
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let only = match args.iter().position(|a| a == "--only") {
        Some(i) if i + 1 < args.len() => {
            let side = args.remove(i + 1);
            args.remove(i);
            Some(side)
        }
        _ => None,
    };
    let mut args = args.into_iter();
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let clients: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    let clients = if clients.is_empty() { vec![1, 16, 64] } else { clients };

    let dir = tempfile::tempdir().expect("tempdir");
    if only.as_deref().is_none_or(|o| o == "local") {
        let local = Store::open(dir.path().join("local"), TxnOptions::default()).expect("open");
        bench("local shard", &local, seconds, &clients);
        drop(local);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for nodes in [1, 3] {
        let side = if nodes == 1 { "single" } else { "replicated" };
        if only.as_deref().is_some_and(|o| o != side) {
            continue;
        }
        let root = dir.path().join(side);
        let shards = runtime.block_on(replicated(&root, nodes));
        let name = format!("replicated shard ({nodes} node{})", if nodes == 1 { "" } else { "s" });
        run_replicated(&runtime, shards, &name, seconds, &clients);
    }
}

/// Benchmarks `shards` through a store on their leader, then stops them.
fn run_replicated(
    runtime: &tokio::runtime::Runtime,
    shards: BTreeMap<NodeId, Arc<ReplicatedShard>>,
    name: &str,
    seconds: f64,
    clients: &[usize],
) {
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
    bench(name, &store, seconds, clients);
    for (id, shard) in &shards {
        let (raft, t) = (shard.node().status().raft, shard.node().transport_stats());
        let get = strata_replication::transport::TransportStats::get;
        eprintln!(
            "node {id}: {:?} term {} commit {}; sent {} received {}, dropped: full {} inbound {} \
             unreachable {}",
            raft.role,
            raft.term,
            raft.commit,
            get(&t.sent),
            get(&t.received),
            get(&t.dropped_full),
            get(&t.dropped_inbound),
            get(&t.dropped_unreachable)
        );
    }
    drop((store, leader));
    for (_, shard) in shards {
        if let Some(shard) = Arc::into_inner(shard) {
            runtime.block_on(shard.stop());
        }
    }
}
