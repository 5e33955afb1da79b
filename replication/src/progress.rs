//! The leader's view of each follower's log (after etcd-raft's `Progress`).
//!
//! - `Probe`: the leader does not know where the follower's log matches; it
//!   sends one `Append` at a time and waits for the answer (Raft §5.3's
//!   consistency check, stepping back on rejection).
//! - `Replicate`: the logs match through `match_index`; the leader streams
//!   batches optimistically (pipelining), advancing `next_index` as it sends,
//!   with at most `max_inflight_entries` sent but unacknowledged.
//! - `Snapshot`: the entries the follower needs are compacted away; a
//!   snapshot at `index` is on its way and nothing else is sent until it is
//!   acknowledged (or stalls and the leader probes again).
//!
//! Invariant: `match_index < next_index`.

use crate::types::Index;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    Probe,
    Replicate,
    Snapshot { index: Index },
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub match_index: Index,
    pub next_index: Index,
    pub state: ProgressState,
    /// In `Probe`: an `Append` is outstanding.
    pub probe_sent: bool,
    /// Heard from since the last check-quorum period.
    pub recent_active: bool,
    /// Highest heartbeat round the follower acknowledged in this term.
    pub acked_round: u64,
    /// Leader tick at which `match_index` last advanced or the state changed:
    /// a pipeline with entries outstanding and no progress for a while has
    /// lost a message and is probed again.
    pub progress_tick: u64,
    /// The commit index the last `Append` sent to it carried: an `Append`
    /// with no new entries is worth sending only to move it.
    pub commit_sent: Index,
}

impl Progress {
    pub fn new(next_index: Index, tick: u64) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            acked_round: 0,
            progress_tick: tick,
            commit_sent: 0,
        }
    }

    /// Entries sent but not acknowledged.
    pub fn inflight(&self) -> u64 {
        self.next_index - self.match_index - 1
    }

    /// Whether the leader must not send entries now.
    pub fn is_paused(&self, max_inflight: u64) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight() >= max_inflight,
            ProgressState::Snapshot { .. } => true,
        }
    }

    pub fn become_probe(&mut self, tick: u64) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.progress_tick = tick;
    }

    pub fn become_replicate(&mut self, tick: u64) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.progress_tick = tick;
    }

    /// The follower's log matches through `index`. Returns whether that is news.
    pub fn maybe_update(&mut self, index: Index, tick: u64) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
            self.progress_tick = tick;
        }
        self.next_index = self.next_index.max(index + 1);
        updated
    }

    /// The follower rejected an `Append` whose `prev_index` was `rejected`;
    /// `probe` is where the logs may match. Returns false for a stale rejection.
    pub fn maybe_decrease_to(&mut self, rejected: Index, probe: Index, tick: u64) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                self.become_probe(tick);
                true
            }
            ProgressState::Probe => {
                if self.next_index - 1 != rejected {
                    return false;
                }
                self.next_index = rejected.min(probe + 1).max(self.match_index + 1);
                self.probe_sent = false;
                true
            }
            ProgressState::Snapshot { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_steps_back_and_ignores_stale_rejections() {
        let mut p = Progress::new(11, 0);
        p.probe_sent = true;
        assert!(p.is_paused(8));
        assert!(!p.maybe_decrease_to(7, 3, 1), "not the outstanding probe");
        assert!(p.maybe_decrease_to(10, 4, 1));
        assert_eq!((p.next_index, p.probe_sent), (5, false));
        assert!(p.maybe_update(4, 2));
        p.become_replicate(2);
        assert_eq!(p.next_index, 5);
        p.next_index = 13; // eight entries in flight
        assert!(p.is_paused(8));
        assert!(!p.maybe_decrease_to(3, 0, 3), "at or below match: stale");
        assert!(p.maybe_decrease_to(6, 0, 3));
        assert_eq!((p.state, p.next_index), (ProgressState::Probe, 5));
    }
}
