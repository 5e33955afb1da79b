//! The leader's half of a replicated commit: optimistic validation and
//! commit timestamps, as a pure structure the real shard and the simulator
//! both drive.
//!
//! The rule is `LocalShard`'s (first committer wins, plus the keys read and
//! the ranges scanned for SERIALIZABLE): a transaction commits only if no
//! key it writes or read FOR UPDATE (or, SERIALIZABLE, read) has a version
//! newer than its `start_ts`, and, SERIALIZABLE, no key in a range it
//! scanned does either (a phantom: inserted, changed or deleted). "Newer"
//! looks at two places: the applied state ([`Versions::newest_since`],
//! which a replica may answer from its index of recent writes, and
//! [`Versions::newer_in_range`]), and the leader's own proposals that are
//! in flight (validated and proposed, not yet answered).
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
use crate::shard::machine::Versions;

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
    /// Validates `request` against the applied state `versions` and the
    /// proposals in flight, then assigns its commit timestamp and records
    /// it as in flight.
    pub fn validate_and_assign(
        &mut self,
        id: CommandId,
        request: &CommitRequest,
        versions: &impl Versions,
        last_applied_ts: Timestamp,
        now: Timestamp,
    ) -> Result<Timestamp, Error> {
        if self.ids.contains_key(&id) {
            return Err(Error::InvalidArgument(format!("commit {id:?} is already in flight")));
        }
        let start_ts = request.start_ts;
        let check = |key: &[u8], kind: ConflictKind| -> Result<(), Error> {
            let applied = versions.newest_since(key, start_ts).map_err(Error::Corruption)?;
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
            for range in &request.ranges {
                let in_flight = self
                    .inflight
                    .iter()
                    .filter(|(key, ts)| **ts > start_ts && range.contains(key))
                    .map(|(key, ts)| (key.clone(), *ts))
                    .next();
                let newer = match in_flight {
                    Some(found) => Some(found),
                    None => versions.newer_in_range(range, start_ts).map_err(Error::Corruption)?,
                };
                if let Some((key, committed_ts)) = newer {
                    let kind = ConflictKind::Phantom;
                    return Err(Error::Conflict { kind, key, start_ts, committed_ts });
                }
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
    use std::ops::Bound;

    use strata_lsm::KeyRange;

    use super::*;
    use crate::shard::machine::MemVersions;

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
        let mut versions = MemVersions::default();
        versions.write(50, &[(b"old".to_vec(), Some(b"v".to_vec()))]).unwrap();
        let applied = &versions;
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

    #[test]
    fn serializable_scans_conflict_with_newer_versions_in_their_ranges() {
        let mut s = Sequencer::default();
        let mut versions = MemVersions::default();
        let write = |v: &mut MemVersions, ts, key: &str, value: Option<&str>| {
            v.write(ts, &[(key.as_bytes().to_vec(), value.map(|x| x.as_bytes().to_vec()))]).unwrap()
        };
        write(&mut versions, 10, "b", Some("1"));
        write(&mut versions, 10, "c", Some("1"));
        let range = |lo: &str, hi: &str| {
            KeyRange::new(Bound::Included(lo.as_bytes()), Bound::Excluded(hi.as_bytes()))
        };
        let scan = |start_ts, r: KeyRange| CommitRequest {
            start_ts,
            isolation: Isolation::Serializable,
            writes: vec![(b"out".to_vec(), Some(b"v".to_vec()))],
            ranges: vec![r],
            ..CommitRequest::default()
        };
        let phantom = |e: Error| match e {
            Error::Conflict { kind: ConflictKind::Phantom, key, committed_ts, .. } => {
                (String::from_utf8(key).unwrap(), committed_ts)
            }
            other => panic!("expected a phantom, got {other}"),
        };
        // Nothing newer than the snapshot in [a, d): commits.
        let t = s.validate_and_assign(id(1), &scan(10, range("a", "d")), &versions, 10, 0).unwrap();
        s.finish(t);
        // An insert, an update and a delete after the snapshot are each a phantom.
        write(&mut versions, 20, "a", Some("new"));
        let e = s.validate_and_assign(id(2), &scan(10, range("a", "b")), &versions, 20, 0);
        assert_eq!(phantom(e.unwrap_err()), ("a".into(), 20));
        write(&mut versions, 30, "b", Some("2"));
        let e = s.validate_and_assign(id(3), &scan(20, range("b", "c")), &versions, 30, 0);
        assert_eq!(phantom(e.unwrap_err()), ("b".into(), 30));
        write(&mut versions, 40, "c", None);
        let e = s.validate_and_assign(id(4), &scan(30, range("c", "d")), &versions, 40, 0);
        assert_eq!(phantom(e.unwrap_err()), ("c".into(), 40));
        // Outside the range, or at or below the snapshot: no conflict; the
        // same scan under snapshot isolation is not validated.
        let t = s.validate_and_assign(id(5), &scan(40, range("a", "d")), &versions, 40, 0).unwrap();
        let mut si = scan(10, range("a", "d"));
        si.isolation = Isolation::Snapshot;
        si.writes = vec![(b"si".to_vec(), Some(b"v".to_vec()))];
        s.validate_and_assign(id(6), &si, &versions, 40, 0).unwrap();
        // A proposal in flight writing into the range is a phantom too.
        let mut probe = scan(40, range("o", "p"));
        probe.writes = vec![(b"x".to_vec(), Some(b"v".to_vec()))];
        let e = s.validate_and_assign(id(7), &probe, &versions, 40, 0);
        assert_eq!(phantom(e.unwrap_err()), ("out".into(), t));
    }
}
