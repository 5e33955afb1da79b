//! Crash test of the durable log store: a child process appends batches of
//! entries (some first written as junk and then replaced, as a follower
//! replaces a conflicting suffix), changes its term now and then, compacts
//! behind itself, and prints each batch's last index once `sync` returned.
//! The parent kills it with SIGKILL at a random moment, reopens the store
//! and checks that every acknowledged entry is there with its final
//! payload, and that the snapshot holds the state it claims. The directory
//! carries over from cycle to cycle, so kills land during segment rolls,
//! compactions, meta rewrites and recovery too.
//!
//! `STRATA_CRASH_CYCLES` sets the number of kill cycles (default 30).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_replication::{
    Entry, FileStore, FileStoreOptions, LogStore, Membership, Payload, Persisted, Snapshot,
};

const CHILD_ENV: &str = "STRATA_RAFT_CRASH_CHILD_DIR";

fn options() -> FileStoreOptions {
    FileStoreOptions { segment_size_bytes: 4 << 10 }
}

fn real(index: u64) -> Payload {
    Payload::Command(format!("entry {index} {}", "x".repeat((index % 50) as usize)).into_bytes())
}

fn junk(index: u64) -> Payload {
    Payload::Command(format!("junk {index}").into_bytes())
}

fn snapshot_data(index: u64) -> Vec<u8> {
    format!("state through {index}").into_bytes()
}

fn open(dir: &Path) -> FileStore {
    FileStore::open(dir, options(), &Persisted::bootstrap([1, 2, 3])).unwrap()
}

/// The child: resumes after the last entry with its final payload and
/// appends forever, printing `ack LAST` after each synced batch.
#[test]
#[ignore = "runs only as the crash test's child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let mut store = open(Path::new(&dir));
    let p = store.load().unwrap();
    let mut next = p
        .entries
        .iter()
        .find(|e| e.payload != real(e.index))
        .map_or(p.snapshot.index + p.entries.len() as u64 + 1, |e| e.index);
    let mut hs = p.hard_state;
    let mut snapshot_index = p.snapshot.index;
    let mut out = std::io::stdout();
    for b in 0u64.. {
        let n = 1 + b % 4;
        let make = |payload: fn(u64) -> Payload, term| -> Vec<Entry> {
            (next..next + n).map(|index| Entry { index, term, payload: payload(index) }).collect()
        };
        if b % 3 == 0 {
            store.append(&make(junk, hs.term)).unwrap();
        }
        if b % 5 == 3 {
            hs.term += 1;
            hs.vote = Some(1 + b % 3);
        }
        store.append(&make(real, hs.term)).unwrap();
        let last = next + n - 1;
        hs.commit = last;
        store.set_hard_state(hs).unwrap();
        store.sync().unwrap();
        writeln!(out, "ack {last}").unwrap();
        out.flush().unwrap();
        next = last + 1;
        if b % 8 == 7 && last - 3 > snapshot_index {
            snapshot_index = last - 3;
            let snapshot = Snapshot {
                index: snapshot_index,
                term: hs.term,
                membership: Membership::new([1, 2, 3]),
                data: snapshot_data(snapshot_index),
                files: Vec::new(),
            };
            store.compact(&snapshot).unwrap();
        }
    }
}

/// Reopens the store and checks it against the highest acknowledged index;
/// returns the last index present.
fn verify(dir: &Path, acked: u64) -> u64 {
    let store = open(dir);
    let p = store.load().unwrap();
    let base = p.snapshot.index;
    if base > 0 {
        assert_eq!(p.snapshot.data, snapshot_data(base), "snapshot at {base}");
    }
    assert!(base <= acked || acked == 0, "snapshot {base} beyond acknowledged {acked}");
    let last = base + p.entries.len() as u64;
    assert!(last >= acked, "acknowledged entry {acked} lost: the log ends at {last}");
    for e in &p.entries {
        if e.index <= acked {
            assert_eq!(
                e.payload,
                real(e.index),
                "acknowledged entry {} has the wrong payload",
                e.index
            );
        } else {
            assert!(e.payload == real(e.index) || e.payload == junk(e.index));
        }
    }
    assert!(p.hard_state.commit <= last);
    last
}

/// A small deterministic generator for kill delays.
fn next_delay_ms(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % 80
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    let cycles: usize =
        std::env::var("STRATA_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut acked_ever = 0u64;
    let mut acks = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(None::<u64>));
        let reader = {
            let (stdout, acked) = (child.stdout.take().unwrap(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(i) = line.strip_prefix("ack ").and_then(|i| i.parse().ok()) {
                        *acked.lock().unwrap() = Some(i);
                        n += 1;
                    }
                }
                n
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().is_none() {
            assert!(Instant::now() < deadline, "child made no progress");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child exited early with {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(next_delay_ms(&mut rng)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acks += reader.join().unwrap();
        if let Some(a) = *acked.lock().unwrap() {
            acked_ever = acked_ever.max(a);
        }
        let last = verify(dir.path(), acked_ever);
        assert!(last >= acked_ever, "cycle {cycle}");
    }
    eprintln!(
        "{cycles} kill cycles, {acks} acknowledged batches, last acknowledged index {acked_ever}"
    );
}
