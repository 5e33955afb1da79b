//! Bloom filters over user keys, one per table.
//!
//! A filter is a bit array followed by one byte holding the number of probes
//! `k`. Probes use double hashing of one 64-bit hash (Kirsch and Mitzenmacher,
//! "Less hashing, same performance"), mapped onto the bit array by
//! multiply-shift rather than division. With 10 bits per key and `k = 7` the
//! false-positive rate is about 0.8%.

/// A fast 64-bit hash of a user key (not for adversarial input).
#[inline]
pub fn hash_key(data: &[u8]) -> u64 {
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        h = (h ^ w).wrapping_mul(M).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(M).rotate_left(29);
    }
    // splitmix64 finaliser: every input bit affects every output bit.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Collects key hashes and builds a filter.
#[derive(Debug, Default)]
pub struct BloomBuilder {
    hashes: Vec<u64>,
}

impl BloomBuilder {
    pub fn new() -> BloomBuilder {
        BloomBuilder::default()
    }

    /// Adds a user key. Adding the same key twice is harmless.
    pub fn add_key(&mut self, key: &[u8]) {
        self.add_hash(hash_key(key));
    }

    pub fn add_hash(&mut self, hash: u64) {
        if self.hashes.last() != Some(&hash) {
            self.hashes.push(hash);
        }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Encodes the filter with `bits_per_key` bits for each key added.
    pub fn build(&self, bits_per_key: usize) -> Vec<u8> {
        let bits_per_key = bits_per_key.max(1);
        let k = ((bits_per_key as f64) * std::f64::consts::LN_2).round().clamp(1.0, 30.0) as u8;
        let nbits = (self.hashes.len() * bits_per_key).max(64).next_multiple_of(8);
        let mut out = vec![0u8; nbits / 8 + 1];
        for &h in &self.hashes {
            for bit in probes(h, k, nbits as u64) {
                out[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        out[nbits / 8] = k;
        out
    }
}

fn probes(hash: u64, k: u8, nbits: u64) -> impl Iterator<Item = u64> {
    let h1 = hash;
    let h2 = hash.rotate_left(32) | 1;
    // Lemire's multiply-shift maps a 64-bit hash onto [0, nbits) without a
    // division per probe.
    (0..u64::from(k)).map(move |i| {
        let h = h1.wrapping_add(i.wrapping_mul(h2));
        ((u128::from(h) * u128::from(nbits)) >> 64) as u64
    })
}

/// Whether the filter may contain a key with this hash. A malformed filter
/// answers `true`, so it can cost a read but never hide data.
#[inline]
pub fn may_contain(filter: &[u8], hash: u64) -> bool {
    let Some((&k, bits)) = filter.split_last() else { return true };
    if bits.is_empty() || k == 0 || k > 30 {
        return true;
    }
    let nbits = bits.len() as u64 * 8;
    probes(hash, k, nbits).all(|bit| bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives() {
        let mut b = BloomBuilder::new();
        for i in 0..10_000u32 {
            b.add_key(&i.to_be_bytes());
        }
        let f = b.build(10);
        assert!((0..10_000u32).all(|i| may_contain(&f, hash_key(&i.to_be_bytes()))));
    }

    #[test]
    fn false_positive_rate_is_about_one_percent() {
        let mut b = BloomBuilder::new();
        for i in 0..20_000u64 {
            b.add_key(format!("user{i:012}").as_bytes());
        }
        let f = b.build(10);
        let fp = (20_000..120_000u64)
            .filter(|i| may_contain(&f, hash_key(format!("user{i:012}").as_bytes())))
            .count();
        let rate = fp as f64 / 100_000.0;
        assert!(rate < 0.015, "false-positive rate {rate}");
        assert!(rate > 0.001, "suspiciously low rate {rate}: filter not probing?");
    }

    #[test]
    fn malformed_filters_admit_everything() {
        assert!(may_contain(&[], 1));
        assert!(may_contain(&[0xff, 0], 1));
    }
}
