//! Strata's replication layer: a sans-I/O Raft core and the deterministic
//! simulator that checks it.
//!
//! A shard's data will live on a replica set of (usually) three nodes that
//! agree on one log through Raft (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", 2014, cited as "Raft §n"; and
//! Ongaro's thesis, "Consensus: Bridging Theory and Practice", 2014, cited as
//! "thesis §n"). This crate holds the consensus core and proves it under
//! injected faults, stores its log durably, and runs real nodes over gRPC;
//! [`shard::ReplicatedShard`] implements `strata_txn::Shard` on top of it.
//!
//! # Reading order
//!
//! - [`types`]: entries, membership, hard state, snapshots, and the quorum
//!   function everything counts with.
//! - [`message`]: what nodes say to each other.
//! - `log` and `progress` (private): the in-memory log, and the leader's view
//!   of each follower (probe / replicate / snapshot, after etcd-raft).
//! - [`raft`]: the core. Inputs are verbs (`tick`, `step`, `propose`,
//!   `propose_conf_change`, `read_index`, `transfer_leader`, `compact`);
//!   the output is a noun, a [`Ready`]: what to persist, send, apply and
//!   answer. It owns no socket, file, clock or unseeded randomness: time is
//!   the number of `tick` calls, and election timeouts come from an [`Rng`]
//!   seeded by the caller. The module doc states the driver's contract, the
//!   invariants and the lease argument.
//! - [`storage`]: the [`LogStore`] interface a driver persists a `Ready`
//!   through, [`MemStore`], a store that can crash and lose unsynced
//!   writes, and [`FileStore`], the durable one (segmented, checksummed,
//!   fsynced files; its module doc draws the format).
//! - [`sim`]: a whole replica set in one thread from one seed, with the
//!   checker of Raft's safety properties and of linearizability, and a
//!   targeted schedule for leases (`SimConfig::lease_race`).
//! - [`transport`]: the protobuf form of messages and the tonic service and
//!   per-peer senders; [`node`]: a node in real time (driver thread, file
//!   store, transport, [`StateMachine`]). Neither is visible to the core.
//! - [`shard`]: the replicated shard: commands carrying validated
//!   transactions with an id and a commit timestamp, the deterministic
//!   state machine every replica applies them with, the leader's
//!   validation (`Sequencer`), [`ReplicatedShard`] on a real node, and
//!   [`ClusterShard`], which serves any node's clients by forwarding to
//!   the leader (what `strata start --peers` runs).
//!
//! # Design decisions
//!
//! - **The log lives in memory, persisted through the driver.** The core keeps
//!   the entries after the latest snapshot; the driver writes each `Ready`'s
//!   entries and hard state to its `LogStore` and syncs before sending the
//!   `Ready`'s messages, so every vote and acknowledgement describes durable
//!   state, and the leader counts itself towards a quorum only for entries it
//!   handed out for persistence. Memory is bounded by snapshotting: the
//!   application calls `compact` with its state at an applied index.
//! - **Elections**: randomized timeouts in `[election_ticks,
//!   2 * election_ticks)`; pre-vote (thesis §9.6) so a node that cannot win
//!   does not raise its term; check-quorum (thesis §6.2) so a leader cut off
//!   from a majority steps down; and nodes ignore vote requests while they
//!   hear from a leader (thesis §4.2.3), also for an election timeout after a
//!   restart, since a restarted node does not remember whom it promised.
//! - **Replication**: proposals queued between two `Ready`s go out
//!   together (one `Append` per follower, one log write and sync: group
//!   commit), and so do the acknowledgements handled between them (the
//!   commit index they move rides on that `Append`); batches of at most
//!   `max_append_entries`, pipelined in the replicate state with at most
//!   `max_inflight_entries` unacknowledged per follower; a leader's
//!   appends may leave before its own fsync, and committed entries are
//!   applied before the fsync of newer ones (thesis §10.2.1; `raft`'s
//!   module doc states what makes both safe); rejections carry a hint
//!   (index and term) so the leader skips a whole term per round trip
//!   (etcd's optimisation). A stalled
//!   pipeline (no progress for two heartbeats while entries are outstanding)
//!   falls back to probing. Only entries of the current term commit by
//!   counting (Raft §5.4.2); a new leader appends an empty entry to get one.
//! - **Snapshots** (Raft §7): the leader sends its latest snapshot when a
//!   follower needs compacted entries; the follower replaces its log and
//!   state machine, or only advances its commit index if its log already
//!   holds the snapshot's last entry. On real nodes a snapshot is small
//!   inline data plus a list of files (an engine checkpoint of hard links)
//!   kept beside the log; the message carries only the list, and the
//!   follower fetches the files in checksummed chunks with a streaming RPC
//!   before stepping it (`node`'s module doc). The simulator's snapshots
//!   are inline bytes.
//! - **Membership changes are one voter at a time** (thesis §4.1): the entry
//!   carries the whole new membership and takes effect when appended
//!   (reverting if truncated); one uncommitted change at a time, and only
//!   after the leader committed an entry of its term. A leader that removes
//!   itself leads until the change commits, then hands over with
//!   `TimeoutNow`. Joining nodes start with no membership and never
//!   campaign until the log tells them they are voters. There are no
//!   learners yet, so adding a voter that must catch up costs availability
//!   while it does.
//! - **Leadership transfer** (thesis §3.10): proposals are refused, the target
//!   is brought up to date, then told to campaign at once; its vote requests
//!   carry a transfer flag that voters honour even while they hear from the
//!   leader. The transfer is abandoned after an election timeout.
//! - **Reads**: under a leader lease (shorter than the election timeout by a
//!   configured clock-drift bound, so safety depends on that bound, never on
//!   clocks being right), the leader answers at once with its commit index;
//!   otherwise with a read-index round (thesis §6.4). Either way the read is
//!   served once the state machine has applied that index. Both need the
//!   leader to have committed an entry of its term; a transfer gives up the
//!   lease for the rest of the term.
//! - **Bad input never panics**: a message no correct peer could send (two
//!   leaders in a term, an append that would overwrite a committed entry, an
//!   acknowledgement beyond the log) is dropped and counted in
//!   [`Status::protocol_violations`], which the simulator requires to stay 0.
//!   Internal invariants are asserted.
//!
//! # Testing
//!
//! Unit tests sit next to the pure pieces (quorum math, log, progress,
//! store); `tests/scripts/*.txt` are scenario scripts with recorded output,
//! each citing the rule it checks; `tests/sim.rs` runs hundreds of seeds of
//! the simulator, and 200 of the lease race; `tests/file_store*.rs` check the
//! durable store (model, corruption, SIGKILL); `tests/cluster.rs` runs three
//! nodes over gRPC; `tests/replicated_shard.rs` and `tests/cluster_shard.rs`
//! run transactions on them, the latter through a follower that forwards
//! while the leader stops; `tests/snapshot_transfer.rs` catches a replica
//! up through a checkpoint snapshot larger than a message, restarts nodes
//! from their checkpoints, and refuses damaged files and chunks. `cargo run -p strata-replication --example replay --
//! SEED [NODES] [lease-race]` replays one seed with a trace of every event.
//!
//! Not here yet (issue 7): multi-shard (prepare/commit) transactions and
//! SERIALIZABLE range validation on replicated shards, learners, and
//! follower reads. `cli/tests/replica_set.rs` runs nodes as
//! separate `strata start` processes.

// A library reports through its return values, never by printing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod error;
mod log;
pub mod message;
pub mod node;
mod progress;
pub mod raft;
pub mod rng;
pub mod shard;
pub mod sim;
pub mod storage;
pub mod transport;
pub mod types;

pub use error::{Error, Result};
pub use message::{Body, Message};
pub use node::{Node, NodeConfig, NodeStatus, StateMachine};
pub use raft::{Config, Raft, ReadState, Ready, Role, Status};
pub use rng::Rng;
pub use shard::{ClusterShard, CommandId, ForwardConfig, ReplicatedShard, ShardError};
pub use storage::{FileStore, FileStoreOptions, LogStore, MemStore, persist_ready};
pub use types::{
    ConfChange, Entry, HardState, Index, Membership, NodeId, Payload, Persisted, Snapshot,
    SnapshotFile, Term, quorum_value,
};
