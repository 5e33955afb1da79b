//! The replicated shard: `strata_txn::Shard` on a Raft replica set.
//!
//! - [`command`]: what the log carries (a validated transaction with its id
//!   and commit timestamp) and what applying it answers.
//! - [`machine`]: what every replica does with a committed command, over a
//!   versioned store ([`machine::Versions`]: the engine, or memory in the
//!   simulator). Deterministic; deduplicates by command id.
//! - [`sequencer`]: the leader's validation and commit timestamps, pure.
//! - [`replicated`]: [`ReplicatedShard`], the three above on a real
//!   [`crate::Node`] with a `strata_lsm::Db` per replica.
//!
//! The simulator drives `machine` and `sequencer` the same way
//! (`sim::SimConfig::transactions`), so what it checks is this code.

pub mod command;
pub mod machine;
pub mod replicated;
pub mod sequencer;

pub use command::{Answer, CommandId, ShardCommand};
pub use machine::{MemVersions, ShardMachine, Versions};
pub use replicated::{ReplicatedShard, ShardError, block_on};
pub use sequencer::Sequencer;
