//! TPC-C's random data (clause 2.1.6 and 4.3.2): uniform numbers, NURand
//! with its C constants, customer last names, and the strings of the
//! population rules.

use rust_decimal::Decimal;

use crate::workload::Rng;

/// A number uniform in `lo..=hi`.
pub fn uniform(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    debug_assert!(lo <= hi);
    lo + rng.below(hi - lo + 1)
}

/// NURand(A, x, y) = (((random(0, A) | random(x, y)) + C) % (y - x + 1)) + x
/// (clause 2.1.6).
pub fn nurand(rng: &mut Rng, a: u64, x: u64, y: u64, c: u64) -> u64 {
    (((uniform(rng, 0, a) | uniform(rng, x, y)) + c) % (y - x + 1)) + x
}

/// The C constants of NURand for customer last names (A = 255), customer ids
/// (A = 1023) and item ids (A = 8191).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CConstants {
    pub c_last: u64,
    pub c_id: u64,
    pub ol_i_id: u64,
}

impl CConstants {
    /// The constants the loader uses (`C_LOAD` for last names).
    pub fn for_load(rng: &mut Rng) -> CConstants {
        CConstants {
            c_last: uniform(rng, 0, 255),
            c_id: uniform(rng, 0, 1023),
            ol_i_id: uniform(rng, 0, 8191),
        }
    }

    /// The constants of the measured run: `C_RUN` for last names differs from
    /// `C_LOAD` by 65 to 119, but neither 96 nor 112 (clause 2.1.6.1); the
    /// others may be any value, and are drawn afresh.
    pub fn for_run(load: &CConstants, rng: &mut Rng) -> CConstants {
        let c_last = loop {
            let c = uniform(rng, 0, 255);
            let delta = c.abs_diff(load.c_last);
            if (65..=119).contains(&delta) && delta != 96 && delta != 112 {
                break c;
            }
        };
        CConstants { c_last, c_id: uniform(rng, 0, 1023), ol_i_id: uniform(rng, 0, 8191) }
    }
}

const SYLLABLES: [&str; 10] =
    ["BAR", "OUGHT", "ABLE", "PRI", "PRES", "ESE", "ANTI", "CALLY", "ATION", "EING"];

/// The customer last name of `number` (0 to 999): the syllables of its three
/// digits (clause 4.3.2.3), e.g. 371 is `PRICALLYOUGHT`.
pub fn last_name(number: u64) -> String {
    assert!(number < 1000, "last-name number {number} is not below 1000");
    let digits = [number / 100, number / 10 % 10, number % 10];
    digits.iter().map(|&d| SYLLABLES[d as usize]).collect()
}

const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random a-string of length `min..=max` (clause 4.3.2.2; alphanumeric).
pub fn a_string(rng: &mut Rng, min: u64, max: u64) -> String {
    let len = uniform(rng, min, max);
    (0..len).map(|_| ALPHANUMERIC[rng.below(ALPHANUMERIC.len() as u64) as usize] as char).collect()
}

/// A random n-string (digits) of length `min..=max`.
pub fn n_string(rng: &mut Rng, min: u64, max: u64) -> String {
    let len = uniform(rng, min, max);
    (0..len).map(|_| (b'0' + rng.below(10) as u8) as char).collect()
}

/// A zip code: four random digits and `11111` (clause 4.3.2.7).
pub fn zip(rng: &mut Rng) -> String {
    n_string(rng, 4, 4) + "11111"
}

/// `I_DATA` and `S_DATA`: an a-string of 26 to 50 characters, 10% of them
/// with `ORIGINAL` at a random position (clause 4.3.3.1).
pub fn data_maybe_original(rng: &mut Rng) -> String {
    let mut s = a_string(rng, 26, 50);
    if rng.below(10) == 0 {
        let at = rng.below(s.len() as u64 - 8 + 1) as usize;
        s.replace_range(at..at + 8, "ORIGINAL");
    }
    s
}

/// A decimal uniform in `[lo, hi]` with `scale` digits after the point, from
/// integers in units of `10^-scale`.
pub fn decimal(rng: &mut Rng, lo_units: u64, hi_units: u64, scale: u32) -> Decimal {
    Decimal::new(uniform(rng, lo_units, hi_units) as i64, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_names_follow_the_syllable_table() {
        assert_eq!(last_name(0), "BARBARBAR");
        assert_eq!(last_name(371), "PRICALLYOUGHT");
        assert_eq!(last_name(999), "EINGEINGEING");
    }

    #[test]
    fn nurand_stays_in_range_and_is_skewed() {
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; 3001];
        for _ in 0..300_000 {
            let c = nurand(&mut rng, 1023, 1, 3000, 259);
            assert!((1..=3000).contains(&c));
            counts[c as usize] += 1;
        }
        let max = *counts.iter().max().unwrap();
        let mean = 300_000 / 3000;
        assert!(max > 3 * mean, "NURand is non-uniform: hottest {max}, mean {mean}");
    }

    #[test]
    fn run_constants_keep_the_required_distance() {
        let mut rng = Rng::new(2);
        for _ in 0..1000 {
            let load = CConstants::for_load(&mut rng);
            let run = CConstants::for_run(&load, &mut rng);
            let d = run.c_last.abs_diff(load.c_last);
            assert!((65..=119).contains(&d) && d != 96 && d != 112, "{d}");
        }
    }

    #[test]
    fn strings_have_their_sizes_and_original_a_tenth_of_the_time() {
        let mut rng = Rng::new(3);
        let datas: Vec<String> = (0..10_000).map(|_| data_maybe_original(&mut rng)).collect();
        assert!(datas.iter().all(|d| (26..=50).contains(&d.len())));
        let original = datas.iter().filter(|d| d.contains("ORIGINAL")).count();
        assert!((800..1200).contains(&original), "{original}");
        assert_eq!(zip(&mut rng).len(), 9);
        assert!(zip(&mut rng).ends_with("11111"));
        let d = decimal(&mut rng, 100, 500_000, 2);
        assert!(d >= Decimal::new(100, 2) && d <= Decimal::new(500_000, 2) && d.scale() == 2);
    }
}
