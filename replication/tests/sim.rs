//! Deterministic simulation of whole replica sets: many seeds, each checked
//! for Raft's safety properties after every step and for a linearizable
//! history at the end (see `strata_replication::sim`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use strata_replication::sim::{self, SimConfig};

/// Runs `seeds` seeds and fails with every failing seed (each replays with `sim::run`).
fn run_seeds(config: &SimConfig, seeds: std::ops::Range<u64>) -> Vec<sim::Report> {
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for seed in seeds {
        match catch_unwind(AssertUnwindSafe(|| sim::run(seed, config))) {
            Ok(Ok(report)) => reports.push(report),
            Ok(Err(failure)) => failures.push(failure.to_string()),
            Err(_) => failures.push(format!("seed {seed}: panicked")),
        }
    }
    assert!(failures.is_empty(), "{} failing seeds:\n{}", failures.len(), failures.join("\n"));
    reports
}

fn sum(reports: &[sim::Report], f: impl Fn(&sim::Report) -> u64) -> u64 {
    reports.iter().map(f).sum()
}

#[test]
fn three_nodes() {
    let n: u64 = std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let reports = run_seeds(&SimConfig::new(3), 0..n);
    eprintln!(
        "3 nodes, {n} seeds: {} events, {} acked appends, {} reads, {} crashes, {} snapshots installed, {} transfers",
        sum(&reports, |r| r.events),
        sum(&reports, |r| r.acked_appends),
        sum(&reports, |r| r.reads),
        sum(&reports, |r| r.crashes),
        sum(&reports, |r| r.snapshots_installed),
        sum(&reports, |r| r.transfers)
    );
}

#[test]
fn five_nodes() {
    let n: u64 = std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let reports = run_seeds(&SimConfig::new(5), 1000..1000 + n);
    eprintln!(
        "5 nodes, {n} seeds: {} events, {} acked appends, {} reads, {} crashes",
        sum(&reports, |r| r.events),
        sum(&reports, |r| r.acked_appends),
        sum(&reports, |r| r.reads),
        sum(&reports, |r| r.crashes)
    );
}

/// The targeted schedule for leases (see `sim`'s module doc): leaders are
/// isolated while they hold a fresh lease, with clocks at the drift bound,
/// while clients read from them and write through the majority. Leases even
/// a little longer than `raft`'s module doc allows fail many of these seeds:
/// ignoring the drift (`lease_ticks = election_ticks - 1`) fails about 12 of
/// 100 seeds of three nodes and 55 of 100 of five; a lease as long as the
/// election timeout fails about 71 and 95. The random schedule catches
/// neither in 600 seeds.
fn lease_race(nodes: usize, seeds: std::ops::Range<u64>) {
    let n: u64 = std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let seeds = seeds.start..seeds.start + n.min(seeds.end - seeds.start);
    let reports = run_seeds(&SimConfig::lease_race(nodes), seeds.clone());
    let isolations = sum(&reports, |r| r.lease_isolations);
    eprintln!(
        "lease race, {nodes} nodes, {} seeds: {isolations} leaders isolated under lease, {} lease \
         reads of {} reads, {} acked appends",
        seeds.end - seeds.start,
        sum(&reports, |r| r.lease_reads),
        sum(&reports, |r| r.reads),
        sum(&reports, |r| r.acked_appends)
    );
    assert!(
        isolations >= 5 * reports.len() as u64,
        "the schedule must isolate leaders that hold a lease"
    );
}

#[test]
fn lease_race_three_nodes() {
    lease_race(3, 5000..5100);
}

#[test]
fn lease_race_five_nodes() {
    lease_race(5, 6000..6100);
}

/// Transactions mode (see `sim`'s module doc): clients run list-append
/// transactions through the replicated shard's leader path (read-index
/// snapshot, validation, proposal, deduplicated retries) under random
/// faults, and the history checker finds no G0, G1 or G-single.
fn transactions(nodes: usize, seeds: std::ops::Range<u64>) {
    let n: u64 = std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let seeds = seeds.start..seeds.start + n.min(seeds.end - seeds.start);
    let reports = run_seeds(&SimConfig::transactions(nodes), seeds.clone());
    let committed = sum(&reports, |r| r.txn_committed);
    eprintln!(
        "transactions, {nodes} nodes, {} seeds: {committed} committed, {} aborted, {} unknown, \
         {} crashes, {} snapshots installed",
        seeds.end - seeds.start,
        sum(&reports, |r| r.txn_aborted),
        sum(&reports, |r| r.txn_unknown),
        sum(&reports, |r| r.crashes),
        sum(&reports, |r| r.snapshots_installed)
    );
    assert!(committed >= 20 * reports.len() as u64, "too few transactions committed");
}

#[test]
fn transactions_three_nodes() {
    transactions(3, 5000..5150);
}

#[test]
fn transactions_five_nodes() {
    transactions(5, 6000..6060);
}
