//! `ycsb`: the YCSB core workloads A to F against embedded Strata (key-value
//! or SQL), SQLite or PostgreSQL. See `strata_benches::ycsb` for what each
//! workload, distribution and counter means.
//!
//! ```text
//! cargo run --release -p strata-benches --bin ycsb -- --target strata --workload a \
//!     --records 100000 --duration 30s --threads 8 --warmup 5s
//! cargo run --release -p strata-benches --bin ycsb -- --target sqlite --workload e --json
//! cargo run --release -p strata-benches --bin ycsb -- \
//!     --target postgres://bench@127.0.0.1:5433/bench --workload b,c
//! ```
//!
//! Each workload given to `--workload` is one run on a fresh table: load,
//! warm-up, measured phase, record count check. Text by default, one JSON
//! object per run with `--json`. Exits non-zero if a check fails.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use strata_benches::driver::parse_duration;
use strata_benches::sqldb::{Durability, Target};
use strata_benches::ycsb::{self, Distribution, YcsbConfig};

#[derive(Parser, Debug)]
#[command(about = "YCSB core workloads against Strata, SQLite or PostgreSQL")]
struct Args {
    /// strata (key-value), strata-sql, sqlite, or a postgres:// URL.
    #[arg(long)]
    target: Target,
    /// Comma-separated workload letters, a to f; one run each.
    #[arg(long, value_delimiter = ',', default_value = "a")]
    workload: Vec<char>,
    /// Request distribution instead of the workload's own (D: latest, others: zipfian).
    #[arg(long, value_enum)]
    distribution: Option<Distribution>,
    /// Records loaded before the run.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Measured operations over all threads; without it the run lasts --duration.
    #[arg(long)]
    operations: Option<u64>,
    /// Length of the measured phase when --operations is not given.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 10)]
    fields: usize,
    #[arg(long, default_value_t = 100)]
    field_bytes: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Operations run but not recorded before the measured phase.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Scan lengths are uniform in 1..=max-scan (workload E).
    #[arg(long, default_value_t = 100)]
    max_scan: u64,
    /// Records per loading transaction.
    #[arg(long, default_value_t = 100)]
    load_batch: usize,
    /// sync: a commit returns after its log is fsynced (every target); buffered: before.
    #[arg(long, value_enum, default_value_t = Durability::Sync)]
    durability: Durability,
    /// Directory for embedded targets' files (erased per run); default: a temporary one.
    #[arg(long)]
    db: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 0x1cdb)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    for &letter in &args.workload {
        let mut workload = ycsb::workload(letter)?;
        if let Some(d) = args.distribution {
            workload.distribution = d;
        }
        let cfg = YcsbConfig {
            target: args.target.clone(),
            workload,
            records: args.records,
            operations: args.operations,
            duration: args.duration,
            fields: args.fields,
            field_bytes: args.field_bytes,
            threads: args.threads,
            warmup: args.warmup,
            max_scan: args.max_scan,
            load_batch: args.load_batch,
            durability: args.durability,
            dir: args.db.clone(),
            seed: args.seed,
        };
        let report = ycsb::run(&cfg)?;
        if args.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.text());
        }
    }
    Ok(())
}
