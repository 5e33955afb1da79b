//! Strata's SQL engine (not built yet; see issue "SQL engine").
//!
//! It will parse the PostgreSQL dialect with `sqlparser`, bind names against a
//! transactional catalog, plan and execute queries over the transaction layer,
//! and expose the embedded `Database` API.
