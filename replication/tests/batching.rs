//! Group commit in the Raft core: proposals queued between two `ready`s
//! become one `Append` per follower and one write and sync of each log
//! (`Raft::propose`); a leader's appends may leave before its own sync, and
//! a `Ready`'s committed entries never depend on its own writes (the two
//! relaxations of `raft`'s module doc, Raft thesis §10.2.1).

use std::collections::BTreeMap;

use strata_replication::{
    Body, Config, LogStore, MemStore, Message, NodeId, Persisted, Raft, Ready, Role, persist_ready,
};

struct Cluster {
    nodes: BTreeMap<NodeId, (Raft, MemStore)>,
    queue: Vec<Message>,
}

impl Cluster {
    fn new(ids: &[NodeId]) -> Cluster {
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let store = MemStore::new(Persisted::bootstrap(ids.iter().copied()));
            let raft = Raft::new(Config::new(id), store.load().unwrap(), id).unwrap();
            nodes.insert(id, (raft, store));
        }
        Cluster { nodes, queue: Vec::new() }
    }

    /// Drains `id`'s `Ready`s in the plain order; returns them.
    fn process(&mut self, id: NodeId) -> Vec<Ready> {
        let (raft, store) = self.nodes.get_mut(&id).unwrap();
        let mut readies = Vec::new();
        while raft.has_ready() {
            let ready = raft.ready();
            persist_ready(store, &ready).unwrap();
            self.queue.extend(ready.messages.iter().cloned());
            readies.push(ready);
        }
        readies
    }

    /// Delivers every queued message, one hop; returns what each receiver produced.
    fn deliver(&mut self) -> BTreeMap<NodeId, Vec<Ready>> {
        let mut out = BTreeMap::new();
        for msg in std::mem::take(&mut self.queue) {
            let to = msg.to;
            self.nodes.get_mut(&to).unwrap().0.step(msg);
            let readies = self.process(to);
            out.entry(to).or_insert_with(Vec::new).extend(readies);
        }
        out
    }

    fn stabilize(&mut self) {
        while !self.queue.is_empty() {
            self.deliver();
        }
    }

    fn raft(&mut self, id: NodeId) -> &mut Raft {
        &mut self.nodes.get_mut(&id).unwrap().0
    }

    fn syncs(&self, id: NodeId) -> u64 {
        self.nodes[&id].1.syncs
    }

    /// Node 1 leads and has committed an entry of its term.
    fn elect_1(ids: &[NodeId]) -> Cluster {
        let mut c = Cluster::new(ids);
        // A restarted node ignores vote requests for an election timeout.
        for &id in &ids[1..] {
            for _ in 0..10 {
                c.raft(id).tick();
            }
            c.process(id);
        }
        c.queue.clear();
        c.raft(1).campaign();
        c.process(1);
        c.stabilize();
        assert_eq!(c.raft(1).role(), Role::Leader);
        assert!(c.raft(1).status().commit >= 1);
        c
    }
}

fn appends(ready: &Ready) -> Vec<(NodeId, usize)> {
    ready
        .messages
        .iter()
        .filter_map(|m| match &m.body {
            Body::Append { entries, .. } => Some((m.to, entries.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn queued_proposals_become_one_append_and_one_sync() {
    let mut c = Cluster::elect_1(&[1, 2, 3]);
    let syncs = [c.syncs(1), c.syncs(2), c.syncs(3)];
    for cmd in ["a", "b", "c", "d", "e"] {
        c.raft(1).propose(cmd.as_bytes().to_vec()).unwrap();
    }
    // Leader: one `Ready`, one write of five entries, one sync, one Append
    // of five entries per follower, and those may leave before the sync.
    let readies = c.process(1);
    assert_eq!(readies.len(), 1);
    let ready = &readies[0];
    assert_eq!(ready.entries.len(), 5);
    assert_eq!(appends(ready), vec![(2, 5), (3, 5)]);
    assert_eq!(ready.early_messages, 2);
    assert!(ready.committed.is_empty());
    assert_eq!(c.syncs(1), syncs[0] + 1);

    // Each follower: one `Ready`, one sync, one acknowledgement, none early.
    let followers = c.deliver();
    for id in [2, 3] {
        let readies = &followers[&id];
        assert_eq!(readies.len(), 1);
        assert_eq!(readies[0].entries.len(), 5);
        assert_eq!(readies[0].early_messages, 0);
        assert_eq!(c.syncs(id), syncs[id as usize - 1] + 1);
    }

    // The acknowledgements commit all five; the leader applies them.
    let leader = c.deliver().remove(&1).unwrap();
    let committed: Vec<_> = leader.iter().flat_map(|r| r.committed.iter()).collect();
    assert_eq!(committed.len(), 5);
    assert!(leader.iter().all(|r| r.entries.is_empty()));
}

#[test]
fn committed_entries_never_wait_on_their_own_ready() {
    // One voter: its own write is the whole quorum, so the commit of a new
    // entry depends on the very `Ready` that writes it. That `Ready` must
    // not hand it out for applying; the next one does, after the sync.
    let mut c = Cluster::new(&[1]);
    c.raft(1).campaign();
    c.process(1);
    assert_eq!(c.raft(1).role(), Role::Leader);
    let index = c.raft(1).propose(b"x".to_vec()).unwrap();
    let raft = c.raft(1);
    let first = raft.ready();
    assert_eq!(first.entries.last().map(|e| e.index), Some(index));
    assert!(first.committed.iter().all(|e| e.index < index));
    assert!(raft.has_ready(), "the commit the write justifies comes next");
    let second = raft.ready();
    assert_eq!(second.committed.last().map(|e| e.index), Some(index));
}

#[test]
fn a_follower_sends_nothing_early() {
    let mut c = Cluster::elect_1(&[1, 2, 3]);
    c.raft(1).propose(b"a".to_vec()).unwrap();
    c.process(1);
    // Its AppendResp acknowledges what it is about to write: never early.
    let followers = c.deliver();
    for id in [2, 3] {
        for ready in &followers[&id] {
            assert_eq!(ready.early_messages, 0);
            assert!(ready.messages.iter().any(|m| matches!(m.body, Body::AppendResp { .. })));
        }
    }
}
