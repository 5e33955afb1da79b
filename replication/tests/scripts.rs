//! Scripted Raft scenarios with recorded output (goldenscript style).
//!
//! Each file under `tests/scripts/` states the rule it checks in `#`
//! comments, then runs commands against a hand-driven replica set. Every
//! command block ends with `----` followed by the output it produced; the test
//! runs the commands and fails if the output differs. To accept new output
//! after an intended change: `UPDATE_GOLDEN=1 cargo test -p strata-replication
//! --test scripts`, then review the diff.
//!
//! Messages are not delivered until a `deliver` or `stabilize` command says
//! so, so a script controls exactly what each node sees. Commands:
//!
//! ```text
//! cluster nodes=N [voters=1,2,3] [lease_drift=D|none] [prevote=B] [check_quorum=B]
//!         [max_append=N] [max_inflight=N] [election=N] [heartbeat=N]
//! tick IDS|all [N]            N ticks (default 1), round-robin over the nodes
//! campaign ID                 start an election now
//! propose ID TEXT             propose a command
//! read ID RID                 ask for a linearizable read
//! conf ID add|remove NODE     propose a membership change
//! transfer ID TARGET          hand leadership to TARGET
//! compact ID                  snapshot at the applied index
//! sending-snapshot ID         whether the leader is sending a follower a snapshot
//! deliver [from=ID] [to=ID]   deliver the queued messages (one hop), printing them
//! stabilize [quiet]           deliver until nothing is queued
//! drop [from=ID] [to=ID]      discard queued messages
//! partition 1 2 | 3           cut the links between the groups; `heal` restores them
//! crash ID / restart ID       lose memory (the disk keeps what was synced) / recover
//! status [IDS]                role, term, commit, applied, log, membership, lease
//! log ID                      the node's log
//! ```
//!
//! Node state changes (roles, applied entries, installed snapshots, read
//! results) are printed as they happen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use strata_replication::{
    Body, ConfChange, Config, LogStore, MemStore, Message, NodeId, Persisted, Raft, Role, Snapshot,
    persist_ready,
};

#[derive(Debug)]
struct Node {
    raft: Option<Raft>,
    store: MemStore,
    /// The state machine: payloads of applied commands, in order.
    applied: Vec<String>,
    last: (Role, u64, Option<NodeId>),
}

#[derive(Debug, Default)]
struct Harness {
    nodes: BTreeMap<NodeId, Node>,
    config: Option<Config>,
    queue: Vec<Message>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    out: String,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn encode_state(applied: &[String]) -> Vec<u8> {
    applied.join("\n").into_bytes()
}

fn decode_state(data: &[u8]) -> Vec<String> {
    if data.is_empty() {
        return Vec::new();
    }
    String::from_utf8_lossy(data).split('\n').map(str::to_string).collect()
}

impl Harness {
    fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    fn raft(&mut self, id: NodeId) -> Result<&mut Raft, String> {
        self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()).ok_or(format!("n{id} is down"))
    }

    fn ids(&self, args: &[&str]) -> Result<Vec<NodeId>, String> {
        if args.is_empty() || args == ["all"] {
            return Ok(self.nodes.keys().copied().collect());
        }
        args.iter().map(|a| a.parse().map_err(|_| format!("bad node id {a}"))).collect()
    }

    fn start(&mut self, id: NodeId) -> Result<(), String> {
        let mut config = self.config.clone().expect("cluster first");
        config.id = id;
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        let persisted = node.store.load().map_err(|e| e.to_string())?;
        node.applied = decode_state(&persisted.snapshot.data);
        node.raft = Some(Raft::new(config, persisted, id).map_err(|e| e.to_string())?);
        node.last = (Role::Follower, node.raft.as_ref().expect("just set").term(), None);
        Ok(())
    }

    /// Drives a node's `Ready`s and prints what changed.
    fn process(&mut self, id: NodeId) {
        let mut lines = Vec::new();
        let Some(node) = self.nodes.get_mut(&id) else { return };
        let Some(raft) = node.raft.as_mut() else { return };
        while raft.has_ready() {
            let ready = raft.ready();
            persist_ready(&mut node.store, &ready).expect("memory store");
            self.queue.extend(ready.messages.iter().cloned());
            if let Some(s) = &ready.snapshot {
                node.applied = decode_state(&s.data);
                lines.push(format!(
                    "n{id} installed snapshot {}@{} config {}",
                    s.index, s.term, s.membership
                ));
            }
            for e in &ready.committed {
                node.applied.push(e.to_string());
                lines.push(format!("n{id} applied {e}"));
            }
            let applied = raft.status().applied;
            for r in &ready.reads {
                match r.index {
                    Some(index) => lines.push(format!(
                        "n{id} read {} ready at index {index} (applied {applied})",
                        r.id
                    )),
                    None => lines.push(format!("n{id} read {} aborted: leadership lost", r.id)),
                }
            }
        }
        let s = raft.status();
        let now = (s.role, s.term, s.leader);
        if now != node.last {
            let leader = s.leader.map_or(String::new(), |l| format!(" (leader n{l})"));
            lines.push(format!("n{id} is {} in term {}{leader}", role_name(s.role), s.term));
            node.last = now;
        }
        for l in lines {
            self.line(l);
        }
    }

    fn deliver(&mut self, from: Option<NodeId>, to: Option<NodeId>) -> usize {
        let (now, keep): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|m| from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t));
        self.queue = keep;
        let count = now.len();
        for msg in now {
            let up = self.nodes.get(&msg.to).is_some_and(|n| n.raft.is_some());
            if self.blocked.contains(&(msg.from, msg.to)) || !up {
                self.line(format!("{msg} [dropped]"));
                continue;
            }
            self.line(msg.to_string());
            let to = msg.to;
            self.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()).expect("up").step(msg);
            self.process(to);
        }
        count
    }

    fn run(&mut self, command: &str) -> Result<(), String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let (name, args) = words.split_first().ok_or("empty command")?;
        let kv = |key: &str| {
            args.iter().find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        };
        let node_arg = |i: usize| -> Result<NodeId, String> {
            args.get(i).and_then(|a| a.parse().ok()).ok_or(format!("{name}: node id expected"))
        };
        match *name {
            "cluster" => {
                let n: u64 = kv("nodes").and_then(|v| v.parse().ok()).ok_or("nodes=N")?;
                let voters: Vec<NodeId> = match kv("voters") {
                    Some(v) => v
                        .split(',')
                        .map(|x| x.parse().map_err(|_| "voters"))
                        .collect::<Result<_, _>>()?,
                    None => (1..=n).collect(),
                };
                let mut config = Config::new(0);
                let flag = |v: Option<&str>, d: bool| v.map_or(d, |v| v == "true");
                config.pre_vote = flag(kv("prevote"), true);
                config.check_quorum = flag(kv("check_quorum"), true);
                config.lease_drift_ticks = match kv("lease_drift") {
                    Some("none") => None,
                    Some(v) => Some(v.parse().map_err(|_| "lease_drift")?),
                    None => config.lease_drift_ticks,
                };
                let num = |k: &str, d: u64| {
                    kv(k).map_or(Ok(d), |v| v.parse().map_err(|_| format!("bad {k}")))
                };
                config.election_ticks = num("election", config.election_ticks)?;
                config.heartbeat_ticks = num("heartbeat", config.heartbeat_ticks)?;
                config.max_append_entries =
                    num("max_append", config.max_append_entries as u64)? as usize;
                config.max_inflight_entries = num("max_inflight", config.max_inflight_entries)?;
                config.validate().map_err(|e| e.to_string())?;
                self.config = Some(config);
                self.nodes.clear();
                self.queue.clear();
                self.blocked.clear();
                for id in 1..=n {
                    let initial = if voters.contains(&id) {
                        Persisted::bootstrap(voters.clone())
                    } else {
                        Persisted::default()
                    };
                    let node = Node {
                        raft: None,
                        store: MemStore::new(initial),
                        applied: Vec::new(),
                        last: (Role::Follower, 0, None),
                    };
                    self.nodes.insert(id, node);
                    self.start(id)?;
                }
            }
            "tick" => {
                let (ids, count) = match args.last().and_then(|a| a.parse::<u64>().ok()) {
                    Some(c) if args.len() > 1 => (self.ids(&args[..args.len() - 1])?, c),
                    _ => (self.ids(args)?, 1),
                };
                for _ in 0..count {
                    for &id in &ids {
                        if let Ok(raft) = self.raft(id) {
                            raft.tick();
                            self.process(id);
                        }
                    }
                }
            }
            "campaign" => {
                let id = node_arg(0)?;
                self.raft(id)?.campaign();
                self.process(id);
            }
            "propose" => {
                let id = node_arg(0)?;
                let text = args[1..].join(" ");
                let result = self.raft(id)?.propose(text.into_bytes());
                match result {
                    Ok(index) => self.line(format!("n{id} proposed at index {index}")),
                    Err(e) => self.line(format!("n{id} refused: {e}")),
                }
                self.process(id);
            }
            "read" => {
                let id = node_arg(0)?;
                let rid: u64 = args.get(1).and_then(|a| a.parse().ok()).ok_or("read ID RID")?;
                if let Err(e) = self.raft(id)?.read_index(rid) {
                    self.line(format!("n{id} refused read {rid}: {e}"));
                }
                self.process(id);
            }
            "conf" => {
                let id = node_arg(0)?;
                let target = node_arg(2)?;
                let change = match args.get(1) {
                    Some(&"add") => ConfChange::AddVoter(target),
                    Some(&"remove") => ConfChange::RemoveVoter(target),
                    _ => return Err("conf ID add|remove NODE".into()),
                };
                match self.raft(id)?.propose_conf_change(change) {
                    Ok(index) => self.line(format!("n{id} proposed {change:?} at index {index}")),
                    Err(e) => self.line(format!("n{id} refused {change:?}: {e}")),
                }
                self.process(id);
            }
            "transfer" => {
                let (id, target) = (node_arg(0)?, node_arg(1)?);
                if let Err(e) = self.raft(id)?.transfer_leader(target) {
                    self.line(format!("n{id} refused transfer: {e}"));
                }
                self.process(id);
            }
            "compact" => {
                let id = node_arg(0)?;
                let node = self.nodes.get_mut(&id).ok_or("no such node")?;
                let data = encode_state(&node.applied);
                let raft = node.raft.as_mut().ok_or("down")?;
                let applied = raft.status().applied;
                match raft.compact(applied, data) {
                    Ok(()) => self.line(format!("n{id} compacted through {applied}")),
                    Err(e) => self.line(format!("n{id} refused compaction: {e}")),
                }
                self.process(id);
            }
            "sending-snapshot" => {
                let id = node_arg(0)?;
                let sending = self.raft(id)?.sending_snapshot();
                self.line(format!("n{id} sending a snapshot: {sending}"));
            }
            "deliver" => {
                let from = kv("from").and_then(|v| v.parse().ok());
                let to = kv("to").and_then(|v| v.parse().ok());
                self.deliver(from, to);
            }
            "stabilize" => {
                let quiet = args.contains(&"quiet");
                let mark = self.out.len();
                while self.deliver(None, None) > 0 {}
                if quiet {
                    let shown: String = self.out[mark..]
                        .lines()
                        .filter(|l| l.starts_with('n'))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    self.out.truncate(mark);
                    self.out.push_str(&shown);
                }
            }
            "drop" => {
                let from: Option<NodeId> = kv("from").and_then(|v| v.parse().ok());
                let to: Option<NodeId> = kv("to").and_then(|v| v.parse().ok());
                let before = self.queue.len();
                self.queue.retain(|m| {
                    !(from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t))
                });
                let n = before - self.queue.len();
                self.line(format!("dropped {n} messages"));
            }
            "partition" => {
                let groups: Vec<Vec<NodeId>> = args
                    .split(|a| *a == "|")
                    .map(|g| g.iter().filter_map(|a| a.parse().ok()).collect())
                    .collect();
                for (i, a) in groups.iter().enumerate() {
                    for (j, b) in groups.iter().enumerate() {
                        if i != j {
                            for x in a {
                                for y in b {
                                    self.blocked.insert((*x, *y));
                                }
                            }
                        }
                    }
                }
            }
            "heal" => self.blocked.clear(),
            "crash" => {
                let id = node_arg(0)?;
                let node = self.nodes.get_mut(&id).ok_or("no such node")?;
                node.raft = None;
                node.store.crash(&mut strata_replication::Rng::new(id));
                self.line(format!("n{id} crashed"));
            }
            "restart" => {
                let id = node_arg(0)?;
                self.start(id)?;
                let s = self.raft(id)?.status();
                self.line(format!(
                    "n{id} restarted: term {} vote {:?} commit {} last {}@{} snapshot {}",
                    s.term, s.vote, s.commit, s.last_index, s.last_term, s.snapshot_index
                ));
                self.process(id);
            }
            "status" => {
                for id in self.ids(args)? {
                    let Some(raft) = self.nodes[&id].raft.as_ref() else {
                        self.line(format!("n{id} down"));
                        continue;
                    };
                    let s = raft.status();
                    let mut line = format!(
                        "n{id} {} term={} commit={} applied={} last={}@{} snapshot={} config={}",
                        role_name(s.role),
                        s.term,
                        s.commit,
                        s.applied,
                        s.last_index,
                        s.last_term,
                        s.snapshot_index,
                        s.membership
                    );
                    if let Some(l) = s.leader {
                        let _ = write!(line, " leader=n{l}");
                    }
                    if s.lease {
                        line.push_str(" lease");
                    }
                    self.line(line);
                }
            }
            "term_start" => {
                for id in self.ids(args)? {
                    let start = self.nodes[&id].raft.as_ref().map(|r| r.term_start_index());
                    match start {
                        Some(start) => self.line(format!("n{id} term_start={start}")),
                        None => self.line(format!("n{id} down")),
                    }
                }
            }
            "log" => {
                let id = node_arg(0)?;
                let raft = self.raft(id)?;
                let entries: Vec<String> =
                    raft.log_entries().iter().map(|e| e.to_string()).collect();
                let snapshot = raft.status().snapshot_index;
                self.line(format!(
                    "n{id} log (after snapshot {snapshot}): [{}]",
                    entries.join(", ")
                ));
            }
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }
}

/// Runs a script and returns it with the actual output in place of the recorded one.
fn run_script(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut h = Harness::default();
    let mut result = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() || line.starts_with('#') {
            result.push_str(line);
            result.push('\n');
            i += 1;
            continue;
        }
        let mut commands = Vec::new();
        while i < lines.len() && lines[i] != "----" && !lines[i].is_empty() {
            commands.push(lines[i]);
            i += 1;
        }
        i += 1; // the ---- line
        while i < lines.len() && !lines[i].is_empty() {
            i += 1; // recorded output
        }
        h.out.clear();
        for c in &commands {
            if let Err(e) = h.run(c) {
                h.line(format!("error: {e}"));
            }
            // Invariants hold after every command.
            for node in h.nodes.values() {
                if let Some(raft) = &node.raft {
                    raft.assert_invariants();
                }
            }
        }
        for c in &commands {
            result.push_str(c);
            result.push('\n');
        }
        result.push_str("----\n");
        if h.out.is_empty() {
            result.push_str("ok\n");
        } else {
            result.push_str(&h.out);
        }
    }
    result
}

#[test]
fn scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    assert!(!paths.is_empty());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "txt")) {
        let text = std::fs::read_to_string(path).unwrap();
        let actual = run_script(&text);
        if actual != text {
            if update {
                std::fs::write(path, &actual).unwrap();
            } else {
                let first = text
                    .lines()
                    .zip(actual.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(text.lines().count().min(actual.lines().count()));
                mismatches.push(format!(
                    "{}: first difference at line {}\n  recorded: {:?}\n  actual:   {:?}",
                    path.display(),
                    first + 1,
                    text.lines().nth(first),
                    actual.lines().nth(first)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "scripts differ (UPDATE_GOLDEN=1 to accept):\n{}",
        mismatches.join("\n")
    );
}

/// The message types are all reachable from scripts (keeps the format honest).
#[test]
fn message_display_is_stable() {
    let m = Message { from: 1, to: 2, term: 3, body: Body::TimeoutNow };
    assert_eq!(m.to_string(), "1→2 t3 TimeoutNow");
    let s = Snapshot::default();
    let m = Message { from: 1, to: 2, term: 3, body: Body::Snapshot { snapshot: s, round: 4 } };
    assert_eq!(m.to_string(), "1→2 t3 Snapshot 0@0 config {} round=4");
}
