//! `lsm-bench`: a `db_bench`-like driver for Strata's storage engine and RocksDB.
//!
//! ```text
//! cargo run --release -p strata-benches --bin lsm-bench -- \
//!     --engine strata --benchmarks fillseq,readrandom --num 1000000
//! ```
//!
//! Benchmarks run in the order given on one database per engine, as in
//! `db_bench`: `fillseq` and `fillrandom` start from an empty database, the
//! others use whatever the earlier ones left. Each prints one line:
//!
//! ```text
//! fillrandom       :      3.342 micros/op    299206 ops/sec     33.1 MB/s  p50     2.96 us  p99     7.52 us  write-amp 0.94
//! ```
//!
//! - `micros/op` is thread time per operation and `ops/sec` is operations per
//!   second of wall time (they differ with several threads, as in `db_bench`).
//! - `MB/s` counts the key and value bytes written or read.
//! - `p50` and `p99` are per-call latencies: one `write` (of `--batch-size`
//!   puts), `get`, scan step, or seek with its 10 reads. Each is the time since
//!   the previous call ended, so it includes choosing the key, as `db_bench`'s
//!   histograms do.
//! - `write-amp` (write benchmarks) is table bytes written by flushes and
//!   compactions per user byte written, over this benchmark only. A flush
//!   after the writes, not included in the time, puts the memtable in tables
//!   first; compaction work still owed at that point is not counted.
//!
//! `--engine both` runs Strata, then RocksDB (built with `--features rocksdb`),
//! and ends with a table of their throughput ratios. `--json` prints one JSON
//! object per benchmark and engine instead of the lines.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use strata_benches::engine::{EngineKind, ROCKSDB_AVAILABLE};
use strata_benches::{Batch, Engine, EngineConfig, Histogram, KeyFormat, Rng, ValueGen};

/// Entries each `seekrandom` seek reads.
const SEEK_NEXTS: usize = 10;
/// `seekrandom` performs `--num` / this many seeks, and at least `MIN_SEEKS`.
const SEEKS_PER_KEY: u64 = 10;
const MIN_SEEKS: u64 = 1000;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(about = "A db_bench-like benchmark of Strata's LSM engine (and RocksDB)")]
struct Args {
    /// Engine(s) to benchmark. `rocksdb` and `both` need `--features rocksdb`.
    #[arg(long, value_enum, default_value_t = EngineChoice::Strata)]
    engine: EngineChoice,
    /// Comma-separated benchmarks, run in order on the same database.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fillseq,fillrandom,overwrite,readrandom,readseq,seekrandom,readwhilewriting"
    )]
    benchmarks: Vec<Benchmark>,
    /// Number of keys; also the number of operations of most benchmarks.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Reader threads of `readwhilewriting` (there is always one writer).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Directory holding the databases, one subdirectory per engine (fill
    /// benchmarks erase it). Default: a fresh temporary directory.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Fsync the WAL on every write. Without it, writes reach the WAL (in the
    /// OS page cache) before returning, like `db_bench`'s default.
    #[arg(long)]
    sync: bool,
    /// Puts per atomic write.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Memtable (write buffer) size in MiB, for both engines.
    #[arg(long, default_value_t = 64)]
    memtable_mb: usize,
    /// Print one JSON object per benchmark and engine instead of text.
    #[arg(long)]
    json: bool,
    /// Seed of every random choice; equal seeds give both engines equal work.
    #[arg(long, default_value_t = 301)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    Strata,
    Rocksdb,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Benchmark {
    /// Write `--num` keys in ascending order into an empty database.
    #[value(name = "fillseq")]
    FillSeq,
    /// Write `--num` random keys (with repeats) into an empty database.
    #[value(name = "fillrandom")]
    FillRandom,
    /// Write `--num` random keys into the current database.
    #[value(name = "overwrite")]
    Overwrite,
    /// `--num` gets of random keys.
    #[value(name = "readrandom")]
    ReadRandom,
    /// One forward scan over the whole database.
    #[value(name = "readseq")]
    ReadSeq,
    /// `--num`/10 (at least 1000) seeks to random keys, each reading 10 entries.
    #[value(name = "seekrandom")]
    SeekRandom,
    /// `--threads` readers doing `--num` random gets each while one writer
    /// overwrites random keys; reports the readers.
    #[value(name = "readwhilewriting")]
    ReadWhileWriting,
}

impl Benchmark {
    fn name(self) -> &'static str {
        match self {
            Benchmark::FillSeq => "fillseq",
            Benchmark::FillRandom => "fillrandom",
            Benchmark::Overwrite => "overwrite",
            Benchmark::ReadRandom => "readrandom",
            Benchmark::ReadSeq => "readseq",
            Benchmark::SeekRandom => "seekrandom",
            Benchmark::ReadWhileWriting => "readwhilewriting",
        }
    }

    /// Whether the benchmark starts from an empty database.
    fn starts_empty(self) -> bool {
        matches!(self, Benchmark::FillSeq | Benchmark::FillRandom)
    }
}

/// What one benchmark measured.
#[derive(Debug)]
struct Measurement {
    /// Operations: puts, gets, scan steps or seeks.
    ops: u64,
    /// Wall time of the measured part.
    elapsed: Duration,
    /// Time summed over the measuring threads.
    thread_time: Duration,
    /// Key and value bytes written or read.
    bytes: u64,
    latency: Histogram,
    /// Reads that found a key, of reads attempted.
    found: Option<(u64, u64)>,
    write_amp: Option<f64>,
    /// The writer's throughput during `readwhilewriting`.
    writer_ops_per_sec: Option<f64>,
}

impl Measurement {
    /// A measurement of `ops` operations by one thread, with nothing else known yet.
    fn new(ops: u64, elapsed: Duration, bytes: u64, latency: Histogram) -> Measurement {
        Measurement {
            ops,
            elapsed,
            thread_time: elapsed,
            bytes,
            latency,
            found: None,
            write_amp: None,
            writer_ops_per_sec: None,
        }
    }

    /// `amount` per second of wall time (0 if no time passed, as when
    /// scanning an empty database).
    fn per_sec(&self, amount: f64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { amount / secs } else { 0.0 }
    }

    fn ops_per_sec(&self) -> f64 {
        self.per_sec(self.ops as f64)
    }

    fn micros_per_op(&self) -> f64 {
        self.thread_time.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    fn mb_per_sec(&self) -> f64 {
        self.per_sec(self.bytes as f64 / MIB)
    }

    /// Latency at percentile `p`, in microseconds.
    fn latency_us(&self, p: f64) -> f64 {
        self.latency.percentile(p) as f64 / 1000.0
    }

    /// Adds another thread's measurement of the same benchmark, which ran
    /// at the same time.
    fn absorb(&mut self, other: Measurement) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.thread_time += other.thread_time;
        self.latency.merge(&other.latency);
        if let (Some((found, of)), Some((more, more_of))) = (self.found, other.found) {
            self.found = Some((found + more, of + more_of));
        }
    }
}

/// A measurement of one benchmark on one engine.
#[derive(Debug)]
struct Report {
    engine: &'static str,
    benchmark: Benchmark,
    m: Measurement,
}

impl Report {
    /// The `db_bench`-style line.
    fn line(&self) -> String {
        let m = &self.m;
        let mut line = format!(
            "{:<16} : {:>10.3} micros/op {:>9.0} ops/sec {:>8.1} MB/s  p50 {:>8.2} us  p99 {:>8.2} us",
            self.benchmark.name(),
            m.micros_per_op(),
            m.ops_per_sec(),
            m.mb_per_sec(),
            m.latency_us(50.0),
            m.latency_us(99.0),
        );
        if let Some(w) = m.write_amp {
            line += &format!("  write-amp {w:.2}");
        }
        if let Some((found, of)) = m.found {
            line += &format!("  ({found} of {of} found)");
        }
        if let Some(w) = m.writer_ops_per_sec {
            line += &format!("  (writer {w:.0} ops/sec)");
        }
        line
    }

    /// One JSON object, written by hand: the fields are few and all numbers
    /// apart from two names that need no escaping.
    fn json(&self, num: u64) -> String {
        let m = &self.m;
        let mut fields = vec![
            format!("\"engine\":\"{}\"", self.engine),
            format!("\"benchmark\":\"{}\"", self.benchmark.name()),
            format!("\"num\":{num}"),
            format!("\"ops\":{}", m.ops),
            format!("\"elapsed_s\":{:.6}", m.elapsed.as_secs_f64()),
            format!("\"micros_per_op\":{:.4}", m.micros_per_op()),
            format!("\"ops_per_sec\":{:.1}", m.ops_per_sec()),
            format!("\"mb_per_sec\":{:.3}", m.mb_per_sec()),
            format!("\"p50_us\":{:.3}", m.latency_us(50.0)),
            format!("\"p99_us\":{:.3}", m.latency_us(99.0)),
            format!("\"p999_us\":{:.3}", m.latency_us(99.9)),
            format!("\"max_us\":{:.3}", m.latency.max() as f64 / 1000.0),
        ];
        if let Some(w) = m.write_amp {
            fields.push(format!("\"write_amp\":{w:.4}"));
        }
        if let Some((found, of)) = m.found {
            fields.push(format!("\"found\":{found},\"reads\":{of}"));
        }
        if let Some(w) = m.writer_ops_per_sec {
            fields.push(format!("\"writer_ops_per_sec\":{w:.1}"));
        }
        format!("{{{}}}", fields.join(","))
    }
}

/// Workload parameters shared by every benchmark of a run.
#[derive(Debug)]
struct Workload {
    keys: KeyFormat,
    num: u64,
    value_size: usize,
    batch_size: usize,
    threads: usize,
    seed: u64,
}

impl Workload {
    /// A seed for one thread of one benchmark: benchmarks and threads draw
    /// different keys, and both engines draw the same ones.
    fn seed(&self, benchmark: Benchmark, thread: usize) -> u64 {
        let salt = ((benchmark as u64) << 32) ^ thread as u64;
        Rng::new(self.seed ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64()
    }
}

/// Latencies of consecutive calls: each sample is the time since the
/// previous call ended (or since the timer started).
struct CallTimer {
    histogram: Histogram,
    start: Instant,
    last: Instant,
}

impl CallTimer {
    fn start() -> CallTimer {
        // Allocate before reading the clock: a 30 KiB allocation can cost
        // milliseconds when it makes glibc consolidate freed chunks.
        let histogram = Histogram::new();
        let now = Instant::now();
        CallTimer { histogram, start: now, last: now }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.histogram.record_duration(now - self.last);
        self.last = now;
    }

    /// Elapsed time and the latencies.
    fn finish(self) -> (Duration, Histogram) {
        (self.last - self.start, self.histogram)
    }
}

/// One engine's database directory and, while open, the engine.
struct Database {
    kind: EngineKind,
    path: PathBuf,
    config: EngineConfig,
    engine: Option<Box<dyn Engine>>,
}

impl Database {
    /// The open engine, opening the existing database first if needed.
    fn engine(&mut self) -> Result<&dyn Engine> {
        if self.engine.is_none() {
            self.engine = Some(self.kind.open(&self.path, &self.config)?);
        }
        Ok(self.engine.as_deref().expect("opened above"))
    }

    /// Closes the engine and erases the database.
    fn erase(&mut self) -> Result<()> {
        self.engine = None; // waits for the engine's background work to stop
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path)
                .with_context(|| format!("erasing {}", self.path.display()))?;
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.num > 0, "--num must be positive");
    ensure!(args.threads > 0, "--threads must be positive");
    ensure!(args.batch_size > 0, "--batch-size must be positive");
    ensure!(args.memtable_mb > 0, "--memtable-mb must be positive");
    let kinds = match args.engine {
        EngineChoice::Strata => vec![EngineKind::Strata],
        EngineChoice::Rocksdb => vec![EngineKind::RocksDb],
        EngineChoice::Both => vec![EngineKind::Strata, EngineKind::RocksDb],
    };
    if kinds.contains(&EngineKind::RocksDb) && !ROCKSDB_AVAILABLE {
        bail!(
            "this build has no RocksDB engine: rebuild with `--features rocksdb` \
             (benches/run-lsm-bench.sh installs what that needs and does so)"
        );
    }
    let workload = Workload {
        keys: KeyFormat::new(args.key_size, args.num)?,
        num: args.num,
        value_size: args.value_size,
        batch_size: args.batch_size,
        threads: args.threads,
        seed: args.seed,
    };
    let config = EngineConfig { memtable_size_bytes: args.memtable_mb << 20, sync: args.sync };
    if !args.json {
        print_header(&args);
    }

    let temp = match &args.db {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("lsm-bench-").tempdir()?),
    };
    let root = args.db.as_deref().unwrap_or_else(|| temp.as_ref().expect("made above").path());
    let mut all = Vec::new();
    for kind in kinds {
        let path = root.join(kind.name());
        let reports = run_engine(kind, &path, &config, &args.benchmarks, &workload, args.json)?;
        all.push(reports);
        if temp.is_some() {
            // Free the disk (and page cache) before the next engine runs.
            std::fs::remove_dir_all(&path)?;
        }
    }
    if let [strata, rocksdb] = &all[..]
        && !args.json
    {
        print!("{}", comparison_table(strata, rocksdb));
    }
    Ok(())
}

fn print_header(args: &Args) {
    println!("Keys:       {} bytes each", args.key_size);
    println!("Values:     {} bytes each (half compressible; no compression)", args.value_size);
    println!("Entries:    {}", args.num);
    println!("Batch size: {}", args.batch_size);
    println!("Memtable:   {} MiB", args.memtable_mb);
    println!(
        "WAL:        {}",
        if args.sync { "fsync per write" } else { "written to the OS per write, no fsync" }
    );
    println!("------------------------------------------------");
}

/// Runs the benchmarks in order on one engine, printing each result.
fn run_engine(
    kind: EngineKind,
    path: &Path,
    config: &EngineConfig,
    benchmarks: &[Benchmark],
    workload: &Workload,
    json: bool,
) -> Result<Vec<Report>> {
    if !json {
        println!("{} (in {})", kind.name(), path.display());
    }
    let mut db = Database { kind, path: path.to_path_buf(), config: config.clone(), engine: None };
    let mut reports = Vec::new();
    for &benchmark in benchmarks {
        if benchmark.starts_empty() {
            db.erase()?;
        }
        let engine = db.engine()?;
        let report = run_benchmark(engine, benchmark, workload)
            .with_context(|| format!("{} on {}", benchmark.name(), kind.name()))?;
        if json {
            println!("{}", report.json(workload.num));
        } else {
            println!("{}", report.line());
        }
        reports.push(report);
    }
    if !json {
        if let Some(engine) = &db.engine {
            println!("{}: {}", kind.name(), engine.summary());
        }
        println!();
    }
    Ok(reports)
}

fn run_benchmark(engine: &dyn Engine, benchmark: Benchmark, w: &Workload) -> Result<Report> {
    let m = match benchmark {
        Benchmark::FillSeq => write_keys(engine, w, None)?,
        Benchmark::FillRandom | Benchmark::Overwrite => {
            write_keys(engine, w, Some(Rng::new(w.seed(benchmark, 0))))?
        }
        Benchmark::ReadRandom => read_random(engine, w, w.seed(benchmark, 0))?,
        Benchmark::ReadSeq => read_seq(engine)?,
        Benchmark::SeekRandom => seek_random(engine, w, Rng::new(w.seed(benchmark, 0)))?,
        Benchmark::ReadWhileWriting => read_while_writing(engine, w)?,
    };
    Ok(Report { engine: engine.name(), benchmark, m })
}

/// Writes `--num` keys in batches: in index order without `rng`, else random
/// indexes (with repeats). Then flushes, untimed, for the write amplification.
fn write_keys(engine: &dyn Engine, w: &Workload, mut rng: Option<Rng>) -> Result<Measurement> {
    let before = engine.write_counters();
    let mut values = ValueGen::new(w.seed);
    let mut batch = Batch::new();
    let mut key = vec![0; w.keys.size()];
    let mut bytes = 0;
    let mut timer = CallTimer::start();
    let mut written = 0;
    while written < w.num {
        let n = (w.batch_size as u64).min(w.num - written);
        batch.clear();
        for i in written..written + n {
            let index = rng.as_mut().map_or(i, |r| r.below(w.num));
            w.keys.write(index, &mut key);
            batch.push(&key, values.next(w.value_size));
        }
        engine.write(&batch)?;
        timer.tick();
        bytes += batch.size_bytes() as u64;
        written += n;
    }
    let (elapsed, latency) = timer.finish();
    engine.flush()?;
    let mut r = Measurement::new(written, elapsed, bytes, latency);
    r.write_amp = engine.write_counters().amplification_since(&before);
    Ok(r)
}

/// `--num` gets of random keys.
fn read_random(engine: &dyn Engine, w: &Workload, seed: u64) -> Result<Measurement> {
    let mut rng = Rng::new(seed);
    let mut key = vec![0; w.keys.size()];
    let mut value = Vec::new();
    let (mut found, mut bytes, mut reads) = (0, 0, 0);
    let mut timer = CallTimer::start();
    while reads < w.num {
        w.keys.write(rng.below(w.num), &mut key);
        if engine.get(&key, &mut value)? {
            found += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        timer.tick();
        reads += 1;
    }
    let (elapsed, latency) = timer.finish();
    let mut r = Measurement::new(reads, elapsed, bytes, latency);
    r.found = Some((found, reads));
    Ok(r)
}

/// One forward scan of the whole database; an operation is one entry.
fn read_seq(engine: &dyn Engine) -> Result<Measurement> {
    let (mut entries, mut bytes) = (0, 0);
    let mut timer = CallTimer::start();
    let mut scan = engine.scan(None)?;
    while let Some((key, value)) = scan.next_entry()? {
        timer.tick();
        entries += 1;
        bytes += (key.len() + value.len()) as u64;
    }
    drop(scan);
    let (elapsed, latency) = timer.finish();
    Ok(Measurement::new(entries, elapsed, bytes, latency))
}

/// Seeks to random keys, reading up to [`SEEK_NEXTS`] entries from each; a
/// seek "finds" its key when the first entry is that key.
fn seek_random(engine: &dyn Engine, w: &Workload, mut rng: Rng) -> Result<Measurement> {
    let seeks = (w.num / SEEKS_PER_KEY).max(MIN_SEEKS);
    let mut key = vec![0; w.keys.size()];
    let (mut found, mut bytes) = (0, 0);
    let mut timer = CallTimer::start();
    for _ in 0..seeks {
        w.keys.write(rng.below(w.num), &mut key);
        let mut scan = engine.scan(Some(&key))?;
        for i in 0..SEEK_NEXTS {
            let Some((k, v)) = scan.next_entry()? else { break };
            if i == 0 && k == key.as_slice() {
                found += 1;
            }
            bytes += (k.len() + v.len()) as u64;
        }
        drop(scan);
        timer.tick();
    }
    let (elapsed, latency) = timer.finish();
    let mut r = Measurement::new(seeks, elapsed, bytes, latency);
    r.found = Some((found, seeks));
    Ok(r)
}

/// `--threads` readers each do `--num` random gets while one writer
/// overwrites random keys until they are done. Reports the readers, with the
/// writer's throughput alongside and write amplification over the run.
fn read_while_writing(engine: &dyn Engine, w: &Workload) -> Result<Measurement> {
    let before = engine.write_counters();
    let stop = AtomicBool::new(false);
    let benchmark = Benchmark::ReadWhileWriting;
    let (readers, writer) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rng = Rng::new(w.seed(benchmark, 0));
            let mut values = ValueGen::new(w.seed);
            let mut batch = Batch::new();
            let mut key = vec![0; w.keys.size()];
            let (start, mut puts) = (Instant::now(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                batch.clear();
                for _ in 0..w.batch_size {
                    w.keys.write(rng.below(w.num), &mut key);
                    batch.push(&key, values.next(w.value_size));
                }
                engine.write(&batch)?;
                puts += w.batch_size as u64;
            }
            anyhow::Ok(puts as f64 / start.elapsed().as_secs_f64())
        });
        let readers: Vec<_> = (1..=w.threads)
            .map(|t| {
                let seed = w.seed(benchmark, t);
                s.spawn(move || read_random(engine, w, seed))
            })
            .collect();
        let readers: Vec<_> = readers.into_iter().map(|r| r.join()).collect();
        stop.store(true, Ordering::Relaxed);
        (readers, writer.join())
    });
    let writer_ops_per_sec = writer.map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let mut merged: Option<Measurement> = None;
    for reader in readers {
        let r = reader.map_err(|_| anyhow::anyhow!("a reader panicked"))??;
        match &mut merged {
            None => merged = Some(r),
            Some(m) => m.absorb(r),
        }
    }
    let mut r = merged.expect("at least one reader");
    engine.flush()?;
    r.write_amp = engine.write_counters().amplification_since(&before);
    r.writer_ops_per_sec = Some(writer_ops_per_sec);
    Ok(r)
}

/// The side-by-side table of `--engine both`.
fn comparison_table(strata: &[Report], rocksdb: &[Report]) -> String {
    let write_amp = |r: &Report| r.m.write_amp.map_or("-".to_string(), |w| format!("{w:.2}"));
    let mut table = format!(
        "{:<16} {:>15} {:>15} {:>8} {:>11} {:>11} {:>6} {:>6}\n",
        "benchmark",
        "strata ops/s",
        "rocksdb ops/s",
        "ratio",
        "strata p99",
        "rocks p99",
        "s-wa",
        "r-wa"
    );
    for (s, r) in strata.iter().zip(rocksdb) {
        table += &format!(
            "{:<16} {:>15.0} {:>15.0} {:>8.2} {:>8.1} us {:>8.1} us {:>6} {:>6}\n",
            s.benchmark.name(),
            s.m.ops_per_sec(),
            r.m.ops_per_sec(),
            s.m.ops_per_sec() / r.m.ops_per_sec(),
            s.m.latency_us(99.0),
            r.m.latency_us(99.0),
            write_amp(s),
            write_amp(r),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        engine: &'static str,
        benchmark: Benchmark,
        ops: u64,
        write_amp: Option<f64>,
    ) -> Report {
        let mut latency = Histogram::new();
        for us in 1..=100 {
            latency.record(us * 1000);
        }
        let mut m = Measurement::new(ops, Duration::from_secs(2), ops * 116, latency);
        m.write_amp = write_amp;
        Report { engine, benchmark, m }
    }

    #[test]
    fn line_reads_like_db_bench() {
        let line = report("strata", Benchmark::FillRandom, 1_000_000, Some(1.5)).line();
        assert!(
            line.starts_with("fillrandom       :      2.000 micros/op    500000 ops/sec"),
            "{line}"
        );
        assert!(
            line.contains("55.3 MB/s  p50    49.92 us  p99    98.82 us  write-amp 1.50"),
            "{line}"
        );
    }

    #[test]
    fn json_has_the_promised_fields() {
        let json = report("rocksdb", Benchmark::ReadRandom, 10, None).json(10);
        assert!(
            json.starts_with("{\"engine\":\"rocksdb\",\"benchmark\":\"readrandom\",\"num\":10,")
        );
        for field in ["ops_per_sec\":5.0", "mb_per_sec\":", "p50_us\":", "p99_us\":"] {
            assert!(json.contains(field), "{field} in {json}");
        }
        assert!(!json.contains("write_amp"), "only write benchmarks have one: {json}");
        assert!(json.ends_with('}'));
    }

    #[test]
    fn comparison_gives_the_throughput_ratio() {
        let strata = [report("strata", Benchmark::FillSeq, 300, Some(1.0))];
        let rocksdb = [report("rocksdb", Benchmark::FillSeq, 200, None)];
        let table = comparison_table(&strata, &rocksdb);
        let row = table.lines().nth(1).expect("a row per benchmark");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[..4], ["fillseq", "150", "100", "1.50"], "{table}");
        assert_eq!(cells[cells.len() - 2..], ["1.00", "-"], "{table}");
    }
}
