//! The leader's half of a replicated commit: optimistic validation and
//! commit timestamps, as a pure structure the real shard and the simulator
//! both drive.
//!
//! The rule is `LocalShard`'s (first committer wins, plus the keys read for
//! SERIALIZABLE): a transaction commits only if no key it writes or read FOR
//! UPDATE has a version newer than its `start_ts`. "Newer" looks at two
//! places: the applied state (`latest`), and the leader's own proposals that
//! are in flight (validated and proposed, not yet answered).
//!
//! Why that is complete: a leader validates only after it has applied every
//! entry before its own term's first entry (the caller makes a read-index or
//! lease round first and waits for it to apply). Every entry that can still
//! commit ahead of the new command is then either applied or one of this
//! leader's in-flight proposals: an entry of an older term that is not in
//! this leader's log can never commit (Raft's leader completeness), and one
//! that is, is before the term's first entry.
//!
//! Commit timestamps: `max(now, last applied + 1, last assigned + 1, floor +
//! 1)`, so they increase in proposal order (the caller proposes in the order
//! it assigns, under one lock) and stay above every snapshot handed out.
//!
//! A command id that is in flight must not be validated again: a retry
//! would see the first attempt's own keys as a conflict and report "aborted"
//! while the first attempt may still commit. The caller answers "in flight"
//! (outcome unknown) instead.
//!
//! Invariants: `pending` holds exactly the assigned and unanswered
//! timestamps and their command ids; `inflight[k]` is the largest pending
//! timestamp writing `k`.

use std::collections::{BTreeMap, HashMap};

use strata_txn::{CommitRequest, ConflictKind, Error, Isolation, Timestamp};

use crate::shard::command::CommandId;

/// Validation and timestamp assignment on the leader (module doc).
#[derive(Debug, Default)]
pub struct Sequencer {
    inflight: HashMap<Vec<u8>, Timestamp>,
    pending: BTreeMap<Timestamp, (CommandId, Vec<Vec<u8>>)>,
    ids: HashMap<CommandId, Timestamp>,
    last_assigned: Timestamp,
    floor: Timestamp,
}

impl Sequencer {
    /// Validates `request` against the applied state (`latest`: the newest
    /// version's timestamp of a key) and the proposals in flight, then
    /// assigns its commit timestamp and records it as in flight.
    pub fn validate_and_assign(
        &mut self,
        id: CommandId,
        request: &CommitRequest,
        latest: impl Fn(&[u8]) -> Result<Option<Timestamp>, Error>,
        last_applied_ts: Timestamp,
        now: Timestamp,
    ) -> Result<Timestamp, Error> {
        if self.ids.contains_key(&id) {
            return Err(Error::InvalidArgument(format!("commit {id:?} is already in flight")));
        }
        if request.isolation == Isolation::Serializable && !request.ranges.is_empty() {
            return Err(Error::InvalidArgument(
                "SERIALIZABLE range (phantom) validation is not supported on replicated shards yet"
                    .into(),
            ));
        }
        let start_ts = request.start_ts;
        let check = |key: &[u8], kind: ConflictKind| -> Result<(), Error> {
            let applied = latest(key)?;
            let newest = applied.max(self.inflight.get(key).copied());
            match newest {
                Some(committed_ts) if committed_ts > start_ts => {
                    Err(Error::Conflict { kind, key: key.to_vec(), start_ts, committed_ts })
                }
                _ => Ok(()),
            }
        };
        for (key, _) in &request.writes {
            check(key, ConflictKind::WriteWrite)?;
        }
        for key in &request.for_update {
            check(key, ConflictKind::WriteWrite)?;
        }
        if request.isolation == Isolation::Serializable {
            for key in &request.reads {
                check(key, ConflictKind::ReadWrite)?;
            }
        }
        let ts = now
            .max(last_applied_ts + 1)
            .max(self.last_assigned + 1)
            .max(self.floor + 1)
            .max(start_ts + 1);
        let keys: Vec<Vec<u8>> = request
            .writes
            .iter()
            .map(|(k, _)| k.clone())
            .chain(request.for_update.iter().cloned())
            .collect();
        for key in &keys {
            let e = self.inflight.entry(key.clone()).or_insert(ts);
            *e = (*e).max(ts);
        }
        self.pending.insert(ts, (id, keys));
        self.ids.insert(id, ts);
        self.last_assigned = ts;
        Ok(ts)
    }

    /// The proposal at `ts` was answered (applied, refused, dropped or
    /// ambiguous): it is no longer in flight.
    pub fn finish(&mut self, ts: Timestamp) {
        let Some((id, keys)) = self.pending.remove(&ts) else { return };
        self.ids.remove(&id);
        for key in keys {
            if self.inflight.get(&key) == Some(&ts) {
                // Another pending proposal may still write the key.
                let other = self.pending.iter().rev().find(|(_, (_, ks))| ks.contains(&key));
                match other {
                    Some((t, _)) => {
                        self.inflight.insert(key, *t);
                    }
                    None => {
                        self.inflight.remove(&key);
                    }
                }
            }
        }
    }

    /// Keeps every later commit timestamp above `ts`; returns whether a
    /// proposal at or below `ts` is still in flight (a read at `ts` must
    /// wait for it).
    pub fn cover(&mut self, ts: Timestamp) -> bool {
        self.floor = self.floor.max(ts);
        self.pending.range(..=ts).next().is_some()
    }

    /// Whether a commit with this id is validated and not yet answered.
    pub fn is_in_flight(&self, id: CommandId) -> bool {
        self.ids.contains_key(&id)
    }

    /// Proposals in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(start_ts: Timestamp, key: &str) -> CommitRequest {
        CommitRequest {
            start_ts,
            writes: vec![(key.as_bytes().to_vec(), Some(b"v".to_vec()))],
            ..CommitRequest::default()
        }
    }

    fn id(seq: u64) -> CommandId {
        CommandId { client: 1, seq }
    }

    #[test]
    fn first_committer_wins_against_applied_and_in_flight_commits() {
        let mut s = Sequencer::default();
        let applied = |key: &[u8]| Ok(if key == b"old" { Some(50) } else { None });
        // Applied newer than the snapshot: conflict.
        let e = s.validate_and_assign(id(1), &put(40, "old"), applied, 50, 0).unwrap_err();
        assert!(matches!(e, Error::Conflict { committed_ts: 50, .. }), "{e}");
        let t0 = s.validate_and_assign(id(2), &put(50, "old"), applied, 50, 0).unwrap();
        assert_eq!(t0, 51);
        // In flight: the second writer of "k" with the same snapshot loses.
        let t1 = s.validate_and_assign(id(3), &put(50, "k"), applied, 50, 0).unwrap();
        let e = s.validate_and_assign(id(4), &put(50, "k"), applied, 50, 0).unwrap_err();
        assert!(matches!(e, Error::Conflict { committed_ts, .. } if committed_ts == t1));
        // Timestamps increase and stay above the clock, the applied state and the floor.
        assert!(t1 > 51);
        assert!(s.cover(t1 + 10));
        s.finish(t1);
        assert!(s.cover(t1 + 10), "the proposal at {t0} is still in flight");
        s.finish(t0);
        assert!(!s.cover(t1 + 10));
        let t2 = s.validate_and_assign(id(5), &put(t1 + 10, "k"), applied, 50, 0).unwrap();
        assert!(t2 > t1 + 10);
        let t3 = s.validate_and_assign(id(6), &put(0, "z"), applied, 50, 1_000).unwrap();
        assert_eq!(t3, 1_000.max(t2 + 1));
        assert_eq!(s.in_flight(), 2);
        // A retry of an id in flight is refused, not validated against itself.
        assert!(s.is_in_flight(id(6)));
        assert!(s.validate_and_assign(id(6), &put(t3, "y"), applied, 50, 0).is_err());
        s.finish(t3);
        assert!(!s.is_in_flight(id(6)));
    }
}
