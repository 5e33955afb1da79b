//! Strata's replication layer (not built yet; see issue "Raft replica sets").
//!
//! It will hold a sans-I/O Raft core, its log store, the tonic transport and the
//! replicated implementation of the transaction layer's shard interface, all
//! drivable from a seed by a deterministic simulator.

// A library reports through its return values, never by printing.
#![deny(clippy::print_stdout, clippy::print_stderr)]
