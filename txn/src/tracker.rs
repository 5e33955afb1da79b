//! The commit tracker: which commit timestamps are assigned and which are
//! applied, and from that the *applied watermark* where snapshots are taken.
//!
//! The snapshot invariant: a snapshot at `S` is handed out only when every
//! commit at or below `S` is applied. The tracker assigns each commit timestamp
//! and marks it pending in one step under its lock; the watermark is one below
//! the oldest pending timestamp (or the newest assigned when none is pending).
//! Snapshots are taken at the watermark, so they never wait, and any commit
//! assigned later gets a larger timestamp, so none lands below a snapshot.
//!
//! Commits are acknowledged only once the watermark reaches them
//! ([`CommitTracker::wait_applied`]), so a transaction that begins after
//! another's commit returned always sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::Thread;

use strata_lsm::Timestamp;

use crate::error::Result;

#[derive(Debug, Default)]
struct State {
    pending: BTreeSet<Timestamp>,
    last_assigned: Timestamp,
    /// Threads in [`CommitTracker::wait_applied`], by the timestamp they
    /// wait for: each is woken only once the watermark reaches it (no
    /// thundering herd on every commit).
    waiters: BTreeMap<Timestamp, Vec<Thread>>,
}

#[derive(Debug)]
pub struct CommitTracker {
    state: Mutex<State>,
    watermark: AtomicU64,
}

impl CommitTracker {
    /// A tracker whose watermark starts at `start` (everything at or below it
    /// is applied: recovered data).
    pub fn new(start: Timestamp) -> CommitTracker {
        CommitTracker {
            state: Mutex::new(State {
                pending: BTreeSet::new(),
                last_assigned: start,
                waiters: BTreeMap::new(),
            }),
            watermark: AtomicU64::new(start),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The largest timestamp at or below which every commit is applied.
    pub fn watermark(&self) -> Timestamp {
        self.watermark.load(Ordering::SeqCst)
    }

    /// Assigns a commit timestamp from `next` (which must exceed every earlier
    /// one) and marks it pending, atomically with respect to the watermark.
    pub fn assign(&self, next: impl FnOnce() -> Result<Timestamp>) -> Result<Timestamp> {
        let mut s = self.lock();
        let ts = next()?;
        assert!(ts > s.last_assigned, "commit timestamp {ts} not above {}", s.last_assigned);
        s.pending.insert(ts);
        s.last_assigned = ts;
        Ok(ts)
    }

    /// Moves a pending timestamp up to `to` (a prepared transaction committing
    /// at a later timestamp than it prepared at).
    pub fn reassign(&self, from: Timestamp, to: Timestamp) {
        assert!(to >= from, "a commit cannot move below its prepare timestamp");
        let mut s = self.lock();
        assert!(s.pending.remove(&from), "reassigning {from}, which is not pending");
        s.pending.insert(to);
        s.last_assigned = s.last_assigned.max(to);
    }

    /// Marks `ts` applied (or abandoned) and advances the watermark.
    pub fn finish(&self, ts: Timestamp) {
        let mut s = self.lock();
        assert!(s.pending.remove(&ts), "finishing {ts}, which is not pending");
        let watermark = s.pending.first().map_or(s.last_assigned, |oldest| oldest - 1);
        self.advance(s, watermark);
    }

    /// Publishes a new watermark and wakes the waiters it satisfies.
    fn advance(&self, mut s: MutexGuard<'_, State>, watermark: Timestamp) {
        debug_assert!(watermark >= self.watermark(), "the watermark moved back");
        self.watermark.store(watermark, Ordering::SeqCst);
        let still_waiting = s.waiters.split_off(&(watermark + 1));
        let ready = std::mem::replace(&mut s.waiters, still_waiting);
        drop(s);
        for thread in ready.into_values().flatten() {
            thread.unpark();
        }
    }

    /// Blocks until the watermark reaches `ts`.
    pub fn wait_applied(&self, ts: Timestamp) {
        if self.watermark() >= ts {
            return;
        }
        let mut s = self.lock();
        if self.watermark() >= ts {
            return;
        }
        s.waiters.entry(ts).or_default().push(std::thread::current());
        drop(s);
        // An unpark that lands before park() makes park() return at once;
        // spurious wake-ups loop.
        while self.watermark() < ts {
            std::thread::park();
        }
    }

    /// Makes the watermark reach `ts`: timestamps up to it count as assigned
    /// (used for time-travel reads at a timestamp no commit has reached yet).
    /// The caller's clock must already be past `ts`.
    pub fn cover(&self, ts: Timestamp) {
        let mut s = self.lock();
        if ts > s.last_assigned {
            s.last_assigned = ts;
            if s.pending.is_empty() {
                self.advance(s, ts);
                return;
            }
        }
        drop(s);
        self.wait_applied(ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn watermark_waits_for_the_oldest_pending_commit() {
        let t = CommitTracker::new(100);
        let a = t.assign(|| Ok(110)).unwrap();
        let b = t.assign(|| Ok(120)).unwrap();
        assert_eq!(t.watermark(), 100);
        t.finish(b);
        assert_eq!(t.watermark(), 109, "120 is applied but 110 is not");
        t.finish(a);
        assert_eq!(t.watermark(), 120);
    }

    #[test]
    fn assignment_must_grow() {
        let t = CommitTracker::new(100);
        let r = std::panic::catch_unwind(|| t.assign(|| Ok(100)));
        assert!(r.is_err());
    }

    #[test]
    fn reassigned_commit_holds_the_watermark_until_finished() {
        let t = CommitTracker::new(10);
        let p = t.assign(|| Ok(20)).unwrap();
        t.reassign(p, 35);
        let q = t.assign(|| Ok(36)).unwrap();
        t.finish(q);
        assert_eq!(t.watermark(), 34);
        t.finish(35);
        assert_eq!(t.watermark(), 36);
    }

    #[test]
    fn many_waiters_are_each_released_in_order() {
        let t = Arc::new(CommitTracker::new(0));
        let stamps: Vec<u64> = (1..=32).map(|i| t.assign(|| Ok(i)).unwrap()).collect();
        let waiters: Vec<_> = stamps
            .iter()
            .map(|&ts| {
                let t = t.clone();
                std::thread::spawn(move || {
                    t.wait_applied(ts);
                    assert!(t.watermark() >= ts);
                })
            })
            .collect();
        // Finish in reverse: nobody may return until the oldest finishes.
        for &ts in stamps.iter().rev() {
            t.finish(ts);
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(t.watermark(), 32);
    }

    #[test]
    fn wait_applied_returns_once_earlier_commits_finish() {
        let t = Arc::new(CommitTracker::new(0));
        let first = t.assign(|| Ok(1)).unwrap();
        let second = t.assign(|| Ok(2)).unwrap();
        t.finish(second);
        let waiter = {
            let t = t.clone();
            std::thread::spawn(move || {
                t.wait_applied(second);
                t.watermark()
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished(), "acknowledged before an earlier commit applied");
        t.finish(first);
        assert_eq!(waiter.join().unwrap(), 2);
    }
}
