//! [`FileStore`]: the durable [`LogStore`] on files, one directory per node.
//!
//! # Layout
//!
//! ```text
//! DIR/meta                               hard state, current snapshot, first live segment
//! DIR/snap-<index:020>-<term:020>        a snapshot (immutable once renamed into place)
//! DIR/snap-<index:020>-<term:020>.d/     its files (`Snapshot::files`), if it has any
//! DIR/snap-<index:020>-<term:020>.staged/  files gathered for a snapshot not yet stored
//! DIR/log-<seq:020>                      log segments, records appended, seq = 1, 2, 3, ...
//! DIR/*.tmp                              a file being written atomically (deleted on open)
//! DIR/fetch/                             not the store's: the node's snapshot fetches
//! ```
//!
//! `meta` and snapshots are replaced atomically: written to `NAME.tmp`,
//! fsynced, renamed over `NAME`, and the directory fsynced. `meta` is the
//! single switch point: it names the current snapshot (by index and term)
//! and the first live segment. Snapshots and segments it does not reach are
//! garbage, deleted on open.
//!
//! A snapshot with files (an engine checkpoint, see `crate::node`) keeps
//! them in the directory `snap-...d` beside its file. The node gathers them
//! first in `snap-...staged` ([`FileStore::staging_dir`]: the state machine
//! writes its checkpoint there, or a fetch from the leader lands there);
//! storing the snapshot checks their sizes against the list, fsyncs them,
//! renames the directory to `snap-...d` and syncs `DIR`, all before the
//! snapshot file and `meta` are written, so `meta` never names a snapshot
//! whose files are not durable. The previous snapshot's directory is
//! deleted after the switch; on open, a listed file that is missing or of
//! the wrong size is [`Error::CorruptFile`] (checksums are checked by the
//! node before it restores from them: [`snapshot_files::verify`]).
//!
//! # Formats (little-endian)
//!
//! ```text
//! meta:      "STRAMETA" | version u32 = 1 | term u64 | has_vote u8 | vote u64 |
//!            commit u64 | snapshot_index u64 | snapshot_term u64 |
//!            first_segment u64 | crc32c u32 (of everything before it)
//! snapshot:  "STRASNAP" | version u32 = 2 | index u64 | term u64 |
//!            voters u32 | voter u64 * voters | data_len u64 | data |
//!            files u32 | (name_len u16 | name | size u64 | crc32c u32) * files |
//!            crc32c u32 (of everything before it)
//!            (version 1, still read, has no file list)
//! segment:   header "STRALOG1" | seq u64 | crc32c u32 (of the 16 bytes before)
//!            then records:
//! record:    len u32 | payload crc32c u32 | header crc32c u32 (of the 8 bytes
//!            before) | payload (len bytes)
//! payload:   1 u8 | first_index u64 | count u32 | entry * count     (entries)
//!            2 u8 | commit u64                                      (commit index)
//! entry:     term u64 | 0 u8                                        (empty)
//!                     | 1 u8 | len u32 | bytes                      (command)
//!                     | 2 u8 | voters u32 | voter u64 * voters      (membership)
//! ```
//!
//! The log is the replay of the records in order: an entries record replaces
//! every entry at or after its `first_index` (the `LogStore::append`
//! contract), so truncating a conflicting suffix never rewrites a file;
//! entries at or below the snapshot's index are skipped. The hard state's
//! term and vote live in `meta`, written (after syncing the segment, so the
//! order of writes is kept) whenever they change, which happens once per
//! election; the commit index, which changes with nearly every `Ready`, is
//! a small record in the segment, synced with the next entries (a `Ready`
//! that only moves it asks for no sync: `Ready::must_sync`). A crash may
//! lose it, or tear it as a torn tail; the restarted node then starts from
//! an older commit index and learns the rest from the leader.
//!
//! # Invariants
//!
//! - Every live segment except the last was fsynced before the next one was
//!   created, so damage in it is corruption, never a torn write; it ends
//!   exactly at its last record. Only the last segment ends in zeros.
//! - Segments are numbered without gaps from `meta.first_segment`.
//! - `sync` returns only after everything written before it is on disk
//!   (segment `fdatasync`, and the directory when a segment was created).
//! - Compaction deletes whole segments only, and only a prefix of them whose
//!   every entry is covered by the snapshot; the last segment is never
//!   deleted by compaction.
//! - After an I/O error the store refuses every further call (the page cache
//!   can no longer be trusted); the node reopens it, which is recovery.
//! - Opening syncs the last segment: records a crashed process wrote but
//!   never synced may still be in the page cache, and recovery reads them
//!   as the log, which the node may then acknowledge.
//!
//! # Zeros ahead of the tail
//!
//! A segment grows by its records, and an `fdatasync` after a write that
//! grew the file must also write the inode (its size and new blocks): a
//! second synchronous I/O on every sync. So before records pass the end of
//! the file, the store writes [`ZERO_AHEAD_BYTES`] of zeros beyond them
//! (as the storage engine's WAL does, and PostgreSQL's `wal_init_zero`):
//! one inode write per `ZERO_AHEAD_BYTES` of log instead of one per sync.
//! The last segment therefore ends in zeros (a segment is cut to its
//! records when the next one starts); recovery reads all-zero bytes after
//! the last record of the last segment as its end, not as damage.
//!
//! # Recovery
//!
//! [`FileStore::open`] reads `meta`, the snapshot it names, and the live
//! segments. A record that fails its checks in the *last* segment is a torn
//! tail when no valid record follows it: the file is cut back to the last
//! good record (those bytes were never synced, so never acknowledged). A bad
//! record anywhere else, or one followed by a valid record (which proves the
//! damaged bytes were synced), is corruption: open fails with
//! [`Error::CorruptFile`] naming the file and offset.
//!
//! # Assumptions about the disk
//!
//! `fsync`/`fdatasync` make written data durable; a crash may leave any
//! subset of unsynced bytes (a torn tail), which the checksums catch; a
//! rename is atomic; a damaged *last* record of the last segment cannot be
//! told from a torn write, so it is dropped as one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::{LogStore, snapshot_files};
use crate::types::{
    Entry, HardState, Index, Membership, Payload, Persisted, Snapshot, SnapshotFile, Term,
};

const META: &str = "meta";
const META_MAGIC: &[u8; 8] = b"STRAMETA";
const SNAP_MAGIC: &[u8; 8] = b"STRASNAP";
const SEGMENT_MAGIC: &[u8; 8] = b"STRALOG1";
const VERSION: u32 = 1;
/// The snapshot file's format version (1: no file list).
const SNAP_VERSION: u32 = 2;
const SEGMENT_HEADER_BYTES: u64 = 20;
const RECORD_HEADER_BYTES: u64 = 12;
const KIND_ENTRIES: u8 = 1;
const KIND_COMMIT: u8 = 2;
/// An entries record is cut after this many payload bytes (a single larger
/// entry gets a record of its own).
const RECORD_TARGET_BYTES: usize = 1 << 20;

/// How far past the last record a segment is filled with zeros (module doc).
pub const ZERO_AHEAD_BYTES: u64 = 256 << 10;

/// Tunables of a [`FileStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// A segment that reached this size is closed and a new one started.
    pub segment_size_bytes: u64,
}

impl Default for FileStoreOptions {
    fn default() -> FileStoreOptions {
        FileStoreOptions { segment_size_bytes: 64 << 20 }
    }
}

/// What `meta` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    hard_state: HardState,
    snapshot_index: Index,
    snapshot_term: Term,
    first_segment: u64,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    seq: u64,
    size_bytes: u64,
    /// The largest entry index any record in it wrote (0 if none).
    max_index: Index,
}

/// The durable log store. See the module doc.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    options: FileStoreOptions,
    /// As last written to disk.
    meta: Meta,
    /// Live segments, oldest first; the last is open in `file`.
    segments: Vec<Segment>,
    file: File,
    /// Every byte of the last segment before this offset was written, with
    /// records or zeros (module doc); the records end at its `size_bytes`.
    zeroed: u64,
    /// The last segment has writes not yet synced.
    dirty: bool,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
    /// The commit index last written (to `meta` or as a record).
    commit: Index,
    /// A write failed: refuse everything until reopened.
    failed: bool,
}

impl FileStore {
    /// Opens the store in `dir`, recovering it (see the module doc); a new
    /// or empty directory gets a store holding `initial`, durably.
    pub fn open(
        dir: impl AsRef<Path>,
        options: FileStoreOptions,
        initial: &Persisted,
    ) -> Result<FileStore> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create directory", e))?;
        if !dir.join(META).exists() {
            create(&dir, initial)?;
        }
        let recovered = recover(&dir)?;
        // Repair: cut a torn tail, remove what `meta` does not reach.
        if let Some((seq, 0)) = recovered.torn {
            create_segment(&dir, seq)?;
        } else if let Some((seq, len)) = recovered.torn {
            let path = segment_path(&dir, seq);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, "open", e))?;
            file.set_len(len).map_err(|e| io_error(&path, "truncate torn tail", e))?;
            file.sync_all().map_err(|e| io_error(&path, "sync", e))?;
        }
        remove_garbage(&dir, &recovered.meta)?;
        let mut segments = recovered.segments;
        let mut dir_dirty = false;
        if segments.is_empty() {
            let seq = recovered.meta.first_segment;
            create_segment(&dir, seq)?;
            segments.push(Segment { seq, size_bytes: SEGMENT_HEADER_BYTES, max_index: 0 });
            dir_dirty = true;
        }
        let last = segments.last().expect("one segment at least");
        let path = segment_path(&dir, last.seq);
        let file =
            OpenOptions::new().write(true).open(&path).map_err(|e| io_error(&path, "open", e))?;
        // Recovery checked that everything past the records is zeros.
        let zeroed = file.metadata().map_err(|e| io_error(&path, "stat", e))?.len();
        let mut store = FileStore {
            dir,
            options,
            meta: recovered.meta,
            segments,
            file,
            zeroed,
            // What recovery read may be only in the page cache (module doc).
            dirty: true,
            dir_dirty,
            commit: recovered.commit,
            failed: false,
        };
        store.sync()?;
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the files of the stored snapshot `index`/`term` live (the
    /// directory exists only while that snapshot is the current one and
    /// has files).
    pub fn snapshot_dir(&self, index: Index, term: Term) -> PathBuf {
        self.dir.join(snapshot_dir_name(index, term))
    }

    /// An empty directory (created, emptied if it existed) where the files
    /// of snapshot `index`/`term` are gathered before that snapshot is
    /// stored with `compact` or `install_snapshot` (module doc).
    pub fn staging_dir(&self, index: Index, term: Term) -> Result<PathBuf> {
        self.check()?;
        let path = self.staged_path(index, term);
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| io_error(&path, "remove", e))?;
        }
        fs::create_dir_all(&path).map_err(|e| io_error(&path, "create", e))?;
        Ok(path)
    }

    /// The name [`FileStore::staging_dir`] gives, without touching it (for
    /// a caller that renames a finished directory into place).
    pub fn staged_path(&self, index: Index, term: Term) -> PathBuf {
        self.dir.join(format!("{}.staged", snapshot_name(index, term)))
    }

    /// The live segments' sequence numbers, oldest first (for tests and metrics).
    pub fn segment_seqs(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.seq).collect()
    }

    /// Where the records of the last segment end: the file goes on with
    /// zeros (module doc). For tests and metrics.
    pub fn last_segment_len(&self) -> u64 {
        self.segments.last().expect("one segment at least").size_bytes
    }

    fn check(&self) -> Result<()> {
        if self.failed {
            return Err(Error::Io(format!(
                "{}: an earlier write failed; reopen the store",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Runs `f`, remembering a failure so that every later call refuses.
    fn guard<T>(&mut self, f: impl FnOnce(&mut FileStore) -> Result<T>) -> Result<T> {
        self.check()?;
        let result = f(self);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn last_path(&self) -> PathBuf {
        segment_path(&self.dir, self.segments.last().expect("one segment at least").seq)
    }

    fn write_record(&mut self, payload: &[u8]) -> Result<()> {
        let buf = frame_record(payload)?;
        let path = self.last_path();
        let at = self.segments.last().expect("one segment at least").size_bytes;
        let end = at + buf.len() as u64;
        if end > self.zeroed {
            // Zeros past the record first (module doc), then the record.
            let to = end.next_multiple_of(ZERO_AHEAD_BYTES) + ZERO_AHEAD_BYTES;
            strata_lsm::write_zeros(&self.file, self.zeroed.max(end), to)
                .map_err(|e| io_error(&path, "write", e))?;
            self.zeroed = to;
        }
        self.file.write_all_at(&buf, at).map_err(|e| io_error(&path, "write", e))?;
        self.segments.last_mut().expect("one segment at least").size_bytes = end;
        self.dirty = true;
        Ok(())
    }

    /// Makes the last segment's writes durable.
    fn sync_segment(&mut self) -> Result<()> {
        if self.dirty {
            let path = self.last_path();
            self.file.sync_data().map_err(|e| io_error(&path, "sync", e))?;
            self.dirty = false;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Closes the last segment (its zeros cut off, synced) and starts the
    /// next one: only the last segment ends in zeros.
    fn roll(&mut self) -> Result<()> {
        let size = self.segments.last().expect("one segment at least").size_bytes;
        if self.zeroed > size {
            let path = self.last_path();
            self.file.set_len(size).map_err(|e| io_error(&path, "cut zeros", e))?;
            self.dirty = true;
        }
        self.sync_segment()?;
        let seq = self.segments.last().expect("one segment at least").seq + 1;
        create_segment(&self.dir, seq)?;
        let path = segment_path(&self.dir, seq);
        self.file =
            OpenOptions::new().write(true).open(&path).map_err(|e| io_error(&path, "open", e))?;
        self.zeroed = SEGMENT_HEADER_BYTES;
        self.segments.push(Segment { seq, size_bytes: SEGMENT_HEADER_BYTES, max_index: 0 });
        self.dir_dirty = true;
        Ok(())
    }

    fn write_meta(&mut self, meta: Meta) -> Result<()> {
        write_atomic(&self.dir, META, &encode_meta(&meta))?;
        self.meta = meta;
        self.commit = meta.hard_state.commit;
        Ok(())
    }

    /// Stores `snapshot` as the base of the log, keeping the segments from
    /// `first_segment` on, and deletes what is no longer reachable.
    fn switch_snapshot(&mut self, snapshot: &Snapshot, first_segment: u64) -> Result<()> {
        let files_dir = self.snapshot_dir(snapshot.index, snapshot.term);
        let staged = self.staged_path(snapshot.index, snapshot.term);
        if !snapshot.files.is_empty() && !files_dir.exists() {
            snapshot_files::verify(&staged, &snapshot.files, false)?;
            snapshot_files::sync_tree(&staged)?;
            fs::rename(&staged, &files_dir).map_err(|e| io_error(&staged, "rename", e))?;
            sync_dir(&self.dir)?;
        } else if !snapshot.files.is_empty() {
            snapshot_files::verify(&files_dir, &snapshot.files, false)?;
        }
        write_atomic(
            &self.dir,
            &snapshot_name(snapshot.index, snapshot.term),
            &encode_snapshot(snapshot),
        )?;
        let old = self.meta;
        let hard_state = HardState { commit: self.commit, ..old.hard_state };
        self.write_meta(Meta {
            hard_state,
            snapshot_index: snapshot.index,
            snapshot_term: snapshot.term,
            first_segment,
        })?;
        self.segments.retain(|s| s.seq >= first_segment);
        remove_garbage(&self.dir, &self.meta)
    }
}

impl LogStore for FileStore {
    fn load(&self) -> Result<Persisted> {
        self.check()?;
        Ok(recover(&self.dir)?.persisted)
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<()> {
        self.guard(|s| {
            let durable = s.meta.hard_state;
            if (hard_state.term, hard_state.vote) != (durable.term, durable.vote) {
                // Keep the order of writes: what was appended before is synced first.
                s.sync_segment()?;
                let meta = Meta { hard_state, ..s.meta };
                s.write_meta(meta)
            } else if hard_state.commit != s.commit {
                let mut payload = vec![KIND_COMMIT];
                payload.extend_from_slice(&hard_state.commit.to_le_bytes());
                s.write_record(&payload)?;
                s.commit = hard_state.commit;
                Ok(())
            } else {
                Ok(())
            }
        })
    }

    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.guard(|s| {
            let mut rest = entries;
            while !rest.is_empty() {
                if s.segments.last().expect("one segment").size_bytes
                    >= s.options.segment_size_bytes
                {
                    s.roll()?;
                }
                let (payload, taken) = encode_entries(rest, s.options.segment_size_bytes);
                s.write_record(&payload)?;
                let last = rest[taken - 1].index;
                let segment = s.segments.last_mut().expect("one segment");
                segment.max_index = segment.max_index.max(last);
                rest = &rest[taken..];
            }
            Ok(())
        })
    }

    fn compact(&mut self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.index <= self.meta.snapshot_index {
            return Err(Error::InvalidSnapshot {
                index: snapshot.index,
                applied: snapshot.index,
                snapshot: self.meta.snapshot_index,
            });
        }
        self.guard(|s| {
            s.sync_segment()?;
            // Whole segments only, a prefix of them, never the last.
            let last = s.segments.last().expect("one segment").seq;
            let first = s
                .segments
                .iter()
                .find(|seg| seg.max_index > snapshot.index)
                .map_or(last, |seg| seg.seq)
                .min(last);
            s.switch_snapshot(snapshot, first)
        })
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.guard(|s| {
            // The whole log goes: start a fresh segment and make it the first.
            s.roll()?;
            s.sync_segment()?;
            let first = s.segments.last().expect("one segment").seq;
            s.switch_snapshot(snapshot, first)
        })
    }

    fn sync(&mut self) -> Result<()> {
        self.guard(|s| s.sync_segment())
    }
}

// ------------------------------------------------------------------ recovery

struct Recovered {
    meta: Meta,
    persisted: Persisted,
    segments: Vec<Segment>,
    /// The commit index after replaying the commit records.
    commit: Index,
    /// The last segment has a torn tail: (seq, length of its good prefix).
    torn: Option<(u64, u64)>,
}

fn recover(dir: &Path) -> Result<Recovered> {
    let meta_path = dir.join(META);
    let meta = decode_meta(&read_file(&meta_path)?)
        .map_err(|(offset, reason)| corrupt(&meta_path, offset, reason))?;
    let snap_path = dir.join(snapshot_name(meta.snapshot_index, meta.snapshot_term));
    let snapshot = decode_snapshot(&read_file(&snap_path)?)
        .map_err(|(offset, reason)| corrupt(&snap_path, offset, reason))?;
    if (snapshot.index, snapshot.term) != (meta.snapshot_index, meta.snapshot_term) {
        return Err(corrupt(&snap_path, 8, "snapshot index or term differs from its name".into()));
    }
    if !snapshot.files.is_empty() {
        let files_dir = dir.join(snapshot_dir_name(snapshot.index, snapshot.term));
        snapshot_files::verify(&files_dir, &snapshot.files, false)?;
    }
    let mut seqs: Vec<u64> = list(dir)?
        .iter()
        .filter_map(|name| parse_segment_name(name))
        .filter(|seq| *seq >= meta.first_segment)
        .collect();
    seqs.sort_unstable();
    for (k, seq) in seqs.iter().enumerate() {
        if *seq != meta.first_segment + k as u64 {
            let missing = segment_path(dir, meta.first_segment + k as u64);
            return Err(corrupt(&missing, 0, "log segment missing".into()));
        }
    }
    let base = snapshot.index;
    let mut entries: Vec<Entry> = Vec::new();
    let mut commit = meta.hard_state.commit;
    let mut segments = Vec::new();
    let mut torn = None;
    for (k, &seq) in seqs.iter().enumerate() {
        let path = segment_path(dir, seq);
        let bytes = read_file(&path)?;
        let is_last = k + 1 == seqs.len();
        let mut segment = Segment { seq, size_bytes: bytes.len() as u64, max_index: 0 };
        match check_segment_header(&bytes, seq) {
            Ok(()) => {}
            // A segment created just before a crash, header not synced yet.
            // (`open` writes the header again.)
            Err(_) if is_last && valid_record_after(&bytes, 0).is_none() => {
                torn = Some((seq, 0));
                segment.size_bytes = SEGMENT_HEADER_BYTES;
                segments.push(segment);
                continue;
            }
            Err(reason) => return Err(corrupt(&path, 0, reason)),
        }
        let mut offset = SEGMENT_HEADER_BYTES as usize;
        while offset < bytes.len() {
            let record = match read_record(&bytes, offset) {
                Ok(record) => record,
                // Zeros ahead of the tail (module doc): the end.
                Err(_) if is_last && bytes[offset..].iter().all(|&b| b == 0) => {
                    segment.size_bytes = offset as u64;
                    break;
                }
                Err(reason) => {
                    if is_last && valid_record_after(&bytes, offset + 1).is_none() {
                        torn = Some((seq, offset as u64));
                        segment.size_bytes = offset as u64;
                        break;
                    }
                    return Err(corrupt(&path, offset as u64, reason));
                }
            };
            let payload = &bytes[offset + RECORD_HEADER_BYTES as usize..][..record];
            match decode_payload(payload) {
                Ok(Decoded::Entries(batch)) => {
                    // Replaces everything from the batch's first index on,
                    // even when that index is covered by the snapshot.
                    let first = batch.first().map_or(base + 1, |e| e.index);
                    let keep = first.saturating_sub(1).max(base) - base;
                    if keep > entries.len() as u64 {
                        let last = base + entries.len() as u64;
                        let reason = format!("entry {first} leaves a gap after {last}");
                        return Err(corrupt(&path, offset as u64, reason));
                    }
                    entries.truncate(keep as usize);
                    for e in batch {
                        segment.max_index = segment.max_index.max(e.index);
                        if e.index > base {
                            entries.push(e);
                        }
                    }
                }
                Ok(Decoded::Commit(c)) => commit = commit.max(c),
                // The checksums passed, so this was written this way: corruption.
                Err(reason) => return Err(corrupt(&path, offset as u64, reason)),
            }
            offset += RECORD_HEADER_BYTES as usize + record;
        }
        segments.push(segment);
    }
    let last_index = base + entries.len() as u64;
    let hard_state = HardState { commit: commit.min(last_index).max(base), ..meta.hard_state };
    let persisted = Persisted { hard_state, snapshot, entries };
    Ok(Recovered { meta, persisted, segments, commit, torn })
}

/// The payload length of the valid record at `offset`, or why it is not one.
fn read_record(bytes: &[u8], offset: usize) -> std::result::Result<usize, String> {
    let header = bytes
        .get(offset..offset + RECORD_HEADER_BYTES as usize)
        .ok_or_else(|| "record header cut short".to_string())?;
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    if crc32c::crc32c(&header[..8]) != word(8) {
        return Err("record header checksum mismatch".into());
    }
    let len = word(0) as usize;
    let payload = bytes
        .get(offset + RECORD_HEADER_BYTES as usize..)
        .and_then(|rest| rest.get(..len))
        .ok_or_else(|| format!("record of {len} bytes runs past the end of the file"))?;
    if crc32c::crc32c(payload) != word(4) {
        return Err("record checksum mismatch".into());
    }
    Ok(len)
}

/// The offset of the first valid record at or after `from`, if any: proof
/// that the bytes before it were synced, so damage there is not a torn tail.
fn valid_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    let end = bytes.len().checked_sub(RECORD_HEADER_BYTES as usize)?;
    (from..=end).find(|&offset| read_record(bytes, offset).is_ok_and(|len| len > 0))
}

fn check_segment_header(bytes: &[u8], seq: u64) -> std::result::Result<(), String> {
    let header = bytes
        .get(..SEGMENT_HEADER_BYTES as usize)
        .ok_or_else(|| "segment header cut short".to_string())?;
    if &header[..8] != SEGMENT_MAGIC {
        return Err("not a log segment (bad magic)".into());
    }
    if crc32c::crc32c(&header[..16]).to_le_bytes() != header[16..20] {
        return Err("segment header checksum mismatch".into());
    }
    if header[8..16] != seq.to_le_bytes() {
        return Err("segment header names another sequence number".into());
    }
    Ok(())
}

// ------------------------------------------------------------------ creation and files

fn create(dir: &Path, initial: &Persisted) -> Result<()> {
    // Leftovers of a creation that crashed before `meta` was written.
    for name in list(dir)? {
        if parse_segment_name(&name).is_some()
            || name.starts_with("snap-")
            || name.ends_with(".tmp")
        {
            remove_path(&dir.join(&name))?;
        }
    }
    let snapshot = &initial.snapshot;
    write_atomic(dir, &snapshot_name(snapshot.index, snapshot.term), &encode_snapshot(snapshot))?;
    create_segment(dir, 1)?;
    let path = segment_path(dir, 1);
    let mut file =
        OpenOptions::new().append(true).open(&path).map_err(|e| io_error(&path, "open", e))?;
    let mut rest = &initial.entries[..];
    while !rest.is_empty() {
        let (payload, taken) = encode_entries(rest, RECORD_TARGET_BYTES as u64);
        file.write_all(&frame_record(&payload)?).map_err(|e| io_error(&path, "write", e))?;
        rest = &rest[taken..];
    }
    file.sync_all().map_err(|e| io_error(&path, "sync", e))?;
    let meta = Meta {
        hard_state: initial.hard_state,
        snapshot_index: snapshot.index,
        snapshot_term: snapshot.term,
        first_segment: 1,
    };
    write_atomic(dir, META, &encode_meta(&meta))
}

/// Creates segment `seq` holding only its header, synced (the directory is not).
fn create_segment(dir: &Path, seq: u64) -> Result<()> {
    let path = segment_path(dir, seq);
    let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_error(&path, "create", e))?;
    file.write_all(&header).map_err(|e| io_error(&path, "write", e))?;
    file.sync_all().map_err(|e| io_error(&path, "sync", e))
}

/// Deletes temporary files, snapshots other than the current one, and
/// segments before the first live one.
fn remove_garbage(dir: &Path, meta: &Meta) -> Result<()> {
    let current = snapshot_name(meta.snapshot_index, meta.snapshot_term);
    let current_dir = snapshot_dir_name(meta.snapshot_index, meta.snapshot_term);
    let mut removed = false;
    for name in list(dir)? {
        let dead = name.ends_with(".tmp")
            || (name.starts_with("snap-") && name != current && name != current_dir)
            || parse_segment_name(&name).is_some_and(|seq| seq < meta.first_segment);
        if dead {
            remove_path(&dir.join(&name))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes a file, or a directory with everything in it.
fn remove_path(path: &Path) -> Result<()> {
    let result = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    result.map_err(|e| io_error(path, "remove", e))
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, "create", e))?;
    file.write_all(bytes).map_err(|e| io_error(&tmp, "write", e))?;
    file.sync_all().map_err(|e| io_error(&tmp, "sync", e))?;
    fs::rename(&tmp, &path).map_err(|e| io_error(&path, "rename", e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, "sync directory", e))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io_error(path, "read", e))?;
    Ok(bytes)
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, "list", e))? {
        let entry = entry.map_err(|e| io_error(dir, "list", e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("log-{seq:020}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn snapshot_name(index: Index, term: Term) -> String {
    format!("snap-{index:020}-{term:020}")
}

fn snapshot_dir_name(index: Index, term: Term) -> String {
    format!("{}.d", snapshot_name(index, term))
}

/// Where a [`FileStore`] in `dir` keeps the files of snapshot
/// `index`/`term` (see the module doc).
pub fn snapshot_dir(dir: &Path, index: Index, term: Term) -> PathBuf {
    dir.join(snapshot_dir_name(index, term))
}

fn io_error(path: &Path, op: &str, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {op}: {e}", path.display()))
}

fn corrupt(path: &Path, offset: u64, reason: String) -> Error {
    Error::CorruptFile { path: path.to_path_buf(), offset, reason }
}

// ------------------------------------------------------------------ encoding

/// A record: its header, then `payload`.
fn frame_record(payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::Io(format!("record of {} bytes is too large", payload.len())))?;
    let mut buf = Vec::with_capacity(payload.len() + RECORD_HEADER_BYTES as usize);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&header_crc.to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(buf)
}

/// Encodes a prefix of `entries` as one record payload of about
/// `target_bytes` at most (`RECORD_TARGET_BYTES` at most); returns it and
/// how many entries it holds (at least one).
fn encode_entries(entries: &[Entry], target_bytes: u64) -> (Vec<u8>, usize) {
    let target = (target_bytes as usize).min(RECORD_TARGET_BYTES);
    let mut out = vec![KIND_ENTRIES];
    out.extend_from_slice(&entries[0].index.to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut count = 0usize;
    for e in entries {
        if count > 0 && (out.len() >= target || count == u32::MAX as usize) {
            break;
        }
        out.extend_from_slice(&e.term.to_le_bytes());
        match &e.payload {
            Payload::Empty => out.push(0),
            Payload::Command(bytes) => {
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Payload::Membership(m) => {
                out.push(2);
                encode_voters(&mut out, m);
            }
        }
        count += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&(count as u32).to_le_bytes());
    (out, count)
}

fn encode_voters(out: &mut Vec<u8>, m: &Membership) {
    out.extend_from_slice(&(m.voters.len() as u32).to_le_bytes());
    for v in &m.voters {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

enum Decoded {
    Entries(Vec<Entry>),
    Commit(Index),
}

/// A cursor over bytes that fails instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn voters(&mut self) -> DecodeResult<Membership> {
        let n = self.u32()? as usize;
        if n > self.bytes.len() / 8 {
            return Err(format!("{n} voters cannot fit"));
        }
        let mut voters = Vec::with_capacity(n);
        for _ in 0..n {
            voters.push(self.u64()?);
        }
        Ok(Membership::new(voters))
    }

    fn done(&self) -> DecodeResult<()> {
        if self.pos != self.bytes.len() {
            return Err(format!("{} trailing bytes", self.bytes.len() - self.pos));
        }
        Ok(())
    }
}

fn decode_payload(payload: &[u8]) -> DecodeResult<Decoded> {
    let mut r = Reader::new(payload);
    let decoded = match r.u8()? {
        KIND_ENTRIES => {
            let first = r.u64()?;
            let count = r.u32()? as usize;
            // Each entry takes at least 9 bytes: no allocation beyond the input.
            let mut entries = Vec::with_capacity(count.min(payload.len() / 9));
            for k in 0..count {
                let index = first
                    .checked_add(k as u64)
                    .filter(|i| *i > 0)
                    .ok_or_else(|| "entry index out of range".to_string())?;
                let term = r.u64()?;
                let payload = match r.u8()? {
                    0 => Payload::Empty,
                    1 => {
                        let len = r.u32()? as usize;
                        Payload::Command(r.take(len)?.to_vec())
                    }
                    2 => Payload::Membership(r.voters()?),
                    tag => return Err(format!("unknown entry kind {tag}")),
                };
                entries.push(Entry { index, term, payload });
            }
            Decoded::Entries(entries)
        }
        KIND_COMMIT => Decoded::Commit(r.u64()?),
        kind => return Err(format!("unknown record kind {kind}")),
    };
    r.done()?;
    Ok(decoded)
}

fn encode_meta(meta: &Meta) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&meta.hard_state.term.to_le_bytes());
    out.push(u8::from(meta.hard_state.vote.is_some()));
    out.extend_from_slice(&meta.hard_state.vote.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&meta.hard_state.commit.to_le_bytes());
    out.extend_from_slice(&meta.snapshot_index.to_le_bytes());
    out.extend_from_slice(&meta.snapshot_term.to_le_bytes());
    out.extend_from_slice(&meta.first_segment.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes `meta`; on failure, the offset and the reason.
fn decode_meta(bytes: &[u8]) -> std::result::Result<Meta, (u64, String)> {
    let body = check_trailing_crc(bytes, META_MAGIC, Some(VERSION))?;
    let mut r = Reader::new(body);
    let at = |r: &Reader<'_>, e: String| (r.pos as u64, e);
    r.take(12).map_err(|e| (0, e))?;
    let term = r.u64().map_err(|e| at(&r, e))?;
    let has_vote = r.u8().map_err(|e| at(&r, e))?;
    let vote = r.u64().map_err(|e| at(&r, e))?;
    let commit = r.u64().map_err(|e| at(&r, e))?;
    let snapshot_index = r.u64().map_err(|e| at(&r, e))?;
    let snapshot_term = r.u64().map_err(|e| at(&r, e))?;
    let first_segment = r.u64().map_err(|e| at(&r, e))?;
    r.done().map_err(|e| at(&r, e))?;
    if has_vote > 1 || first_segment == 0 {
        return Err((20, "invalid field".into()));
    }
    Ok(Meta {
        hard_state: HardState { term, vote: (has_vote == 1).then_some(vote), commit },
        snapshot_index,
        snapshot_term,
        first_segment,
    })
}

fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + snapshot.data.len());
    out.extend_from_slice(SNAP_MAGIC);
    out.extend_from_slice(&SNAP_VERSION.to_le_bytes());
    out.extend_from_slice(&snapshot.index.to_le_bytes());
    out.extend_from_slice(&snapshot.term.to_le_bytes());
    encode_voters(&mut out, &snapshot.membership);
    out.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    out.extend_from_slice(&snapshot.data);
    out.extend_from_slice(&(snapshot.files.len() as u32).to_le_bytes());
    for f in &snapshot.files {
        // Names are short (`SnapshotFile::valid_name`); a longer one could
        // not have been listed.
        let name = &f.name.as_bytes()[..f.name.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&f.size.to_le_bytes());
        out.extend_from_slice(&f.crc32c.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_snapshot(bytes: &[u8]) -> std::result::Result<Snapshot, (u64, String)> {
    let version = bytes.get(8..12).map(|v| u32::from_le_bytes(v.try_into().expect("4 bytes")));
    let body =
        check_trailing_crc(bytes, SNAP_MAGIC, version.filter(|v| (1..=SNAP_VERSION).contains(v)))?;
    let mut r = Reader::new(body);
    let decode = |r: &mut Reader<'_>| -> DecodeResult<Snapshot> {
        r.take(12)?;
        let index = r.u64()?;
        let term = r.u64()?;
        let membership = r.voters()?;
        let len = usize::try_from(r.u64()?).map_err(|_| "data length".to_string())?;
        let data = r.take(len)?.to_vec();
        let mut files = Vec::new();
        if version == Some(2) {
            let n = r.u32()? as usize;
            for _ in 0..n {
                let name_len = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes"));
                let name = std::str::from_utf8(r.take(name_len as usize)?)
                    .map_err(|_| "file name is not UTF-8".to_string())?
                    .to_string();
                if !SnapshotFile::valid_name(&name) {
                    return Err(format!("invalid snapshot file name {name:?}"));
                }
                files.push(SnapshotFile { name, size: r.u64()?, crc32c: r.u32()? });
            }
        }
        r.done()?;
        Ok(Snapshot { index, term, membership, data, files })
    };
    decode(&mut r).map_err(|e| (r.pos as u64, e))
}

/// Checks the magic, version and trailing checksum of a whole-file format;
/// returns the bytes before the checksum.
fn check_trailing_crc<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: Option<u32>,
) -> std::result::Result<&'a [u8], (u64, String)> {
    if bytes.len() < 16 || &bytes[..8] != magic {
        return Err((0, "bad magic or file cut short".into()));
    }
    if version.is_none_or(|v| bytes[8..12] != v.to_le_bytes()) {
        return Err((8, "unknown format version".into()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(((bytes.len() - 4) as u64, "file checksum mismatch".into()));
    }
    Ok(body)
}
