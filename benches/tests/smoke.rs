//! Smoke tests of the YCSB and TPC-C drivers against embedded Strata: tiny
//! runs that assert on correctness (every read finds its record, counts add
//! up, TPC-C's consistency conditions hold), never on speed.

use std::time::Duration;

use strata_benches::sqldb::{Durability, Target};
use strata_benches::ycsb::{self, Op, YcsbConfig};

fn tiny_ycsb(target: Target, letter: char) -> YcsbConfig {
    let mut cfg = YcsbConfig::new(target, ycsb::workload(letter).unwrap());
    cfg.records = 300;
    cfg.operations = Some(400);
    cfg.threads = 2;
    cfg.max_scan = 20;
    cfg.durability = Durability::Buffered;
    cfg
}

#[test]
fn ycsb_workloads_find_every_record_on_embedded_strata() {
    for target in [Target::Strata, Target::StrataSql] {
        for letter in ['a', 'd', 'e', 'f'] {
            let report = ycsb::run(&tiny_ycsb(target.clone(), letter)).unwrap();
            let what = format!("{} workload {letter}", target.name());
            assert_eq!(report.total_ops(), 400, "{what}: every operation is counted");
            assert_eq!(report.not_found(), 0, "{what}: every read finds its record");
            assert!(report.ops.iter().all(|o| o.failed == 0), "{what}: nothing gave up");
            let inserts = report.op(Op::Insert).map_or(0, |o| o.count);
            assert_eq!(report.records_after, 300 + inserts, "{what}: inserts are all there");
            let mix = ycsb::workload(letter).unwrap().mix;
            for o in &report.ops {
                let share = o.count as f64 / 400.0;
                let expected = mix.proportion(o.op);
                assert!((share - expected).abs() < 0.1, "{what}: {} share {share}", o.op.name());
                assert_eq!(o.latency.count(), o.count, "{what}: a latency per operation");
            }
            let json = report.json();
            for key in ["\"target\"", "\"ops_per_sec\"", "\"aborts\"", "\"retries\"", "\"p99_us\""]
            {
                assert!(json.contains(key), "{what}: {key} in {json}");
            }
        }
    }
}

#[test]
fn ycsb_runs_for_a_duration_with_a_warm_up() {
    let mut cfg = tiny_ycsb(Target::Strata, 'b');
    cfg.operations = None;
    cfg.duration = Duration::from_millis(300);
    cfg.warmup = Duration::from_millis(100);
    let report = ycsb::run(&cfg).unwrap();
    assert!(report.total_ops() > 0);
    assert!(report.elapsed >= Duration::from_millis(300), "{:?}", report.elapsed);
    assert_eq!(report.not_found(), 0);
}
