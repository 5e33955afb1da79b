//! Engine statistics: counters updated with relaxed atomics on the hot paths,
//! read as a [`StatsSnapshot`].

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::error::StallReason;

#[derive(Debug, Default)]
pub struct Stats {
    pub batches_written: AtomicU64,
    pub user_bytes_written: AtomicU64,
    pub wal_bytes_written: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_bytes_written: AtomicU64,
    pub compactions: AtomicU64,
    pub trivial_moves: AtomicU64,
    pub compaction_bytes_read: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub versions_dropped: AtomicU64,
    pub tombstones_dropped: AtomicU64,
    pub wal_records_recovered: AtomicU64,
    pub wal_torn_tails: AtomicU64,
    pub stalls: AtomicU64,
    pub stall_micros: AtomicU64,
    pub slowdown_micros: AtomicU64,
    pub bloom_useful: AtomicU64,
    pub bloom_true_positive: AtomicU64,
    pub bloom_false_positive: AtomicU64,
    /// The stall in force now: 0 none, else `StallReason` as 1 + index.
    pub current_stall: AtomicU8,
    pub last_stall: AtomicU8,
}

fn encode_reason(r: Option<StallReason>) -> u8 {
    match r {
        None => 0,
        Some(StallReason::MemtableLimit) => 1,
        Some(StallReason::L0Stop) => 2,
        Some(StallReason::L0Slowdown) => 3,
    }
}

fn decode_reason(v: u8) -> Option<StallReason> {
    match v {
        1 => Some(StallReason::MemtableLimit),
        2 => Some(StallReason::L0Stop),
        3 => Some(StallReason::L0Slowdown),
        _ => None,
    }
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_stall(&self, reason: Option<StallReason>) {
        self.current_stall.store(encode_reason(reason), Ordering::Relaxed);
        if reason.is_some() {
            self.last_stall.store(encode_reason(reason), Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            batches_written: g(&self.batches_written),
            user_bytes_written: g(&self.user_bytes_written),
            wal_bytes_written: g(&self.wal_bytes_written),
            wal_syncs: g(&self.wal_syncs),
            flushes: g(&self.flushes),
            flush_bytes_written: g(&self.flush_bytes_written),
            compactions: g(&self.compactions),
            trivial_moves: g(&self.trivial_moves),
            compaction_bytes_read: g(&self.compaction_bytes_read),
            compaction_bytes_written: g(&self.compaction_bytes_written),
            versions_dropped: g(&self.versions_dropped),
            tombstones_dropped: g(&self.tombstones_dropped),
            wal_records_recovered: g(&self.wal_records_recovered),
            wal_torn_tails: g(&self.wal_torn_tails),
            stalls: g(&self.stalls),
            stall_micros: g(&self.stall_micros),
            slowdown_micros: g(&self.slowdown_micros),
            bloom_useful: g(&self.bloom_useful),
            bloom_true_positive: g(&self.bloom_true_positive),
            bloom_false_positive: g(&self.bloom_false_positive),
            stall_reason: decode_reason(self.current_stall.load(Ordering::Relaxed)),
            last_stall_reason: decode_reason(self.last_stall.load(Ordering::Relaxed)),
            levels: Vec::new(),
            memtable_bytes: 0,
            immutable_memtables: 0,
            gc_watermark: 0,
        }
    }
}

/// Files and bytes in one level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelStats {
    pub files: usize,
    pub bytes: u64,
}

/// A point-in-time copy of the engine's statistics.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    /// Write batches accepted.
    pub batches_written: u64,
    /// Key and value bytes written by callers.
    pub user_bytes_written: u64,
    pub wal_bytes_written: u64,
    /// fsyncs of the WAL (fewer than sync batches thanks to group commit).
    pub wal_syncs: u64,
    pub flushes: u64,
    pub flush_bytes_written: u64,
    pub compactions: u64,
    /// Compactions done by re-assigning tables to the next level, without I/O.
    pub trivial_moves: u64,
    pub compaction_bytes_read: u64,
    pub compaction_bytes_written: u64,
    /// Versions removed by garbage collection during compaction.
    pub versions_dropped: u64,
    /// Tombstones removed at the bottom level.
    pub tombstones_dropped: u64,
    /// WAL records replayed by the last open.
    pub wal_records_recovered: u64,
    /// WAL files whose torn tail (an interrupted, unacknowledged append) the
    /// last open discarded.
    pub wal_torn_tails: u64,
    /// Times a write had to wait for background work.
    pub stalls: u64,
    pub stall_micros: u64,
    /// Time writes spent rate-limited because level 0 is large.
    pub slowdown_micros: u64,
    /// Point lookups a bloom filter answered without reading a block.
    pub bloom_useful: u64,
    pub bloom_true_positive: u64,
    pub bloom_false_positive: u64,
    /// Why writes are waiting right now, if they are.
    pub stall_reason: Option<StallReason>,
    pub last_stall_reason: Option<StallReason>,
    pub levels: Vec<LevelStats>,
    pub memtable_bytes: u64,
    pub immutable_memtables: usize,
    pub gc_watermark: u64,
}

impl StatsSnapshot {
    /// Bytes written to tables (flush plus compaction) per byte written by
    /// callers, the measure RocksDB reports as W-Amp. The WAL is not counted.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.flush_bytes_written + self.compaction_bytes_written) as f64
            / self.user_bytes_written as f64
    }
}
