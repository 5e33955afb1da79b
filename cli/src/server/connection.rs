//! One client connection: pgwire's message loop calls these handlers, which
//! run statements on the connection's own [`Session`].
//!
//! Invariants:
//! - A statement runs inline ([`Conn::blocking`]) on the connection's own
//!   thread and single-threaded runtime, so when it fsyncs or scans for long
//!   it stalls only this client. The session's mutex is taken only for the
//!   statement, never across an `.await`.
//! - The transaction status reported in ReadyForQuery is the session's own
//!   (`Idle`, `InTransaction`, `Failed`), read after every statement, so `I`,
//!   `T` and `E` follow PostgreSQL's rules, ROLLBACK TO SAVEPOINT included.
//! - An error in the extended protocol is returned as an `Err`, so pgwire
//!   discards messages until Sync as PostgreSQL does; in the simple protocol
//!   the error ends the query string and ReadyForQuery follows.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::{CopyHandler, send_copy_in_response};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_ready_for_query};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::{FieldDescription, RowDescription};
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, NoticeResponse, TransactionStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use strata_sql::copy::CopyCommand;
use strata_sql::exec::Interrupt;
use strata_sql::{
    Database, Description, Prepared, Session, SqlError, StatementResult, TxnStatus, Value,
};

use super::metrics::Metrics;
use super::values;

/// What every connection shares: the database, the cancel registry, metrics.
pub struct Shared {
    pub db: Database,
    pub metrics: Metrics,
    /// Backend pid -> (secret key, the interrupt of that connection's session).
    cancel_keys: Mutex<HashMap<i32, (SecretKey, Interrupt)>>,
    pids: Arc<RandomPidSecretKeyGenerator>,
    parameters: Arc<DefaultServerParameterProvider>,
    /// SCRAM-SHA-256 when users are configured; trust otherwise.
    scram: Option<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
}

impl Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("db", &self.db)
            .field("scram", &self.scram.is_some())
            .finish_non_exhaustive()
    }
}

/// Users and their SCRAM verifiers (salted passwords), for pgwire's SCRAM.
#[derive(Debug)]
struct Users(HashMap<String, (Vec<u8>, Vec<u8>)>);

/// SCRAM's iteration count, PostgreSQL's default.
const SCRAM_ITERATIONS: usize = 4096;

impl Users {
    fn new(passwords: &BTreeMap<String, String>) -> std::io::Result<Users> {
        let mut users = HashMap::new();
        for (user, password) in passwords {
            let mut salt = vec![0u8; 16];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut salt)?;
            let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
            users.insert(user.clone(), (salt, salted));
        }
        Ok(Users(users))
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.0.get(user) {
            Some((salt, salted)) => Ok(Password::new(Some(salt.clone()), salted.clone())),
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

impl Shared {
    /// Shared state for `db`; with `users`, clients must authenticate with
    /// SCRAM-SHA-256 (trust otherwise).
    pub fn new(db: Database, users: &BTreeMap<String, String>) -> std::io::Result<Shared> {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = super::SERVER_VERSION.to_string();
        parameters.search_path = "\"$user\", public".to_string();
        parameters.time_zone = "UTC".to_string();
        parameters.date_style = "ISO, MDY".to_string();
        let parameters = Arc::new(parameters);
        let pids = Arc::new(RandomPidSecretKeyGenerator::default());
        let scram = if users.is_empty() {
            None
        } else {
            let mut scram = ScramAuth::new(Arc::new(Users::new(users)?));
            scram.set_iterations(SCRAM_ITERATIONS);
            Some(
                SASLAuthStartupHandler::new(parameters.clone())
                    .with_scram(scram)
                    .with_pid_secret_key_generator(pids.clone()),
            )
        };
        Ok(Shared {
            db,
            metrics: Metrics::default(),
            cancel_keys: Mutex::new(HashMap::new()),
            pids,
            parameters,
            scram,
        })
    }

    /// Cancels the running statement of every connection (shutdown).
    pub fn cancel_all(&self) {
        for (_, interrupt) in
            self.cancel_keys.lock().unwrap_or_else(PoisonError::into_inner).values()
        {
            interrupt.cancel();
        }
    }

    fn cancel(&self, request: &CancelRequest) {
        let keys = self.cancel_keys.lock().unwrap_or_else(PoisonError::into_inner);
        // A wrong secret is ignored silently, as PostgreSQL does.
        if let Some((secret, interrupt)) = keys.get(&request.pid)
            && secret_bytes(secret) == secret_bytes(&request.secret_key)
        {
            interrupt.cancel();
        }
    }
}

/// A secret key's bytes: a cancel request's key arrives as bytes whatever
/// form the server chose when it handed the key out.
fn secret_bytes(key: &SecretKey) -> Vec<u8> {
    match key {
        SecretKey::I32(i) => i.to_be_bytes().to_vec(),
        SecretKey::Bytes(b) => b.to_vec(),
    }
}

/// A prepared statement as pgwire stores it: parsed and described once, at
/// Parse time (as PostgreSQL analyses a statement when it is prepared).
#[derive(Clone, Debug)]
pub struct Statement {
    /// Shared with each execution, which takes it to the session: a count
    /// goes up, the syntax tree is not copied.
    prepared: Arc<Prepared>,
    description: Description,
}

/// When a connection last did something, for the idle timeout.
#[derive(Debug)]
pub struct Activity {
    last: Mutex<std::time::Instant>,
    /// Statements running now; a connection running one is never idle.
    busy: std::sync::atomic::AtomicU32,
}

impl Activity {
    fn new() -> Activity {
        Activity { last: Mutex::new(std::time::Instant::now()), busy: Default::default() }
    }

    fn begin(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.touch();
    }

    fn end(&self) {
        self.touch();
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }

    /// How long the connection has been idle; zero while a statement runs.
    pub fn idle_for(&self) -> std::time::Duration {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return std::time::Duration::ZERO;
        }
        self.last.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }
}

/// The state of one connection.
#[derive(Debug)]
pub struct Conn {
    shared: Arc<Shared>,
    session: Arc<Mutex<Session>>,
    pid: Mutex<Option<i32>>,
    copy: Mutex<Option<PendingCopy>>,
    activity: Arc<Activity>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(pid) = *self.pid.lock().unwrap_or_else(PoisonError::into_inner) {
            self.shared.cancel_keys.lock().unwrap_or_else(PoisonError::into_inner).remove(&pid);
        }
    }
}

fn user_error(e: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e, "ERROR")))
}

fn error_info(e: &SqlError, severity: &str) -> ErrorInfo {
    let mut info = ErrorInfo::new(severity.to_string(), e.code.to_string(), e.message.clone());
    info.detail = e.detail.clone();
    info.position = e.position.map(|p| p.to_string());
    info
}

fn notice(text: &str) -> PgWireBackendMessage {
    PgWireBackendMessage::NoticeResponse(NoticeResponse::from(ErrorInfo::new(
        "NOTICE".to_string(),
        "00000".to_string(),
        text.to_string(),
    )))
}

fn wire_status(status: TxnStatus) -> TransactionStatus {
    match status {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InTransaction => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    }
}

fn internal(what: &str) -> PgWireError {
    user_error(SqlError::internal(what))
}

impl Conn {
    pub fn new(shared: Arc<Shared>) -> Conn {
        let session = shared.db.session();
        Conn {
            shared,
            session: Arc::new(Mutex::new(session)),
            pid: Mutex::new(None),
            copy: Mutex::new(None),
            activity: Arc::new(Activity::new()),
        }
    }

    /// Runs a statement (or a script) on the session and records its
    /// latency and outcome.
    async fn run_statement<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> (T, Option<SqlError>) + Send + 'static,
    ) -> PgWireResult<(T, Option<SqlError>)> {
        let started = std::time::Instant::now();
        let out = self.blocking(f).await?;
        let metrics = &self.shared.metrics;
        metrics.observe_statement(started.elapsed());
        if let Some(e) = &out.1 {
            metrics.statements_failed.fetch_add(1, Ordering::Relaxed);
            if e.code == strata_sql::sqlstate::QUERY_CANCELED {
                metrics.statements_cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(out)
    }

    /// [`Conn::run_statement`] for one statement that succeeds or fails.
    async fn run_fallible<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, SqlError> + Send + 'static,
    ) -> PgWireResult<Result<T, SqlError>> {
        let (out, error) = self
            .run_statement(move |s| match f(s) {
                Ok(out) => (Some(out), None),
                Err(e) => (None, Some(e)),
            })
            .await?;
        Ok(out.ok_or_else(|| error.unwrap_or_else(|| SqlError::internal("no result"))))
    }

    /// Runs `f` on the session, inline: the connection has a thread of its
    /// own (see the server module), so blocking it blocks only this client.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> T + Send + 'static,
    ) -> PgWireResult<T> {
        self.activity.begin();
        let done = f(&mut self.session.lock().unwrap_or_else(PoisonError::into_inner));
        self.activity.end();
        Ok(done)
    }

    fn status(&self) -> TransactionStatus {
        wire_status(self.session.lock().unwrap_or_else(PoisonError::into_inner).status())
    }

    /// Applies the startup packet's settings (`options=-c name=value`,
    /// application_name, DateStyle, ...) to the session.
    async fn apply_startup_parameters(
        &self,
        metadata: impl IntoIterator<Item = (&String, &String)>,
    ) -> PgWireResult<()> {
        let mut sets = Vec::new();
        for (name, value) in metadata {
            match name.as_str() {
                "user" | "database" | "replication" => {}
                "options" => {
                    for (n, v) in parse_options(value)? {
                        sets.push((n, v));
                    }
                }
                _ => sets.push((name.clone(), value.clone())),
            }
        }
        let errors = self
            .blocking(move |s| {
                let mut errors = Vec::new();
                for (name, value) in sets {
                    let sql = format!("SET {name} = '{}'", value.replace('\'', "''"));
                    // Unknown startup parameters are ignored, as PostgreSQL
                    // ignores unknown GUCs with a dot; known ones must be valid.
                    if let Err(e) = s.execute(&sql, &[])
                        && e.code != strata_sql::sqlstate::UNDEFINED_OBJECT
                        && e.code != strata_sql::sqlstate::SYNTAX_ERROR
                    {
                        errors.push(e);
                    }
                }
                errors
            })
            .await?;
        match errors.into_iter().next() {
            Some(e) => Err(PgWireError::UserError(Box::new(error_info(&e, "FATAL")))),
            None => Ok(()),
        }
    }

    fn register_cancel_key(&self, pid: i32, secret: SecretKey) {
        let interrupt = self.session.lock().unwrap_or_else(PoisonError::into_inner).interrupt();
        self.shared
            .cancel_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pid, (secret, interrupt));
        *self.pid.lock().unwrap_or_else(PoisonError::into_inner) = Some(pid);
    }
}

/// `-c name=value` pairs (also `--name=value`) from the startup `options`.
fn parse_options(options: &str) -> PgWireResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        let pair = if w == "-c" {
            words.next().unwrap_or("")
        } else if let Some(rest) = w.strip_prefix("-c").or_else(|| w.strip_prefix("--")) {
            rest
        } else {
            return Err(user_error(SqlError::new(
                "08P01",
                format!("invalid command-line argument for server process: {w}"),
            )));
        };
        let Some((name, value)) = pair.split_once('=') else {
            return Err(user_error(SqlError::new(
                "08P01",
                format!("invalid command-line argument for server process: {pair}"),
            )));
        };
        out.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(out)
}

/// Startup without a password (trust), or refusal when the server is full.
#[derive(Debug)]
pub struct Startup {
    conn: Arc<Conn>,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = &self.conn.shared;
        if let Some(scram) = &shared.scram {
            // The startup packet's settings apply before authentication ends,
            // so a bad one fails the connection as PostgreSQL's would.
            if let PgWireFrontendMessage::Startup(startup) = &message {
                self.conn.apply_startup_parameters(&startup.parameters).await?;
            }
            scram.on_startup(client, message).await?;
            if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
                let (pid, secret) = client.pid_and_secret_key();
                self.conn.register_cancel_key(pid, secret);
            }
            return Ok(());
        }
        let PgWireFrontendMessage::Startup(startup) = message else { return Ok(()) };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let (pid, secret) = shared.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        self.conn.register_cancel_key(pid, secret);
        self.conn.apply_startup_parameters(&startup.parameters).await?;
        finish_authentication(client, shared.parameters.as_ref()).await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}

/// A connection past `max_connections`: refused with SQLSTATE 53300 after its
/// startup packet. Cancel requests still work on it.
#[derive(Debug)]
pub struct Refused {
    shared: Arc<Shared>,
}

impl Refused {
    pub fn new(shared: Arc<Shared>) -> Refused {
        Refused { shared }
    }
}

#[derive(Debug)]
struct RefuseStartup;

#[async_trait]
impl StartupHandler for RefuseStartup {
    async fn on_startup<C>(
        &self,
        _client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".to_string(),
            "53300".to_string(),
            "sorry, too many clients already".to_string(),
        ))))
    }
}

impl PgWireServerHandlers for Refused {
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(RefuseStartup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(Cancel { shared: self.shared.clone() })
    }
}

/// Cancel requests arrive on their own connection and name a backend pid.
#[derive(Debug)]
pub struct Cancel {
    shared: Arc<Shared>,
}

#[async_trait]
impl CancelHandler for Cancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared.cancel(&request);
    }
}

/// The handlers of one connection, as pgwire asks for them.
#[derive(Debug)]
pub struct Handlers {
    conn: Arc<Conn>,
}

impl Handlers {
    pub fn new(shared: Arc<Shared>) -> Handlers {
        Handlers { conn: Arc::new(Conn::new(shared)) }
    }

    /// The connection's activity, for the idle timeout.
    pub fn activity(&self) -> Arc<Activity> {
        self.conn.activity.clone()
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.conn.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.conn.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Startup { conn: self.conn.clone() })
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(Cancel { shared: self.conn.shared.clone() })
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.conn.clone()
    }
}

fn row_description(fields: &[FieldInfo]) -> RowDescription {
    RowDescription::new(
        fields
            .iter()
            .map(|f| {
                FieldDescription::new(
                    f.name().to_string(),
                    f.table_id().unwrap_or(0),
                    f.column_id().unwrap_or(0),
                    f.datatype().oid(),
                    f.type_size(),
                    f.type_modifier(),
                    f.format().value(),
                )
            })
            .collect(),
    )
}

/// Sends one statement's result in the simple protocol: notices, then
/// RowDescription and DataRows if it returns rows, then CommandComplete.
async fn send_result<C>(client: &mut C, r: StatementResult) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for n in &r.notices {
        client.feed(notice(n)).await?;
    }
    let returns_rows = !r.columns.is_empty();
    if returns_rows {
        let fields = values::fields(&r.columns, &Format::UnifiedText);
        client.feed(PgWireBackendMessage::RowDescription(row_description(&fields))).await?;
        for row in &r.rows {
            let data = values::data_row(row, &r.columns, &fields);
            client.feed(PgWireBackendMessage::DataRow(data)).await?;
        }
    }
    client.feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(r.tag))).await?;
    Ok(())
}

/// A COPY FROM STDIN waiting for its data.
#[derive(Debug)]
struct PendingCopy {
    cmd: CopyCommand,
    data: Vec<u8>,
    /// The most input held before the COPY fails (the session's work_mem).
    limit: usize,
    /// Set when the input outgrew `limit`; reported at CopyDone.
    overflowed: bool,
}

/// Sends a COPY TO STDOUT: CopyOutResponse, the lines, CopyDone, CommandComplete.
async fn send_copy_out<C>(client: &mut C, response: CopyResponse, tag: String) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let columns = response.column_formats();
    let CopyResponse { format, columns: n, mut data_stream, .. } = response;
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format, n as i16, columns,
        )))
        .await?;
    while let Some(data) = data_stream.next().await {
        client.feed(PgWireBackendMessage::CopyData(data?)).await?;
    }
    client.feed(PgWireBackendMessage::CopyDone(CopyDone::new())).await?;
    client.feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(tag))).await?;
    Ok(())
}

impl Conn {
    /// Checks a COPY FROM STDIN and makes it wait for data; returns how many
    /// columns each row must have.
    async fn start_copy_in(&self, cmd: CopyCommand) -> PgWireResult<Result<usize, SqlError>> {
        let checked = self
            .blocking(move |s| {
                let columns = s.copy_columns(&cmd)?.len();
                let limit = s.work_mem();
                Ok::<_, SqlError>((cmd, columns, limit))
            })
            .await?;
        Ok(checked.map(|(cmd, columns, limit)| {
            *self.copy.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(PendingCopy { cmd, data: Vec::new(), limit, overflowed: false });
            columns
        }))
    }

    /// Runs a COPY TO STDOUT: the response to stream and its command tag.
    async fn copy_out(
        &self,
        cmd: CopyCommand,
    ) -> PgWireResult<Result<(CopyResponse, String), SqlError>> {
        let (lines, done) = match self.run_fallible(move |s| s.copy_out(&cmd)).await? {
            Ok(out) => out,
            Err(e) => return Ok(Err(e)),
        };
        let columns = done.columns.len();
        let data: Vec<PgWireResult<CopyData>> =
            lines.into_iter().map(|l| Ok(CopyData::new(l.into_bytes().into()))).collect();
        Ok(Ok((CopyResponse::new(0, columns, stream::iter(data)), done.tag)))
    }
}

#[async_trait]
impl CopyHandler for Conn {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut pending = self.copy.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pending.as_mut() {
            if p.data.len() + copy_data.data.len() > p.limit {
                // Keep reading (the protocol requires it) but hold nothing more.
                p.overflowed = true;
                p.data = Vec::new();
            } else if !p.overflowed {
                p.data.extend_from_slice(&copy_data.data);
            }
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pending = self.copy.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(p) = pending else { return Err(internal("CopyDone without a COPY")) };
        let result = if p.overflowed {
            Err(SqlError::new(
                strata_sql::sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("COPY input exceeds work_mem ({} bytes)", p.limit),
            ))
        } else {
            self.run_fallible(move |s| s.copy_in(&p.cmd, &p.data)).await?
        };
        client.set_transaction_status(self.status());
        match result {
            Ok(r) => {
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(r.tag)))
                    .await?;
                Ok(())
            }
            Err(e) => Err(user_error(e)),
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copy.lock().unwrap_or_else(PoisonError::into_inner).take();
        client.set_transaction_status(self.status());
        user_error(SqlError::new(
            strata_sql::sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}

#[async_trait]
impl SimpleQueryHandler for Conn {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let sql = query.query;
        if sql.trim().trim_matches(';').trim().is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()))
                .await?;
        } else {
            let (script, error) = self
                .run_statement(move |s| {
                    let mut script = s.execute_script(&sql);
                    let error = script.error.take();
                    (script, error)
                })
                .await?;
            for r in script.results {
                send_result(client, r).await?;
            }
            let error = match (error, script.copy) {
                (Some(e), _) => Some(e),
                (None, Some(copy)) if copy.from_client => {
                    // Data follows as CopyData; on_copy_done loads it and
                    // sends ReadyForQuery.
                    match self.start_copy_in(copy).await? {
                        Ok(columns) => {
                            let response = CopyResponse::new(0, columns, stream::empty());
                            send_copy_in_response(client, response).await?;
                            client.set_state(PgWireConnectionState::CopyInProgress(false));
                            return Ok(());
                        }
                        Err(e) => Some(e),
                    }
                }
                (None, Some(copy)) => match self.copy_out(copy).await? {
                    Ok((response, done)) => {
                        send_copy_out(client, response, done).await?;
                        None
                    }
                    Err(e) => Some(e),
                },
                (None, None) => None,
            };
            if let Some(e) = error {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(error_info(&e, "ERROR").into()))
                    .await?;
            }
        }
        let status = self.status();
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // on_query above answers simple queries itself.
        Err(internal("simple query path bypassed"))
    }
}

/// Parses and describes statements at Parse time, on the connection's session.
#[derive(Debug)]
pub struct Parser {
    session: Arc<Mutex<Session>>,
    activity: Arc<Activity>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.activity.touch();
        let session = self.session.clone();
        let sql = sql.to_string();
        let given: Vec<Option<Type>> = types.to_vec();
        let described = (move || {
            let mut s = session.lock().unwrap_or_else(PoisonError::into_inner);
            let prepared = s.prepare(&sql)?;
            let mut description = s.describe(&prepared)?;
            if description.params.len() < given.len() {
                description.params.resize(given.len(), None);
            }
            Ok::<_, SqlError>(Statement { prepared: Arc::new(prepared), description })
        })();
        described.map(Some).map_err(user_error)
    }

    fn get_parameter_types(&self, stmt: &Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .description
            .params
            .iter()
            .map(|t| t.as_ref().map_or(Type::TEXT, values::pg_type))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(values::fields(&stmt.description.columns, format.unwrap_or(&Format::UnifiedText)))
    }
}

impl Conn {
    fn decode_params(&self, portal: &Portal<Statement>) -> PgWireResult<Vec<Value>> {
        let stmt = &portal.statement;
        portal
            .parameters
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                // The client's declared type decides the binary layout; else ours.
                let ty = stmt
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| {
                        stmt.statement
                            .description
                            .params
                            .get(i)
                            .cloned()
                            .flatten()
                            .map(|t| values::pg_type(&t))
                    })
                    .unwrap_or(Type::TEXT);
                let binary = portal.parameter_format.is_binary(i);
                values::decode_param(bytes.as_deref(), &ty, binary).map_err(user_error)
            })
            .collect()
    }
}

#[async_trait]
impl ExtendedQueryHandler for Conn {
    type Statement = Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser { session: self.session.clone(), activity: self.activity.clone() })
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self._on_execute(client, message).await;
        // The session knows the transaction state; ReadyForQuery at Sync reports it.
        client.set_transaction_status(self.status());
        result
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let parser = self.query_parser();
        let ours = parser.get_parameter_types(&target.statement)?;
        let params = (0..ours.len().max(target.parameter_types.len()))
            .map(|i| {
                target.parameter_types.get(i).cloned().flatten().or_else(|| ours.get(i).cloned())
            })
            .map(|t| t.unwrap_or(Type::TEXT))
            .collect();
        let fields = parser.get_result_schema(&target.statement, None)?;
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = values::fields(
            &portal.statement.statement.description.columns,
            &portal.result_column_format,
        );
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let params = self.decode_params(portal)?;
        let prepared = Arc::clone(&portal.statement.statement.prepared);
        if let Some(copy) = CopyCommand::from_statement(prepared.statement()).map_err(user_error)? {
            if copy.from_client {
                let columns = self.start_copy_in(copy).await?.map_err(user_error)?;
                return Ok(Response::CopyIn(CopyResponse::new(0, columns, stream::empty())));
            }
            let (response, _) = self.copy_out(copy).await?.map_err(user_error)?;
            return Ok(Response::CopyOut(response));
        }
        let result = self
            .run_fallible(move |s| s.execute_prepared(&prepared, &params))
            .await?
            .map_err(user_error)?;
        for n in &result.notices {
            client.feed(notice(n)).await?;
        }
        if result.columns.is_empty() {
            return Ok(Response::Execution(Tag::new(&result.tag)));
        }
        let fields = Arc::new(values::fields(&result.columns, &portal.result_column_format));
        let rows: Vec<PgWireResult<_>> = result
            .rows
            .iter()
            .map(|row| Ok(values::data_row(row, &result.columns, &fields)))
            .collect();
        let mut response = QueryResponse::new(fields, stream::iter(rows));
        // pgwire appends the row count it sent: "SELECT 3", "INSERT 0 3".
        let command = match result.tag.rsplit_once(' ') {
            Some((command, count)) if count.parse::<u64>().is_ok() => command.to_string(),
            _ => result.tag.clone(),
        };
        response.set_command_tag(&command);
        Ok(Response::Query(response))
    }
}
