//! Versioned keys and values.
//!
//! Every stored entry is a *version*: a user key, a u64 timestamp and either a
//! value or a tombstone. Versions are ordered by user key ascending, then by
//! timestamp **descending**, so a forward walk meets the newest version of a key
//! first. [`compare`] is that order and every sorted structure in the engine
//! (memtable, blocks, index, levels, merge) uses it.

use std::borrow::Borrow;
use std::cmp::Ordering;

/// A version timestamp. Larger is newer.
pub type Timestamp = u64;

/// The largest timestamp: reading at it sees the newest version of every key.
pub const MAX_TS: Timestamp = u64::MAX;

/// The order of versioned keys: user key ascending, timestamp descending.
#[inline]
pub fn compare(a_key: &[u8], a_ts: Timestamp, b_key: &[u8], b_ts: Timestamp) -> Ordering {
    a_key.cmp(b_key).then_with(|| b_ts.cmp(&a_ts))
}

/// A stored value: data, or a tombstone that hides older versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Put(Vec<u8>),
    Delete,
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Put(v) => ValueRef::Put(v),
            Value::Delete => ValueRef::Delete,
        }
    }
}

/// A borrowed [`Value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    Put(&'a [u8]),
    Delete,
}

impl ValueRef<'_> {
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Put(v) => Value::Put(v.to_vec()),
            ValueRef::Delete => Value::Delete,
        }
    }

    pub fn is_delete(self) -> bool {
        matches!(self, ValueRef::Delete)
    }
}

/// An owned versioned key, as stored in the memtable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionedKey {
    pub key: Box<[u8]>,
    pub ts: Timestamp,
}

/// Read access to a versioned key, owned or borrowed. The memtable's skiplist
/// is keyed by [`VersionedKey`] but searched with a borrowed [`KeyRef`] through
/// this trait, so lookups do not allocate.
pub(crate) trait KeyView {
    fn user_key(&self) -> &[u8];
    fn ts(&self) -> Timestamp;
}

impl KeyView for VersionedKey {
    fn user_key(&self) -> &[u8] {
        &self.key
    }
    fn ts(&self) -> Timestamp {
        self.ts
    }
}

/// A borrowed versioned key used for searches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRef<'a> {
    pub key: &'a [u8],
    pub ts: Timestamp,
}

impl KeyView for KeyRef<'_> {
    fn user_key(&self) -> &[u8] {
        self.key
    }
    fn ts(&self) -> Timestamp {
        self.ts
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for VersionedKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for dyn KeyView + '_ {}
impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self.user_key(), self.ts(), other.user_key(), other.ts())
    }
}

impl PartialOrd for VersionedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for VersionedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.key, self.ts, &other.key, other.ts)
    }
}

/// The smallest user key greater than every key starting with `prefix`, or
/// `None` when no such key exists (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first() {
        assert_eq!(compare(b"a", 5, b"a", 3), Ordering::Less);
        assert_eq!(compare(b"a", 3, b"a", 5), Ordering::Greater);
        assert_eq!(compare(b"a", 1, b"b", 9), Ordering::Less);
        // A key that is a prefix of another sorts first whatever the timestamps.
        assert_eq!(compare(b"a", 0, b"ab", MAX_TS), Ordering::Less);
        assert_eq!(compare(b"k", 7, b"k", 7), Ordering::Equal);
    }

    #[test]
    fn borrowed_and_owned_keys_agree() {
        let owned = VersionedKey { key: b"key".to_vec().into(), ts: 10 };
        let probe = KeyRef { key: b"key", ts: 11 };
        let owned_view: &dyn KeyView = owned.borrow();
        assert!((&probe as &dyn KeyView) < owned_view);
    }

    #[test]
    fn prefix_successor_table() {
        let cases: &[(&[u8], Option<&[u8]>)] =
            &[(b"abc", Some(b"abd")), (b"ab\xff", Some(b"ac")), (b"\xff\xff", None), (b"", None)];
        for (prefix, want) in cases {
            assert_eq!(prefix_successor(prefix).as_deref(), *want, "prefix {prefix:?}");
        }
    }
}
