//! The commit tracker: which commit timestamps are assigned and which are
//! applied, the *applied watermark* where snapshots are taken, and the write
//! groups that apply commits (group commit).
//!
//! # The watermark
//!
//! The snapshot invariant: a snapshot at `S` is handed out only when every
//! commit at or below `S` is applied. The tracker assigns each commit timestamp
//! and marks it pending in one step under its lock; the watermark is one below
//! the oldest pending timestamp (or the newest assigned when none is pending).
//! Snapshots are taken at the watermark, so they never wait, and any commit
//! assigned later gets a larger timestamp, so none lands below a snapshot.
//!
//! # Write groups
//!
//! A committer hands its batch to [`CommitTracker::apply`], which queues it.
//! The first committer to find the WAL free becomes the *leader*: it takes
//! the whole queue (its own batch included) and passes it to a
//! [`GroupWriter`], which writes it to the WAL with one write and one fsync
//! and inserts it into the memtable. As soon as the group is durable, and
//! before its memtable inserts, the leader hands the WAL to the oldest
//! queued committer, so the next group's write and fsync overlap this
//! group's inserts (RocksDB's pipelined write) — except that a leader with
//! committers queued behind it leads up to [`GROUPS_PER_LEADER`] groups in a
//! row itself, because it is already running while a successor would first
//! have to be woken and scheduled. When its group is applied the leader marks
//! the group's timestamps finished, advances the watermark past every
//! finished timestamp at the head of the pending list, and releases exactly
//! the committers it passed: it sets each one's own state word, in commit
//! order, then wakes their group's sleepers with one futex call on the
//! group's *bell* ([`crate::futex`]), so a leader is not preempted once per
//! thread it wakes. A committer sleeps once and is woken once, and never
//! re-takes the lock to find out whether it is done. (A member the
//! watermark did not pass, because an older commit is still pending, wakes
//! with its group, finds itself still waiting and sleeps again; whoever
//! later passes it rings its bell again.) The committer at the head of the
//! queue, the next leader, sleeps on its own state word instead, so handing
//! leadership to it wakes nobody else.
//!
//! Invariants:
//! - `pending` is sorted by timestamp and holds every assigned timestamp the
//!   watermark has not passed; the watermark is `pending[0] - 1`, or
//!   `last_assigned` when `pending` is empty, and never moves back.
//! - A committer is acknowledged (its [`CommitTracker::apply`] returns `Ok`)
//!   only when its group's write returned `Ok` (durable, for a synced
//!   engine, and in the memtable) and the watermark has reached its timestamp,
//!   so acknowledgements come in commit order and a transaction that begins
//!   after a commit returned sees it.
//! - At most one leader writes and syncs a group at a time (`leading`), so
//!   groups reach the WAL in the order they were formed.
//! - A failed group still finishes its timestamps (snapshots must keep
//!   advancing; the engine refuses further writes after an I/O failure), and
//!   every member of it gets the error.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

use strata_lsm::{GroupStage, Timestamp, WriteBatch};

use crate::error::{Error, Result};
use crate::futex;

/// Bells write groups ring, reused round-robin. A committer waits for at
/// most a few groups, so a bell is practically never shared by two live
/// groups; when it is, the other group's sleepers wake, see that they are
/// not done, and sleep again.
const BELLS: usize = 64;

/// Where write groups go: the storage engine, or a test double.
pub trait GroupWriter {
    /// Applies every batch of `group` (each atomically, all durable if the
    /// shard's durability asks for it), reporting each [`GroupStage`] once,
    /// in order: `Written` when the next group's WAL write may start (it
    /// lands after this one), `Durable` before the memtable inserts. On
    /// failure it may return without reporting a stage.
    fn write_group(&self, group: &[WriteBatch], progress: &mut dyn FnMut(GroupStage))
    -> Result<()>;
}

/// Groups a leader writes in a row while committers are queued, before it
/// hands the WAL to the next queued committer and returns to its caller.
/// Handing on costs the next group a wake-up of a sleeping thread (on a busy
/// two-core machine, tens of microseconds before it runs); going on costs
/// the leader's own caller that many group commits of latency.
const GROUPS_PER_LEADER: u32 = 4;

/// A committer's state, as its waiter sees it.
const WAITING: u32 = 0;
/// Told to lead the next write group.
const LEAD: u32 = 1;
/// Applied, and the watermark has reached it: acknowledge.
const APPLIED: u32 = 2;
/// Its group failed; the error is in `Waiter::error`.
const FAILED: u32 = 3;

/// One committer thread's state word, reused across its commits. Whoever
/// sets a final state must not touch the waiter afterwards except to wake
/// its word: its owner may already be reusing it (a stray wake-up is
/// harmless, every wait loops).
#[derive(Debug)]
struct Waiter {
    state: AtomicU32,
    error: Mutex<Option<Error>>,
}

thread_local! {
    /// The calling thread's waiter, kept between commits so a commit
    /// allocates none. Taken while a commit is in flight.
    static WAITER: Cell<Option<Arc<Waiter>>> = const { Cell::new(None) };
}

fn take_waiter() -> Arc<Waiter> {
    let waiter = WAITER.with(Cell::take).unwrap_or_else(|| {
        Arc::new(Waiter { state: AtomicU32::new(WAITING), error: Mutex::new(None) })
    });
    waiter.state.store(WAITING, Ordering::Relaxed);
    waiter
}

fn return_waiter(waiter: Arc<Waiter>) {
    WAITER.with(|cell| cell.set(Some(waiter)));
}

/// An assigned timestamp the watermark has not passed.
#[derive(Debug)]
struct Pending {
    ts: Timestamp,
    finished: bool,
    /// The committer to wake when the watermark passes `ts`, and the bell
    /// it sleeps on (`None`: its own state word).
    waiter: Option<Arc<Waiter>>,
    bell: Option<usize>,
    /// Whether its write failed (its waiter holds the error).
    failed: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Sorted by timestamp (see the module invariants).
    pending: VecDeque<Pending>,
    last_assigned: Timestamp,
    /// Batches waiting for a leader, in arrival order, and their timestamps.
    queue: Vec<WriteBatch>,
    queued: Vec<Timestamp>,
    /// The committer of `queue[0]`, the next leader: `Some` exactly when
    /// the queue is not empty.
    head: Option<Arc<Waiter>>,
    /// Emptied queues a leader gave back, so forming a group allocates none.
    spare: (Vec<WriteBatch>, Vec<Timestamp>),
    /// Whether a leader holds the WAL: from taking the queue until its
    /// (last) group is durable. When not, the queue is empty.
    leading: bool,
    /// Groups formed so far: the queued committers ring bell
    /// `groups % BELLS`.
    groups: u64,
    /// Threads in [`CommitTracker::wait_applied`], by the timestamp they
    /// wait for (time-travel reads; committers wait on their `Pending`).
    waiters: BTreeMap<Timestamp, Vec<Thread>>,
}

impl State {
    fn position(&self, ts: Timestamp) -> Option<usize> {
        self.pending.binary_search_by_key(&ts, |p| p.ts).ok()
    }

    fn watermark(&self) -> Timestamp {
        self.pending.front().map_or(self.last_assigned, |oldest| oldest.ts - 1)
    }
}

#[derive(Debug)]
pub struct CommitTracker {
    state: Mutex<State>,
    watermark: AtomicU64,
    bells: [AtomicU32; BELLS],
}

/// A committer to wake once the tracker's lock is released: its final
/// state, and the bell it sleeps on.
type Wakes = Vec<(Arc<Waiter>, u32, Option<usize>)>;

impl CommitTracker {
    /// A tracker whose watermark starts at `start` (everything at or below it
    /// is applied: recovered data).
    pub fn new(start: Timestamp) -> CommitTracker {
        CommitTracker {
            state: Mutex::new(State { last_assigned: start, ..State::default() }),
            watermark: AtomicU64::new(start),
            bells: std::array::from_fn(|_| AtomicU32::new(0)),
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
        s.pending.push_back(Pending {
            ts,
            finished: false,
            waiter: None,
            bell: None,
            failed: false,
        });
        s.last_assigned = ts;
        Ok(ts)
    }

    /// Moves a pending timestamp up to `to` (a prepared transaction committing
    /// at a later timestamp than it prepared at).
    pub fn reassign(&self, from: Timestamp, to: Timestamp) {
        assert!(to >= from, "a commit cannot move below its prepare timestamp");
        let mut s = self.lock();
        let at = s.position(from).filter(|&i| !s.pending[i].finished);
        let at = at.unwrap_or_else(|| panic!("reassigning {from}, which is not pending"));
        let mut entry = s.pending.remove(at).expect("position is in range");
        entry.ts = to;
        let to_at = s.pending.partition_point(|p| p.ts < to);
        assert!(s.pending.get(to_at).is_none_or(|p| p.ts != to), "{to} is already pending");
        s.pending.insert(to_at, entry);
        s.last_assigned = s.last_assigned.max(to);
        // Removing the oldest entry may have moved the watermark.
        let wakes = self.advance(&mut s);
        drop(s);
        self.wake(wakes, None);
    }

    /// Marks `ts` applied (or abandoned) and advances the watermark.
    pub fn finish(&self, ts: Timestamp) {
        let mut s = self.lock();
        let at = s.position(ts).filter(|&i| !s.pending[i].finished);
        let at = at.unwrap_or_else(|| panic!("finishing {ts}, which is not pending"));
        s.pending[at].finished = true;
        let wakes = self.advance(&mut s);
        drop(s);
        self.wake(wakes, None);
    }

    /// Pops the finished timestamps at the head of `pending`, publishes the
    /// new watermark, and returns the committers it passed, oldest first.
    /// Threads in [`CommitTracker::wait_applied`] that it satisfies are woken
    /// here (they are rare: time-travel reads).
    fn advance(&self, s: &mut State) -> Wakes {
        let mut wakes = Vec::new();
        while s.pending.front().is_some_and(|p| p.finished) {
            let done = s.pending.pop_front().expect("front exists");
            if let Some(waiter) = done.waiter {
                wakes.push((waiter, if done.failed { FAILED } else { APPLIED }, done.bell));
            }
        }
        let watermark = s.watermark();
        debug_assert!(watermark >= self.watermark(), "the watermark moved back");
        self.watermark.store(watermark, Ordering::SeqCst);
        if s.waiters.first_key_value().is_some_and(|(&ts, _)| ts <= watermark) {
            let still_waiting = s.waiters.split_off(&(watermark + 1));
            let ready = std::mem::replace(&mut s.waiters, still_waiting);
            for thread in ready.into_values().flatten() {
                thread.unpark();
            }
        }
        wakes
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
                let wakes = self.advance(&mut s);
                drop(s);
                self.wake(wakes, None);
                return;
            }
        }
        drop(s);
        self.wait_applied(ts);
    }

    /// Applies `batch`, the writes of the pending commit `ts`, through a
    /// write group (see the module doc), and returns once the watermark has
    /// reached `ts`: the commit is durable (if `writer` syncs), visible, and
    /// every earlier commit is applied too. Finishes `ts` whatever happens.
    /// Every caller of one tracker must pass an equivalent `writer`: the
    /// leader of a group writes everyone's batches with its own.
    pub fn apply(&self, ts: Timestamp, batch: WriteBatch, writer: &dyn GroupWriter) -> Result<()> {
        let me = take_waiter();
        let (lead, bell) = {
            let mut s = self.lock();
            let at = s.position(ts).filter(|&i| !s.pending[i].finished);
            let at = at.unwrap_or_else(|| panic!("applying {ts}, which is not pending"));
            // The head of the queue will lead: it sleeps on its own word.
            let bell = if s.queue.is_empty() {
                s.head = Some(me.clone());
                None
            } else {
                Some((s.groups % BELLS as u64) as usize)
            };
            s.pending[at].waiter = Some(me.clone());
            s.pending[at].bell = bell;
            s.queue.push(batch);
            s.queued.push(ts);
            (!std::mem::replace(&mut s.leading, true), bell)
        };
        let mut state = if lead { LEAD } else { self.wait(&me, bell) };
        if state == LEAD {
            debug_assert!(bell.is_none(), "a leader sleeps on its own word");
            me.state.store(WAITING, Ordering::Relaxed);
            self.lead(writer, &me);
            state = self.wait(&me, None);
        }
        let result = match state {
            APPLIED => Ok(()),
            FAILED => Err(me
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| Error::Corruption("a write group failed".into()))),
            other => unreachable!("a committer woke in state {other}"),
        };
        return_waiter(me);
        result
    }

    /// Sleeps until `me` is no longer `WAITING`, on `bell` (or on its own
    /// state word); returns the state.
    fn wait(&self, me: &Waiter, bell: Option<usize>) -> u32 {
        let word = bell.map_or(&me.state, |b| &self.bells[b]);
        loop {
            // Read the word before the state: a waker sets the state, then
            // changes the word, so a wake-up between the two is not lost
            // (the futex call returns at once when the word moved).
            let seen = word.load(Ordering::Acquire);
            let state = me.state.load(Ordering::Acquire);
            if state != WAITING {
                return state;
            }
            futex::wait(word, seen);
        }
    }

    /// Sets each committer's final state, then rings the bells they sleep
    /// on, each once, or wakes their own words. `me`, the calling thread, is
    /// only marked.
    fn wake(&self, wakes: Wakes, me: Option<&Arc<Waiter>>) {
        let mut rung = 0u64;
        for (waiter, state, bell) in &wakes {
            waiter.state.store(*state, Ordering::Release);
            match bell {
                Some(b) => rung |= 1 << b,
                None if me.is_some_and(|me| Arc::ptr_eq(me, waiter)) => {}
                None => futex::wake_one(&waiter.state),
            }
        }
        while rung != 0 {
            let b = rung.trailing_zeros() as usize;
            rung &= rung - 1;
            self.bells[b].fetch_add(1, Ordering::Release);
            futex::wake_all(&self.bells[b]);
        }
    }

    /// Writes the queued batches as one group, then finishes them; then,
    /// while committers are queued, up to [`GROUPS_PER_LEADER`] groups in
    /// all, the next group.
    fn lead(&self, writer: &dyn GroupWriter, me: &Arc<Waiter>) {
        for round in 1..=GROUPS_PER_LEADER {
            let (mut batches, mut stamps) = {
                let mut s = self.lock();
                if s.queue.is_empty() {
                    debug_assert!(round > 1, "a leader's own batch is queued");
                    let next = release_wal(&mut s);
                    debug_assert!(next.is_none(), "nobody queued, nobody to lead");
                    return;
                }
                s.groups += 1; // later arrivals ring the next bell
                // The head (this leader in the first round) is in the group;
                // it sleeps on its own word, and is woken there when passed.
                s.head = None;
                let (spare_batches, spare_stamps) = std::mem::take(&mut s.spare);
                (
                    std::mem::replace(&mut s.queue, spare_batches),
                    std::mem::replace(&mut s.queued, spare_stamps),
                )
            };
            // The WAL is handed on once the group is durable, unless this
            // leader goes on with the next group itself: it is running
            // already, while waking a sleeping successor takes a trip
            // through the scheduler that the next fsync would wait for.
            let last = round == GROUPS_PER_LEADER;
            let mut released = false;
            let mut release = || {
                if !released {
                    released = true;
                    let next = release_wal(&mut self.lock());
                    lead_next(next);
                }
            };
            // A panic in the writer (a bug in the engine) fails this group
            // like an error would, instead of leaving the WAL held and
            // every later committer asleep behind it.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                writer.write_group(&batches, &mut |stage| {
                    if stage == GroupStage::Durable && last {
                        release();
                    }
                })
            }))
            .unwrap_or_else(|panic| Err(group_panicked(panic.as_ref())));
            if result.is_err() || last {
                release(); // a failed write may not have reported its stages
            }
            batches.clear();
            let mut s = self.lock();
            for &ts in &stamps {
                let at = s.position(ts).expect("a queued timestamp is pending");
                let entry = &mut s.pending[at];
                entry.finished = true;
                if let Err(e) = &result {
                    entry.failed = true;
                    if let Some(waiter) = &entry.waiter {
                        *waiter.error.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(e.duplicate());
                    }
                }
            }
            let wakes = self.advance(&mut s);
            stamps.clear();
            s.spare = (batches, stamps);
            drop(s);
            self.wake(wakes, Some(me));
            if released {
                return;
            }
        }
    }
}

/// The error each member of a group whose writer panicked gets.
fn group_panicked(panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    Error::Io {
        path: "the write-ahead log".into(),
        source: std::io::Error::other(format!("the group write panicked: {message}")),
    }
}

/// Ends the current leader's hold on the WAL: returns the oldest queued
/// committer, to lead the next group once the lock is released
/// ([`lead_next`]), or, with none queued, lets the next to arrive lead.
fn release_wal(s: &mut State) -> Option<Arc<Waiter>> {
    let next = s.head.clone();
    s.leading = next.is_some();
    next
}

/// Tells `next` (from [`release_wal`]) to lead.
fn lead_next(next: Option<Arc<Waiter>>) {
    if let Some(next) = next {
        next.state.store(LEAD, Ordering::Release);
        futex::wake_one(&next.state);
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
    fn reassigning_the_oldest_commit_lets_the_watermark_move_up_to_it() {
        let t = CommitTracker::new(10);
        let p = t.assign(|| Ok(20)).unwrap();
        let q = t.assign(|| Ok(30)).unwrap();
        t.finish(q);
        assert_eq!(t.watermark(), 19);
        t.reassign(p, 40);
        assert_eq!(t.watermark(), 39, "30 is applied, 40 is pending");
        t.finish(40);
        assert_eq!(t.watermark(), 40);
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

    /// A writer that records every group and checks, when it is called, that
    /// nothing it is asked to write is below the watermark yet.
    #[derive(Debug, Default)]
    struct Recorder {
        tracker: Option<Arc<CommitTracker>>,
        /// Timestamps in the order they were "written", and "applied".
        logged: Mutex<Vec<Timestamp>>,
        applied: Mutex<Vec<Timestamp>>,
        groups: AtomicU64,
        /// Leaders writing right now (at most one until `Durable`).
        in_wal: AtomicU64,
        /// The thread that wrote each group.
        leaders: Mutex<Vec<std::thread::ThreadId>>,
        fail_group: Option<u64>,
        panic_group: Option<u64>,
    }

    fn stamp_of(batch: &WriteBatch) -> Timestamp {
        batch.iter().next().map(|(_, ts, _)| ts).expect("one write per batch")
    }

    impl GroupWriter for Recorder {
        fn write_group(
            &self,
            group: &[WriteBatch],
            progress: &mut dyn FnMut(GroupStage),
        ) -> Result<()> {
            let n = self.groups.fetch_add(1, Ordering::SeqCst);
            self.leaders.lock().unwrap().push(std::thread::current().id());
            assert_eq!(self.in_wal.fetch_add(1, Ordering::SeqCst), 0, "two leaders in the WAL");
            let tracker = self.tracker.as_ref().expect("tracker set");
            for batch in group {
                assert!(
                    stamp_of(batch) > tracker.watermark(),
                    "watermark passed an unwritten commit"
                );
            }
            self.logged.lock().unwrap().extend(group.iter().map(stamp_of));
            progress(GroupStage::Written);
            std::thread::sleep(std::time::Duration::from_micros(100)); // the "fsync"
            self.in_wal.fetch_sub(1, Ordering::SeqCst);
            if self.panic_group == Some(n) {
                panic!("group {n} panicked");
            }
            if self.fail_group == Some(n) {
                return Err(Error::Corruption(format!("group {n} failed")));
            }
            progress(GroupStage::Durable);
            std::thread::yield_now(); // the "memtable inserts"
            self.applied.lock().unwrap().extend(group.iter().map(stamp_of));
            Ok(())
        }
    }

    fn one_write(ts: Timestamp) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(b"k", ts, b"v");
        batch
    }

    /// Many committers: each is acknowledged only after its own batch was
    /// written and every earlier commit applied, groups share writes, and
    /// the acknowledgements of one thread come in its commit order.
    #[test]
    fn write_groups_acknowledge_each_committer_after_its_own_write_in_order() {
        const THREADS: u64 = 16;
        const COMMITS: u64 = 200;
        let t = Arc::new(CommitTracker::new(0));
        let recorder = Arc::new(Recorder { tracker: Some(t.clone()), ..Recorder::default() });
        let clock = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (t, recorder, clock) = (t.clone(), recorder.clone(), clock.clone());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..COMMITS {
                        let ts = t.assign(|| Ok(clock.fetch_add(1, Ordering::SeqCst) + 1)).unwrap();
                        t.apply(ts, one_write(ts), &*recorder).unwrap();
                        assert!(t.watermark() >= ts, "acknowledged below the watermark");
                        let applied = recorder.applied.lock().unwrap();
                        assert!(applied.contains(&ts), "acknowledged before its write");
                        let below = applied.iter().filter(|&&a| a <= ts).count() as u64;
                        assert_eq!(below, ts, "an earlier commit is not applied yet");
                        drop(applied);
                        mine.push(ts);
                    }
                    mine
                })
            })
            .collect();
        for thread in threads {
            let mine = thread.join().unwrap();
            assert!(mine.windows(2).all(|w| w[0] < w[1]));
        }
        let total = THREADS * COMMITS;
        assert_eq!(t.watermark(), total);
        let mut logged = recorder.logged.lock().unwrap().clone();
        logged.sort_unstable();
        assert_eq!(logged, (1..=total).collect::<Vec<_>>(), "each batch written exactly once");
        let groups = recorder.groups.load(Ordering::SeqCst);
        assert!(groups < total / 2, "{groups} groups for {total} commits: little sharing");
        let leaders = recorder.leaders.lock().unwrap();
        let repeats = leaders.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(repeats > 0, "no leader went on with the next group itself");
    }

    /// A commit assigned early but queued late holds back the acknowledgement
    /// of later commits that were written first.
    #[test]
    fn a_commit_written_early_waits_for_an_older_one_still_unqueued() {
        let t = Arc::new(CommitTracker::new(0));
        let recorder = Arc::new(Recorder { tracker: Some(t.clone()), ..Recorder::default() });
        let old = t.assign(|| Ok(1)).unwrap();
        let young = t.assign(|| Ok(2)).unwrap();
        let committer = {
            let (t, recorder) = (t.clone(), recorder.clone());
            std::thread::spawn(move || t.apply(young, one_write(young), &*recorder))
        };
        while recorder.applied.lock().unwrap().is_empty() {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!committer.is_finished(), "acknowledged before commit 1 applied");
        assert_eq!(t.watermark(), 0);
        t.apply(old, one_write(old), &*recorder).unwrap();
        committer.join().unwrap().unwrap();
        assert_eq!(t.watermark(), 2);
    }

    /// Every member of a failed group gets the error, its timestamps still
    /// finish, and later groups proceed.
    #[test]
    fn a_failed_group_fails_each_member_and_releases_its_timestamps() {
        let t = Arc::new(CommitTracker::new(0));
        let recorder = Arc::new(Recorder {
            tracker: Some(t.clone()),
            fail_group: Some(0),
            ..Recorder::default()
        });
        let first = t.assign(|| Ok(1)).unwrap();
        let err = t.apply(first, one_write(first), &*recorder).unwrap_err();
        assert!(err.to_string().contains("group 0 failed"), "{err}");
        assert_eq!(t.watermark(), 1, "a failed commit must not stop snapshots");
        let second = t.assign(|| Ok(2)).unwrap();
        t.apply(second, one_write(second), &*recorder).unwrap();
        assert_eq!(t.watermark(), 2);
    }

    #[test]
    fn a_panicking_group_writer_fails_its_members_and_later_commits_go_on() {
        let t = Arc::new(CommitTracker::new(0));
        let recorder = Arc::new(Recorder {
            tracker: Some(t.clone()),
            panic_group: Some(0),
            ..Recorder::default()
        });
        let first = t.assign(|| Ok(1)).unwrap();
        let err = t.apply(first, one_write(first), &*recorder).unwrap_err();
        assert!(err.to_string().contains("group 0 panicked"), "{err}");
        assert_eq!(t.watermark(), 1, "a failed commit must not stop snapshots");
        let second = t.assign(|| Ok(2)).unwrap();
        t.apply(second, one_write(second), &*recorder).unwrap();
        assert_eq!(t.watermark(), 2);
    }
}
