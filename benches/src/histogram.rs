//! A log-bucketed latency histogram with bounded relative error.
//!
//! Values (nanoseconds, by convention) below 128 get one bucket each. Above,
//! every power-of-two range `[2^e, 2^(e+1))` is split into 64 equal buckets, so
//! a bucket is at most 1/64 (about 1.6%) as wide as the values it holds:
//!
//! ```text
//! value       bucket width   buckets
//! 0..128      1              128 (exact)
//! 128..256    2              64
//! 256..512    4              64
//! ...         ...            ...
//! 2^63..      2^57           64
//! ```
//!
//! A percentile is reported as the midpoint of the bucket holding that rank
//! (clamped to the observed minimum and maximum), so it is within 0.8% of an
//! observed value. The whole `u64` range fits in 3,776 counters (30 KiB), so
//! recording is an index computation and an increment: cheap enough to call
//! once per operation. Histograms of several threads combine with
//! [`Histogram::merge`].

use std::time::Duration;

/// log2 of the number of buckets per power of two above the exact range.
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// Values below this have a bucket each.
const EXACT_LIMIT: u64 = 2 * SUB_BUCKETS;
/// Exact buckets, then 64 per power of two from 2^7 up to 2^63.
const NUM_BUCKETS: usize = (EXACT_LIMIT + (64 - SUB_BITS as u64 - 1) * SUB_BUCKETS) as usize;

/// Counts of recorded values in buckets of bounded relative width.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The bucket holding `value`.
fn bucket_of(value: u64) -> usize {
    if value < EXACT_LIMIT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= SUB_BITS + 1
    let shift = exponent - SUB_BITS;
    let mantissa = value >> shift; // in [SUB_BUCKETS, 2 * SUB_BUCKETS)
    (EXACT_LIMIT + u64::from(shift - 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

/// The smallest value in bucket `index`, and the bucket's width.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < EXACT_LIMIT {
        return (index, 1);
    }
    let shift = (index - EXACT_LIMIT) / SUB_BUCKETS + 1;
    let mantissa = (index - EXACT_LIMIT) % SUB_BUCKETS + SUB_BUCKETS;
    (mantissa << shift, 1 << shift)
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; NUM_BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.count += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Records a duration in nanoseconds (saturating at `u64::MAX`).
    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value recorded, 0 if none.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The exact mean, 0 if nothing was recorded.
    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 }
    }

    /// The value at percentile `p` (0 to 100): the value of rank
    /// `ceil(p / 100 * count)` in sorted order, within about 0.8% (exact for
    /// the first and last ranks). 0 if nothing was recorded.
    pub fn percentile(&self, p: f64) -> u64 {
        assert!((0.0..=100.0).contains(&p), "percentile {p} is not in 0..=100");
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        // The extremes are known exactly.
        if rank == 1 {
            return self.min;
        }
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bucket_bounds(index);
                return (low + width / 2).clamp(self.min, self.max);
            }
        }
        unreachable!("rank {rank} is at most the count {}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: u64, expected: u64, what: &str) {
        let error = (actual as f64 - expected as f64).abs() / expected as f64;
        assert!(error <= 0.008, "{what}: {actual} is {error:.4} away from {expected}");
    }

    #[test]
    fn buckets_tile_the_range_and_stay_narrow() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(127), 127);
        assert_eq!(bucket_of(128), 128);
        assert_eq!(bucket_of(u64::MAX), NUM_BUCKETS - 1);
        let mut expected_low = 0;
        for index in 0..NUM_BUCKETS {
            let (low, width) = bucket_bounds(index);
            assert_eq!(low, expected_low, "bucket {index} starts where the previous ended");
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(low + (width - 1)), index);
            assert!(width == 1 || width * SUB_BUCKETS <= low, "bucket {index} is too wide");
            expected_low = low.wrapping_add(width);
        }
        assert_eq!(expected_low, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = Histogram::new();
        for v in 1..=100_000 {
            h.record(v);
        }
        assert_eq!(h.count(), 100_000);
        assert_close(h.percentile(50.0), 50_000, "p50");
        assert_close(h.percentile(99.0), 99_000, "p99");
        assert_close(h.percentile(99.9), 99_900, "p99.9");
        assert_eq!(h.percentile(0.0), 1, "p0 is the minimum");
        assert_eq!(h.percentile(100.0), 100_000, "p100 is the maximum");
        assert_eq!(h.mean(), 50_000.5);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in [3, 3, 3, 7, 100] {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 3);
        assert_eq!(h.percentile(80.0), 7);
        assert_eq!(h.percentile(99.0), 100);
        assert_eq!((h.min(), h.max()), (3, 100));
    }

    #[test]
    fn a_skewed_tail_shows_in_p99_not_p50() {
        // 98.5% fast operations at ~2us, 1.5% slow ones at ~5ms: the p99 is slow.
        let mut h = Histogram::new();
        for i in 0..985 {
            h.record_duration(Duration::from_nanos(2_000 + i));
        }
        for _ in 0..15 {
            h.record_duration(Duration::from_millis(5));
        }
        assert_close(h.percentile(50.0), 2_499, "p50");
        assert_close(h.percentile(99.0), 5_000_000, "p99");
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..5_000u64 {
            let value = v * v;
            if v % 3 == 0 {
                a.record(value)
            } else {
                b.record(value)
            }
            all.record(value);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!((a.min(), a.max(), a.mean()), (all.min(), all.max(), all.mean()));
        for p in [1.0, 50.0, 90.0, 99.0, 99.99] {
            assert_eq!(a.percentile(p), all.percentile(p), "p{p}");
        }
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert_eq!((h.count(), h.min(), h.max(), h.percentile(99.0)), (0, 0, 0, 0));
        assert_eq!(h.mean(), 0.0);
    }
}
