//! A session: one client's sequence of statements and its transaction state.
//!
//! Outside `BEGIN`, each statement is its own transaction; results are
//! buffered until it commits, so a serialization failure can be retried
//! transparently. Inside `BEGIN ... COMMIT`, a failing statement puts the
//! transaction in the aborted state: everything but `ROLLBACK` (or `ROLLBACK
//! TO SAVEPOINT`) fails with SQLSTATE 25P02 until it ends, as in PostgreSQL.
//!
//! REPEATABLE READ is snapshot isolation. READ COMMITTED is accepted and also
//! runs as snapshot isolation (`SHOW transaction_isolation` says so);
//! SERIALIZABLE validates reads too.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use strata_txn::{Isolation, Savepoint, Store, Txn, clock};

use crate::catalog;
use crate::copy::CopyCommand;
use crate::ddl;
use crate::dml;
use crate::error::{Result, SqlError, sqlstate};
use crate::exec::{self, Cx, Interrupt, Limits, Profile, Row};
use crate::plan::{Access, Binder, JoinKind, Node, OutputColumn, Planned, SetOpKind};
use crate::types::{DataType, Value};

/// What one statement produced.
#[derive(Clone, Debug, Default)]
pub struct StatementResult {
    /// Empty for statements that return no rows.
    pub columns: Vec<OutputColumn>,
    pub rows: Vec<Row>,
    /// The command tag, as PostgreSQL reports it (`INSERT 0 3`, `SELECT 2`).
    pub tag: String,
    /// Rows affected or returned.
    pub count: u64,
    pub notices: Vec<String>,
}

impl StatementResult {
    fn command(tag: &str) -> StatementResult {
        StatementResult { tag: tag.to_string(), ..Default::default() }
    }
}

/// The transaction state of a session, as shown in PostgreSQL's ReadyForQuery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InTransaction,
    Failed,
}

struct Open {
    txn: Txn,
    savepoints: Vec<(String, Savepoint)>,
    serializable: bool,
    read_only: bool,
    statements: u32,
}

enum State {
    Idle,
    Open(Box<Open>),
    /// Aborted: the transaction is kept only to answer ROLLBACK TO.
    Failed(Box<Open>),
}

/// Bytes a query may hold for sorts, hashes and groups unless SET otherwise.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;

/// Attempts of an autocommit statement that meets serialization failures.
const AUTOCOMMIT_ATTEMPTS: u32 = 10;

fn default_settings() -> BTreeMap<String, String> {
    [
        ("application_name", ""),
        ("client_encoding", "UTF8"),
        ("server_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("intervalstyle", "postgres"),
        ("extra_float_digits", "1"),
        ("search_path", "\"$user\", public"),
        ("default_transaction_isolation", "read committed"),
        ("default_transaction_read_only", "off"),
        ("statement_timeout", "0"),
        // Accepted and shown; Strata's commits are always durable when
        // acknowledged (the store's durability mode decides, not the session).
        ("synchronous_commit", "on"),
        ("lock_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("timezone", "UTC"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("server_version", "15.0 (Strata 0.1.0)"),
        ("server_version_num", "150000"),
        ("is_superuser", "on"),
        ("work_mem", "268435456"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What a statement will take and return, found without running it (the
/// extended protocol's Describe).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Description {
    /// Inferred types of `$1..$n`; `None` where nothing constrains one.
    pub params: Vec<Option<DataType>>,
    /// Empty for statements that return no rows.
    pub columns: Vec<OutputColumn>,
}

/// A statement parsed once, to be described and run any number of times (the
/// wire protocol's prepared statements; embedded callers skip re-parsing).
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Names the statement's entry in a session's plan cache.
    id: u64,
    statement: ast::Statement,
    /// The `AS OF SYSTEM TIME` clause, if the query had one.
    as_of: Option<String>,
}

impl Prepared {
    fn new(statement: ast::Statement, as_of: Option<String>) -> Prepared {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Prepared { id, statement, as_of }
    }

    pub fn statement(&self) -> &ast::Statement {
        &self.statement
    }
}

/// One client's session.
pub struct Session {
    store: Store,
    state: State,
    settings: BTreeMap<String, String>,
    interrupt: Interrupt,
    hooks: crate::database::Hooks,
    /// Bound plans of prepared SELECTs, by [`Prepared`] id.
    plans: HashMap<u64, CachedPlan>,
    /// The prepared statement running now, whose plan may be cached.
    running_prepared: Option<u64>,
}

/// How many prepared plans a session keeps; past it the cache starts over.
const PLAN_CACHE_ENTRIES: usize = 256;

/// A prepared SELECT's bound plan, reused while every table descriptor it
/// was bound against reads the same bytes in the running transaction
/// (DDL rewrites the descriptor, so any change of schema rebinds). Plans that
/// read the system catalogs are never cached: their rows are computed at
/// bind time.
struct CachedPlan {
    planned: Arc<Planned>,
    descriptors: Vec<(String, Vec<u8>)>,
}

impl CachedPlan {
    fn still_valid(&self, txn: &mut Txn) -> Result<bool> {
        for (name, bytes) in &self.descriptors {
            if catalog::descriptor_bytes(txn, name)?.as_ref() != Some(bytes) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("status", &self.status()).finish_non_exhaustive()
    }
}

/// Parses SQL text, mapping parser errors to 42601 with a position.
pub fn parse(sql: &str) -> Result<Vec<ast::Statement>> {
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| syntax_error(sql, e))
}

fn syntax_error(sql: &str, e: ParserError) -> SqlError {
    let text = match &e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => "statement too deeply nested".to_string(),
    };
    // sqlparser reports "... at Line: L, Column: C"; PostgreSQL reports a
    // 1-based character offset.
    let position = text.rsplit_once("Line: ").and_then(|(_, rest)| {
        let (line, col) = rest.split_once(", Column: ")?;
        let line: usize = line.trim().parse().ok()?;
        let col: usize = col.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
        let before: usize =
            sql.split_inclusive('\n').take(line - 1).map(|l| l.chars().count()).sum();
        Some(before + col)
    });
    let message = text.split(" at Line:").next().unwrap_or(&text).trim().to_string();
    let message = if message.is_empty() {
        "syntax error".to_string()
    } else {
        format!("syntax error: {message}")
    };
    let err = SqlError::new(sqlstate::SYNTAX_ERROR, message);
    match position {
        Some(p) => err.with_position(p),
        None => err,
    }
}

/// Splits a trailing `AS OF SYSTEM TIME <timestamp>` off a query.
fn split_as_of(sql: &str) -> Option<(&str, &str)> {
    let lower = sql.to_ascii_lowercase();
    let at = lower.rfind("as of system time")?;
    let rest = sql[at + "as of system time".len()..].trim().trim_end_matches(';').trim();
    Some((&sql[..at], rest))
}

fn micros_since_2000(ts: u64) -> i64 {
    (clock::to_millis(ts) as i64 - 946_684_800_000) * 1000
}

impl Session {
    pub fn new(store: Store) -> Session {
        Session {
            store,
            state: State::Idle,
            settings: default_settings(),
            interrupt: Interrupt::default(),
            hooks: Default::default(),
            plans: HashMap::new(),
            running_prepared: None,
        }
    }

    pub(crate) fn with_hooks(mut self, hooks: crate::database::Hooks) -> Session {
        self.hooks = hooks;
        self
    }

    pub fn status(&self) -> TxnStatus {
        match self.state {
            State::Idle => TxnStatus::Idle,
            State::Open(_) => TxnStatus::InTransaction,
            State::Failed(_) => TxnStatus::Failed,
        }
    }

    /// A session setting, as SHOW reports it.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(&name.to_lowercase()).map(String::as_str)
    }

    /// A handle that cancels this session's running statement from another
    /// thread (the statement fails with SQLSTATE 57014).
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// Bytes a statement may hold for sorts, hashes, groups and COPY input.
    pub fn work_mem(&self) -> usize {
        self.setting("work_mem").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MEMORY_LIMIT)
    }

    /// The bounds of a statement starting now.
    fn limits(&self) -> Limits {
        let memory = self.work_mem();
        let timeout = self.setting("statement_timeout").and_then(parse_duration_ms).unwrap_or(0);
        let deadline = (timeout > 0)
            .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout));
        Limits { memory, interrupt: self.interrupt.clone(), deadline }
    }

    /// Runs every statement of `sql`; stops at the first error.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<Vec<StatementResult>> {
        self.interrupt.reset();
        if let Some((query, at)) = split_as_of(sql) {
            return self.as_of(query, at, params).map(|r| vec![r]);
        }
        let statements = parse(sql)?;
        let mut out = Vec::with_capacity(statements.len());
        for s in &statements {
            out.push(self.statement(s, params)?);
        }
        Ok(out)
    }

    /// Runs the statements of `sql` in order, as the wire protocol's simple
    /// query does. A COPY ends the script: it is returned for the caller to
    /// run with its data ([`Session::copy_in`], [`Session::copy_out`]).
    pub fn execute_script(&mut self, sql: &str) -> Script {
        self.interrupt.reset();
        let mut script = Script::default();
        if let Some((query, at)) = split_as_of(sql) {
            match self.as_of(query, at, &[]) {
                Ok(r) => script.results.push(r),
                Err(e) => script.error = Some(e),
            }
            return script;
        }
        let statements = match parse(sql) {
            Ok(s) => s,
            Err(e) => {
                script.error = Some(e);
                return script;
            }
        };
        if self.implicit_transaction(&statements) {
            return self.run_implicit_transaction(&statements);
        }
        for (i, s) in statements.iter().enumerate() {
            let copy = match CopyCommand::from_statement(s) {
                Ok(copy) => copy,
                Err(e) => {
                    script.error = Some(e);
                    return script;
                }
            };
            if let Some(copy) = copy {
                if i + 1 < statements.len() {
                    script.error = Some(SqlError::new(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        "COPY must be the last statement of a query string",
                    ));
                } else {
                    script.copy = Some(copy);
                }
                return script;
            }
            match self.statement(s, &[]) {
                Ok(r) => script.results.push(r),
                Err(e) => {
                    script.error = Some(e);
                    return script;
                }
            }
        }
        script
    }

    /// Whether a multi-statement query string runs as one implicit
    /// transaction, as PostgreSQL runs it: outside a transaction block, when
    /// it has no transaction control (BEGIN, COMMIT, SAVEPOINT, ...) or COPY.
    fn implicit_transaction(&self, statements: &[ast::Statement]) -> bool {
        use ast::Statement as S;
        matches!(self.state, State::Idle)
            && statements.len() > 1
            && statements.iter().all(|s| {
                !matches!(
                    s,
                    S::StartTransaction { .. }
                        | S::Commit { .. }
                        | S::Rollback { .. }
                        | S::Savepoint { .. }
                        | S::ReleaseSavepoint { .. }
                        | S::Copy { .. }
                )
            })
    }

    /// Runs `statements` in one transaction: all take effect or none. A
    /// serialization failure at any point runs them all again (their results
    /// are not out yet), as a single autocommit statement is.
    fn run_implicit_transaction(&mut self, statements: &[ast::Statement]) -> Script {
        let mut attempt = 1;
        loop {
            let mut script = Script::default();
            if let Err(e) = self.begin(&[]) {
                script.error = Some(e);
                return script;
            }
            for s in statements {
                match self.statement(s, &[]) {
                    Ok(r) => script.results.push(r),
                    Err(e) => {
                        script.error = Some(e);
                        break;
                    }
                }
            }
            let outcome = match script.error.take() {
                Some(e) => Err(e),
                None => self.commit().map(|_| ()),
            };
            // Whatever happened, the implicit block is over.
            self.state = State::Idle;
            match outcome {
                Err(e) if e.is_retryable() && attempt < AUTOCOMMIT_ATTEMPTS => attempt += 1,
                Err(e) => {
                    script.error = Some(e);
                    return script;
                }
                Ok(()) => return script,
            }
        }
    }

    /// The columns a COPY reads or writes, in order.
    pub fn copy_columns(&mut self, cmd: &CopyCommand) -> Result<Vec<String>> {
        if !cmd.columns.is_empty() {
            return Ok(cmd.columns.clone());
        }
        let source = match (&cmd.table, &cmd.query) {
            (_, Some(q)) => Prepared::new(ast::Statement::Query(q.clone()), None),
            (Some(table), None) => {
                self.prepare(&format!("SELECT * FROM {}", quote_ident(table)))?
            }
            (None, None) => return Err(SqlError::internal("COPY without a source")),
        };
        Ok(self.describe(&source)?.columns.into_iter().map(|c| c.name).collect())
    }

    /// Loads `COPY ... FROM STDIN` input into the command's table as one
    /// statement: every row or, on the first bad one, none. Returns the
    /// `COPY n` result.
    pub fn copy_in(&mut self, cmd: &CopyCommand, data: &[u8]) -> Result<StatementResult> {
        self.interrupt.reset();
        let table = cmd.table.as_deref().ok_or_else(|| SqlError::internal("COPY FROM a query"))?;
        let quote = quote_ident;
        let columns = self.copy_columns(cmd)?;
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = self.prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(table),
            columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            placeholders.join(", ")
        ))?;
        let rows = cmd.parse_rows(data)?;
        let own_transaction = matches!(self.state, State::Idle);
        if own_transaction {
            self.execute("BEGIN", &[])?;
        }
        let loaded = rows.iter().enumerate().try_for_each(|(line, fields)| {
            let at = || format!("COPY {table}, line {}", line + 1 + usize::from(cmd.header));
            if fields.len() != columns.len() {
                let what = if fields.len() < columns.len() {
                    format!("missing data for column \"{}\"", columns[fields.len()])
                } else {
                    "extra data after last expected column".to_string()
                };
                return Err(SqlError::new("22P04", what).with_detail(at()));
            }
            let params: Vec<Value> =
                fields.iter().map(|f| f.clone().map_or(Value::Null, Value::Text)).collect();
            self.statement(insert.statement(), &params).map(|_| ()).map_err(|e| {
                let detail = e.detail.clone().map_or_else(at, |d| format!("{d} ({})", at()));
                e.with_detail(detail)
            })
        });
        match loaded {
            Ok(()) if own_transaction => {
                let tag = self.execute("COMMIT", &[])?.pop().map(|r| r.tag);
                if tag.as_deref() != Some("COMMIT") {
                    return Err(SqlError::internal("COPY's transaction did not commit"));
                }
            }
            Ok(()) => {}
            Err(e) => {
                if own_transaction {
                    self.state = State::Idle;
                }
                return Err(e);
            }
        }
        let mut r = StatementResult::command(&format!("COPY {}", rows.len()));
        r.count = rows.len() as u64;
        Ok(r)
    }

    /// Runs `COPY ... TO STDOUT`: the rows as lines in the command's format
    /// (a header first if asked), and the `COPY n` result.
    pub fn copy_out(&mut self, cmd: &CopyCommand) -> Result<(Vec<String>, StatementResult)> {
        self.interrupt.reset();
        let query = match (&cmd.table, &cmd.query) {
            (_, Some(q)) => ast::Statement::Query(q.clone()),
            (Some(table), None) => {
                let quote = quote_ident;
                let list = if cmd.columns.is_empty() {
                    "*".to_string()
                } else {
                    cmd.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
                };
                let mut parsed = parse(&format!("SELECT {list} FROM {}", quote(table)))?;
                parsed.remove(0)
            }
            (None, None) => return Err(SqlError::internal("COPY without a source")),
        };
        let result = self.statement(&query, &[])?;
        let types: Vec<DataType> = result.columns.iter().map(|c| c.ty.clone()).collect();
        let mut lines = Vec::with_capacity(result.rows.len() + 1);
        if cmd.header {
            let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
            lines.push(cmd.header_line(&names));
        }
        lines.extend(result.rows.iter().map(|row| cmd.format_row(row, &types)));
        let mut done = StatementResult::command(&format!("COPY {}", result.rows.len()));
        done.count = result.rows.len() as u64;
        Ok((lines, done))
    }

    /// Parses one statement for [`Session::execute_prepared`]. More than one
    /// statement is a syntax error, as in PostgreSQL's extended protocol.
    pub fn prepare(&self, sql: &str) -> Result<Prepared> {
        let (text, as_of) = match split_as_of(sql) {
            Some((query, at)) => (query, Some(at.to_string())),
            None => (sql, None),
        };
        let mut statements = parse(text)?;
        match statements.len() {
            1 => Ok(Prepared::new(statements.remove(0), as_of)),
            0 => Err(SqlError::new(sqlstate::SYNTAX_ERROR, "empty statement")),
            _ => Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            )),
        }
    }

    /// Runs a prepared statement with `params` for `$1..$n`.
    pub fn execute_prepared(
        &mut self,
        prepared: &Prepared,
        params: &[Value],
    ) -> Result<StatementResult> {
        self.interrupt.reset();
        match &prepared.as_of {
            Some(at) => self.as_of_statement(&prepared.statement, at, params),
            None => {
                self.running_prepared = Some(prepared.id);
                let result = self.statement(&prepared.statement, params);
                self.running_prepared = None;
                result
            }
        }
    }

    /// The parameter types and result columns of a prepared statement, found
    /// by binding it without running it: inside the open transaction (so
    /// tables it created are visible), or in a fresh snapshot when idle.
    pub fn describe(&mut self, prepared: &Prepared) -> Result<Description> {
        use ast::Statement as S;
        let stmt = &prepared.statement;
        match stmt {
            S::ShowVariable { variable } => {
                let columns = self.show(variable)?.columns;
                return Ok(Description { params: Vec::new(), columns });
            }
            S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Set(_) => return Ok(Description::default()),
            _ => {}
        }
        let (result, params) = match std::mem::replace(&mut self.state, State::Idle) {
            State::Open(mut open) => {
                let r = self.bind_and_run(&mut open.txn, open.read_only, stmt, &[], true);
                // A statement that fails analysis aborts the transaction, as in PostgreSQL.
                self.state = if r.is_ok() { State::Open(open) } else { State::Failed(open) };
                r?
            }
            failed @ State::Failed(_) => {
                self.state = failed;
                return Err(SqlError::new(
                    sqlstate::IN_FAILED_SQL_TRANSACTION,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
            }
            State::Idle => {
                let mut txn = self.store.begin_read_only();
                self.bind_and_run(&mut txn, true, stmt, &[], true)?
            }
        };
        Ok(Description { params, columns: result.columns })
    }

    /// Runs one parsed statement.
    pub fn statement(
        &mut self,
        stmt: &ast::Statement,
        params: &[Value],
    ) -> Result<StatementResult> {
        use ast::Statement as S;
        match stmt {
            S::StartTransaction { modes, .. } => return self.begin(modes),
            S::Commit { .. } => return self.commit(),
            S::Rollback { savepoint: None, .. } => {
                self.state = State::Idle;
                return Ok(StatementResult::command("ROLLBACK"));
            }
            S::Rollback { savepoint: Some(name), .. } => {
                return self.rollback_to(&crate::plan::ident(name));
            }
            S::Savepoint { name } => return self.savepoint(&crate::plan::ident(name)),
            S::ReleaseSavepoint { name } => return self.release(&crate::plan::ident(name)),
            S::Set(set) => return self.set(set),
            S::Copy { .. } => {
                return Err(SqlError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "COPY needs a client that streams its data: use Session::copy_in or copy_out",
                ));
            }
            S::ShowVariable { variable } => return self.show(variable),
            _ => {}
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Failed(open) => {
                self.state = State::Failed(open);
                Err(SqlError::new(
                    sqlstate::IN_FAILED_SQL_TRANSACTION,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ))
            }
            State::Open(mut open) => {
                open.statements += 1;
                let result = self.run(&mut open.txn, open.read_only, stmt, params);
                self.state = if result.is_ok() { State::Open(open) } else { State::Failed(open) };
                result
            }
            State::Idle => {
                let mut attempt = 1;
                loop {
                    let (serializable, read_only) = self.default_mode();
                    let mut txn = self.store.begin_with(if serializable {
                        Isolation::Serializable
                    } else {
                        Isolation::Snapshot
                    });
                    let result = self.run(&mut txn, read_only, stmt, params).and_then(|r| {
                        txn.commit().map_err(|e| self.hooks.sql_error(e))?;
                        Ok(r)
                    });
                    match result {
                        Err(e) if e.is_retryable() && attempt < AUTOCOMMIT_ATTEMPTS => attempt += 1,
                        other => return other,
                    }
                }
            }
        }
    }

    fn default_mode(&self) -> (bool, bool) {
        let serializable = self.setting("default_transaction_isolation") == Some("serializable");
        let read_only = self.setting("default_transaction_read_only") == Some("on");
        (serializable, read_only)
    }

    fn begin(&mut self, modes: &[ast::TransactionMode]) -> Result<StatementResult> {
        if !matches!(self.state, State::Idle) {
            let mut r = StatementResult::command("BEGIN");
            r.notices.push("there is already a transaction in progress".into());
            return Ok(r);
        }
        let (mut serializable, mut read_only) = self.default_mode();
        for m in modes {
            match m {
                ast::TransactionMode::IsolationLevel(level) => {
                    serializable = matches!(level, ast::TransactionIsolationLevel::Serializable);
                }
                ast::TransactionMode::AccessMode(mode) => {
                    read_only = matches!(mode, ast::TransactionAccessMode::ReadOnly)
                }
            }
        }
        let txn = self.store.begin_with(if serializable {
            Isolation::Serializable
        } else {
            Isolation::Snapshot
        });
        self.state = State::Open(Box::new(Open {
            txn,
            savepoints: Vec::new(),
            serializable,
            read_only,
            statements: 0,
        }));
        Ok(StatementResult::command("BEGIN"))
    }

    fn commit(&mut self) -> Result<StatementResult> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => {
                let mut r = StatementResult::command("COMMIT");
                r.notices.push("there is no transaction in progress".into());
                Ok(r)
            }
            State::Failed(_) => Ok(StatementResult::command("ROLLBACK")),
            State::Open(open) => {
                open.txn.commit().map_err(|e| self.hooks.sql_error(e))?;
                Ok(StatementResult::command("COMMIT"))
            }
        }
    }

    fn open_mut(&mut self, what: &str) -> Result<&mut Open> {
        match &mut self.state {
            State::Open(o) | State::Failed(o) => Ok(o),
            State::Idle => Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                format!("{what} can only be used in transaction blocks"),
            )),
        }
    }

    fn savepoint(&mut self, name: &str) -> Result<StatementResult> {
        if matches!(self.state, State::Failed(_)) {
            return Err(SqlError::new(
                sqlstate::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let open = self.open_mut("SAVEPOINT")?;
        let sp = open.txn.savepoint();
        open.savepoints.push((name.to_string(), sp));
        Ok(StatementResult::command("SAVEPOINT"))
    }

    fn find_savepoint(open: &Open, name: &str) -> Result<usize> {
        open.savepoints
            .iter()
            .rposition(|(n, _)| n == name)
            .ok_or_else(|| SqlError::new("3B001", format!("savepoint \"{name}\" does not exist")))
    }

    fn rollback_to(&mut self, name: &str) -> Result<StatementResult> {
        let mut open = match std::mem::replace(&mut self.state, State::Idle) {
            State::Open(o) | State::Failed(o) => o,
            State::Idle => {
                return Err(SqlError::new(
                    sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                    "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                ));
            }
        };
        match Self::find_savepoint(&open, name) {
            Ok(i) => {
                let sp = open.savepoints[i].1.clone();
                open.txn.rollback_to(&sp);
                open.savepoints.truncate(i + 1);
                // Rolling back to a savepoint leaves the aborted state.
                self.state = State::Open(open);
                Ok(StatementResult::command("ROLLBACK"))
            }
            Err(e) => {
                self.state = State::Failed(open);
                Err(e)
            }
        }
    }

    fn release(&mut self, name: &str) -> Result<StatementResult> {
        if matches!(self.state, State::Failed(_)) {
            return Err(SqlError::new(
                sqlstate::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let open = self.open_mut("RELEASE SAVEPOINT")?;
        let i = Self::find_savepoint(open, name)?;
        open.savepoints.truncate(i);
        Ok(StatementResult::command("RELEASE"))
    }

    fn set(&mut self, set: &ast::Set) -> Result<StatementResult> {
        match set {
            ast::Set::SingleAssignment { variable, values, .. } => {
                let name = variable.to_string().to_lowercase();
                let value = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        ast::Expr::Identifier(i) => i.value.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                if name == "transaction_isolation" || name == "transaction isolation level" {
                    return self
                        .set_transaction_isolation(value.eq_ignore_ascii_case("serializable"));
                }
                if !self.settings.contains_key(&name) && !name.contains('.') {
                    return Err(SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                }
                let value = if value.eq_ignore_ascii_case("default") {
                    default_settings().get(&name).cloned().unwrap_or_default()
                } else {
                    value
                };
                if name == "statement_timeout" && parse_duration_ms(&value).is_none() {
                    return Err(SqlError::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"{name}\": \"{value}\""),
                    ));
                }
                if name == "default_transaction_isolation" {
                    let v = value.to_lowercase();
                    if !["read uncommitted", "read committed", "repeatable read", "serializable"]
                        .contains(&v.as_str())
                    {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("invalid value for parameter \"{name}\": \"{value}\""),
                        ));
                    }
                    self.settings.insert(name, v);
                } else {
                    self.settings.insert(name, value);
                }
                Ok(StatementResult::command("SET"))
            }
            ast::Set::SetTransaction { modes, session: true, .. } => {
                for m in modes {
                    match m {
                        ast::TransactionMode::IsolationLevel(l) => {
                            let name = match l {
                                ast::TransactionIsolationLevel::Serializable => "serializable",
                                ast::TransactionIsolationLevel::RepeatableRead => "repeatable read",
                                ast::TransactionIsolationLevel::ReadUncommitted => {
                                    "read uncommitted"
                                }
                                _ => "read committed",
                            };
                            self.settings
                                .insert("default_transaction_isolation".into(), name.into());
                        }
                        ast::TransactionMode::AccessMode(a) => {
                            let v = if matches!(a, ast::TransactionAccessMode::ReadOnly) {
                                "on"
                            } else {
                                "off"
                            };
                            self.settings.insert("default_transaction_read_only".into(), v.into());
                        }
                    }
                }
                Ok(StatementResult::command("SET"))
            }
            ast::Set::SetTransaction { modes, session: false, .. } => {
                for m in modes {
                    match m {
                        ast::TransactionMode::IsolationLevel(l) => {
                            self.set_transaction_isolation(matches!(
                                l,
                                ast::TransactionIsolationLevel::Serializable
                            ))?;
                        }
                        ast::TransactionMode::AccessMode(a) => {
                            let ro = matches!(a, ast::TransactionAccessMode::ReadOnly);
                            self.open_mut("SET TRANSACTION")?.read_only = ro;
                        }
                    }
                }
                Ok(StatementResult::command("SET"))
            }
            ast::Set::SetTimeZone { .. } => Ok(StatementResult::command("SET")),
            ast::Set::SetNames { .. } | ast::Set::SetNamesDefault {} => {
                Ok(StatementResult::command("SET"))
            }
            other => Err(SqlError::unsupported(format!("{other}"))),
        }
    }

    fn set_transaction_isolation(&mut self, serializable: bool) -> Result<StatementResult> {
        let store = self.store.clone();
        let open = self.open_mut("SET TRANSACTION")?;
        if open.statements > 0 {
            return Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                "SET TRANSACTION ISOLATION LEVEL must be called before any query",
            ));
        }
        open.serializable = serializable;
        open.txn = store.begin_with(if serializable {
            Isolation::Serializable
        } else {
            Isolation::Snapshot
        });
        Ok(StatementResult::command("SET"))
    }

    fn show(&mut self, variable: &[ast::Ident]) -> Result<StatementResult> {
        let name = variable.iter().map(|i| i.value.to_lowercase()).collect::<Vec<_>>().join(" ");
        let one = |col: &str, value: String| StatementResult {
            columns: vec![OutputColumn { name: col.to_string(), ty: DataType::Text }],
            rows: vec![vec![Value::Text(value)]],
            tag: "SHOW".into(),
            count: 1,
            notices: Vec::new(),
        };
        match name.as_str() {
            "transaction isolation level" | "transaction_isolation" => {
                let serializable = match &self.state {
                    State::Open(o) | State::Failed(o) => o.serializable,
                    State::Idle => self.default_mode().0,
                };
                // READ COMMITTED runs as snapshot isolation: say so.
                Ok(one(
                    "transaction_isolation",
                    if serializable { "serializable" } else { "repeatable read" }.into(),
                ))
            }
            "all" => Ok(StatementResult {
                columns: vec![
                    OutputColumn { name: "name".into(), ty: DataType::Text },
                    OutputColumn { name: "setting".into(), ty: DataType::Text },
                ],
                count: self.settings.len() as u64,
                rows: self
                    .settings
                    .iter()
                    .map(|(k, v)| vec![Value::Text(k.clone()), Value::Text(v.clone())])
                    .collect(),
                tag: "SHOW".into(),
                notices: Vec::new(),
            }),
            _ => match self.settings.get(&name) {
                Some(v) => Ok(one(&name, v.clone())),
                // Read-only settings from the embedder (`Database::with_settings`).
                None => match self.hooks.settings.as_ref().and_then(|get| get(&name)) {
                    Some(v) => {
                        let mut r = one(&name, String::new());
                        r.rows = vec![vec![v.map_or(Value::Null, Value::Text)]];
                        Ok(r)
                    }
                    None => Err(SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    )),
                },
            },
        }
    }

    /// A query at a past timestamp: an HLC timestamp (integer) or a timestamp literal.
    fn as_of(&mut self, query: &str, at: &str, params: &[Value]) -> Result<StatementResult> {
        let statements = parse(query)?;
        let [stmt] = statements.as_slice() else {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "AS OF SYSTEM TIME applies to a single SELECT",
            ));
        };
        self.as_of_statement(stmt, at, params)
    }

    fn as_of_statement(
        &mut self,
        stmt: &ast::Statement,
        at: &str,
        params: &[Value],
    ) -> Result<StatementResult> {
        if !matches!(stmt, ast::Statement::Query(_)) {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "AS OF SYSTEM TIME applies to a single SELECT",
            ));
        }
        if !matches!(self.state, State::Idle) {
            return Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                "AS OF SYSTEM TIME cannot be used inside a transaction block",
            ));
        }
        let at = at.trim_matches('\'');
        let ts = match at.parse::<u64>() {
            Ok(ts) => ts,
            Err(_) => match Value::parse(at, &DataType::Timestamp)? {
                Value::Timestamp(micros) => {
                    clock::from_millis(((micros / 1000) + 946_684_800_000) as u64)
                }
                _ => return Err(SqlError::internal("timestamp parse")),
            },
        };
        let mut txn = self.store.begin_at(ts)?;
        let result = self.run(&mut txn, true, stmt, params);
        txn.commit()?;
        result
    }

    /// Runs a statement inside `txn`.
    fn run(
        &mut self,
        txn: &mut Txn,
        read_only: bool,
        stmt: &ast::Statement,
        params: &[Value],
    ) -> Result<StatementResult> {
        self.bind_and_run(txn, read_only, stmt, params, false).map(|(r, _)| r)
    }

    /// Binds a query, or for a prepared statement reuses its cached plan
    /// when that is still valid in this transaction.
    fn plan_query(&mut self, binder: &mut Binder<'_>, q: &ast::Query) -> Result<Arc<Planned>> {
        let plan = |binder: &mut Binder<'_>| -> Result<Arc<Planned>> {
            let mut planned = binder.query(q)?;
            crate::plan::prune_columns(&mut planned.node);
            Ok(Arc::new(planned))
        };
        let Some(id) = self.running_prepared else { return plan(binder) };
        if let Some(cached) = self.plans.get(&id)
            && cached.still_valid(binder.txn)?
        {
            return Ok(cached.planned.clone());
        }
        let planned = plan(binder)?;
        if binder.cacheable {
            let descriptors = std::mem::take(&mut binder.tables_read);
            if self.plans.len() >= PLAN_CACHE_ENTRIES {
                self.plans.clear();
            }
            self.plans.insert(id, CachedPlan { planned: planned.clone(), descriptors });
        }
        Ok(planned)
    }

    /// Binds `stmt` in `txn` and, unless `describe_only`, runs it. Returns the
    /// result (only its columns when describing) and the inferred parameter types.
    fn bind_and_run(
        &mut self,
        txn: &mut Txn,
        read_only: bool,
        stmt: &ast::Statement,
        params: &[Value],
        describe_only: bool,
    ) -> Result<(StatementResult, Vec<Option<DataType>>)> {
        use ast::Statement as S;
        let now = micros_since_2000(txn.start_ts());
        let limits = self.limits();
        let writes = !matches!(stmt, S::Query(_) | S::Explain { .. });
        if writes && !describe_only && (read_only || txn.is_read_only()) {
            let what = stmt.to_string().split_whitespace().next().unwrap_or("").to_uppercase();
            return Err(SqlError::new(
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                format!("cannot execute {what} in a read-only transaction"),
            ));
        }
        let mut binder = Binder::new(txn);
        binder.describe_only = describe_only;
        let notice_result = |tag: &str, notice: ddl::Notice| {
            let mut r = StatementResult::command(tag);
            r.notices.extend(notice);
            r
        };
        if describe_only {
            let columns = match stmt {
                S::Query(q) => binder.query(q)?.columns,
                S::Insert(ins) => {
                    let store = self.store.clone();
                    let mut rowid = || -> Result<i64> { Ok(store.clock().now()? as i64) };
                    dml::insert(&mut binder, ins, params, now, &limits, &mut rowid)?
                        .returning
                        .map(|(columns, _)| columns)
                        .unwrap_or_default()
                }
                S::Update(up) => dml::update(&mut binder, up, params, now, &limits)?
                    .returning
                    .map(|(columns, _)| columns)
                    .unwrap_or_default(),
                S::Delete(del) => dml::delete(&mut binder, del, params, now, &limits)?
                    .returning
                    .map(|(columns, _)| columns)
                    .unwrap_or_default(),
                S::Explain { .. } => {
                    vec![OutputColumn { name: "QUERY PLAN".into(), ty: DataType::Text }]
                }
                _ => Vec::new(),
            };
            let params = std::mem::take(&mut binder.param_types);
            return Ok((StatementResult { columns, ..Default::default() }, params));
        }
        let result = match stmt {
            S::Query(q) => {
                let planned = self.plan_query(&mut binder, q)?;
                let mut cx = Cx::new(binder.txn, params, now, &limits);
                let rows = collect(&planned.node, &mut cx)?;
                Ok(StatementResult {
                    tag: format!("SELECT {}", rows.len()),
                    count: rows.len() as u64,
                    columns: planned.columns.clone(),
                    rows,
                    notices: Vec::new(),
                })
            }
            S::Insert(ins) => {
                let store = self.store.clone();
                let mut rowid = || -> Result<i64> { Ok(store.clock().now()? as i64) };
                let changed = dml::insert(&mut binder, ins, params, now, &limits, &mut rowid)?;
                Ok(changed_result(format!("INSERT 0 {}", changed.count), changed))
            }
            S::Update(up) => {
                let changed = dml::update(&mut binder, up, params, now, &limits)?;
                Ok(changed_result(format!("UPDATE {}", changed.count), changed))
            }
            S::Delete(del) => {
                let changed = dml::delete(&mut binder, del, params, now, &limits)?;
                Ok(changed_result(format!("DELETE {}", changed.count), changed))
            }
            S::CreateTable(ct) => {
                Ok(notice_result("CREATE TABLE", ddl::create_table(&mut binder, ct)?))
            }
            S::CreateIndex(ci) => {
                Ok(notice_result("CREATE INDEX", ddl::create_index(&mut binder, ci)?))
            }
            S::AlterTable(at) => {
                Ok(notice_result("ALTER TABLE", ddl::alter_table(&mut binder, at)?))
            }
            S::Drop { object_type, if_exists, names, .. } => {
                let tag = format!("DROP {object_type}");
                Ok(notice_result(&tag, ddl::drop(&mut binder, object_type, *if_exists, names)?))
            }
            S::Explain { analyze, statement, .. } => {
                let S::Query(q) = &**statement else {
                    return Err(SqlError::unsupported("EXPLAIN of a statement other than SELECT"));
                };
                let planned = binder.query(q)?;
                let profile = if *analyze {
                    let p = Rc::new(RefCell::new(Profile::default()));
                    let mut cx = Cx::new(binder.txn, params, now, &limits);
                    cx.profile = Some(p.clone());
                    collect(&planned.node, &mut cx)?;
                    Some(p)
                } else {
                    None
                };
                let mut lines = Vec::new();
                explain(
                    &planned.node,
                    0,
                    profile.as_ref().map(|p| p.borrow()).as_deref(),
                    &mut lines,
                );
                let rows: Vec<Row> = lines.into_iter().map(|l| vec![Value::Text(l)]).collect();
                Ok(StatementResult {
                    columns: vec![OutputColumn { name: "QUERY PLAN".into(), ty: DataType::Text }],
                    tag: format!("EXPLAIN {}", rows.len()),
                    count: rows.len() as u64,
                    rows,
                    notices: Vec::new(),
                })
            }
            other => Err(SqlError::unsupported(format!(
                "statement {}",
                other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            ))),
        };
        Ok((result?, Vec::new()))
    }
}

/// What [`Session::execute_script`] did.
#[derive(Debug, Default)]
pub struct Script {
    /// The results of the statements that ran, in order.
    pub results: Vec<StatementResult>,
    /// The error that stopped the script.
    pub error: Option<SqlError>,
    /// The COPY that ended the script, to run with the client's data.
    pub copy: Option<CopyCommand>,
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A duration setting in milliseconds: `500`, `500ms`, `5s`, `2min`, `1h`.
fn parse_duration_ms(value: &str) -> Option<u64> {
    let v = value.trim().trim_matches('\'');
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn changed_result(tag: String, changed: dml::Changed) -> StatementResult {
    match changed.returning {
        Some((columns, rows)) => {
            StatementResult { columns, rows, tag, count: changed.count, notices: Vec::new() }
        }
        None => StatementResult { tag, count: changed.count, ..Default::default() },
    }
}

/// The most a statement's result may hold: a result is materialized before
/// it is sent (so that an autocommit statement can be retried whole), so a
/// bigger one fails with 54000 instead of exhausting the process.
const MAX_RESULT_BYTES: usize = 1 << 30;

fn collect(node: &Node, cx: &mut Cx<'_>) -> Result<Vec<Row>> {
    collect_within(node, cx, MAX_RESULT_BYTES)
}

fn collect_within(node: &Node, cx: &mut Cx<'_>, max_bytes: usize) -> Result<Vec<Row>> {
    let mut op = exec::build(node);
    let mut rows = Vec::new();
    let mut bytes = 0;
    while let Some(r) = op.next(cx)? {
        bytes += exec::row_size(&r);
        if bytes > max_bytes {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("the result is larger than {max_bytes} bytes"),
            )
            .with_detail(
                "Strata holds a statement's whole result before sending it; \
                 add a LIMIT or read the rows in parts."
                    .to_string(),
            ));
        }
        rows.push(r);
    }
    Ok(rows)
}

/// Renders a plan as PostgreSQL-style EXPLAIN lines.
pub fn explain(node: &Node, depth: usize, profile: Option<&Profile>, out: &mut Vec<String>) {
    let stats = |id: usize| {
        profile.and_then(|p| p.nodes.get(&id)).map_or(String::new(), |(rows, nanos)| {
            format!(" (actual rows={rows} time={:.3} ms)", *nanos as f64 / 1e6)
        })
    };
    let line = |depth: usize, label: &str, stats: &str| {
        if depth == 0 {
            format!("{label}{stats}")
        } else {
            format!("{}->  {label}{stats}", " ".repeat(depth * 6 - 4))
        }
    };
    let index_name = |table: &crate::catalog::Table, index: u32| {
        if index == crate::plan::PRIMARY {
            format!("{}_pkey", table.name)
        } else {
            table.indexes.iter().find(|i| i.id == index).map_or("?".into(), |i| i.name.clone())
        }
    };
    let join_kind = |kind: &JoinKind| match kind {
        JoinKind::Inner => "",
        JoinKind::Left => " Left Join",
        JoinKind::Right => " Right Join",
        JoinKind::Full => " Full Join",
    };
    let label = match node {
        Node::Values { rows } => format!("Values ({} rows)", rows.len()),
        Node::Series { .. } => "Function Scan on generate_series".to_string(),
        Node::Scan { table, access, .. } => match access {
            Access::Full => format!("Seq Scan on {}", table.name),
            Access::PrimaryPoint(_) => {
                format!("Index Scan using {}_pkey on {} (point lookup)", table.name, table.name)
            }
            Access::PrimaryRange { eq, lower, upper, reverse } => {
                let backward = if *reverse { " Backward" } else { "" };
                let bounded = !eq.is_empty() || lower.is_some() || upper.is_some();
                let range = if bounded { " (range)" } else { "" };
                format!("Index Scan{backward} using {}_pkey on {}{range}", table.name, table.name)
            }
            Access::IndexEq { index, reverse, lower, upper, .. } => {
                let backward = if *reverse { " Backward" } else { "" };
                let range = if lower.is_some() || upper.is_some() { " (range)" } else { "" };
                let name = index_name(table, *index);
                format!("Index Scan{backward} using {name} on {}{range}", table.name)
            }
        },
        Node::Filter { .. } => "Filter".to_string(),
        Node::Project { exprs, .. } => format!("Projection ({} columns)", exprs.len()),
        Node::Aggregate { group_by, streaming, .. } => {
            if group_by.is_empty() {
                "Aggregate".into()
            } else if *streaming {
                "GroupAggregate".into()
            } else {
                "HashAggregate".into()
            }
        }
        Node::Sort { keys, .. } => format!("Sort ({} keys)", keys.len()),
        Node::TopN { keys, .. } => format!("Top-N Sort ({} keys)", keys.len()),
        Node::Limit { .. } => "Limit".to_string(),
        Node::Distinct { .. } => "HashAggregate (distinct)".to_string(),
        Node::Join { kind, equi, .. } => {
            let k = join_kind(kind);
            if equi.is_empty() {
                format!("Nested Loop{k}")
            } else {
                format!("Hash{} Join", k.trim_end_matches(" Join"))
            }
        }
        Node::IndexJoin { kind, table, index, .. } => {
            format!(
                "Nested Loop{} (index lookup on {})",
                join_kind(kind),
                index_name(table, *index)
            )
        }
        Node::SetOp { op, all, .. } => {
            let name = match op {
                SetOpKind::Union => "Union",
                SetOpKind::Intersect => "Intersect",
                SetOpKind::Except => "Except",
            };
            format!("{name}{}", if *all { " All" } else { "" })
        }
    };
    out.push(line(depth, &label, &stats(node as *const Node as usize)));
    let children: Vec<&Node> = match node {
        Node::Values { .. } | Node::Series { .. } | Node::Scan { .. } => vec![],
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Aggregate { input, .. }
        | Node::Sort { input, .. }
        | Node::TopN { input, .. }
        | Node::Limit { input, .. }
        | Node::Distinct { input } => vec![input],
        Node::Join { left, right, .. } | Node::SetOp { left, right, .. } => vec![left, right],
        Node::IndexJoin { left, .. } => vec![left],
    };
    for c in children {
        explain(c, depth + 1, profile, out);
    }
    // The inner side of an index join: one lookup per outer row.
    if let Node::IndexJoin { table, index, right_filter, .. } = node {
        let filter = if right_filter.is_some() { " with filter" } else { "" };
        let label = format!(
            "Index Scan using {} on {} (lookup per outer row{filter})",
            index_name(table, *index),
            table.name
        );
        out.push(line(depth + 1, &label, &stats(exec::inner_profile_id(node))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_past_its_limit_fails_with_54000() {
        let db = crate::Database::open_temporary().unwrap();
        let mut txn = db.store().begin_read_only();
        let limits = Limits::memory(1 << 20);
        let node = Node::Series {
            start: crate::expr::Expr::Literal(Value::Int(1)),
            stop: crate::expr::Expr::Literal(Value::Int(i64::MAX)),
            step: None,
        };
        let mut cx = Cx::new(&mut txn, &[], 0, &limits);
        // 32 bytes a row: the 1,001st row of 32 KB passes the limit.
        let e = collect_within(&node, &mut cx, 32_000).unwrap_err();
        assert_eq!(e.code, sqlstate::PROGRAM_LIMIT_EXCEEDED, "{e:?}");
        let node = Node::Series {
            start: crate::expr::Expr::Literal(Value::Int(1)),
            stop: crate::expr::Expr::Literal(Value::Int(1000)),
            step: None,
        };
        assert_eq!(collect_within(&node, &mut cx, 32_000).unwrap().len(), 1000);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let e = parse("SELECT 1 FROM WHERE").unwrap_err();
        assert_eq!(e.code, sqlstate::SYNTAX_ERROR);
        assert!(e.position.is_some_and(|p| p >= 15), "{e:?}");
        let e = parse("SELEC 1").unwrap_err();
        assert_eq!(e.position, Some(1), "{e:?}");
    }

    #[test]
    fn as_of_clause_is_split_off() {
        assert_eq!(
            split_as_of("SELECT * FROM t AS OF SYSTEM TIME 123"),
            Some(("SELECT * FROM t ", "123"))
        );
        assert_eq!(split_as_of("select 1"), None);
    }
}
