//! Checksummed record framing shared by the WAL and the manifest.
//!
//! ```text
//! offset 0   u32 LE  payload length L
//! offset 4   u32 LE  masked CRC32C of bytes 0..4   (header checksum)
//! offset 8   u32 LE  masked CRC32C of the payload
//! offset 12  L bytes payload
//!            zero padding up to the next multiple of 8
//! ```
//!
//! Records start at 8-byte-aligned offsets; the padding must be zero, so every
//! byte of a file is checked. Files may be preallocated with zeros, so a zero
//! header marks the end of the written part.
//!
//! Recovery ([`scan_records`]) reads records until the first one that does not
//! check out, then decides by the file's [`TailPolicy`] whether that record is
//! the tail of an interrupted append (a *torn tail*: recovery ends there, as
//! nothing after it had been acknowledged) or damage, which fails the scan with
//! [`Error::Corruption`] naming the file and offset rather than silently
//! dropping acknowledged data.

use std::ops::Range;
use std::path::Path;

use crate::codec::{get_u32, masked_crc};
use crate::error::{Error, Result};

pub const HEADER_LEN: usize = 12;
pub const ALIGN: usize = 8;

/// Largest payload accepted; larger headers are treated as damage.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Appends one framed record holding `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_PAYLOAD, "record payload of {} bytes", payload.len());
    debug_assert_eq!(out.len() % ALIGN, 0, "records start aligned");
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(ALIGN), 0);
}

/// How a file is written, which decides what a torn tail can look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailPolicy {
    /// Preallocated and appended without size changes (the WAL): an
    /// interrupted append can leave any bytes in its record. The invalid
    /// record is a torn tail if no valid record follows it anywhere.
    Preallocated,
    /// Appended with the file size growing and fsynced per record (the
    /// manifest): an interrupted append can only leave a record cut short by
    /// the end of the file. A record that fits in the file but fails its
    /// checksum is damage, as is any invalid first record.
    AppendOnly,
}

/// What [`scan_records`] found: the payloads, and where valid data ends.
#[derive(Debug)]
pub struct RecordScan {
    pub payloads: Vec<Range<usize>>,
    /// Offset just past the last valid record.
    #[cfg_attr(not(test), allow(dead_code))]
    pub end: usize,
    /// Whether bytes after `end` were discarded as a torn tail.
    pub torn_tail: bool,
}

enum Parsed {
    Record { payload: Range<usize>, next: usize },
    Invalid(&'static str),
}

fn parse_at(data: &[u8], off: usize) -> Parsed {
    let Some(len) = get_u32(data, off) else { return Parsed::Invalid("truncated header") };
    let (Some(header_crc), Some(payload_crc)) = (get_u32(data, off + 4), get_u32(data, off + 8))
    else {
        return Parsed::Invalid("truncated header");
    };
    if masked_crc(&data[off..off + 4]) != header_crc {
        return Parsed::Invalid("header checksum mismatch");
    }
    let len = len as usize;
    let start = off + HEADER_LEN;
    if len > MAX_PAYLOAD || start + len > data.len() {
        return Parsed::Invalid("record extends past the end of the file");
    }
    let payload = start..start + len;
    if masked_crc(&data[payload.clone()]) != payload_crc {
        return Parsed::Invalid("payload checksum mismatch");
    }
    let next = (start + len).next_multiple_of(ALIGN).min(data.len());
    if data[start + len..next].iter().any(|&b| b != 0) {
        return Parsed::Invalid("nonzero padding after record");
    }
    Parsed::Record { next, payload }
}

/// Whether any whole, valid record starts at an aligned offset at or after `from`.
fn valid_record_after(data: &[u8], from: usize) -> bool {
    let mut off = from.next_multiple_of(ALIGN);
    while off + HEADER_LEN <= data.len() {
        if data[off..off + 4] != [0; 4] && matches!(parse_at(data, off), Parsed::Record { .. }) {
            return true;
        }
        off += ALIGN;
    }
    false
}

/// Whether the record at `off` is cut short by the end of the file.
fn cut_by_eof(data: &[u8], off: usize) -> bool {
    match get_u32(data, off) {
        None => true,
        Some(len) => {
            data.len() < off + HEADER_LEN
                || (masked_crc(&data[off..off + 4]) == get_u32(data, off + 4).unwrap_or(0)
                    && off + HEADER_LEN + len as usize > data.len())
        }
    }
}

/// Reads every record of a WAL or manifest file; see the module doc for how a
/// torn tail is told apart from corruption.
pub fn scan_records(path: &Path, data: &[u8], policy: TailPolicy) -> Result<RecordScan> {
    let mut payloads = Vec::new();
    let mut off = 0;
    while off < data.len() {
        match parse_at(data, off) {
            Parsed::Record { payload, next } => {
                payloads.push(payload);
                off = next;
            }
            Parsed::Invalid(reason) if policy == TailPolicy::AppendOnly => {
                if off == 0 || !cut_by_eof(data, off) {
                    return Err(Error::corruption(path, off as u64, reason));
                }
                return Ok(RecordScan { payloads, end: off, torn_tail: true });
            }
            Parsed::Invalid(reason) => {
                if data[off..].iter().all(|&b| b == 0) {
                    // Clean end of the written part of a preallocated file.
                    return Ok(RecordScan { payloads, end: off, torn_tail: false });
                }
                if valid_record_after(data, off + ALIGN) {
                    return Err(Error::corruption(path, off as u64, reason));
                }
                return Ok(RecordScan { payloads, end: off, torn_tail: true });
            }
        }
    }
    Ok(RecordScan { payloads, end: off, torn_tail: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    fn scan(data: &[u8]) -> Result<Vec<Vec<u8>>> {
        let s = scan_records(Path::new("test"), data, TailPolicy::Preallocated)?;
        Ok(s.payloads.into_iter().map(|r| data[r].to_vec()).collect())
    }

    #[test]
    fn round_trip_with_preallocated_zeros() {
        let mut data = file_of(&[b"one", b"", b"three33"]);
        data.resize(data.len() + 4096, 0);
        assert_eq!(scan(&data).unwrap(), vec![b"one".to_vec(), vec![], b"three33".to_vec()]);
    }

    #[test]
    fn torn_tail_is_discarded() {
        let whole = file_of(&[b"first record", b"second record"]);
        let first_len = file_of(&[b"first record"]).len();
        // Cut anywhere inside the second record (before its padding): only
        // the first survives.
        let second_end = first_len + HEADER_LEN + b"second record".len();
        for cut in first_len + 1..second_end {
            let mut data = whole[..cut].to_vec();
            data.resize(whole.len() + 64, 0);
            let scan = scan_records(Path::new("t"), &data, TailPolicy::Preallocated).unwrap();
            assert_eq!(scan.payloads.len(), 1, "cut at {cut}");
            assert_eq!(scan.end, first_len);
        }
    }

    #[test]
    fn garbage_tail_is_discarded() {
        let mut data = file_of(&[b"first"]);
        data.extend_from_slice(&[0xab; 5]);
        let scan = scan_records(Path::new("t"), &data, TailPolicy::Preallocated).unwrap();
        assert!(scan.torn_tail);
        assert_eq!(scan.payloads.len(), 1);
    }

    #[test]
    fn damage_before_valid_records_is_corruption() {
        let mut data = file_of(&[b"first", b"second", b"third"]);
        let second_at = file_of(&[b"first"]).len();
        data[second_at + HEADER_LEN + 2] ^= 0x40;
        match scan_records(Path::new("wal"), &data, TailPolicy::Preallocated) {
            Err(Error::Corruption { offset, .. }) => assert_eq!(offset, second_at as u64),
            other => panic!("expected corruption, got {other:?}"),
        }
        // Damage to a length field is caught by the header checksum.
        let mut data = file_of(&[b"first", b"second", b"third"]);
        data[second_at] ^= 0x01;
        assert!(
            scan_records(Path::new("wal"), &data, TailPolicy::Preallocated)
                .unwrap_err()
                .is_corruption()
        );
    }

    #[test]
    fn append_only_files_accept_only_records_cut_by_eof() {
        let whole = file_of(&[b"snapshot", b"edit one", b"edit two"]);
        let last_at = file_of(&[b"snapshot", b"edit one"]).len();
        let strict = |d: &[u8]| scan_records(Path::new("MANIFEST"), d, TailPolicy::AppendOnly);
        // An append cut short by a crash: the earlier records survive.
        for cut in last_at + 1..last_at + HEADER_LEN + b"edit two".len() {
            let scan = strict(&whole[..cut]).unwrap();
            assert_eq!(scan.payloads.len(), 2, "cut at {cut}");
        }
        // A flipped byte in the last, complete record is damage, not a tear.
        let mut flipped = whole.clone();
        flipped[last_at + HEADER_LEN] ^= 1;
        assert!(strict(&flipped).unwrap_err().is_corruption());
        // So is a damaged first record, even when it is the only one.
        let mut only = file_of(&[b"snapshot"]);
        only[HEADER_LEN + 1] ^= 1;
        assert!(strict(&only).unwrap_err().is_corruption());
    }
}
