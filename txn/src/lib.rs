//! Strata's transaction layer (not built yet; see issue "Transactions").
//!
//! It will provide MVCC snapshot-isolation transactions with optimistic
//! (first-committer-wins) validation over Strata's versioned storage,
//! timestamped by a hybrid logical clock, plus the shard interface that the
//! replication layer implements. `docs/architecture.md` describes the plan and
//! what exists today.
