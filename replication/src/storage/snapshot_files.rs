//! The files of a snapshot ([`Snapshot::files`](crate::Snapshot::files)):
//! describing a directory (names, sizes, CRC32C), checking one against a
//! list, and receiving one in chunks ([`Receiver`]).
//!
//! A snapshot's files are written once and never changed: by the state
//! machine into a staging directory the node gives it (an engine
//! checkpoint), or by a follower's fetch from the leader. Everything here
//! reads or writes with a buffer of at most one chunk, so memory stays
//! bounded by the chunk size, never the snapshot's size.
//!
//! # Invariants
//! - A directory is accepted only when it holds exactly the listed files,
//!   each of the listed size and (when checked in full) checksum.
//! - A [`Receiver`] accepts chunks only in order (per file, at the offset
//!   it has reached), each with a matching checksum, never past a file's
//!   listed size; [`Receiver::finish`] checks every file whole and fsyncs
//!   the files and the directory before it says yes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::types::SnapshotFile;

/// The largest chunk a snapshot is streamed in.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Describes every file in `dir` (sorted by name); an absent directory is
/// an empty list.
pub fn describe(dir: &Path) -> Result<Vec<SnapshotFile>> {
    describe_reusing(dir, None)
}

/// As [`describe`], but a file that is a hard link to the same inode as
/// the same-named file of `previous` (a directory and its list: the last
/// snapshot's) takes its checksum from the list instead of reading it.
/// Snapshot files never change once written, so one inode has one
/// content: a checkpoint that links mostly the tables of the previous one
/// costs reading only the new tables.
pub fn describe_reusing(
    dir: &Path,
    previous: Option<(&Path, &[SnapshotFile])>,
) -> Result<Vec<SnapshotFile>> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for name in list(dir)? {
        let path = dir.join(&name);
        if !SnapshotFile::valid_name(&name) {
            return Err(Error::Io(format!("{}: unusable snapshot file name", path.display())));
        }
        let meta = std::fs::metadata(&path).map_err(|e| io(&path, "stat", e))?;
        let known = previous.and_then(|(pdir, pfiles)| {
            let old = pfiles.iter().find(|f| f.name == name && f.size == meta.len())?;
            let pmeta = std::fs::metadata(pdir.join(&name)).ok()?;
            (pmeta.ino() == meta.ino() && pmeta.dev() == meta.dev()).then_some(old.crc32c)
        });
        let (size, crc32c) = match known {
            Some(crc) => (meta.len(), crc),
            None => checksum(&path)?,
        };
        files.push(SnapshotFile { name, size, crc32c });
    }
    Ok(files)
}

/// Checks that `dir` holds exactly `files`, each of its size, and with
/// `full`, of its checksum (which reads every byte). A difference is
/// [`Error::CorruptFile`] naming the file.
pub fn verify(dir: &Path, files: &[SnapshotFile], full: bool) -> Result<()> {
    let present = list(dir)?;
    for name in &present {
        if !files.iter().any(|f| &f.name == name) {
            let path = dir.join(name);
            return Err(corrupt(&path, "a file that is not in the snapshot's list"));
        }
    }
    for f in files {
        let path = dir.join(&f.name);
        if !present.contains(&f.name) {
            return Err(corrupt(&path, "a snapshot file is missing"));
        }
        let size = std::fs::metadata(&path).map_err(|e| io(&path, "stat", e))?.len();
        if size != f.size {
            return Err(corrupt(&path, &format!("{size} bytes where {} were recorded", f.size)));
        }
        if full {
            let (_, crc) = checksum(&path)?;
            if crc != f.crc32c {
                return Err(corrupt(&path, "checksum mismatch"));
            }
        }
    }
    Ok(())
}

/// Fsyncs every file in `dir`, then `dir` itself.
pub fn sync_tree(dir: &Path) -> Result<()> {
    for name in list(dir)? {
        let path = dir.join(name);
        File::open(&path).and_then(|f| f.sync_all()).map_err(|e| io(&path, "sync", e))?;
    }
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, "sync directory", e))
}

/// The size and CRC32C of a file, read a chunk at a time.
pub fn checksum(path: &Path) -> Result<(u64, u32)> {
    let mut file = File::open(path).map_err(|e| io(path, "open", e))?;
    let mut buf = vec![0; MAX_CHUNK_BYTES];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = file.read(&mut buf).map_err(|e| io(path, "read", e))?;
        if n == 0 {
            return Ok((size, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
}

/// The names in `dir`, sorted; an absent directory has none.
fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, "list", e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, "list", e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| Error::Io(format!("{}: file name {n:?} is not UTF-8", dir.display())))?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

fn io(path: &Path, op: &str, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {op}: {e}", path.display()))
}

fn corrupt(path: &Path, reason: &str) -> Error {
    Error::CorruptFile { path: path.to_path_buf(), offset: 0, reason: reason.to_string() }
}

/// Why a streamed chunk or a received snapshot was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk for {0:?}, which is not a file of the snapshot")]
    UnknownFile(String),
    #[error("chunk of {file:?} at offset {offset}, where {expected} was expected")]
    OutOfOrder { file: String, offset: u64, expected: u64 },
    #[error("chunk of {file:?} at offset {offset} fails its checksum")]
    BadChecksum { file: String, offset: u64 },
    #[error("chunk of {len} bytes is larger than {max}")]
    TooLarge { len: usize, max: usize },
    #[error("{file:?} grows past its size of {size} bytes")]
    PastEnd { file: String, size: u64 },
    #[error("{file:?} is {got} bytes where {size} were listed")]
    Short { file: String, got: u64, size: u64 },
    #[error("{file:?} fails its whole-file checksum")]
    FileChecksum { file: String },
    #[error("snapshot file list is invalid: {0}")]
    BadList(String),
    #[error("writing the snapshot failed: {0}")]
    Io(String),
}

struct Incoming {
    listed: SnapshotFile,
    file: Option<File>,
    written: u64,
    crc: u32,
}

/// Writes a snapshot's files into a directory from chunks, checking each
/// (see the module doc). Dropping it before [`Receiver::finish`] leaves a
/// partial directory for the caller to remove.
pub struct Receiver {
    dir: PathBuf,
    files: BTreeMap<String, Incoming>,
    max_chunk_bytes: usize,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver of `files` into `dir`, which is created and must be
    /// empty (a leftover is removed first).
    pub fn new(
        dir: &Path,
        files: &[SnapshotFile],
        max_chunk_bytes: usize,
    ) -> std::result::Result<Receiver, ChunkError> {
        let mut map = BTreeMap::new();
        for f in files {
            if !SnapshotFile::valid_name(&f.name) {
                return Err(ChunkError::BadList(format!("file name {:?}", f.name)));
            }
            let incoming = Incoming { listed: f.clone(), file: None, written: 0, crc: 0 };
            if map.insert(f.name.clone(), incoming).is_some() {
                return Err(ChunkError::BadList(format!("{:?} listed twice", f.name)));
            }
        }
        let fail = |e: std::io::Error| ChunkError::Io(format!("{}: {e}", dir.display()));
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(fail)?;
        }
        std::fs::create_dir_all(dir).map_err(fail)?;
        Ok(Receiver { dir: dir.to_path_buf(), files: map, max_chunk_bytes })
    }

    /// Writes one chunk, after checking it.
    pub fn accept(
        &mut self,
        file: &str,
        offset: u64,
        data: &[u8],
        crc32c: u32,
    ) -> std::result::Result<(), ChunkError> {
        if data.len() > self.max_chunk_bytes {
            return Err(ChunkError::TooLarge { len: data.len(), max: self.max_chunk_bytes });
        }
        let Some(incoming) = self.files.get_mut(file) else {
            return Err(ChunkError::UnknownFile(file.to_string()));
        };
        if offset != incoming.written {
            return Err(ChunkError::OutOfOrder {
                file: file.to_string(),
                offset,
                expected: incoming.written,
            });
        }
        if crc32c::crc32c(data) != crc32c {
            return Err(ChunkError::BadChecksum { file: file.to_string(), offset });
        }
        let end = offset + data.len() as u64;
        if end > incoming.listed.size {
            return Err(ChunkError::PastEnd { file: file.to_string(), size: incoming.listed.size });
        }
        let path = self.dir.join(file);
        let fail = |e: std::io::Error| ChunkError::Io(format!("{}: {e}", path.display()));
        if incoming.file.is_none() {
            let f = OpenOptions::new().write(true).create_new(true).open(&path).map_err(fail)?;
            incoming.file = Some(f);
        }
        let f = incoming.file.as_mut().expect("opened above");
        f.write_all(data).map_err(fail)?;
        incoming.written = end;
        incoming.crc = crc32c::crc32c_append(incoming.crc, data);
        Ok(())
    }

    /// Checks that every file arrived whole with its checksum, fsyncs them
    /// and the directory; returns the directory.
    pub fn finish(self) -> std::result::Result<PathBuf, ChunkError> {
        for (name, incoming) in self.files {
            let Incoming { listed, file, written, crc } = incoming;
            if written != listed.size {
                return Err(ChunkError::Short { file: name, got: written, size: listed.size });
            }
            if crc != listed.crc32c {
                return Err(ChunkError::FileChecksum { file: name });
            }
            let path = self.dir.join(&name);
            let fail = |e: std::io::Error| ChunkError::Io(format!("{}: {e}", path.display()));
            match file {
                Some(f) => f.sync_all().map_err(fail)?,
                // An empty file gets no chunk: create it here.
                None => File::create(&path).and_then(|f| f.sync_all()).map_err(fail)?,
            }
        }
        sync_dir(&self.dir).map_err(|e| ChunkError::Io(e.to_string()))?;
        Ok(self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Vec<SnapshotFile>, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let contents: Vec<Vec<u8>> = vec![
            (0..3000u32).flat_map(|i| i.to_le_bytes()).collect(),
            Vec::new(),
            b"tiny".to_vec(),
        ];
        for (i, c) in contents.iter().enumerate() {
            std::fs::write(src.join(format!("f{i}")), c).unwrap();
        }
        let files = describe(&src).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].size, 12_000);
        verify(&src, &files, true).unwrap();
        (dir, files, contents)
    }

    fn send_all(r: &mut Receiver, files: &[SnapshotFile], contents: &[Vec<u8>], chunk: usize) {
        for (f, c) in files.iter().zip(contents) {
            for (k, piece) in c.chunks(chunk).enumerate() {
                r.accept(&f.name, (k * chunk) as u64, piece, crc32c::crc32c(piece)).unwrap();
            }
        }
    }

    #[test]
    fn chunks_rebuild_the_files_and_verify() {
        let (dir, files, contents) = setup();
        let dst = dir.path().join("dst");
        let mut r = Receiver::new(&dst, &files, 1000).unwrap();
        send_all(&mut r, &files, &contents, 1000);
        let out = r.finish().unwrap();
        verify(&out, &files, true).unwrap();
        assert_eq!(std::fs::read(out.join("f0")).unwrap(), contents[0]);
        assert_eq!(std::fs::read(out.join("f1")).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_chunks_are_refused() {
        let (dir, files, contents) = setup();
        let dst = dir.path().join("dst");
        let mut r = Receiver::new(&dst, &files, 1000).unwrap();
        let piece = &contents[0][..1000];
        let crc = crc32c::crc32c(piece);
        let mut flipped = piece.to_vec();
        flipped[10] ^= 1;
        assert!(matches!(r.accept("f0", 0, &flipped, crc), Err(ChunkError::BadChecksum { .. })));
        assert!(matches!(r.accept("f0", 1000, piece, crc), Err(ChunkError::OutOfOrder { .. })));
        assert!(matches!(r.accept("../x", 0, piece, crc), Err(ChunkError::UnknownFile(_))));
        assert!(matches!(r.accept("f2", 0, piece, crc), Err(ChunkError::PastEnd { .. })));
        let big = vec![0u8; 1001];
        let big_crc = crc32c::crc32c(&big);
        assert!(matches!(r.accept("f0", 0, &big, big_crc), Err(ChunkError::TooLarge { .. })));
        r.accept("f0", 0, piece, crc).unwrap();
        // Stopping short is refused at the end.
        assert!(matches!(r.finish(), Err(ChunkError::Short { .. })));

        // Right sizes, but a file whose chunks were consistently forged.
        let mut r = Receiver::new(&dst, &files, 1000).unwrap();
        let mut forged = contents.clone();
        forged[2][0] ^= 1;
        send_all(&mut r, &files, &forged, 1000);
        assert_eq!(r.finish().unwrap_err(), ChunkError::FileChecksum { file: "f2".into() });

        // A bad list is refused up front.
        let mut bad = files.clone();
        bad[0].name = "../etc".into();
        assert!(matches!(Receiver::new(&dst, &bad, 1000), Err(ChunkError::BadList(_))));
    }

    #[test]
    fn describe_reuses_checksums_of_the_same_inode_only() {
        let (dir, files, _) = setup();
        let src = dir.path().join("src");
        let next = dir.path().join("next");
        std::fs::create_dir(&next).unwrap();
        std::fs::hard_link(src.join("f0"), next.join("f0")).unwrap();
        std::fs::copy(src.join("f2"), next.join("f2")).unwrap(); // same bytes, new inode
        // A list claiming other checksums shows which were reused.
        let mut claimed = files.clone();
        for f in &mut claimed {
            f.crc32c ^= 1;
        }
        let got = describe_reusing(&next, Some((&src, &claimed))).unwrap();
        assert_eq!(got[0], claimed[0], "hard link: reused");
        assert_eq!(got[1], files[2], "copy: read again");
        assert_eq!(describe(&next).unwrap(), vec![files[0].clone(), files[2].clone()]);
    }

    #[test]
    fn verify_finds_missing_extra_short_and_damaged_files() {
        let (dir, files, _) = setup();
        let src = dir.path().join("src");
        let mut bytes = std::fs::read(src.join("f0")).unwrap();
        bytes[5] ^= 0x10;
        std::fs::write(src.join("f0"), &bytes).unwrap();
        verify(&src, &files, false).unwrap(); // same size: only the full check sees it
        assert!(matches!(verify(&src, &files, true), Err(Error::CorruptFile { .. })));
        std::fs::write(src.join("f2"), b"tin").unwrap();
        assert!(matches!(verify(&src, &files, false), Err(Error::CorruptFile { .. })));
        std::fs::remove_file(src.join("f2")).unwrap();
        assert!(matches!(verify(&src, &files, false), Err(Error::CorruptFile { .. })));
        std::fs::write(src.join("f2"), b"tiny").unwrap();
        std::fs::write(src.join("extra"), b"").unwrap();
        assert!(matches!(verify(&src, &files, false), Err(Error::CorruptFile { .. })));
    }
}
