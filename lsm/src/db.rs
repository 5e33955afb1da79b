//! [`Db`]: the engine. Write path, read path, recovery and background work.
//!
//! ## Write path
//! A [`WriteBatch`] is appended to the active memtable's WAL, fsynced if the
//! durability asks for it (group commit, see [`crate::wal`]), then inserted
//! into that memtable. [`Db::write_group`] does the same for several batches
//! with one WAL write and one fsync (the transaction layer's write groups),
//! and tells its caller when the group is written and when it is durable, so
//! that the next group's WAL write and fsync can overlap this one's fsync
//! and memtable inserts. A full memtable is
//! frozen and replaced by a new one with a new WAL; the flush thread writes
//! frozen memtables to level-0 tables, records them in the manifest, and
//! deletes their WALs. The compaction thread keeps the levels within their
//! targets.
//!
//! ## Read path
//! Readers clone the current [`SuperVersion`] (memtables plus table set) and
//! never block writers or background work. A point read consults sources
//! newest first and stops early when a source's timestamp range cannot beat
//! what it found; a scan merges cursors over every source.
//!
//! ## Backpressure
//! With level 0 at `l0_slowdown_files`, writes are rate-limited; when the
//! memtable is full and either `max_immutable_memtables` wait for flush or
//! level 0 holds `l0_stop_files`, writes wait (up to `max_stall`, then fail
//! with [`Error::WriteStall`]). Memory stays near
//! `(1 + max_immutable_memtables) * memtable_size_bytes`.
//!
//! ## Failure
//! A failed WAL write or fsync, or a failed flush or compaction, poisons the
//! engine: further writes fail with [`Error::PreviousIo`] until it is reopened,
//! because the OS page cache can no longer be trusted. Reads keep working.
//!
//! ## Recovery
//! `open` replays the manifest, opens every table (verifying footers and
//! metadata), replays the WALs not yet flushed, flushes what they held into a
//! level-0 table, writes a fresh manifest, and deletes files nothing refers to.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::batch::{self, WriteBatch};
use crate::bloom;
use crate::compaction::{self, GcFilter, GcRules, OutputSink, Verdict};
use crate::error::{Error, Result, StallReason};
use crate::fs::{self, DirLock, FileKind};
use crate::iter::{Cursor, KeyRange, MergeCursor, Scan, seek_for};
use crate::key::{Timestamp, Value, ValueRef};
use crate::manifest::{self, Manifest, ManifestState, VersionEdit};
use crate::memtable::MemTable;
use crate::options::{Durability, Options};
use crate::stats::{LevelStats, Stats, StatsSnapshot};
use crate::table::{LevelCursor, Table, TableBuilder, TableMeta};
use crate::version::{self, CompactionPolicy, CompactionTask, Version};
use crate::wal::{self, Wal};

/// How far a write group has got ([`Db::write_group`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStage {
    /// Written to the OS, after every earlier group in the WAL.
    Written,
    /// Durable (as the write's durability asks); not yet in the memtable.
    Durable,
}

/// What readers see: the memtables and the table set, swapped as a whole.
#[derive(Debug)]
struct SuperVersion {
    active: Arc<MemTable>,
    /// Frozen memtables waiting for flush, newest first.
    immutables: Vec<Arc<MemTable>>,
    version: Arc<Version>,
}

/// Coordination between writers and background threads.
#[derive(Debug, Default)]
struct Control {
    shutdown: bool,
    compacting: bool,
    /// Round-robin compaction pointers, per level.
    pointers: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    opts: Options,
    policy: CompactionPolicy,
    current: RwLock<Arc<SuperVersion>>,
    /// Serialises version changes; held across the manifest fsync by design,
    /// so edits reach the manifest in the order they take effect.
    manifest: Mutex<Manifest>,
    ctl: Mutex<Control>,
    /// Signalled whenever memtables, the version, or `Control` change.
    cv: Condvar,
    next_file: AtomicU64,
    watermark: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<String>,
    /// When the next rate-limited write may proceed.
    throttle: Mutex<Instant>,
    stats: Stats,
    _lock: DirLock,
}

/// A versioned LSM-tree key-value store. Cheap to share across threads by
/// reference; dropping it stops background work and syncs the WAL.
#[derive(Debug)]
pub struct Db {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Db {
    /// Opens (recovering) or creates the database in `path`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        let dir = path.as_ref().to_path_buf();
        if !dir.exists() {
            if !opts.create_if_missing {
                return Err(Error::InvalidArgument(format!("{} does not exist", dir.display())));
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let dir_lock = DirLock::acquire(&dir)?;
        let inner = Arc::new(recover(dir, opts, dir_lock)?);
        let mut workers = Vec::new();
        let spawn = |name: &str, f: fn(&Inner)| {
            let worker = inner.clone();
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || f(&worker))
                .map_err(|e| Error::io(&inner.dir, e))
        };
        workers.push(spawn("strata-flush", Inner::flush_loop)?);
        workers.push(spawn("strata-compact", Inner::compaction_loop)?);
        workers.push(spawn("strata-wal-sync", Inner::sync_loop)?);
        Ok(Db { inner, workers })
    }

    /// Applies `batch` atomically with the given durability. Concurrent
    /// synced writes share fsyncs (the WAL's own group commit).
    pub fn write(&self, batch: &WriteBatch, durability: Durability) -> Result<()> {
        self.inner.write(std::slice::from_ref(batch), durability, None)
    }

    /// Applies a write group: each batch atomically (one WAL record each),
    /// all of them with one WAL write and, for [`Durability::Sync`], one
    /// fsync of its own, then inserts them into the memtable. `progress` is
    /// told when the group is written to the OS ([`GroupStage::Written`]:
    /// the next group may be written, after this one in the WAL, and its
    /// fsync may overlap this one's) and when it is durable
    /// ([`GroupStage::Durable`], before the memtable inserts). The caller
    /// forms the groups and bounds how many are in flight; this call does
    /// not queue behind another group's fsync. On an error a stage may be
    /// left unreported.
    pub fn write_group(
        &self,
        batches: &[WriteBatch],
        durability: Durability,
        progress: &mut dyn FnMut(GroupStage),
    ) -> Result<()> {
        self.inner.write(batches, durability, Some(progress))
    }

    /// Writes one version of `key`.
    pub fn put(
        &self,
        key: &[u8],
        ts: Timestamp,
        value: &[u8],
        durability: Durability,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, ts, value);
        self.write(&b, durability)
    }

    /// Writes a tombstone for `key`.
    pub fn delete(&self, key: &[u8], ts: Timestamp, durability: Durability) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key, ts);
        self.write(&b, durability)
    }

    /// The value of the newest version of `key` at or below `read_ts`, or
    /// `None` if there is none or it is a tombstone.
    pub fn get(&self, key: &[u8], read_ts: Timestamp) -> Result<Option<Vec<u8>>> {
        Ok(match self.get_version(key, read_ts)? {
            Some((_, Value::Put(v))) => Some(v),
            _ => None,
        })
    }

    /// The newest version of `key` at or below `read_ts`, tombstones included.
    /// A tombstone at or below the GC watermark may have been collected, in
    /// which case `None` is returned: to any reader at or above the watermark
    /// the two mean the same.
    pub fn get_version(
        &self,
        key: &[u8],
        read_ts: Timestamp,
    ) -> Result<Option<(Timestamp, Value)>> {
        self.inner.check_read_ts(read_ts)?;
        self.inner.get(key, read_ts)
    }

    /// A streaming scan of `range` at `read_ts`, ascending or (`reverse`) descending.
    pub fn scan(
        &self,
        range: impl Into<KeyRange>,
        read_ts: Timestamp,
        reverse: bool,
    ) -> Result<Scan> {
        self.inner.check_read_ts(read_ts)?;
        self.inner.scan(range.into(), read_ts, reverse)
    }

    /// Raises the GC watermark: compactions may drop history below `ts`, and
    /// reads below it fail with [`Error::SnapshotTooOld`]. Lower values are
    /// ignored. Contract: the caller writes no version at or below a watermark
    /// it has set.
    pub fn set_gc_watermark(&self, ts: Timestamp) {
        self.inner.watermark.fetch_max(ts, Ordering::SeqCst);
    }

    /// The largest timestamp of any stored version (0 when empty). Versions
    /// removed by garbage collection may leave it higher than what is visible.
    pub fn max_timestamp(&self) -> Timestamp {
        let sv = self.inner.super_version();
        let mems = std::iter::once(&sv.active).chain(&sv.immutables).map(|m| m.ts_range().1);
        let tables = sv.version.levels.iter().flatten().map(|t| t.meta().max_ts);
        mems.chain(tables).max().unwrap_or(0)
    }

    pub fn gc_watermark(&self) -> Timestamp {
        self.inner.watermark.load(Ordering::SeqCst)
    }

    /// Freezes the active memtable (if it holds anything) and waits until
    /// every memtable frozen so far is flushed to a table.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_and_wait()
    }

    /// Writes a consistent copy of the engine into the new (or empty)
    /// directory `dir`: the memtables are flushed, then every live table is
    /// hard-linked (copied if linking fails) and a fresh manifest written;
    /// see [`crate::checkpoint`](mod@crate::checkpoint). `Db::open(dir)`
    /// then reads what this engine held at every timestamp at or above the
    /// GC watermark. Never open a checkpoint you keep in place: clone it
    /// first ([`crate::clone_checkpoint`]).
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<crate::CheckpointInfo> {
        self.inner.flush_and_wait()?;
        // Held while linking: no version change, so no table is deleted.
        let _manifest = lock(&self.inner.manifest);
        let version = self.inner.super_version().version.clone();
        crate::checkpoint::write(
            &self.inner.dir,
            dir.as_ref(),
            &version.levels,
            self.inner.watermark.load(Ordering::SeqCst),
            self.inner.next_file.fetch_add(1, Ordering::SeqCst),
        )
    }

    /// Compacts every table into the bottom level, applying garbage
    /// collection, and returns when done.
    pub fn compact(&self) -> Result<()> {
        self.inner.compact_all()
    }

    /// A copy of the engine's statistics.
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = self.inner.stats.snapshot();
        let sv = self.inner.super_version();
        s.levels = sv
            .version
            .levels
            .iter()
            .map(|l| LevelStats { files: l.len(), bytes: l.iter().map(|t| t.meta().size).sum() })
            .collect();
        s.memtable_bytes = std::iter::once(&sv.active)
            .chain(&sv.immutables)
            .map(|m| m.approximate_size() as u64)
            .sum();
        s.immutable_memtables = sv.immutables.len();
        s.gc_watermark = self.gc_watermark();
        s
    }

    pub fn path(&self) -> &Path {
        &self.inner.dir
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        lock(&self.inner.ctl).shutdown = true;
        self.inner.cv.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(wal) = self.inner.super_version().active.wal() {
            let _ = wal.sync_all();
        }
    }
}

/// Builds the engine's state from what is on disk. See the module doc.
fn recover(dir: PathBuf, opts: Options, dir_lock: DirLock) -> Result<Inner> {
    let mut state = manifest::recover(&dir, opts.num_levels)?.unwrap_or_else(|| ManifestState {
        levels: vec![Default::default(); opts.num_levels],
        next_file_number: 1,
        ..Default::default()
    });
    let mut version = Version::new(opts.num_levels);
    let mut live = HashSet::new();
    for (n, level) in state.levels.iter().enumerate() {
        for meta in level.values() {
            let table = Table::open(&fs::table_path(&dir, meta.number), meta)?;
            version.levels[n].push(Arc::new(table));
            live.insert(meta.number);
        }
    }
    version = version.apply(&HashSet::new(), Vec::new()); // sorts and checks invariants

    let mut wals = Vec::new();
    let mut obsolete = Vec::new();
    let mut max_number = 0;
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let Some(kind) = entry.file_name().to_str().and_then(fs::parse_file_name) else { continue };
        match kind {
            FileKind::Wal(n) if n >= state.log_number => wals.push(n),
            FileKind::Table(n) if live.contains(&n) => {}
            FileKind::Wal(_) | FileKind::Table(_) | FileKind::Manifest(_) => {
                obsolete.push(entry.path());
            }
        }
        let (FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n)) = kind;
        max_number = max_number.max(n);
    }
    wals.sort_unstable();
    let next_file = AtomicU64::new(state.next_file_number.max(max_number + 1));

    // Replay unflushed WALs into one memtable and flush it.
    let stats = Stats::default();
    let replayed = Arc::new(MemTable::new(None));
    for &n in &wals {
        let path = fs::wal_path(&dir, n);
        let replay = wal::read_log(&path)?;
        Stats::add(&stats.wal_records_recovered, replay.records.len() as u64);
        Stats::add(&stats.wal_torn_tails, u64::from(replay.torn_tail));
        for payload in replay.records {
            let writes = batch::decode(&payload)
                .ok_or_else(|| Error::corruption(&path, 0, "WAL record holds a malformed batch"))?;
            for (key, ts, value) in writes {
                replayed.insert(key, ts, value);
            }
        }
        obsolete.push(path);
    }
    if !replayed.is_empty() {
        replayed.freeze();
        let number = next_file.fetch_add(1, Ordering::SeqCst);
        let (meta, dropped) = write_memtable(&dir, &opts, number, &replayed, state.gc_watermark)?;
        Stats::add(&stats.flush_bytes_written, meta.size);
        Stats::add(&stats.versions_dropped, dropped);
        let table = Table::open(&fs::table_path(&dir, number), &meta)?;
        version = version.apply(&HashSet::new(), vec![(0, Arc::new(table))]);
        state.levels[0].insert(number, meta);
    }

    let wal_number = next_file.fetch_add(1, Ordering::SeqCst);
    let wal = Wal::create(&dir, wal_number, opts.wal_preallocation())?;
    let manifest_number = next_file.fetch_add(1, Ordering::SeqCst);
    state.log_number = wal_number;
    state.next_file_number = next_file.load(Ordering::SeqCst);
    let manifest = Manifest::create(&dir, manifest_number, &state.snapshot())?;
    for path in obsolete {
        let _ = std::fs::remove_file(path);
    }

    let policy = CompactionPolicy {
        l0_trigger: opts.l0_compaction_trigger,
        level1_bytes: opts.level1_size_bytes,
        multiplier: opts.level_size_multiplier,
    };
    let sv = SuperVersion {
        active: Arc::new(MemTable::new(Some(Arc::new(wal)))),
        immutables: Vec::new(),
        version: Arc::new(version),
    };
    Ok(Inner {
        dir,
        policy,
        current: RwLock::new(Arc::new(sv)),
        manifest: Mutex::new(manifest),
        ctl: Mutex::new(Control {
            pointers: vec![Vec::new(); opts.num_levels],
            ..Default::default()
        }),
        cv: Condvar::new(),
        next_file,
        watermark: AtomicU64::new(state.gc_watermark),
        poisoned: AtomicBool::new(false),
        poison_reason: Mutex::new(String::new()),
        throttle: Mutex::new(Instant::now()),
        stats,
        opts,
        _lock: dir_lock,
    })
}

/// Writes every version of a frozen memtable to a new table.
fn write_memtable(
    dir: &Path,
    opts: &Options,
    number: u64,
    mem: &Arc<MemTable>,
    watermark: Timestamp,
) -> Result<(TableMeta, u64)> {
    let path = fs::table_path(dir, number);
    let mut b =
        TableBuilder::create(&path, number, opts.block_size_bytes, opts.bloom_bits_per_key)?;
    let mut c = mem.cursor(crate::iter::Seek::Forward(None));
    // Versions the memtable itself shadows below the GC watermark need not
    // reach disk (the compaction rule; a flush is never bottommost, so
    // tombstones stay).
    let mut filter = GcFilter::new(GcRules { watermark, bottommost: false, tombstone_horizon: 0 });
    let mut dropped = 0;
    let result = (|| {
        while c.valid() {
            if filter.judge(c.key(), c.ts(), c.value()) == Verdict::Keep {
                b.add(c.key(), c.ts(), c.value())?;
            } else {
                dropped += 1;
            }
            c.advance()?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let meta = b.finish()?;
            fs::sync_dir(dir)?;
            Ok((meta, dropped))
        }
        Err(e) => {
            b.abandon();
            Err(e)
        }
    }
}

impl Inner {
    fn super_version(&self) -> Arc<SuperVersion> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check_read_ts(&self, read_ts: Timestamp) -> Result<()> {
        let watermark = self.watermark.load(Ordering::SeqCst);
        if read_ts < watermark {
            return Err(Error::SnapshotTooOld { read_ts, watermark });
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::PreviousIo(lock(&self.poison_reason).clone()));
        }
        Ok(())
    }

    fn poison(&self, err: &Error) {
        let mut reason = lock(&self.poison_reason);
        if reason.is_empty() {
            *reason = err.to_string();
        }
        self.poisoned.store(true, Ordering::Release);
        drop(reason);
        self.cv.notify_all();
    }

    // ----- writes -----

    /// Writes `batches`; with `progress`, as a caller's write group
    /// ([`Db::write_group`]), else sharing fsyncs through `Wal::sync_to`.
    fn write(
        &self,
        batches: &[WriteBatch],
        durability: Durability,
        mut progress: Option<&mut dyn FnMut(GroupStage)>,
    ) -> Result<()> {
        let bytes: usize = batches.iter().filter(|b| !b.is_empty()).map(|b| b.size_bytes()).sum();
        if bytes == 0 {
            if let Some(progress) = progress {
                progress(GroupStage::Written);
                progress(GroupStage::Durable);
            }
            return Ok(());
        }
        self.check_writable()?;
        self.throttle_if_slowed(bytes);
        loop {
            let sv = self.super_version();
            if sv.active.approximate_size() >= self.opts.memtable_size_bytes {
                self.make_room(&sv.active)?;
                continue;
            }
            if !sv.active.begin_write() {
                continue; // frozen under us: retry on the new memtable
            }
            let result = self.write_into(&sv.active, batches, durability, progress.take());
            sv.active.end_write();
            if let Err(e) = &result {
                self.poison(e);
            }
            return result;
        }
    }

    fn write_into(
        &self,
        mem: &MemTable,
        batches: &[WriteBatch],
        durability: Durability,
        progress: Option<&mut dyn FnMut(GroupStage)>,
    ) -> Result<()> {
        let wal = mem.wal().expect("the active memtable has a WAL");
        let sync = durability == Durability::Sync;
        let logged = durability != Durability::Unlogged;
        let payloads = batches.iter().filter(|b| !b.is_empty()).map(|b| b.encoded());
        let end = if logged { wal.append_all(payloads, sync)? } else { 0 };
        match progress {
            None => {
                if sync && wal.sync_to(end)? {
                    Stats::add(&self.stats.wal_syncs, 1);
                }
            }
            Some(progress) => {
                if sync {
                    wal.write_out()?;
                }
                progress(GroupStage::Written);
                if sync && wal.sync_written(end)? {
                    Stats::add(&self.stats.wal_syncs, 1);
                }
                progress(GroupStage::Durable);
            }
        }
        let (mut user_bytes, mut wal_bytes, mut written) = (0, 0, 0);
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            for (key, ts, value) in batch.iter() {
                user_bytes +=
                    key.len() + 8 + if let ValueRef::Put(v) = value { v.len() } else { 0 };
                mem.insert(key, ts, value);
            }
            wal_bytes += batch.size_bytes();
            written += 1;
        }
        Stats::add(&self.stats.batches_written, written);
        Stats::add(&self.stats.user_bytes_written, user_bytes as u64);
        if logged {
            Stats::add(&self.stats.wal_bytes_written, wal_bytes as u64);
        }
        Ok(())
    }

    /// Rate-limits writes while level 0 is at the slowdown threshold.
    fn throttle_if_slowed(&self, bytes: usize) {
        let l0 = self.super_version().version.levels[0].len();
        if l0 < self.opts.l0_slowdown_files {
            return;
        }
        let cost =
            Duration::from_secs_f64(bytes as f64 / self.opts.slowdown_rate_bytes_per_sec as f64);
        let now = Instant::now();
        let start = {
            let mut next = lock(&self.throttle);
            let start = (*next).max(now);
            *next = start + cost;
            start
        };
        self.stats.set_stall(Some(StallReason::L0Slowdown));
        if start > now {
            std::thread::sleep(start - now);
            Stats::add(&self.stats.slowdown_micros, (start - now).as_micros() as u64);
        }
        self.stats.set_stall(None);
    }

    /// Called when `full` (the active memtable) is full: rotate it, or wait
    /// for background work when rotating would exceed a limit.
    fn make_room(&self, full: &Arc<MemTable>) -> Result<()> {
        let mut ctl = lock(&self.ctl);
        let started = Instant::now();
        let mut stalled = false;
        let result = loop {
            if let Err(e) = self.check_writable() {
                break Err(e);
            }
            let sv = self.super_version();
            if !Arc::ptr_eq(&sv.active, full) {
                break Ok(()); // another writer rotated it
            }
            let reason = if sv.immutables.len() >= self.opts.max_immutable_memtables {
                Some(StallReason::MemtableLimit)
            } else if sv.version.levels[0].len() >= self.opts.l0_stop_files {
                Some(StallReason::L0Stop)
            } else {
                None
            };
            let Some(reason) = reason else {
                break self.rotate(&sv);
            };
            if !stalled {
                stalled = true;
                Stats::add(&self.stats.stalls, 1);
            }
            self.stats.set_stall(Some(reason));
            if started.elapsed() >= self.opts.max_stall {
                break Err(Error::WriteStall {
                    reason,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            ctl = self
                .cv
                .wait_timeout(ctl, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        if stalled {
            self.stats.set_stall(None);
            Stats::add(&self.stats.stall_micros, started.elapsed().as_micros() as u64);
        }
        result
    }

    /// Freezes the active memtable and installs a new one with a new WAL.
    /// Called with `ctl` held, so rotations do not race.
    fn rotate(&self, sv: &SuperVersion) -> Result<()> {
        let number = self.next_file.fetch_add(1, Ordering::SeqCst);
        let wal = Wal::create(&self.dir, number, self.opts.wal_preallocation())
            .inspect_err(|e| self.poison(e))?;
        let fresh = Arc::new(MemTable::new(Some(Arc::new(wal))));
        {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            assert!(Arc::ptr_eq(&cur.active, &sv.active), "rotation raced with another rotation");
            cur.active.freeze();
            let mut immutables = vec![cur.active.clone()];
            immutables.extend(cur.immutables.iter().cloned());
            *cur =
                Arc::new(SuperVersion { active: fresh, immutables, version: cur.version.clone() });
        }
        self.cv.notify_all();
        Ok(())
    }

    // ----- reads -----

    fn get(&self, key: &[u8], read_ts: Timestamp) -> Result<Option<(Timestamp, Value)>> {
        let sv = self.super_version();
        let mut best: Option<(Timestamp, Value)> = None;
        // Keeps `found` if it is newer than the best so far. On equal
        // timestamps the earlier (newer) source wins.
        let offer = |best: &mut Option<(Timestamp, Value)>, found: Option<(Timestamp, Value)>| {
            if let Some((ts, v)) = found.filter(|(ts, _)| best.as_ref().is_none_or(|(b, _)| ts > b))
            {
                *best = Some((ts, v));
            }
        };
        // A source can only improve on `best` if it may hold a version newer
        // than it and not newer than read_ts.
        let worth = |best: &Option<(Timestamp, Value)>, min_ts: Timestamp, max_ts: Timestamp| {
            min_ts <= read_ts && best.as_ref().is_none_or(|(b, _)| max_ts > *b)
        };
        for mem in std::iter::once(&sv.active).chain(&sv.immutables) {
            let (min_ts, max_ts) = mem.ts_range();
            if worth(&best, min_ts, max_ts) {
                offer(&mut best, mem.get(key, read_ts));
            }
        }
        let hash = bloom::hash_key(key);
        let level0 = sv.version.levels[0].iter();
        // Below level 0, only the one table whose range may hold the key.
        let deeper = sv.version.levels[1..].iter().filter_map(|level| {
            let i = level.partition_point(|t| t.meta().largest.as_slice() < key);
            level.get(i)
        });
        for table in level0.chain(deeper) {
            let m = table.meta();
            if worth(&best, m.min_ts, m.max_ts) {
                offer(&mut best, table.get(key, hash, read_ts, &self.stats)?);
            }
        }
        Ok(best)
    }

    fn scan(&self, range: KeyRange, read_ts: Timestamp, reverse: bool) -> Result<Scan> {
        let sv = self.super_version();
        let start = range.start(reverse);
        let seek = seek_for(&start, reverse);
        let mut children: Vec<Box<dyn Cursor>> = Vec::new();
        for mem in std::iter::once(&sv.active).chain(&sv.immutables) {
            if mem.ts_range().0 <= read_ts {
                children.push(Box::new(mem.cursor(seek)));
            }
        }
        let wanted = |t: &Arc<Table>| {
            let m = t.meta();
            m.min_ts <= read_ts && range.overlaps(&m.smallest, &m.largest)
        };
        for table in sv.version.levels[0].iter().filter(|t| wanted(t)) {
            children.push(Box::new(table.cursor(seek)?));
        }
        for level in &sv.version.levels[1..] {
            let tables: Vec<_> = level.iter().filter(|t| wanted(t)).cloned().collect();
            if !tables.is_empty() {
                children.push(Box::new(LevelCursor::new(tables, seek)?));
            }
        }
        Ok(Scan::new(MergeCursor::new(children, reverse), range, read_ts))
    }

    // ----- version changes -----

    /// Records `edit` in the manifest and installs the matching version,
    /// removing `flushed` from the immutable memtables.
    fn install(
        &self,
        edit: VersionEdit,
        added: Vec<(usize, Arc<Table>)>,
        flushed: Option<&Arc<MemTable>>,
    ) -> Result<()> {
        let mut manifest = lock(&self.manifest);
        let base = self.super_version().version.clone();
        let deleted: HashSet<u64> = edit.deleted.iter().map(|&(_, n)| n).collect();
        let version = Arc::new(base.apply(&deleted, added));
        manifest.append(&edit)?;
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        let immutables = cur
            .immutables
            .iter()
            .filter(|m| flushed.is_none_or(|f| !Arc::ptr_eq(m, f)))
            .cloned()
            .collect();
        *cur = Arc::new(SuperVersion { active: cur.active.clone(), immutables, version });
        drop(cur);
        drop(manifest);
        self.cv.notify_all();
        Ok(())
    }

    // ----- flush -----

    fn flush_loop(&self) {
        loop {
            let mem = {
                let mut ctl = lock(&self.ctl);
                loop {
                    if ctl.shutdown || self.poisoned.load(Ordering::Acquire) {
                        return;
                    }
                    if let Some(m) = self.super_version().immutables.last() {
                        break m.clone();
                    }
                    ctl = self.cv.wait(ctl).unwrap_or_else(|p| p.into_inner());
                }
            };
            if let Err(e) = self.flush_memtable(&mem) {
                self.poison(&e);
                return;
            }
        }
    }

    fn flush_memtable(&self, mem: &Arc<MemTable>) -> Result<()> {
        mem.wait_for_writers();
        let mut added = Vec::new();
        let mut edit = VersionEdit::default();
        if !mem.is_empty() {
            let number = self.next_file.fetch_add(1, Ordering::SeqCst);
            let watermark = self.watermark.load(Ordering::SeqCst);
            let (meta, dropped) = write_memtable(&self.dir, &self.opts, number, mem, watermark)?;
            Stats::add(&self.stats.flush_bytes_written, meta.size);
            Stats::add(&self.stats.versions_dropped, dropped);
            let table = Table::open(&fs::table_path(&self.dir, number), &meta)?;
            edit.added.push((0, meta));
            added.push((0, Arc::new(table)));
        }
        // WALs older than the next memtable's are no longer needed.
        let sv = self.super_version();
        let pos = sv
            .immutables
            .iter()
            .position(|m| Arc::ptr_eq(m, mem))
            .expect("flushing a queued memtable");
        let next = if pos == 0 { &sv.active } else { &sv.immutables[pos - 1] };
        edit.log_number = next.wal().map(|w| w.number());
        edit.next_file_number = Some(self.next_file.load(Ordering::SeqCst));
        // Counted before the version is installed: `Db::flush` returns as soon
        // as it sees the memtable gone, and its caller may read the stats.
        Stats::add(&self.stats.flushes, 1);
        self.install(edit, added, Some(mem))?;
        if let Some(wal) = mem.wal() {
            let _ = std::fs::remove_file(wal.path());
        }

        Ok(())
    }

    fn flush_and_wait(&self) -> Result<()> {
        self.check_writable()?;
        let target = {
            let mut ctl = lock(&self.ctl);
            let sv = self.super_version();
            let target = if sv.active.is_empty() {
                sv.immutables.first().cloned()
            } else {
                self.rotate(&sv)?;
                Some(sv.active.clone())
            };
            let Some(target) = target else { return Ok(()) };
            while self.super_version().immutables.iter().any(|m| Arc::ptr_eq(m, &target)) {
                self.check_writable()?;
                ctl = self
                    .cv
                    .wait_timeout(ctl, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            target
        };
        drop(target);
        Ok(())
    }

    // ----- compaction -----

    fn compaction_loop(&self) {
        loop {
            let task = {
                let mut ctl = lock(&self.ctl);
                loop {
                    if ctl.shutdown || self.poisoned.load(Ordering::Acquire) {
                        return;
                    }
                    if self.opts.background_compaction && !ctl.compacting {
                        let sv = self.super_version();
                        let metas = sv.version.metas();
                        if let Some(t) =
                            version::pick_compaction(&metas, &self.policy, &ctl.pointers)
                        {
                            // The next compaction of this level starts after this one's range.
                            if t.level > 0 {
                                let largest = metas[t.level]
                                    .iter()
                                    .filter(|m| t.upper.contains(&m.number))
                                    .map(|m| m.largest.clone())
                                    .max();
                                ctl.pointers[t.level] = largest.unwrap_or_default();
                            }
                            ctl.compacting = true;
                            break t;
                        }
                    }
                    ctl = self.cv.wait(ctl).unwrap_or_else(|p| p.into_inner());
                }
            };
            let result = self.run_compaction(&task);
            lock(&self.ctl).compacting = false;
            self.cv.notify_all();
            if let Err(e) = result {
                self.poison(&e);
                return;
            }
        }
    }

    fn compact_all(&self) -> Result<()> {
        self.check_writable()?;
        {
            let mut ctl = lock(&self.ctl);
            while ctl.compacting {
                ctl = self.cv.wait(ctl).unwrap_or_else(|p| p.into_inner());
            }
            ctl.compacting = true;
        }
        let task = version::full_compaction(&self.super_version().version.metas());
        let result = task.map_or(Ok(()), |t| self.run_compaction(&t));
        lock(&self.ctl).compacting = false;
        self.cv.notify_all();
        if let Err(e) = &result {
            self.poison(e);
        }
        result
    }

    fn run_compaction(&self, task: &CompactionTask) -> Result<()> {
        if task.trivial_move {
            return self.move_tables(task);
        }
        let sv = self.super_version();
        let by_number = |n: &u64| -> Arc<Table> {
            sv.version
                .levels
                .iter()
                .flatten()
                .find(|t| t.meta().number == *n)
                .cloned()
                .expect("compaction inputs are live: only one compaction runs at a time")
        };
        let upper: Vec<Arc<Table>> = task.upper.iter().map(by_number).collect();
        let lower: Vec<Arc<Table>> = task.lower.iter().map(by_number).collect();
        let watermark = self.watermark.load(Ordering::SeqCst);
        let inputs: HashSet<u64> = task.upper.iter().chain(&task.lower).copied().collect();
        let rules = GcRules {
            watermark,
            bottommost: task.bottommost,
            tombstone_horizon: self.tombstone_horizon(&sv, task.output_level, &inputs),
        };

        // Newest inputs first: level-0 tables one by one (newest first), then
        // each deeper level's tables as one sorted run.
        let seek = crate::iter::Seek::Forward(None);
        let mut children: Vec<Box<dyn Cursor>> = Vec::new();
        for level in 0..task.output_level {
            let tables: Vec<Arc<Table>> =
                upper.iter().filter(|t| level_of(&sv.version, t) == level).cloned().collect();
            if tables.is_empty() {
                continue;
            }
            if level == 0 {
                for t in tables {
                    children.push(Box::new(t.cursor(seek)?));
                }
            } else {
                children.push(Box::new(LevelCursor::new(tables, seek)?));
            }
        }
        if !lower.is_empty() {
            children.push(Box::new(LevelCursor::new(lower.clone(), seek)?));
        }
        let mut merge = MergeCursor::new(children, false);
        let mut created = Vec::new();
        let mut new_table = || -> Result<TableBuilder> {
            let number = self.next_file.fetch_add(1, Ordering::SeqCst);
            created.push(number);
            TableBuilder::create(
                &fs::table_path(&self.dir, number),
                number,
                self.opts.block_size_bytes,
                self.opts.bloom_bits_per_key,
            )
        };
        let mut sink = OutputSink {
            new_table: &mut new_table,
            target_file_size: self.opts.target_file_size_bytes,
            rate_bytes_per_sec: self.opts.compaction_rate_bytes_per_sec,
        };
        let outcome = compaction::merge_into_tables(&mut merge, rules, &mut sink)?;
        drop(merge);
        fs::sync_dir(&self.dir)?;

        let mut added = Vec::new();
        for meta in &outcome.tables {
            let table = Table::open(&fs::table_path(&self.dir, meta.number), meta)?;
            added.push((task.output_level, Arc::new(table)));
        }
        let edit = VersionEdit {
            deleted: upper
                .iter()
                .chain(&lower)
                .map(|t| (level_of(&sv.version, t), t.meta().number))
                .collect(),
            added: outcome.tables.iter().map(|m| (task.output_level, m.clone())).collect(),
            gc_watermark: Some(watermark),
            next_file_number: Some(self.next_file.load(Ordering::SeqCst)),
            log_number: None,
        };
        self.install(edit, added, None)?;
        for t in upper.iter().chain(&lower) {
            let _ = std::fs::remove_file(t.path());
        }
        let read: u64 = upper.iter().chain(&lower).map(|t| t.meta().size).sum();
        let written: u64 = outcome.tables.iter().map(|m| m.size).sum();
        Stats::add(&self.stats.compactions, 1);
        Stats::add(&self.stats.compaction_bytes_read, read);
        Stats::add(&self.stats.compaction_bytes_written, written);
        Stats::add(&self.stats.versions_dropped, outcome.versions_dropped);
        Stats::add(&self.stats.tombstones_dropped, outcome.tombstones_dropped);
        Ok(())
    }

    /// Re-assigns a task's tables to its output level without rewriting them.
    fn move_tables(&self, task: &CompactionTask) -> Result<()> {
        let sv = self.super_version();
        let moved: Vec<Arc<Table>> = sv.version.levels[task.level]
            .iter()
            .filter(|t| task.upper.contains(&t.meta().number))
            .cloned()
            .collect();
        assert_eq!(
            moved.len(),
            task.upper.len(),
            "trivial-move inputs are live at level {}",
            task.level
        );
        let edit = VersionEdit {
            deleted: moved.iter().map(|t| (task.level, t.meta().number)).collect(),
            added: moved.iter().map(|t| (task.output_level, t.meta().clone())).collect(),
            ..VersionEdit::default()
        };
        let added = moved.into_iter().map(|t| (task.output_level, t)).collect();
        self.install(edit, added, None)?;
        Stats::add(&self.stats.trivial_moves, 1);
        Ok(())
    }

    /// The smallest timestamp held by any source newer than the compaction's
    /// output level that is not itself an input (see `compaction` module doc).
    fn tombstone_horizon(
        &self,
        sv: &SuperVersion,
        output_level: usize,
        inputs: &HashSet<u64>,
    ) -> Timestamp {
        let mems = std::iter::once(&sv.active).chain(&sv.immutables).map(|m| m.ts_range().0);
        let tables = sv.version.levels[..output_level]
            .iter()
            .flatten()
            .filter(|t| !inputs.contains(&t.meta().number))
            .map(|t| t.meta().min_ts);
        mems.chain(tables).min().unwrap_or(Timestamp::MAX)
    }

    // ----- buffered durability -----

    fn sync_loop(&self) {
        let mut ctl = lock(&self.ctl);
        while !ctl.shutdown && !self.poisoned.load(Ordering::Acquire) {
            let interval = self.opts.buffered_sync_interval;
            ctl = self.cv.wait_timeout(ctl, interval).unwrap_or_else(|p| p.into_inner()).0;
            if ctl.shutdown {
                return;
            }
            drop(ctl);
            let sv = self.super_version();
            if let Some(Err(e)) = sv.active.wal().map(|wal| wal.sync_all()) {
                self.poison(&e);
            }
            ctl = lock(&self.ctl);
        }
    }
}

fn level_of(version: &Version, table: &Arc<Table>) -> usize {
    version
        .levels
        .iter()
        .position(|l| l.iter().any(|t| Arc::ptr_eq(t, table)))
        .expect("table is in the version")
}
