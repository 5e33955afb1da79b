//! Checkpoints: a consistent copy of the engine in another directory, made
//! of hard links to its (immutable) tables and a fresh manifest.
//!
//! [`Db::checkpoint`](crate::Db::checkpoint) flushes the memtables, then,
//! holding the manifest lock (so no flush or compaction can install a new
//! version or delete a table meanwhile), hard-links every table of the
//! current version into the checkpoint directory, copying a table instead
//! when linking fails (another file system: `EXDEV`; or no link support),
//! and writes a manifest describing exactly those tables, the GC watermark
//! and the next file number, named by a fresh `CURRENT`. Every file and the
//! directory are fsynced before it returns.
//!
//! `Db::open` on the checkpoint directory gives the engine's contents at
//! every timestamp at or above the GC watermark, all MVCC versions, as they
//! were when the checkpoint was taken (writes that raced with it may or may
//! not be included; the flush covers everything written before the call).
//!
//! [`clone_checkpoint`] makes a directory ready to open from a checkpoint
//! without ever touching the checkpoint itself: opening a database deletes
//! obsolete files and compacts, so a checkpoint kept for later (a Raft
//! snapshot) is never opened in place.
//!
//! # Invariants
//! - Only tables are hard-linked: they are never modified after they are
//!   written. The manifest and `CURRENT` (which an engine appends to or
//!   replaces) are always written fresh or copied, never linked, and no WAL
//!   is part of a checkpoint.
//! - A checkpoint holds no file that its manifest does not name, besides
//!   `CURRENT`.
//! - Damage to a checkpoint's files is caught when it is opened (manifest
//!   records and table footers carry checksums; data blocks when read) and
//!   reported as [`Error::Corruption`], never a panic.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::{self, FileKind};
use crate::manifest::{Manifest, VersionEdit};
use crate::table::Table;

/// What a checkpoint holds: the engine state it describes, as recorded in
/// its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The names of the files written into the directory (tables, the
    /// manifest and `CURRENT`), sorted.
    pub files: Vec<String>,
    /// How many tables were hard-linked, and how many copied.
    pub linked: usize,
    pub copied: usize,
    /// The GC watermark the checkpoint records: reads below it fail.
    pub gc_watermark: u64,
}

/// Writes the checkpoint of `levels` (the current version's tables, per
/// level) from `src` into the new directory `dst`. Called with the
/// manifest lock held (see the module doc).
pub(crate) fn write(
    src: &Path,
    dst: &Path,
    levels: &[Vec<Arc<Table>>],
    gc_watermark: u64,
    next_file_number: u64,
) -> Result<CheckpointInfo> {
    create_empty_dir(dst)?;
    let mut edit = VersionEdit {
        // The checkpoint has no WAL: everything is in its tables.
        log_number: Some(next_file_number),
        next_file_number: Some(next_file_number + 1),
        gc_watermark: Some(gc_watermark),
        ..VersionEdit::default()
    };
    let mut files = Vec::new();
    let (mut linked, mut copied) = (0, 0);
    for (level, tables) in levels.iter().enumerate() {
        for table in tables {
            let meta = table.meta();
            let from = fs::table_path(src, meta.number);
            let to = fs::table_path(dst, meta.number);
            if link_or_copy(&from, &to)? {
                linked += 1;
            } else {
                copied += 1;
            }
            sync_file(&to)?;
            edit.added.push((level, meta.clone()));
            files.push(file_name(&to));
        }
    }
    // The manifest number is one the source engine never uses for anything
    // in this directory; `create` writes it, then `CURRENT`, and syncs both.
    let manifest = Manifest::create(dst, next_file_number, &edit)?;
    drop(manifest);
    files.push(fs::manifest_name(next_file_number));
    files.push("CURRENT".to_string());
    fs::sync_dir(dst)?;
    files.sort();
    Ok(CheckpointInfo { files, linked, copied, gc_watermark })
}

/// Prepares `dst` (which must not exist, or be empty) to be opened as a
/// database holding the contents of the checkpoint in `checkpoint`: tables
/// are hard-linked (or copied when linking fails), every other file is
/// copied, so the checkpoint stays untouched whatever the new database
/// does. Files that are no part of a database are refused. Everything is
/// fsynced. Damage is found by `Db::open(dst)`, as for any database.
pub fn clone_checkpoint(checkpoint: &Path, dst: &Path) -> Result<()> {
    create_empty_dir(dst)?;
    let entries = std::fs::read_dir(checkpoint).map_err(|e| Error::io(checkpoint, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(checkpoint, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::InvalidArgument(format!(
                "{} holds a file whose name is not UTF-8",
                checkpoint.display()
            )));
        };
        let from = checkpoint.join(name);
        let to = dst.join(name);
        match fs::parse_file_name(name) {
            Some(FileKind::Table(_)) => {
                link_or_copy(&from, &to)?;
            }
            Some(FileKind::Manifest(_)) => copy(&from, &to)?,
            _ if name == "CURRENT" => copy(&from, &to)?,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{} is not part of a checkpoint",
                    from.display()
                )));
            }
        }
        sync_file(&to)?;
    }
    fs::sync_dir(dst)
}

/// Creates `dir` if needed; refuses a directory that holds anything.
fn create_empty_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    if entries.next().is_some() {
        return Err(Error::InvalidArgument(format!(
            "checkpoint directory {} is not empty",
            dir.display()
        )));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::sync_dir(parent)?;
    }
    Ok(())
}

/// Hard-links `from` to `to`; copies it when the link fails for a reason
/// a copy can overcome. Returns whether it linked.
fn link_or_copy(from: &Path, to: &Path) -> Result<bool> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::AlreadyExists => {
            Err(Error::io(from, e))
        }
        // EXDEV (another file system), EPERM or ENOTSUP (no links there),
        // EMLINK (too many links): a copy does the same job.
        Err(_) => {
            copy(from, to)?;
            Ok(false)
        }
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| Error::io(from, e))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
