//! The storage-engine interface benchmark drivers are written against.
//!
//! [`Engine`] is the plain key-value subset both Strata and RocksDB offer:
//! atomic batches of puts, point reads of the newest value, and forward scans
//! from a key. Strata is versioned and RocksDB is not, so [`StrataEngine`]
//! hides the versions: every batch is written at a fresh timestamp from an
//! increasing counter, reads happen at [`MAX_TS`], and the GC watermark follows
//! the counter so compaction drops overwritten versions, as RocksDB does. Both
//! engines then hold one live version per key and do comparable work.
//!
//! [`EngineKind::open`] creates either with the same configuration
//! ([`EngineConfig`]); RocksDB is only there when the crate is built with the
//! `rocksdb` feature ([`ROCKSDB_AVAILABLE`]).

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use strata_lsm::{Db, Durability, KeyRange, MAX_TS, Scan, Timestamp, WriteBatch};

/// Whether this build includes the RocksDB engine (the `rocksdb` feature).
pub const ROCKSDB_AVAILABLE: bool = cfg!(feature = "rocksdb");

/// Settings applied alike to every engine. Everything else is the engine's
/// default; RocksDB's are set to match Strata's (see the RocksDB engine).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub memtable_size_bytes: usize,
    /// Whether each write waits for its WAL record to be fsynced. When false
    /// the WAL is still written (to the OS) before a write returns.
    pub sync: bool,
}

/// Key-value pairs for one atomic write, stored back to back so a driver can
/// refill one batch without allocating.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    /// Per entry: where its key starts, where its value starts (the key's
    /// end), and where its value ends.
    entries: Vec<(usize, usize, usize)>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }

    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(key);
        let value_start = self.data.len();
        self.data.extend_from_slice(value);
        self.entries.push((start, value_start, self.data.len()));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Key and value bytes in the batch.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|&(k, v, end)| (&self.data[k..v], &self.data[v..end]))
    }
}

/// Cumulative byte counters behind write amplification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounters {
    /// Key and value bytes written by callers, as the engine counts them.
    pub user_bytes: u64,
    /// Bytes written to tables by flushes and compactions (WAL excluded).
    pub table_bytes: u64,
}

impl WriteCounters {
    /// Table bytes per user byte written between `before` and `self`, the
    /// measure RocksDB reports as W-Amp; `None` if nothing was written.
    pub fn amplification_since(&self, before: &WriteCounters) -> Option<f64> {
        let user = self.user_bytes.checked_sub(before.user_bytes)?;
        let table = self.table_bytes.saturating_sub(before.table_bytes);
        (user > 0).then(|| table as f64 / user as f64)
    }
}

/// A forward scan, borrowing each entry until the next call.
pub trait EngineScan {
    /// The next `(key, value)`, or `None` at the end of the database.
    fn next_entry(&mut self) -> Result<Option<(&[u8], &[u8])>>;
}

/// A key-value store under benchmark.
///
/// Contract: implementations are safe to share between threads (reads
/// concurrent with each other and with writes). A successful `write` is
/// visible to every later `get` and `scan` on any thread, and makes each of
/// its keys' values the newest. `flush` returns once everything written
/// before it is in tables, so write counters then include it.
pub trait Engine: Send + Sync {
    /// A short lowercase name for reports: `strata` or `rocksdb`.
    fn name(&self) -> &'static str;

    /// Applies every put in `batch` atomically.
    fn write(&self, batch: &Batch) -> Result<()>;

    /// Copies the newest value of `key` into `value`; false if there is none.
    fn get(&self, key: &[u8], value: &mut Vec<u8>) -> Result<bool>;

    /// Scans forward from the first key at or after `start` (from the first
    /// key of all when `None`).
    fn scan(&self, start: Option<&[u8]>) -> Result<Box<dyn EngineScan + '_>>;

    /// Writes every memtable to a table and waits until that is done.
    fn flush(&self) -> Result<()>;

    fn write_counters(&self) -> WriteCounters;

    /// One line describing the engine's state (shape of the tree, stalls).
    fn summary(&self) -> String;
}

/// The engines a driver can open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Strata,
    RocksDb,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Strata => "strata",
            EngineKind::RocksDb => "rocksdb",
        }
    }

    /// Opens (creating if missing) the engine's database in `path`.
    pub fn open(self, path: &Path, config: &EngineConfig) -> Result<Box<dyn Engine>> {
        match self {
            EngineKind::Strata => Ok(Box::new(StrataEngine::open(path, config)?)),
            #[cfg(feature = "rocksdb")]
            EngineKind::RocksDb => Ok(Box::new(rocks::RocksDbEngine::open(path, config)?)),
            #[cfg(not(feature = "rocksdb"))]
            EngineKind::RocksDb => anyhow::bail!(
                "this build has no RocksDB engine: build with `--features rocksdb` \
                 (benches/run-lsm-bench.sh installs its build dependencies and does so)"
            ),
        }
    }
}

/// Timestamps between GC watermark updates.
const GC_INTERVAL: Timestamp = 10_000;

/// Strata behind the [`Engine`] interface: unversioned on the outside.
///
/// Each batch is written at its own timestamp, taken from a counter. The
/// counter starts at the wall clock in nanoseconds, which is above every
/// timestamp an earlier run wrote (a run writes fewer versions than
/// nanoseconds pass), so reopening a database keeps newest-wins.
///
/// Every 10,000 timestamps (`GC_INTERVAL`) the writer that crosses the boundary
/// raises the GC watermark to one interval below its own timestamp. `Db`
/// requires that no version is written at or below a watermark once set; the
/// lag of one interval keeps that true for concurrent writers unless one is
/// overtaken by 10,000 others between taking its timestamp and writing.
#[derive(Debug)]
pub struct StrataEngine {
    db: Db,
    durability: Durability,
    next_ts: AtomicU64,
}

impl StrataEngine {
    /// Opens with Strata's default options apart from [`EngineConfig`].
    pub fn open(path: &Path, config: &EngineConfig) -> Result<StrataEngine> {
        let options = strata_lsm::Options {
            memtable_size_bytes: config.memtable_size_bytes,
            ..strata_lsm::Options::default()
        };
        let db = Db::open(path, options)
            .with_context(|| format!("opening Strata in {}", path.display()))?;
        let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let first_ts = u64::try_from(now_ns)?.max(db.gc_watermark() + 1);
        let durability = if config.sync { Durability::Sync } else { Durability::Buffered };
        Ok(StrataEngine { db, durability, next_ts: AtomicU64::new(first_ts) })
    }

    /// The database, for statistics a driver wants beyond [`Engine`].
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl EngineScan for Scan {
    fn next_entry(&mut self) -> Result<Option<(&[u8], &[u8])>> {
        Ok(Scan::next_entry(self)?)
    }
}

impl Engine for StrataEngine {
    fn name(&self) -> &'static str {
        "strata"
    }

    fn write(&self, batch: &Batch) -> Result<()> {
        let ts = self.next_ts.fetch_add(1, Ordering::Relaxed);
        let mut versions = WriteBatch::new();
        for (key, value) in batch.iter() {
            versions.put(key, ts, value);
        }
        self.db.write(&versions, self.durability)?;
        if ts.is_multiple_of(GC_INTERVAL) {
            self.db.set_gc_watermark(ts.saturating_sub(GC_INTERVAL));
        }
        Ok(())
    }

    fn get(&self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        match self.db.get(key, MAX_TS)? {
            Some(found) => {
                *value = found;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&self, start: Option<&[u8]>) -> Result<Box<dyn EngineScan + '_>> {
        let range = match start {
            Some(key) => KeyRange::new(Bound::Included(key), Bound::Unbounded),
            None => KeyRange::all(),
        };
        Ok(Box::new(self.db.scan(range, MAX_TS, false)?))
    }

    fn flush(&self) -> Result<()> {
        Ok(self.db.flush()?)
    }

    fn write_counters(&self) -> WriteCounters {
        let s = self.db.stats();
        WriteCounters {
            user_bytes: s.user_bytes_written,
            table_bytes: s.flush_bytes_written + s.compaction_bytes_written,
        }
    }

    fn summary(&self) -> String {
        let s = self.db.stats();
        let levels: Vec<String> = s
            .levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.files > 0)
            .map(|(n, l)| format!("L{n} {} files {:.1} MiB", l.files, mib(l.bytes)))
            .collect();
        format!(
            "levels [{}], memtables {:.1} MiB, flushes {}, compactions {} \
             ({:.1} MiB read, {:.1} MiB written), versions dropped {}, \
             stalls {} ({} ms), slowdown {} ms, bloom useful {} false-positive {}",
            levels.join(", "),
            mib(s.memtable_bytes),
            s.flushes,
            s.compactions,
            mib(s.compaction_bytes_read),
            mib(s.compaction_bytes_written),
            s.versions_dropped,
            s.stalls,
            s.stall_micros / 1000,
            s.slowdown_micros / 1000,
            s.bloom_useful,
            s.bloom_false_positive,
        )
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(feature = "rocksdb")]
mod rocks {
    //! RocksDB configured like Strata's defaults (`strata_lsm::Options`).

    use std::path::Path;

    use anyhow::{Context, Result};
    use rocksdb::statistics::Ticker;
    use rocksdb::{
        BlockBasedOptions, DB, DBCompressionType, DBRawIterator, Options, ReadOptions, WriteBatch,
        WriteOptions, properties,
    };

    use super::{Batch, Engine, EngineConfig, EngineScan, WriteCounters, mib};

    pub struct RocksDbEngine {
        // Dropped first: the database before the options it was opened with.
        db: DB,
        /// The options the database was opened with; they own its statistics.
        options: Options,
        write_options: WriteOptions,
        read_options: ReadOptions,
    }

    impl std::fmt::Debug for RocksDbEngine {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RocksDbEngine").field("path", &self.db.path()).finish()
        }
    }

    impl RocksDbEngine {
        pub fn open(path: &Path, config: &EngineConfig) -> Result<RocksDbEngine> {
            let defaults = strata_lsm::Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_size(defaults.block_size_bytes);
            table.set_bloom_filter(defaults.bloom_bits_per_key as f64, false); // full filters

            let mut options = Options::default();
            options.create_if_missing(true);
            options.set_block_based_table_factory(&table);
            options.set_compression_type(DBCompressionType::None);
            options.set_write_buffer_size(config.memtable_size_bytes);
            // The active memtable plus `max_immutable_memtables` frozen ones.
            options.set_max_write_buffer_number(1 + defaults.max_immutable_memtables as i32);
            options
                .set_level_zero_file_num_compaction_trigger(defaults.l0_compaction_trigger as i32);
            options.set_level_zero_slowdown_writes_trigger(defaults.l0_slowdown_files as i32);
            options.set_level_zero_stop_writes_trigger(defaults.l0_stop_files as i32);
            // Strata sizes levels statically from level 1 up; RocksDB's default
            // (since 8.4) sizes them from the bottom up.
            options.set_level_compaction_dynamic_level_bytes(false);
            options.set_max_bytes_for_level_base(defaults.level1_size_bytes);
            options.set_max_bytes_for_level_multiplier(defaults.level_size_multiplier as f64);
            options.set_num_levels(defaults.num_levels as i32);
            options.set_target_file_size_base(defaults.target_file_size_bytes);
            options.set_max_background_jobs(2); // Strata: one flush and one compaction thread
            options.enable_statistics();

            let db = DB::open(&options, path)
                .with_context(|| format!("opening RocksDB in {}", path.display()))?;
            let mut write_options = WriteOptions::default();
            write_options.set_sync(config.sync);
            Ok(RocksDbEngine { db, options, write_options, read_options: ReadOptions::default() })
        }
    }

    /// Adapts RocksDB's positioned iterator (seek, then valid/key/next) to
    /// [`EngineScan`]'s "advance, then return" shape.
    struct RocksScan<'a> {
        iter: DBRawIterator<'a>,
        /// Whether the iterator sits on an entry already returned.
        returned: bool,
    }

    impl EngineScan for RocksScan<'_> {
        fn next_entry(&mut self) -> Result<Option<(&[u8], &[u8])>> {
            if self.returned {
                self.iter.next();
            }
            self.returned = true;
            match self.iter.item() {
                Some(entry) => Ok(Some(entry)),
                None => {
                    self.iter.status()?;
                    Ok(None)
                }
            }
        }
    }

    impl Engine for RocksDbEngine {
        fn name(&self) -> &'static str {
            "rocksdb"
        }

        fn write(&self, batch: &Batch) -> Result<()> {
            let mut rocks_batch = WriteBatch::default();
            for (key, value) in batch.iter() {
                rocks_batch.put(key, value);
            }
            Ok(self.db.write_opt(rocks_batch, &self.write_options)?)
        }

        fn get(&self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
            match self.db.get_pinned_opt(key, &self.read_options)? {
                Some(found) => {
                    value.clear();
                    value.extend_from_slice(&found);
                    Ok(true)
                }
                None => Ok(false),
            }
        }

        fn scan(&self, start: Option<&[u8]>) -> Result<Box<dyn EngineScan + '_>> {
            let mut iter = self.db.raw_iterator();
            match start {
                Some(key) => iter.seek(key),
                None => iter.seek_to_first(),
            }
            Ok(Box::new(RocksScan { iter, returned: false }))
        }

        fn flush(&self) -> Result<()> {
            Ok(self.db.flush()?)
        }

        fn write_counters(&self) -> WriteCounters {
            let ticker = |t| self.options.get_ticker_count(t);
            WriteCounters {
                user_bytes: ticker(Ticker::BytesWritten),
                table_bytes: ticker(Ticker::FlushWriteBytes) + ticker(Ticker::CompactWriteBytes),
            }
        }

        fn summary(&self) -> String {
            let files: Vec<String> = (0..strata_lsm::Options::default().num_levels)
                .filter_map(|n| {
                    let files = self.db.property_int_value(properties::num_files_at_level(n));
                    match files {
                        Ok(Some(f)) if f > 0 => Some(format!("L{n} {f} files")),
                        _ => None,
                    }
                })
                .collect();
            let sst_bytes = self
                .db
                .property_int_value(properties::TOTAL_SST_FILES_SIZE)
                .ok()
                .flatten()
                .unwrap_or(0);
            format!(
                "levels [{}], tables {:.1} MiB, compactions wrote {:.1} MiB, stalls {} ms",
                files.join(", "),
                mib(sst_bytes),
                mib(self.options.get_ticker_count(Ticker::CompactWriteBytes)),
                self.options.get_ticker_count(Ticker::StallMicros) / 1000,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_pairs_apart() {
        let mut b = Batch::new();
        b.push(b"k1", b"value one");
        b.push(b"key2", b"");
        let pairs: Vec<_> = b.iter().collect();
        assert_eq!(pairs, [(&b"k1"[..], &b"value one"[..]), (&b"key2"[..], &b""[..])]);
        assert_eq!((b.len(), b.size_bytes()), (2, 15));
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn write_amplification_is_a_ratio_of_deltas() {
        let before = WriteCounters { user_bytes: 100, table_bytes: 150 };
        let after = WriteCounters { user_bytes: 300, table_bytes: 650 };
        assert_eq!(after.amplification_since(&before), Some(2.5));
        assert_eq!(after.amplification_since(&after), None, "nothing written");
    }

    #[test]
    fn strata_engine_reads_its_writes_newest_first_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig { memtable_size_bytes: 1 << 20, sync: false };
        let mut value = Vec::new();
        {
            let engine = StrataEngine::open(dir.path(), &config).unwrap();
            let mut b = Batch::new();
            for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
                b.push(k.as_bytes(), v.as_bytes());
            }
            engine.write(&b).unwrap();
            b.clear();
            b.push(b"b", b"two");
            engine.write(&b).unwrap();
            engine.flush().unwrap();
            assert!(engine.get(b"b", &mut value).unwrap());
            assert_eq!(value, b"two");
            assert!(engine.write_counters().table_bytes > 0);
        }
        let engine = StrataEngine::open(dir.path(), &config).unwrap();
        let mut b = Batch::new();
        b.push(b"a", b"one");
        engine.write(&b).unwrap();
        assert!(engine.get(b"a", &mut value).unwrap());
        assert_eq!(value, b"one", "a write after reopening is the newest");
        assert!(!engine.get(b"z", &mut value).unwrap());

        let mut scan = engine.scan(Some(b"b")).unwrap();
        let mut seen = Vec::new();
        while let Some((k, v)) = scan.next_entry().unwrap() {
            seen.push(format!("{}={}", String::from_utf8_lossy(k), String::from_utf8_lossy(v)));
        }
        assert_eq!(seen, ["b=two", "c=3"]);
    }
}
