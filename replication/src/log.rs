//! The in-memory Raft log: a snapshot followed by the entries after it.
//!
//! Invariants (checked by `assert_invariants` in tests):
//! - entries are contiguous from `snapshot.index + 1` and their terms never decrease;
//! - `snapshot.index <= applied <= commit <= last_index()`;
//! - `applied <= persisted <= last_index()`: entries up to `persisted` are in
//!   the log store; later ones still have to be written (they go out in the
//!   next `Ready`);
//! - the commit index never decreases, and no committed entry is ever
//!   truncated (Raft §5.4 makes that impossible for a correct leader; a
//!   message that would do it is rejected by the caller before it gets here).

use crate::types::{Entry, Index, Snapshot, Term};

#[derive(Debug)]
pub(crate) struct RaftLog {
    /// The base of the log: the state at `snapshot.index` (data kept so the
    /// leader can send it to lagging followers).
    pub snapshot: Snapshot,
    entries: Vec<Entry>,
    pub commit: Index,
    pub applied: Index,
    pub persisted: Index,
}

impl RaftLog {
    /// A recovered log: everything given was persisted.
    pub fn new(snapshot: Snapshot, entries: Vec<Entry>, commit: Index) -> RaftLog {
        let base = snapshot.index;
        let mut log = RaftLog { snapshot, entries, commit: base, applied: base, persisted: base };
        log.persisted = log.last_index();
        log.commit = commit.clamp(base, log.last_index());
        log.assert_invariants();
        log
    }

    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term of the entry at `index`, if the log knows it (the snapshot's
    /// own index included).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.first_index()) as usize)
    }

    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Entries `lo..=hi`, clipped to what the log holds after the snapshot.
    pub fn slice(&self, lo: Index, hi: Index) -> &[Entry] {
        let lo = lo.max(self.first_index());
        let hi = hi.min(self.last_index());
        if lo > hi {
            return &[];
        }
        let start = (lo - self.first_index()) as usize;
        &self.entries[start..=start + (hi - lo) as usize]
    }

    /// Raft §5.4.1 election restriction: is a log ending at
    /// `last_index`/`last_term` at least as up to date as this one?
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Appends one entry at the end.
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "log gap");
        assert!(entry.term >= self.last_term(), "log term went down");
        self.entries.push(entry);
    }

    /// Drops the entries at and after `index` (a follower's conflicting suffix).
    pub fn truncate_from(&mut self, index: Index) {
        assert!(index > self.commit, "truncating committed entry {index} (commit {})", self.commit);
        if index > self.last_index() {
            return;
        }
        self.entries.truncate((index - self.first_index()) as usize);
        self.persisted = self.persisted.min(index - 1);
    }

    /// The index of the first of `entries` (contiguous, already validated)
    /// that this log lacks or holds with another term.
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<Index> {
        entries.iter().find(|e| !self.matches(e.index, e.term)).map(|e| e.index)
    }

    /// The largest index at or below `index` whose term is at most `term` (or
    /// the snapshot index): where a probing leader should try next (etcd's
    /// optimisation of Raft §5.3's one-step back-off).
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> Index {
        let mut i = index.min(self.last_index());
        while i > self.snapshot.index {
            if self.term(i).is_some_and(|t| t <= term) {
                return i;
            }
            i -= 1;
        }
        self.snapshot.index
    }

    /// Raises the commit index (never lowers it).
    pub fn commit_to(&mut self, index: Index) {
        assert!(index <= self.last_index(), "commit {index} beyond last {}", self.last_index());
        self.commit = self.commit.max(index);
    }

    /// Replaces the prefix up to `snapshot.index` by the snapshot.
    pub fn compact(&mut self, snapshot: Snapshot) {
        assert!(snapshot.index > self.snapshot.index && snapshot.index <= self.applied);
        assert_eq!(self.term(snapshot.index), Some(snapshot.term));
        self.entries.drain(..(snapshot.index - self.snapshot.index) as usize);
        self.snapshot = snapshot;
        self.assert_invariants();
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        assert!(snapshot.index > self.commit, "restoring a snapshot behind the commit index");
        self.entries.clear();
        self.commit = snapshot.index;
        self.applied = snapshot.index;
        self.persisted = snapshot.index;
        self.snapshot = snapshot;
    }

    pub fn assert_invariants(&self) {
        let s = &self.snapshot;
        let mut term = s.term;
        for (k, e) in self.entries.iter().enumerate() {
            assert_eq!(e.index, s.index + 1 + k as u64, "log not contiguous");
            assert!(e.term >= term, "log terms decrease at {}", e.index);
            term = e.term;
        }
        assert!(s.index <= self.applied, "applied {} below snapshot {}", self.applied, s.index);
        assert!(
            self.applied <= self.commit,
            "applied {} beyond commit {}",
            self.applied,
            self.commit
        );
        assert!(self.commit <= self.last_index(), "commit beyond log");
        assert!(self.applied <= self.persisted && self.persisted <= self.last_index());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;

    fn log(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry { index: i as u64 + 1, term, payload: Payload::Empty })
            .collect();
        RaftLog::new(Snapshot::default(), entries, 0)
    }

    #[test]
    fn terms_and_up_to_date() {
        let l = log(&[1, 1, 2, 3]);
        assert_eq!((l.last_index(), l.last_term()), (4, 3));
        assert_eq!(l.term(0), Some(0));
        assert_eq!(l.term(3), Some(2));
        assert_eq!(l.term(5), None);
        // Raft §5.4.1: later term wins; same term, longer log wins.
        assert!(l.is_up_to_date(1, 4));
        assert!(l.is_up_to_date(4, 3));
        assert!(!l.is_up_to_date(3, 3));
        assert!(!l.is_up_to_date(9, 2));
    }

    #[test]
    fn conflicts_and_truncation() {
        let mut l = log(&[1, 1, 2, 2]);
        let e = |index, term| Entry { index, term, payload: Payload::Empty };
        assert_eq!(l.find_conflict(&[e(2, 1), e(3, 2)]), None);
        assert_eq!(l.find_conflict(&[e(3, 2), e(4, 3)]), Some(4));
        assert_eq!(l.find_conflict(&[e(4, 2), e(5, 2)]), Some(5));
        assert_eq!(l.find_conflict_by_term(4, 1), 2);
        assert_eq!(l.find_conflict_by_term(9, 5), 4);
        assert_eq!(l.find_conflict_by_term(4, 0), 0);
        l.truncate_from(3);
        assert_eq!((l.last_index(), l.persisted), (2, 2));
        l.append(e(3, 3));
        assert_eq!(l.persisted, 2);
        l.assert_invariants();
    }

    #[test]
    fn compaction_keeps_terms_at_the_base() {
        let mut l = log(&[1, 1, 2, 2]);
        l.commit_to(3);
        l.applied = 3;
        l.compact(Snapshot { index: 3, term: 2, ..Snapshot::default() });
        assert_eq!((l.first_index(), l.last_index()), (4, 4));
        assert_eq!(l.term(3), Some(2));
        assert_eq!(l.term(2), None);
        assert_eq!(l.slice(1, 9).len(), 1);
    }
}
