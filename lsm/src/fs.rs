//! File naming and the few file-system calls the engine makes: directory
//! fsync, preallocation, zero-filling, and the directory lock.
//!
//! Files in a database directory:
//!
//! | name            | what                                             |
//! |-----------------|--------------------------------------------------|
//! | `NNNNNN.wal`    | write-ahead log of one memtable                  |
//! | `NNNNNN.sst`    | an immutable sorted table                        |
//! | `MANIFEST-NNNNNN` | log of version edits                           |
//! | `CURRENT`       | the name of the live manifest                    |
//! | `LOCK`          | held with `flock` while a `Db` has the directory open |

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a file in the database directory is, judged by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Wal(u64),
    Table(u64),
    Manifest(u64),
}

pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.wal"))
}

pub fn table_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.sst"))
}

pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

pub fn parse_file_name(name: &str) -> Option<FileKind> {
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return n.parse().ok().map(FileKind::Manifest);
    }
    let (stem, ext) = name.split_once('.')?;
    let number = stem.parse().ok()?;
    match ext {
        "wal" => Some(FileKind::Wal(number)),
        "sst" => Some(FileKind::Table(number)),
        _ => None,
    }
}

/// Makes directory entries created or renamed in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Reserves `len` bytes of disk for `file` so later appends do not have to
/// allocate (an fdatasync after an append into preallocated space is about
/// twice as fast here). Failure is harmless: the file simply grows as written.
pub fn preallocate(file: &File, len: u64) {
    // SAFETY: `fallocate` is called on a file descriptor owned by `file`, which
    // outlives the call; mode 0 only allocates and never touches memory of ours.
    let _ = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
}

/// A source of zeros for [`write_zeros`], written in pieces this big.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Writes zeros over `from..to` of `file` (a log fills the space ahead of
/// its records so that a later fdatasync needs no metadata write: see the
/// WAL's module doc). The Raft log store uses it too.
pub fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// An exclusive lock on a database directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // SAFETY: plain flock(2) on a descriptor owned by `file`; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(Error::Locked(dir.to_path_buf()));
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let dir = Path::new("/d");
        let wal = wal_path(dir, 7);
        let table = table_path(dir, 1_234_567);
        let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(parse_file_name(&name(&wal)), Some(FileKind::Wal(7)));
        assert_eq!(parse_file_name(&name(&table)), Some(FileKind::Table(1_234_567)));
        assert_eq!(parse_file_name(&manifest_name(3)), Some(FileKind::Manifest(3)));
        assert_eq!(parse_file_name("CURRENT"), None);
        assert_eq!(parse_file_name("x.sst"), None);
    }

    #[test]
    fn directory_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(DirLock::acquire(dir.path()), Err(Error::Locked(_))));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
