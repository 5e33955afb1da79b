//! The server's metrics and the HTTP endpoint that serves them: `/metrics` in
//! the Prometheus text format (version 0.0.4) and `/health`.
//!
//! Counters are atomics bumped on the statement path; transaction and engine
//! figures are read from the store when scraped. The HTTP side is a minimal
//! HTTP/1.1 responder: one request per connection, requests bounded in size
//! and time, so a slow or hostile scraper holds nothing for long.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_sql::Database;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::connection::Shared;

/// Upper bounds (seconds) of the statement latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// The largest HTTP request head accepted.
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters the server updates as it works.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub statements_failed: AtomicU64,
    pub statements_cancelled: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros_sum: AtomicU64,
}

impl Metrics {
    /// Records one statement's duration.
    pub fn observe_statement(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros_sum.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self, db: &Database) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "strata_connections",
            "gauge",
            "Client connections open.",
            &[("", load(&self.connections_open))],
        );
        metric(
            "strata_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            &[("", load(&self.connections_accepted))],
        );
        metric(
            "strata_connections_refused_total",
            "counter",
            "Connections refused past max_connections (SQLSTATE 53300).",
            &[("", load(&self.connections_refused))],
        );
        metric(
            "strata_statements_failed_total",
            "counter",
            "Statements that returned an error.",
            &[("", load(&self.statements_failed))],
        );
        metric(
            "strata_statements_cancelled_total",
            "counter",
            "Statements cancelled by a cancel request or statement_timeout (SQLSTATE 57014).",
            &[("", load(&self.statements_cancelled))],
        );

        let txn = db.store().stats();
        metric(
            "strata_commits_total",
            "counter",
            "Read-write transactions committed.",
            &[("", txn.commits)],
        );
        metric(
            "strata_read_only_commits_total",
            "counter",
            "Transactions that ended without writing.",
            &[("", txn.read_only_commits)],
        );
        metric(
            "strata_rollbacks_total",
            "counter",
            "Transactions rolled back.",
            &[("", txn.rollbacks)],
        );
        metric(
            "strata_aborts_total",
            "counter",
            "Transactions aborted at commit, by reason.",
            &[
                ("{reason=\"write_write\"}", txn.aborts_write_write),
                ("{reason=\"read_write\"}", txn.aborts_read_write),
                ("{reason=\"phantom\"}", txn.aborts_phantom),
                ("{reason=\"other\"}", txn.aborts_other),
            ],
        );

        let _ = writeln!(
            out,
            "# HELP strata_statement_duration_seconds Statement latency, parse to last row.\n\
             # TYPE strata_statement_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(bucket);
            let _ = writeln!(
                out,
                "strata_statement_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(out, "strata_statement_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "strata_statement_duration_seconds_sum {}\nstrata_statement_duration_seconds_count {count}",
            load(&self.latency_micros_sum) as f64 / 1e6
        );

        if let Some(engine) = db.store().shard_stats().engine {
            let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
            };
            metric("strata_engine_wal_syncs_total", "counter", "WAL fsyncs.", engine.wal_syncs);
            metric(
                "strata_engine_wal_bytes_total",
                "counter",
                "Bytes appended to the WAL.",
                engine.wal_bytes_written,
            );
            metric("strata_engine_flushes_total", "counter", "Memtable flushes.", engine.flushes);
            metric(
                "strata_engine_compactions_total",
                "counter",
                "Compactions run.",
                engine.compactions,
            );
            metric(
                "strata_engine_stalls_total",
                "counter",
                "Write stalls (backpressure).",
                engine.stalls,
            );
            metric(
                "strata_engine_memtable_bytes",
                "gauge",
                "Bytes in the active memtable.",
                engine.memtable_bytes,
            );
            let _ = writeln!(
                out,
                "# HELP strata_engine_level_bytes Bytes of SSTables per level.\n\
                 # TYPE strata_engine_level_bytes gauge"
            );
            for (i, level) in engine.levels.iter().enumerate() {
                let _ = writeln!(out, "strata_engine_level_bytes{{level=\"{i}\"}} {}", level.bytes);
            }
        }
        out
    }
}

/// Serves `/metrics` and `/health` on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let answered = answer(socket, &shared.metrics, &shared.db);
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answered).await;
        });
    }
}

async fn answer(mut socket: TcpStream, metrics: &Metrics, db: &Database) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST_BYTES {
            return respond(&mut socket, "431 Request Header Fields Too Large", "text/plain", "")
                .await;
        }
    }
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default());
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut socket, "405 Method Not Allowed", "text/plain", "GET only\n").await;
    }
    match path {
        "/metrics" => {
            let body = metrics.render(db);
            respond(&mut socket, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        "/health" => respond(&mut socket, "200 OK", "text/plain", "ok\n").await,
        _ => respond(&mut socket, "404 Not Found", "text/plain", "not found\n").await,
    }
}

async fn respond(
    socket: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_right_cumulative_bucket() {
        let m = Metrics::default();
        m.observe_statement(Duration::from_micros(50));
        m.observe_statement(Duration::from_millis(3));
        m.observe_statement(Duration::from_secs(60));
        let db = Database::open_temporary().unwrap();
        let text = m.render(&db);
        assert!(
            text.contains("strata_statement_duration_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_statement_duration_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("strata_statement_duration_seconds_bucket{le=\"30\"} 2\n"), "{text}");
        assert!(
            text.contains("strata_statement_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("strata_statement_duration_seconds_count 3\n"), "{text}");
    }
}
