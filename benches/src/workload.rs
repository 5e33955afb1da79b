//! Workload data: a seeded PRNG, `db_bench`-style keys and compressible values.
//!
//! Everything is a function of a seed, so a run can be repeated exactly and
//! two engines see the same keys in the same order.
//!
//! Keys are the key index in zero-padded decimal, as the original LevelDB
//! `db_bench` wrote them (`%016llu`): key 42 of 16 bytes is
//! `0000000000000042`. Byte order therefore equals index order, so writing
//! indexes `0, 1, 2, ...` (`fillseq`) writes keys in sorted order.
//!
//! Values copy `db_bench`'s `RandomGenerator`: a 1 MiB buffer made of 100-byte
//! pieces, each a 50-byte random printable string written twice (so a
//! compressor would halve it), handed out as consecutive slices.

use anyhow::{Result, ensure};

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators"): one add and a finaliser per number, good enough statistics
/// for choosing keys, and no dependency.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`, by Lemire's multiply-shift (bias below 2^-32 for
    /// the `n` used here). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Puts `items` in a uniformly random order (Fisher and Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }

    /// A number in `[0, 1)`, uniform on a grid of 2^-53 (every `f64` of that
    /// form is exact).
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// How key indexes become key bytes: zero-padded decimal, `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyFormat {
    size: usize,
}

/// Decimal digits needed to write `n`.
fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

impl KeyFormat {
    /// A format for indexes `0..num_keys`; fails if the largest does not fit
    /// in `size_bytes` digits.
    pub fn new(size_bytes: usize, num_keys: u64) -> Result<KeyFormat> {
        let needed = decimal_digits(num_keys.saturating_sub(1));
        ensure!(
            size_bytes >= needed,
            "--key-size {size_bytes} is too small for {num_keys} keys: need {needed} decimal digits"
        );
        Ok(KeyFormat { size: size_bytes })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Writes the key of `index` into `out`, which must be `size()` bytes.
    pub fn write(&self, index: u64, out: &mut [u8]) {
        assert_eq!(out.len(), self.size, "key buffer of the wrong size");
        assert!(decimal_digits(index) <= self.size, "key index {index} does not fit in the key");
        let mut rest = index;
        for byte in out.iter_mut().rev() {
            *byte = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    }

    /// The key of `index`, allocated.
    pub fn key(&self, index: u64) -> Vec<u8> {
        let mut out = vec![0; self.size];
        self.write(index, &mut out);
        out
    }
}

/// Size of the buffer values are sliced from.
const VALUE_BUFFER_BYTES: usize = 1 << 20;
/// Values are built from pieces this long, each half random and half repeat.
const VALUE_PIECE_BYTES: usize = 100;

/// Hands out compressible pseudo-random values, `db_bench`-style.
#[derive(Clone, Debug)]
pub struct ValueGen {
    data: Vec<u8>,
    pos: usize,
}

impl ValueGen {
    pub fn new(seed: u64) -> ValueGen {
        let mut rng = Rng::new(seed);
        let mut data = Vec::with_capacity(VALUE_BUFFER_BYTES + VALUE_PIECE_BYTES);
        while data.len() < VALUE_BUFFER_BYTES {
            let raw: Vec<u8> =
                (0..VALUE_PIECE_BYTES / 2).map(|_| b' ' + rng.below(95) as u8).collect();
            data.extend_from_slice(&raw);
            data.extend_from_slice(&raw);
        }
        data.truncate(VALUE_BUFFER_BYTES);
        ValueGen { data, pos: 0 }
    }

    /// The next `len` bytes of the buffer (wrapping to its start), `len` at
    /// most 1 MiB.
    pub fn next(&mut self, len: usize) -> &[u8] {
        assert!(len <= self.data.len(), "values are at most {VALUE_BUFFER_BYTES} bytes");
        if self.pos + len > self.data.len() {
            self.pos = 0;
        }
        let value = &self.data[self.pos..self.pos + len];
        self.pos += len;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal() {
        let f = KeyFormat::new(16, 1_000_000).unwrap();
        assert_eq!(f.key(0), b"0000000000000000");
        assert_eq!(f.key(42), b"0000000000000042");
        assert_eq!(f.key(999_999), b"0000000000999999");
        let exact = KeyFormat::new(3, 1000).unwrap();
        assert_eq!(exact.key(999), b"999");
        let mut buf = [0u8; 3];
        exact.write(7, &mut buf);
        assert_eq!(&buf, b"007");
    }

    #[test]
    fn key_order_is_index_order() {
        let f = KeyFormat::new(20, u64::MAX).unwrap();
        let indexes = [0, 1, 9, 10, 99, 100, 12_345, 999_999, 1_000_000, u64::MAX / 10];
        for pair in indexes.windows(2) {
            assert!(f.key(pair[0]) < f.key(pair[1]), "{} sorts before {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn key_size_must_hold_every_index() {
        assert!(KeyFormat::new(3, 1000).is_ok(), "999 fits in 3 digits");
        let err = KeyFormat::new(3, 1001).unwrap_err().to_string();
        assert!(err.contains("need 4 decimal digits"), "{err}");
        assert!(KeyFormat::new(1, 0).is_ok());
        assert!(KeyFormat::new(0, 1).is_err());
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn writing_an_index_too_large_panics() {
        KeyFormat::new(2, 100).unwrap().key(100);
    }

    #[test]
    fn rng_is_seeded_and_stays_below_its_bound() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..1000).map(|_| r.below(10)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let values = draw(7);
        assert!(values.iter().all(|&v| v < 10));
        for digit in 0..10 {
            let n = values.iter().filter(|&&v| v == digit).count();
            assert!((50..150).contains(&n), "{digit} drawn {n} times of 1000");
        }
    }

    #[test]
    fn shuffle_permutes() {
        let mut items: Vec<u32> = (0..100).collect();
        Rng::new(1).shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn unit_f64_is_in_the_unit_interval_and_spread_over_it() {
        let mut r = Rng::new(3);
        let draws: Vec<f64> = (0..10_000).map(|_| r.unit_f64()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let below_half = draws.iter().filter(|&&u| u < 0.5).count();
        assert!((4_800..5_200).contains(&below_half), "{below_half} of 10000 below 0.5");
    }

    #[test]
    fn values_are_printable_and_half_repeated() {
        let mut g = ValueGen::new(1);
        let v = g.next(100).to_vec();
        assert!(v.iter().all(|b| (b' '..=b'~').contains(b)));
        assert_eq!(v[..50], v[50..], "each piece is a string written twice");
        assert_ne!(g.next(100), &v[..], "consecutive values differ");
        for _ in 0..20_000 {
            assert_eq!(g.next(100).len(), 100, "the buffer wraps around");
        }
    }
}
