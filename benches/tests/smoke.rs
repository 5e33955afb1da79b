//! Smoke tests of the YCSB and TPC-C drivers against embedded Strata: tiny
//! runs that assert on correctness (every read finds its record, counts add
//! up, TPC-C's consistency conditions hold), never on speed.

use std::time::Duration;

use strata_benches::sqldb::{Durability, SqlBackend, Target};
use strata_benches::tpcc::txns::TxnType;
use strata_benches::tpcc::{self, Scale, TpccConfig};
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

fn tiny_tpcc(target: Target) -> TpccConfig {
    let mut cfg = TpccConfig::new(target, 1);
    cfg.scale = Scale { warehouses: 1, items: 1_000, customers: 60 };
    cfg.terminals = 3;
    cfg.duration = Duration::from_secs(20);
    cfg.max_transactions = Some(300);
    cfg.durability = Durability::Buffered;
    cfg
}

#[test]
fn tpcc_on_embedded_strata_keeps_the_consistency_conditions() {
    let report = tpcc::run(&tiny_tpcc(Target::StrataSql)).unwrap();
    assert!(report.consistent(), "{}", report.text());
    assert_eq!(report.total(), 300, "{}", report.text());
    for t in TxnType::ALL {
        assert_eq!(report.txn(t).failed, 0, "{}: nothing gave up", t.name());
    }
    assert!(report.txn(TxnType::NewOrder).count > 90, "{}", report.text());
    assert!(report.txn(TxnType::Payment).count > 90, "{}", report.text());
    assert!(report.tpmc() > 0.0);
    let json = report.json();
    for key in ["\"target\"", "\"warehouses\"", "\"terminals\"", "\"tpmc\"", "\"p99_ms\""] {
        assert!(json.contains(key), "{key} in {json}");
    }
    assert!(json.contains("\"consistency\":\"ok\""), "{json}");
    assert!(json.contains("\"scaled_down\":true"), "{json}");
}

#[test]
fn tpcc_consistency_check_catches_broken_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_tpcc(Target::StrataSql);
    cfg.max_transactions = Some(50);
    cfg.dir = Some(dir.path().to_path_buf());
    assert!(tpcc::run(&cfg).unwrap().consistent());

    let backend =
        SqlBackend::open(&Target::StrataSql, &dir.path().join("tpcc-strata"), Durability::Buffered)
            .unwrap();
    let mut conn = backend.connect().unwrap();
    assert_eq!(tpcc::check::consistency(&mut *conn).unwrap(), Vec::<String>::new());
    // A lost Payment to the district, a skipped order number, a lost order line.
    conn.batch("UPDATE district SET d_ytd = d_ytd + 1 WHERE d_w_id = 1 AND d_id = 1").unwrap();
    conn.batch("UPDATE district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = 1 AND d_id = 2")
        .unwrap();
    conn.batch("DELETE FROM new_order WHERE no_w_id = 1 AND no_d_id = 3 AND no_o_id = 50").unwrap();
    conn.batch("DELETE FROM order_line WHERE ol_w_id = 1 AND ol_d_id = 4 AND ol_o_id = 1 AND ol_number = 1")
        .unwrap();
    let violations = tpcc::check::consistency(&mut *conn).unwrap();
    for condition in ["condition 1", "condition 2", "condition 3", "condition 4"] {
        assert!(violations.iter().any(|v| v.starts_with(condition)), "{condition}: {violations:?}");
    }
}
