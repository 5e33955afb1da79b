//! Concurrent workloads checked for isolation anomalies and invariants.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_lsm::KeyRange;
use strata_txn::history::{self, Op, Outcome, Recorded};
use strata_txn::{Error, Isolation, RetryPolicy, Store, Txn, TxnOptions};

/// A small xorshift generator: deterministic per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// These tests check safety, not liveness: on a loaded two-core machine a
/// hot-key transaction can lose twenty races in a row, so retry until it wins.
fn options() -> TxnOptions {
    TxnOptions {
        engine: strata_lsm::Options::small_for_tests(),
        retry: RetryPolicy { max_attempts: 10_000, ..RetryPolicy::default() },
        ..TxnOptions::default()
    }
}

fn list_key(key: u64) -> Vec<u8> {
    format!("list/{key:03}").into_bytes()
}

fn read_list(txn: &mut Txn, key: u64) -> Result<Vec<u64>, Error> {
    Ok(txn
        .get(&list_key(key))?
        .map(|v| v.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect())
        .unwrap_or_default())
}

/// Runs one random list-append transaction; records what it did.
fn list_append_txn(store: &Store, iso: Isolation, rng: &mut Rng, unique: &mut u64) -> Recorded {
    let mut txn = store.begin_with(iso);
    let mut ops = Vec::new();
    let n = 1 + rng.below(4);
    for _ in 0..n {
        let key = rng.below(8);
        let mut list = read_list(&mut txn, key).unwrap();
        if rng.below(2) == 0 {
            ops.push(Op::Read { key, values: list });
        } else {
            *unique += 1;
            list.push(*unique);
            let bytes: Vec<u8> = list.iter().flat_map(|v| v.to_le_bytes()).collect();
            txn.put(&list_key(key), &bytes).unwrap();
            ops.push(Op::Append { key, value: *unique });
        }
    }
    let outcome = match txn.commit() {
        Ok(_) => Outcome::Committed,
        Err(e) if e.is_retryable() => Outcome::Aborted,
        Err(e) => panic!("unexpected error: {e}"),
    };
    Recorded { ops, outcome }
}

fn history_is_clean(iso: Isolation) {
    const THREADS: u64 = 8;
    const PER_PHASE: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for phase in 0..3u64 {
        // Each phase reopens the store: recovery is part of the history.
        let store = Store::open(dir.path(), options()).unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng::new(phase * 100 + t + 1);
                    let mut unique = (phase * THREADS + t) << 32;
                    (0..PER_PHASE)
                        .map(|_| list_append_txn(&store, iso, &mut rng, &mut unique))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            all.extend(t.join().unwrap());
        }
        // A final read of every key pins down the version order.
        let mut reader = store.begin_read_only();
        let ops = (0..8)
            .map(|key| Op::Read { key, values: read_list(&mut reader, key).unwrap() })
            .collect();
        all.push(Recorded { ops, outcome: Outcome::Committed });
    }
    let committed = all.iter().filter(|r| r.outcome == Outcome::Committed).count();
    let aborted = all.iter().filter(|r| r.outcome == Outcome::Aborted).count();
    assert!(
        committed > 1000 && aborted > 0,
        "workload too tame: {committed} committed, {aborted} aborted"
    );
    let anomalies = history::check(&all, iso);
    assert!(anomalies.is_empty(), "{iso:?}: {anomalies:?}");
}

#[test]
fn list_append_history_under_snapshot_isolation_has_no_forbidden_anomaly() {
    history_is_clean(Isolation::Snapshot);
}

#[test]
fn list_append_history_under_serializable_has_no_cycle() {
    history_is_clean(Isolation::Serializable);
}

fn balance(txn: &mut Txn, account: u64) -> Result<i64, Error> {
    Ok(txn
        .get(format!("acct/{account:02}").as_bytes())?
        .map_or(0, |v| i64::from_le_bytes(v.try_into().unwrap())))
}

#[test]
fn bank_transfers_keep_the_total_under_a_hot_key_workload() {
    const ACCOUNTS: u64 = 16;
    const TOTAL: i64 = 16_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    store
        .run(Isolation::Snapshot, |t| {
            for a in 0..ACCOUNTS {
                t.put(format!("acct/{a:02}").as_bytes(), &(TOTAL / ACCOUNTS as i64).to_le_bytes())?;
            }
            Ok(())
        })
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let auditors: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut audits = 0;
                while !done.load(Ordering::Relaxed) || audits < 10 {
                    let mut snap = store.begin_read_only();
                    let sum: i64 = snap
                        .scan(KeyRange::prefix(b"acct/"), audits % 2 == 0)
                        .unwrap()
                        .map(|r| i64::from_le_bytes(r.unwrap().1.try_into().unwrap()))
                        .sum();
                    assert_eq!(sum, TOTAL, "a snapshot saw money appear or vanish");
                    audits += 1;
                }
                audits
            })
        })
        .collect();
    let tellers: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(t + 7);
                for _ in 0..300 {
                    // Half the transfers touch the four hot accounts.
                    let pick = |rng: &mut Rng| {
                        if rng.below(2) == 0 { rng.below(4) } else { rng.below(ACCOUNTS) }
                    };
                    let (from, to) = (pick(&mut rng), pick(&mut rng));
                    let amount = 1 + rng.below(50) as i64;
                    store
                        .run(Isolation::Snapshot, |txn| {
                            let (a, b) = (balance(txn, from)?, balance(txn, to)?);
                            if from != to && a >= amount {
                                txn.put(
                                    format!("acct/{from:02}").as_bytes(),
                                    &(a - amount).to_le_bytes(),
                                )?;
                                txn.put(
                                    format!("acct/{to:02}").as_bytes(),
                                    &(b + amount).to_le_bytes(),
                                )?;
                            }
                            Ok(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tellers {
        t.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for a in auditors {
        assert!(a.join().unwrap() >= 10);
    }
    let stats = store.stats();
    assert!(
        stats.aborts_write_write > 0 && stats.retries > 0,
        "hot keys should conflict: {stats:?}"
    );
    assert_eq!(stats.aborts_write_write, stats.retries, "every conflict was retried");
    let mut end = store.begin_read_only();
    let balances: Vec<i64> = (0..ACCOUNTS).map(|a| balance(&mut end, a).unwrap()).collect();
    assert_eq!(balances.iter().sum::<i64>(), TOTAL);
    assert!(balances.iter().all(|b| *b >= 0));
}

#[test]
fn a_transaction_begun_after_a_commit_returns_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let key = format!("counter/{t}");
                for i in 1..=200u64 {
                    let mut w = store.begin();
                    w.put(key.as_bytes(), &i.to_le_bytes()).unwrap();
                    let commit_ts = w.commit().unwrap();
                    let mut r = store.begin_read_only();
                    assert!(
                        r.start_ts() >= commit_ts,
                        "snapshot {} below acknowledged commit {commit_ts}",
                        r.start_ts()
                    );
                    assert_eq!(r.get(key.as_bytes()).unwrap(), Some(i.to_le_bytes().to_vec()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
