//! `bench-report`: writes the YCSB / TPC-C comparison into `BENCHMARKS.md`
//! and draws its charts, from the JSON lines the `ycsb` and `tpcc` drivers
//! print with `--json` (`benches/compare.sh` collects them in
//! `results.jsonl` and runs this). See `strata_benches::report`.
//!
//! ```text
//! bench-report --results target/compare/results.jsonl \
//!     --markdown BENCHMARKS.md --charts docs/bench --chart-url docs/bench \
//!     --command "benches/compare.sh --quick" --note "Machine: 2 cores"
//! ```
//!
//! The section between `<!-- compare:begin -->` and `<!-- compare:end -->`
//! in the `--markdown` file is replaced; the rest of the file is kept. The
//! section is also printed (or written to `--summary`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use strata_benches::report::{self, Meta, Results};

#[derive(Parser, Debug)]
#[command(about = "Markdown tables and PNG charts from the ycsb/tpcc drivers' --json lines")]
struct Args {
    /// JSON lines from `ycsb --json` and `tpcc --json`.
    #[arg(long)]
    results: PathBuf,
    /// Document whose marked section is replaced (left alone if not given).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Directory for the PNG charts (none drawn if not given).
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Path of the charts as the document links them; default: --charts.
    #[arg(long)]
    chart_url: Option<String>,
    /// TrueType font for the charts' text.
    #[arg(long, default_value = report::DEFAULT_FONT)]
    font: PathBuf,
    /// The command that produced the results, shown in the section.
    #[arg(long, default_value = "benches/compare.sh")]
    command: String,
    /// Date shown (YYYY-MM-DD); default: today (UTC).
    #[arg(long)]
    date: Option<String>,
    /// Commit the binaries were built from.
    #[arg(long)]
    commit: Option<String>,
    /// A line shown under the command; repeatable.
    #[arg(long)]
    note: Vec<String>,
    /// Also write the section alone to this file.
    #[arg(long)]
    summary: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let jsonl = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let results =
        Results::parse(&jsonl).with_context(|| format!("in {}", args.results.display()))?;
    let date = args.date.unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        report::utc_date(now)
    });
    let chart_url =
        args.chart_url.or_else(|| args.charts.as_ref().map(|c| c.to_string_lossy().into_owned()));
    let meta =
        Meta { command: args.command, date, commit: args.commit, notes: args.note, chart_url };
    if let Some(dir) = &args.charts {
        for path in report::charts(&results, dir, &args.font)? {
            eprintln!("wrote {}", path.display());
        }
    }
    let section = report::section(&results, &meta);
    if let Some(path) = &args.markdown {
        let doc =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let updated =
            report::splice(&doc, &section).with_context(|| format!("in {}", path.display()))?;
        std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("updated {}", path.display());
    }
    match &args.summary {
        Some(path) => {
            std::fs::write(path, &section).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{section}"),
    }
    Ok(())
}
