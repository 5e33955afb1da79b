//! Helpers shared by the tests that run real replica sets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_replication::raft::Role;
use strata_replication::{NodeId, ReplicatedShard};

/// Waits (up to 30 s) for exactly one node to lead and to serve: it
/// committed an entry of its term, so a leader round succeeds.
pub async fn leader(shards: &BTreeMap<NodeId, Arc<ReplicatedShard>>) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: Vec<NodeId> = shards
            .iter()
            .filter(|(_, s)| s.node().status().raft.role == Role::Leader)
            .map(|(id, _)| *id)
            .collect();
        if let [id] = leaders[..]
            && shards[&id].leader_round().is_ok()
        {
            return id;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
