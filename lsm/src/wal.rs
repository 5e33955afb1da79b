//! The write-ahead log: one file per memtable, records framed by [`crate::record`].
//!
//! Group commit: [`Wal::append`] writes a record to the file (into the page
//! cache) under a short lock and returns the offset where it ends;
//! [`Wal::sync_to`] makes everything up to an offset durable. Syncs are
//! serialised by `synced`, and whoever performs one covers every record
//! written before it started, so writers that queued behind an fsync usually
//! find their record already durable and return without one. Many concurrent
//! committers therefore share one fsync.
//!
//! Files are preallocated ([`crate::fs::preallocate`]); recovery stops at the
//! first all-zero header.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::{fs, record};

#[derive(Debug)]
pub struct Wal {
    number: u64,
    path: PathBuf,
    file: File,
    /// Next write offset, and a reusable encoding buffer.
    tail: Mutex<Tail>,
    /// Bytes written to the file so far (all appends that have completed).
    written: AtomicU64,
    /// Bytes known durable. Held across the fsync: that is the group commit.
    synced: Mutex<u64>,
}

#[derive(Debug)]
struct Tail {
    offset: u64,
    buf: Vec<u8>,
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
            tail: Mutex::new(Tail { offset: 0, buf: Vec::new() }),
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one record holding `payload`; returns the offset where it ends.
    /// The record is in the OS page cache (it survives a process crash) but not
    /// yet durable against power loss until [`Wal::sync_to`] covers it.
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let Tail { offset, buf } = &mut *tail;
        buf.clear();
        record::encode(payload, buf);
        self.file.write_all_at(buf, *offset).map_err(|e| Error::io(&self.path, e))?;
        *offset += buf.len() as u64;
        self.written.store(*offset, Ordering::Release);
        Ok(*offset)
    }

    /// Makes every record ending at or before `end` durable, sharing the fsync
    /// with concurrent callers. Returns whether this call performed an fsync.
    pub fn sync_to(&self, end: u64) -> Result<bool> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= end {
            return Ok(false);
        }
        let target = self.written.load(Ordering::Acquire);
        debug_assert!(target >= end, "sync target {target} below requested end {end}");
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        *synced = target;
        Ok(true)
    }

    /// Makes everything written so far durable.
    pub fn sync_all(&self) -> Result<bool> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }

    /// Bytes appended so far.
    pub fn written_bytes(&self) -> u64 {
        self.written.load(Ordering::Acquire)
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
            last = wal.append(&i.to_le_bytes()).unwrap();
        }
        assert!(wal.sync_to(last).unwrap());
        assert!(!wal.sync_to(last).unwrap(), "already durable: no second fsync");
        let records = read_log(wal.path()).unwrap().records;
        assert_eq!(records.len(), 100);
        assert_eq!(records[42], 42u32.to_le_bytes());
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
                        let end = wal.append(&(t * 1000 + i).to_le_bytes()).unwrap();
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
