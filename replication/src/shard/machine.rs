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
//! Snapshots come in two forms:
//!
//! - **Checkpoint** (real nodes, `ReplicatedShard`): [`ShardMachine::snapshot_meta`]
//!   is `applied`, `last_ts` and the remembered outcomes, behind a magic
//!   prefix; the versions themselves are an engine checkpoint in files the
//!   node keeps (all MVCC versions above the engine's GC watermark), restored
//!   with [`ShardMachine::restore_with`]. Reads below the checkpoint's GC
//!   watermark fail as too old, as on the replica it came from.
//! - **Inline** (the simulator, and snapshots stored before checkpoints):
//!   [`ShardMachine::snapshot`] carries the newest version of every live
//!   key, `last_ts` and the outcomes. It does not carry older versions or
//!   tombstones, so a restored replica reads nothing below its *floor*
//!   (the snapshot's `last_ts`: reads there fail as too old).
//!
//! Either way a restored replica treats a key it does not hold as written
//! at its floor (the GC watermark) when it validates as leader:
//! conservative (a spurious conflict at worst), never a missed one.

use std::collections::{BTreeMap, HashMap, VecDeque};

use strata_lsm::KeyRange;
use strata_txn::Timestamp;

use crate::shard::command::{Answer, CommandId, Reader, ShardCommand, Write, put_bytes};
use crate::shard::recent::{self, RecentWrites};
use crate::types::Index;

/// How many command outcomes every replica remembers for deduplication.
pub const MAX_OUTCOMES: usize = 100_000;

/// The first bytes of checkpoint metadata ([`ShardMachine::snapshot_meta`]);
/// inline snapshots start with the applied index, which never is this.
const CHECKPOINT_MAGIC: &[u8; 8] = b"STRSHCK1";

/// `applied`, `last_ts` and the outcomes, as a snapshot carries them.
type Meta = (Index, Timestamp, HashMap<CommandId, Answer>, VecDeque<(CommandId, Answer)>);

/// A key's newest version in a snapshot: `(key, ts, value)`.
pub type Row = (Vec<u8>, Timestamp, Vec<u8>);

/// A versioned key-value store a shard machine applies to.
pub trait Versions {
    /// Timestamp of the newest version of `key`, tombstones included (see
    /// the module doc for keys below the floor).
    fn latest(&self, key: &[u8]) -> Result<Option<Timestamp>, String>;
    /// What validation of a transaction whose snapshot is `start_ts` needs
    /// to know of `key`: a timestamp above `start_ts` exactly when `key`
    /// has a version (or the floor) above it. [`Versions::latest`] is one
    /// such answer; a store may answer more cheaply for young snapshots.
    fn newest_since(&self, key: &[u8], start_ts: Timestamp) -> Result<Option<Timestamp>, String> {
        let _ = start_ts;
        self.latest(key)
    }
    /// A key in `range` whose newest version, tombstones included, is newer
    /// than `ts`, with that version's timestamp (SERIALIZABLE phantom
    /// validation). Below the floor the answer is conservative: the floor
    /// itself counts as a newer version of the range.
    fn newer_in_range(
        &self,
        range: &KeyRange,
        ts: Timestamp,
    ) -> Result<Option<(Vec<u8>, Timestamp)>, String>;
    /// The value of `key` at `ts`.
    fn get(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>, String>;
    /// Applies `writes` atomically at `ts`.
    fn write(&mut self, ts: Timestamp, writes: &[Write]) -> Result<(), String>;
    /// The newest version of every live key: `(key, ts, value)`.
    fn dump(&self) -> Result<Vec<Row>, String>;
    /// Replaces the whole contents with `rows`; reads below `floor` fail.
    fn reset(&mut self, rows: Vec<Row>, floor: Timestamp) -> Result<(), String>;
}

/// How many recent writes the simulator's store remembers: few, so that
/// its validation runs through both the index and its fallback, and
/// through eviction raising the horizon.
const SIM_RECENT_WRITES: usize = 8;

/// Versions in memory: the simulator's store. It keeps the index of recent
/// writes a real replica keeps ([`RecentWrites`]), with a fixed salt.
#[derive(Clone, Debug)]
pub struct MemVersions {
    keys: BTreeMap<Vec<u8>, BTreeMap<Timestamp, Option<Vec<u8>>>>,
    floor: Timestamp,
    recent: RecentWrites,
}

impl Default for MemVersions {
    fn default() -> MemVersions {
        MemVersions {
            keys: BTreeMap::new(),
            floor: 0,
            recent: RecentWrites::with_salt(SIM_RECENT_WRITES, 0),
        }
    }
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

    fn newest_since(&self, key: &[u8], start_ts: Timestamp) -> Result<Option<Timestamp>, String> {
        recent::newest_since(&self.recent, key, start_ts, || self.floor, || self.latest(key))
    }

    fn newer_in_range(
        &self,
        range: &KeyRange,
        ts: Timestamp,
    ) -> Result<Option<(Vec<u8>, Timestamp)>, String> {
        if self.floor > ts {
            return Ok(Some((Vec::new(), self.floor)));
        }
        Ok(self.keys.iter().filter(|(key, _)| range.contains(key)).find_map(|(key, versions)| {
            let newest = *versions.keys().next_back()?;
            (newest > ts).then(|| (key.clone(), newest))
        }))
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
        self.recent.record(ts, writes.iter().map(|(key, _)| key.as_slice()));
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
        self.recent.reset();
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
    /// The remembered outcomes again, oldest first, so that evicting the
    /// oldest and writing all of them into a snapshot (100 000 of them,
    /// on the driver thread) need no lookups in `outcomes`.
    order: VecDeque<(CommandId, Answer)>,
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

    /// The state apart from the versions, for a snapshot whose versions
    /// are an engine checkpoint (module doc).
    pub fn snapshot_meta(&self) -> Vec<u8> {
        let mut out = CHECKPOINT_MAGIC.to_vec();
        self.encode_meta(&mut out);
        out
    }

    /// Whether `data` is [`ShardMachine::snapshot_meta`]'s (else inline).
    pub fn is_checkpoint_meta(data: &[u8]) -> bool {
        data.starts_with(CHECKPOINT_MAGIC)
    }

    /// Restores from checkpoint metadata: checks `data` first, then lets
    /// `restore_versions` replace the versions (from the checkpoint's
    /// files), then takes the rest from `data`. Malformed data is an error,
    /// never a panic, and changes nothing.
    pub fn restore_with(
        &mut self,
        data: &[u8],
        restore_versions: impl FnOnce(&mut V) -> Result<(), String>,
    ) -> Result<(), String> {
        let bad = || "malformed shard checkpoint metadata".to_string();
        let body = data.strip_prefix(CHECKPOINT_MAGIC.as_slice()).ok_or_else(bad)?;
        let mut r = Reader { bytes: body };
        let meta = decode_meta(&mut r, body.len()).ok_or_else(bad)?;
        if !r.bytes.is_empty() {
            return Err(bad());
        }
        restore_versions(&mut self.versions)?;
        (self.applied, self.last_ts, self.outcomes, self.order) = meta;
        Ok(())
    }

    fn encode_meta(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend_from_slice(&self.last_ts.to_le_bytes());
        out.extend_from_slice(&(self.order.len() as u64).to_le_bytes());
        for (id, answer) in &self.order {
            out.extend_from_slice(&id.client.to_le_bytes());
            out.extend_from_slice(&id.seq.to_le_bytes());
            put_bytes(out, &answer.encode());
        }
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
        self.order.push_back((command.id, answer));
        if self.order.len() > MAX_OUTCOMES {
            let (old, _) = self.order.pop_front().expect("non-empty");
            self.outcomes.remove(&old);
        }
        Ok(answer)
    }

    /// The state as snapshot data.
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.encode_meta(&mut out);
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
        let (applied, last_ts, outcomes, order) =
            decode_meta(&mut r, data.len()).ok_or_else(bad)?;
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

/// Decodes what `encode_meta` wrote (`len`: the whole input's length, to
/// bound counts before allocating).
fn decode_meta(r: &mut Reader<'_>, len: usize) -> Option<Meta> {
    let applied = r.u64()?;
    let last_ts = r.u64()?;
    let n = r.u64()?;
    if n > len as u64 / 16 {
        return None;
    }
    let mut outcomes = HashMap::new();
    let mut order = VecDeque::new();
    for _ in 0..n {
        let id = CommandId { client: r.u64()?, seq: r.u64()? };
        let answer = Answer::decode(r.bytes()?)?;
        outcomes.insert(id, answer);
        order.push_back((id, answer));
    }
    Some((applied, last_ts, outcomes, order))
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

    #[test]
    fn checkpoint_metadata_restores_everything_but_the_versions() {
        let mut m = ShardMachine::new(MemVersions::default());
        m.apply(1, &cmd(1, 10, "a", "x")).unwrap();
        m.apply(2, &cmd(2, 20, "b", "y")).unwrap();
        let meta = m.snapshot_meta();
        assert!(ShardMachine::<MemVersions>::is_checkpoint_meta(&meta));
        assert!(!ShardMachine::<MemVersions>::is_checkpoint_meta(&m.snapshot().unwrap()));
        let mut back = ShardMachine::new(MemVersions::default());
        let mut called = false;
        back.restore_with(&meta, |_| {
            called = true;
            Ok(())
        })
        .unwrap();
        assert!(called);
        assert_eq!((back.applied(), back.last_ts()), (2, 20));
        assert_eq!(back.outcome(CommandId { client: 1, seq: 2 }), Some(Answer::Committed(20)));
        // Damaged metadata changes nothing and never reaches the versions.
        for cut in 0..meta.len() {
            let mut fresh = ShardMachine::new(MemVersions::default());
            let result = fresh.restore_with(&meta[..cut], |_| panic!("versions replaced"));
            assert!(result.is_err(), "cut at {cut}");
            assert_eq!(fresh.applied(), 0);
        }
        // A failing restore of the versions leaves the rest unchanged too.
        let mut fresh = ShardMachine::new(MemVersions::default());
        assert!(fresh.restore_with(&meta, |_| Err("disk".into())).is_err());
        assert_eq!(fresh.last_ts(), 0);
    }
}
