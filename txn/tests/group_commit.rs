//! Group commit with many committers: each commit is acknowledged only once
//! it is durable and visible and every earlier commit is too, committers
//! share fsyncs, and acknowledged commits survive SIGKILL.
//! `STRATA_CRASH_CYCLES` sets the number of kill cycles (default 10).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use strata_lsm::Durability;
use strata_txn::{Store, TxnOptions};

const COMMITTERS: u64 = 32;
const CHILD_ENV: &str = "STRATA_GROUP_COMMIT_CRASH_DIR";

fn options() -> TxnOptions {
    TxnOptions {
        engine: strata_lsm::Options::small_for_tests(),
        durability: Durability::Sync,
        ..TxnOptions::default()
    }
}

fn key(committer: u64) -> Vec<u8> {
    format!("committer/{committer:03}").into_bytes()
}

fn value(store: &Store, committer: u64) -> Option<u64> {
    let v = store.begin_read_only().get(&key(committer)).unwrap()?;
    Some(u64::from_le_bytes(v.try_into().unwrap()))
}

#[test]
fn each_committer_is_acknowledged_after_its_commit_and_every_earlier_one_is_visible() {
    const COMMITS: u64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let start = Arc::new(Barrier::new(COMMITTERS as usize));
    // Every acknowledged commit: (commit timestamp, committer, sequence).
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..COMMITTERS)
        .map(|c| {
            let (store, start, acked) = (store.clone(), start.clone(), acked.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut last_ts = 0;
                for seq in 1..=COMMITS {
                    let mut txn = store.begin();
                    txn.put(&key(c), &seq.to_le_bytes()).unwrap();
                    let ts = txn.commit().unwrap();
                    assert!(ts > last_ts, "commit timestamps of one thread go back");
                    last_ts = ts;
                    // Visible to a transaction that begins now, at a snapshot
                    // at or above it.
                    let mut reader = store.begin_read_only();
                    assert!(reader.start_ts() >= ts, "acknowledged above the snapshot");
                    let seen = reader.get(&key(c)).unwrap().unwrap();
                    assert_eq!(seen, seq.to_le_bytes(), "committer {c}: own commit not visible");
                    drop(reader);
                    acked.lock().unwrap().push((ts, c, seq));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Every commit below an acknowledged one was applied when it was
    // acknowledged: a snapshot at any acknowledged timestamp sees, for every
    // committer, exactly its newest commit at or below that timestamp.
    let mut acked = acked.lock().unwrap().clone();
    acked.sort_unstable();
    assert_eq!(acked.len() as u64, COMMITTERS * COMMITS);
    let engine = store.shard_stats().engine.unwrap();
    assert!(
        engine.wal_syncs < COMMITTERS * COMMITS,
        "{} fsyncs for {} commits: no group shared one",
        engine.wal_syncs,
        COMMITTERS * COMMITS
    );
    let mut newest = vec![None; COMMITTERS as usize];
    for (i, &(ts, c, seq)) in acked.iter().enumerate() {
        newest[c as usize] = Some(seq);
        if i % 97 == 0 {
            let mut snap = store.begin_at(ts).unwrap();
            for (other, expected) in newest.iter().enumerate() {
                let got = snap
                    .get(&key(other as u64))
                    .unwrap()
                    .map(|v| u64::from_le_bytes(v.try_into().unwrap()));
                assert_eq!(got, *expected, "snapshot at {ts}: committer {other}");
            }
        }
    }
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    for c in 0..COMMITTERS {
        assert_eq!(value(&store, c), Some(COMMITS), "committer {c} lost its last commit");
    }
}

#[test]
#[ignore = "runs only as the group commit crash test's child process"]
fn group_commit_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = Store::open(&dir, options()).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..COMMITTERS)
        .map(|c| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                let first = value(&store, c).unwrap_or(0) + 1;
                for seq in first.. {
                    let mut txn = store.begin();
                    txn.put(&key(c), &seq.to_le_bytes()).unwrap();
                    txn.commit().unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {c} {seq}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn commits_acknowledged_by_many_committers_survive_sigkill() {
    let cycles: usize =
        std::env::var("STRATA_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut delay = 0x2545_f491u64;
    let mut acked_total = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "group_commit_crash_child", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(vec![0u64; COMMITTERS as usize]));
        let reader = {
            let (stdout, acked) = (child.stdout.take().unwrap(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let ["ack", c, seq] = line.split_whitespace().collect::<Vec<_>>()[..] {
                        let (c, seq): (usize, u64) = (c.parse().unwrap(), seq.parse().unwrap());
                        let mut acked = acked.lock().unwrap();
                        acked[c] = acked[c].max(seq);
                        n += 1;
                    }
                }
                n
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().iter().all(|&a| a == 0) {
            assert!(Instant::now() < deadline, "child made no progress");
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::thread::sleep(Duration::from_millis(1));
        }
        delay = delay.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis((delay >> 33) % 40));
        child.kill().unwrap();
        child.wait().unwrap();
        acked_total += reader.join().unwrap();

        let store = Store::open(dir.path(), options()).unwrap();
        for (c, &last) in acked.lock().unwrap().iter().enumerate() {
            let recovered = value(&store, c as u64).unwrap_or(0);
            assert!(
                recovered >= last,
                "cycle {cycle}: committer {c} acknowledged {last} but recovered {recovered}"
            );
        }
    }
    eprintln!("{cycles} kill cycles, {acked_total} acknowledged commits");
    assert!(acked_total >= cycles, "too few acknowledged commits: {acked_total}");
}
