//! The manifest: a log of [`VersionEdit`]s that makes changes to the set of
//! live files atomic.
//!
//! Each edit is one record ([`crate::record`]) and is fsynced before the change
//! it describes takes effect, so after a crash the manifest replays to exactly
//! the file set of the last acknowledged edit. `CURRENT` names the live
//! manifest; it is replaced by writing a temporary file, fsyncing it, renaming
//! it over `CURRENT` and fsyncing the directory. Every open writes a fresh
//! manifest holding one snapshot edit, so manifests stay short.
//!
//! Edit encoding: a sequence of `varint tag, fields`:
//! `1 log_number` · `2 next_file_number` · `3 gc_watermark` ·
//! `4 level, table number` (deleted) · `5 level, TableMeta` (added).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec::{get_varint, put_varint};
use crate::error::{Error, Result};
use crate::table::TableMeta;
use crate::{fs, record};

const TAG_LOG_NUMBER: u64 = 1;
const TAG_NEXT_FILE: u64 = 2;
const TAG_GC_WATERMARK: u64 = 3;
const TAG_DELETED: u64 = 4;
const TAG_ADDED: u64 = 5;

/// One atomic change to the file set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// WAL files numbered below this are no longer needed.
    pub log_number: Option<u64>,
    pub next_file_number: Option<u64>,
    pub gc_watermark: Option<u64>,
    pub deleted: Vec<(usize, u64)>,
    pub added: Vec<(usize, TableMeta)>,
}

impl VersionEdit {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, v) in [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE, self.next_file_number),
            (TAG_GC_WATERMARK, self.gc_watermark),
        ] {
            if let Some(v) = v {
                put_varint(&mut out, tag);
                put_varint(&mut out, v);
            }
        }
        for &(level, number) in &self.deleted {
            put_varint(&mut out, TAG_DELETED);
            put_varint(&mut out, level as u64);
            put_varint(&mut out, number);
        }
        for (level, meta) in &self.added {
            put_varint(&mut out, TAG_ADDED);
            put_varint(&mut out, *level as u64);
            meta.encode(&mut out);
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Option<VersionEdit> {
        let mut edit = VersionEdit::default();
        let mut pos = 0;
        while pos < buf.len() {
            match get_varint(buf, &mut pos)? {
                TAG_LOG_NUMBER => edit.log_number = Some(get_varint(buf, &mut pos)?),
                TAG_NEXT_FILE => edit.next_file_number = Some(get_varint(buf, &mut pos)?),
                TAG_GC_WATERMARK => edit.gc_watermark = Some(get_varint(buf, &mut pos)?),
                TAG_DELETED => {
                    let level = usize::try_from(get_varint(buf, &mut pos)?).ok()?;
                    edit.deleted.push((level, get_varint(buf, &mut pos)?));
                }
                TAG_ADDED => {
                    let level = usize::try_from(get_varint(buf, &mut pos)?).ok()?;
                    edit.added.push((level, TableMeta::decode(buf, &mut pos)?));
                }
                _ => return None,
            }
        }
        Some(edit)
    }
}

/// The file set a manifest replays to.
#[derive(Debug, Default)]
pub struct ManifestState {
    /// Live tables per level, by number.
    pub levels: Vec<BTreeMap<u64, TableMeta>>,
    pub log_number: u64,
    pub next_file_number: u64,
    pub gc_watermark: u64,
}

impl ManifestState {
    fn apply(&mut self, path: &Path, offset: u64, edit: VersionEdit) -> Result<()> {
        let bad = |why: String| Error::corruption(path, offset, why);
        if let Some(v) = edit.log_number {
            self.log_number = self.log_number.max(v);
        }
        if let Some(v) = edit.next_file_number {
            self.next_file_number = self.next_file_number.max(v);
        }
        if let Some(v) = edit.gc_watermark {
            self.gc_watermark = self.gc_watermark.max(v);
        }
        for (level, number) in edit.deleted {
            let removed = self.levels.get_mut(level).and_then(|l| l.remove(&number));
            if removed.is_none() {
                return Err(bad(format!("edit deletes table {number} not live at level {level}")));
            }
        }
        for (level, meta) in edit.added {
            let Some(l) = self.levels.get_mut(level) else {
                return Err(bad(format!("edit adds table {} at level {level}", meta.number)));
            };
            l.insert(meta.number, meta);
        }
        Ok(())
    }

    /// The edit that recreates this state from nothing.
    pub fn snapshot(&self) -> VersionEdit {
        VersionEdit {
            log_number: Some(self.log_number),
            next_file_number: Some(self.next_file_number),
            gc_watermark: Some(self.gc_watermark),
            deleted: Vec::new(),
            added: self
                .levels
                .iter()
                .enumerate()
                .flat_map(|(n, l)| l.values().map(move |m| (n, m.clone())))
                .collect(),
        }
    }
}

/// Reads `CURRENT` and replays the manifest it names. `Ok(None)` for a
/// directory that has no database yet.
pub fn recover(dir: &Path, num_levels: usize) -> Result<Option<ManifestState>> {
    let current = dir.join("CURRENT");
    let name = match std::fs::read_to_string(&current) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&current, e)),
    };
    let name = name.trim_end();
    if !matches!(fs::parse_file_name(name), Some(fs::FileKind::Manifest(_))) {
        return Err(Error::corruption(&current, 0, format!("CURRENT names {name:?}")));
    }
    let path = dir.join(name);
    let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let scan = record::scan_records(&path, &data, record::TailPolicy::AppendOnly)?;
    let mut state =
        ManifestState { levels: vec![BTreeMap::new(); num_levels], ..Default::default() };
    for range in scan.payloads {
        let offset = (range.start - record::HEADER_LEN) as u64;
        let edit = VersionEdit::decode(&data[range])
            .ok_or_else(|| Error::corruption(&path, offset, "malformed version edit"))?;
        state.apply(&path, offset, edit)?;
    }
    Ok(Some(state))
}

/// An open manifest being appended to.
#[derive(Debug)]
pub struct Manifest {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl Manifest {
    /// Writes a new manifest holding `snapshot` and points `CURRENT` at it.
    pub fn create(dir: &Path, number: u64, snapshot: &VersionEdit) -> Result<Manifest> {
        let name = fs::manifest_name(number);
        let path = dir.join(&name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut m = Manifest { path, file, buf: Vec::new() };
        m.append(snapshot)?;
        let tmp = dir.join("CURRENT.tmp");
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(format!("{name}\n").as_bytes()).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, dir.join("CURRENT")).map_err(|e| Error::io(&tmp, e))?;
        fs::sync_dir(dir)?;
        Ok(m)
    }

    /// Appends an edit and makes it durable.
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        self.buf.clear();
        record::encode(&edit.encode(), &mut self.buf);
        self.file.write_all(&self.buf).map_err(|e| Error::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(number: u64) -> TableMeta {
        TableMeta {
            number,
            size: 100 + number,
            smallest: b"a".to_vec(),
            smallest_ts: 9,
            largest: b"z".to_vec(),
            largest_ts: 1,
            min_ts: 1,
            max_ts: 9,
            entries: 3,
            tombstones: 1,
        }
    }

    #[test]
    fn edits_round_trip() {
        let edit = VersionEdit {
            log_number: Some(4),
            next_file_number: Some(10),
            gc_watermark: Some(77),
            deleted: vec![(0, 3), (1, 2)],
            added: vec![(1, meta(8)), (2, meta(9))],
        };
        assert_eq!(VersionEdit::decode(&edit.encode()), Some(edit));
        assert_eq!(VersionEdit::decode(&[99]), None);
    }

    #[test]
    fn manifest_replays_to_the_last_edit() {
        let dir = tempfile::tempdir().unwrap();
        let first = VersionEdit { added: vec![(0, meta(5)), (0, meta(6))], ..Default::default() };
        let mut m = Manifest::create(dir.path(), 1, &first).unwrap();
        m.append(&VersionEdit {
            deleted: vec![(0, 5), (0, 6)],
            added: vec![(1, meta(7))],
            log_number: Some(3),
            next_file_number: Some(8),
            gc_watermark: Some(50),
        })
        .unwrap();
        let state = recover(dir.path(), 3).unwrap().unwrap();
        assert!(state.levels[0].is_empty());
        assert_eq!(state.levels[1].keys().copied().collect::<Vec<_>>(), vec![7]);
        assert_eq!((state.log_number, state.next_file_number, state.gc_watermark), (3, 8, 50));
    }

    #[test]
    fn edit_deleting_unknown_table_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::create(dir.path(), 1, &VersionEdit::default()).unwrap();
        m.append(&VersionEdit { deleted: vec![(0, 42)], ..Default::default() }).unwrap();
        assert!(recover(dir.path(), 3).unwrap_err().is_corruption());
    }
}
