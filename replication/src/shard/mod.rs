//! The replicated shard: `strata_txn::Shard` on a Raft replica set.
//!
//! - [`command`]: what the log carries (a validated transaction with its id
//!   and commit timestamp) and what applying it answers.
//! - [`machine`]: what every replica does with a committed command, over a
//!   versioned store ([`machine::Versions`]: the engine, or memory in the
//!   simulator). Deterministic; deduplicates by command id.
//! - [`sequencer`]: the leader's validation and commit timestamps, pure.
//! - [`recent`]: the keys of the most recent commits a replica applied,
//!   which the leader validates young transactions against in memory.
//! - [`replicated`]: [`ReplicatedShard`], the three above on a real
//!   [`crate::Node`] with a `strata_lsm::Db` per replica.
//! - [`forward`]: [`ClusterShard`], what a node's SQL front end runs on:
//!   its own replica while it leads, the leader over gRPC otherwise.
//!
//! The simulator drives `machine` and `sequencer` the same way
//! (`sim::SimConfig::transactions`), so what it checks is this code.

pub mod command;
pub mod forward;
pub mod machine;
pub mod recent;
pub mod replicated;
pub mod sequencer;

pub use command::{Answer, CommandId, ShardCommand};
pub use forward::{ClusterShard, ForwardConfig};
pub use machine::{MemVersions, ShardMachine, Versions};
pub use replicated::{ReplicatedShard, ShardError, block_on};
pub use sequencer::Sequencer;
