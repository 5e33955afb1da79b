//! TPC-C (Standard Specification 5.11) against embedded Strata, PostgreSQL
//! and SQLite, with the same SQL text for all three.
//!
//! A run: create the nine tables ([`schema`]), load them by the population
//! rules (items first, then warehouses in parallel), start `terminals`
//! threads, each bound to a home warehouse (`t % W + 1`) and a Stock-Level
//! district, and let each run transactions back to back, chosen by the
//! standard mix (New-Order 45%, Payment 43%, Order-Status, Delivery and
//! Stock-Level 4% each; [`txns`]), until the warm-up and the measured
//! duration are over. Then check consistency conditions 1 to 4 ([`check`]).
//!
//! - Keying and think times are off unless [`TpccConfig::think_times`] is set
//!   (then each transaction waits its keying time before and a negative
//!   exponential think time after, capped at 10 times the mean, clause
//!   5.2.5.4); the report says which.
//! - Serialization failures are retried with the same inputs and counted per
//!   type (`aborts`: failed attempts, `retries`: attempts run again);
//!   latency covers all attempts.
//! - tpmC counts the New-Orders completed in the measured phase, the 1% rolled
//!   back by design included (clause 5.4.2), per minute.
//! - [`Scale`] can shrink ITEM (and the customers and orders per district)
//!   for quick runs; the report then says the database is scaled down.

pub mod check;
pub mod random;
pub mod schema;
pub mod txns;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::driver::{self, json_string, millis, with_retries};
use crate::histogram::Histogram;
use crate::sqldb::{Durability, SqlBackend, SqlConn, Target};
use crate::workload::Rng;
use random::CConstants;
use txns::{Outcome, Terminal, TxnType};

/// The database size: warehouses, and the per-warehouse cardinalities that
/// quick runs may shrink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub warehouses: u64,
    /// Rows of ITEM, and of STOCK per warehouse (spec: 100,000).
    pub items: u64,
    /// Customers per district, and initial orders per district (spec: 3,000).
    pub customers: u64,
}

impl Scale {
    pub const ITEMS: u64 = 100_000;
    pub const CUSTOMERS: u64 = 3_000;

    pub fn standard(warehouses: u64) -> Scale {
        Scale { warehouses, items: Scale::ITEMS, customers: Scale::CUSTOMERS }
    }

    pub fn is_standard(&self) -> bool {
        self.items == Scale::ITEMS && self.customers == Scale::CUSTOMERS
    }

    /// The first undelivered order of a district: the last 30% of the
    /// initial orders are undelivered (2,101 of 3,000 in the spec).
    pub fn first_new_order(&self) -> u64 {
        self.customers - self.customers * 3 / 10 + 1
    }

    /// Last names in use: 1,000, or fewer when there are fewer customers.
    pub fn last_names(&self) -> u64 {
        self.customers.min(1000)
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.warehouses > 0, "at least one warehouse");
        ensure!(self.items >= 100, "at least 100 items (New-Order draws 5 to 15 of them)");
        ensure!(self.customers >= 10, "at least 10 customers per district");
        Ok(())
    }
}

/// Parameters of one TPC-C run.
#[derive(Clone, Debug)]
pub struct TpccConfig {
    pub target: Target,
    pub scale: Scale,
    pub terminals: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Stop after this many transactions (over all terminals) even before
    /// `duration`; for tests.
    pub max_transactions: Option<u64>,
    pub think_times: bool,
    pub durability: Durability,
    /// Where embedded targets keep their files; a temporary directory if `None`.
    pub dir: Option<PathBuf>,
    pub seed: u64,
}

impl TpccConfig {
    pub fn new(target: Target, warehouses: u64) -> TpccConfig {
        TpccConfig {
            target,
            scale: Scale::standard(warehouses),
            terminals: 10 * warehouses as usize,
            duration: Duration::from_secs(60),
            warmup: Duration::ZERO,
            max_transactions: None,
            think_times: false,
            durability: Durability::Sync,
            dir: None,
            seed: 0x7bcc,
        }
    }
}

/// Counts and latencies of one transaction type.
#[derive(Clone, Debug)]
pub struct TxnReport {
    pub txn: TxnType,
    /// Completed: committed, or (New-Order) rolled back by design.
    pub count: u64,
    pub rolled_back: u64,
    /// Given up after [`driver::MAX_ATTEMPTS`] serialization failures.
    pub failed: u64,
    pub aborts: u64,
    pub retries: u64,
    pub latency: Histogram,
}

impl TxnReport {
    fn new(txn: TxnType) -> TxnReport {
        TxnReport {
            txn,
            count: 0,
            rolled_back: 0,
            failed: 0,
            aborts: 0,
            retries: 0,
            latency: Histogram::new(),
        }
    }

    fn merge(&mut self, o: &TxnReport) {
        self.count += o.count;
        self.rolled_back += o.rolled_back;
        self.failed += o.failed;
        self.aborts += o.aborts;
        self.retries += o.retries;
        self.latency.merge(&o.latency);
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct TpccReport {
    pub target: String,
    pub scale: Scale,
    pub terminals: usize,
    pub think_times: bool,
    pub durability: Durability,
    pub durability_detail: &'static str,
    pub load_elapsed: Duration,
    pub warmup: Duration,
    pub elapsed: Duration,
    /// In [`TxnType::ALL`] order.
    pub txns: Vec<TxnReport>,
    /// Violated consistency conditions; empty if all hold.
    pub violations: Vec<String>,
}

impl TpccReport {
    pub fn txn(&self, t: TxnType) -> &TxnReport {
        &self.txns[t.index()]
    }

    /// New-Orders completed per minute.
    pub fn tpmc(&self) -> f64 {
        self.txn(TxnType::NewOrder).count as f64 * 60.0 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn total(&self) -> u64 {
        self.txns.iter().map(|t| t.count).sum()
    }

    pub fn consistent(&self) -> bool {
        self.violations.is_empty()
    }

    fn scale_note(&self) -> String {
        if self.scale.is_standard() {
            "full scale".into()
        } else {
            format!(
                "SCALED DOWN: {} items, {} customers per district (spec: {}, {})",
                self.scale.items,
                self.scale.customers,
                Scale::ITEMS,
                Scale::CUSTOMERS
            )
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "tpcc on {}: {} warehouses, {} terminals, {}; keying/think times {}; durability {} ({})\n",
            self.target,
            self.scale.warehouses,
            self.terminals,
            self.scale_note(),
            if self.think_times { "ON" } else { "off" },
            self.durability.name(),
            self.durability_detail
        );
        out += &format!(
            "load {:.1} s; warm-up {:.1} s; measured {:.1} s\n",
            self.load_elapsed.as_secs_f64(),
            self.warmup.as_secs_f64(),
            self.elapsed.as_secs_f64()
        );
        out += &format!(
            "tpmC {:.0} ({} transactions, {:.0} per minute in all)\n",
            self.tpmc(),
            self.total(),
            self.total() as f64 * 60.0 / self.elapsed.as_secs_f64().max(1e-9)
        );
        out += &format!(
            "{:<13} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7}\n",
            "transaction",
            "count",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "aborts",
            "retries",
            "rb/fail"
        );
        for t in &self.txns {
            let p = |q| millis(t.latency.percentile(q));
            out += &format!(
                "{:<13} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>8} {:>3}/{:<3}\n",
                t.txn.name(),
                t.count,
                p(50.0),
                p(90.0),
                p(99.0),
                millis(t.latency.max()),
                t.aborts,
                t.retries,
                t.rolled_back,
                t.failed
            );
        }
        out += &match self.violations.as_slice() {
            [] => "consistency conditions 1-4: ok\n".to_string(),
            v => format!("CONSISTENCY VIOLATED:\n  {}\n", v.join("\n  ")),
        };
        out
    }

    pub fn json(&self) -> String {
        let txns: Vec<String> = self
            .txns
            .iter()
            .map(|t| {
                let p = |q| millis(t.latency.percentile(q));
                format!(
                    "\"{}\":{{\"count\":{},\"rolled_back\":{},\"failed\":{},\"aborts\":{},\
                     \"retries\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
                    t.txn.name(),
                    t.count,
                    t.rolled_back,
                    t.failed,
                    t.aborts,
                    t.retries,
                    p(50.0),
                    p(90.0),
                    p(99.0),
                    millis(t.latency.max())
                )
            })
            .collect();
        let consistency = if self.violations.is_empty() {
            "\"ok\"".to_string()
        } else {
            format!(
                "[{}]",
                self.violations.iter().map(|v| json_string(v)).collect::<Vec<_>>().join(",")
            )
        };
        let fields = [
            format!("\"target\":{}", json_string(&self.target)),
            format!("\"warehouses\":{}", self.scale.warehouses),
            format!("\"terminals\":{}", self.terminals),
            format!("\"items\":{}", self.scale.items),
            format!("\"customers_per_district\":{}", self.scale.customers),
            format!("\"scaled_down\":{}", !self.scale.is_standard()),
            format!("\"think_times\":{}", self.think_times),
            format!("\"durability\":{}", json_string(self.durability_detail)),
            format!("\"load_s\":{:.3}", self.load_elapsed.as_secs_f64()),
            format!("\"warmup_s\":{:.3}", self.warmup.as_secs_f64()),
            format!("\"elapsed_s\":{:.3}", self.elapsed.as_secs_f64()),
            format!("\"tpmc\":{:.1}", self.tpmc()),
            format!("\"transactions\":{}", self.total()),
            format!("\"consistency\":{consistency}"),
            format!("\"txns\":{{{}}}", txns.join(",")),
        ];
        format!("{{{}}}", fields.join(","))
    }
}

/// What a terminal measured, and when its last transaction ended.
type TerminalOutcome = (Vec<TxnReport>, Instant);

/// Loads, runs and checks TPC-C; see the module doc. The report carries the
/// consistency verdict: callers must fail on violations.
pub fn run(cfg: &TpccConfig) -> Result<TpccReport> {
    cfg.scale.validate()?;
    ensure!(cfg.terminals > 0, "--terminals must be positive");
    if cfg.target == Target::Strata {
        bail!("TPC-C needs SQL: use --target strata-sql for embedded Strata");
    }
    let temp = match &cfg.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("tpcc-").tempdir()?),
    };
    let dir: &Path = cfg.dir.as_deref().unwrap_or_else(|| temp.as_ref().expect("made").path());
    let sub = dir.join(if cfg.target == Target::StrataSql { "tpcc-strata" } else { "tpcc-sqlite" });
    if cfg.dir.is_some() && sub.exists() {
        std::fs::remove_dir_all(&sub).with_context(|| format!("erasing {}", sub.display()))?;
    }
    let backend = SqlBackend::open(&cfg.target, &sub, cfg.durability)?;

    let mut rng = Rng::new(cfg.seed);
    let c_load = CConstants::for_load(&mut rng);
    let c_run = CConstants::for_run(&c_load, &mut rng);
    let load_elapsed = load(cfg, &backend, &c_load)?;

    let start = OnceLock::new();
    let barrier = Barrier::new(cfg.terminals + 1);
    let started_txns = AtomicU64::new(0);
    let results: Vec<std::thread::Result<Result<TerminalOutcome>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.terminals)
            .map(|t| {
                let (start, barrier, backend, started_txns) =
                    (&start, &barrier, &backend, &started_txns);
                s.spawn(move || {
                    let conn = backend.connect();
                    barrier.wait();
                    let start: Instant = *start.get().expect("set before the barrier opens");
                    let w = cfg.scale.warehouses;
                    let terminal = Terminal {
                        w_id: t as u64 % w + 1,
                        d_id: (t as u64 / w) % schema::DISTRICTS + 1,
                        scale: cfg.scale,
                        c: c_run,
                        rng: Rng::new(driver::thread_seed(cfg.seed, t)),
                    };
                    run_terminal(cfg, terminal, conn?, start, started_txns)
                })
            })
            .collect();
        start.set(Instant::now()).expect("set once");
        barrier.wait();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let measured_from = *start.get().expect("set") + cfg.warmup;
    let mut txns: Vec<TxnReport> = TxnType::ALL.iter().map(|&t| TxnReport::new(t)).collect();
    let mut end = measured_from;
    for r in results {
        let (theirs, their_end) = r.map_err(|_| anyhow::anyhow!("a terminal panicked"))??;
        for (mine, theirs) in txns.iter_mut().zip(&theirs) {
            mine.merge(theirs);
        }
        end = end.max(their_end);
    }

    let mut conn = backend.connect()?;
    let violations = check::consistency(&mut *conn).context("checking consistency")?;
    Ok(TpccReport {
        target: cfg.target.name(),
        scale: cfg.scale,
        terminals: cfg.terminals,
        think_times: cfg.think_times,
        durability: cfg.durability,
        durability_detail: cfg.durability.describe(&cfg.target),
        load_elapsed,
        warmup: cfg.warmup,
        elapsed: end.saturating_duration_since(measured_from),
        txns,
        violations,
    })
}

/// Creates the schema and loads it: ITEM from one thread, then warehouses
/// spread over up to `terminals` threads.
fn load(cfg: &TpccConfig, backend: &SqlBackend, c_load: &CConstants) -> Result<Duration> {
    let started = Instant::now();
    let mut conn = backend.connect()?;
    schema::create(&mut *conn, matches!(cfg.target, Target::Postgres(_)))?;
    let mut rng = Rng::new(cfg.seed ^ 0x17e5);
    schema::load_items(&mut *conn, &cfg.scale, &mut rng).context("loading ITEM")?;
    let loaders = cfg.terminals.min(cfg.scale.warehouses as usize);
    let next = AtomicU64::new(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..loaders)
            .map(|_| {
                let next = &next;
                s.spawn(move || -> Result<()> {
                    let mut conn = backend.connect()?;
                    loop {
                        let w = next.fetch_add(1, Ordering::Relaxed);
                        if w > cfg.scale.warehouses {
                            return Ok(());
                        }
                        let mut rng = Rng::new(driver::thread_seed(cfg.seed ^ 0x10ad, w as usize));
                        schema::load_warehouse(&mut *conn, &cfg.scale, w, c_load, &mut rng)
                            .with_context(|| format!("loading warehouse {w}"))?;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a loader panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(started.elapsed())
}

/// A negative exponential think time with mean `mean_secs`, capped at 10
/// times the mean (clause 5.2.5.4).
fn think_time(rng: &mut Rng, mean_secs: f64) -> Duration {
    let u = 1.0 - rng.unit_f64(); // in (0, 1]
    Duration::from_secs_f64((-u.ln() * mean_secs).min(10.0 * mean_secs))
}

fn run_terminal(
    cfg: &TpccConfig,
    mut terminal: Terminal,
    mut conn: Box<dyn SqlConn>,
    start: Instant,
    started_txns: &AtomicU64,
) -> Result<TerminalOutcome> {
    let measure_from = start + cfg.warmup;
    let deadline = measure_from + cfg.duration;
    let mut txns: Vec<TxnReport> = TxnType::ALL.iter().map(|&t| TxnReport::new(t)).collect();
    let mut retry_rng = Rng::new(terminal.rng.next_u64());
    let mut end = Instant::now();
    while Instant::now() < deadline {
        if let Some(max) = cfg.max_transactions
            && started_txns.fetch_add(1, Ordering::Relaxed) >= max
        {
            break;
        }
        let t = TxnType::choose(&mut terminal.rng);
        let input = terminal.input(t);
        let (keying, think_mean) = t.keying_and_think_secs();
        if cfg.think_times {
            std::thread::sleep(Duration::from_secs_f64(keying));
        }
        let began = Instant::now();
        let done = with_retries(&mut retry_rng, || txns::execute(&mut *conn, &terminal, &input));
        end = Instant::now();
        if began >= measure_from {
            let r = &mut txns[t.index()];
            r.aborts += u64::from(done.aborts);
            match &done.result {
                Ok(outcome) => {
                    r.retries += u64::from(done.aborts);
                    r.count += 1;
                    r.rolled_back += u64::from(*outcome == Outcome::RolledBack);
                    r.latency.record_duration(end - began);
                }
                Err(e) if e.retryable => {
                    r.retries += u64::from(done.aborts.saturating_sub(1));
                    r.failed += 1;
                }
                Err(_) => {}
            }
        }
        if let Err(e) = done.result
            && !e.retryable
        {
            bail!("{} failed: {e}", t.name());
        }
        if cfg.think_times {
            std::thread::sleep(think_time(&mut terminal.rng, think_mean));
        }
    }
    Ok((txns, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_cardinalities_keep_the_spec_ratios() {
        let s = Scale::standard(1);
        assert_eq!(s.first_new_order(), 2101, "900 of 3,000 orders undelivered");
        assert!(s.is_standard());
        let small = Scale { warehouses: 1, items: 1000, customers: 100 };
        assert_eq!(small.first_new_order(), 71);
        assert_eq!(small.last_names(), 100);
        assert!(!small.is_standard());
    }

    #[test]
    fn think_times_are_capped_at_ten_means() {
        let mut rng = Rng::new(1);
        let draws: Vec<Duration> = (0..10_000).map(|_| think_time(&mut rng, 1.0)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(10)));
        let mean = draws.iter().map(Duration::as_secs_f64).sum::<f64>() / 10_000.0;
        assert!((0.95..1.05).contains(&mean), "{mean}");
    }
}
