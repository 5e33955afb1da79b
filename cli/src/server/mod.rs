//! `strata start`: Strata's SQL over the PostgreSQL wire protocol (v3).
//!
//! One tokio runtime accepts connections. Each connection then gets a thread
//! of its own, as a PostgreSQL backend gets a process: a single-threaded
//! runtime on it runs pgwire's message loop with [`connection::Handlers`]
//! that own a [`strata_sql::Session`], and statements run inline on that
//! thread. A commit's fsync or a long query stalls only its own connection,
//! and a statement costs no hand-off between threads (measured: with a
//! hand-off to tokio's blocking pool, context switches were most of the
//! server's CPU time on point reads). Replies are held and sent with one
//! write per round, as PostgreSQL's are (see [`wire`]). At most
//! `max_connections` clients are served at once; the next one is refused
//! with SQLSTATE 53300 after its startup packet, as PostgreSQL does.
//!
//! # A replica set (`--node-id`, `--peers`)
//!
//! `strata start --data DIR --listen 127.0.0.1:5433 --node-id 1 --peers
//! 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003` runs this process as
//! node 1 of a three-node Raft replica set: `--peers` lists every member's
//! id and Raft gRPC address, this node's own included (it serves Raft
//! there; `--listen` stays the PostgreSQL address). Start every member with
//! the same `--peers`; a new data directory bootstraps the set, an existing
//! one recovers. Any node's SQL front end serves clients: a follower
//! forwards reads and commits to the leader, and `SHOW raft_leader` names
//! the leader (see `cluster` for the SQLSTATEs of a leader change). Without
//! `--peers` the server runs one local shard, as before.
//!
//! Shutdown (SIGINT or SIGTERM) is PostgreSQL's "fast" mode: stop accepting,
//! cancel running statements (their transactions roll back), close the
//! connections, close the database, exit 0. Everything acknowledged is
//! already durable in the write-ahead log, so a restart recovers it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use pgwire::tokio::process_socket;
use strata_sql::Database;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

mod cluster;
mod connection;
mod metrics;
mod values;
mod wire;

/// What `server_version` reports: PostgreSQL 15 semantics, and who we are.
pub const SERVER_VERSION: &str = "15.0 (Strata 0.1.0)";

/// How long connections may take to end at shutdown (a commit under way
/// finishes; everything else was cancelled).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `strata start` options. Each can be given as a flag, as an environment
/// variable, or in the `--config` TOML file, in that order of precedence.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StartArgs {
    /// A TOML file with any of the settings below (`data`, `listen`,
    /// `max_connections`, `http`, `node_id`, `peers`, ...).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database directory, created if missing [default: strata-data].
    #[arg(long, env = "STRATA_DATA")]
    pub data: Option<PathBuf>,
    /// Address to serve the PostgreSQL protocol on; port 0 picks a free port,
    /// and the address chosen is printed [default: 127.0.0.1:5433].
    #[arg(long, env = "STRATA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Clients served at once; more are refused with SQLSTATE 53300
    /// [default: 100].
    #[arg(long, env = "STRATA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Also serve `/metrics` (Prometheus text format) and `/health` over HTTP
    /// on this address [default: off].
    #[arg(long, env = "STRATA_HTTP")]
    pub http: Option<SocketAddr>,
    /// A user that must log in with this password (SCRAM-SHA-256), as
    /// NAME=PASSWORD; repeatable. Without any, every client is trusted.
    #[arg(long = "user", value_name = "NAME=PASSWORD")]
    pub users: Vec<String>,
    /// Close connections idle (no statement running) for this many seconds
    /// [default: 0, never].
    #[arg(long, env = "STRATA_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// PEM certificate chain: clients may then use TLS (sslmode=require).
    #[arg(long, env = "STRATA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "STRATA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// This node's id in its replica set (with --peers) [default: 1].
    #[arg(long, env = "STRATA_NODE_ID")]
    pub node_id: Option<u64>,
    /// Run as a node of a Raft replica set: every member's id and Raft gRPC
    /// address, this node's own included, as ID=HOST:PORT,... (for example
    /// 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003). Any node serves
    /// SQL; followers forward to the leader; `SHOW raft_leader` names it.
    /// Without it, a single node with a local shard [default: off].
    #[arg(long, env = "STRATA_PEERS", value_name = "ID=HOST:PORT,...")]
    pub peers: Option<String>,
}

/// The `--config` file: the same settings as the flags.
#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data: Option<PathBuf>,
    listen: Option<SocketAddr>,
    max_connections: Option<usize>,
    http: Option<SocketAddr>,
    idle_timeout: Option<u64>,
    /// `[users]` table: name = "password".
    #[serde(default)]
    users: BTreeMap<String, String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    node_id: Option<u64>,
    peers: Option<String>,
}

/// The settings in force, after flags, environment, file and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub http: Option<SocketAddr>,
    /// Users and passwords; empty means trust.
    pub users: BTreeMap<String, String>,
    /// Certificate and key files, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Connections idle this long are closed.
    pub idle_timeout: Option<Duration>,
    /// This node's replica set, with `--peers`.
    pub cluster: Option<cluster::Membership>,
}

impl StartArgs {
    /// Resolves flags and environment over the config file over defaults.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the config file {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .with_context(|| format!("in the config file {}", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let mut users = file.users;
        for u in &self.users {
            let (name, password) =
                u.split_once('=').with_context(|| format!("--user {u}: expected NAME=PASSWORD"))?;
            users.insert(name.to_string(), password.to_string());
        }
        let cert = self.tls_cert.clone().or(file.tls_cert);
        let key = self.tls_key.clone().or(file.tls_key);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key go together"),
        };
        let cluster = match self.peers.clone().or(file.peers) {
            Some(peers) => {
                let node_id = self.node_id.or(file.node_id).unwrap_or(1);
                Some(cluster::Membership::new(node_id, cluster::parse_peers(&peers)?)?)
            }
            None => None,
        };
        let settings = Settings {
            data: self.data.clone().or(file.data).unwrap_or_else(|| "strata-data".into()),
            listen: self.listen.or(file.listen).unwrap_or(([127, 0, 0, 1], 5433).into()),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(100),
            http: self.http.or(file.http),
            users,
            tls,
            idle_timeout: self
                .idle_timeout
                .or(file.idle_timeout)
                .filter(|&s| s > 0)
                .map(Duration::from_secs),
            cluster,
        };
        anyhow::ensure!(settings.max_connections > 0, "max_connections must be at least 1");
        Ok(settings)
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: StartArgs) -> anyhow::Result<()> {
    let args = args.settings()?;
    quiet_connection_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata-server")
        .build()
        .context("starting the runtime")?;
    let db = match &args.cluster {
        None => Database::open(&args.data).map_err(anyhow::Error::from),
        Some(membership) => runtime.block_on(cluster::open(&args.data, membership)),
    }
    .with_context(|| format!("opening the database in {}", args.data.display()))?;
    let result = runtime.block_on(serve(args, db));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// A panic on a connection thread (see `Connection::spawn`) is reported in
/// one line, with where it happened, instead of a backtrace: the connection
/// closes and the server goes on. Other threads keep the default report.
fn quiet_connection_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("strata-conn") {
            let location = info.location().map_or(String::new(), |l| format!(" at {l}"));
            eprintln!("strata: connection failed{location}");
        } else {
            default(info);
        }
    }));
}

async fn serve(args: Settings, db: Database) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("strata: serving PostgreSQL protocol on {addr} (data {})", args.data.display());
    let tls = args.tls.as_ref().map(|(cert, key)| tls_acceptor(cert, key)).transpose()?;
    let shared = Arc::new(connection::Shared::new(db, &args.users).context("setting up users")?);
    if args.users.is_empty() && !args.listen.ip().is_loopback() {
        eprintln!(
            "strata: warning: no users configured, so every client on {} is trusted",
            args.listen
        );
    }
    let http = match args.http {
        Some(at) => {
            let listener =
                TcpListener::bind(at).await.with_context(|| format!("listening on {at}"))?;
            println!("strata: serving /metrics and /health on http://{}", listener.local_addr()?);
            Some(tokio::spawn(metrics::serve_http(listener, shared.clone())))
        }
        None => None,
    };
    let permits = Arc::new(Semaphore::new(args.max_connections));
    let mut refused = JoinSet::new();
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
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
                // Replies go out at once: `wire` already gathers each batch
                // into one write.
                let _ = socket.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                let metrics = &shared.metrics;
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
                        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
                        threads.retain(|t| !t.is_finished());
                        let connection = Connection {
                            socket,
                            tls,
                            shared: shared.clone(),
                            idle_timeout: args.idle_timeout,
                            stopping: stopping.clone(),
                        };
                        match connection.spawn(permit) {
                            Ok(thread) => threads.push(thread),
                            Err(e) => {
                                shared.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
                                eprintln!("strata: cannot start a connection thread: {e}");
                            }
                        }
                    }
                    Err(_) => {
                        metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        refused.spawn(async move {
                            let full = connection::Refused::new(shared);
                            let _ = process_socket(socket, tls, full).await;
                        });
                    }
                };
            }
            Some(_) = refused.join_next(), if !refused.is_empty() => {}
        }
    }
    drop(listener);
    if let Some(http) = http {
        http.abort();
    }
    // PostgreSQL's fast shutdown: running statements are cancelled (a commit
    // already under way finishes), and every connection thread ends its loop,
    // closing its socket.
    shared.cancel_all();
    let _ = stop.send(true);
    refused.abort_all();
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// An accepted client, about to get its own thread.
struct Connection {
    socket: tokio::net::TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    shared: Arc<connection::Shared>,
    idle_timeout: Option<Duration>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection on a new thread; `permit` is its slot under
    /// `max_connections`, given back when the thread ends.
    fn spawn(
        self,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        // The socket moves to the new thread's own runtime.
        let Connection { socket, tls, shared, idle_timeout, mut stopping } = self;
        let socket = socket.into_std()?;
        // A second handle on a plain (not TLS) socket, to say FATAL when the
        // idle timeout closes it: pgwire owns the first.
        let farewell = if tls.is_none() { socket.try_clone().ok() } else { None };
        std::thread::Builder::new().name("strata-conn".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let serve = || match runtime {
                Ok(runtime) => runtime.block_on(async {
                    let Ok(socket) = tokio::net::TcpStream::from_std(socket) else { return };
                    let handlers = connection::Handlers::new(shared.clone());
                    let activity = handlers.activity();
                    tokio::select! {
                        _ = wire::serve(socket, tls, handlers) => {}
                        _ = idle_watch(activity, idle_timeout) => {
                            if let Some(mut socket) = farewell {
                                // Idle: every reply has been sent (`wire`
                                // sends before it waits for the client), so
                                // this message cannot interleave with one.
                                let _ = std::io::Write::write_all(&mut socket, &fatal_message(
                                    "57P05",
                                    "terminating connection due to idle-session timeout",
                                ));
                            }
                        }
                        _ = stopping.wait_for(|stop| *stop) => {}
                    }
                }),
                Err(e) => eprintln!("strata: cannot start a connection runtime: {e}"),
            };
            // pgwire's message decoder panics on some malformed frames (a
            // count larger than the message); that must close this
            // connection only. Its session state is dropped with the thread's
            // stack: an open transaction rolls back.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(serve)).is_err() {
                eprintln!("strata: closed a connection after a malformed message");
            }
            shared.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        })
    }
}

/// A FATAL ErrorResponse, encoded by hand for the one place that writes
/// outside pgwire (the idle timeout).
fn fatal_message(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message)] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    msg.extend(fields);
    msg
}

/// Resolves once the connection has been idle for `timeout` (never without one);
/// the caller then drops the connection, closing its socket.
async fn idle_watch(activity: Arc<connection::Activity>, timeout: Option<Duration>) {
    let Some(timeout) = timeout else { return std::future::pending().await };
    let check = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::time::sleep(check).await;
        if activity.idle_for() >= timeout {
            return;
        }
    }
}

/// A TLS acceptor for the PEM certificate chain and private key in these files.
fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<pgwire::tokio::TlsAcceptor> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("reading the certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading the private key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not make a usable pair")?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::NamedTempFile, StartArgs) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        let args = StartArgs { config: Some(file.path().to_path_buf()), ..StartArgs::default() };
        (file, args)
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let (_file, mut args) = config("listen = \"127.0.0.1:6000\"\nmax_connections = 7\n");
        args.max_connections = Some(9);
        let s = args.settings().unwrap();
        assert_eq!(s.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(s.max_connections, 9);
        assert_eq!(s.data, PathBuf::from("strata-data"));
        assert_eq!(s.http, None);
    }

    #[test]
    fn peers_make_a_replica_set_member_and_must_name_this_node() {
        let (_file, mut args) =
            config("node_id = 2\npeers = \"1=127.0.0.1:7001,2=127.0.0.1:7002\"\n");
        let cluster = args.settings().unwrap().cluster.unwrap();
        assert_eq!(cluster.node_id, 2);
        assert_eq!(cluster.peers[&1], "127.0.0.1:7001");
        args.node_id = Some(3);
        let e = format!("{:#}", args.settings().unwrap_err());
        assert!(e.contains("--node-id 3"), "{e}");
        assert_eq!(StartArgs::default().settings().unwrap().cluster, None);
    }

    #[test]
    fn a_bad_config_file_is_a_clear_error() {
        let (_file, args) = config("listen = \"127.0.0.1:6000\"\nmax_conections = 7\n");
        let e = format!("{:#}", args.settings().unwrap_err());
        assert!(e.contains("max_conections"), "{e}");
        let (_file, args) = config("max_connections = 0\n");
        assert!(format!("{:#}", args.settings().unwrap_err()).contains("at least 1"));
        let args =
            StartArgs { config: Some("/nonexistent/strata.toml".into()), ..StartArgs::default() };
        assert!(format!("{:#}", args.settings().unwrap_err()).contains("/nonexistent/strata.toml"));
    }
}
