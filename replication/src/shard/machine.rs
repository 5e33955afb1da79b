//! The replicated shard's state machine: what every replica does with a
//! committed command, deterministically, over a versioned store.
//!
//! Applying a [`ShardCommand`] (in log order, on every replica):
//! 1. A command whose id was applied before answers the first answer again
//!    and changes nothing (a client retry never commits twice).
//! 2. A command whose commit timestamp is not above the newest applied one
//!    is refused ([`Answer::StaleTimestamp`]): commit timestamps increase in
//!    log order, so the newest applied timestamp `last_ts` is a safe snapshot
//!    (every commit at or below it is applied, every later one is above it).
//! 3. Otherwise its writes go to the store at its commit timestamp, as one
//!    atomic batch, and `last_ts` becomes that timestamp.
//!
//! Validation is not repeated here: the leader validated the command against
//! a state that included every earlier entry of the log (see `sequencer`),
//! so the answer depends only on the log prefix, never on the replica.
//!
//! A store write that fails is returned as an error: the node stops rather
//! than diverge (the engine refuses writes after a failure anyway).
//!
//! Invariants: `last_ts` only grows; `outcomes` holds the answers of the
//! most recent `MAX_OUTCOMES` commands by log order (the same on every
//! replica, and carried in snapshots).
//!
//! Snapshots carry the newest version of every live key, `last_ts` and the
//! remembered outcomes. They do not carry older versions or tombstones, so
//! a restored replica reads nothing below its *floor* (the snapshot's
//! `last_ts`: reads there fail as too old) and treats a key it does not hold
//! as written at the floor when it validates as leader: conservative (a
//! spurious conflict at worst), never a missed one.

use std::collections::{BTreeMap, HashMap, VecDeque};

use strata_txn::Timestamp;

use crate::shard::command::{Answer, CommandId, Reader, ShardCommand, Write, put_bytes};
use crate::types::Index;

/// How many command outcomes every replica remembers for deduplication.
pub const MAX_OUTCOMES: usize = 100_000;

/// A key's newest version in a snapshot: `(key, ts, value)`.
pub type Row = (Vec<u8>, Timestamp, Vec<u8>);

/// A versioned key-value store a shard machine applies to.
pub trait Versions {
    /// Timestamp of the newest version of `key`, tombstones included (see
    /// the module doc for keys below the floor).
    fn latest(&self, key: &[u8]) -> Result<Option<Timestamp>, String>;
    /// The value of `key` at `ts`.
    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>, String>;
    /// Applies `writes` atomically at `ts`.
    fn write(&mut self, ts: Timestamp, writes: &[Write]) -> Result<(), String>;
    /// The newest version of every live key: `(key, ts, value)`.
    fn dump(&self) -> Result<Vec<Row>, String>;
    /// Replaces the whole contents with `rows`; reads below `floor` fail.
    fn reset(&mut self, rows: Vec<Row>, floor: Timestamp) -> Result<(), String>;
}

/// Versions in memory: the simulator's store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemVersions {
    keys: BTreeMap<Vec<u8>, BTreeMap<Timestamp, Option<Vec<u8>>>>,
    floor: Timestamp,
}

impl MemVersions {
    /// The lowest timestamp reads may ask for.
    pub fn floor(&self) -> Timestamp {
        self.floor
    }
}

impl Versions for MemVersions {
    fn latest(&self, key: &[u8]) -> Result<Option<Timestamp>, String> {
        let newest = self.keys.get(key).and_then(|v| v.keys().next_back().copied());
        Ok(newest.or((self.floor > 0).then_some(self.floor)))
    }

    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>, String> {
        if ts < self.floor {
            return Err(format!("read at {ts} below the restored floor {}", self.floor));
        }
        Ok(self.keys.get(key).and_then(|v| v.range(..=ts).next_back()).and_then(|(_, v)| v.clone()))
    }

    fn write(&mut self, ts: Timestamp, writes: &[Write]) -> Result<(), String> {
        for (key, value) in writes {
            self.keys.entry(key.clone()).or_default().insert(ts, value.clone());
        }
        Ok(())
    }

    fn dump(&self) -> Result<Vec<Row>, String> {
        Ok(self
            .keys
            .iter()
            .filter_map(|(k, v)| {
                let (ts, value) = v.iter().next_back()?;
                Some((k.clone(), *ts, value.clone()?))
            })
            .collect())
    }

    fn reset(&mut self, rows: Vec<Row>, floor: Timestamp) -> Result<(), String> {
        self.keys.clear();
        for (k, ts, v) in rows {
            self.keys.entry(k).or_default().insert(ts, Some(v));
        }
        self.floor = floor;
        Ok(())
    }
}

/// The shard's replicated state over a store `V` (see the module doc).
#[derive(Debug)]
pub struct ShardMachine<V> {
    versions: V,
    last_ts: Timestamp,
    applied: Index,
    outcomes: HashMap<CommandId, Answer>,
    order: VecDeque<CommandId>,
}

impl<V: Versions> ShardMachine<V> {
    pub fn new(versions: V) -> ShardMachine<V> {
        ShardMachine {
            versions,
            last_ts: 0,
            applied: 0,
            outcomes: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn versions(&self) -> &V {
        &self.versions
    }

    /// The newest applied commit timestamp: a safe snapshot (module doc).
    pub fn last_ts(&self) -> Timestamp {
        self.last_ts
    }

    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The answer a command with this id got, if it was applied and is
    /// still remembered.
    pub fn outcome(&self, id: CommandId) -> Option<Answer> {
        self.outcomes.get(&id).copied()
    }

    /// Applies the committed command at `index` (module doc); an error means
    /// the store failed and the replica must stop.
    pub fn apply(&mut self, index: Index, bytes: &[u8]) -> Result<Answer, String> {
        self.applied = self.applied.max(index);
        let Some(command) = ShardCommand::decode(bytes) else { return Ok(Answer::Malformed) };
        if let Some(answer) = self.outcomes.get(&command.id) {
            return Ok(*answer);
        }
        let answer = if command.commit_ts <= self.last_ts {
            Answer::StaleTimestamp(self.last_ts)
        } else {
            self.versions.write(command.commit_ts, &command.writes)?;
            self.last_ts = command.commit_ts;
            Answer::Committed(command.commit_ts)
        };
        self.outcomes.insert(command.id, answer);
        self.order.push_back(command.id);
        if self.order.len() > MAX_OUTCOMES {
            let old = self.order.pop_front().expect("non-empty");
            self.outcomes.remove(&old);
        }
        Ok(answer)
    }

    /// The state as snapshot data.
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend_from_slice(&self.last_ts.to_le_bytes());
        out.extend_from_slice(&(self.order.len() as u64).to_le_bytes());
        for id in &self.order {
            out.extend_from_slice(&id.client.to_le_bytes());
            out.extend_from_slice(&id.seq.to_le_bytes());
            put_bytes(&mut out, &self.outcomes[id].encode());
        }
        let rows = self.versions.dump()?;
        out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
        for (k, ts, v) in rows {
            put_bytes(&mut out, &k);
            out.extend_from_slice(&ts.to_le_bytes());
            put_bytes(&mut out, &v);
        }
        Ok(out)
    }

    /// Replaces the state with a snapshot's (empty data: the initial state).
    /// Malformed data is an error, never a panic.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            self.versions.reset(Vec::new(), 0)?;
            self.applied = 0;
            self.last_ts = 0;
            self.outcomes.clear();
            self.order.clear();
            return Ok(());
        }
        let bad = || "malformed shard snapshot".to_string();
        let mut r = Reader { bytes: data };
        let applied = r.u64().ok_or_else(bad)?;
        let last_ts = r.u64().ok_or_else(bad)?;
        let n = r.u64().ok_or_else(bad)?;
        if n > data.len() as u64 / 16 {
            return Err(bad());
        }
        let mut outcomes = HashMap::new();
        let mut order = VecDeque::new();
        for _ in 0..n {
            let id = CommandId { client: r.u64().ok_or_else(bad)?, seq: r.u64().ok_or_else(bad)? };
            let answer = Answer::decode(r.bytes().ok_or_else(bad)?).ok_or_else(bad)?;
            outcomes.insert(id, answer);
            order.push_back(id);
        }
        let rows_n = r.u64().ok_or_else(bad)?;
        if rows_n > data.len() as u64 / 16 {
            return Err(bad());
        }
        let mut rows = Vec::new();
        for _ in 0..rows_n {
            let k = r.bytes().ok_or_else(bad)?.to_vec();
            let ts = r.u64().ok_or_else(bad)?;
            let v = r.bytes().ok_or_else(bad)?.to_vec();
            rows.push((k, ts, v));
        }
        if !r.bytes.is_empty() {
            return Err(bad());
        }
        self.versions.reset(rows, last_ts)?;
        self.applied = applied;
        self.last_ts = last_ts;
        self.outcomes = outcomes;
        self.order = order;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(seq: u64, commit_ts: Timestamp, key: &str, value: &str) -> Vec<u8> {
        ShardCommand {
            id: CommandId { client: 1, seq },
            start_ts: commit_ts - 1,
            commit_ts,
            writes: vec![(key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))],
        }
        .encode()
    }

    #[test]
    fn duplicates_answer_once_stale_timestamps_are_refused_and_snapshots_restore() {
        let mut m = ShardMachine::new(MemVersions::default());
        assert_eq!(m.apply(1, &cmd(1, 10, "a", "x")), Ok(Answer::Committed(10)));
        // A retry of the same id, even with another timestamp, changes nothing.
        assert_eq!(m.apply(2, &cmd(1, 20, "a", "y")), Ok(Answer::Committed(10)));
        assert_eq!(m.versions().get(b"a", 30), Ok(Some(b"x".to_vec())));
        assert_eq!(m.apply(3, &cmd(2, 10, "b", "z")), Ok(Answer::StaleTimestamp(10)));
        assert_eq!(m.versions().latest(b"b"), Ok(None));
        assert_eq!(m.apply(4, b"junk"), Ok(Answer::Malformed));
        assert_eq!(m.apply(5, &cmd(3, 15, "b", "z")), Ok(Answer::Committed(15)));
        assert_eq!(m.last_ts(), 15);

        let data = m.snapshot().unwrap();
        let mut back = ShardMachine::new(MemVersions::default());
        back.restore(&data).unwrap();
        assert_eq!((back.applied(), back.last_ts()), (5, 15));
        assert_eq!(back.outcome(CommandId { client: 1, seq: 1 }), Some(Answer::Committed(10)));
        assert_eq!(back.versions().get(b"b", 15), Ok(Some(b"z".to_vec())));
        // History below the floor is gone, and says so.
        assert!(back.versions().get(b"a", 12).is_err());
        // A missing key validates as if written at the floor (conservative).
        assert_eq!(back.versions().latest(b"gone"), Ok(Some(15)));
        for cut in 0..data.len() {
            assert!(
                ShardMachine::new(MemVersions::default()).restore(&data[..cut]).is_err()
                    || cut == 0
            );
        }
    }
}
