//! `txn-bench`: commit throughput and contention of `strata-txn` transactions.
//!
//! ```text
//! cargo run --release -p strata-benches --bin txn-bench -- \
//!     --workload commits --threads 1,8,64 --duration 5s
//! cargo run --release -p strata-benches --bin txn-bench -- \
//!     --workload zipfian --threads 8 --keys 10000 --theta 0.99 --duration 10s
//! ```
//!
//! Each thread count given to `--threads` is one run, on a fresh store in its
//! own directory, for `--duration`. Threads start together and each runs
//! transactions back to back until the time is up.
//!
//! - `commits`: every transaction is a blind write of one key (no read, so no
//!   conflict), each thread always writing its own key. Reports committed
//!   transactions per second and the ratio to one thread. With the default
//!   `--durability sync` every commit waits for an fsync of the WAL, which
//!   concurrent committers share (group commit): the ratio and the commits
//!   per fsync show how well they share. The goal is 64 committers at 20
//!   times the throughput of one ([`GROUP_COMMIT_GOAL`]).
//! - `zipfian`: `--keys` counters, all 0 at the start (loaded, untimed);
//!   every transaction adds 1 to one of them, chosen by a zipfian
//!   distribution of skew `--theta` (rank 0, the hottest, is key 0), through
//!   `Store::run`, which retries serialization failures. Reports committed
//!   transactions per second, commits and aborts from `TxnStats`, the abort
//!   rate `aborts / (commits + aborts)`, retries, and the latency of whole
//!   transactions, retries and their backoff included, and the engine's
//!   flushes and write stalls meanwhile (they explain the worst latencies).
//!   At the end the counters must add up to the increments committed, or the
//!   run fails.
//!
//! Latencies are per transaction: each sample is the time since the thread's
//! previous transaction ended (so it includes choosing the key) to the end of
//! `commit`, or of `Store::run`. `--json` prints one JSON object per run
//! instead of text. Recorded figures: `benches/BENCHMARKS.md`.

use std::path::{Path, PathBuf};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use strata_benches::{Histogram, KeyFormat, Rng, Zipfian};
use strata_lsm::{Durability, StatsSnapshot};
use strata_txn::{Isolation, KeyRange, Store, TxnOptions, TxnStats};

/// Group commit's goal: this many committers reach at least this multiple of
/// one committer's throughput (with `--durability sync`).
const GROUP_COMMIT_GOAL: (usize, f64) = (64, 20.0);
const KEY_BYTES: usize = 16;
/// Counters per loading transaction of the zipfian workload.
const LOAD_CHUNK: u64 = 1_000;

#[derive(Parser, Debug)]
#[command(about = "Commit throughput and contention of Strata's transactions")]
struct Args {
    #[arg(long, value_enum)]
    workload: Workload,
    /// Comma-separated thread counts, one run each. Default: 1,8,64 for
    /// `commits`, 8 for `zipfian`.
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// How long each run lasts: `500ms`, `5s`, `1.5m` (a bare number is seconds).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Counters of the zipfian workload.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Skew of the zipfian workload, in [0, 1); YCSB's is 0.99.
    #[arg(long, default_value_t = strata_benches::zipfian::YCSB_THETA)]
    theta: f64,
    /// `sync` fsyncs the WAL before a commit returns (shared by concurrent
    /// committers); `buffered` leaves it in the OS, fsynced every 100 ms.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    durability: DurabilityArg,
    /// Directory for the stores, one subdirectory per run (erased first).
    /// Default: a fresh temporary directory, removed at the end.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Print one JSON object per run instead of text.
    #[arg(long)]
    json: bool,
    /// Seed of the zipfian key choice.
    #[arg(long, default_value_t = 301)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Blind one-key writes, a key per thread: commits per second.
    Commits,
    /// Zipfian read-modify-write increments of counters: aborts under contention.
    Zipfian,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Commits => "commits",
            Workload::Zipfian => "zipfian",
        }
    }

    fn default_threads(self) -> Vec<usize> {
        match self {
            Workload::Commits => vec![1, 8, 64],
            Workload::Zipfian => vec![8],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    Sync,
    Buffered,
}

impl DurabilityArg {
    fn durability(self) -> Durability {
        match self {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Buffered => Durability::Buffered,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DurabilityArg::Sync => "sync",
            DurabilityArg::Buffered => "buffered",
        }
    }
}

/// Parses `500ms`, `5s`, `2.5s`, `1m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_secs) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 5s or 1m"))?;
    Duration::try_from_secs_f64(value * unit_secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` is not a positive duration"))
}

/// Per-thread seeds: different for every thread, all fixed by `--seed`.
fn thread_seed(seed: u64, thread: usize) -> u64 {
    Rng::new(seed ^ (thread as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64()
}

/// What one thread did in a run.
#[derive(Debug)]
struct ThreadResult {
    /// Transactions committed.
    committed: u64,
    /// Transactions `Store::run` gave up on after its last retry.
    gave_up: u64,
    /// The most attempts one transaction took.
    max_attempts: u32,
    latency: Histogram,
    /// When its last transaction ended.
    end: Instant,
}

/// Runs `work(thread, deadline)` on `threads` threads that start together,
/// and returns their results and the wall time from the start to the last
/// thread's end.
fn run_threads<F>(
    threads: usize,
    duration: Duration,
    work: F,
) -> Result<(Vec<ThreadResult>, Duration)>
where
    F: Fn(usize, Instant) -> Result<ThreadResult> + Sync,
{
    let start = OnceLock::new();
    let barrier = Barrier::new(threads + 1);
    let results: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (start, barrier, work) = (&start, &barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    let start: Instant = *start.get().expect("set before the barrier opens");
                    work(t, start + duration)
                })
            })
            .collect();
        start.set(Instant::now()).expect("set once");
        barrier.wait();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let start = *start.get().expect("set above");
    let mut out = Vec::with_capacity(threads);
    for result in results {
        out.push(result.map_err(|_| anyhow::anyhow!("a worker thread panicked"))??);
    }
    let end = out.iter().map(|r| r.end).max().unwrap_or(start);
    Ok((out, end - start))
}

/// A fresh directory for one run: `root/<workload>-<threads>`.
fn fresh_dir(root: &Path, workload: Workload, threads: usize) -> Result<PathBuf> {
    let path = root.join(format!("{}-{threads}", workload.name()));
    if path.exists() {
        std::fs::remove_dir_all(&path).with_context(|| format!("erasing {}", path.display()))?;
    }
    Ok(path)
}

fn open_store(path: &Path, durability: Durability) -> Result<Store> {
    let opts = TxnOptions { durability, ..TxnOptions::default() };
    Store::open(path, opts).with_context(|| format!("opening a store in {}", path.display()))
}

/// Fsyncs of the WAL for `Durability::Sync` writes so far.
fn wal_syncs(store: &Store) -> u64 {
    engine_stats(store).wal_syncs
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

fn per_sec(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let threads = args.threads.clone().unwrap_or_else(|| args.workload.default_threads());
    ensure!(!threads.is_empty() && threads.iter().all(|&t| t > 0), "--threads must be positive");
    let temp = match &args.db {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("txn-bench-").tempdir()?),
    };
    let root = args.db.as_deref().unwrap_or_else(|| temp.as_ref().expect("made above").path());
    match args.workload {
        Workload::Commits => commits(&args, root, &threads),
        Workload::Zipfian => {
            let zipf = Zipfian::new(args.keys, args.theta)?;
            for &t in &threads {
                zipfian(&args, root, t, &zipf)?;
            }
            Ok(())
        }
    }
}

// ----- commits -----

/// One run of the `commits` workload.
#[derive(Debug)]
struct CommitsReport {
    threads: usize,
    commits: u64,
    elapsed: Duration,
    fsyncs: u64,
    latency: Histogram,
}

impl CommitsReport {
    fn commits_per_sec(&self) -> f64 {
        per_sec(self.commits, self.elapsed)
    }

    fn commits_per_fsync(&self) -> Option<f64> {
        (self.fsyncs > 0).then(|| self.commits as f64 / self.fsyncs as f64)
    }

    fn line(&self, ratio: Option<f64>) -> String {
        let per_fsync = self.commits_per_fsync().map_or("-".to_string(), |c| format!("{c:.1}"));
        let ratio = ratio.map_or("-".to_string(), |r| format!("{r:.2}x"));
        format!(
            "{:>7} {:>10} {:>12.0} {:>9} {:>10} {:>10} {:>12.1} {:>12.1}",
            self.threads,
            self.commits,
            self.commits_per_sec(),
            ratio,
            self.fsyncs,
            per_fsync,
            micros(self.latency.percentile(50.0)),
            micros(self.latency.percentile(99.0)),
        )
    }

    fn json(&self, durability: DurabilityArg, ratio: Option<f64>) -> String {
        let fields = [
            "\"workload\":\"commits\"".to_string(),
            format!("\"durability\":\"{}\"", durability.name()),
            format!("\"threads\":{}", self.threads),
            format!("\"commits\":{}", self.commits),
            format!("\"elapsed_s\":{:.6}", self.elapsed.as_secs_f64()),
            format!("\"commits_per_sec\":{:.1}", self.commits_per_sec()),
            format!("\"ratio_to_1_thread\":{}", json_number(ratio)),
            format!("\"fsyncs\":{}", self.fsyncs),
            format!("\"commits_per_fsync\":{}", json_number(self.commits_per_fsync())),
            format!("\"p50_us\":{:.3}", micros(self.latency.percentile(50.0))),
            format!("\"p99_us\":{:.3}", micros(self.latency.percentile(99.0))),
            format!("\"max_us\":{:.3}", micros(self.latency.max())),
        ];
        format!("{{{}}}", fields.join(","))
    }
}

fn json_number(value: Option<f64>) -> String {
    value.map_or("null".to_string(), |v| format!("{v:.3}"))
}

/// Throughput of `report` over that of the one-thread run, if there was one.
fn ratio_to_one(report: &CommitsReport, one: Option<&CommitsReport>) -> Option<f64> {
    one.map(|one| report.commits_per_sec() / one.commits_per_sec())
}

fn commits(args: &Args, root: &Path, threads: &[usize]) -> Result<()> {
    if !args.json {
        println!(
            "commits: blind one-key writes, a key per thread; durability {}; {:.1} s per run",
            args.durability.name(),
            args.duration.as_secs_f64()
        );
        println!(
            "{:>7} {:>10} {:>12} {:>9} {:>10} {:>10} {:>12} {:>12}",
            "threads", "commits", "commits/s", "vs 1", "fsyncs", "per fsync", "p50 us", "p99 us"
        );
    }
    let mut reports: Vec<CommitsReport> = Vec::new();
    for &t in threads {
        let report = commits_run(args, root, t)?;
        // The one-thread run, whether it came before or comes later.
        let one = reports.iter().chain([&report]).find(|r| r.threads == 1);
        let ratio = ratio_to_one(&report, one);
        if args.json {
            println!("{}", report.json(args.durability, ratio));
        } else {
            println!("{}", report.line(ratio));
        }
        reports.push(report);
    }
    let (goal_threads, goal_ratio) = GROUP_COMMIT_GOAL;
    let one = reports.iter().find(|r| r.threads == 1);
    if let Some(many) = reports.iter().find(|r| r.threads == goal_threads)
        && let Some(ratio) = ratio_to_one(many, one)
        && !args.json
    {
        let verdict = if ratio >= goal_ratio { "met" } else { "MISSED" };
        println!(
            "group commit: {goal_threads} committers reach {ratio:.1}x one committer \
             (goal: at least {goal_ratio:.0}x): {verdict}"
        );
    }
    Ok(())
}

fn commits_run(args: &Args, root: &Path, threads: usize) -> Result<CommitsReport> {
    let path = fresh_dir(root, Workload::Commits, threads)?;
    let store = open_store(&path, args.durability.durability())?;
    let keys = KeyFormat::new(KEY_BYTES, threads as u64)?;
    let fsyncs_before = wal_syncs(&store);
    let (results, elapsed) = run_threads(threads, args.duration, |thread, deadline| {
        let key = keys.key(thread as u64);
        let mut latency = Histogram::new();
        let mut committed = 0u64;
        let mut end = Instant::now();
        while end < deadline {
            let mut txn = store.begin();
            // The value is the thread's commit count, checked at the end.
            txn.put(&key, &(committed + 1).to_le_bytes())?;
            txn.commit().context("a blind write to a key no other thread writes")?;
            committed += 1;
            let now = Instant::now();
            latency.record_duration(now - end);
            end = now;
        }
        Ok(ThreadResult { committed, gave_up: 0, max_attempts: 1, latency, end })
    })?;
    let fsyncs = wal_syncs(&store) - fsyncs_before;

    // Every thread's key holds its last commit.
    let mut reader = store.begin_read_only();
    for (thread, r) in results.iter().enumerate() {
        let value = reader.get(&keys.key(thread as u64))?;
        let expected = (r.committed > 0).then(|| r.committed.to_le_bytes().to_vec());
        ensure!(value == expected, "thread {thread}'s key lost its last commit");
    }
    drop(reader);

    let mut latency = Histogram::new();
    for r in &results {
        latency.merge(&r.latency);
    }
    let commits = results.iter().map(|r| r.committed).sum();
    drop(store);
    if args.db.is_none() {
        std::fs::remove_dir_all(&path)?; // free the disk for the next run
    }
    Ok(CommitsReport { threads, commits, elapsed, fsyncs, latency })
}

// ----- zipfian read-modify-write -----

/// One run of the `zipfian` workload.
#[derive(Debug)]
struct ZipfianReport {
    threads: usize,
    keys: u64,
    theta: f64,
    elapsed: Duration,
    /// Transactions that committed, as the threads counted them.
    committed: u64,
    gave_up: u64,
    /// The most attempts one transaction took.
    max_attempts: u32,
    /// `TxnStats` over the run (the load excluded).
    stats: TxnStats,
    /// The counters' sum at the end.
    counter_sum: u64,
    latency: Histogram,
    /// What the storage engine did meanwhile.
    engine: EngineActivity,
}

/// Storage-engine work during a run, which explains latency outliers.
#[derive(Debug, Default, PartialEq, Eq)]
struct EngineActivity {
    flushes: u64,
    compactions: u64,
    /// Writes that waited for a flush or compaction, and for how long.
    stalls: u64,
    stall_micros: u64,
}

impl EngineActivity {
    /// Activity between two snapshots of the engine's statistics.
    fn since(after: &StatsSnapshot, before: &StatsSnapshot) -> EngineActivity {
        EngineActivity {
            flushes: after.flushes - before.flushes,
            compactions: after.compactions - before.compactions,
            stalls: after.stalls - before.stalls,
            stall_micros: after.stall_micros - before.stall_micros,
        }
    }
}

/// The engine's statistics (a local store always has an engine).
fn engine_stats(store: &Store) -> StatsSnapshot {
    store.shard_stats().engine.unwrap_or_default()
}

impl ZipfianReport {
    fn aborts(&self) -> u64 {
        let s = &self.stats;
        s.aborts_write_write + s.aborts_read_write + s.aborts_phantom
    }

    fn abort_rate(&self) -> f64 {
        let attempts = self.stats.commits + self.aborts();
        if attempts == 0 { 0.0 } else { self.aborts() as f64 / attempts as f64 }
    }

    /// Whether the counters add up to the increments committed (by the
    /// threads' count and by the store's).
    fn consistent(&self) -> bool {
        self.counter_sum == self.committed && self.stats.commits == self.committed
    }

    fn text(&self, durability: DurabilityArg) -> String {
        let s = &self.stats;
        let ms = |p: f64| micros(self.latency.percentile(p)) / 1000.0;
        format!(
            "zipfian read-modify-write: {} threads, {} keys, theta {}, durability {}, {:.1} s\n\
             throughput  {:.0} committed txn/s\n\
             commits     {} (threads counted {}; {} gave up after the last retry)\n\
             aborts      {} (write-write {}, read-write {}, phantom {}), abort rate {:.2}%\n\
             retries     {} (at most {} attempts for one transaction)\n\
             latency     p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms (whole transactions, retries included)\n\
             engine      {} flushes, {} compactions, {} write stalls ({:.1} ms)\n\
             check       counters sum to {}, committed increments {}: {}",
            self.threads,
            self.keys,
            self.theta,
            durability.name(),
            self.elapsed.as_secs_f64(),
            per_sec(self.committed, self.elapsed),
            s.commits,
            self.committed,
            self.gave_up,
            self.aborts(),
            s.aborts_write_write,
            s.aborts_read_write,
            s.aborts_phantom,
            100.0 * self.abort_rate(),
            s.retries,
            self.max_attempts,
            ms(50.0),
            ms(99.0),
            micros(self.latency.max()) / 1000.0,
            self.engine.flushes,
            self.engine.compactions,
            self.engine.stalls,
            self.engine.stall_micros as f64 / 1000.0,
            self.counter_sum,
            self.committed,
            if self.consistent() { "ok" } else { "MISMATCH" },
        )
    }

    fn json(&self, durability: DurabilityArg) -> String {
        let s = &self.stats;
        let fields = [
            "\"workload\":\"zipfian\"".to_string(),
            format!("\"durability\":\"{}\"", durability.name()),
            format!("\"threads\":{}", self.threads),
            format!("\"keys\":{}", self.keys),
            format!("\"theta\":{}", self.theta),
            format!("\"elapsed_s\":{:.6}", self.elapsed.as_secs_f64()),
            format!("\"txn_per_sec\":{:.1}", per_sec(self.committed, self.elapsed)),
            format!("\"commits\":{}", s.commits),
            format!("\"committed_by_threads\":{}", self.committed),
            format!("\"gave_up\":{}", self.gave_up),
            format!("\"aborts\":{}", self.aborts()),
            format!("\"aborts_write_write\":{}", s.aborts_write_write),
            format!("\"abort_rate\":{:.5}", self.abort_rate()),
            format!("\"retries\":{}", s.retries),
            format!("\"max_attempts\":{}", self.max_attempts),
            format!("\"p50_us\":{:.3}", micros(self.latency.percentile(50.0))),
            format!("\"p99_us\":{:.3}", micros(self.latency.percentile(99.0))),
            format!("\"max_us\":{:.3}", micros(self.latency.max())),
            format!("\"flushes\":{}", self.engine.flushes),
            format!("\"compactions\":{}", self.engine.compactions),
            format!("\"write_stalls\":{}", self.engine.stalls),
            format!("\"write_stall_us\":{}", self.engine.stall_micros),
            format!("\"counter_sum\":{}", self.counter_sum),
            format!("\"consistent\":{}", self.consistent()),
        ];
        format!("{{{}}}", fields.join(","))
    }
}

/// `after - before`, counter by counter.
fn stats_since(after: &TxnStats, before: &TxnStats) -> TxnStats {
    TxnStats {
        commits: after.commits - before.commits,
        read_only_commits: after.read_only_commits - before.read_only_commits,
        rollbacks: after.rollbacks - before.rollbacks,
        aborts_write_write: after.aborts_write_write - before.aborts_write_write,
        aborts_read_write: after.aborts_read_write - before.aborts_read_write,
        aborts_phantom: after.aborts_phantom - before.aborts_phantom,
        aborts_other: after.aborts_other - before.aborts_other,
        retries: after.retries - before.retries,
    }
}

/// A counter's value.
fn decode_counter(key: &[u8], value: &[u8]) -> strata_txn::Result<u64> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        strata_txn::Error::Corruption(format!(
            "counter {} holds {} bytes, not 8",
            String::from_utf8_lossy(key),
            value.len()
        ))
    })?;
    Ok(u64::from_le_bytes(bytes))
}

fn zipfian(args: &Args, root: &Path, threads: usize, zipf: &Zipfian) -> Result<()> {
    let path = fresh_dir(root, Workload::Zipfian, threads)?;
    let store = open_store(&path, args.durability.durability())?;
    let keys = KeyFormat::new(KEY_BYTES, zipf.items())?;
    for start in (0..zipf.items()).step_by(LOAD_CHUNK as usize) {
        let mut txn = store.begin();
        for i in start..(start + LOAD_CHUNK).min(zipf.items()) {
            txn.put(&keys.key(i), &0u64.to_le_bytes())?;
        }
        txn.commit()?;
    }

    let (before, engine_before) = (store.stats(), engine_stats(&store));
    let (results, elapsed) = run_threads(threads, args.duration, |thread, deadline| {
        let mut rng = Rng::new(thread_seed(args.seed, thread));
        let mut key = vec![0; KEY_BYTES];
        let mut latency = Histogram::new();
        let (mut committed, mut gave_up, mut max_attempts) = (0, 0, 0);
        let mut end = Instant::now();
        while end < deadline {
            keys.write(zipf.sample(&mut rng), &mut key);
            let mut attempts = 0;
            let outcome = store.run(Isolation::Snapshot, |txn| {
                attempts += 1;
                let value = txn.get(&key)?.unwrap_or_else(|| 0u64.to_le_bytes().to_vec());
                let n = decode_counter(&key, &value)?;
                txn.put(&key, &(n + 1).to_le_bytes())
            });
            match outcome {
                Ok(()) => committed += 1,
                Err(e) if e.is_retryable() => gave_up += 1,
                Err(e) => return Err(e).context("an increment failed"),
            }
            max_attempts = max_attempts.max(attempts);
            let now = Instant::now();
            latency.record_duration(now - end);
            end = now;
        }
        Ok(ThreadResult { committed, gave_up, max_attempts, latency, end })
    })?;
    let stats = stats_since(&store.stats(), &before);
    let engine = EngineActivity::since(&engine_stats(&store), &engine_before);

    let mut counter_sum = 0u64;
    let mut reader = store.begin_read_only();
    for row in reader.scan(KeyRange::all(), false)? {
        let (key, value) = row?;
        counter_sum += decode_counter(&key, &value)?;
    }
    drop(reader);

    let mut latency = Histogram::new();
    for r in &results {
        latency.merge(&r.latency);
    }
    let report = ZipfianReport {
        threads,
        keys: zipf.items(),
        theta: zipf.theta(),
        elapsed,
        committed: results.iter().map(|r| r.committed).sum(),
        gave_up: results.iter().map(|r| r.gave_up).sum(),
        max_attempts: results.iter().map(|r| r.max_attempts).max().unwrap_or(0),
        stats,
        counter_sum,
        latency,
        engine,
    };
    if args.json {
        println!("{}", report.json(args.durability));
    } else {
        println!("{}", report.text(args.durability));
    }
    ensure!(report.stats.aborts_other == 0, "{} transactions failed", report.stats.aborts_other);
    if !report.consistent() {
        bail!(
            "lost or invented increments: counters sum to {}, threads committed {}, the store \
             counted {} commits",
            report.counter_sum,
            report.committed,
            report.stats.commits
        );
    }
    drop(store);
    if args.db.is_none() {
        std::fs::remove_dir_all(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2_500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        for bad in ["", "s", "fast", "0s", "-1s", "5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn thread_seeds_differ_and_repeat() {
        assert_eq!(thread_seed(1, 3), thread_seed(1, 3));
        assert_ne!(thread_seed(1, 3), thread_seed(1, 4));
        assert_ne!(thread_seed(1, 3), thread_seed(2, 3));
    }

    #[test]
    fn abort_rate_counts_failed_attempts_among_all_attempts() {
        let report = ZipfianReport {
            threads: 8,
            keys: 10,
            theta: 0.99,
            elapsed: Duration::from_secs(1),
            committed: 75,
            gave_up: 0,
            max_attempts: 3,
            stats: TxnStats {
                commits: 75,
                aborts_write_write: 25,
                retries: 25,
                ..TxnStats::default()
            },
            counter_sum: 75,
            latency: Histogram::new(),
            engine: EngineActivity::default(),
        };
        assert_eq!(report.abort_rate(), 0.25);
        assert!(report.consistent());
        let json = report.json(DurabilityArg::Sync);
        assert!(json.contains("\"abort_rate\":0.25000"), "{json}");
        assert!(json.contains("\"consistent\":true"), "{json}");
        let lost = ZipfianReport { counter_sum: 74, ..report };
        assert!(!lost.consistent());
        assert!(lost.text(DurabilityArg::Sync).ends_with("MISMATCH"));
    }

    #[test]
    fn the_zipfian_workload_adds_up_on_a_real_store() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args::parse_from([
            "txn-bench",
            "--workload",
            "zipfian",
            "--keys",
            "50",
            "--duration",
            "200ms",
            "--durability",
            "buffered",
            "--json",
        ]);
        let zipf = Zipfian::new(args.keys, args.theta).unwrap();
        zipfian(&args, dir.path(), 4, &zipf).unwrap();
    }
}
