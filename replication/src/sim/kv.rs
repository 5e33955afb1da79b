//! The simulator's state machine: integer keys holding lists of integers,
//! appended to by committed commands (the list-append model of Elle, so reads
//! reveal the order writes were applied in).
//!
//! Besides the lists it keeps a running digest of every entry it applied, so
//! two replicas that applied the same log prefix have the same digest, and a
//! snapshot carries the digest of the state it holds.

use std::collections::BTreeMap;

use crate::types::{Entry, Index, Payload};

/// A client's command: append `value` to the list at `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub client: u64,
    pub seq: u64,
    pub key: u64,
    pub value: u64,
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for v in [self.client, self.seq, self.key, self.value] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The command in `bytes`, or `None` if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        if bytes.len() != 32 {
            return None;
        }
        let word =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Some(Command { client: word(0), seq: word(1), key: word(2), value: word(3) })
    }
}

/// FNV-1a, folded into a running digest.
pub fn hash_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable hash of an entry's payload.
pub fn payload_hash(payload: &Payload) -> u64 {
    let seed = 0xcbf2_9ce4_8422_2325;
    match payload {
        Payload::Empty => hash_bytes(seed, b"empty"),
        Payload::Command(c) => hash_bytes(hash_bytes(seed, b"cmd"), c),
        Payload::Membership(m) => m
            .voters
            .iter()
            .fold(hash_bytes(seed, b"members"), |h, v| hash_bytes(h, &v.to_le_bytes())),
    }
}

/// The replicated state: lists by key, the applied index and the digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    lists: BTreeMap<u64, Vec<u64>>,
    applied: Index,
    digest: u64,
}

impl Kv {
    /// Applies the next committed entry; returns the command it carried.
    pub fn apply(&mut self, entry: &Entry) -> Option<Command> {
        assert_eq!(entry.index, self.applied + 1, "entries applied out of order");
        self.applied = entry.index;
        self.digest =
            hash_bytes(self.digest ^ entry.index, &payload_hash(&entry.payload).to_le_bytes());
        let Payload::Command(bytes) = &entry.payload else { return None };
        let command = Command::decode(bytes)?;
        self.lists.entry(command.key).or_default().push(command.value);
        Some(command)
    }

    pub fn get(&self, key: u64) -> Vec<u64> {
        self.lists.get(&key).cloned().unwrap_or_default()
    }

    pub fn applied(&self) -> Index {
        self.applied
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The state as snapshot data.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |v: u64| out.extend_from_slice(&v.to_le_bytes());
        put(self.applied);
        put(self.digest);
        put(self.lists.len() as u64);
        for (key, values) in &self.lists {
            put(*key);
            put(values.len() as u64);
            for v in values {
                put(*v);
            }
        }
        out
    }

    /// The state in snapshot data (empty data: the initial state), or `None`
    /// if the data is malformed.
    pub fn restore(data: &[u8]) -> Option<Kv> {
        if data.is_empty() {
            return Some(Kv::default());
        }
        let mut words = data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8")));
        let mut next = || words.next();
        let (applied, digest, keys) = (next()?, next()?, next()?);
        let mut lists = BTreeMap::new();
        for _ in 0..keys {
            let key = next()?;
            let len = next()?;
            let values = (0..len).map(|_| next()).collect::<Option<Vec<u64>>>()?;
            lists.insert(key, values);
        }
        Some(Kv { lists, applied, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_snapshots_round_trip() {
        let c = Command { client: 1, seq: 2, key: 3, value: 4 };
        assert_eq!(Command::decode(&c.encode()), Some(c));
        assert_eq!(Command::decode(b"short"), None);
        let mut kv = Kv::default();
        kv.apply(&Entry { index: 1, term: 1, payload: Payload::Empty });
        kv.apply(&Entry { index: 2, term: 1, payload: Payload::Command(c.encode()) });
        assert_eq!(kv.get(3), vec![4]);
        let back = Kv::restore(&kv.snapshot()).unwrap();
        assert_eq!(back, kv);
        assert_eq!(Kv::restore(&kv.snapshot()[..20]), None);
    }
}
