//! Replays one simulator seed with a trace: `cargo run -p strata-replication
//! --example replay -- SEED [NODES]`.

use strata_replication::sim::{self, SimConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).expect("usage: replay SEED [NODES]");
    let nodes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut config = SimConfig::new(nodes);
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
