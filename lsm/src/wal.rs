//! The write-ahead log: one file per memtable, records framed by [`crate::record`].
//!
//! Group commit: [`Wal::append`] adds a record and returns the offset where
//! it ends; [`Wal::sync_to`] makes everything up to an offset durable. A
//! record appended for a sync write is only staged in memory; the thread that
//! performs the next fsync (a *leader*: syncs are serialised by `sync_lock`)
//! writes every staged record with one `pwrite`, then fsyncs. Committers that
//! queued behind that fsync find their record durable and return without a
//! system call of their own, so many concurrent committers share one write and
//! one fsync. A record appended without sync is written to the OS at once
//! (it must survive a process crash), together with anything staged before it.
//!
//! [`Wal::append_all`] appends several records at once (a caller's write
//! group), contiguously. A caller that forms its own write groups uses
//! [`Wal::write_out`] and [`Wal::sync_written`] instead of `sync_to`: they
//! never queue behind another fsync, so the caller decides how many are in
//! flight. (The transaction layer keeps one: on the test machine two
//! overlapping fsyncs complete 1.4 times as fast as two in a row, but halving
//! the groups cost more CPU than that saved.)
//!
//! All writes happen under the `tail` lock in offset order, so the file is
//! always a prefix of the log: a crash never leaves a hole before a record.
//!
//! Files are preallocated ([`crate::fs::preallocate`]); recovery stops at the
//! first all-zero header.
//!
//! Zeros ahead of the tail: preallocated blocks are *unwritten* extents, and
//! the first write into one makes the next fdatasync also write the inode
//! (the extent becomes written), a second synchronous I/O. A group commit
//! writes a few KiB per fsync, so about every other fsync paid for one
//! (measured: 2,054 extent conversions in 4,390 fsyncs at 64 committers).
//! So before records reach a block that was never written, the log writes
//! [`ZERO_AHEAD_BYTES`] of zeros there first (PostgreSQL zero-fills its WAL
//! segments for the same reason, `wal_init_zero`): one conversion per
//! `ZERO_AHEAD_BYTES` instead of one per block. Zeros past the tail are what
//! recovery already treats as the end of the log.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::{fs, record};

/// How far ahead of the records the log writes zeros into never-written
/// blocks (see the module doc).
pub const ZERO_AHEAD_BYTES: u64 = 256 << 10;

#[derive(Debug)]
pub struct Wal {
    number: u64,
    path: PathBuf,
    file: File,
    /// Staged records and the file offset where they will be written.
    tail: Mutex<Tail>,
    /// Bytes written to the file so far.
    written: AtomicU64,
    /// Bytes appended so far, staged or written.
    appended: AtomicU64,
    /// Bytes known durable.
    synced: AtomicU64,
    /// Held across the fsync of [`Wal::sync_to`]: that is its group commit.
    sync_lock: Mutex<()>,
}

#[derive(Debug)]
struct Tail {
    /// File offset where `staged` starts: everything before it is written.
    written: u64,
    /// Encoded records not yet written to the file.
    staged: Vec<u8>,
    /// Everything before this offset has been written, with records or
    /// zeros: writing there changes no extent.
    zeroed: u64,
}

impl Tail {
    /// Writes the staged records to the file.
    fn flush(&mut self, file: &File, path: &Path, written: &AtomicU64) -> Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let end = self.written + self.staged.len() as u64;
        if end > self.zeroed {
            let to = end.next_multiple_of(ZERO_AHEAD_BYTES) + ZERO_AHEAD_BYTES;
            // Records overwrite the zeros below `end` at once; the page
            // cache absorbs that.
            let from = self.zeroed.max(self.written);
            fs::write_zeros(file, from, to).map_err(|e| Error::io(path, e))?;
            self.zeroed = to;
        }
        file.write_all_at(&self.staged, self.written).map_err(|e| Error::io(path, e))?;
        self.written += self.staged.len() as u64;
        self.staged.clear();
        written.store(self.written, Ordering::Release);
        Ok(())
    }
}

impl Wal {
    /// Creates a new, empty, preallocated log and makes its existence durable.
    pub fn create(dir: &Path, number: u64, preallocate_bytes: u64) -> Result<Wal> {
        let path = fs::wal_path(dir, number);
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        fs::preallocate(&file, preallocate_bytes);
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        fs::sync_dir(dir)?;
        Ok(Wal {
            number,
            path,
            file,
            tail: Mutex::new(Tail { written: 0, staged: Vec::new(), zeroed: 0 }),
            written: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record holding `payload`; returns the offset where it
    /// ends. With `will_sync`, the record is staged for the next
    /// [`Wal::sync_to`], which the caller must then call with that offset.
    /// Without, it is written to the OS page cache before returning: it
    /// survives a process crash but not power loss until a sync covers it.
    pub fn append(&self, payload: &[u8], will_sync: bool) -> Result<u64> {
        self.append_all(std::iter::once(payload), will_sync)
    }

    /// Appends one record per payload, contiguously and in order, as
    /// [`Wal::append`] does for one (a write group: one lock, one `pwrite`).
    pub fn append_all<'a>(
        &self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        will_sync: bool,
    ) -> Result<u64> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        for payload in payloads {
            record::encode(payload, &mut tail.staged);
        }
        let end = tail.written + tail.staged.len() as u64;
        self.appended.store(end, Ordering::Release);
        if !will_sync {
            tail.flush(&self.file, &self.path, &self.written)?;
        }
        Ok(end)
    }

    /// Makes every record ending at or before `end` durable, sharing the
    /// write and the fsync with concurrent callers. Returns whether this call
    /// performed an fsync.
    pub fn sync_to(&self, end: u64) -> Result<bool> {
        let _sync = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.synced.load(Ordering::Acquire) >= end {
            return Ok(false);
        }
        let target = self.write_out()?;
        assert!(target >= end, "sync target {target} below requested end {end}");
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(true)
    }

    /// Writes every staged record to the file (one `pwrite`); returns the
    /// offset written up to.
    pub fn write_out(&self) -> Result<u64> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.flush(&self.file, &self.path, &self.written)?;
        Ok(tail.written)
    }

    /// Makes the records written before this call, up to `end`, durable
    /// with an fsync of its own, without queueing behind an fsync in flight
    /// (for callers that bound how many they start; see the module doc).
    /// `end` must already be written ([`Wal::write_out`]). Returns whether
    /// it performed an fsync.
    pub fn sync_written(&self, end: u64) -> Result<bool> {
        if self.synced.load(Ordering::Acquire) >= end {
            return Ok(false);
        }
        let written = self.written.load(Ordering::Acquire);
        assert!(written >= end, "syncing to {end}, only {written} written");
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        self.synced.fetch_max(end, Ordering::AcqRel);
        Ok(true)
    }

    /// Makes everything appended so far durable.
    pub fn sync_all(&self) -> Result<bool> {
        self.sync_to(self.appended.load(Ordering::Acquire))
    }

    /// Bytes appended so far, staged or written.
    pub fn appended_bytes(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }
}

/// The whole records of a log, and whether a torn tail was discarded.
#[derive(Debug)]
pub struct Replay {
    pub records: Vec<Vec<u8>>,
    pub torn_tail: bool,
}

/// Reads all whole records of the log at `path`, discarding a torn tail.
pub fn read_log(path: &Path) -> Result<Replay> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let scan = record::scan_records(path, &data, record::TailPolicy::Preallocated)?;
    let records = scan.payloads.into_iter().map(|r| data[r].to_vec()).collect();
    Ok(Replay { records, torn_tail: scan.torn_tail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn appended_records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 1, 1 << 16).unwrap();
        let mut last = 0;
        for i in 0..100u32 {
            last = wal.append(&i.to_le_bytes(), i % 3 == 0).unwrap();
        }
        assert!(wal.sync_to(last).unwrap());
        assert!(!wal.sync_to(last).unwrap(), "already durable: no second fsync");
        let records = read_log(wal.path()).unwrap().records;
        assert_eq!(records.len(), 100);
        assert_eq!(records[42], 42u32.to_le_bytes());
    }

    #[test]
    fn staged_records_reach_the_file_only_through_a_sync_or_a_buffered_append() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 1, 1 << 16).unwrap();
        let end = wal.append(b"staged", true).unwrap();
        assert!(read_log(wal.path()).unwrap().records.is_empty(), "staged, not written");
        // A buffered append writes everything before it too, in order.
        wal.append(b"buffered", false).unwrap();
        assert_eq!(
            read_log(wal.path()).unwrap().records,
            vec![b"staged".to_vec(), b"buffered".to_vec()]
        );
        assert!(wal.sync_to(end).unwrap());
        let end = wal.append(b"third", true).unwrap();
        assert!(wal.sync_to(end).unwrap());
        assert_eq!(read_log(wal.path()).unwrap().records.len(), 3);
        assert_eq!(wal.appended_bytes(), end);
    }

    #[test]
    fn append_all_writes_a_group_of_records_contiguously_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 1, 1 << 16).unwrap();
        let first = wal.append(b"before", true).unwrap();
        let group: [&[u8]; 3] = [b"one", b"two", b"three"];
        let end = wal.append_all(group, true).unwrap();
        assert!(end > first);
        assert!(read_log(wal.path()).unwrap().records.is_empty(), "staged, not written");
        assert!(wal.sync_to(end).unwrap());
        let records = read_log(wal.path()).unwrap().records;
        assert_eq!(
            records,
            vec![b"before".to_vec(), b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(wal.append_all([], true).unwrap(), end, "an empty group appends nothing");
    }

    #[test]
    fn blocks_ahead_of_the_tail_are_zero_filled_and_read_as_the_end_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 1, 1 << 16).unwrap();
        let mut end = 0;
        let payload = [7u8; 1000];
        // Cross a zero-fill boundary several times.
        let records = 3 * ZERO_AHEAD_BYTES as usize / payload.len();
        for _ in 0..records {
            end = wal.append(&payload, true).unwrap();
        }
        assert!(wal.sync_to(end).unwrap());
        let len = std::fs::metadata(wal.path()).unwrap().len();
        assert!(len > end + ZERO_AHEAD_BYTES / 2, "no zeros ahead of the tail: {len} <= {end}");
        let data = std::fs::read(wal.path()).unwrap();
        assert!(data[end as usize..].iter().all(|&b| b == 0), "garbage after the tail");
        let replay = read_log(wal.path()).unwrap();
        assert_eq!(replay.records.len(), records);
        assert!(!replay.torn_tail);
    }

    #[test]
    fn overlapping_syncs_each_cover_what_was_written_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::create(dir.path(), 1, 1 << 20).unwrap());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let end = wal.append(&(t * 1000 + i).to_le_bytes(), true).unwrap();
                        assert!(wal.write_out().unwrap() >= end);
                        wal.sync_written(end).unwrap();
                        assert!(wal.synced.load(Ordering::Acquire) >= end);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_log(wal.path()).unwrap().records.len(), 200);
        let end = wal.appended_bytes();
        assert!(!wal.sync_written(end).unwrap(), "everything is already durable");
        assert!(!wal.sync_to(end).unwrap());
    }

    #[test]
    fn concurrent_committers_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::create(dir.path(), 1, 1 << 20).unwrap());
        let fsyncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (wal, fsyncs) = (wal.clone(), fsyncs.clone());
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let end = wal.append(&(t * 1000 + i).to_le_bytes(), true).unwrap();
                        if wal.sync_to(end).unwrap() {
                            fsyncs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_log(wal.path()).unwrap().records.len(), 400);
        // Every sync_to returned only once its record was durable; at most one
        // fsync per commit, and in practice far fewer.
        assert!(fsyncs.load(Ordering::Relaxed) <= 400);
    }
}
