//! Strata's replication layer: a sans-I/O Raft core and the deterministic
//! simulator that checks it.
//!
//! (Crate doc written below in full once the pieces exist.)

// A library reports through its return values, never by printing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod error;
mod log;
pub mod message;
mod progress;
pub mod raft;
pub mod rng;
pub mod sim;
pub mod storage;
pub mod types;

pub use error::{Error, Result};
pub use message::{Body, Message};
pub use raft::{Config, Raft, ReadState, Ready, Role, Status};
pub use rng::Rng;
pub use storage::{LogStore, MemStore, persist_ready};
pub use types::{
    ConfChange, Entry, HardState, Index, Membership, NodeId, Payload, Persisted, Snapshot, Term,
    quorum_value,
};
