//! The commands a replicated shard's log carries, and the answers applying
//! them gives, with their byte encodings.
//!
//! A command is a transaction the leader already validated: its id, the
//! snapshot it read at, the commit timestamp the leader assigned, and its
//! write set. Decoding never panics: malformed bytes decode to `None`, and
//! applying a malformed command is a deterministic refusal on every replica.
//!
//! ```text
//! command: "STXC" | client u64 | seq u64 | start_ts u64 | commit_ts u64 | n u32
//!          | n x (key_len u32 | key | tag u8 (0 delete, 1 put) | [val_len u32 | val])
//! answer:  tag u8 | u64   (0 committed at ts, 1 refused: ts not above u64, 2 malformed)
//! ```
//! All integers little-endian.

use strata_txn::Timestamp;

const MAGIC: &[u8; 4] = b"STXC";

/// Identifies a transaction's commit across retries: a retry with the same
/// id never commits twice, and learns the first attempt's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId {
    /// Who issued it (a node id, a client id): unique per issuer.
    pub client: u64,
    /// Increasing per client.
    pub seq: u64,
}

/// One write: `None` deletes.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A validated transaction, as the log carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardCommand {
    pub id: CommandId,
    pub start_ts: Timestamp,
    pub commit_ts: Timestamp,
    pub writes: Vec<Write>,
}

/// What applying a command did, the same on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The writes are applied at this timestamp.
    Committed(Timestamp),
    /// Refused: the commit timestamp was not above this, the newest applied
    /// (only a leader that broke its contract proposes that; nothing applied).
    StaleTimestamp(Timestamp),
    /// The entry was not a shard command (nothing applied).
    Malformed,
}

impl ShardCommand {
    pub fn encode(&self) -> Vec<u8> {
        let size: usize =
            self.writes.iter().map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len)).sum();
        let mut out = Vec::with_capacity(40 + size);
        out.extend_from_slice(MAGIC);
        for v in [self.id.client, self.id.seq, self.start_ts, self.commit_ts] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.writes.len() as u32).to_le_bytes());
        for (key, value) in &self.writes {
            put_bytes(&mut out, key);
            match value {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    put_bytes(&mut out, v);
                }
            }
        }
        out
    }

    /// Whether `bytes` claim to be a shard command (they may still be malformed).
    pub fn is_shard_command(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    /// The command in `bytes`, or `None` if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<ShardCommand> {
        let mut r = Reader { bytes: bytes.strip_prefix(MAGIC)? };
        let id = CommandId { client: r.u64()?, seq: r.u64()? };
        let (start_ts, commit_ts) = (r.u64()?, r.u64()?);
        let n = r.u32()? as usize;
        // Each write takes at least 5 bytes: bound the allocation by the input.
        if n > r.bytes.len() / 5 {
            return None;
        }
        let mut writes = Vec::with_capacity(n);
        for _ in 0..n {
            let key = r.bytes()?.to_vec();
            let value = match r.u8()? {
                0 => None,
                1 => Some(r.bytes()?.to_vec()),
                _ => return None,
            };
            writes.push((key, value));
        }
        r.bytes.is_empty().then_some(ShardCommand { id, start_ts, commit_ts, writes })
    }
}

impl Answer {
    /// A tag byte and a u64 (no allocation: a snapshot encodes 100 000).
    pub fn encode(&self) -> [u8; 9] {
        let (tag, v) = match *self {
            Answer::Committed(ts) => (0u8, ts),
            Answer::StaleTimestamp(ts) => (1, ts),
            Answer::Malformed => (2, 0),
        };
        let mut out = [tag; 9];
        out[1..].copy_from_slice(&v.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        let mut r = Reader { bytes };
        let (tag, v) = (r.u8()?, r.u64()?);
        if !r.bytes.is_empty() {
            return None;
        }
        match tag {
            0 => Some(Answer::Committed(v)),
            1 => Some(Answer::StaleTimestamp(v)),
            2 => Some(Answer::Malformed),
            _ => None,
        }
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// A cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_answers_round_trip_and_garbage_is_refused() {
        let c = ShardCommand {
            id: CommandId { client: 3, seq: 9 },
            start_ts: 10,
            commit_ts: 12,
            writes: vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)],
        };
        let bytes = c.encode();
        assert_eq!(ShardCommand::decode(&bytes), Some(c));
        // Every truncation and a trailing byte are refused, never a panic.
        for cut in 0..bytes.len() {
            assert_eq!(ShardCommand::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(ShardCommand::decode(&long), None);
        // A huge write count does not allocate.
        let mut huge = bytes[..36].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ShardCommand::decode(&huge), None);
        for a in [Answer::Committed(5), Answer::StaleTimestamp(7), Answer::Malformed] {
            assert_eq!(Answer::decode(&a.encode()), Some(a));
        }
        assert_eq!(Answer::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
