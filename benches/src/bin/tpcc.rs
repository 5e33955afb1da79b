//! `tpcc`: TPC-C against embedded Strata (SQL), SQLite or PostgreSQL. See
//! `strata_benches::tpcc` for the schema, the transactions, what is counted
//! and the consistency checks.
//!
//! ```text
//! cargo run --release -p strata-benches --bin tpcc -- \
//!     --target strata-sql --warehouses 1 --terminals 10 --duration 60s
//! cargo run --release -p strata-benches --bin tpcc -- --target sqlite \
//!     --warehouses 1 --terminals 4 --duration 20s --items 10000 --json
//! ```
//!
//! Exits non-zero if a consistency condition (clause 3.3.2, 1 to 4) is
//! violated, after printing the report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use strata_benches::driver::parse_duration;
use strata_benches::sqldb::{Durability, Target};
use strata_benches::tpcc::{self, Scale, TpccConfig};

#[derive(Parser, Debug)]
#[command(about = "TPC-C against Strata, SQLite or PostgreSQL")]
struct Args {
    /// strata-sql, sqlite, or a postgres:// URL.
    #[arg(long)]
    target: Target,
    #[arg(long, default_value_t = 1)]
    warehouses: u64,
    /// Terminal threads; default 10 per warehouse.
    #[arg(long)]
    terminals: Option<usize>,
    /// Length of the measured phase.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Transactions run but not recorded before the measured phase.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Rows of ITEM (and STOCK per warehouse); below 100000 the report says
    /// the database is scaled down.
    #[arg(long, default_value_t = Scale::ITEMS)]
    items: u64,
    /// Customers (and initial orders) per district; below 3000 is scaled down.
    #[arg(long, default_value_t = Scale::CUSTOMERS)]
    customers: u64,
    /// Keying and think times of the spec (clause 5.2.5); off by default.
    #[arg(long)]
    think_times: bool,
    /// Stop after this many transactions even before --duration.
    #[arg(long)]
    max_transactions: Option<u64>,
    #[arg(long, value_enum, default_value_t = Durability::Sync)]
    durability: Durability,
    /// Directory for embedded targets' files (erased first); default: a temporary one.
    #[arg(long)]
    db: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 0x7bcc)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = TpccConfig {
        target: args.target,
        scale: Scale { warehouses: args.warehouses, items: args.items, customers: args.customers },
        terminals: args.terminals.unwrap_or(10 * args.warehouses as usize),
        duration: args.duration,
        warmup: args.warmup,
        max_transactions: args.max_transactions,
        think_times: args.think_times,
        durability: args.durability,
        dir: args.db,
        seed: args.seed,
    };
    let report = tpcc::run(&cfg)?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if !report.consistent() {
        bail!("TPC-C consistency violated: {}", report.violations.join("; "));
    }
    Ok(())
}
