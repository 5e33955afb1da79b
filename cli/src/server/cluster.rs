//! `strata start --node-id N --peers 1=HOST:PORT,2=...`: this process is one
//! node of a replica set (see the server module doc for the flags).
//!
//! The node's Raft replica ([`ReplicatedShard`]: its log and engine under
//! `DATA/raft`, its gRPC service on its own `--peers` address) is wrapped in
//! a [`ClusterShard`], which serves from the replica while this node leads
//! and forwards every read and commit to the leader otherwise; a
//! `strata_txn::Store` and the SQL [`Database`] run on top, so the SQL front
//! end of any node serves clients. The HLC's high-water mark is kept in
//! `DATA/HLC`.
//!
//! What SQL sees of the replica set:
//!
//! - `SHOW raft_leader`: the node id this node believes leads, NULL while it
//!   knows none; also `raft_node_id`, `raft_role`, `raft_term`,
//!   `raft_commit_index`, `raft_applied_index` (this node's view).
//! - A COMMIT refused because no leader could be reached within the wait
//!   fails with SQLSTATE 40001 (nothing was applied: run the transaction
//!   again). A COMMIT whose outcome stayed unknown (its leader died after it
//!   may have been proposed, and no retry with the same command id could
//!   tell) fails with SQLSTATE 40003, statement_completion_unknown: the
//!   client must check, not blindly retry.
//! - A read while no leader can be reached fails after the wait with
//!   SQLSTATE 40001 as well (`strata_txn::Error::Unavailable`): nothing
//!   was done, and running the transaction again is safe.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use strata_replication::node::NodeConfig;
use strata_replication::raft::Role;
use strata_replication::{ClusterShard, ForwardConfig, NodeId, ReplicatedShard, ShardError};
use strata_sql::{Database, SqlError, sqlstate};
use strata_txn::clock::{FileHighWater, SystemClock};
use strata_txn::{Hlc, Store, TxnOptions};

/// SQLSTATE 40003: the outcome of a COMMIT is unknown.
const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";

/// This node's place in a replica set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub node_id: NodeId,
    /// Every member's Raft gRPC address, this node's included.
    pub peers: BTreeMap<NodeId, String>,
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002`.
pub fn parse_peers(text: &str) -> anyhow::Result<BTreeMap<NodeId, String>> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .with_context(|| format!("--peers entry {item:?}: expected ID=HOST:PORT"))?;
        let id: NodeId =
            id.trim().parse().with_context(|| format!("--peers entry {item:?}: bad node id"))?;
        anyhow::ensure!(id > 0, "--peers entry {item:?}: node ids start at 1");
        let addr = addr.trim();
        anyhow::ensure!(addr.contains(':'), "--peers entry {item:?}: expected HOST:PORT");
        anyhow::ensure!(
            peers.insert(id, addr.to_string()).is_none(),
            "--peers names node {id} twice"
        );
    }
    anyhow::ensure!(!peers.is_empty(), "--peers is empty");
    Ok(peers)
}

impl Membership {
    pub fn new(node_id: NodeId, peers: BTreeMap<NodeId, String>) -> anyhow::Result<Membership> {
        anyhow::ensure!(
            peers.contains_key(&node_id),
            "--peers must include this node (--node-id {node_id}) with its Raft address"
        );
        Ok(Membership { node_id, peers })
    }
}

/// Starts this node's replica in `data` and opens the SQL database on it.
/// Runs on the server's runtime, which then drives the node.
pub async fn open(data: &Path, membership: &Membership) -> anyhow::Result<Database> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let opts = TxnOptions::default();
    let hlc = Arc::new(
        Hlc::new(
            Box::new(SystemClock),
            Box::new(FileHighWater::new(data)),
            0,
            opts.max_clock_offset_ms,
        )
        .context("starting the clock")?,
    );
    hlc.now().context("starting the clock")?;
    let id = membership.node_id;
    let own = &membership.peers[&id];
    let listener = tokio::net::TcpListener::bind(own)
        .await
        .with_context(|| format!("listening for Raft on {own}"))?;
    let others: BTreeMap<NodeId, String> =
        membership.peers.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
    let config = NodeConfig::new(id, others.clone(), data.join("raft"));
    let replica =
        ReplicatedShard::start(config, strata_lsm::Options::default(), hlc.clone(), listener)
            .await
            .context("starting the Raft replica")?;
    let replica = Arc::new(replica);
    let shard = ClusterShard::new(
        replica.clone(),
        &others,
        tokio::runtime::Handle::current(),
        ForwardConfig::default(),
    )
    .context("connecting to the peers")?;
    println!("strata: node {id} of replica set {:?}, Raft on {own}", membership.peers);
    let store = Store::with_shard(Arc::new(shard), hlc, opts);
    Ok(Database::with_store(store)
        .with_settings(move |name| raft_setting(&replica, name))
        .with_error_map(sql_error))
}

/// The read-only settings SHOW answers from this node's Raft status.
fn raft_setting(replica: &ReplicatedShard, name: &str) -> Option<Option<String>> {
    let status = replica.node().status();
    let raft = &status.raft;
    let value = match name {
        "raft_leader" => {
            let known = status.failed.is_none();
            return Some(raft.leader.filter(|_| known).map(|l| l.to_string()));
        }
        "raft_node_id" => raft.id.to_string(),
        "raft_role" => match (raft.role, &status.failed) {
            (_, Some(_)) => "failed".to_string(),
            (Role::Leader, _) => "leader".to_string(),
            (Role::Follower, _) => "follower".to_string(),
            (other, _) => format!("{other:?}").to_lowercase(),
        },
        "raft_term" => raft.term.to_string(),
        "raft_commit_index" => raft.commit.to_string(),
        "raft_applied_index" => raft.applied.to_string(),
        _ => return None,
    };
    Some(Some(value))
}

/// A replicated shard's refusals at COMMIT, as SQL (module doc).
fn sql_error(e: &strata_txn::Error) -> Option<SqlError> {
    let shard = ShardError::of(e)?;
    match shard {
        ShardError::Ambiguous { .. } => Some(SqlError::new(
            STATEMENT_COMPLETION_UNKNOWN,
            format!("the outcome of the commit is unknown: {shard}"),
        )),
        _ if shard.is_retryable() => Some(SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            format!("the transaction did not commit ({shard}); run it again"),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_lists_are_clear_errors() {
        let peers = parse_peers("1=127.0.0.1:7001, 2=127.0.0.1:7002,3=127.0.0.1:7003").unwrap();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[&2], "127.0.0.1:7002");
        assert!(Membership::new(2, peers.clone()).is_ok());
        let e = Membership::new(4, peers).unwrap_err().to_string();
        assert!(e.contains("--node-id 4"), "{e}");
        for bad in ["", "1", "x=127.0.0.1:1", "0=127.0.0.1:1", "1=a:1,1=b:2", "1=nohost"] {
            assert!(parse_peers(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shard_refusals_map_to_retryable_and_unknown_outcome_sqlstates_on_reads_and_commits() {
        let ambiguous = ShardError::Ambiguous {
            id: strata_replication::CommandId { client: 1, seq: 2 },
            reason: "the node stopped".into(),
        };
        assert_eq!(sql_error(&ambiguous.into_txn()).unwrap().code, "40003");
        let no_leader = || ShardError::NotLeader { leader: None, address: None };
        let e = sql_error(&no_leader().into_txn()).unwrap();
        assert!(e.is_retryable(), "{e}");
        assert!(sql_error(&strata_txn::Error::ReadOnly).is_none());
        // A read's error does not pass through the COMMIT mapping: the
        // default mapping makes it retryable on its own.
        let read = SqlError::from(no_leader().into_txn());
        assert_eq!(read.code, "40001", "{read:?}");
        assert!(read.message.contains("no Raft leader"), "{}", read.message);
        let unavailable = SqlError::from(ShardError::Unavailable("overloaded".into()).into_txn());
        assert_eq!(unavailable.code, "40001");
        let failed = SqlError::from(ShardError::Remote("disk full".into()).into_txn());
        assert_eq!(failed.code, "58030", "a failure a retry will not fix stays an I/O error");
    }
}
