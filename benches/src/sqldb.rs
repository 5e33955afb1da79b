//! One SQL client interface over embedded Strata, SQLite and PostgreSQL, so
//! that the YCSB and TPC-C drivers run the same statements against each.
//!
//! A driver writes its SQL once, with PostgreSQL's `$1` placeholders and
//! portable types (`INT`, `NUMERIC(p,s)`, `VARCHAR`, `TIMESTAMP`), and talks
//! to a [`SqlConn`]:
//!
//! - [`StrataConn`]: a `strata_sql::Session` on an embedded
//!   [`strata_sql::Database`]; statements are parsed once per connection and
//!   the parsed form reused (`Session::statement`).
//! - [`SqliteConn`]: a `rusqlite` connection to a file in WAL mode;
//!   placeholders are rewritten to `?N`; write transactions start with
//!   `BEGIN IMMEDIATE` (SQLite has one writer at a time; taking the write lock
//!   up front avoids the busy error of a read lock that cannot be upgraded).
//!   SQLite has no decimal type: `NUMERIC` values are bound and read as `f64`.
//! - [`PgConn`]: the synchronous `postgres` client; statements are prepared
//!   once per connection, and parameters converted to the types PostgreSQL
//!   inferred for them. Transactions run at REPEATABLE READ (snapshot
//!   isolation, like Strata's default).
//!
//! Errors are [`DbError`]s that say whether the transaction should be run
//! again (serialization failure, deadlock, SQLite busy): drivers retry those
//! and count them, and fail on anything else.
//!
//! Durability is chosen per run with [`Durability`] and made comparable:
//! `Sync` means a commit returns after its log record is fsynced (Strata:
//! WAL fsync, shared by concurrent committers; SQLite: WAL mode with
//! `synchronous=FULL`; PostgreSQL: `synchronous_commit=on`, the default);
//! `Buffered` lets each system acknowledge before the fsync (Strata: WAL
//! written to the OS, fsynced every 100 ms; SQLite: `synchronous=NORMAL`;
//! PostgreSQL: `synchronous_commit=off`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use strata_sql::{Database, Session, Value};
use strata_txn::TxnOptions;

/// A statement parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Null,
    Int(i64),
    Num(Decimal),
    Text(String),
}

/// A value read from a result row.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Null,
    Int(i64),
    Num(Decimal),
    Float(f64),
    Text(String),
    /// A date or timestamp (its value is not needed by the drivers).
    Time,
}

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The value as an integer (exact numerics with no fraction included).
    pub fn as_i64(&self) -> Result<i64, DbError> {
        match self {
            Datum::Int(i) => Ok(*i),
            Datum::Num(d) if d.fract().is_zero() => {
                d.to_i64().ok_or_else(|| DbError::fatal(format!("{d} is not an i64")))
            }
            Datum::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
            other => Err(DbError::fatal(format!("expected an integer, got {other:?}"))),
        }
    }

    /// The value as a decimal (floats, from SQLite, rounded to 6 places).
    pub fn as_decimal(&self) -> Result<Decimal, DbError> {
        match self {
            Datum::Int(i) => Ok(Decimal::from(*i)),
            Datum::Num(d) => Ok(*d),
            Datum::Float(f) => Decimal::from_f64(*f)
                .map(|d| d.round_dp(6))
                .ok_or_else(|| DbError::fatal(format!("{f} is not a decimal"))),
            other => Err(DbError::fatal(format!("expected a number, got {other:?}"))),
        }
    }

    pub fn as_str(&self) -> Result<&str, DbError> {
        match self {
            Datum::Text(s) => Ok(s),
            other => Err(DbError::fatal(format!("expected text, got {other:?}"))),
        }
    }
}

/// Rows of a query result.
pub type ResultRows = Vec<Vec<Datum>>;

/// An error from a database, classified for the retry loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    /// Run the transaction again: a serialization failure, a deadlock, or
    /// SQLite's busy/locked.
    pub retryable: bool,
    pub message: String,
}

impl DbError {
    pub fn retryable(message: impl Into<String>) -> DbError {
        DbError { retryable: true, message: message.into() }
    }

    pub fn fatal(message: impl Into<String>) -> DbError {
        DbError { retryable: false, message: message.into() }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.retryable {
            f.write_str(" (retryable)")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

impl From<strata_sql::SqlError> for DbError {
    fn from(e: strata_sql::SqlError) -> DbError {
        DbError { retryable: e.is_retryable(), message: e.to_string() }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        use rusqlite::ErrorCode as C;
        let retryable = matches!(e.sqlite_error_code(), Some(C::DatabaseBusy | C::DatabaseLocked));
        DbError { retryable, message: format!("sqlite: {e}") }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        use postgres::error::SqlState;
        let retryable = e.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        });
        let message = match e.as_db_error() {
            Some(db) => format!("postgres: {} (SQLSTATE {})", db.message(), db.code().code()),
            None => format!("postgres: {e}"),
        };
        DbError { retryable, message }
    }
}

/// Which system a driver runs against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Embedded Strata through the key-value transaction API (YCSB only).
    Strata,
    /// Embedded Strata through SQL.
    StrataSql,
    /// SQLite (bundled), one file, WAL mode.
    Sqlite,
    /// A PostgreSQL server, or anything speaking its protocol, by URL.
    Postgres(String),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        match s {
            "strata" => Ok(Target::Strata),
            "strata-sql" => Ok(Target::StrataSql),
            "sqlite" => Ok(Target::Sqlite),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Target::Postgres(url.to_string()))
            }
            other => Err(format!(
                "unknown target `{other}`: expected strata, strata-sql, sqlite or postgres://..."
            )),
        }
    }
}

impl Target {
    /// The name reports use: the URL of a server without its password.
    pub fn name(&self) -> String {
        match self {
            Target::Strata => "strata".into(),
            Target::StrataSql => "strata-sql".into(),
            Target::Sqlite => "sqlite".into(),
            Target::Postgres(url) => redact_password(url),
        }
    }
}

/// `postgres://user:secret@host/db` becomes `postgres://user@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_string() };
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{scheme}://{user}@{host}")
}

/// When a commit is acknowledged: see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    Sync,
    Buffered,
}

impl Durability {
    pub fn name(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        }
    }

    /// What this means on `target`, for reports.
    pub fn describe(self, target: &Target) -> &'static str {
        match (self, target) {
            (Durability::Sync, Target::Strata | Target::StrataSql) => {
                "WAL fsync before commit returns (group commit)"
            }
            (Durability::Sync, Target::Sqlite) => "WAL mode, synchronous=FULL",
            (Durability::Sync, Target::Postgres(_)) => "synchronous_commit=on",
            (Durability::Buffered, Target::Strata | Target::StrataSql) => {
                "WAL written to the OS, fsynced every 100 ms"
            }
            (Durability::Buffered, Target::Sqlite) => "WAL mode, synchronous=NORMAL",
            (Durability::Buffered, Target::Postgres(_)) => "synchronous_commit=off",
        }
    }

    pub fn strata_options(self) -> TxnOptions {
        let durability = match self {
            Durability::Sync => strata_lsm::Durability::Sync,
            Durability::Buffered => strata_lsm::Durability::Buffered,
        };
        TxnOptions { durability, ..TxnOptions::default() }
    }
}

/// A client connection. Not shared between threads: each thread opens its own
/// with [`SqlBackend::connect`].
pub trait SqlConn {
    /// Starts a transaction; `read_only` ones take no write lock (SQLite).
    fn begin(&mut self, read_only: bool) -> Result<(), DbError>;
    /// Commits; a serialization failure at commit is a retryable error.
    fn commit(&mut self) -> Result<(), DbError>;
    fn rollback(&mut self) -> Result<(), DbError>;
    /// Runs one statement that returns no rows; returns the rows affected.
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError>;
    /// Runs one query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Param]) -> Result<ResultRows, DbError>;
    /// Runs DDL or other parameterless statements, several separated by `;`.
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
}

/// What connections are made to: an open embedded database, a SQLite file,
/// or a server URL. Shared by the threads of a run.
#[derive(Debug)]
pub enum SqlBackend {
    Strata(Database),
    Sqlite { path: PathBuf, durability: Durability },
    Postgres { url: String, durability: Durability },
}

impl SqlBackend {
    /// Opens `target` (which must be a SQL target), keeping embedded data in
    /// `dir`.
    pub fn open(target: &Target, dir: &Path, durability: Durability) -> anyhow::Result<SqlBackend> {
        Ok(match target {
            Target::StrataSql => {
                SqlBackend::Strata(Database::open_with(dir, durability.strata_options())?)
            }
            Target::Sqlite => {
                std::fs::create_dir_all(dir)?;
                SqlBackend::Sqlite { path: dir.join("bench.sqlite"), durability }
            }
            Target::Postgres(url) => SqlBackend::Postgres { url: url.clone(), durability },
            Target::Strata => anyhow::bail!("target `strata` is key-value only, not SQL"),
        })
    }

    pub fn connect(&self) -> Result<Box<dyn SqlConn>, DbError> {
        Ok(match self {
            SqlBackend::Strata(db) => Box::new(StrataConn::new(db.session())),
            SqlBackend::Sqlite { path, durability } => {
                Box::new(SqliteConn::open(path, *durability)?)
            }
            SqlBackend::Postgres { url, durability } => {
                Box::new(PgConn::connect(url, *durability)?)
            }
        })
    }

    /// The embedded Strata database, for its statistics.
    pub fn strata(&self) -> Option<&Database> {
        match self {
            SqlBackend::Strata(db) => Some(db),
            _ => None,
        }
    }
}

// ----- Strata -----

/// A session on embedded Strata with a cache of parsed statements.
pub struct StrataConn {
    session: Session,
    parsed: HashMap<String, Vec<sqlparser::ast::Statement>>,
}

impl fmt::Debug for StrataConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StrataConn").field("session", &self.session).finish_non_exhaustive()
    }
}

impl StrataConn {
    pub fn new(session: Session) -> StrataConn {
        StrataConn { session, parsed: HashMap::new() }
    }

    fn run(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<strata_sql::StatementResult>, DbError> {
        if !self.parsed.contains_key(sql) {
            self.parsed.insert(sql.to_string(), strata_sql::parse(sql)?);
        }
        let statements = &self.parsed[sql];
        let values: Vec<Value> = params.iter().map(strata_value).collect();
        let mut out = Vec::with_capacity(statements.len());
        for s in statements {
            out.push(self.session.statement(s, &values)?);
        }
        Ok(out)
    }
}

fn strata_value(p: &Param) -> Value {
    match p {
        Param::Null => Value::Null,
        Param::Int(i) => Value::Int(*i),
        Param::Num(d) => Value::Numeric(*d),
        Param::Text(s) => Value::Text(s.clone()),
    }
}

fn strata_datum(v: &Value) -> Datum {
    match v {
        Value::Null => Datum::Null,
        Value::Bool(b) => Datum::Int(i64::from(*b)),
        Value::Int(i) => Datum::Int(*i),
        Value::Float(f) => Datum::Float(*f),
        Value::Numeric(d) => Datum::Num(*d),
        Value::Text(s) => Datum::Text(s.clone()),
        Value::Bytes(b) => Datum::Text(String::from_utf8_lossy(b).into_owned()),
        Value::Date(_) | Value::Timestamp(_) => Datum::Time,
    }
}

impl SqlConn for StrataConn {
    fn begin(&mut self, _read_only: bool) -> Result<(), DbError> {
        // Strata's BEGIN is snapshot isolation (REPEATABLE READ).
        self.run("BEGIN", &[]).map(drop)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        let tag = self.run("COMMIT", &[])?.pop().map(|r| r.tag);
        match tag.as_deref() {
            Some("COMMIT") => Ok(()),
            _ => Err(DbError::fatal("COMMIT of a transaction an earlier error aborted")),
        }
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        self.run("ROLLBACK", &[]).map(drop)
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError> {
        Ok(self.run(sql, params)?.last().map_or(0, |r| r.count))
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<ResultRows, DbError> {
        let last = self.run(sql, params)?.pop().unwrap_or_default();
        Ok(last.rows.iter().map(|row| row.iter().map(strata_datum).collect()).collect())
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.session.execute(sql, &[])?;
        Ok(())
    }
}

// ----- SQLite -----

/// A SQLite connection in WAL mode.
#[derive(Debug)]
pub struct SqliteConn {
    conn: rusqlite::Connection,
    /// `$N` statements rewritten with `?N`.
    rewritten: HashMap<String, String>,
}

/// How long a SQLite connection waits for another's write lock before
/// failing with a (retryable) busy error.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl SqliteConn {
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteConn, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::fatal(format!("sqlite refused WAL mode (journal_mode={mode})")));
        }
        let synchronous = match durability {
            Durability::Sync => "FULL",
            Durability::Buffered => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous={synchronous}"))?;
        conn.set_prepared_statement_cache_capacity(128);
        Ok(SqliteConn { conn, rewritten: HashMap::new() })
    }

    fn sql(&mut self, sql: &str) -> String {
        if let Some(s) = self.rewritten.get(sql) {
            return s.clone();
        }
        let s = sqlite_placeholders(sql);
        self.rewritten.insert(sql.to_string(), s.clone());
        s
    }
}

/// Rewrites PostgreSQL's `$N` placeholders as SQLite's `?N` (outside string
/// literals).
pub fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_string = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c == '$' && !in_string && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn sqlite_value(p: &Param) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match p {
        Param::Null => V::Null,
        Param::Int(i) => V::Integer(*i),
        Param::Num(d) => V::Real(d.to_f64().unwrap_or(f64::NAN)),
        Param::Text(s) => V::Text(s.clone()),
    }
}

fn sqlite_datum(v: rusqlite::types::ValueRef<'_>) -> Datum {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Datum::Null,
        V::Integer(i) => Datum::Int(i),
        V::Real(f) => Datum::Float(f),
        V::Text(t) | V::Blob(t) => Datum::Text(String::from_utf8_lossy(t).into_owned()),
    }
}

impl SqlConn for SqliteConn {
    fn begin(&mut self, read_only: bool) -> Result<(), DbError> {
        let sql = if read_only { "BEGIN" } else { "BEGIN IMMEDIATE" };
        Ok(self.conn.execute_batch(sql)?)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        if self.conn.is_autocommit() {
            return Ok(()); // SQLite already rolled back (e.g. after a busy error)
        }
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError> {
        let sql = self.sql(sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let n = stmt.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<ResultRows, DbError> {
        let sql = self.sql(sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for c in 0..columns {
                values.push(sqlite_datum(row.get_ref(c)?));
            }
            out.push(values);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.conn.execute_batch(sql)?)
    }
}

// ----- PostgreSQL -----

/// A connection to a PostgreSQL server with a cache of prepared statements.
pub struct PgConn {
    client: postgres::Client,
    prepared: HashMap<String, postgres::Statement>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn").field("prepared", &self.prepared.len()).finish_non_exhaustive()
    }
}

type PgParam = Box<dyn postgres::types::ToSql + Sync>;

impl PgConn {
    pub fn connect(url: &str, durability: Durability) -> Result<PgConn, DbError> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        let synchronous = match durability {
            Durability::Sync => "on",
            Durability::Buffered => "off",
        };
        client.batch_execute(&format!("SET synchronous_commit = {synchronous}"))?;
        Ok(PgConn { client, prepared: HashMap::new() })
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// Converts `p` to the Rust type the postgres client sends as `ty`.
fn pg_param(p: &Param, ty: &postgres::types::Type) -> Result<PgParam, DbError> {
    use postgres::types::Type as T;
    let bad = || DbError::fatal(format!("cannot send {p:?} as PostgreSQL type {ty}"));
    Ok(match p {
        Param::Null => match *ty {
            T::INT2 => Box::new(None::<i16>),
            T::INT4 => Box::new(None::<i32>),
            T::INT8 => Box::new(None::<i64>),
            T::NUMERIC => Box::new(None::<Decimal>),
            T::FLOAT8 => Box::new(None::<f64>),
            _ => Box::new(None::<String>),
        },
        Param::Int(i) => match *ty {
            T::INT2 => Box::new(i16::try_from(*i).map_err(|_| bad())?),
            T::INT4 => Box::new(i32::try_from(*i).map_err(|_| bad())?),
            T::INT8 => Box::new(*i),
            T::NUMERIC => Box::new(Decimal::from(*i)),
            T::FLOAT8 => Box::new(*i as f64),
            T::TEXT | T::VARCHAR | T::BPCHAR => Box::new(i.to_string()),
            _ => return Err(bad()),
        },
        Param::Num(d) => match *ty {
            T::NUMERIC => Box::new(*d),
            T::FLOAT8 => Box::new(d.to_f64().ok_or_else(bad)?),
            T::INT4 if d.fract().is_zero() => Box::new(d.to_i32().ok_or_else(bad)?),
            T::INT8 if d.fract().is_zero() => Box::new(d.to_i64().ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        Param::Text(s) => match *ty {
            T::TEXT | T::VARCHAR | T::BPCHAR | T::NAME | T::UNKNOWN => Box::new(s.clone()),
            _ => return Err(bad()),
        },
    })
}

fn pg_datum(row: &postgres::Row, i: usize) -> Result<Datum, DbError> {
    use postgres::types::Type as T;
    let ty = row.columns()[i].type_().clone();
    let d = match ty {
        T::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| Datum::Int(v.into())),
        T::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| Datum::Int(v.into())),
        T::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Datum::Int),
        T::NUMERIC => row.try_get::<_, Option<Decimal>>(i)?.map(Datum::Num),
        T::FLOAT4 => row.try_get::<_, Option<f32>>(i)?.map(|v| Datum::Float(v.into())),
        T::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Datum::Float),
        T::BOOL => row.try_get::<_, Option<bool>>(i)?.map(|v| Datum::Int(v.into())),
        T::TEXT | T::VARCHAR | T::BPCHAR | T::NAME => {
            row.try_get::<_, Option<String>>(i)?.map(Datum::Text)
        }
        T::TIMESTAMP | T::TIMESTAMPTZ => {
            row.try_get::<_, Option<std::time::SystemTime>>(i)?.map(|_| Datum::Time)
        }
        other => return Err(DbError::fatal(format!("unexpected PostgreSQL column type {other}"))),
    };
    Ok(d.unwrap_or(Datum::Null))
}

impl PgConn {
    fn bind(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<(postgres::Statement, Vec<PgParam>), DbError> {
        let stmt = self.statement(sql)?;
        if stmt.params().len() != params.len() {
            return Err(DbError::fatal(format!(
                "{sql}: {} parameters given, {} expected",
                params.len(),
                stmt.params().len()
            )));
        }
        let values = params
            .iter()
            .zip(stmt.params())
            .map(|(p, ty)| pg_param(p, ty))
            .collect::<Result<_, _>>()?;
        Ok((stmt, values))
    }
}

fn pg_refs(values: &[PgParam]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values.iter().map(|v| &**v as &(dyn postgres::types::ToSql + Sync)).collect()
}

impl SqlConn for PgConn {
    fn begin(&mut self, read_only: bool) -> Result<(), DbError> {
        let sql = if read_only {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ"
        };
        Ok(self.client.batch_execute(sql)?)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        Ok(self.client.batch_execute("COMMIT")?)
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        Ok(self.client.batch_execute("ROLLBACK")?)
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, DbError> {
        let (stmt, values) = self.bind(sql, params)?;
        Ok(self.client.execute(&stmt, &pg_refs(&values))?)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<ResultRows, DbError> {
        let (stmt, values) = self.bind(sql, params)?;
        let rows = self.client.query(&stmt, &pg_refs(&values))?;
        rows.iter().map(|row| (0..row.len()).map(|i| pg_datum(row, i)).collect()).collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.client.batch_execute(sql)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_strings() {
        assert_eq!(
            sqlite_placeholders("SELECT a FROM t WHERE b = $1 AND c = '$2' AND d = $10"),
            "SELECT a FROM t WHERE b = ?1 AND c = '$2' AND d = ?10"
        );
    }

    #[test]
    fn targets_parse_and_hide_passwords() {
        assert_eq!("strata".parse::<Target>(), Ok(Target::Strata));
        assert_eq!("sqlite".parse::<Target>(), Ok(Target::Sqlite));
        let pg: Target = "postgres://bench:secret@127.0.0.1:5433/bench".parse().unwrap();
        assert_eq!(pg.name(), "postgres://bench@127.0.0.1:5433/bench");
        assert!("mysql://x".parse::<Target>().is_err());
    }

    #[test]
    fn datums_convert() {
        assert_eq!(Datum::Num(Decimal::new(300, 0)).as_i64(), Ok(300));
        assert_eq!(Datum::Float(12.5).as_decimal(), Ok(Decimal::new(125, 1)));
        assert!(Datum::Num(Decimal::new(15, 1)).as_i64().is_err());
        assert!(Datum::Null.as_str().is_err());
    }

    #[test]
    fn the_same_statements_run_on_strata_and_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        for target in [Target::StrataSql, Target::Sqlite] {
            let backend =
                SqlBackend::open(&target, &dir.path().join(target.name()), Durability::Buffered)
                    .unwrap();
            let mut c = backend.connect().unwrap();
            c.batch("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10), amount NUMERIC(6,2))")
                .unwrap();
            c.begin(false).unwrap();
            for i in 1..=3 {
                let params = [
                    Param::Int(i),
                    Param::Text(format!("n{i}")),
                    Param::Num(Decimal::new(i * 150, 2)),
                ];
                c.execute("INSERT INTO t (id, name, amount) VALUES ($1, $2, $3)", &params).unwrap();
            }
            c.commit().unwrap();
            let rows =
                c.query("SELECT name, amount FROM t WHERE id >= $1 ORDER BY id", &[Param::Int(2)]);
            let rows = rows.unwrap();
            assert_eq!(rows.len(), 2, "{target:?}");
            assert_eq!(rows[0][0].as_str().unwrap(), "n2");
            assert_eq!(rows[1][1].as_decimal().unwrap(), Decimal::new(450, 2), "{target:?}");
            c.begin(false).unwrap();
            let n = c.execute(
                "UPDATE t SET amount = amount + $1 WHERE id = $2",
                &[Param::Num(Decimal::new(1, 2)), Param::Int(1)],
            );
            assert_eq!(n.unwrap(), 1);
            c.rollback().unwrap();
            let sum = c.query("SELECT SUM(amount) FROM t", &[]).unwrap();
            assert_eq!(sum[0][0].as_decimal().unwrap(), Decimal::new(900, 2), "{target:?}");
        }
    }
}
