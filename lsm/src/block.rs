//! Data blocks: sorted versions with key prefix compression and restart points.
//!
//! ```text
//! entry:    varint shared   bytes of key shared with the previous entry's key
//!           varint unshared bytes of key that follow
//!           varint vtag     (value length << 1) | 1 for a tombstone
//!           unshared key bytes
//!           u64 LE timestamp
//!           value bytes
//! trailer:  u32 LE restart offsets (entries with shared = 0), u32 LE their count
//! ```
//!
//! Every `restart_interval` entries the full key is stored, so a lookup binary
//! searches the restart points and then decodes at most one interval.
//! Checksums are the table's business: a block handed to [`Block::parse`] has
//! already passed its CRC.

use crate::codec::{get_u32, get_u64, get_varint, put_varint};
use crate::key::{Timestamp, ValueRef, compare};

/// Builds one data block.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    last_key: Vec<u8>,
    since_restart: usize,
    restart_interval: usize,
    entries: usize,
}

impl BlockBuilder {
    pub fn new(restart_interval: usize) -> BlockBuilder {
        assert!(restart_interval > 0);
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            last_key: Vec::new(),
            since_restart: 0,
            restart_interval,
            entries: 0,
        }
    }

    /// Appends a version; versions must arrive in strictly increasing order.
    pub fn add(&mut self, key: &[u8], ts: Timestamp, value: ValueRef<'_>) {
        let shared = if self.since_restart == self.restart_interval || self.entries == 0 {
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        } else {
            self.last_key.iter().zip(key).take_while(|(a, b)| a == b).count()
        };
        let (vtag, bytes) = match value {
            ValueRef::Put(v) => ((v.len() as u64) << 1, v),
            ValueRef::Delete => (1, &[][..]),
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, vtag);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(&ts.to_le_bytes());
        self.buf.extend_from_slice(bytes);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.since_restart += 1;
        self.entries += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Size the block will have once finished.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Finishes the block into `out` and resets the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.buf.clear();
        self.restarts.clear();
        self.last_key.clear();
        self.since_restart = 0;
        self.entries = 0;
    }
}

/// One decoded entry. Offsets are relative to the block start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Offset of the following entry.
    pub next: usize,
    pub ts: Timestamp,
    pub value_start: usize,
    pub value_len: usize,
    pub delete: bool,
    /// Where the full key lives in an arena filled by [`Block::decode_all`].
    pub key_start: usize,
    pub key_end: usize,
}

/// A parsed view of a block's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Block<'a> {
    data: &'a [u8],
    /// End of the entries region (start of the restart array).
    entries_end: usize,
    num_restarts: usize,
}

impl<'a> Block<'a> {
    /// `None` if the trailer is inconsistent with the block's length.
    pub fn parse(data: &'a [u8]) -> Option<Block<'a>> {
        let num_restarts = get_u32(data, data.len().checked_sub(4)?)? as usize;
        let entries_end = data.len().checked_sub(4)?.checked_sub(num_restarts.checked_mul(4)?)?;
        Some(Block { data, entries_end, num_restarts })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    pub fn entries_end(&self) -> usize {
        self.entries_end
    }

    fn restart(&self, i: usize) -> Option<usize> {
        let off = get_u32(self.data, self.entries_end + 4 * i)? as usize;
        (off < self.entries_end).then_some(off)
    }

    /// Decodes the entry at `pos`, turning `key` (the previous entry's key)
    /// into this entry's key. `None` on malformed bytes.
    pub fn decode_at(&self, pos: usize, key: &mut Vec<u8>) -> Option<Decoded> {
        let mut p = pos;
        let shared = get_varint(self.data, &mut p)? as usize;
        let unshared = get_varint(self.data, &mut p)? as usize;
        let vtag = get_varint(self.data, &mut p)?;
        if shared > key.len() {
            return None;
        }
        let delta = self.data.get(p..p.checked_add(unshared)?)?;
        key.truncate(shared);
        key.extend_from_slice(delta);
        p += unshared;
        let ts = get_u64(self.data, p)?;
        p += 8;
        let (delete, value_len) = (vtag & 1 == 1, usize::try_from(vtag >> 1).ok()?);
        if delete && value_len != 0 {
            return None;
        }
        let next = p.checked_add(value_len)?;
        if next > self.entries_end {
            return None;
        }
        Some(Decoded { next, ts, value_start: p, value_len, delete, key_start: 0, key_end: 0 })
    }

    pub fn value(&self, d: &Decoded) -> ValueRef<'a> {
        if d.delete {
            ValueRef::Delete
        } else {
            ValueRef::Put(&self.data[d.value_start..d.value_start + d.value_len])
        }
    }

    /// Positions at the first entry at or after `(target, ts)`: returns it with
    /// its key in `key`, or `Ok(None)` if every entry is smaller. `Err(())` on
    /// malformed bytes.
    #[allow(clippy::result_unit_err)]
    pub fn seek(
        &self,
        target: &[u8],
        ts: Timestamp,
        key: &mut Vec<u8>,
    ) -> Result<Option<Decoded>, ()> {
        if self.num_restarts == 0 {
            return Ok(None);
        }
        // Last restart point whose key is before the target.
        let (mut lo, mut hi) = (0usize, self.num_restarts);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            key.clear();
            let d = self.decode_at(self.restart(mid).ok_or(())?, key).ok_or(())?;
            if compare(key, d.ts, target, ts).is_lt() { lo = mid } else { hi = mid }
        }
        key.clear();
        let mut pos = self.restart(lo).ok_or(())?;
        while pos < self.entries_end {
            let d = self.decode_at(pos, key).ok_or(())?;
            if compare(key, d.ts, target, ts).is_ge() {
                return Ok(Some(d));
            }
            pos = d.next;
        }
        Ok(None)
    }

    /// Decodes every entry, storing full keys back to back in `keys`.
    pub fn decode_all(&self, keys: &mut Vec<u8>) -> Option<Vec<Decoded>> {
        keys.clear();
        let mut out = Vec::new();
        let mut key = Vec::new();
        let mut pos = 0;
        while pos < self.entries_end {
            let mut d = self.decode_at(pos, &mut key)?;
            d.key_start = keys.len();
            keys.extend_from_slice(&key);
            d.key_end = keys.len();
            pos = d.next;
            out.push(d);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version to write: key, timestamp, value (`None` for a tombstone).
    type Version<'a> = (&'a [u8], Timestamp, Option<&'a [u8]>);

    fn build(entries: &[Version<'_>], interval: usize) -> Vec<u8> {
        let mut b = BlockBuilder::new(interval);
        for (k, ts, v) in entries {
            b.add(k, *ts, v.map_or(ValueRef::Delete, ValueRef::Put));
        }
        let mut out = Vec::new();
        b.finish_into(&mut out);
        out
    }

    #[test]
    fn decode_all_returns_what_was_added() {
        let entries: Vec<(Vec<u8>, Timestamp, Option<Vec<u8>>)> = (0..100u32)
            .map(|i| {
                let v = (i % 7 != 0).then(|| format!("value{i}").into_bytes());
                (format!("key{:05}", i / 2).into_bytes(), 1000 - u64::from(i % 2), v)
            })
            .collect();
        let refs: Vec<_> = entries.iter().map(|(k, t, v)| (&k[..], *t, v.as_deref())).collect();
        for interval in [1, 3, 16] {
            let bytes = build(&refs, interval);
            let block = Block::parse(&bytes).unwrap();
            let mut keys = Vec::new();
            let decoded = block.decode_all(&mut keys).unwrap();
            assert_eq!(decoded.len(), entries.len());
            for (d, (k, ts, v)) in decoded.iter().zip(&entries) {
                assert_eq!(&keys[d.key_start..d.key_end], &k[..]);
                assert_eq!(d.ts, *ts);
                assert_eq!(block.value(d), v.as_deref().map_or(ValueRef::Delete, ValueRef::Put));
            }
        }
    }

    #[test]
    fn seek_finds_first_entry_at_or_after_target() {
        let bytes = build(
            &[
                (b"a", 5, Some(b"a5")),
                (b"a", 2, Some(b"a2")),
                (b"c", 9, None),
                (b"d", 1, Some(b"d")),
            ],
            2,
        );
        let block = Block::parse(&bytes).unwrap();
        let mut key = Vec::new();
        let at = |t: &[u8], ts, key: &mut Vec<u8>| {
            block.seek(t, ts, key).unwrap().map(|d| (String::from_utf8(key.clone()).unwrap(), d.ts))
        };
        assert_eq!(at(b"a", u64::MAX, &mut key), Some(("a".into(), 5)));
        assert_eq!(at(b"a", 4, &mut key), Some(("a".into(), 2)));
        assert_eq!(at(b"a", 1, &mut key), Some(("c".into(), 9)));
        assert_eq!(at(b"b", 0, &mut key), Some(("c".into(), 9)));
        assert_eq!(at(b"d", 0, &mut key), None);
    }

    #[test]
    fn malformed_blocks_are_rejected_not_panicking() {
        let bytes = build(&[(b"key", 1, Some(b"value")), (b"kez", 1, Some(b"v"))], 1);
        for cut in 0..bytes.len() {
            if let Some(block) = Block::parse(&bytes[..cut]) {
                let mut keys = Vec::new();
                let _ = block.decode_all(&mut keys);
                let _ = block.seek(b"kez", 0, &mut keys);
            }
        }
        let mut flipped = bytes.clone();
        flipped[0] = 200; // shared length beyond the (empty) previous key
        let block = Block::parse(&flipped).unwrap();
        assert!(block.decode_all(&mut Vec::new()).is_none());
    }
}
