//! Replays one simulator seed with a trace: `cargo run -p strata-replication
//! --example replay -- SEED [NODES] [lease-race]` (the last argument picks the
//! targeted lease schedule, `SimConfig::lease_race`).

use strata_replication::sim::{self, SimConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 =
        args.next().and_then(|s| s.parse().ok()).expect("usage: replay SEED [NODES] [lease-race]");
    let nodes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut config = match args.next().as_deref() {
        Some("lease-race") => SimConfig::lease_race(nodes),
        _ => SimConfig::new(nodes),
    };
    config.trace = true;
    match sim::run(seed, &config) {
        Ok(report) => {
            for line in &report.trace {
                println!("{line}");
            }
            println!("ok: {:?}", sim::Report { trace: Vec::new(), ..report });
        }
        Err(failure) => {
            for line in &failure.trace {
                println!("{line}");
            }
            println!("FAILED: {failure}");
            std::process::exit(1);
        }
    }
}
