//! Three real nodes in one process, on loopback ports, over gRPC and file
//! log stores: they elect a leader and replicate; the leader is stopped and
//! the others elect a new one and go on; the stopped node restarts from its
//! files and catches up. Also: the transport refuses malformed messages.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use strata_replication::node::{Node, NodeConfig, StateMachine};
use strata_replication::raft::Role;
use strata_replication::transport::pb;
use strata_replication::{Error, FileStoreOptions, NodeId};

/// The state: every command applied, in order. Queries answer how many.
#[derive(Debug, Default)]
struct Journal {
    applied: Vec<(u64, Vec<u8>)>,
}

impl StateMachine for Journal {
    fn apply(&mut self, index: u64, command: &[u8]) -> Result<Vec<u8>, String> {
        self.applied.push((index, command.to_vec()));
        Ok(index.to_le_bytes().to_vec())
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match query {
            b"count" => (self.applied.len() as u64).to_le_bytes().to_vec(),
            _ => self.applied.iter().flat_map(|(_, c)| c.iter().copied().chain([b';'])).collect(),
        }
    }

    fn snapshot(&self, _dir: &Path) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for (index, command) in &self.applied {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&(command.len() as u32).to_le_bytes());
            out.extend_from_slice(command);
        }
        Ok(out)
    }

    fn restore(&mut self, mut data: &[u8], _dir: &Path) -> Result<(), String> {
        self.applied.clear();
        while !data.is_empty() {
            if data.len() < 12 {
                return Err("snapshot cut short".into());
            }
            let index = u64::from_le_bytes(data[..8].try_into().unwrap());
            let len = u32::from_le_bytes(data[8..12].try_into().unwrap()) as usize;
            let command = data.get(12..12 + len).ok_or("snapshot cut short")?;
            self.applied.push((index, command.to_vec()));
            data = &data[12 + len..];
        }
        Ok(())
    }
}

fn config(id: NodeId, addrs: &BTreeMap<NodeId, String>, root: &Path) -> NodeConfig {
    let peers = addrs.iter().filter(|(p, _)| **p != id).map(|(p, a)| (*p, a.clone())).collect();
    let mut c = NodeConfig::new(id, peers, root.join(format!("n{id}")));
    c.tick = Duration::from_millis(20);
    c.store = FileStoreOptions { segment_size_bytes: 16 << 10 };
    c.snapshot_every = 40;
    c
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node that leads (the only one that thinks so among `nodes`).
async fn leader(nodes: &BTreeMap<NodeId, Node>) -> NodeId {
    wait_for("a leader", || {
        let leaders: Vec<NodeId> = nodes
            .values()
            .filter(|n| n.status().raft.role == Role::Leader)
            .map(|n| n.id())
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

/// Proposes commands `prefix-0..n` through the leader, retrying on a
/// leader change, and returns how many were acknowledged.
async fn propose_all(nodes: &BTreeMap<NodeId, Node>, prefix: &str, n: usize) -> usize {
    let mut acked = 0;
    for i in 0..n {
        let command = format!("{prefix}-{i}").into_bytes();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let id = leader(nodes).await;
            match nodes[&id].propose(command.clone()).await {
                Ok(answer) => {
                    assert_eq!(answer.len(), 8, "the state machine answers with the index");
                    acked += 1;
                    break;
                }
                Err(e) if e.is_retryable() => {}
                Err(Error::Ambiguous(_)) => panic!("no node stopped during this proposal"),
                Err(e) => panic!("proposal failed: {e}"),
            }
            assert!(Instant::now() < deadline, "proposal {i} never succeeded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, listener.local_addr().unwrap().to_string());
        listeners.insert(id, listener);
    }
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let node = Node::start(config(id, &addrs, root.path()), Journal::default(), listener);
        nodes.insert(id, node.await.unwrap());
    }

    // Election and replication.
    let first = leader(&nodes).await;
    assert_eq!(propose_all(&nodes, "a", 60).await, 60);
    let count = nodes[&first].read(b"count".to_vec()).await.unwrap();
    assert_eq!(u64::from_le_bytes(count.try_into().unwrap()), 60);

    // The leader stops; the other two elect a new one and go on.
    let stopped = nodes.remove(&first).unwrap();
    let stopped_status = stopped.status().raft;
    stopped.stop().await;
    let second = leader(&nodes).await;
    assert_ne!(second, first);
    assert!(nodes[&second].status().raft.term > stopped_status.term);
    assert_eq!(propose_all(&nodes, "b", 60).await, 60);

    // The stopped node restarts from its files, on its old address, and catches up.
    let listener = tokio::net::TcpListener::bind(&addrs[&first]).await.unwrap();
    let restarted = Node::start(config(first, &addrs, root.path()), Journal::default(), listener);
    let restarted = restarted.await.unwrap();
    let recovered = restarted.status().raft;
    assert!(recovered.last_index >= stopped_status.commit, "its log survived: {recovered:?}");
    nodes.insert(first, restarted);
    let target = nodes[&second].status().raft.commit;
    wait_for("the restarted node to catch up", || {
        (nodes[&first].status().raft.applied >= target).then_some(())
    })
    .await;
    // Every node holds the same journal (reads go through the leader's
    // lease or read index; each node's state is compared via snapshots of
    // what it applied).
    let journal = nodes[&second].read(b"all".to_vec()).await.unwrap();
    let text = String::from_utf8(journal).unwrap();
    let commands: Vec<&str> = text.split_terminator(';').collect();
    assert_eq!(commands.len(), 120);
    assert!(commands[..60].iter().enumerate().all(|(i, c)| *c == format!("a-{i}")));
    assert!(commands[60..].iter().enumerate().all(|(i, c)| *c == format!("b-{i}")));
    let statuses: Vec<_> = nodes.values().map(|n| n.status().raft).collect();
    assert!(statuses.iter().all(|s| s.protocol_violations == 0), "{statuses:?}");
    for node in nodes.into_values() {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_refuses_malformed_and_misaddressed_messages() {
    let root = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let addrs = BTreeMap::from([(1, addr.clone()), (2, "127.0.0.1:1".to_string())]);
    let mut c = config(1, &addrs, root.path());
    c.transport.max_message_bytes = 1 << 16;
    let node = Node::start(c, Journal::default(), listener).await.unwrap();
    let mut client =
        pb::raft_transport_client::RaftTransportClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    let batch = |m: pb::RaftMessage| pb::MessageBatch { messages: vec![m] };
    let no_body = pb::RaftMessage { from: 2, to: 1, term: 1, body: None };
    let status = client.deliver(batch(no_body)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let heartbeat = pb::raft_message::Body::Heartbeat(pb::Heartbeat { commit: 0, round: 1 });
    let elsewhere = pb::RaftMessage { from: 2, to: 3, term: 1, body: Some(heartbeat.clone()) };
    let status = client.deliver(batch(elsewhere)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Beyond the size limit.
    let big = pb::raft_message::Body::Snapshot(pb::InstallSnapshot {
        index: 5,
        term: 1,
        membership: Some(pb::Membership { voters: vec![1, 2] }),
        data: vec![0; 1 << 17],
        round: 1,
        files: Vec::new(),
    });
    let big = pb::RaftMessage { from: 2, to: 1, term: 1, body: Some(big) };
    let status = client.deliver(batch(big)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // A good message is accepted, and the node is still fine.
    let good = pb::RaftMessage { from: 2, to: 1, term: 1, body: Some(heartbeat) };
    let reply = client.deliver(batch(good.clone())).await.unwrap().into_inner();
    assert_eq!(reply.accepted, 1);
    // On a stream (what nodes use): batches are taken as they come, and a
    // malformed one ends the call with the same error.
    let stream = |batches: Vec<pb::MessageBatch>| {
        let (tx, rx) = tokio::sync::mpsc::channel(batches.len());
        for b in batches {
            tx.try_send(b).unwrap();
        }
        tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx)
    };
    let three = vec![batch(good.clone()), batch(good.clone()), batch(good.clone())];
    let reply = client.stream(stream(three)).await.unwrap().into_inner();
    assert_eq!(reply.accepted, 3);
    let no_body = pb::RaftMessage { from: 2, to: 1, term: 1, body: None };
    let bad = vec![batch(good.clone()), batch(no_body), batch(good)];
    let status = client.stream(stream(bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(node.status().failed.is_none());
    assert_eq!(node.status().raft.protocol_violations, 0);
    node.stop().await;
}

/// A peer that fails every stream as soon as it opens (here: a node that
/// refuses the messages, addressed to another id) is reconnected to with
/// backoff, not once per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_fails_every_stream_is_retried_with_backoff() {
    use std::sync::Arc;
    use strata_replication::transport::{Outbox, TransportConfig, TransportStats};
    use strata_replication::{Body, Message};

    let root = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let addrs = BTreeMap::from([(1, addr.clone()), (2, "127.0.0.1:1".to_string())]);
    let node =
        Node::start(config(1, &addrs, root.path()), Journal::default(), listener).await.unwrap();
    // The sender believes node 1 listens as node 7.
    let transport = TransportConfig {
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(400),
        ..TransportConfig::default()
    };
    let stats = Arc::new(TransportStats::default());
    let outbox = Outbox::start(
        &tokio::runtime::Handle::current(),
        &BTreeMap::from([(7, addr)]),
        &transport,
        stats.clone(),
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        outbox.send(&Message {
            from: 2,
            to: 7,
            term: 1,
            body: Body::Heartbeat { commit: 0, round: 1 },
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connects = TransportStats::get(&stats.connects);
    let refused = TransportStats::get(&node.transport_stats().rejected_calls);
    assert!(refused >= 2, "the node refused {refused} calls");
    // 10 + 20 + 40 + ... ms of backoff in 600 ms: at most 7 connects.
    assert!(connects <= 8, "{connects} connects in 600 ms");
    assert!(node.status().failed.is_none());
    node.stop().await;
}
