//! The replicated shard on three real nodes over loopback gRPC: concurrent
//! list-append transactions through `strata_txn::Store` on the leader pass
//! the history checker and every replica ends with the same data; a
//! follower refuses with `NotLeader` naming the leader; after the leader
//! stops, a retry of an applied commit with the same id returns the first
//! outcome instead of committing twice, and the new leader goes on.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_replication::node::NodeConfig;
use strata_replication::{FileStoreOptions, NodeId, ReplicatedShard, ShardError};
use strata_txn::history::{self, Op, Outcome, Recorded};
use strata_txn::{CommitRequest, Hlc, Isolation, Shard, Store, TxnOptions};

mod common;
use common::leader;

fn config(id: NodeId, addrs: &BTreeMap<NodeId, String>, root: &std::path::Path) -> NodeConfig {
    let peers = addrs.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
    let mut c = NodeConfig::new(id, peers, root.join(format!("n{id}")));
    c.tick = Duration::from_millis(20);
    c.store = FileStoreOptions { segment_size_bytes: 64 << 10 };
    c.snapshot_every = 150;
    c
}

async fn start(
    root: &std::path::Path,
) -> (BTreeMap<NodeId, Arc<ReplicatedShard>>, BTreeMap<NodeId, String>) {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, listener.local_addr().unwrap().to_string());
        listeners.insert(id, listener);
    }
    let mut shards = BTreeMap::new();
    for (id, listener) in listeners {
        let hlc = Arc::new(Hlc::system_volatile(500));
        let shard = ReplicatedShard::start(
            config(id, &addrs, root),
            strata_lsm::Options::default(),
            hlc,
            listener,
        );
        shards.insert(id, Arc::new(shard.await.unwrap()));
    }
    (shards, addrs)
}

/// A store over `shard` (the leader), with a clock of its own.
fn store_on(shard: Arc<ReplicatedShard>) -> Store {
    Store::with_shard(shard, Arc::new(Hlc::system_volatile(500)), TxnOptions::default())
}

async fn stop_all(shards: BTreeMap<NodeId, Arc<ReplicatedShard>>) {
    for (_, shard) in shards {
        Arc::into_inner(shard).unwrap().stop().await;
    }
}

fn decode(v: Option<Vec<u8>>) -> Vec<u64> {
    v.unwrap_or_default()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn key(k: u64) -> Vec<u8> {
    format!("list-{k}").into_bytes()
}

/// Runs `txns` list-append transactions from each of `clients` threads.
fn workload(store: &Store, clients: u64, txns: u64) -> Vec<Recorded> {
    let history = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..clients {
            let (store, history) = (store.clone(), &history);
            s.spawn(move || {
                let mut x = c.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for t in 0..txns {
                    let mut ops = Vec::new();
                    for i in 0..(1 + next() % 3) {
                        let k = next() % 5;
                        if next() % 2 == 0 {
                            ops.push(Op::Read { key: k, values: Vec::new() });
                        } else {
                            ops.push(Op::Append { key: k, value: c * 1_000_000 + t * 10 + i + 1 });
                        }
                    }
                    let mut txn = store.begin();
                    let mut failed = false;
                    for op in &mut ops {
                        match op {
                            Op::Read { key: k, values } => match txn.get(&key(*k)) {
                                Ok(v) => *values = decode(v),
                                Err(_) => failed = true,
                            },
                            Op::Append { key: k, value } => {
                                let mut list = match txn.get(&key(*k)) {
                                    Ok(v) => decode(v),
                                    Err(_) => {
                                        failed = true;
                                        break;
                                    }
                                };
                                list.push(*value);
                                let bytes: Vec<u8> =
                                    list.iter().flat_map(|v| v.to_le_bytes()).collect();
                                txn.put(&key(*k), &bytes).unwrap();
                            }
                        }
                        if failed {
                            break;
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
async fn transactions_on_the_leader_are_snapshot_isolated_and_replicas_agree() {
    let root = tempfile::tempdir().unwrap();
    let (shards, addrs) = start(root.path()).await;
    let first = leader(&shards).await;
    let store = store_on(shards[&first].clone());
    let recorded = tokio::task::spawn_blocking(move || workload(&store, 4, 60)).await.unwrap();
    let committed = recorded.iter().filter(|r| r.outcome == Outcome::Committed).count();
    assert!(committed > 100, "only {committed} of {} committed", recorded.len());
    let anomalies = history::check(&recorded, Isolation::Snapshot);
    assert!(anomalies.is_empty(), "{anomalies:?}");

    // A follower refuses, naming the leader and its address.
    let follower = *shards.keys().find(|id| **id != first).unwrap();
    let e = shards[&follower].get(&key(0), 1).unwrap_err();
    match ShardError::of(&e) {
        Some(ShardError::NotLeader { leader, address }) => {
            assert_eq!(*leader, Some(first));
            assert_eq!(address.as_deref(), Some(addrs[&first].as_str()));
        }
        other => panic!("expected NotLeader, got {other:?} ({e})"),
    }

    // Every replica applies the same commits to its own engine.
    let last = shards[&first].local_last_ts();
    let deadline = Instant::now() + Duration::from_secs(20);
    while shards.values().any(|s| s.local_last_ts() < last) {
        assert!(Instant::now() < deadline, "replicas did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for k in 0..5 {
        let lists: Vec<_> =
            shards.values().map(|s| decode(s.local_get(&key(k), last).unwrap())).collect();
        assert!(lists.windows(2).all(|w| w[0] == w[1]), "key {k}: {lists:?}");
    }
    stop_all(shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_a_leader_change_never_commits_twice() {
    let root = tempfile::tempdir().unwrap();
    let (mut shards, _) = start(root.path()).await;
    let first = leader(&shards).await;
    let s = shards[&first].clone();
    let id = s.next_id();
    let request = CommitRequest {
        start_ts: s.snapshot_ts(),
        writes: vec![(b"x".to_vec(), Some(b"1".to_vec()))],
        ..CommitRequest::default()
    };
    let req = request.clone();
    let ts = tokio::task::spawn_blocking(move || s.commit_with_id(id, &req)).await.unwrap();
    let ts = ts.unwrap();

    // Followers refuse a commit, naming the leader.
    let follower = shards.keys().copied().find(|f| *f != first).unwrap();
    let f = shards[&follower].clone();
    let req = request.clone();
    let e = tokio::task::spawn_blocking(move || f.commit_with_id(id, &req)).await.unwrap();
    assert!(matches!(e, Err(ShardError::NotLeader { leader: Some(l), .. }) if l == first), "{e:?}");

    // The leader stops; the retry with the same id at the new leader returns
    // the first outcome: same timestamp, one version.
    Arc::into_inner(shards.remove(&first).unwrap()).unwrap().stop().await;
    let second = leader(&shards).await;
    let s = shards[&second].clone();
    let again = tokio::task::spawn_blocking(move || {
        let again = s.commit_with_id(id, &request);
        // A new transaction from the old snapshot conflicts with the first commit.
        let other = s.commit_with_id(s.next_id(), &request);
        (again, other)
    })
    .await
    .unwrap();
    assert_eq!(again.0.unwrap(), ts);
    match again.1 {
        Err(ShardError::Txn(strata_txn::Error::Conflict { committed_ts, .. })) => {
            assert_eq!(committed_ts, ts)
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let s = shards[&second].clone();
    let later = s.snapshot_ts();
    assert!(later >= ts);
    assert_eq!(s.get(b"x", later).unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(b"x", ts - 1).unwrap(), None);
    drop(s);
    stop_all(shards).await;
}

/// SERIALIZABLE on a replicated shard validates what the local shard does,
/// scanned ranges included: two transactions that each scan a range and
/// insert into it (a phantom write skew) cannot both commit, while under
/// snapshot isolation they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_scans_refuse_phantoms_on_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let (shards, _) = start(root.path()).await;
    let first = leader(&shards).await;
    let store = store_on(shards[&first].clone());
    let outcomes = tokio::task::spawn_blocking(move || {
        let range = || strata_lsm::KeyRange::prefix(b"oncall/");
        let mut outcomes = Vec::new();
        for (round, isolation) in [Isolation::Serializable, Isolation::Snapshot].iter().enumerate()
        {
            let mut a = store.begin_with(*isolation);
            let mut b = store.begin_with(*isolation);
            for txn in [&mut a, &mut b] {
                let seen = txn.scan(range(), false).unwrap().count();
                // Round 1 sees the one row round 0 committed.
                assert_eq!(seen, round, "both see the rows committed before");
            }
            a.put(format!("oncall/{round}-a").as_bytes(), b"1").unwrap();
            b.put(format!("oncall/{round}-b").as_bytes(), b"1").unwrap();
            let first = a.commit();
            let second = b.commit();
            outcomes.push((first.map(|_| ()), second.map(|_| ())));
        }
        // A key inserted into the scanned range and deleted again after the
        // snapshot leaves no visible row, but its writer read what the
        // scanner writes: a cycle, refused.
        let mut scanner = store.begin_with(Isolation::Serializable);
        assert_eq!(
            scanner.scan(strata_lsm::KeyRange::prefix(b"ghost/"), false).unwrap().count(),
            0
        );
        scanner.put(b"x", b"scanner").unwrap();
        let mut inserter = store.begin();
        assert_eq!(inserter.get(b"x").unwrap(), None);
        inserter.put(b"ghost/k", b"1").unwrap();
        inserter.commit().unwrap();
        let mut deleter = store.begin();
        deleter.delete(b"ghost/k").unwrap();
        deleter.commit().unwrap();
        match scanner.commit() {
            Err(strata_txn::Error::Conflict {
                kind: strata_txn::ConflictKind::Phantom,
                key,
                ..
            }) => assert_eq!(key.as_slice(), b"ghost/k"),
            other => panic!("the inserted-and-deleted phantom must be refused, got {other:?}"),
        }
        outcomes
    })
    .await
    .unwrap();
    let (first, second) = &outcomes[0];
    assert!(first.is_ok(), "{first:?}");
    match second {
        Err(strata_txn::Error::Conflict {
            kind: strata_txn::ConflictKind::Phantom, key, ..
        }) => {
            assert_eq!(key.as_slice(), b"oncall/0-a");
        }
        other => panic!("SERIALIZABLE must refuse the phantom, got {other:?}"),
    }
    let (first, second) = &outcomes[1];
    assert!(first.is_ok() && second.is_ok(), "snapshot isolation allows it: {outcomes:?}");
    stop_all(shards).await;
}

/// A read at a timestamp above the newest applied commit waits out the
/// proposals in flight at or below it: each read at `ts`, taken while
/// writers commit, sees for every writer exactly its last commit at or
/// below `ts`, never an older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_reads_wait_for_commits_in_flight_below_them() {
    const WRITERS: u64 = 4;
    let root = tempfile::tempdir().unwrap();
    let (shards, _) = start(root.path()).await;
    let first = leader(&shards).await;
    let shard = shards[&first].clone();
    let store = store_on(shard.clone());
    let (commits, reads) = tokio::task::spawn_blocking(move || {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let progress: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (store, stop, done) = (store.clone(), &stop, &progress[w as usize]);
                    s.spawn(move || {
                        let mut commits = Vec::new();
                        for n in 1u64.. {
                            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                            let mut txn = store.begin();
                            txn.put(&key(w), &n.to_le_bytes()).unwrap();
                            match txn.commit() {
                                Ok(ts) => {
                                    commits.push((ts, n));
                                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                // Refused before it was proposed (a lease
                                // that lapsed on a loaded machine).
                                Err(e) if e.is_retryable() => {}
                                Err(e) => panic!("writer {w}: {e}"),
                            }
                        }
                        commits
                    })
                })
                .collect();
            // Read while every writer commits, until each has made 30.
            let mut reads = Vec::new();
            while progress.iter().any(|p| p.load(std::sync::atomic::Ordering::Relaxed) < 30) {
                let ts = shard.hlc().now().unwrap();
                let read = store.begin_at(ts).and_then(|mut txn| {
                    (0..WRITERS)
                        .map(|w| {
                            let v = txn.get(&key(w))?;
                            Ok(v.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap())))
                        })
                        .collect::<strata_txn::Result<Vec<u64>>>()
                });
                match read {
                    Ok(seen) => reads.push((ts, seen)),
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("read at {ts}: {e}"),
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let commits: Vec<Vec<(u64, u64)>> =
                writers.into_iter().map(|w| w.join().unwrap()).collect();
            (commits, reads)
        })
    })
    .await
    .unwrap();
    assert!(reads.len() > 10, "only {} reads", reads.len());
    for (ts, seen) in &reads {
        for (w, mine) in commits.iter().enumerate() {
            let expected = mine.iter().take_while(|(at, _)| at <= ts).last().map_or(0, |c| c.1);
            assert_eq!(seen[w], expected, "writer {w} at {ts}");
        }
    }
    stop_all(shards).await;
}

/// First committer wins on the leader when the first commit is applied
/// and answered before the second validates (so only the applied state,
/// not the proposals in flight, can tell). In round 0 the engine answers
/// (the index of recent writes starts knowing nothing, and its horizon
/// lands just below the first commit it records, above the snapshot of
/// 0); in the later rounds the index does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_snapshot_fails_the_second_committer() {
    let root = tempfile::tempdir().unwrap();
    let (shards, _) = start(root.path()).await;
    let first = leader(&shards).await;
    let store = store_on(shards[&first].clone());
    tokio::task::spawn_blocking(move || {
        for round in 0..3u8 {
            let k = format!("fcw-{round}").into_bytes();
            let mut a = store.begin();
            let mut b = store.begin();
            a.put(&k, b"a").unwrap();
            a.commit().unwrap();
            b.put(&k, b"b").unwrap();
            let e = b.commit().unwrap_err();
            assert!(e.is_retryable(), "{e}");
            assert!(e.to_string().contains("write-write conflict"), "{e}");
            // A key nobody else wrote commits.
            let mut c = store.begin();
            c.put(format!("other-{round}").as_bytes(), b"c").unwrap();
            c.commit().unwrap();
        }
    })
    .await
    .unwrap();
    stop_all(shards).await;
}
