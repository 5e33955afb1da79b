//! Crash test: a child process writes sync batches from several threads and
//! reports each acknowledged one; the parent kills it with SIGKILL at a random
//! moment, reopens the database and checks that every acknowledged batch is
//! present in full, that no batch is partly visible, and that each writer's
//! batches form a gap-free prefix. The directory carries over from cycle to
//! cycle, so kills land during flushes, compactions and recovery too.
//!
//! `STRATA_CRASH_CYCLES` sets the number of kill cycles (default 50).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_lsm::{Db, Durability, KeyRange, MAX_TS, Options, WriteBatch};

const WRITERS: usize = 4;
const CHILD_ENV: &str = "STRATA_CRASH_CHILD_DIR";

fn options() -> Options {
    Options {
        memtable_size_bytes: 16 << 10,
        block_size_bytes: 256,
        target_file_size_bytes: 16 << 10,
        level1_size_bytes: 64 << 10,
        l0_compaction_trigger: 2,
        wal_preallocate_bytes: Some(32 << 10),
        ..Options::default()
    }
}

/// How many keys batch `i` of writer `w` holds (1 to 8), derived so that the
/// parent can recompute it.
fn batch_len(w: usize, i: u64) -> usize {
    let mut x =
        (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    (x % 8) as usize + 1
}

fn key(w: usize, i: u64, j: usize) -> Vec<u8> {
    format!("w{w}/b{i:08}/{j}").into_bytes()
}

fn value(w: usize, i: u64, j: usize) -> Vec<u8> {
    let mut v = format!("{w}:{i}:{j}:").into_bytes();
    v.resize(100, b'x');
    v
}

/// The child: writes batches forever, printing `ack W I` after each one is
/// durable. Starts writer `w` at the batch index given in its arguments.
#[test]
#[ignore = "runs only as the crash test's child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let starts: Vec<u64> = std::env::var("STRATA_CRASH_STARTS")
        .unwrap()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let db = Arc::new(Db::open(&dir, options()).unwrap());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, out, start) = (db.clone(), out.clone(), starts[w]);
            std::thread::spawn(move || {
                use std::io::Write;
                for i in start.. {
                    let mut b = WriteBatch::new();
                    for j in 0..batch_len(w, i) {
                        b.put(&key(w, i, j), i + 1, &value(w, i, j));
                    }
                    db.write(&b, Durability::Sync).unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {w} {i}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Reopens the database and returns, per writer, how many batches are
/// present, asserting that they are complete and gap-free.
fn verify(dir: &Path, acked: &[Option<u64>]) -> Vec<u64> {
    let db = Db::open(dir, options()).unwrap();
    let mut present = vec![0u64; WRITERS];
    for w in 0..WRITERS {
        let mut count = 0u64;
        let mut keys_in_batch: Option<(u64, usize)> = None;
        let check_complete = |batch: Option<(u64, usize)>| {
            if let Some((i, n)) = batch {
                assert_eq!(n, batch_len(w, i), "writer {w} batch {i} is partly visible");
            }
        };
        for entry in db.scan(KeyRange::prefix(format!("w{w}/").as_bytes()), MAX_TS, false).unwrap()
        {
            let (k, v) = entry.unwrap();
            let k = String::from_utf8(k).unwrap();
            let mut parts = k.split('/');
            parts.next();
            let i: u64 = parts.next().unwrap()[1..].parse().unwrap();
            let j: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(v, value(w, i, j), "wrong value under {k}");
            match keys_in_batch {
                Some((cur, n)) if cur == i => keys_in_batch = Some((cur, n + 1)),
                prev => {
                    check_complete(prev);
                    assert_eq!(i, count, "writer {w}: batch {i} present but batch {count} missing");
                    count += 1;
                    keys_in_batch = Some((i, 1));
                }
            }
        }
        check_complete(keys_in_batch);
        if let Some(a) = acked[w] {
            assert!(count > a, "writer {w}: acknowledged batch {a} lost (only {count} present)");
        }
        present[w] = count;
    }
    present
}

/// A small deterministic generator for kill delays.
fn next_delay_ms(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % 40
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    let cycles: usize =
        std::env::var("STRATA_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut starts = vec![0u64; WRITERS];
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut total_acked = 0usize;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(
                "STRATA_CRASH_STARTS",
                starts.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(vec![None::<u64>; WRITERS]));
        let reader = {
            let (stdout, acked) = (child.stdout.take().unwrap(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut parts = line.split_whitespace();
                    if parts.next() != Some("ack") {
                        continue;
                    }
                    let w: usize = parts.next().unwrap().parse().unwrap();
                    let i: u64 = parts.next().unwrap().parse().unwrap();
                    acked.lock().unwrap()[w] = Some(i);
                    n += 1;
                }
                n
            })
        };
        // Let the child get going, then kill it at a random moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().iter().all(Option::is_none) {
            assert!(Instant::now() < deadline, "child made no progress");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child exited early with {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(next_delay_ms(&mut rng)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        total_acked += reader.join().unwrap();
        let acked = acked.lock().unwrap().clone();
        let present = verify(dir.path(), &acked);
        for w in 0..WRITERS {
            assert!(present[w] >= starts[w], "cycle {cycle}: writer {w} went backwards");
        }
        starts = present;
    }
    let db = Db::open(dir.path(), options()).unwrap();
    let stats = db.stats();
    eprintln!(
        "{cycles} kill cycles, {total_acked} acknowledged batches, batches present {starts:?}, levels {:?}",
        stats.levels
    );
    assert!(total_acked >= cycles, "too few acknowledged batches to mean anything: {total_acked}");
    assert!(
        stats.levels.iter().skip(1).any(|l| l.files > 0),
        "no compaction ever ran: {:?}",
        stats.levels
    );
}
