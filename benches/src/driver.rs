//! Pieces the YCSB and TPC-C drivers share: durations on the command line,
//! per-thread seeds, the retry loop with its backoff, and JSON output.
//!
//! The retry loop is the drivers' one definition of an *abort*: an attempt
//! that failed with a retryable error ([`DbError::retryable`]); a *retry* is
//! running the work again after one. An operation that still fails after
//! [`MAX_ATTEMPTS`] attempts is counted as failed and the run goes on; a
//! non-retryable error ends the run.

use std::time::Duration;

use crate::sqldb::DbError;
use crate::workload::Rng;

/// Attempts of one operation or transaction before it is counted as failed.
pub const MAX_ATTEMPTS: u32 = 100;

/// Parses `500ms`, `5s`, `2.5s`, `1m` or a bare number of seconds; `0` is
/// allowed (no warm-up).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_secs) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 5s or 1m"))?;
    Duration::try_from_secs_f64(value * unit_secs)
        .map_err(|_| format!("`{text}` is not a non-negative duration"))
}

/// Per-thread seeds: different for every thread, all fixed by `seed`.
pub fn thread_seed(seed: u64, thread: usize) -> u64 {
    Rng::new(seed ^ (thread as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64()
}

/// Jittered exponential backoff before retry `attempt` (1-based): uniform in
/// `[d/2, d)` with `d` = 100 us doubling up to 20 ms.
pub fn backoff(attempt: u32, rng: &mut Rng) -> Duration {
    let d = Duration::from_micros(100)
        .saturating_mul(1 << attempt.min(8))
        .min(Duration::from_millis(20));
    d.mul_f64(0.5 + rng.unit_f64() / 2.0)
}

/// What [`with_retries`] did.
#[derive(Debug)]
pub struct Attempts<T> {
    /// The last attempt's result: success, a non-retryable error, or the
    /// retryable error of the last allowed attempt.
    pub result: Result<T, DbError>,
    /// Attempts that failed with a retryable error.
    pub aborts: u32,
}

/// Runs `work` until it succeeds, fails with a non-retryable error, or has
/// failed [`MAX_ATTEMPTS`] times, backing off between attempts.
pub fn with_retries<T>(rng: &mut Rng, mut work: impl FnMut() -> Result<T, DbError>) -> Attempts<T> {
    let mut aborts = 0;
    loop {
        match work() {
            Err(e) if e.retryable => {
                aborts += 1;
                if aborts >= MAX_ATTEMPTS {
                    return Attempts { result: Err(e), aborts };
                }
                std::thread::sleep(backoff(aborts, rng));
            }
            result => return Attempts { result, aborts },
        }
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Nanoseconds as microseconds.
pub fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1e3
}

/// Nanoseconds as milliseconds.
pub fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn retries_stop_at_success_or_a_fatal_error() {
        let mut rng = Rng::new(1);
        let mut calls = 0;
        let done = with_retries(&mut rng, || {
            calls += 1;
            if calls < 3 { Err(DbError::retryable("conflict")) } else { Ok(calls) }
        });
        assert_eq!((done.result, done.aborts), (Ok(3), 2));
        let fatal = with_retries::<()>(&mut rng, || Err(DbError::fatal("syntax")));
        assert_eq!(fatal.aborts, 0);
        assert!(!fatal.result.unwrap_err().retryable);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
