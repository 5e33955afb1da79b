//! Cursors over versions, their merge, and the MVCC-resolving [`Scan`].
//!
//! Every source of versions (a memtable, a table, a level of tables) exposes a
//! [`Cursor`] that walks versions in one direction in [`crate::key::compare`]
//! order (or its reverse). [`MergeCursor`] merges them; when two sources hold
//! the same key *and* timestamp, the source listed first (the newer one) is
//! visited first. [`Scan`] sits on top: for each user key it yields the newest
//! version at or below the read timestamp, skips tombstones, and stops at the
//! range bounds. Nothing is materialised: a scan holds one key and one value.

use std::ops::{Bound, RangeFull};

use crate::error::Result;
use crate::key::{MAX_TS, Timestamp, ValueRef, compare, prefix_successor};

/// Where a cursor starts.
#[derive(Clone, Copy, Debug)]
pub enum Seek<'a> {
    /// Walk forward from the first version at or after `(key, ts)` (or the first of all).
    Forward(Option<(&'a [u8], Timestamp)>),
    /// Walk backward from the last version strictly before `(key, ts)` (or the last of all).
    Reverse(Option<(&'a [u8], Timestamp)>),
}

impl Seek<'_> {
    pub fn is_reverse(&self) -> bool {
        matches!(self, Seek::Reverse(_))
    }
}

/// A positioned walk over versions in one direction.
///
/// Contract: `key`, `ts` and `value` may only be called while `valid()`;
/// `advance` moves one version in the cursor's direction; an error leaves the
/// cursor unusable.
pub trait Cursor: Send {
    fn valid(&self) -> bool;
    fn key(&self) -> &[u8];
    fn ts(&self) -> Timestamp;
    fn value(&self) -> ValueRef<'_>;
    fn advance(&mut self) -> Result<()>;
}

impl Cursor for Box<dyn Cursor> {
    fn valid(&self) -> bool {
        (**self).valid()
    }
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn ts(&self) -> Timestamp {
        (**self).ts()
    }
    fn value(&self) -> ValueRef<'_> {
        (**self).value()
    }
    fn advance(&mut self) -> Result<()> {
        (**self).advance()
    }
}

/// Merges cursors that walk in the same direction. Children are listed newest
/// source first; ties go to the earlier child.
pub struct MergeCursor {
    children: Vec<Box<dyn Cursor>>,
    current: Option<usize>,
    reverse: bool,
}

impl std::fmt::Debug for MergeCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeCursor")
            .field("children", &self.children.len())
            .field("current", &self.current)
            .field("reverse", &self.reverse)
            .finish()
    }
}

impl MergeCursor {
    pub fn new(children: Vec<Box<dyn Cursor>>, reverse: bool) -> MergeCursor {
        let mut merge = MergeCursor { children, current: None, reverse };
        merge.pick();
        merge
    }

    fn pick(&mut self) {
        let mut best: Option<usize> = None;
        for (i, child) in self.children.iter().enumerate() {
            if !child.valid() {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let cur = &self.children[b];
                    let ord = compare(child.key(), child.ts(), cur.key(), cur.ts());
                    if self.reverse { ord.is_gt() } else { ord.is_lt() }
                }
            };
            if better {
                best = Some(i);
            }
        }
        self.current = best;
    }

    fn current(&self) -> &dyn Cursor {
        &*self.children[self.current.expect("valid merge cursor")]
    }
}

impl Cursor for MergeCursor {
    fn valid(&self) -> bool {
        self.current.is_some()
    }
    fn key(&self) -> &[u8] {
        self.current().key()
    }
    fn ts(&self) -> Timestamp {
        self.current().ts()
    }
    fn value(&self) -> ValueRef<'_> {
        self.current().value()
    }
    fn advance(&mut self) -> Result<()> {
        let i = self.current.expect("advance on a valid merge cursor");
        self.children[i].advance()?;
        self.pick();
        Ok(())
    }
}

/// A range of user keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
}

impl From<RangeFull> for KeyRange {
    fn from(_: RangeFull) -> Self {
        KeyRange::all()
    }
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange { lower: Bound::Unbounded, upper: Bound::Unbounded }
    }

    /// The keys between two bounds.
    pub fn new(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> KeyRange {
        KeyRange { lower: lower.map(<[u8]>::to_vec), upper: upper.map(<[u8]>::to_vec) }
    }

    /// The keys starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            lower: Bound::Included(prefix.to_vec()),
            upper: prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        !self.below_lower(key) && !self.above_upper(key)
    }

    pub(crate) fn below_lower(&self, key: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => key < l.as_slice(),
            Bound::Excluded(l) => key <= l.as_slice(),
            Bound::Unbounded => false,
        }
    }

    pub(crate) fn above_upper(&self, key: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => key > u.as_slice(),
            Bound::Excluded(u) => key >= u.as_slice(),
            Bound::Unbounded => false,
        }
    }

    /// Whether any key in `[smallest, largest]` lies in the range.
    pub(crate) fn overlaps(&self, smallest: &[u8], largest: &[u8]) -> bool {
        !self.below_lower(largest) && !self.above_upper(smallest)
    }

    /// The versioned key where a walk over this range starts, as the owned
    /// parts of a [`Seek`].
    pub(crate) fn start(&self, reverse: bool) -> Option<(Vec<u8>, Timestamp)> {
        // An exclusive lower bound L starts at the next possible key, L + [0];
        // an inclusive upper bound U ends just before that same key.
        let successor = |k: &Vec<u8>| {
            let mut s = k.clone();
            s.push(0);
            (s, MAX_TS)
        };
        if reverse {
            match &self.upper {
                Bound::Included(u) => Some(successor(u)),
                Bound::Excluded(u) => Some((u.clone(), MAX_TS)),
                Bound::Unbounded => None,
            }
        } else {
            match &self.lower {
                Bound::Included(l) => Some((l.clone(), MAX_TS)),
                Bound::Excluded(l) => Some(successor(l)),
                Bound::Unbounded => None,
            }
        }
    }
}

/// Builds the [`Seek`] for walking `range` in one direction.
pub(crate) fn seek_for(start: &Option<(Vec<u8>, Timestamp)>, reverse: bool) -> Seek<'_> {
    let at = start.as_ref().map(|(k, ts)| (k.as_slice(), *ts));
    if reverse { Seek::Reverse(at) } else { Seek::Forward(at) }
}

/// A streaming scan over the newest visible version of each key in a range at
/// one timestamp. Yields keys in ascending order, or descending for a reverse
/// scan. Tombstoned keys are skipped.
pub struct Scan {
    cursor: MergeCursor,
    read_ts: Timestamp,
    reverse: bool,
    range: KeyRange,
    key: Vec<u8>,
    value: Vec<u8>,
    done: bool,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("read_ts", &self.read_ts)
            .field("reverse", &self.reverse)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Scan {
    pub(crate) fn new(cursor: MergeCursor, range: KeyRange, read_ts: Timestamp) -> Scan {
        let reverse = cursor.reverse;
        Scan { cursor, read_ts, reverse, range, key: Vec::new(), value: Vec::new(), done: false }
    }

    /// The next visible `(key, value)`, borrowed until the following call.
    pub fn next_entry(&mut self) -> Result<Option<(&[u8], &[u8])>> {
        if self.done {
            return Ok(None);
        }
        match self.step() {
            Ok(true) => Ok(Some((&self.key, &self.value))),
            Ok(false) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Moves to the next visible key; false at the end of the range.
    fn step(&mut self) -> Result<bool> {
        let c = &mut self.cursor;
        while c.valid() {
            if past_end(&self.range, self.reverse, c.key()) {
                return Ok(false);
            }
            self.key.clear();
            self.key.extend_from_slice(c.key());
            // Walk every version of this key; remember the newest at or below
            // read_ts. Forward walks meet versions newest first, reverse walks
            // oldest first; equal timestamps arrive newest source first in both.
            let mut best: Option<(Timestamp, bool)> = None; // (ts, is_put)
            while c.valid() && c.key() == self.key.as_slice() {
                let ts = c.ts();
                let take = ts <= self.read_ts && best.is_none_or(|(b, _)| ts > b);
                if take {
                    match c.value() {
                        ValueRef::Put(v) => {
                            self.value.clear();
                            self.value.extend_from_slice(v);
                            best = Some((ts, true));
                        }
                        ValueRef::Delete => best = Some((ts, false)),
                    }
                }
                c.advance()?;
            }
            if let Some((_, true)) = best {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Scan {
    /// The first key from here on, in scan order, with any version newer
    /// than `ts`, tombstones included, and that version's timestamp: what
    /// was written into the range after a snapshot at `ts` (SERIALIZABLE
    /// phantom validation). Unlike the visible rows, a key inserted and
    /// deleted again since `ts` counts: the transactions that wrote it may
    /// have read what the validating transaction wrote. Versions above the
    /// GC watermark are never collected, so for `ts` at or above it the
    /// answer is complete. Consumes the scan.
    pub fn first_written_after(&mut self, ts: Timestamp) -> Result<Option<(Vec<u8>, Timestamp)>> {
        self.done = true;
        let c = &mut self.cursor;
        while c.valid() {
            if past_end(&self.range, self.reverse, c.key()) {
                return Ok(None);
            }
            if c.ts() > ts {
                return Ok(Some((c.key().to_vec(), c.ts())));
            }
            c.advance()?;
        }
        Ok(None)
    }
}

/// Whether a scan in direction `reverse` has left `range` at `key`.
fn past_end(range: &KeyRange, reverse: bool, key: &[u8]) -> bool {
    if reverse { range.below_lower(key) } else { range.above_upper(key) }
}

impl Iterator for Scan {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_entry() {
            Ok(Some((k, v))) => Some(Ok((k.to_vec(), v.to_vec()))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::MemTable;
    use std::sync::Arc;

    /// A version to write: key, timestamp, value (`None` for a tombstone).
    type Version<'a> = (&'a [u8], Timestamp, Option<&'a [u8]>);

    fn mem(entries: &[Version<'_>]) -> Arc<MemTable> {
        let m = Arc::new(MemTable::new(None));
        for (k, ts, v) in entries {
            m.insert(k, *ts, v.map_or(ValueRef::Delete, ValueRef::Put));
        }
        m
    }

    fn scan(
        sources: &[Arc<MemTable>],
        range: KeyRange,
        ts: Timestamp,
        reverse: bool,
    ) -> Vec<String> {
        let start = range.start(reverse);
        let children: Vec<Box<dyn Cursor>> =
            sources.iter().map(|m| Box::new(m.cursor(seek_for(&start, reverse))) as _).collect();
        Scan::new(MergeCursor::new(children, reverse), range, ts)
            .map(|r| {
                let (k, v) = r.unwrap();
                format!("{}={}", String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
            })
            .collect()
    }

    #[test]
    fn scan_resolves_versions_across_sources() {
        let newer = mem(&[(b"a", 5, Some(b"a5")), (b"b", 6, None), (b"c", 3, Some(b"new"))]);
        let older = mem(&[(b"a", 1, Some(b"a1")), (b"b", 2, Some(b"b2")), (b"c", 3, Some(b"old"))]);
        let all = [newer, older];
        assert_eq!(scan(&all, KeyRange::all(), 10, false), ["a=a5", "c=new"]);
        assert_eq!(scan(&all, KeyRange::all(), 10, true), ["c=new", "a=a5"]);
        assert_eq!(scan(&all, KeyRange::all(), 4, false), ["a=a1", "b=b2", "c=new"]);
        assert_eq!(scan(&all, KeyRange::all(), 4, true), ["c=new", "b=b2", "a=a1"]);
        assert_eq!(scan(&all, KeyRange::all(), 0, false), Vec::<String>::new());
    }

    #[test]
    fn scan_honours_bounds_in_both_directions() {
        let m = mem(&[(b"a", 1, Some(b"1")), (b"b", 1, Some(b"2")), (b"c", 1, Some(b"3"))]);
        let src = [m];
        let r = |l: Bound<&[u8]>, u: Bound<&[u8]>| KeyRange::new(l, u);
        use Bound::*;
        assert_eq!(scan(&src, r(Excluded(b"a"), Included(b"c")), 9, false), ["b=2", "c=3"]);
        assert_eq!(scan(&src, r(Excluded(b"a"), Included(b"c")), 9, true), ["c=3", "b=2"]);
        assert_eq!(scan(&src, r(Included(b"a"), Excluded(b"c")), 9, true), ["b=2", "a=1"]);
        assert_eq!(scan(&src, KeyRange::prefix(b"b"), 9, false), ["b=2"]);
        assert_eq!(scan(&src, KeyRange::prefix(b"b"), 9, true), ["b=2"]);
    }
}
