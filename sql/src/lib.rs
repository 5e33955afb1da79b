//! `strata-sql`: Strata's SQL engine, PostgreSQL dialect, and the embedded
//! [`Database`] API.
//!
//! Life of a query (`SELECT name FROM t WHERE id = 7`):
//!
//! 1. [`Session::execute`] parses the text with `sqlparser` (PostgreSQL
//!    dialect) and, outside `BEGIN`, opens a [`strata_txn::Txn`] for it.
//! 2. [`plan::Binder`] resolves `t` in the [`catalog`] (descriptors are keys in
//!    the same transactional key space), types `id = 7`, and builds a
//!    [`plan::Node`] tree; `plan::choose_access` turns `id = 7` on the primary
//!    key into an `Access::PrimaryPoint` lookup.
//! 3. [`exec::build`] makes operators from the plan; the scan encodes the key
//!    ([`encoding::encode_key`]), reads it through the transaction, decodes the
//!    row, and the filter and projection stream it out.
//! 4. The session commits the transaction (read-only: no validation) and
//!    returns the rows with PostgreSQL's command tag.
//!
//! Errors are [`SqlError`]s carrying PostgreSQL SQLSTATE codes.

// A library reports through its return values, never by printing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod catalog;
pub mod copy;
mod database;
mod ddl;
mod dml;
pub mod encoding;
mod error;
pub mod exec;
pub mod expr;
mod functions;
pub mod plan;
mod session;
pub mod system;
pub mod types;

pub use database::{ColumnIndex, Database, FromValue, Rows};
pub use error::{Result, SqlError, sqlstate};
pub use plan::OutputColumn;
pub use session::{Description, Prepared, Script, Session, StatementResult, TxnStatus, parse};
pub use types::{DataType, Value};
