//! Zipfian choice of items, drawn as YCSB draws it.
//!
//! Of `n` items ranked `0..n`, rank `i` has probability
//!
//! ```text
//! P(i) = (1 / (i + 1)^θ) / ζ(n, θ),    ζ(n, θ) = Σ_{k=1..n} 1 / k^θ
//! ```
//!
//! so rank 0 is the hottest. YCSB's skew constant is θ = 0.99
//! ([`YCSB_THETA`]): with 10,000 items, rank 0 takes 9.8% of the draws and
//! the top 1% of ranks about 52%.
//!
//! The generator is Gray et al.'s ("Quickly Generating Billion-Record
//! Synthetic Databases", SIGMOD 1994, §5.2), the one YCSB's
//! `ZipfianGenerator` uses: ζ(n, θ) is summed once, in `O(n)`, and each draw
//! costs one uniform number and at most one `powf`:
//!
//! ```text
//! u  = uniform in [0, 1),  uz = u · ζ(n, θ)
//! uz < 1              → rank 0                      (exact: P(0) = 1 / ζ(n))
//! uz < 1 + 0.5^θ      → rank 1                      (exact: P(1) = 0.5^θ / ζ(n))
//! otherwise           → ⌊n · (η·u − η + 1)^α⌋       (a continuous inverse CDF)
//! α = 1 / (1 − θ),    η = (1 − (2/n)^(1−θ)) / (1 − ζ(2, θ) / ζ(n, θ))
//! ```
//!
//! Ranks 0 and 1 are exact. From rank 2 on the continuous approximation
//! skews low ranks a little: at `n` = 10,000 and θ = 0.99, rank 2 is drawn
//! about 19% more often than `P(2)`, rank 10 within 1%, and the top 1,000
//! ranks get 76.2% of the draws instead of 75.6%. YCSB has the same bias; it
//! is kept so that figures compare.
//!
//! Ranks are not keys: YCSB's default request distribution scrambles ranks
//! over the key space (by hashing them) so the hot items are not neighbours.
//! [`Zipfian::sample`] returns the rank; the YCSB driver (`ycsb.rs`) hashes
//! it as YCSB does, drawing from [`YCSB_SCRAMBLED_ITEMS`] ranks with a given ζ
//! ([`Zipfian::with_zeta`]) so that no `O(n)` sum is needed.
//!
//! θ must be in `[0, 1)`: at θ = 1, α is infinite (Gray's method does not
//! apply), and θ = 0 is the uniform distribution.

use anyhow::{Result, ensure};

use crate::workload::Rng;

/// YCSB's `ZIPFIAN_CONSTANT`.
pub const YCSB_THETA: f64 = 0.99;

/// Ranks YCSB's `ScrambledZipfianGenerator` draws from before hashing them
/// onto the key space (its `ITEM_COUNT`).
pub const YCSB_SCRAMBLED_ITEMS: u64 = 10_000_000_000;

/// ζ(10^10, 0.99), as YCSB precomputes it (its `ZETAN`).
pub const YCSB_SCRAMBLED_ZETA: f64 = 26.469_028_201_783_02;

/// ζ(n, θ) = Σ_{k=1..n} 1 / k^θ, summed from the smallest term up so the
/// small terms are not lost.
pub fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).rev().map(|k| (k as f64).powf(-theta)).sum()
}

/// The constants of a zipfian distribution over `0..n`. Immutable and cheap
/// to clone: threads share one and each draws with its own [`Rng`].
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    zeta_n: f64,
    /// `1 + 0.5^θ`: `u · ζ(n)` below this (and at least 1) is rank 1.
    rank1_limit: f64,
    alpha: f64,
    eta: f64,
}

impl Zipfian {
    /// The distribution over ranks `0..items` with skew `theta` (in `[0, 1)`).
    pub fn new(items: u64, theta: f64) -> Result<Zipfian> {
        ensure!(items > 0, "a zipfian distribution needs at least one item");
        Zipfian::with_zeta(items, theta, zeta(items, theta))
    }

    /// The distribution over ranks `0..items` with ζ(items, θ) given rather
    /// than summed: YCSB's scrambled zipfian draws from 10^10 ranks with a
    /// precomputed ζ ([`YCSB_SCRAMBLED_ITEMS`], [`YCSB_SCRAMBLED_ZETA`]).
    pub fn with_zeta(items: u64, theta: f64, zeta_n: f64) -> Result<Zipfian> {
        ensure!(items > 0, "a zipfian distribution needs at least one item");
        ensure!(
            (0.0..1.0).contains(&theta),
            "zipfian theta {theta} is not in [0, 1): Gray's method needs theta < 1"
        );
        ensure!(zeta_n >= 1.0, "zeta {zeta_n} is below zeta(1) = 1");
        let eta = if items > 2 {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta(2, theta) / zeta_n)
        } else {
            // Every draw is rank 0 or 1; the formula (0/0 at n = 2) is never used.
            0.0
        };
        Ok(Zipfian {
            items,
            theta,
            zeta_n,
            rank1_limit: 1.0 + 0.5f64.powf(theta),
            alpha: 1.0 / (1.0 - theta),
            eta,
        })
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// The exact probability of `rank`, `P(rank)` in the module doc (which
    /// the generator matches exactly for ranks 0 and 1 only).
    pub fn probability(&self, rank: u64) -> f64 {
        assert!(rank < self.items, "rank {rank} of {} items", self.items);
        ((rank + 1) as f64).powf(-self.theta) / self.zeta_n
    }

    /// Draws a rank in `0..items()`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        self.rank_of(rng.unit_f64())
    }

    /// The rank that the uniform number `u` (in `[0, 1)`) maps to.
    fn rank_of(&self, u: f64) -> u64 {
        debug_assert!((0.0..1.0).contains(&u), "u = {u} is not in [0, 1)");
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.rank1_limit {
            return 1;
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        // For u within a rounding error of 1 the base rounds to 1 and the
        // product to `items`.
        rank.min(self.items - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often each rank is drawn in `draws` draws from a seeded generator.
    fn histogram(z: &Zipfian, seed: u64, draws: usize) -> Vec<u64> {
        let mut counts = vec![0; z.items() as usize];
        let mut rng = Rng::new(seed);
        for _ in 0..draws {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        counts
    }

    fn assert_within(actual: f64, expected: f64, relative: f64, what: &str) {
        let error = (actual - expected).abs() / expected;
        assert!(error <= relative, "{what}: {actual:.5} is {error:.4} away from {expected:.5}");
    }

    #[test]
    fn zeta_matches_known_values() {
        assert_eq!(zeta(1, 0.99), 1.0);
        assert_eq!(zeta(4, 0.0), 4.0, "theta 0 counts the items");
        assert_within(zeta(2, 0.99), 1.0 + 0.5f64.powf(0.99), 1e-12, "zeta(2)");
        // The harmonic number H(10,000) = ln(10,000) + γ + 1/20,000 - ...
        let h = 10_000f64.ln() + 0.577_215_664_9 + 1.0 / 20_000.0;
        assert_within(zeta(10_000, 1.0), h, 1e-9, "H(10,000)");
    }

    #[test]
    fn ranks_0_and_1_are_drawn_with_their_exact_probability() {
        // n = 10,000 and theta 0.99, as txn-bench's zipfian workload: P(0) = 9.78%.
        let z = Zipfian::new(10_000, YCSB_THETA).unwrap();
        assert_within(z.probability(0), 0.097_806, 1e-4, "P(0)");
        let draws = 1_000_000;
        let counts = histogram(&z, 42, draws);
        // One standard deviation of the rank-0 frequency is 0.3% of it.
        assert_within(counts[0] as f64 / draws as f64, z.probability(0), 0.015, "rank 0");
        assert_within(counts[1] as f64 / draws as f64, z.probability(1), 0.02, "rank 1");
    }

    #[test]
    fn higher_ranks_follow_the_distribution_within_grays_approximation() {
        let z = Zipfian::new(10_000, YCSB_THETA).unwrap();
        let draws = 1_000_000;
        let counts = histogram(&z, 7, draws);
        let share = |ranks: std::ops::Range<u64>| {
            let drawn: u64 = ranks.clone().map(|r| counts[r as usize]).sum();
            let exact: f64 = ranks.map(|r| z.probability(r)).sum();
            (drawn as f64 / draws as f64, exact)
        };
        // See the module doc: the approximation favours ranks 2 to 9 (by
        // about 10% together), and so the top ranks a little.
        let (drawn, exact) = share(2..10);
        assert!(drawn > exact && drawn < exact * 1.15, "ranks 2..10: {drawn:.4} vs {exact:.4}");
        let (drawn, exact) = share(0..1_000);
        assert_within(drawn, exact, 0.02, "top 1,000 ranks");
        let (drawn, exact) = share(5_000..10_000);
        assert_within(drawn, exact, 0.05, "bottom half");
    }

    #[test]
    fn draws_stay_in_range_even_at_the_edges_of_the_unit_interval() {
        for n in [1, 2, 3, 10, 1_000_003] {
            let z = Zipfian::new(n, YCSB_THETA).unwrap();
            let largest_u = 1.0 - f64::EPSILON / 2.0;
            assert!(largest_u < 1.0);
            assert_eq!(z.rank_of(0.0), 0, "n = {n}");
            assert!(z.rank_of(largest_u) < n, "n = {n}");
            let mut rng = Rng::new(n);
            assert!((0..10_000).all(|_| z.sample(&mut rng) < n), "n = {n}");
        }
        let two = histogram(&Zipfian::new(2, YCSB_THETA).unwrap(), 1, 10_000);
        assert!(two[0] > two[1] && two[1] > 0, "{two:?}");
    }

    #[test]
    fn the_same_seed_draws_the_same_ranks() {
        let z = Zipfian::new(1_000, YCSB_THETA).unwrap();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..1_000).map(|_| z.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }

    #[test]
    fn theta_zero_is_uniform() {
        let z = Zipfian::new(10, 0.0).unwrap();
        let counts = histogram(&z, 3, 100_000);
        for (rank, &n) in counts.iter().enumerate() {
            assert!((9_500..10_500).contains(&n), "rank {rank} drawn {n} times of 100,000");
        }
    }

    #[test]
    fn a_given_zeta_matches_a_summed_one() {
        let summed = Zipfian::new(100_000, YCSB_THETA).unwrap();
        let given = Zipfian::with_zeta(100_000, YCSB_THETA, zeta(100_000, YCSB_THETA)).unwrap();
        for u in [0.0, 0.05, 0.2, 0.5, 0.9, 0.999] {
            assert_eq!(summed.rank_of(u), given.rank_of(u));
        }
        // YCSB's constant is ζ(10^10, 0.99): its rank 0 has probability 1/ζ = 3.8%.
        let ycsb = Zipfian::with_zeta(YCSB_SCRAMBLED_ITEMS, YCSB_THETA, YCSB_SCRAMBLED_ZETA);
        assert_within(ycsb.unwrap().probability(0), 0.037_78, 1e-3, "P(0) of 10^10 ranks");
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(Zipfian::new(0, 0.5).is_err());
        for theta in [1.0, 1.5, -0.1, f64::NAN] {
            let err = Zipfian::new(10, theta).unwrap_err().to_string();
            assert!(err.contains("not in [0, 1)"), "{theta}: {err}");
        }
    }
}
