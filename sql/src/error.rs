//! SQL errors: a PostgreSQL SQLSTATE, a message a user understands, and for
//! syntax errors the position in the statement.

/// SQLSTATE codes Strata raises (PostgreSQL Appendix A).
pub mod sqlstate {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
    pub const INVALID_REGULAR_EXPRESSION: &str = "2201B";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const GROUPING_ERROR: &str = "42803";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const CANNOT_COERCE: &str = "42846";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const QUERY_CANCELED: &str = "57014";
    pub const SNAPSHOT_TOO_OLD: &str = "72000";
    pub const IO_ERROR: &str = "58030";
    pub const DATA_CORRUPTED: &str = "XX001";
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// An error from the SQL engine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLSTATE {code})")]
pub struct SqlError {
    /// The SQLSTATE, e.g. `"42P01"`.
    pub code: &'static str,
    pub message: String,
    /// For syntax errors: the 1-based character position in the statement.
    pub position: Option<usize>,
    /// Extra detail, shown on a separate line by clients.
    pub detail: Option<String>,
}

/// Result alias for the SQL engine.
pub type Result<T> = std::result::Result<T, SqlError>;

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> SqlError {
        SqlError { code, message: message.into(), position: None, detail: None }
    }

    pub fn with_position(mut self, position: usize) -> SqlError {
        self.position = Some(position);
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> SqlError {
        self.detail = Some(detail.into());
        self
    }

    /// Whether the client should run the transaction again.
    pub fn is_retryable(&self) -> bool {
        self.code == sqlstate::SERIALIZATION_FAILURE
    }

    pub fn unsupported(what: impl std::fmt::Display) -> SqlError {
        SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, format!("{what} is not supported"))
    }

    pub fn internal(what: impl std::fmt::Display) -> SqlError {
        SqlError::new(sqlstate::INTERNAL_ERROR, format!("internal error: {what}"))
    }
}

impl From<strata_txn::Error> for SqlError {
    fn from(e: strata_txn::Error) -> SqlError {
        use strata_txn::Error as E;
        let code = match &e {
            E::Conflict { .. } | E::Unavailable { .. } => sqlstate::SERIALIZATION_FAILURE,
            E::SnapshotTooOld { .. } => sqlstate::SNAPSHOT_TOO_OLD,
            E::TransactionTooOld { .. } | E::WriteSetTooLarge { .. } => {
                sqlstate::PROGRAM_LIMIT_EXCEEDED
            }
            E::ReadOnly => sqlstate::READ_ONLY_SQL_TRANSACTION,
            E::FutureTimestamp { .. } | E::InvalidArgument(_) => sqlstate::INVALID_PARAMETER_VALUE,
            E::Corruption(_) => sqlstate::DATA_CORRUPTED,
            E::Storage(s) if s.is_corruption() => sqlstate::DATA_CORRUPTED,
            E::Storage(s) if s.is_retryable() => sqlstate::SERIALIZATION_FAILURE,
            E::Io { .. } | E::Storage(_) => sqlstate::IO_ERROR,
            E::ClockOffset { .. } | E::UnknownTransaction(_) => sqlstate::INTERNAL_ERROR,
        };
        SqlError::new(code, e.to_string())
    }
}
