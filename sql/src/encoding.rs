//! Byte encodings of SQL values: order-preserving keys and compact rows.
//!
//! # Keys
//!
//! [`encode_key`] writes a value so that, for two values of the same
//! [`DataType`], the encodings compare bytewise exactly as the values compare
//! in SQL ([`Value::sort_cmp`], except that NULL is *below* every value). Each
//! encoding is prefix-free, so the encodings of several key columns simply
//! concatenate and compare column by column. A descending column is the
//! ascending encoding with every bit inverted, which reverses the order and
//! keeps it prefix-free; NULL is then above every value.
//!
//! An ascending value is a tag byte, then a payload:
//!
//! | value     | tag  | payload                                                        |
//! |-----------|------|----------------------------------------------------------------|
//! | NULL      | 0x00 | none                                                           |
//! | boolean   | 0x10 | 0x00 false, 0x01 true                                          |
//! | integer   | 0x20 | length-prefixed big-endian magnitude, see below                |
//! | float     | 0x30 | 8 bytes: IEEE bits, sign bit flipped (negatives: all bits flipped) |
//! | numeric   | 0x40 | sign byte, exponent byte, base-100 digit bytes, 0x00, see below |
//! | string    | 0x50 | the UTF-8 bytes with 0x00 written 0x00 0xFF, then 0x00 0x01    |
//! | bytea     | 0x60 | the bytes escaped as strings are                               |
//! | date      | 0x70 | 4 bytes: big-endian with the sign bit flipped                  |
//! | timestamp | 0x80 | 8 bytes: big-endian with the sign bit flipped                  |
//!
//! The tag is per kind, so a key of the wrong type fails [`decode_key`] with
//! XX001 instead of decoding as garbage.
//!
//! **Integers** (all widths) take 1 to 9 bytes. A value `v >= 0` needing `n`
//! bytes (0 for zero) is `0x80 + n` then its `n` low bytes; a negative `v` is
//! `0x7F - n` then the `n` low bytes of `!v`'s complement, where `n` is the
//! byte length of `!v` (= -v-1). So 0 is `80`, 1 is `81 01`, -1 is `7F`,
//! -256 is `7E 00`: longer positives sort higher, longer negatives lower.
//!
//! **Floats**: `-0.0` is written as `0.0` and every NaN as the positive quiet
//! NaN, which lands above +Infinity as PostgreSQL orders NaN.
//!
//! **Numerics** are normalised first (`1.0` and `1.00` encode identically; the
//! decoded value has the trimmed scale and the caller rescales to the
//! column's). The sign byte is 0x01 negative, 0x02 zero (nothing follows),
//! 0x03 positive. A nonzero value is `0.d1d2d3... × 10^E` with `d1 != 0`; the
//! body is `E + 64` in one byte, then the digits in pairs, each pair
//! `1 + 10*d1 + d2` (a final single digit is paired with 0), then 0x00. The
//! body of a negative value is inverted, so larger magnitudes sort lower.
//!
//! **Strings** escape 0x00 so that `"a" < "a\0" < "ab"`: `61 00 01`, `61 00 FF
//! 00 01`, `61 62 00 01`. A `character(n)` key is its padded value.
//!
//! # Rows
//!
//! [`encode_row`] writes the non-key columns: the column count (LEB128), then
//! per column a tag and a payload:
//!
//! | tag | value       | payload                                             |
//! |-----|-------------|-----------------------------------------------------|
//! | 0   | NULL        | none                                                |
//! | 1,2 | false, true | none                                                |
//! | 3   | integer     | zigzag LEB128                                       |
//! | 4   | float       | 8 bytes, IEEE bits little-endian                    |
//! | 5   | numeric     | scale byte, zigzag LEB128 mantissa (scale kept: 1.50 stays 1.50) |
//! | 6   | string      | LEB128 byte length, UTF-8 bytes                     |
//! | 7   | bytea       | LEB128 byte length, bytes                           |
//! | 8   | date        | zigzag LEB128                                       |
//! | 9   | timestamp   | zigzag LEB128                                       |
//!
//! [`decode_row`] checks each tag against the declared type. A row with fewer
//! columns than declared was written before ALTER TABLE ADD COLUMN: the
//! missing columns are NULL.
//!
//! # Invariants
//!
//! - `decode_key(encode_key(v))` is `v` (numerics normalised, `-0.0` as `0.0`).
//! - `decode_row(encode_row(vs))` is `vs` exactly.
//! - Decoding never panics: malformed or truncated input is XX001.

use rust_decimal::Decimal;

use crate::error::{Result, SqlError, sqlstate};
use crate::types::{DataType, Value};

/// Key tags: one per kind of value.
mod key_tag {
    pub const NULL: u8 = 0x00;
    pub const BOOL: u8 = 0x10;
    pub const INT: u8 = 0x20;
    pub const FLOAT: u8 = 0x30;
    pub const NUMERIC: u8 = 0x40;
    pub const STRING: u8 = 0x50;
    pub const BYTES: u8 = 0x60;
    pub const DATE: u8 = 0x70;
    pub const TIMESTAMP: u8 = 0x80;
}

/// Numeric key sign bytes.
const NUMERIC_NEGATIVE: u8 = 0x01;
const NUMERIC_ZERO: u8 = 0x02;
const NUMERIC_POSITIVE: u8 = 0x03;
/// Added to a numeric's decimal exponent (-27..=29) to make it a byte.
const NUMERIC_EXPONENT_BIAS: i32 = 64;

/// Row tags.
mod row_tag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const NUMERIC: u8 = 5;
    pub const TEXT: u8 = 6;
    pub const BYTES: u8 = 7;
    pub const DATE: u8 = 8;
    pub const TIMESTAMP: u8 = 9;
}

/// `rust_decimal`'s limits.
const MAX_MANTISSA: u128 = (1 << 96) - 1;
const MAX_SCALE: u32 = 28;

fn corrupt_key() -> SqlError {
    SqlError::new(sqlstate::DATA_CORRUPTED, "corrupt key encoding")
}

fn corrupt_row() -> SqlError {
    SqlError::new(sqlstate::DATA_CORRUPTED, "corrupt row encoding")
}

fn key_tag_of(ty: &DataType) -> u8 {
    match ty {
        DataType::Bool => key_tag::BOOL,
        DataType::Int2 | DataType::Int4 | DataType::Int8 => key_tag::INT,
        DataType::Float4 | DataType::Float8 => key_tag::FLOAT,
        DataType::Numeric { .. } => key_tag::NUMERIC,
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) => key_tag::STRING,
        DataType::Bytea => key_tag::BYTES,
        DataType::Date => key_tag::DATE,
        DataType::Timestamp => key_tag::TIMESTAMP,
    }
}

fn value_fits_type(value: &Value, ty: &DataType) -> bool {
    let tag = match value {
        Value::Null => return true,
        Value::Bool(_) => key_tag::BOOL,
        Value::Int(_) => key_tag::INT,
        Value::Float(_) => key_tag::FLOAT,
        Value::Numeric(_) => key_tag::NUMERIC,
        Value::Text(_) => key_tag::STRING,
        Value::Bytes(_) => key_tag::BYTES,
        Value::Date(_) => key_tag::DATE,
        Value::Timestamp(_) => key_tag::TIMESTAMP,
    };
    tag == key_tag_of(ty)
}

/// Order-preserving ("memcomparable") encoding of one key column, appended to
/// `out`: for values `a`, `b` of type `ty`, `encode(a) < encode(b)` bytewise
/// iff `a < b` in SQL order. NULL encodes below every value, or above every
/// value when `descending`. Encodings are prefix-free, so composite keys
/// concatenate. See the module documentation for the layout.
///
/// The value must be of `ty`'s kind, except that an integer is accepted for a
/// numeric column (exactly) or a float column (rounded to `f64`). Any other
/// mismatch is a caller bug: debug builds panic, release builds encode the
/// value by its own kind, which [`decode_key`] rejects.
pub fn encode_key(out: &mut Vec<u8>, value: &Value, ty: &DataType, descending: bool) {
    let start = out.len();
    match (value, ty) {
        (Value::Int(i), DataType::Numeric { .. }) => {
            out.push(key_tag::NUMERIC);
            put_numeric_key(out, Decimal::from(*i));
        }
        (Value::Int(i), DataType::Float4 | DataType::Float8) => {
            out.push(key_tag::FLOAT);
            put_float_key(out, *i as f64);
        }
        _ => {
            debug_assert!(value_fits_type(value, ty), "key value {value:?} for type {ty:?}");
            put_key(out, value);
        }
    }
    if descending {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
}

fn put_key(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(key_tag::NULL),
        Value::Bool(b) => out.extend([key_tag::BOOL, *b as u8]),
        Value::Int(i) => {
            out.push(key_tag::INT);
            put_int_key(out, *i);
        }
        Value::Float(f) => {
            out.push(key_tag::FLOAT);
            put_float_key(out, *f);
        }
        Value::Numeric(d) => {
            out.push(key_tag::NUMERIC);
            put_numeric_key(out, *d);
        }
        Value::Text(s) => {
            out.push(key_tag::STRING);
            put_escaped(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(key_tag::BYTES);
            put_escaped(out, b);
        }
        Value::Date(d) => {
            out.push(key_tag::DATE);
            out.extend((*d as u32 ^ 1 << 31).to_be_bytes());
        }
        Value::Timestamp(t) => {
            out.push(key_tag::TIMESTAMP);
            out.extend((*t as u64 ^ 1 << 63).to_be_bytes());
        }
    }
}

/// Bytes needed for the big-endian magnitude of `u` (0 for 0).
fn byte_len(u: u64) -> usize {
    (64 - u.leading_zeros() as usize).div_ceil(8)
}

fn put_int_key(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        let u = v as u64;
        let n = byte_len(u);
        out.push(0x80 + n as u8);
        out.extend_from_slice(&u.to_be_bytes()[8 - n..]);
    } else {
        let u = !(v as u64); // -v - 1
        let n = byte_len(u);
        out.push(0x7F - n as u8);
        out.extend_from_slice(&(!u).to_be_bytes()[8 - n..]);
    }
}

fn put_float_key(out: &mut Vec<u8>, f: f64) {
    let f = if f.is_nan() {
        f64::NAN
    } else if f == 0.0 {
        0.0
    } else {
        f
    };
    let bits = f.to_bits();
    let key = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
    out.extend(key.to_be_bytes());
}

fn put_numeric_key(out: &mut Vec<u8>, d: Decimal) {
    let n = d.normalize();
    if n.is_zero() {
        out.push(NUMERIC_ZERO);
        return;
    }
    let negative = n.is_sign_negative();
    out.push(if negative { NUMERIC_NEGATIVE } else { NUMERIC_POSITIVE });
    let body_start = out.len();
    let digits = n.mantissa().unsigned_abs().to_string();
    let exponent = digits.len() as i32 - n.scale() as i32;
    out.push((exponent + NUMERIC_EXPONENT_BIAS) as u8);
    for pair in digits.trim_end_matches('0').as_bytes().chunks(2) {
        let high = pair[0] - b'0';
        let low = pair.get(1).map_or(0, |c| c - b'0');
        out.push(1 + 10 * high + low);
    }
    out.push(0);
    if negative {
        for b in &mut out[body_start..] {
            *b = !*b;
        }
    }
}

fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == 0 {
            out.extend([0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend([0x00, 0x01]);
}

/// Reads key bytes, un-inverting a descending column on the fly.
struct KeyReader<'a> {
    buf: &'a [u8],
    pos: usize,
    mask: u8,
}

impl KeyReader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(corrupt_key)?;
        self.pos += 1;
        Ok(b ^ self.mask)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        for b in &mut out {
            *b = self.byte()?;
        }
        Ok(out)
    }
}

/// Decodes one key column written by [`encode_key`] at `*pos`, advancing
/// `*pos` past it (left unchanged on error). Malformed input, or a key of
/// another type, is XX001 `corrupt key encoding`. A numeric decodes
/// normalised (`1.50` as `1.5`); the caller rescales to the column's scale.
pub fn decode_key(buf: &[u8], pos: &mut usize, ty: &DataType, descending: bool) -> Result<Value> {
    let mut reader = KeyReader { buf, pos: *pos, mask: if descending { 0xFF } else { 0x00 } };
    let value = read_key(&mut reader, ty)?;
    *pos = reader.pos;
    Ok(value)
}

fn read_key(r: &mut KeyReader<'_>, ty: &DataType) -> Result<Value> {
    let tag = r.byte()?;
    if tag == key_tag::NULL {
        return Ok(Value::Null);
    }
    if tag != key_tag_of(ty) {
        return Err(corrupt_key());
    }
    Ok(match ty {
        DataType::Bool => match r.byte()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(corrupt_key()),
        },
        DataType::Int2 | DataType::Int4 | DataType::Int8 => {
            let v = read_int_key(r)?;
            if !int_fits(v as i128, ty) {
                return Err(corrupt_key());
            }
            Value::Int(v)
        }
        DataType::Float4 | DataType::Float8 => {
            let key = u64::from_be_bytes(r.array()?);
            let bits = if key >> 63 == 1 { key & !(1 << 63) } else { !key };
            Value::Float(f64::from_bits(bits))
        }
        DataType::Numeric { .. } => Value::Numeric(read_numeric_key(r)?),
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) => {
            Value::Text(String::from_utf8(read_escaped(r)?).map_err(|_| corrupt_key())?)
        }
        DataType::Bytea => Value::Bytes(read_escaped(r)?),
        DataType::Date => Value::Date((u32::from_be_bytes(r.array()?) ^ 1 << 31) as i32),
        DataType::Timestamp => Value::Timestamp((u64::from_be_bytes(r.array()?) ^ 1 << 63) as i64),
    })
}

fn int_fits(v: i128, ty: &DataType) -> bool {
    match ty {
        DataType::Int2 => i16::try_from(v).is_ok(),
        DataType::Int4 => i32::try_from(v).is_ok(),
        _ => i64::try_from(v).is_ok(),
    }
}

fn read_int_key(r: &mut KeyReader<'_>) -> Result<i64> {
    let marker = r.byte()?;
    let (negative, n) = match marker {
        0x80..=0x88 => (false, (marker - 0x80) as usize),
        0x77..=0x7F => (true, (0x7F - marker) as usize),
        _ => return Err(corrupt_key()),
    };
    let mut u: u64 = 0;
    for _ in 0..n {
        u = u << 8 | r.byte()? as u64;
    }
    if negative {
        // The payload is the complement of (-v - 1) within n bytes.
        let mask = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
        Ok(!(!u & mask) as i64)
    } else {
        i64::try_from(u).map_err(|_| corrupt_key())
    }
}

fn read_numeric_key(r: &mut KeyReader<'_>) -> Result<Decimal> {
    let sign = r.byte()?;
    let invert = match sign {
        NUMERIC_ZERO => return Ok(Decimal::ZERO),
        NUMERIC_NEGATIVE => 0xFF,
        NUMERIC_POSITIVE => 0x00,
        _ => return Err(corrupt_key()),
    };
    let exponent = (r.byte()? ^ invert) as i32 - NUMERIC_EXPONENT_BIAS;
    let mut digits: Vec<u8> = Vec::with_capacity(30);
    loop {
        let b = r.byte()? ^ invert;
        if b == 0 {
            break;
        }
        if b > 100 || digits.len() >= 30 {
            return Err(corrupt_key());
        }
        digits.extend([(b - 1) / 10, (b - 1) % 10]);
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.first().is_none_or(|&d| d == 0) || digits.len() > 29 {
        return Err(corrupt_key());
    }
    // value = 0.d1d2... × 10^exponent = digits × 10^(exponent - len)
    let mut mantissa = digits.iter().fold(0u128, |m, &d| m * 10 + d as u128);
    let mut scale = digits.len() as i32 - exponent;
    if scale < 0 {
        mantissa = 10u128
            .checked_pow((-scale) as u32)
            .and_then(|p| mantissa.checked_mul(p))
            .ok_or_else(corrupt_key)?;
        scale = 0;
    }
    if scale > MAX_SCALE as i32 || mantissa > MAX_MANTISSA {
        return Err(corrupt_key());
    }
    let signed = if invert == 0xFF { -(mantissa as i128) } else { mantissa as i128 };
    Decimal::try_from_i128_with_scale(signed, scale as u32).map_err(|_| corrupt_key())
}

fn read_escaped(r: &mut KeyReader<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        match r.byte()? {
            0x00 => match r.byte()? {
                0xFF => out.push(0),
                0x01 => return Ok(out),
                _ => return Err(corrupt_key()),
            },
            b => out.push(b),
        }
    }
}

// ---------------------------------------------------------------------------
// Rows

fn put_uvarint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(u: u128) -> i128 {
    (u >> 1) as i128 ^ -((u & 1) as i128)
}

/// Appends the row encoding of `values` (see the module documentation).
pub fn encode_row(values: &[Value], out: &mut Vec<u8>) {
    put_uvarint(out, values.len() as u128);
    for value in values {
        match value {
            Value::Null => out.push(row_tag::NULL),
            Value::Bool(false) => out.push(row_tag::FALSE),
            Value::Bool(true) => out.push(row_tag::TRUE),
            Value::Int(i) => {
                out.push(row_tag::INT);
                put_uvarint(out, zigzag(*i as i128));
            }
            Value::Float(f) => {
                out.push(row_tag::FLOAT);
                out.extend(f.to_bits().to_le_bytes());
            }
            Value::Numeric(d) => {
                out.push(row_tag::NUMERIC);
                out.push(d.scale() as u8);
                put_uvarint(out, zigzag(d.mantissa()));
            }
            Value::Text(s) => {
                out.push(row_tag::TEXT);
                put_uvarint(out, s.len() as u128);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(row_tag::BYTES);
                put_uvarint(out, b.len() as u128);
                out.extend_from_slice(b);
            }
            Value::Date(d) => {
                out.push(row_tag::DATE);
                put_uvarint(out, zigzag(*d as i128));
            }
            Value::Timestamp(t) => {
                out.push(row_tag::TIMESTAMP);
                put_uvarint(out, zigzag(*t as i128));
            }
        }
    }
}

struct RowReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> RowReader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(corrupt_row)?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.buf.len());
        let end = end.ok_or_else(corrupt_row)?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn uvarint(&mut self) -> Result<u128> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            let bits = (b & 0x7F) as u128;
            if shift == 126 && bits > 0b11 {
                return Err(corrupt_row());
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt_row())
    }

    fn varint(&mut self) -> Result<i128> {
        self.uvarint().map(unzigzag)
    }

    fn length(&mut self) -> Result<usize> {
        usize::try_from(self.uvarint()?).map_err(|_| corrupt_row())
    }
}

/// Decodes a row written by [`encode_row`] with the declared column types.
/// Missing trailing columns (added by ALTER TABLE ADD COLUMN after the row
/// was written) decode as NULL. More columns than `types`, a tag that does not
/// fit the declared type, truncated or trailing bytes are XX001 `corrupt row
/// encoding`.
pub fn decode_row(buf: &[u8], types: &[DataType]) -> Result<Vec<Value>> {
    let mut r = RowReader { buf, pos: 0 };
    let count = r.length()?;
    if count > types.len() {
        return Err(corrupt_row());
    }
    let mut values = Vec::with_capacity(types.len());
    for ty in &types[..count] {
        values.push(read_row_value(&mut r, ty)?);
    }
    if r.pos != buf.len() {
        return Err(corrupt_row());
    }
    values.resize(types.len(), Value::Null);
    Ok(values)
}

/// [`decode_row`] for the columns where `needed` is true; the others are
/// checked for shape and skipped (no allocation, no UTF-8 check) and read
/// as NULL.
pub fn decode_row_columns(buf: &[u8], types: &[DataType], needed: &[bool]) -> Result<Vec<Value>> {
    debug_assert_eq!(types.len(), needed.len(), "one flag per column");
    let mut r = RowReader { buf, pos: 0 };
    let count = r.length()?;
    if count > types.len() {
        return Err(corrupt_row());
    }
    let mut values = Vec::with_capacity(types.len());
    for (ty, &keep) in types[..count].iter().zip(needed) {
        if keep {
            values.push(read_row_value(&mut r, ty)?);
        } else {
            skip_row_value(&mut r, ty)?;
            values.push(Value::Null);
        }
    }
    if r.pos != buf.len() {
        return Err(corrupt_row());
    }
    values.resize(types.len(), Value::Null);
    Ok(values)
}

/// Moves past one encoded value of type `ty` without decoding it.
fn skip_row_value(r: &mut RowReader<'_>, ty: &DataType) -> Result<()> {
    let tag = r.byte()?;
    match (tag, ty) {
        (row_tag::NULL, _) | (row_tag::FALSE | row_tag::TRUE, DataType::Bool) => {}
        (row_tag::INT, DataType::Int2 | DataType::Int4 | DataType::Int8)
        | (row_tag::DATE, DataType::Date)
        | (row_tag::TIMESTAMP, DataType::Timestamp) => {
            r.varint()?;
        }
        (row_tag::FLOAT, DataType::Float4 | DataType::Float8) => {
            r.bytes(8)?;
        }
        (row_tag::NUMERIC, DataType::Numeric { .. }) => {
            r.byte()?;
            r.varint()?;
        }
        (row_tag::TEXT, DataType::Text | DataType::Varchar(_) | DataType::Char(_))
        | (row_tag::BYTES, DataType::Bytea) => {
            let len = r.length()?;
            r.bytes(len)?;
        }
        _ => return Err(corrupt_row()),
    }
    Ok(())
}

fn read_row_value(r: &mut RowReader<'_>, ty: &DataType) -> Result<Value> {
    let tag = r.byte()?;
    if tag == row_tag::NULL {
        return Ok(Value::Null);
    }
    let value = match (tag, ty) {
        (row_tag::FALSE, DataType::Bool) => Value::Bool(false),
        (row_tag::TRUE, DataType::Bool) => Value::Bool(true),
        (row_tag::INT, DataType::Int2 | DataType::Int4 | DataType::Int8) => {
            let v = r.varint()?;
            if !int_fits(v, ty) {
                return Err(corrupt_row());
            }
            Value::Int(v as i64)
        }
        (row_tag::FLOAT, DataType::Float4 | DataType::Float8) => {
            let bytes = r.bytes(8)?.try_into().expect("8 bytes");
            Value::Float(f64::from_bits(u64::from_le_bytes(bytes)))
        }
        (row_tag::NUMERIC, DataType::Numeric { .. }) => {
            let scale = r.byte()? as u32;
            let mantissa = r.varint()?;
            if scale > MAX_SCALE || mantissa.unsigned_abs() > MAX_MANTISSA {
                return Err(corrupt_row());
            }
            let d =
                Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| corrupt_row())?;
            Value::Numeric(d)
        }
        (row_tag::TEXT, DataType::Text | DataType::Varchar(_) | DataType::Char(_)) => {
            let len = r.length()?;
            let bytes = r.bytes(len)?;
            Value::Text(std::str::from_utf8(bytes).map_err(|_| corrupt_row())?.to_string())
        }
        (row_tag::BYTES, DataType::Bytea) => {
            let len = r.length()?;
            Value::Bytes(r.bytes(len)?.to_vec())
        }
        (row_tag::DATE, DataType::Date) => {
            Value::Date(i32::try_from(r.varint()?).map_err(|_| corrupt_row())?)
        }
        (row_tag::TIMESTAMP, DataType::Timestamp) => {
            Value::Timestamp(i64::try_from(r.varint()?).map_err(|_| corrupt_row())?)
        }
        _ => return Err(corrupt_row()),
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn key(value: &Value, ty: &DataType, descending: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(&mut out, value, ty, descending);
        out
    }

    fn num(s: &str) -> Value {
        Value::Numeric(s.parse().unwrap())
    }

    const NUMERIC: DataType = DataType::Numeric { precision: None, scale: None };

    /// The order keys must have: `sort_cmp`, but with NULL first.
    fn key_order(a: &Value, b: &Value) -> Ordering {
        match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => a.sort_cmp(b),
        }
    }

    /// Same kind and same value, floats by bits, numerics including scale.
    fn identical(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Numeric(x), Value::Numeric(y)) => {
                x.mantissa() == y.mantissa() && x.scale() == y.scale()
            }
            _ => a == b,
        }
    }

    /// Values listed in ascending order encode in ascending byte order, in
    /// both directions, and round-trip.
    #[track_caller]
    fn assert_ascending(ty: &DataType, values: &[Value]) {
        for descending in [false, true] {
            let keys: Vec<Vec<u8>> = values.iter().map(|v| key(v, ty, descending)).collect();
            for i in 1..keys.len() {
                let want = if descending { Ordering::Greater } else { Ordering::Less };
                assert_eq!(
                    keys[i - 1].cmp(&keys[i]),
                    want,
                    "{:?} vs {:?} (descending: {descending})",
                    values[i - 1],
                    values[i]
                );
            }
            for (value, k) in values.iter().zip(&keys) {
                let mut pos = 0;
                let back = decode_key(k, &mut pos, ty, descending).unwrap();
                assert!(back.group_eq(value), "{value:?} decoded as {back:?}");
                assert_eq!(pos, k.len());
            }
        }
    }

    #[test]
    fn decoding_some_columns_skips_the_others_as_null() {
        let types = [
            DataType::Int8,
            DataType::Text,
            DataType::Bool,
            DataType::Numeric { precision: None, scale: None },
            DataType::Float8,
            DataType::Bytea,
            DataType::Date,
            DataType::Timestamp,
            DataType::Text,
        ];
        let values = [
            Value::Int(-7),
            Value::Text("héllo".into()),
            Value::Bool(true),
            num("-12.345"),
            Value::Float(2.5),
            Value::Bytes(vec![0, 255]),
            Value::Date(-3),
            Value::Timestamp(1_000_000),
            Value::Null,
        ];
        let mut row = Vec::new();
        encode_row(&values, &mut row);
        for mask in 0..1u32 << types.len() {
            let needed: Vec<bool> = (0..types.len()).map(|i| mask & (1 << i) != 0).collect();
            let expected: Vec<Value> = values
                .iter()
                .zip(&needed)
                .map(|(v, &keep)| if keep { v.clone() } else { Value::Null })
                .collect();
            assert_eq!(decode_row_columns(&row, &types, &needed).unwrap(), expected);
        }
        // Skipping still checks the shape: a truncated row is corrupt.
        let all_skipped = vec![false; types.len()];
        assert!(decode_row_columns(&row[..row.len() - 1], &types, &all_skipped).is_err());
    }

    #[test]
    fn integers_encode_in_order() {
        let values: Vec<Value> = [
            i64::MIN,
            i64::MIN + 1,
            -(1 << 56) - 1,
            -(1 << 56),
            -65537,
            -65536,
            -257,
            -256,
            -255,
            -2,
            -1,
            0,
            1,
            255,
            256,
            65535,
            65536,
            1 << 56,
            i64::MAX - 1,
            i64::MAX,
        ]
        .into_iter()
        .map(Value::Int)
        .collect();
        assert_ascending(&DataType::Int8, &values);
        assert_eq!(key(&Value::Int(0), &DataType::Int4, false), [0x20, 0x80]);
        assert_eq!(key(&Value::Int(1), &DataType::Int4, false), [0x20, 0x81, 0x01]);
        assert_eq!(key(&Value::Int(-1), &DataType::Int4, false), [0x20, 0x7F]);
        assert_eq!(key(&Value::Int(-256), &DataType::Int4, false), [0x20, 0x7E, 0x00]);
        assert_eq!(key(&Value::Int(1000), &DataType::Int4, false), [0x20, 0x82, 0x03, 0xE8]);
    }

    #[test]
    fn floats_encode_in_order() {
        let values: Vec<Value> = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.5,
            -1.0,
            -f64::MIN_POSITIVE,
            -5e-324,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            0.1,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ]
        .into_iter()
        .map(Value::Float)
        .collect();
        assert_ascending(&DataType::Float8, &values);
        let zero = key(&Value::Float(0.0), &DataType::Float8, false);
        assert_eq!(key(&Value::Float(-0.0), &DataType::Float8, false), zero);
        let nan = key(&Value::Float(f64::NAN), &DataType::Float4, false);
        assert_eq!(key(&Value::Float(-f64::NAN), &DataType::Float4, false), nan);
    }

    #[test]
    fn numerics_encode_in_order_and_normalised() {
        let values: Vec<Value> = [
            "-79228162514264337593543950335",
            "-100",
            "-10",
            "-9.99",
            "-1.5",
            "-1.05",
            "-1",
            "-0.11",
            "-0.1",
            "-0.0011",
            "-0.001",
            "-0.0000000000000000000000000001",
            "0",
            "0.0000000000000000000000000001",
            "0.001",
            "0.0011",
            "0.1",
            "0.11",
            "1",
            "1.05",
            "1.5",
            "9.99",
            "10",
            "100",
            "123456789.123456789",
            "79228162514264337593543950335",
        ]
        .into_iter()
        .map(num)
        .collect();
        assert_ascending(&NUMERIC, &values);
        for (a, b) in [("1.0", "1.00"), ("1", "1.000"), ("0", "-0.00"), ("-2.50", "-2.5")] {
            assert_eq!(key(&num(a), &NUMERIC, false), key(&num(b), &NUMERIC, false), "{a} {b}");
        }
        let k = key(&num("1.50"), &NUMERIC, false);
        let Value::Numeric(d) = decode_key(&k, &mut 0, &NUMERIC, false).unwrap() else {
            panic!("not a numeric");
        };
        assert_eq!((d.to_string(), d.scale()), ("1.5".to_string(), 1));
        let Value::Numeric(d) =
            decode_key(&key(&num("100"), &NUMERIC, false), &mut 0, &NUMERIC, false).unwrap()
        else {
            panic!("not a numeric");
        };
        assert_eq!(d.to_string(), "100");
        // An integer is accepted for a numeric column.
        assert_eq!(key(&Value::Int(7), &NUMERIC, false), key(&num("7.00"), &NUMERIC, false));
    }

    #[test]
    fn strings_escape_zero_bytes() {
        let values: Vec<Value> =
            ["", "\0", "\0\0", "\0a", "a", "a\0", "a\0\0", "a\u{1}", "ab", "b", "é"]
                .into_iter()
                .map(|s| Value::Text(s.to_string()))
                .collect();
        assert_ascending(&DataType::Text, &values);
        assert_eq!(key(&Value::Text("a".into()), &DataType::Text, false), [0x50, b'a', 0, 1]);
        assert_eq!(
            key(&Value::Text("a\0".into()), &DataType::Text, false),
            [0x50, b'a', 0, 0xFF, 0, 1]
        );
        let bytes: Vec<Value> = [&[][..], &[0], &[0, 0], &[0, 255], &[1], &[255], &[255, 0]]
            .into_iter()
            .map(|b| Value::Bytes(b.to_vec()))
            .collect();
        assert_ascending(&DataType::Bytea, &bytes);
        let padded = Value::Text("ab ".into());
        assert_ascending(&DataType::Char(Some(3)), &[Value::Text("a  ".into()), padded]);
    }

    #[test]
    fn other_types_encode_in_order() {
        assert_ascending(&DataType::Bool, &[Value::Bool(false), Value::Bool(true)]);
        let dates: Vec<Value> = [i32::MIN, -2_451_545, -1, 0, 1, 2_145_031_948, i32::MAX]
            .into_iter()
            .map(Value::Date)
            .collect();
        assert_ascending(&DataType::Date, &dates);
        let timestamps: Vec<Value> = [i64::MIN, -211_813_488_000_000_000, -1, 0, 1, i64::MAX]
            .into_iter()
            .map(Value::Timestamp)
            .collect();
        assert_ascending(&DataType::Timestamp, &timestamps);
    }

    #[test]
    fn null_is_below_ascending_and_above_descending() {
        for ty in [DataType::Int4, DataType::Text, NUMERIC, DataType::Float8, DataType::Bool] {
            let lowest = match ty {
                DataType::Int4 => Value::Int(i64::MIN),
                DataType::Text => Value::Text(String::new()),
                DataType::Float8 => Value::Float(f64::NEG_INFINITY),
                DataType::Bool => Value::Bool(false),
                _ => num("-79228162514264337593543950335"),
            };
            assert!(key(&Value::Null, &ty, false) < key(&lowest, &ty, false), "{ty:?}");
            assert!(key(&Value::Null, &ty, true) > key(&lowest, &ty, true), "{ty:?}");
            assert_eq!(decode_key(&[0x00], &mut 0, &ty, false), Ok(Value::Null));
            assert_eq!(decode_key(&[0xFF], &mut 0, &ty, true), Ok(Value::Null));
        }
    }

    #[test]
    fn malformed_keys_are_corrupt() {
        let cases: Vec<(Vec<u8>, DataType)> = vec![
            (vec![], DataType::Int4),
            (vec![0x20], DataType::Int4),
            (vec![0x20, 0x82, 0x01], DataType::Int4),
            (vec![0x20, 0x90], DataType::Int4),
            (vec![0x20, 0x84, 0x80, 0, 0, 0], DataType::Int4),
            (vec![0x20, 0x83, 0x01, 0, 0], DataType::Int2),
            (vec![0x50, b'a', 0, 1], DataType::Int4),
            (vec![0x50, b'a'], DataType::Text),
            (vec![0x50, b'a', 0, 2], DataType::Text),
            (vec![0x50, 0xFF, 0, 1], DataType::Text),
            (vec![0x10, 2], DataType::Bool),
            (vec![0x40, 0x05], NUMERIC),
            (vec![0x40, 0x03, 65, 0], NUMERIC),
            (vec![0x40, 0x03, 65, 1, 0], NUMERIC),
            (vec![0x40, 0x03, 65, 101, 0], NUMERIC),
            (vec![0x40, 0x03, 200, 11, 0], NUMERIC),
            (vec![0x40, 0x03, 0, 11, 0], NUMERIC),
            (vec![0x70, 0, 0], DataType::Date),
        ];
        for (bytes, ty) in cases {
            let mut pos = 0;
            let err = decode_key(&bytes, &mut pos, &ty, false).expect_err(&format!("{bytes:?}"));
            assert_eq!((err.code, err.message.as_str()), ("XX001", "corrupt key encoding"));
            assert_eq!(pos, 0);
        }
    }

    #[test]
    fn rows_round_trip_exactly() {
        let types = vec![
            DataType::Bool,
            DataType::Int2,
            DataType::Int8,
            DataType::Float4,
            DataType::Float8,
            DataType::Numeric { precision: Some(10), scale: Some(2) },
            DataType::Text,
            DataType::Char(Some(3)),
            DataType::Bytea,
            DataType::Date,
            DataType::Timestamp,
            DataType::Int4,
        ];
        let values = vec![
            Value::Bool(true),
            Value::Int(-32768),
            Value::Int(i64::MAX),
            Value::Float(0.1f32 as f64),
            Value::Float(-0.0),
            num("1.50"),
            Value::Text("héllo\0".into()),
            Value::Text("ab ".into()),
            Value::Bytes(vec![0, 1, 255]),
            Value::Date(-730119),
            Value::Timestamp(i64::MIN),
            Value::Null,
        ];
        let mut buf = Vec::new();
        encode_row(&values, &mut buf);
        let back = decode_row(&buf, &types).unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in values.iter().zip(&back) {
            assert!(identical(a, b), "{a:?} decoded as {b:?}");
        }
        let Value::Numeric(d) = &back[5] else { panic!("not a numeric") };
        assert_eq!(d.to_string(), "1.50");
    }

    #[test]
    fn rows_with_fewer_columns_pad_with_null() {
        let mut buf = Vec::new();
        encode_row(&[Value::Int(1)], &mut buf);
        let back = decode_row(&buf, &[DataType::Int4, DataType::Text, DataType::Bool]).unwrap();
        assert_eq!(back, vec![Value::Int(1), Value::Null, Value::Null]);
        let mut empty = Vec::new();
        encode_row(&[], &mut empty);
        assert_eq!(decode_row(&empty, &[DataType::Int4]), Ok(vec![Value::Null]));
    }

    #[test]
    fn malformed_rows_are_corrupt() {
        let mut two = Vec::new();
        encode_row(&[Value::Int(1), Value::Text("x".into())], &mut two);
        let cases: Vec<(Vec<u8>, Vec<DataType>)> = vec![
            // more columns than declared
            (two.clone(), vec![DataType::Int4]),
            // wrong tag for the declared type
            (two.clone(), vec![DataType::Int4, DataType::Bytea]),
            (two.clone(), vec![DataType::Text, DataType::Text]),
            // truncated
            (two[..two.len() - 1].to_vec(), vec![DataType::Int4, DataType::Text]),
            (vec![], vec![DataType::Int4]),
            // trailing bytes
            ([two.clone(), vec![0]].concat(), vec![DataType::Int4, DataType::Text]),
            // out of the declared integer range
            (vec![1, 3, 0x80, 0x80, 0x04], vec![DataType::Int2]),
            // invalid UTF-8
            (vec![1, 6, 1, 0xFF], vec![DataType::Text]),
            // numeric scale above 28
            (vec![1, 5, 29, 2], vec![NUMERIC]),
            // overlong varint
            ([vec![0x81; 20], vec![1]].concat(), vec![DataType::Int4]),
        ];
        for (bytes, types) in cases {
            let err = decode_row(&bytes, &types).expect_err(&format!("{bytes:?} {types:?}"));
            assert_eq!((err.code, err.message.as_str()), ("XX001", "corrupt row encoding"));
        }
    }

    fn any_type() -> impl Strategy<Value = DataType> {
        prop_oneof![
            Just(DataType::Bool),
            Just(DataType::Int2),
            Just(DataType::Int4),
            Just(DataType::Int8),
            Just(DataType::Float4),
            Just(DataType::Float8),
            Just(NUMERIC),
            Just(DataType::Text),
            Just(DataType::Char(Some(3))),
            Just(DataType::Bytea),
            Just(DataType::Date),
            Just(DataType::Timestamp),
        ]
    }

    fn special_floats() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (-3i32..3).prop_map(|i| i as f64),
        ]
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            (any::<i128>(), 0u32..=28).prop_map(|(m, s)| {
                let m = m % (MAX_MANTISSA as i128 + 1);
                Decimal::from_i128_with_scale(m, s)
            }),
            // Small values at many scales, so that equal values meet.
            (-30i64..30, 0u32..4, 0u32..=24).prop_map(|(m, s, extra)| {
                let mut d = Decimal::new(m, s);
                d.rescale(s + extra);
                d
            }),
        ]
    }

    /// A value of type `ty`, or NULL.
    fn any_value(ty: DataType) -> BoxedStrategy<Value> {
        let value = match ty {
            DataType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            DataType::Int2 => any::<i16>().prop_map(|i| Value::Int(i as i64)).boxed(),
            DataType::Int4 => prop_oneof![
                any::<i32>().prop_map(|i| Value::Int(i as i64)),
                (-300i64..300).prop_map(Value::Int),
            ]
            .boxed(),
            DataType::Int8 => prop_oneof![
                any::<i64>().prop_map(Value::Int),
                (-70000i64..70000).prop_map(Value::Int),
            ]
            .boxed(),
            DataType::Float4 => prop_oneof![
                any::<f32>().prop_map(|f| Value::Float(f as f64)),
                special_floats().prop_map(Value::Float),
            ]
            .boxed(),
            DataType::Float8 => prop_oneof![
                any::<f64>().prop_map(Value::Float),
                special_floats().prop_map(Value::Float),
            ]
            .boxed(),
            DataType::Numeric { .. } => any_decimal().prop_map(Value::Numeric).boxed(),
            DataType::Text | DataType::Varchar(_) | DataType::Char(_) => prop_oneof![
                "[ab\\x00\\x01]{0,5}".prop_map(Value::Text),
                any::<String>().prop_map(Value::Text),
            ]
            .boxed(),
            DataType::Bytea => prop_oneof![
                proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(255)], 0..5),
                proptest::collection::vec(any::<u8>(), 0..12),
            ]
            .prop_map(Value::Bytes)
            .boxed(),
            DataType::Date => any::<i32>().prop_map(Value::Date).boxed(),
            DataType::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 9 => value].boxed()
    }

    fn typed_pair() -> impl Strategy<Value = (DataType, Value, Value)> {
        any_type().prop_flat_map(|ty| (Just(ty.clone()), any_value(ty.clone()), any_value(ty)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// (1) Key order is SQL order (NULL first ascending, last descending).
        #[test]
        fn key_order_is_sql_order((ty, a, b) in typed_pair(), descending in any::<bool>()) {
            let want = key_order(&a, &b);
            let want = if descending { want.reverse() } else { want };
            prop_assert_eq!(key(&a, &ty, descending).cmp(&key(&b, &ty, descending)), want,
                "{:?} vs {:?}", a, b);
        }

        /// (2) Keys decode to the value they encode (numerics by value).
        #[test]
        fn keys_round_trip((ty, a, _b) in typed_pair(), descending in any::<bool>()) {
            let k = key(&a, &ty, descending);
            let mut pos = 0;
            let back = decode_key(&k, &mut pos, &ty, descending).unwrap();
            prop_assert_eq!(pos, k.len());
            prop_assert!(back.group_eq(&a), "{:?} decoded as {:?}", a, back);
            if let (Value::Numeric(x), Value::Numeric(y)) = (&a, &back) {
                prop_assert_eq!(x.normalize().scale(), y.scale());
            }
        }

        /// (3) Composite keys compare lexicographically.
        #[test]
        fn composite_keys_are_lexicographic(
            (t1, a1, b1) in typed_pair(),
            (t2, a2, b2) in typed_pair(),
            d1 in any::<bool>(),
            d2 in any::<bool>(),
        ) {
            let order = |o: Ordering, desc: bool| if desc { o.reverse() } else { o };
            let want = order(key_order(&a1, &b1), d1).then(order(key_order(&a2, &b2), d2));
            let mut ka = key(&a1, &t1, d1);
            encode_key(&mut ka, &a2, &t2, d2);
            let mut kb = key(&b1, &t1, d1);
            encode_key(&mut kb, &b2, &t2, d2);
            prop_assert_eq!(ka.cmp(&kb), want);
            let mut pos = 0;
            let x = decode_key(&ka, &mut pos, &t1, d1).unwrap();
            let y = decode_key(&ka, &mut pos, &t2, d2).unwrap();
            prop_assert_eq!(pos, ka.len());
            prop_assert!(x.group_eq(&a1) && y.group_eq(&a2));
        }

        /// (4) Rows decode to exactly the values encoded.
        #[test]
        fn rows_round_trip(columns in proptest::collection::vec(
            any_type().prop_flat_map(|ty| (Just(ty.clone()), any_value(ty))), 0..8)
        ) {
            let (types, values): (Vec<DataType>, Vec<Value>) = columns.into_iter().unzip();
            let mut buf = Vec::new();
            encode_row(&values, &mut buf);
            let back = decode_row(&buf, &types).unwrap();
            prop_assert_eq!(back.len(), values.len());
            for (a, b) in values.iter().zip(&back) {
                prop_assert!(identical(a, b), "{:?} decoded as {:?}", a, b);
            }
        }

        /// (5) Decoding arbitrary bytes never panics.
        #[test]
        fn decoding_garbage_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
            types in proptest::collection::vec(any_type(), 0..4),
            descending in any::<bool>(),
        ) {
            for ty in &types {
                let mut pos = 0;
                while decode_key(&bytes, &mut pos, ty, descending).is_ok() && pos < bytes.len() {}
            }
            let _ = decode_row(&bytes, &types);
        }

        /// (5) ... including bytes that start like a valid encoding.
        #[test]
        fn decoding_damaged_encodings_never_panics(
            (ty, a, _b) in typed_pair(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut k = key(&a, &ty, false);
            let i = flip.index(k.len());
            k[i] ^= 1 << bit;
            let _ = decode_key(&k, &mut 0, &ty, false);
            let _ = decode_key(&k[..cut.index(k.len() + 1)], &mut 0, &ty, false);
            let mut row = Vec::new();
            encode_row(std::slice::from_ref(&a), &mut row);
            let _ = decode_row(&row[..cut.index(row.len() + 1)], std::slice::from_ref(&ty));
            let i = flip.index(row.len());
            row[i] ^= 1 << bit;
            let _ = decode_row(&row, std::slice::from_ref(&ty));
        }
    }
}
