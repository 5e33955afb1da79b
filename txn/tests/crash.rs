//! Crash test: a child process runs bank transfers with sync durability and
//! reports each acknowledged commit; the parent SIGKILLs it at random moments
//! and checks after recovery that the total balance is unchanged (no
//! transaction partly visible) and every acknowledged transfer is present.
//! `STRATA_CRASH_CYCLES` sets the number of kill cycles (default 20).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_lsm::KeyRange;
use strata_txn::{Isolation, RetryPolicy, Store, Txn, TxnOptions};

const ACCOUNTS: u64 = 8;
const START_BALANCE: i64 = 1_000;
const TELLERS: u64 = 4;
const CHILD_ENV: &str = "STRATA_TXN_CRASH_DIR";

/// These tests check safety, not liveness: on a loaded two-core machine a
/// hot-key transaction can lose twenty races in a row, so retry until it wins.
fn options() -> TxnOptions {
    TxnOptions {
        engine: strata_lsm::Options::small_for_tests(),
        retry: RetryPolicy { max_attempts: 10_000, ..RetryPolicy::default() },
        ..TxnOptions::default()
    }
}

fn balance(t: &mut Txn, a: u64) -> i64 {
    t.get(format!("acct/{a}").as_bytes())
        .unwrap()
        .map_or(0, |v| i64::from_le_bytes(v.try_into().unwrap()))
}

fn marker(teller: u64, seq: u64) -> Vec<u8> {
    format!("done/{teller}/{seq:08}").into_bytes()
}

#[test]
#[ignore = "runs only as the crash test's child process"]
fn txn_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = Store::open(&dir, options()).unwrap();
    store
        .run(Isolation::Snapshot, |t| {
            if t.get(b"acct/0")?.is_none() {
                for a in 0..ACCOUNTS {
                    t.put(format!("acct/{a}").as_bytes(), &START_BALANCE.to_le_bytes())?;
                }
            }
            Ok(())
        })
        .unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let tellers: Vec<_> = (0..TELLERS)
        .map(|teller| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                // Continue after the last transfer that made it to disk.
                let first = store
                    .begin_read_only()
                    .scan(KeyRange::prefix(format!("done/{teller}/").as_bytes()), false)
                    .unwrap()
                    .count() as u64;
                let mut x = teller * 7919 + first + 1;
                for seq in first.. {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (from, to, amount) =
                        ((x >> 33) % ACCOUNTS, (x >> 40) % ACCOUNTS, ((x >> 50) % 20) as i64 + 1);
                    store
                        .run(Isolation::Snapshot, |t| {
                            let (a, b) = (balance(t, from), balance(t, to));
                            if from != to {
                                t.put(
                                    format!("acct/{from}").as_bytes(),
                                    &(a - amount).to_le_bytes(),
                                )?;
                                t.put(
                                    format!("acct/{to}").as_bytes(),
                                    &(b + amount).to_le_bytes(),
                                )?;
                            }
                            t.put(&marker(teller, seq), b"")
                        })
                        .unwrap();
                    use std::io::Write;
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {teller} {seq}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in tellers {
        t.join().unwrap();
    }
}

#[test]
fn acknowledged_transactions_survive_sigkill_and_none_is_partial() {
    let cycles: usize =
        std::env::var("STRATA_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut delay = 0x9e37_79b9u64;
    let mut acked_total = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "txn_crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(vec![None::<u64>; TELLERS as usize]));
        let reader = {
            let (stdout, acked) = (child.stdout.take().unwrap(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    if let ["ack", teller, seq] = parts[..] {
                        acked.lock().unwrap()[teller.parse::<usize>().unwrap()] =
                            Some(seq.parse().unwrap());
                        n += 1;
                    }
                }
                n
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().iter().all(Option::is_none) {
            assert!(Instant::now() < deadline, "child made no progress");
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::thread::sleep(Duration::from_millis(1));
        }
        delay = delay.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis((delay >> 33) % 30));
        child.kill().unwrap();
        child.wait().unwrap();
        acked_total += reader.join().unwrap();

        let store = Store::open(dir.path(), options()).unwrap();
        let mut snap = store.begin_read_only();
        let total: i64 = (0..ACCOUNTS).map(|a| balance(&mut snap, a)).sum();
        assert_eq!(
            total,
            ACCOUNTS as i64 * START_BALANCE,
            "cycle {cycle}: a transfer is partly visible"
        );
        for (teller, last) in acked.lock().unwrap().iter().enumerate() {
            if let Some(last) = last {
                for seq in 0..=*last {
                    assert!(
                        snap.get(&marker(teller as u64, seq)).unwrap().is_some(),
                        "cycle {cycle}: acknowledged transfer {teller}/{seq} lost"
                    );
                }
            }
        }
    }
    eprintln!("{cycles} kill cycles, {acked_total} acknowledged transfers");
    assert!(acked_total >= cycles, "too few acknowledged transfers: {acked_total}");
}
