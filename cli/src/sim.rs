//! `strata sim`: runs seeds of the deterministic replica-set simulator
//! (`strata_replication::sim`) and prints the failing ones, each with the
//! command that replays it exactly.
//!
//! Each seed runs in every selected mode: `random` (random faults, appends
//! and linearizable reads), `lease-race` (leaders isolated under a fresh
//! lease with clocks at the drift bound) and `transactions` (list-append
//! transactions through the replicated shard, checked for snapshot
//! isolation). Exit status 1 if any seed fails.

use std::panic::{AssertUnwindSafe, catch_unwind};

use strata_replication::sim::{self, SimConfig};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every mode below.
    All,
    Random,
    LeaseRace,
    Transactions,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::Random => "random",
            Mode::LeaseRace => "lease-race",
            Mode::Transactions => "transactions",
        }
    }

    fn config(self, nodes: usize) -> SimConfig {
        match self {
            Mode::LeaseRace => SimConfig::lease_race(nodes),
            Mode::Transactions => SimConfig::transactions(nodes),
            Mode::All | Mode::Random => SimConfig::new(nodes),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// How many seeds to run (from --seed on; 100 unless --seed is given alone).
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed; alone (without --seeds), runs just this seed, as a replay.
    #[arg(long)]
    seed: Option<u64>,
    /// Replica-set size: 3 or 5.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Which schedules to run each seed under.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Print the event trace of failing seeds (and of a single replayed seed).
    #[arg(long)]
    trace: bool,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    if args.nodes != 3 && args.nodes != 5 {
        anyhow::bail!("--nodes must be 3 or 5, not {}", args.nodes);
    }
    let first = args.seed.unwrap_or(0);
    let count = match (args.seed, args.seeds) {
        (_, Some(n)) => n,
        (Some(_), None) => 1,
        (None, None) => 100,
    };
    let modes = match args.mode {
        Mode::All => vec![Mode::Random, Mode::LeaseRace, Mode::Transactions],
        one => vec![one],
    };
    let mut failing = 0u64;
    let mut runs = 0u64;
    let (mut events, mut committed, mut txns) = (0u64, 0u64, 0u64);
    for seed in first..first.saturating_add(count) {
        for &mode in &modes {
            let mut config = mode.config(args.nodes);
            config.trace = args.trace;
            runs += 1;
            let replay =
                format!("strata sim --seed {seed} --nodes {} --mode {}", args.nodes, mode.name());
            match catch_unwind(AssertUnwindSafe(|| sim::run(seed, &config))) {
                Ok(Ok(report)) => {
                    events += report.events;
                    committed += report.committed;
                    txns += report.txn_committed;
                    if count == 1 {
                        println!(
                            "seed {seed} {}: ok: {} events, {} entries committed, {} appends \
                             acknowledged, {} reads, {} transactions committed, {} aborted, {} \
                             unknown, {} crashes",
                            mode.name(),
                            report.events,
                            report.committed,
                            report.acked_appends,
                            report.reads,
                            report.txn_committed,
                            report.txn_aborted,
                            report.txn_unknown,
                            report.crashes
                        );
                        if args.trace {
                            report.trace.iter().for_each(|line| println!("{line}"));
                        }
                    }
                }
                Ok(Err(failure)) => {
                    failing += 1;
                    println!("FAIL {failure} (mode {}); replay: {replay}", mode.name());
                    if args.trace {
                        failure.trace.iter().for_each(|line| println!("{line}"));
                    }
                }
                Err(_) => {
                    failing += 1;
                    println!("FAIL seed {seed} panicked (mode {}); replay: {replay}", mode.name());
                }
            }
        }
    }
    let names: Vec<&str> = modes.iter().map(|m| m.name()).collect();
    println!(
        "sim: {count} seeds from {first} of {} nodes ({}): {runs} runs, {events} events, \
         {committed} entries committed, {txns} transactions committed; {failing} failing",
        args.nodes,
        names.join(", ")
    );
    if failing > 0 {
        std::process::exit(1);
    }
    Ok(())
}
