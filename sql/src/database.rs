//! The embedded API: [`Database`] opens a store and hands out [`Session`]s;
//! [`Rows`] gives typed access to results.
//!
//! ```
//! use strata_sql::{Database, Value};
//! let db = Database::open_temporary()?;
//! db.execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)", &[])?;
//! db.execute("INSERT INTO t VALUES ($1, $2)", &[Value::Int(1), Value::Text("one".into())])?;
//! let rows = db.query("SELECT name FROM t WHERE id = $1", &[Value::Int(1)])?;
//! assert_eq!(rows.get::<String>(0, "name")?, "one");
//! # Ok::<(), strata_sql::SqlError>(())
//! ```

use std::path::{Path, PathBuf};

use strata_txn::{Store, TxnOptions};

use crate::error::{Result, SqlError, sqlstate};
use crate::exec::Row;
use crate::plan::OutputColumn;
use crate::session::{Session, StatementResult};
use crate::types::Value;

/// An embedded Strata database.
#[derive(Debug)]
pub struct Database {
    // Field order matters: the store closes before the directory is removed.
    store: Store,
    hooks: Hooks,
    _temporary: Option<RemoveOnDrop>,
}

/// Read-only settings whose values come from outside the database (the
/// server's node: `raft_leader`): a lower-case name to `None` when the
/// provider does not know it, `Some(None)` for NULL.
type SettingsFn = dyn Fn(&str) -> Option<Option<String>> + Send + Sync;

/// How an error of the store's shard reads in SQL, where the default
/// mapping has no SQLSTATE for it; `None` keeps the default.
type ErrorFn = dyn Fn(&strata_txn::Error) -> Option<SqlError> + Send + Sync;

/// What the embedder adds to every session ([`Database::with_settings`],
/// [`Database::with_error_map`]).
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) settings: Option<std::sync::Arc<SettingsFn>>,
    pub(crate) errors: Option<std::sync::Arc<ErrorFn>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("settings", &self.settings.is_some())
            .field("errors", &self.errors.is_some())
            .finish()
    }
}

impl Hooks {
    /// A transaction error as SQL: the embedder's mapping, else the default.
    pub(crate) fn sql_error(&self, e: strata_txn::Error) -> SqlError {
        self.errors.as_ref().and_then(|map| map(&e)).unwrap_or_else(|| e.into())
    }
}

/// Deletes a directory when dropped ([`Database::open_temporary`]).
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Attempts [`Database::transaction`] makes before giving up on serialization failures.
const TRANSACTION_ATTEMPTS: u32 = 20;

impl Database {
    /// Opens (recovering) or creates the database in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, TxnOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: TxnOptions) -> Result<Database> {
        Ok(Database::with_store(Store::open(path, opts)?))
    }

    /// A database over an existing store (for example one on a replicated shard).
    pub fn with_store(store: Store) -> Database {
        Database { store, hooks: Hooks::default(), _temporary: None }
    }

    /// Adds read-only settings that SHOW answers when no session setting
    /// has the name: `provider(name)` (name in lower case) is `None` for a
    /// name it does not know, `Some(None)` for NULL. SET does not change them.
    pub fn with_settings(
        mut self,
        provider: impl Fn(&str) -> Option<Option<String>> + Send + Sync + 'static,
    ) -> Database {
        self.hooks.settings = Some(std::sync::Arc::new(provider));
        self
    }

    /// Maps errors of the store's shard at COMMIT to SQL errors where the
    /// default mapping has no SQLSTATE for them (a replicated shard's
    /// "not the leader" or "outcome unknown"); `None` keeps the default.
    pub fn with_error_map(
        mut self,
        map: impl Fn(&strata_txn::Error) -> Option<SqlError> + Send + Sync + 'static,
    ) -> Database {
        self.hooks.errors = Some(std::sync::Arc::new(map));
        self
    }

    /// A database in a fresh directory under the system's temporary
    /// directory, deleted when the `Database` is dropped: the in-memory
    /// variant for tests and examples.
    pub fn open_temporary() -> Result<Database> {
        let unique = format!(
            "strata-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let dir = std::env::temp_dir().join(unique);
        let opts =
            TxnOptions { durability: strata_lsm::Durability::Buffered, ..TxnOptions::default() };
        let mut db = Database::open_with(&dir, opts)?;
        db._temporary = Some(RemoveOnDrop(dir));
        Ok(db)
    }

    /// The transactional key-value store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new session (connection).
    pub fn session(&self) -> Session {
        Session::new(self.store.clone()).with_hooks(self.hooks.clone())
    }

    /// Runs `sql` (one or more statements) in a new session; returns the
    /// rows affected by the last statement.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        Ok(self.session().execute(sql, params)?.last().map_or(0, |r| r.count))
    }

    /// Runs a query in a new session; returns its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        let last = self.session().execute(sql, params)?.pop().unwrap_or_default();
        Ok(Rows::from(last))
    }

    /// Runs `body` inside BEGIN ... COMMIT, running it again from the start
    /// after a serialization failure.
    pub fn transaction<T>(&self, mut body: impl FnMut(&mut Session) -> Result<T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            let mut s = self.session();
            s.execute("BEGIN", &[])?;
            let outcome =
                body(&mut s).and_then(|v| match s.execute("COMMIT", &[])?.pop().map(|r| r.tag) {
                    Some(tag) if tag == "COMMIT" => Ok(v),
                    _ => Err(SqlError::new(
                        sqlstate::IN_FAILED_SQL_TRANSACTION,
                        "transaction was aborted by an earlier error",
                    )),
                });
            match outcome {
                Err(e) if e.is_retryable() && attempt < TRANSACTION_ATTEMPTS => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Jittered exponential backoff before retry `attempt` (1-based): uniform in
/// [d/2, d) with d = 200 us doubling up to 50 ms, so that conflicting
/// transactions spread out instead of colliding again.
fn backoff(attempt: u32) -> std::time::Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let mut x = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    let d = std::time::Duration::from_micros(200)
        .saturating_mul(1 << attempt.min(8))
        .min(std::time::Duration::from_millis(50));
    d.mul_f64(0.5 + (x % 1000) as f64 / 2000.0)
}

/// Rows of a query result.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    pub columns: Vec<OutputColumn>,
    pub rows: Vec<Row>,
}

impl From<StatementResult> for Rows {
    fn from(r: StatementResult) -> Rows {
        Rows { columns: r.columns, rows: r.rows }
    }
}

/// Converts a SQL value to a Rust value.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self>;
}

fn mismatch(v: &Value, want: &str) -> SqlError {
    SqlError::new(sqlstate::DATATYPE_MISMATCH, format!("cannot read {v:?} as {want}"))
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<i64> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(mismatch(other, "i64")),
        }
    }
}

impl FromValue for i32 {
    fn from_value(v: &Value) -> Result<i32> {
        i32::try_from(i64::from_value(v)?).map_err(|_| mismatch(v, "i32"))
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<f64> {
        match v {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(mismatch(other, "f64")),
        }
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<bool> {
        match v {
            Value::Bool(b) => Ok(*b),
            other => Err(mismatch(other, "bool")),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<String> {
        match v {
            Value::Null => Err(mismatch(v, "String")),
            Value::Text(s) => Ok(s.clone()),
            other => Ok(other.to_pg_text()),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Vec<u8>> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(mismatch(other, "bytes")),
        }
    }
}

impl FromValue for rust_decimal::Decimal {
    fn from_value(v: &Value) -> Result<rust_decimal::Decimal> {
        match v {
            Value::Numeric(d) => Ok(*d),
            Value::Int(i) => Ok((*i).into()),
            other => Err(mismatch(other, "Decimal")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Option<T>> {
        if v.is_null() { Ok(None) } else { T::from_value(v).map(Some) }
    }
}

/// A column named or numbered.
pub trait ColumnIndex {
    fn index(&self, columns: &[OutputColumn]) -> Result<usize>;
}

impl ColumnIndex for usize {
    fn index(&self, columns: &[OutputColumn]) -> Result<usize> {
        (*self < columns.len())
            .then_some(*self)
            .ok_or_else(|| SqlError::new(sqlstate::UNDEFINED_COLUMN, format!("no column {self}")))
    }
}

impl ColumnIndex for &str {
    fn index(&self, columns: &[OutputColumn]) -> Result<usize> {
        columns.iter().position(|c| c.name == *self).ok_or_else(|| {
            SqlError::new(sqlstate::UNDEFINED_COLUMN, format!("column \"{self}\" does not exist"))
        })
    }
}

impl Rows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The value in row `row`, column `column` (a name or position), as `T`.
    pub fn get<T: FromValue>(&self, row: usize, column: impl ColumnIndex) -> Result<T> {
        let c = column.index(&self.columns)?;
        let r = self.rows.get(row).ok_or_else(|| {
            SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, format!("no row {row}"))
        })?;
        T::from_value(&r[c])
    }
}
