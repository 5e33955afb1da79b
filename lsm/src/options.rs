//! Engine configuration.

use std::time::Duration;

use crate::error::{Error, Result};

/// How durable a write must be before `write` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// The WAL is fsynced (shared with concurrent writers) before returning:
    /// the write survives power loss.
    #[default]
    Sync,
    /// The WAL record is written to the operating system before returning and
    /// fsynced within `Options::buffered_sync_interval`: the write survives a
    /// process crash, but power loss may lose writes of the last interval.
    Buffered,
    /// No WAL record at all (RocksDB's `disableWAL`): the write lives in the
    /// memtable until it is flushed, and a crash before that loses it. Only
    /// for callers that keep their own log and rebuild the engine from it
    /// (a Raft replica's engine); recovery of a WAL that mixes these writes
    /// with logged ones would see the logged ones only.
    Unlogged,
}

/// Options for [`crate::Db::open`]. The defaults mirror RocksDB's where the
/// concepts match, so benchmarks compare like with like.
#[derive(Clone, Debug)]
pub struct Options {
    pub create_if_missing: bool,
    /// A memtable is frozen and flushed when it reaches this size.
    pub memtable_size_bytes: usize,
    /// Frozen memtables waiting for flush before writes stall.
    pub max_immutable_memtables: usize,
    pub block_size_bytes: usize,
    pub bloom_bits_per_key: usize,
    /// Compaction outputs are cut near this size (never inside one key's versions).
    pub target_file_size_bytes: u64,
    pub l0_compaction_trigger: usize,
    /// Level-0 file count at which writes are rate-limited.
    pub l0_slowdown_files: usize,
    /// Level-0 file count at which memtable rotation (so eventually writes) stops.
    pub l0_stop_files: usize,
    pub level1_size_bytes: u64,
    pub level_size_multiplier: u64,
    pub num_levels: usize,
    /// Write rate while slowed down by level 0.
    pub slowdown_rate_bytes_per_sec: u64,
    /// Compaction write bandwidth cap; `None` for none.
    pub compaction_rate_bytes_per_sec: Option<u64>,
    /// Whether compactions run in the background (tests turn it off to
    /// control compaction themselves through `Db::compact`).
    pub background_compaction: bool,
    /// A write waiting this long for background work fails with `WriteStall`.
    pub max_stall: Duration,
    /// How often buffered writes are fsynced.
    pub buffered_sync_interval: Duration,
    /// WAL preallocation; `None` for the memtable size plus an eighth.
    pub wal_preallocate_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            memtable_size_bytes: 64 << 20,
            max_immutable_memtables: 1,
            block_size_bytes: 4096,
            bloom_bits_per_key: 10,
            target_file_size_bytes: 64 << 20,
            l0_compaction_trigger: 4,
            l0_slowdown_files: 20,
            l0_stop_files: 36,
            level1_size_bytes: 256 << 20,
            level_size_multiplier: 10,
            num_levels: 7,
            slowdown_rate_bytes_per_sec: 16 << 20,
            compaction_rate_bytes_per_sec: None,
            background_compaction: true,
            max_stall: Duration::from_secs(60),
            buffered_sync_interval: Duration::from_millis(100),
            wal_preallocate_bytes: None,
        }
    }
}

impl Options {
    /// Small sizes for tests: many flushes and compactions with little data.
    pub fn small_for_tests() -> Options {
        Options {
            memtable_size_bytes: 32 << 10,
            block_size_bytes: 512,
            target_file_size_bytes: 32 << 10,
            level1_size_bytes: 128 << 10,
            l0_compaction_trigger: 2,
            wal_preallocate_bytes: Some(64 << 10),
            ..Options::default()
        }
    }

    pub(crate) fn wal_preallocation(&self) -> u64 {
        self.wal_preallocate_bytes.unwrap_or(self.memtable_size_bytes as u64 * 9 / 8)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidArgument(what.to_string()));
        if self.memtable_size_bytes < 1024 {
            return bad("memtable_size_bytes must be at least 1024");
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables must be at least 1");
        }
        if self.block_size_bytes < 64 {
            return bad("block_size_bytes must be at least 64");
        }
        if self.num_levels < 2 {
            return bad("num_levels must be at least 2");
        }
        if self.l0_compaction_trigger == 0
            || self.l0_slowdown_files < self.l0_compaction_trigger
            || self.l0_stop_files < self.l0_slowdown_files
        {
            return bad("need 0 < l0_compaction_trigger <= l0_slowdown_files <= l0_stop_files");
        }
        if self.level_size_multiplier < 2 || self.level1_size_bytes == 0 {
            return bad("level sizes must grow: level_size_multiplier >= 2, level1_size_bytes > 0");
        }
        if self.slowdown_rate_bytes_per_sec == 0 || self.compaction_rate_bytes_per_sec == Some(0) {
            return bad("rates must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_options_are_valid() {
        Options::default().validate().unwrap();
        Options::small_for_tests().validate().unwrap();
    }

    #[test]
    fn nonsense_is_rejected_with_a_reason() {
        let o = Options { l0_stop_files: 1, ..Options::default() };
        let err = o.validate().unwrap_err().to_string();
        assert!(err.contains("l0_stop_files"), "{err}");
        assert!(Options { memtable_size_bytes: 0, ..Options::default() }.validate().is_err());
    }
}
