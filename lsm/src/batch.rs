//! Atomic write batches: the unit of a WAL record and of a memtable insert.
//!
//! Encoding (also the WAL record payload):
//!
//! ```text
//! u32 LE count
//! count x { u8 kind (1 = put, 2 = delete), varint key length, key,
//!           u64 LE timestamp, [varint value length, value]  (puts only) }
//! ```

use crate::codec::{get_length_prefixed, get_u32, get_u64, put_length_prefixed};
use crate::key::{Timestamp, ValueRef};

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// A group of versioned writes applied atomically: after a crash either all of
/// them are present or none.
#[derive(Clone, Debug)]
pub struct WriteBatch {
    data: Vec<u8>,
    count: u32,
}

impl Default for WriteBatch {
    fn default() -> Self {
        WriteBatch::new()
    }
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch { data: vec![0; 4], count: 0 }
    }

    /// An empty batch with room for `bytes` of encoded writes (about the
    /// keys and values plus [`WriteBatch::ENTRY_OVERHEAD_BYTES`] per write),
    /// so filling it does not reallocate.
    pub fn with_capacity(bytes: usize) -> WriteBatch {
        let mut data = Vec::with_capacity(4 + bytes);
        data.extend_from_slice(&[0; 4]);
        WriteBatch { data, count: 0 }
    }

    /// The most a write adds to a batch besides its key and value: its kind,
    /// two length varints and its timestamp.
    pub const ENTRY_OVERHEAD_BYTES: usize = 1 + 10 + 8 + 10;

    /// Adds a version of `key` at `ts` holding `value`.
    pub fn put(&mut self, key: &[u8], ts: Timestamp, value: &[u8]) -> &mut Self {
        self.push(KIND_PUT, key, ts);
        put_length_prefixed(&mut self.data, value);
        self
    }

    /// Adds a tombstone for `key` at `ts`.
    pub fn delete(&mut self, key: &[u8], ts: Timestamp) -> &mut Self {
        self.push(KIND_DELETE, key, ts);
        self
    }

    fn push(&mut self, kind: u8, key: &[u8], ts: Timestamp) {
        self.data.push(kind);
        put_length_prefixed(&mut self.data, key);
        self.data.extend_from_slice(&ts.to_le_bytes());
        self.count += 1;
        self.data[..4].copy_from_slice(&self.count.to_le_bytes());
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the encoded batch in bytes.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn encoded(&self) -> &[u8] {
        &self.data
    }

    /// Iterates over the batch's writes in insertion order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter { data: &self.data, pos: 4, remaining: self.count }
    }
}

/// A batch decoded from a WAL payload, validated entry by entry.
pub(crate) fn decode(payload: &[u8]) -> Option<Vec<(&[u8], Timestamp, ValueRef<'_>)>> {
    let count = get_u32(payload, 0)?;
    let mut it = BatchIter { data: payload, pos: 4, remaining: count };
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        out.push(it.next_entry()??);
    }
    (it.pos == payload.len()).then_some(out)
}

/// Iterator over a batch's `(key, ts, value)` writes.
#[derive(Debug)]
pub struct BatchIter<'a> {
    data: &'a [u8],
    pos: usize,
    remaining: u32,
}

impl<'a> BatchIter<'a> {
    /// `None` when done, `Some(None)` when the encoding is malformed.
    #[allow(clippy::type_complexity)]
    fn next_entry(&mut self) -> Option<Option<(&'a [u8], Timestamp, ValueRef<'a>)>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut decode = || {
            let kind = *self.data.get(self.pos)?;
            self.pos += 1;
            let key = get_length_prefixed(self.data, &mut self.pos)?;
            let ts = get_u64(self.data, self.pos)?;
            self.pos += 8;
            let value = match kind {
                KIND_PUT => ValueRef::Put(get_length_prefixed(self.data, &mut self.pos)?),
                KIND_DELETE => ValueRef::Delete,
                _ => return None,
            };
            Some((key, ts, value))
        };
        Some(decode())
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (&'a [u8], Timestamp, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        // Batches built through the API are well-formed by construction.
        self.next_entry().map(|e| e.expect("well-formed batch"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut b = WriteBatch::new();
        b.put(b"k1", 5, b"v1").delete(b"k2", 6).put(b"", 0, b"");
        let decoded = decode(b.encoded()).unwrap();
        assert_eq!(
            decoded,
            vec![
                (&b"k1"[..], 5, ValueRef::Put(b"v1")),
                (&b"k2"[..], 6, ValueRef::Delete),
                (&b""[..], 0, ValueRef::Put(b"")),
            ]
        );
        assert_eq!(b.iter().count(), 3);
    }

    #[test]
    fn a_batch_sized_up_front_encodes_the_same_and_never_grows() {
        let writes: [(&[u8], Option<&[u8]>); 3] =
            [(b"key", Some(b"value")), (b"gone", None), (&[7; 300], Some(&[9; 200]))];
        let bytes: usize = writes
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + WriteBatch::ENTRY_OVERHEAD_BYTES)
            .sum();
        let (mut plain, mut sized) = (WriteBatch::new(), WriteBatch::with_capacity(bytes));
        let capacity = sized.data.capacity();
        for (i, (k, v)) in writes.iter().enumerate() {
            for b in [&mut plain, &mut sized] {
                match v {
                    Some(v) => b.put(k, i as u64, v),
                    None => b.delete(k, i as u64),
                };
            }
        }
        assert_eq!(sized.encoded(), plain.encoded());
        assert_eq!(sized.data.capacity(), capacity, "the sized batch reallocated");
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        let mut b = WriteBatch::new();
        b.put(b"key", 1, b"value");
        let enc = b.encoded();
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_none(), "truncated at {cut}");
        }
        let mut bad_kind = enc.to_vec();
        bad_kind[4] = 9;
        assert!(decode(&bad_kind).is_none());
        let mut trailing = enc.to_vec();
        trailing.push(0);
        assert!(decode(&trailing).is_none());
    }
}
