//! `bench-report`: the comparison section of `BENCHMARKS.md` and its charts,
//! made from the `--json` lines of the `ycsb` and `tpcc` drivers.
//!
//! `benches/compare.sh` appends one JSON object per run to `results.jsonl`;
//! [`Results::parse`] reads them back (YCSB runs have a `workload`, TPC-C
//! runs a `tpmc`), [`section`] renders the Markdown tables, with the ratios
//! the goals are stated in (Strata's server / PostgreSQL, embedded Strata /
//! SQLite) and a table of which goals were met, and [`splice`] puts that
//! text between the [`BEGIN`] and [`END`] marker comments of the document,
//! leaving everything outside them alone. [`charts`] draws the PNG charts
//! with `plotters`, its text in a TTF font read from a file.
//!
//! Targets are named as the tables name them ([`Label`]): a `postgres://`
//! URL whose user is `strata` is Strata's server (that is how `compare.sh`
//! connects to it), any other is PostgreSQL. When one target ran a workload
//! more than once, the last run counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;

/// The marker comments around the generated section.
pub const BEGIN: &str = "<!-- compare:begin -->";
pub const END: &str = "<!-- compare:end -->";

/// A target as the tables name it, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Strata,
    StrataSql,
    StrataServer,
    Sqlite,
    Postgresql,
}

impl Label {
    pub const ALL: [Label; 5] =
        [Label::Strata, Label::StrataSql, Label::StrataServer, Label::Sqlite, Label::Postgresql];

    pub fn name(self) -> &'static str {
        match self {
            Label::Strata => "strata",
            Label::StrataSql => "strata-sql",
            Label::StrataServer => "strata-server",
            Label::Sqlite => "sqlite",
            Label::Postgresql => "postgresql",
        }
    }

    /// The label of a driver's `target` field.
    pub fn of_target(target: &str) -> Result<Label> {
        Ok(match target {
            "strata" => Label::Strata,
            "strata-sql" => Label::StrataSql,
            "sqlite" => Label::Sqlite,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let rest = url.split_once("://").map_or("", |(_, rest)| rest);
                let user = rest.split_once('@').map(|(u, _)| u.split(':').next().unwrap_or(""));
                if user == Some("strata") { Label::StrataServer } else { Label::Postgresql }
            }
            other => bail!("unknown target `{other}`"),
        })
    }

    /// The chart colour.
    fn rgb(self) -> (u8, u8, u8) {
        match self {
            Label::Strata => (31, 119, 180),
            Label::StrataSql => (23, 190, 207),
            Label::StrataServer => (44, 160, 44),
            Label::Sqlite => (148, 103, 189),
            Label::Postgresql => (214, 39, 40),
        }
    }
}

/// Median and 99th percentile of one operation or transaction type.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    pub name: String,
    pub count: u64,
    pub aborts: u64,
    pub p50: f64,
    pub p99: f64,
}

/// One YCSB run (latencies in microseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct YcsbRun {
    pub label: Label,
    pub workload: char,
    pub distribution: String,
    pub threads: u64,
    pub records: u64,
    pub fields: u64,
    pub field_bytes: u64,
    pub durability: String,
    pub warmup_s: f64,
    pub elapsed_s: f64,
    pub ops_per_sec: f64,
    pub aborts: u64,
    /// In the driver's order of operation types.
    pub ops: Vec<Latency>,
}

/// One TPC-C run (latencies in milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct TpccRun {
    pub label: Label,
    pub warehouses: u64,
    pub terminals: u64,
    pub items: u64,
    pub customers: u64,
    pub scaled_down: bool,
    pub warmup_s: f64,
    pub elapsed_s: f64,
    pub tpmc: f64,
    pub consistent: bool,
    /// New-Order, Payment, Order-Status, Delivery, Stock-Level.
    pub txns: Vec<Latency>,
}

/// All runs of a comparison, the last run per target and workload kept.
#[derive(Clone, Debug, Default)]
pub struct Results {
    pub ycsb: BTreeMap<(char, Label), YcsbRun>,
    pub tpcc: BTreeMap<Label, TpccRun>,
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| anyhow!("no `{key}`"))
}

fn num(v: &Value, key: &str) -> Result<f64> {
    field(v, key)?.as_f64().ok_or_else(|| anyhow!("`{key}` is not a number"))
}

fn count(v: &Value, key: &str) -> Result<u64> {
    field(v, key)?.as_u64().ok_or_else(|| anyhow!("`{key}` is not a non-negative integer"))
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    field(v, key)?.as_str().ok_or_else(|| anyhow!("`{key}` is not a string"))
}

/// The `"ops"` or `"txns"` object: per type, in the order written.
fn latencies(v: &Value, key: &str, unit: &str) -> Result<Vec<Latency>> {
    let map = field(v, key)?.as_object().ok_or_else(|| anyhow!("`{key}` is not an object"))?;
    let mut out = map
        .iter()
        .map(|(name, o)| {
            Ok::<_, anyhow::Error>(Latency {
                name: name.clone(),
                count: count(o, "count")?,
                aborts: o.get("aborts").and_then(Value::as_u64).unwrap_or(0),
                p50: num(o, &format!("p50_{unit}"))?,
                p99: num(o, &format!("p99_{unit}"))?,
            })
            .with_context(|| format!("in `{key}.{name}`"))
        })
        .collect::<Result<Vec<Latency>>>()?;
    out.sort_by_key(|l| type_rank(&l.name));
    Ok(out)
}

impl YcsbRun {
    fn from_json(v: &Value) -> Result<YcsbRun> {
        let workload = text(v, "workload")?;
        let mut letters = workload.chars();
        let (Some(letter), None) = (letters.next(), letters.next()) else {
            bail!("`workload` is `{workload}`, not one letter");
        };
        Ok(YcsbRun {
            label: Label::of_target(text(v, "target")?)?,
            workload: letter.to_ascii_uppercase(),
            distribution: text(v, "distribution")?.to_string(),
            threads: count(v, "threads")?,
            records: count(v, "records")?,
            fields: count(v, "fields")?,
            field_bytes: count(v, "field_bytes")?,
            durability: text(v, "durability")?.to_string(),
            warmup_s: num(v, "warmup_s")?,
            elapsed_s: num(v, "elapsed_s")?,
            ops_per_sec: num(v, "ops_per_sec")?,
            aborts: count(v, "aborts")?,
            ops: latencies(v, "ops", "us")?,
        })
    }

    /// Of the operations both runs have, the one whose p99 here is the
    /// largest multiple of `other`'s, and that multiple.
    fn worst_p99_ratio(&self, other: &YcsbRun) -> Option<(String, f64)> {
        worst_ratio(&self.ops, &other.ops)
    }
}

/// See [`YcsbRun::worst_p99_ratio`]; on a tie, the first type counts.
fn worst_ratio(ours: &[Latency], theirs: &[Latency]) -> Option<(String, f64)> {
    ours.iter()
        .filter_map(|o| {
            let t = theirs.iter().find(|t| t.name == o.name)?;
            Some((o.name.clone(), o.p99 / t.p99.max(1e-9)))
        })
        .fold(None, |worst, (name, r)| match worst {
            Some((_, w)) if w >= r => worst,
            _ => Some((name, r)),
        })
}

/// The drivers' order of operation and transaction types (JSON objects
/// come back sorted by name).
const TYPE_ORDER: [&str; 10] = [
    "read",
    "update",
    "insert",
    "scan",
    "rmw",
    "new_order",
    "payment",
    "order_status",
    "delivery",
    "stock_level",
];

fn type_rank(name: &str) -> usize {
    TYPE_ORDER.iter().position(|t| *t == name).unwrap_or(TYPE_ORDER.len())
}

impl TpccRun {
    fn from_json(v: &Value) -> Result<TpccRun> {
        Ok(TpccRun {
            label: Label::of_target(text(v, "target")?)?,
            warehouses: count(v, "warehouses")?,
            terminals: count(v, "terminals")?,
            items: count(v, "items")?,
            customers: count(v, "customers_per_district")?,
            scaled_down: field(v, "scaled_down")?.as_bool().unwrap_or(true),
            warmup_s: num(v, "warmup_s")?,
            elapsed_s: num(v, "elapsed_s")?,
            tpmc: num(v, "tpmc")?,
            consistent: field(v, "consistency")?.as_str() == Some("ok"),
            txns: latencies(v, "txns", "ms")?,
        })
    }

    fn txn(&self, name: &str) -> Option<&Latency> {
        self.txns.iter().find(|t| t.name == name)
    }
}

impl Results {
    /// Parses JSON lines (blank lines are skipped); an error names the line.
    pub fn parse(jsonl: &str) -> Result<Results> {
        let mut results = Results::default();
        for (i, line) in jsonl.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = (|| -> Result<()> {
                let v: Value = serde_json::from_str(line)?;
                if v.get("workload").is_some() {
                    let run = YcsbRun::from_json(&v)?;
                    results.ycsb.insert((run.workload, run.label), run);
                } else if v.get("tpmc").is_some() {
                    let run = TpccRun::from_json(&v)?;
                    results.tpcc.insert(run.label, run);
                } else {
                    bail!("neither a YCSB run (`workload`) nor a TPC-C run (`tpmc`)");
                }
                Ok(())
            })();
            parsed.with_context(|| format!("results line {}", i + 1))?;
        }
        ensure!(!results.ycsb.is_empty() || !results.tpcc.is_empty(), "no runs in the results");
        Ok(results)
    }

    /// Workload letters that ran, in order.
    pub fn workloads(&self) -> Vec<char> {
        let mut w: Vec<char> = self.ycsb.keys().map(|(w, _)| *w).collect();
        w.dedup();
        w
    }

    /// Targets with a YCSB run, in table order.
    pub fn ycsb_labels(&self) -> Vec<Label> {
        Label::ALL.into_iter().filter(|l| self.ycsb.keys().any(|(_, t)| t == l)).collect()
    }

    /// Targets with a TPC-C run, in table order.
    pub fn tpcc_labels(&self) -> Vec<Label> {
        Label::ALL.into_iter().filter(|l| self.tpcc.contains_key(l)).collect()
    }

    fn run(&self, workload: char, label: Label) -> Option<&YcsbRun> {
        self.ycsb.get(&(workload, label))
    }

    /// `a`'s throughput over `b`'s on `workload`.
    fn ycsb_ratio(&self, workload: char, a: Label, b: Label) -> Option<f64> {
        Some(self.run(workload, a)?.ops_per_sec / self.run(workload, b)?.ops_per_sec.max(1e-9))
    }

    fn tpcc_ratio(&self, a: Label, b: Label) -> Option<f64> {
        Some(self.tpcc.get(&a)?.tpmc / self.tpcc.get(&b)?.tpmc.max(1e-9))
    }

    /// (workload, operation) pairs in order, for the latency table and chart.
    fn ycsb_ops(&self) -> Vec<(char, String)> {
        let mut out: Vec<(char, String)> = Vec::new();
        for run in self.ycsb.values() {
            for op in &run.ops {
                let key = (run.workload, op.name.clone());
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
        out
    }
}

/// What the section says about how the figures were made.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// The command that produced the results, shown verbatim.
    pub command: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The commit the drivers and servers were built from.
    pub commit: Option<String>,
    /// Lines shown under the command (machine, PostgreSQL version, noise).
    pub notes: Vec<String>,
    /// Where the document links the charts (relative to the document);
    /// `None`: no links.
    pub chart_url: Option<String>,
}

/// `12345.6` as `12,346`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let rounded = x.round().abs() as u64;
    let digits = rounded.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if x.round() < 0.0 { format!("-{out}") } else { out }
}

/// A latency: one decimal below 10, whole numbers with separators above.
fn latency(x: f64) -> String {
    if x < 10.0 { format!("{x:.1}") } else { thousands(x) }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "-",
    }
}

fn seconds(s: f64) -> String {
    if (s - s.round()).abs() < 0.05 { format!("{:.0} s", s.round()) } else { format!("{s:.1} s") }
}

/// The generated section, markers included.
pub fn section(results: &Results, meta: &Meta) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "{BEGIN}");
    let _ = writeln!(
        w,
        "<!-- Written by `bench-report` (benches/src/bin/bench-report.rs) from the drivers' \
         --json output; edit the text around the markers, not between them. -->\n"
    );
    let commit = meta.commit.as_ref().map(|c| format!(" at commit `{c}`")).unwrap_or_default();
    let _ = writeln!(w, "Measured {}{commit} with:\n", meta.date);
    let _ = writeln!(w, "```text\n{}\n```\n", meta.command);
    for note in &meta.notes {
        let _ = writeln!(w, "{note}  ");
    }
    if let Some(run) = results.ycsb.values().next() {
        let _ = writeln!(
            w,
            "YCSB: {} records of {} × {} B, {} threads, {} measured after a {} warm-up, \
             {} distribution, durability: {}.  ",
            thousands(run.records as f64),
            run.fields,
            run.field_bytes,
            run.threads,
            seconds(run.elapsed_s),
            seconds(run.warmup_s),
            run.distribution,
            run.durability,
        );
    }
    if let Some(run) = results.tpcc.values().next() {
        let scale = if run.scaled_down {
            format!(
                "scaled down to {} items and {} customers per district",
                thousands(run.items as f64),
                thousands(run.customers as f64)
            )
        } else {
            "full scale".to_string()
        };
        let _ = writeln!(
            w,
            "TPC-C: {} warehouse(s), {} terminals, {scale}, no keying or think times, {} \
             measured after a {} warm-up.",
            run.warehouses,
            run.terminals,
            seconds(run.elapsed_s),
            seconds(run.warmup_s),
        );
    }
    let _ = writeln!(w);
    ycsb_tables(w, results);
    tpcc_table(w, results);
    goals_table(w, results);
    if let Some(url) = &meta.chart_url {
        let url = url.trim_end_matches('/');
        for (file, alt) in CHARTS {
            if chart_applies(results, file) {
                let _ = writeln!(w, "![{alt}]({url}/{file})");
            }
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "{END}");
    out
}

fn ycsb_tables(w: &mut String, results: &Results) {
    let labels = results.ycsb_labels();
    if labels.is_empty() {
        return;
    }
    let _ = write!(w, "| YCSB ops/s |");
    for l in &labels {
        let _ = write!(w, " {} |", l.name());
    }
    let _ = writeln!(w, " server / pg | strata / sqlite | strata-sql / sqlite |");
    let _ = writeln!(w, "|---{}|", "|--:".repeat(labels.len() + 3));
    for wl in results.workloads() {
        let _ = write!(w, "| {wl} |");
        for &l in &labels {
            let cell = results.run(wl, l).map_or_else(|| "-".into(), |r| thousands(r.ops_per_sec));
            let _ = write!(w, " {cell} |");
        }
        let _ = writeln!(
            w,
            " {} | {} | {} |",
            ratio(results.ycsb_ratio(wl, Label::StrataServer, Label::Postgresql)),
            ratio(results.ycsb_ratio(wl, Label::Strata, Label::Sqlite)),
            ratio(results.ycsb_ratio(wl, Label::StrataSql, Label::Sqlite)),
        );
    }
    let _ = writeln!(w);
    let _ = write!(w, "| YCSB latency p50 / p99 (µs) |");
    for l in &labels {
        let _ = write!(w, " {} |", l.name());
    }
    let _ = writeln!(w, "\n|---{}|", "|--:".repeat(labels.len()));
    for (wl, op) in results.ycsb_ops() {
        let _ = write!(w, "| {wl} {op} |");
        for &l in &labels {
            let cell = results
                .run(wl, l)
                .and_then(|r| r.ops.iter().find(|o| o.name == op))
                .map_or_else(|| "-".into(), |o| format!("{} / {}", latency(o.p50), latency(o.p99)));
            let _ = write!(w, " {cell} |");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
}

fn tpcc_table(w: &mut String, results: &Results) {
    if results.tpcc.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "| TPC-C | tpmC | New-Order p50 / p99 ms | Payment p50 / p99 ms | \
         Stock-Level p50 / p99 ms | aborts (NO/P/D) | consistency |"
    );
    let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|---|");
    let cell = |run: &TpccRun, name: &str| {
        run.txn(name)
            .map_or_else(|| "-".into(), |t| format!("{} / {}", latency(t.p50), latency(t.p99)))
    };
    let aborts = |run: &TpccRun, name: &str| run.txn(name).map_or(0, |t| t.aborts);
    for run in results.tpcc.values() {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {}/{}/{} | {} |",
            run.label.name(),
            thousands(run.tpmc),
            cell(run, "new_order"),
            cell(run, "payment"),
            cell(run, "stock_level"),
            aborts(run, "new_order"),
            aborts(run, "payment"),
            aborts(run, "delivery"),
            if run.consistent { "ok" } else { "**VIOLATED**" },
        );
    }
    let _ = writeln!(
        w,
        "\ntpmC ratios: server / pg {}, strata-sql / sqlite {}.\n",
        ratio(results.tpcc_ratio(Label::StrataServer, Label::Postgresql)),
        ratio(results.tpcc_ratio(Label::StrataSql, Label::Sqlite)),
    );
}

/// The goals: Strata's server at or above PostgreSQL on YCSB A, B, C, F
/// and TPC-C with p99 no worse; embedded Strata at or above SQLite on YCSB.
fn goals_table(w: &mut String, results: &Results) {
    let server = Label::StrataServer;
    let pg = Label::Postgresql;
    let _ = writeln!(
        w,
        "| Goal (server: throughput at or above PostgreSQL's, no p99 worse) | throughput ratio | \
         worst p99 ratio (type) | met |\n|---|--:|--:|---|"
    );
    let mut rows = 0;
    for wl in ['A', 'B', 'C', 'F'] {
        let (Some(s), Some(p)) = (results.run(wl, server), results.run(wl, pg)) else {
            continue;
        };
        let r = s.ops_per_sec / p.ops_per_sec.max(1e-9);
        let worst = s.worst_p99_ratio(p);
        let met = r >= 1.0 && worst.as_ref().is_none_or(|(_, x)| *x <= 1.0);
        let _ = writeln!(
            w,
            "| server against PostgreSQL, YCSB {wl} | {r:.2} | {} | {} |",
            worst.map_or_else(|| "-".into(), |(op, x)| format!("{x:.2} ({op})")),
            yes_no(Some(met)),
        );
        rows += 1;
    }
    if let (Some(s), Some(p)) = (results.tpcc.get(&server), results.tpcc.get(&pg)) {
        let r = s.tpmc / p.tpmc.max(1e-9);
        let worst = worst_ratio(&s.txns, &p.txns);
        let met = r >= 1.0 && worst.as_ref().is_none_or(|(_, x)| *x <= 1.0);
        let _ = writeln!(
            w,
            "| server against PostgreSQL, TPC-C | {r:.2} | {} | {} |",
            worst.map_or_else(|| "-".into(), |(t, x)| format!("{x:.2} ({t})")),
            yes_no(Some(met)),
        );
        rows += 1;
    }
    for (label, name) in [(Label::Strata, "strata"), (Label::StrataSql, "strata-sql")] {
        let ratios: Vec<(char, f64)> = results
            .workloads()
            .into_iter()
            .filter_map(|wl| Some((wl, results.ycsb_ratio(wl, label, Label::Sqlite)?)))
            .collect();
        let Some(&(worst_wl, worst)) = ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let _ = writeln!(
            w,
            "| {name} at or above SQLite, every YCSB workload | {worst:.2} (worst: {worst_wl}) | - | {} |",
            yes_no(Some(worst >= 1.0)),
        );
        rows += 1;
    }
    if rows == 0 {
        let _ = writeln!(w, "| (no pair of targets to compare) | - | - | - |");
    }
    let _ = writeln!(w);
}

/// Replaces the text from [`BEGIN`] to [`END`] (markers included) in `doc`
/// with `section`; both markers must be there once, in that order.
pub fn splice(doc: &str, section: &str) -> Result<String> {
    let begin = doc.find(BEGIN).ok_or_else(|| anyhow!("no `{BEGIN}` marker"))?;
    let end = doc.find(END).ok_or_else(|| anyhow!("no `{END}` marker"))?;
    ensure!(begin < end, "`{END}` comes before `{BEGIN}`");
    ensure!(
        doc.matches(BEGIN).count() == 1 && doc.matches(END).count() == 1,
        "the markers must appear once each"
    );
    let section = section.trim_end_matches('\n');
    Ok(format!("{}{section}{}", &doc[..begin], &doc[end + END.len()..]))
}

/// The charts [`charts`] draws: file name and alt text.
pub const CHARTS: [(&str, &str); 4] = [
    ("ycsb-throughput.png", "YCSB throughput per workload and target"),
    ("ycsb-latency.png", "YCSB p50 and p99 latency per operation and target"),
    ("tpcc-tpmc.png", "TPC-C tpmC per target"),
    ("tpcc-latency.png", "TPC-C p50 and p99 latency per transaction type and target"),
];

fn chart_applies(results: &Results, file: &str) -> bool {
    if file.starts_with("ycsb") { !results.ycsb.is_empty() } else { !results.tpcc.is_empty() }
}

/// One bar: its height and the inner (darker) bar's, if any; `None`: no
/// bar (the target did not run that workload).
type Bar = Option<(f64, Option<f64>)>;

/// Bars in groups: one bar per series in each group; an optional inner
/// value is drawn as a darker bar from the bottom (p50 inside p99).
struct BarChart {
    title: String,
    y_desc: String,
    groups: Vec<String>,
    /// Per series: its label and, per group, its bar.
    series: Vec<(Label, Vec<Bar>)>,
    log_y: bool,
    size: (u32, u32),
}

/// Draws the charts that apply to `results` into `dir` with the TTF font
/// at `font`; returns the files written.
pub fn charts(results: &Results, dir: &Path, font: &Path) -> Result<Vec<PathBuf>> {
    load_font(font)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let ycsb_labels = results.ycsb_labels();
    let tpcc_labels = results.tpcc_labels();
    let workloads = results.workloads();
    if !results.ycsb.is_empty() {
        let first = results.ycsb.values().next().expect("not empty");
        let series = ycsb_labels
            .iter()
            .map(|&l| {
                let v = workloads
                    .iter()
                    .map(|&wl| results.run(wl, l).map(|r| (r.ops_per_sec, None)))
                    .collect();
                (l, v)
            })
            .collect();
        written.push(draw(
            &dir.join(CHARTS[0].0),
            &BarChart {
                title: format!(
                    "YCSB throughput: {} records, {} threads (log scale)",
                    thousands(first.records as f64),
                    first.threads
                ),
                y_desc: "operations per second".into(),
                groups: workloads.iter().map(|w| w.to_string()).collect(),
                series,
                log_y: true,
                size: (1000, 480),
            },
        )?);
        let ops = results.ycsb_ops();
        let series = ycsb_labels
            .iter()
            .map(|&l| {
                let v = ops
                    .iter()
                    .map(|(wl, op)| {
                        let o = results.run(*wl, l)?.ops.iter().find(|o| &o.name == op)?;
                        Some((o.p99, Some(o.p50)))
                    })
                    .collect();
                (l, v)
            })
            .collect();
        written.push(draw(
            &dir.join(CHARTS[1].0),
            &BarChart {
                title: "YCSB latency: p99 bar, p50 dark inside (log scale)".into(),
                y_desc: "microseconds".into(),
                groups: ops.iter().map(|(wl, op)| format!("{wl} {op}")).collect(),
                series,
                log_y: true,
                size: (1200, 480),
            },
        )?);
    }
    if !results.tpcc.is_empty() {
        let first = results.tpcc.values().next().expect("not empty");
        let series = tpcc_labels
            .iter()
            .map(|&l| (l, vec![results.tpcc.get(&l).map(|r| (r.tpmc, None))]))
            .collect();
        written.push(draw(
            &dir.join(CHARTS[2].0),
            &BarChart {
                title: format!(
                    "TPC-C tpmC: {} warehouse(s), {} terminals{}",
                    first.warehouses,
                    first.terminals,
                    if first.scaled_down { ", scaled down" } else { "" }
                ),
                y_desc: "New-Orders per minute".into(),
                groups: vec!["tpmC".into()],
                series,
                log_y: false,
                size: (700, 420),
            },
        )?);
        let names = ["new_order", "payment", "order_status", "delivery", "stock_level"];
        let series = tpcc_labels
            .iter()
            .map(|&l| {
                let v = names
                    .iter()
                    .map(|n| {
                        let t = results.tpcc.get(&l)?.txn(n)?;
                        Some((t.p99, Some(t.p50)))
                    })
                    .collect();
                (l, v)
            })
            .collect();
        written.push(draw(
            &dir.join(CHARTS[3].0),
            &BarChart {
                title: "TPC-C latency: p99 bar, p50 dark inside (log scale)".into(),
                y_desc: "milliseconds".into(),
                groups: names.iter().map(|n| n.to_string()).collect(),
                series,
                log_y: true,
                size: (1000, 480),
            },
        )?);
    }
    Ok(written)
}

/// Where Debian's fonts-dejavu-core puts the font the charts use by default.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn read_font(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "reading the chart font {} (install fonts-dejavu-core, or pass --font)",
            path.display()
        )
    })
}

/// Registers the TTF file at `path` as plotters' `sans-serif`. Plotters
/// keeps fonts for the life of the process, so the first font loaded stays
/// and later calls do nothing.
fn load_font(path: &Path) -> Result<()> {
    use std::sync::OnceLock;
    static LOADED: OnceLock<()> = OnceLock::new();
    if LOADED.get().is_some() {
        return Ok(());
    }
    let bytes: &'static [u8] = Box::leak(read_font(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType or OpenType font", path.display()))?;
    let _ = LOADED.set(());
    Ok(())
}

/// `1234567` as `1.2M`, for axis labels.
fn short(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let s = if v.fract().abs() < 1e-9 || v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    format!("{s}{unit}")
}

fn draw(path: &Path, chart: &BarChart) -> Result<PathBuf> {
    draw_inner(path, chart).with_context(|| format!("drawing {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn draw_inner(path: &Path, spec: &BarChart) -> Result<()> {
    use plotters::prelude::*;

    let values: Vec<f64> = spec
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .flat_map(|&(outer, inner)| std::iter::once(outer).chain(inner))
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-3);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min).min(max);
    let groups = spec.groups.len().max(1);
    let slots = spec.series.len().max(1);
    let bar_width = 0.8 / slots as f64;
    let bar_x = |group: usize, slot: usize| -> (f64, f64) {
        let left = group as f64 - 0.4 + slot as f64 * bar_width;
        (left + bar_width * 0.08, left + bar_width * 0.92)
    };
    let x_range = -0.5..(groups as f64 - 0.5);
    let label_of = |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            spec.groups.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let root = BitMapBackend::new(path, spec.size).into_drawing_area();
    root.fill(&WHITE)?;

    // One body for both axis types: only the y range differs.
    macro_rules! body {
        ($y_range:expr, $floor:expr) => {{
            let floor: f64 = $floor;
            let mut chart = ChartBuilder::on(&root)
                .caption(&spec.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(70)
                .build_cartesian_2d(x_range.clone(), $y_range)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(groups)
                .x_label_formatter(&label_of)
                .y_label_formatter(&|y| short(*y))
                .y_desc(spec.y_desc.as_str())
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 14))
                .draw()?;
            for (slot, (label, values)) in spec.series.iter().enumerate() {
                let (r, g, b) = label.rgb();
                let color = RGBColor(r, g, b);
                let dark = RGBColor(r / 2, g / 2, b / 2);
                let bars = values.iter().enumerate().filter_map(|(group, v)| {
                    let (outer, _) = (*v)?;
                    let (x0, x1) = bar_x(group, slot);
                    Some(Rectangle::new([(x0, floor), (x1, outer.max(floor))], color.filled()))
                });
                chart.draw_series(bars)?.label(label.name()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled())
                });
                let inner = values.iter().enumerate().filter_map(|(group, v)| {
                    let inner = (*v)?.1?;
                    let (x0, x1) = bar_x(group, slot);
                    Some(Rectangle::new([(x0, floor), (x1, inner.max(floor))], dark.filled()))
                });
                chart.draw_series(inner)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    if spec.log_y {
        let floor = 10f64.powf(min.log10().floor());
        let top = 10f64.powf((max * 3.0).log10().ceil());
        body!((floor..top).log_scale(), floor);
    } else {
        body!(0.0..max * 1.5, 0.0);
    }
    root.present()?;
    Ok(())
}

/// `YYYY-MM-DD` of a Unix time in seconds (UTC), for the default date.
pub fn utc_date(unix_secs: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "postgres://postgres@127.0.0.1:54329/postgres";
    const SERVER: &str = "postgres://strata@127.0.0.1:54330/strata";

    fn ycsb_line(target: &str, workload: char, ops_per_sec: f64, p50: f64, p99: f64) -> String {
        let ops = match workload {
            'c' => format!(
                "\"read\":{{\"count\":100,\"not_found\":0,\"failed\":0,\"p50_us\":{p50},\
                 \"p95_us\":1,\"p99_us\":{p99},\"p999_us\":1,\"max_us\":1}}"
            ),
            _ => format!(
                "\"read\":{{\"count\":50,\"not_found\":0,\"failed\":0,\"p50_us\":{p50},\
                 \"p95_us\":1,\"p99_us\":{p99},\"p999_us\":1,\"max_us\":1}},\
                 \"update\":{{\"count\":50,\"not_found\":0,\"failed\":0,\"p50_us\":{},\
                 \"p95_us\":1,\"p99_us\":{},\"p999_us\":1,\"max_us\":1}}",
                p50 * 10.0,
                p99 * 10.0
            ),
        };
        format!(
            "{{\"target\":\"{target}\",\"workload\":\"{workload}\",\"distribution\":\"zipfian\",\
             \"threads\":4,\"records\":10000,\"fields\":10,\"field_bytes\":100,\
             \"durability\":\"fsync\",\"load_s\":0.1,\"warmup_s\":1.000,\"elapsed_s\":5.002,\
             \"operations\":100,\"ops_per_sec\":{ops_per_sec},\"aborts\":0,\"retries\":0,\
             \"records_after\":10000,\"ops\":{{{ops}}}}}"
        )
    }

    fn tpcc_line(target: &str, tpmc: f64, p99_ms: f64, consistency: &str) -> String {
        let txn = |name: &str, aborts: u64| {
            format!(
                "\"{name}\":{{\"count\":10,\"rolled_back\":0,\"failed\":0,\"aborts\":{aborts},\
                 \"retries\":{aborts},\"p50_ms\":1.5,\"p90_ms\":2,\"p99_ms\":{p99_ms},\
                 \"max_ms\":9}}"
            )
        };
        format!(
            "{{\"target\":\"{target}\",\"warehouses\":1,\"terminals\":4,\"items\":10000,\
             \"customers_per_district\":300,\"scaled_down\":true,\"think_times\":false,\
             \"durability\":\"fsync\",\"load_s\":1,\"warmup_s\":2.0,\"elapsed_s\":15.0,\
             \"tpmc\":{tpmc},\"transactions\":50,\"consistency\":{consistency},\"txns\":{{{},{},{},{},{}}}}}",
            txn("new_order", 7),
            txn("payment", 8),
            txn("order_status", 0),
            txn("delivery", 9),
            txn("stock_level", 0),
        )
    }

    fn fixture() -> Results {
        let lines = [
            ycsb_line("strata", 'a', 20_000.0, 20.0, 80.0),
            ycsb_line("strata-sql", 'a', 9_000.0, 30.0, 150.0),
            ycsb_line(SERVER, 'a', 6_000.0, 300.0, 900.0),
            ycsb_line("sqlite", 'a', 10_000.0, 10.0, 25.5),
            ycsb_line(PG, 'a', 9_000.0, 200.0, 600.0),
            ycsb_line("strata", 'c', 400_000.0, 1.3, 4.0),
            ycsb_line(SERVER, 'c', 31_000.0, 100.0, 400.0),
            ycsb_line("sqlite", 'c', 100_000.0, 5.0, 50.0),
            ycsb_line(PG, 'c', 30_000.0, 300.0, 3_000.0),
            String::new(),
            tpcc_line("strata-sql", 14_000.0, 30.0, "\"ok\""),
            tpcc_line(SERVER, 8_000.0, 50.0, "\"ok\""),
            tpcc_line("sqlite", 7_000.0, 40.0, "[\"condition 1: w_ytd\"]"),
            tpcc_line(PG, 7_900.0, 60.0, "\"ok\""),
        ];
        Results::parse(&lines.join("\n")).unwrap()
    }

    fn meta() -> Meta {
        Meta {
            command: "benches/compare.sh --quick".into(),
            date: "2026-11-24".into(),
            commit: Some("abc1234".into()),
            notes: vec!["Machine: 2 cores".into()],
            chart_url: Some("docs/bench/".into()),
        }
    }

    #[test]
    fn targets_are_labelled_by_name_and_server_user() {
        assert_eq!(Label::of_target("strata").unwrap(), Label::Strata);
        assert_eq!(Label::of_target(SERVER).unwrap(), Label::StrataServer);
        assert_eq!(Label::of_target(PG).unwrap(), Label::Postgresql);
        assert_eq!(Label::of_target("postgresql://strata:pw@h/db").unwrap(), Label::StrataServer);
        assert!(Label::of_target("mysql://x").is_err());
    }

    #[test]
    fn the_section_has_throughput_ratios_latencies_tpcc_and_goals() {
        let text = section(&fixture(), &meta());
        assert!(text.starts_with(BEGIN) && text.trim_end().ends_with(END), "{text}");
        assert!(text.contains("Measured 2026-11-24 at commit `abc1234` with:"), "{text}");
        assert!(text.contains("```text\nbenches/compare.sh --quick\n```"), "{text}");
        assert!(text.contains("Machine: 2 cores"), "{text}");
        assert!(text.contains(
            "YCSB: 10,000 records of 10 × 100 B, 4 threads, 5 s measured after a 1 s warm-up"
        ));
        assert!(text.contains(
            "| YCSB ops/s | strata | strata-sql | strata-server | sqlite | postgresql | \
             server / pg | strata / sqlite | strata-sql / sqlite |"
        ));
        // 6000 / 9000, 20000 / 10000, 9000 / 10000; C has no strata-sql run.
        assert!(
            text.contains("| A | 20,000 | 9,000 | 6,000 | 10,000 | 9,000 | 0.67 | 2.00 | 0.90 |")
        );
        assert!(text.contains("| C | 400,000 | - | 31,000 | 100,000 | 30,000 | 1.03 | 4.00 | - |"));
        assert!(
            text.contains(
                "| A update | 200 / 800 | 300 / 1,500 | 3,000 / 9,000 | 100 / 255 | 2,000 / 6,000 |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| C read | 1.3 / 4.0 | - | 100 / 400 | 5.0 / 50 | 300 / 3,000 |"),
            "{text}"
        );
        assert!(
            text.contains("| strata-sql | 14,000 | 1.5 / 30 | 1.5 / 30 | 1.5 / 30 | 7/8/9 | ok |"),
            "{text}"
        );
        assert!(text.contains("| sqlite | 7,000 |") && text.contains("| **VIOLATED** |"));
        assert!(text.contains("tpmC ratios: server / pg 1.01, strata-sql / sqlite 2.00."));
        // A: slower and 1.5x the p99; C: faster with a lower p99; TPC-C:
        // more tpmC but p99 50 / 60 everywhere.
        assert!(
            text.contains("| server against PostgreSQL, YCSB A | 0.67 | 1.50 (read) | **no** |"),
            "{text}"
        );
        assert!(
            text.contains("| server against PostgreSQL, YCSB C | 1.03 | 0.13 (read) | yes |"),
            "{text}"
        );
        assert!(
            text.contains("| server against PostgreSQL, TPC-C | 1.01 | 0.83 (new_order) | yes |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| strata at or above SQLite, every YCSB workload | 2.00 (worst: A) | - | yes |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| strata-sql at or above SQLite, every YCSB workload | 0.90 (worst: A) | - | **no** |"
            ),
            "{text}"
        );
        assert!(text.contains(
            "![YCSB throughput per workload and target](docs/bench/ycsb-throughput.png)"
        ));
        assert!(text.contains("(docs/bench/tpcc-latency.png)"));
    }

    #[test]
    fn splicing_replaces_only_the_marked_section() {
        let doc = format!("# Title\n\nbefore\n\n{BEGIN}\nold table\n{END}\n\nafter\n");
        let new = splice(&doc, &format!("{BEGIN}\nnew table\n{END}\n")).unwrap();
        assert_eq!(new, format!("# Title\n\nbefore\n\n{BEGIN}\nnew table\n{END}\n\nafter\n"));
        assert_eq!(splice(&new, &format!("{BEGIN}\nnew table\n{END}\n")).unwrap(), new);
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{END}\n{BEGIN}"), "x").is_err());
        assert!(splice(&format!("{BEGIN}{BEGIN}{END}"), "x").is_err());
    }

    #[test]
    fn bad_lines_are_errors_that_name_the_line() {
        let err = Results::parse("\n{\"workload\":\"a\"}").unwrap_err();
        assert!(format!("{err:#}").contains("results line 2"), "{err:#}");
        assert!(Results::parse("not json").is_err());
        assert!(Results::parse("{\"x\":1}").is_err());
        assert!(Results::parse("").is_err());
    }

    #[test]
    fn numbers_are_formatted_for_tables_and_axes() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.5), "1,000");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(20_000.0), "20k");
        assert_eq!(short(100.0), "100");
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_795_996_800), "2026-11-30");
    }

    #[test]
    fn charts_are_png_files() {
        let font = Path::new(DEFAULT_FONT);
        if !font.exists() {
            println!("skipped: no font at {DEFAULT_FONT} (install fonts-dejavu-core)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let written = charts(&fixture(), dir.path(), font).unwrap();
        assert_eq!(written.len(), CHARTS.len());
        for path in written {
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", path.display());
        }
    }

    #[test]
    fn a_missing_font_is_a_clear_error() {
        let err = read_font(Path::new("/nonexistent/font.ttf")).unwrap_err();
        assert!(format!("{err:#}").contains("fonts-dejavu-core"), "{err:#}");
    }
}
