//! Sorted tables (SSTables): immutable files of versions, read through `mmap`.
//!
//! ```text
//! [data block][u32 crc] ... [data block][u32 crc]
//! [filter block][u32 crc]       bloom filter over user keys (crate::bloom)
//! [index block][u32 crc]        per data block: last key, its ts, offset, size
//! [properties block][u32 crc]   key range, timestamp range, counts
//! [footer: 52 bytes]            three (u64 offset, u32 size) handles for
//!                               filter, index, properties; u32 format version;
//!                               u32 masked CRC32C of the preceding 40 bytes;
//!                               u64 magic
//! ```
//!
//! Every block carries a masked CRC32C. The footer, index, filter and
//! properties are verified when the table is opened; a data block is verified
//! the first time it is read (a bit per block records that), so a flipped byte
//! anywhere yields [`Error::Corruption`] naming the file and offset, never
//! wrong data.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use crate::block::{Block, BlockBuilder, Decoded};
use crate::bloom::{self, BloomBuilder};
use crate::codec::{
    get_length_prefixed, get_u32, get_u64, get_varint, masked_crc, put_length_prefixed, put_varint,
};
use crate::error::{Error, Result};
use crate::iter::{Cursor, Seek};
use crate::key::{Timestamp, Value, ValueRef, compare};
use crate::stats::Stats;

const MAGIC: u64 = 0x5354_5241_5441_5353; // "STRATASS"
const FORMAT_VERSION: u32 = 1;
const FOOTER_LEN: usize = 52;
const RESTART_INTERVAL: usize = 16;

/// What the manifest records about a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    pub number: u64,
    pub size: u64,
    pub smallest: Vec<u8>,
    pub smallest_ts: Timestamp,
    pub largest: Vec<u8>,
    pub largest_ts: Timestamp,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub entries: u64,
    pub tombstones: u64,
}

impl TableMeta {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.number);
        put_varint(out, self.size);
        self.encode_props(out);
    }

    fn encode_props(&self, out: &mut Vec<u8>) {
        put_length_prefixed(out, &self.smallest);
        put_varint(out, self.smallest_ts);
        put_length_prefixed(out, &self.largest);
        put_varint(out, self.largest_ts);
        put_varint(out, self.min_ts);
        put_varint(out, self.max_ts);
        put_varint(out, self.entries);
        put_varint(out, self.tombstones);
    }

    pub fn decode(buf: &[u8], pos: &mut usize) -> Option<TableMeta> {
        let number = get_varint(buf, pos)?;
        let size = get_varint(buf, pos)?;
        Self::decode_props(buf, pos, number, size)
    }

    fn decode_props(buf: &[u8], pos: &mut usize, number: u64, size: u64) -> Option<TableMeta> {
        Some(TableMeta {
            number,
            size,
            smallest: get_length_prefixed(buf, pos)?.to_vec(),
            smallest_ts: get_varint(buf, pos)?,
            largest: get_length_prefixed(buf, pos)?.to_vec(),
            largest_ts: get_varint(buf, pos)?,
            min_ts: get_varint(buf, pos)?,
            max_ts: get_varint(buf, pos)?,
            entries: get_varint(buf, pos)?,
            tombstones: get_varint(buf, pos)?,
        })
    }
}

/// Writes a table file. Versions must be added in strictly increasing order.
#[derive(Debug)]
pub struct TableBuilder {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    block: BlockBuilder,
    block_size: usize,
    bits_per_key: usize,
    scratch: Vec<u8>,
    index: Vec<u8>,
    bloom: BloomBuilder,
    last: Option<(Vec<u8>, Timestamp)>,
    meta: TableMeta,
}

impl TableBuilder {
    pub fn create(
        path: &Path,
        number: u64,
        block_size: usize,
        bits_per_key: usize,
    ) -> Result<TableBuilder> {
        let file = File::options()
            .create_new(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(TableBuilder {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            offset: 0,
            block: BlockBuilder::new(RESTART_INTERVAL),
            block_size,
            bits_per_key,
            scratch: Vec::new(),
            index: Vec::new(),
            bloom: BloomBuilder::new(),
            last: None,
            meta: TableMeta {
                number,
                size: 0,
                smallest: Vec::new(),
                smallest_ts: 0,
                largest: Vec::new(),
                largest_ts: 0,
                min_ts: u64::MAX,
                max_ts: 0,
                entries: 0,
                tombstones: 0,
            },
        })
    }

    pub fn add(&mut self, key: &[u8], ts: Timestamp, value: ValueRef<'_>) -> Result<()> {
        match &mut self.last {
            Some((last_key, last_ts)) => {
                assert!(
                    compare(last_key, *last_ts, key, ts).is_lt(),
                    "table versions out of order: {last_key:?}@{last_ts} then {key:?}@{ts}"
                );
                if last_key.as_slice() != key {
                    self.bloom.add_key(key);
                }
                last_key.clear();
                last_key.extend_from_slice(key);
                *last_ts = ts;
            }
            None => {
                self.bloom.add_key(key);
                self.meta.smallest = key.to_vec();
                self.meta.smallest_ts = ts;
                self.last = Some((key.to_vec(), ts));
            }
        }
        self.meta.entries += 1;
        self.meta.tombstones += u64::from(value.is_delete());
        self.meta.min_ts = self.meta.min_ts.min(ts);
        self.meta.max_ts = self.meta.max_ts.max(ts);
        self.block.add(key, ts, value);
        if self.block.estimated_size() >= self.block_size {
            self.finish_data_block()?;
        }
        Ok(())
    }

    /// Bytes the file will have if finished now (roughly).
    pub fn estimated_size(&self) -> u64 {
        self.offset + self.block.estimated_size() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.meta.entries == 0
    }

    fn write_block(&mut self, contents_from_scratch: bool) -> Result<(u64, u32)> {
        let data = if contents_from_scratch { &self.scratch } else { &self.index };
        let crc = masked_crc(data);
        let handle = (self.offset, data.len() as u32);
        self.out.write_all(data).map_err(|e| Error::io(&self.path, e))?;
        self.out.write_all(&crc.to_le_bytes()).map_err(|e| Error::io(&self.path, e))?;
        self.offset += data.len() as u64 + 4;
        Ok(handle)
    }

    fn finish_data_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        self.block.finish_into(&mut self.scratch);
        let (offset, size) = self.write_block(true)?;
        let (last_key, last_ts) = self.last.as_ref().expect("a block has a last entry");
        put_length_prefixed(&mut self.index, last_key);
        self.index.extend_from_slice(&last_ts.to_le_bytes());
        put_varint(&mut self.index, offset);
        put_varint(&mut self.index, u64::from(size));
        Ok(())
    }

    /// Writes filter, index, properties and footer, and fsyncs the file.
    pub fn finish(mut self) -> Result<TableMeta> {
        assert!(!self.is_empty(), "refusing to write an empty table");
        self.finish_data_block()?;
        self.scratch = self.bloom.build(self.bits_per_key);
        let filter = self.write_block(true)?;
        let index = self.write_block(false)?;
        let (largest, largest_ts) = self.last.clone().expect("non-empty");
        self.meta.largest = largest;
        self.meta.largest_ts = largest_ts;
        self.scratch.clear();
        let mut props = Vec::new();
        self.meta.encode_props(&mut props);
        self.scratch = props;
        let props = self.write_block(true)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for (off, len) in [filter, index, props] {
            footer.extend_from_slice(&off.to_le_bytes());
            footer.extend_from_slice(&len.to_le_bytes());
        }
        footer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        footer.extend_from_slice(&masked_crc(&footer).to_le_bytes());
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        debug_assert_eq!(footer.len(), FOOTER_LEN);
        self.out.write_all(&footer).map_err(|e| Error::io(&self.path, e))?;
        self.offset += FOOTER_LEN as u64;
        let file = self.out.into_inner().map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        self.meta.size = self.offset;
        Ok(self.meta)
    }

    /// Removes a partly written table.
    pub fn abandon(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

#[derive(Debug)]
struct IndexEntry {
    last_key: Box<[u8]>,
    last_ts: Timestamp,
    offset: usize,
    size: usize,
}

/// An open, immutable table.
#[derive(Debug)]
pub struct Table {
    meta: TableMeta,
    path: PathBuf,
    mmap: Mmap,
    index: Vec<IndexEntry>,
    filter: (usize, usize),
    /// One bit per data block: set once its checksum has been verified.
    verified: Vec<AtomicU64>,
}

impl Table {
    /// Opens and verifies a table. `expected` is what the manifest says of it.
    pub fn open(path: &Path, expected: &TableMeta) -> Result<Table> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len != expected.size {
            return Err(Error::corruption(
                path,
                len,
                format!("table is {len} bytes, manifest says {}", expected.size),
            ));
        }
        if (len as usize) < FOOTER_LEN {
            return Err(Error::corruption(path, 0, "table shorter than its footer"));
        }
        // SAFETY: table files are immutable once written and owned by this
        // engine: nothing truncates or rewrites them while they are mapped
        // (they are only unlinked, which keeps the mapping valid). Modifying a
        // database directory behind the engine's back is outside its contract.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let corrupt = |off: usize, why: &str| Error::corruption(path, off as u64, why.to_string());
        let fpos = mmap.len() - FOOTER_LEN;
        let footer = &mmap[fpos..];
        if get_u64(footer, 44) != Some(MAGIC) {
            return Err(corrupt(fpos, "bad table magic"));
        }
        if get_u32(footer, 40) != Some(masked_crc(&footer[..40])) {
            return Err(corrupt(fpos, "footer checksum mismatch"));
        }
        let version = get_u32(footer, 36).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(corrupt(fpos, &format!("unsupported table format version {version}")));
        }
        let handle = |i: usize| -> Result<(usize, usize)> {
            let off = get_u64(footer, i * 12).unwrap_or(u64::MAX) as usize;
            let size = get_u32(footer, i * 12 + 8).unwrap_or(u32::MAX) as usize;
            let end = off.checked_add(size).and_then(|e| e.checked_add(4));
            if end.is_none_or(|e| e > fpos) {
                return Err(corrupt(fpos, "block handle outside the file"));
            }
            verify_block(path, &mmap, off, size)?;
            Ok((off, size))
        };
        let filter = handle(0)?;
        let index_h = handle(1)?;
        let props_h = handle(2)?;
        let props = &mmap[props_h.0..props_h.0 + props_h.1];
        let meta = TableMeta::decode_props(props, &mut 0, expected.number, len)
            .ok_or_else(|| corrupt(props_h.0, "malformed properties block"))?;
        if meta != *expected {
            return Err(corrupt(props_h.0, "table properties disagree with the manifest"));
        }
        let index = decode_index(&mmap[index_h.0..index_h.0 + index_h.1], filter.0)
            .ok_or_else(|| corrupt(index_h.0, "malformed index block"))?;
        let verified = (0..index.len().div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Ok(Table { meta, path: path.to_path_buf(), mmap, index, filter, verified })
    }

    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of data block `i`, checksum-verified.
    fn block(&self, i: usize) -> Result<Block<'_>> {
        let e = &self.index[i];
        let (word, bit) = (&self.verified[i / 64], 1u64 << (i % 64));
        if word.load(Ordering::Relaxed) & bit == 0 {
            verify_block(&self.path, &self.mmap, e.offset, e.size)?;
            word.fetch_or(bit, Ordering::Relaxed);
        }
        Block::parse(&self.mmap[e.offset..e.offset + e.size]).ok_or_else(|| {
            Error::corruption(&self.path, e.offset as u64, "malformed block trailer")
        })
    }

    fn malformed(&self, block: usize) -> Error {
        Error::corruption(&self.path, self.index[block].offset as u64, "malformed data block")
    }

    /// Index of the first block whose last version is at or after the target.
    fn find_block(&self, key: &[u8], ts: Timestamp) -> usize {
        self.index.partition_point(|e| compare(&e.last_key, e.last_ts, key, ts).is_lt())
    }

    /// Whether the bloom filter admits `key` (whose hash is `hash`).
    pub fn may_contain(&self, hash: u64) -> bool {
        bloom::may_contain(&self.mmap[self.filter.0..self.filter.0 + self.filter.1], hash)
    }

    /// The newest version of `key` at or below `read_ts` in this table.
    pub fn get(
        &self,
        key: &[u8],
        hash: u64,
        read_ts: Timestamp,
        stats: &Stats,
    ) -> Result<Option<(Timestamp, Value)>> {
        if key < self.meta.smallest.as_slice() || key > self.meta.largest.as_slice() {
            return Ok(None);
        }
        if !self.may_contain(hash) {
            stats.bloom_useful.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let i = self.find_block(key, read_ts);
        let mut found = None;
        if i < self.index.len() {
            let block = self.block(i)?;
            let mut buf = Vec::with_capacity(key.len() + 16);
            let d = block.seek(key, read_ts, &mut buf).map_err(|()| self.malformed(i))?;
            if let Some(d) = d.filter(|_| buf == key) {
                found = Some((d.ts, block.value(&d).to_owned()));
            }
        }
        if found.is_none() {
            stats.bloom_false_positive.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.bloom_true_positive.fetch_add(1, Ordering::Relaxed);
        }
        Ok(found)
    }

    /// A cursor over the table's versions, positioned by `seek`.
    pub fn cursor(self: &Arc<Self>, seek: Seek<'_>) -> Result<TableCursor> {
        let mut c = TableCursor {
            table: self.clone(),
            reverse: seek.is_reverse(),
            block_idx: 0,
            valid: false,
            current: None,
            key: Vec::new(),
            rev: Vec::new(),
            rev_pos: 0,
        };
        match seek {
            Seek::Forward(None) => c.enter_forward(0, None)?,
            Seek::Forward(Some((key, ts))) => {
                let i = self.find_block(key, ts);
                c.enter_forward(i, Some((key, ts)))?;
            }
            Seek::Reverse(None) => c.enter_reverse(self.index.len(), None)?,
            Seek::Reverse(Some((key, ts))) => {
                let i = self.find_block(key, ts);
                c.enter_reverse(i, Some((key, ts)))?;
            }
        }
        Ok(c)
    }
}

fn verify_block(path: &Path, data: &[u8], off: usize, size: usize) -> Result<()> {
    let stored = get_u32(data, off + size);
    if stored != Some(masked_crc(&data[off..off + size])) {
        return Err(Error::corruption(path, off as u64, "block checksum mismatch"));
    }
    Ok(())
}

fn decode_index(buf: &[u8], data_end: usize) -> Option<Vec<IndexEntry>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let last_key = get_length_prefixed(buf, &mut pos)?.into();
        let last_ts = get_u64(buf, pos)?;
        pos += 8;
        let offset = usize::try_from(get_varint(buf, &mut pos)?).ok()?;
        let size = usize::try_from(get_varint(buf, &mut pos)?).ok()?;
        if offset.checked_add(size)?.checked_add(4)? > data_end {
            return None;
        }
        out.push(IndexEntry { last_key, last_ts, offset, size });
    }
    Some(out)
}

/// A cursor over one table in one direction.
///
/// Forward walks decode entries one at a time; reverse walks decode a whole
/// block into `rev` (prefix compression only decodes forwards) and step back
/// through it.
#[derive(Debug)]
pub struct TableCursor {
    table: Arc<Table>,
    reverse: bool,
    block_idx: usize,
    valid: bool,
    /// Forward: the current entry (with its key in `key`).
    current: Option<Decoded>,
    /// Forward: the current key. Reverse: all keys of the block, back to back.
    key: Vec<u8>,
    rev: Vec<Decoded>,
    rev_pos: usize,
}

impl TableCursor {
    /// Positions at the first entry of block `i` at or after `target` (or its
    /// first entry), moving on to later blocks as needed.
    fn enter_forward(&mut self, mut i: usize, target: Option<(&[u8], Timestamp)>) -> Result<()> {
        let mut target = target;
        while i < self.table.index.len() {
            let block = self.table.block(i)?;
            self.key.clear();
            let d = match target.take() {
                Some((k, ts)) => {
                    block.seek(k, ts, &mut self.key).map_err(|()| self.table.malformed(i))?
                }
                None if block.entries_end() > 0 => {
                    Some(block.decode_at(0, &mut self.key).ok_or_else(|| self.table.malformed(i))?)
                }
                None => None,
            };
            if let Some(d) = d {
                self.block_idx = i;
                self.current = Some(d);
                self.valid = true;
                return Ok(());
            }
            i += 1;
        }
        self.valid = false;
        Ok(())
    }

    /// Positions at the last entry of block `i` strictly before `target` (or
    /// its last entry), moving on to earlier blocks as needed. `i` may be
    /// `index.len()`, meaning "after the last block".
    fn enter_reverse(&mut self, i: usize, target: Option<(&[u8], Timestamp)>) -> Result<()> {
        let mut i = i;
        let mut target = target;
        if i == self.table.index.len() {
            target = None;
        }
        loop {
            if i == self.table.index.len() {
                if i == 0 {
                    self.valid = false;
                    return Ok(());
                }
                i -= 1;
            }
            let block = self.table.block(i)?;
            self.rev = block.decode_all(&mut self.key).ok_or_else(|| self.table.malformed(i))?;
            let n = match target.take() {
                Some((k, ts)) => self.rev.partition_point(|d| {
                    compare(&self.key[d.key_start..d.key_end], d.ts, k, ts).is_lt()
                }),
                None => self.rev.len(),
            };
            if n > 0 {
                self.block_idx = i;
                self.rev_pos = n - 1;
                self.valid = true;
                return Ok(());
            }
            if i == 0 {
                self.valid = false;
                return Ok(());
            }
            i -= 1;
        }
    }

    fn block_bytes(&self) -> &[u8] {
        let e = &self.table.index[self.block_idx];
        &self.table.mmap[e.offset..e.offset + e.size]
    }

    fn entry(&self) -> &Decoded {
        if self.reverse { &self.rev[self.rev_pos] } else { self.current.as_ref().expect("valid") }
    }
}

impl Cursor for TableCursor {
    fn valid(&self) -> bool {
        self.valid
    }

    fn key(&self) -> &[u8] {
        debug_assert!(self.valid);
        if self.reverse {
            let d = &self.rev[self.rev_pos];
            &self.key[d.key_start..d.key_end]
        } else {
            &self.key
        }
    }

    fn ts(&self) -> Timestamp {
        self.entry().ts
    }

    fn value(&self) -> ValueRef<'_> {
        let d = self.entry();
        if d.delete {
            ValueRef::Delete
        } else {
            ValueRef::Put(&self.block_bytes()[d.value_start..d.value_start + d.value_len])
        }
    }

    fn advance(&mut self) -> Result<()> {
        assert!(self.valid, "advance on an exhausted table cursor");
        if self.reverse {
            if self.rev_pos > 0 {
                self.rev_pos -= 1;
                return Ok(());
            }
            if self.block_idx == 0 {
                self.valid = false;
                return Ok(());
            }
            return self.enter_reverse(self.block_idx - 1, None);
        }
        let next = self.current.expect("valid").next;
        let e = &self.table.index[self.block_idx];
        let block = Block::parse(&self.table.mmap[e.offset..e.offset + e.size])
            .expect("parsed when entered");
        if next < block.entries_end() {
            let d = block
                .decode_at(next, &mut self.key)
                .ok_or_else(|| self.table.malformed(self.block_idx))?;
            self.current = Some(d);
            return Ok(());
        }
        self.enter_forward(self.block_idx + 1, None)
    }
}

/// A cursor over a level of non-overlapping tables sorted by key, opening each
/// table's cursor only when the walk reaches it.
#[derive(Debug)]
pub struct LevelCursor {
    tables: Vec<Arc<Table>>,
    idx: usize,
    current: Option<TableCursor>,
    reverse: bool,
}

impl LevelCursor {
    pub fn new(tables: Vec<Arc<Table>>, seek: Seek<'_>) -> Result<LevelCursor> {
        let reverse = seek.is_reverse();
        let mut c = LevelCursor { tables, idx: 0, current: None, reverse };
        if c.tables.is_empty() {
            return Ok(c);
        }
        let first_reaching = |key: &[u8], ts| {
            c.tables
                .partition_point(|t| compare(&t.meta.largest, t.meta.largest_ts, key, ts).is_lt())
        };
        let (idx, seek) = match seek {
            Seek::Forward(None) => (0, seek),
            Seek::Forward(Some((k, ts))) => (first_reaching(k, ts), seek),
            Seek::Reverse(None) => (c.tables.len() - 1, seek),
            Seek::Reverse(Some((k, ts))) => {
                let i = first_reaching(k, ts);
                if i == c.tables.len() { (i - 1, Seek::Reverse(None)) } else { (i, seek) }
            }
        };
        if idx < c.tables.len() {
            c.idx = idx;
            c.current = Some(c.tables[idx].cursor(seek)?);
            c.skip_exhausted()?;
        }
        Ok(c)
    }

    fn skip_exhausted(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            let next = if self.reverse { self.idx.checked_sub(1) } else { Some(self.idx + 1) };
            match next.filter(|&i| i < self.tables.len()) {
                Some(i) => {
                    self.idx = i;
                    let seek = if self.reverse { Seek::Reverse(None) } else { Seek::Forward(None) };
                    self.current = Some(self.tables[i].cursor(seek)?);
                }
                None => self.current = None,
            }
        }
        Ok(())
    }

    fn cur(&self) -> &TableCursor {
        self.current.as_ref().expect("valid level cursor")
    }
}

impl Cursor for LevelCursor {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(TableCursor::valid)
    }
    fn key(&self) -> &[u8] {
        self.cur().key()
    }
    fn ts(&self) -> Timestamp {
        self.cur().ts()
    }
    fn value(&self) -> ValueRef<'_> {
        self.cur().value()
    }
    fn advance(&mut self) -> Result<()> {
        self.current.as_mut().expect("valid level cursor").advance()?;
        self.skip_exhausted()
    }
}
