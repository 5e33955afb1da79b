//! `strata start`: Strata's SQL over the PostgreSQL wire protocol (v3).
//!
//! One tokio runtime accepts connections; each is a task running pgwire's
//! message loop with [`connection::Handlers`] that own a [`strata_sql::Session`].
//! Statements run on the blocking pool, so a commit's fsync never stalls the
//! runtime. At most `max_connections` clients are served at once; the next
//! one is refused with SQLSTATE 53300 after its startup packet, as PostgreSQL
//! does.
//!
//! Shutdown (SIGINT or SIGTERM) is PostgreSQL's "fast" mode: stop accepting,
//! cancel running statements (their transactions roll back), close the
//! connections, close the database, exit 0. Everything acknowledged is
//! already durable in the write-ahead log, so a restart recovers it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pgwire::tokio::process_socket;
use strata_sql::Database;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

mod connection;
mod values;

/// What `server_version` reports: PostgreSQL 15 semantics, and who we are.
pub const SERVER_VERSION: &str = "15.0 (Strata 0.1.0)";

/// How long running statements may take to stop at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `strata start` options. Each flag can also be given by its environment
/// variable.
#[derive(clap::Args, Debug, Clone)]
pub struct StartArgs {
    /// Database directory (created if missing).
    #[arg(long, env = "STRATA_DATA", default_value = "strata-data")]
    pub data: PathBuf,
    /// Address to serve the PostgreSQL protocol on (port 0 picks a free port;
    /// the chosen address is printed).
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:5433")]
    pub listen: SocketAddr,
    /// Clients served at once; more are refused with SQLSTATE 53300.
    #[arg(long, env = "STRATA_MAX_CONNECTIONS", default_value_t = 100)]
    pub max_connections: usize,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: StartArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.max_connections > 0, "--max-connections must be at least 1");
    let db = Database::open(&args.data)
        .with_context(|| format!("opening the database in {}", args.data.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(args.max_connections + 8)
        .thread_name("strata-server")
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(serve(args, db));
    // Statements still running were cancelled; give them a moment to return.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn serve(args: StartArgs, db: Database) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("strata: serving PostgreSQL protocol on {addr} (data {})", args.data.display());
    let shared = Arc::new(connection::Shared::new(db));
    let permits = Arc::new(Semaphore::new(args.max_connections));
    let mut connections = JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            signal = &mut shutdown => {
                println!("strata: {signal}, shutting down");
                break;
            }
            accepted = listener.accept() => {
                let (socket, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        eprintln!("strata: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small messages go out at once; replies are already coalesced.
                let _ = socket.set_nodelay(true);
                let shared = shared.clone();
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => connections.spawn(async move {
                        let _permit = permit;
                        let _ = process_socket(socket, None, connection::Handlers::new(shared)).await;
                    }),
                    Err(_) => connections.spawn(async move {
                        let full = connection::Refused::new(shared);
                        let _ = process_socket(socket, None, full).await;
                    }),
                };
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // PostgreSQL's fast shutdown: running statements are cancelled (a commit
    // already under way finishes; `run` waits for it), clients are dropped.
    shared.cancel_all();
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Resolves with the name of the first SIGINT or SIGTERM.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers, run until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
