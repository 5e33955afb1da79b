//! The catalog: table schemas, stored transactionally in the key space.
//!
//! Key layout (all integers big-endian, so keys sort by table, then index):
//!
//! ```text
//! [0u32]["tbl"][table name]                 -> encoded Table       (descriptor)
//! [0u32]["seq"][name]                       -> u64                 (counters: table ids)
//! [table id u32][index id u32][key columns] -> row or index entry
//! ```
//!
//! The primary index has id [`PRIMARY_INDEX`]; its key is the encoded primary
//! key and its value the whole row ([`crate::encoding::encode_row`]). A
//! secondary index entry's key is the encoded index columns followed by the
//! encoded primary key (so entries are unique even for equal values) and its
//! value is empty; a unique index is enforced by looking up the index prefix
//! before insert, and two concurrent inserts of one value conflict through the
//! transaction layer's validation because both write the unique marker key
//! `[table][index][columns]` (see `dml.rs`).
//!
//! Because descriptors are ordinary versioned keys, DDL is transactional: a
//! `CREATE TABLE` inside a transaction is invisible to others until commit and
//! vanishes on rollback.

use std::sync::Arc;

use strata_lsm::KeyRange;
use strata_txn::Txn;

use crate::error::{Result, SqlError, sqlstate};
use crate::types::DataType;

/// Index id of every table's primary index.
pub const PRIMARY_INDEX: u32 = 1;

const SYSTEM_PREFIX: [u8; 4] = [0, 0, 0, 0];
/// First id handed to user tables.
const FIRST_TABLE_ID: u64 = 100;

/// A column of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: DataType,
    pub nullable: bool,
    /// The DEFAULT expression, as SQL text.
    pub default: Option<String>,
    /// The row id of a table declared without a primary key: never shown.
    pub hidden: bool,
}

/// A secondary index.
#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    pub id: u32,
    pub name: String,
    pub columns: Vec<usize>,
    pub unique: bool,
}

/// A CHECK constraint.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: String,
    /// The condition, as SQL text.
    pub expr: String,
}

/// A table's schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub id: u32,
    pub name: String,
    pub columns: Vec<Column>,
    /// Positions of the primary-key columns, in key order.
    pub primary_key: Vec<usize>,
    pub indexes: Vec<Index>,
    pub checks: Vec<Check>,
    pub next_index_id: u32,
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column_types(&self) -> Vec<DataType> {
        self.columns.iter().map(|c| c.ty.clone()).collect()
    }

    /// The key prefix of every entry of index `index_id`.
    pub fn index_prefix(&self, index_id: u32) -> Vec<u8> {
        let mut k = Vec::with_capacity(16);
        k.extend_from_slice(&self.id.to_be_bytes());
        k.extend_from_slice(&index_id.to_be_bytes());
        k
    }

    /// The range of keys of index `index_id`.
    pub fn index_range(&self, index_id: u32) -> KeyRange {
        KeyRange::prefix(&self.index_prefix(index_id))
    }

    /// The range of every key of this table (rows and indexes).
    pub fn all_keys(&self) -> KeyRange {
        KeyRange::prefix(&self.id.to_be_bytes())
    }

    pub fn index_by_name(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Visible columns (the hidden row id excluded), with their positions.
    pub fn visible_columns(&self) -> impl Iterator<Item = (usize, &Column)> {
        self.columns.iter().enumerate().filter(|(_, c)| !c.hidden)
    }
}

fn descriptor_key(name: &str) -> Vec<u8> {
    let mut k = SYSTEM_PREFIX.to_vec();
    k.extend_from_slice(b"tbl");
    k.extend_from_slice(name.as_bytes());
    k
}

fn counter_key(name: &str) -> Vec<u8> {
    let mut k = SYSTEM_PREFIX.to_vec();
    k.extend_from_slice(b"seq");
    k.extend_from_slice(name.as_bytes());
    k
}

/// Reads a table's schema as of the transaction's snapshot.
pub fn get_table(txn: &mut Txn, name: &str) -> Result<Option<Arc<Table>>> {
    match txn.get(&descriptor_key(name))? {
        Some(bytes) => Ok(Some(Arc::new(decode_table(&bytes)?))),
        None => Ok(None),
    }
}

/// A table's descriptor as stored (to tell whether it changed), as of the
/// transaction's snapshot.
pub fn descriptor_bytes(txn: &mut Txn, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(txn.get(&descriptor_key(name))?)
}

/// [`require_table`], also returning the descriptor's bytes (what
/// [`descriptor_bytes`] reads) for a plan cache to compare against later.
pub fn require_table_and_bytes(txn: &mut Txn, name: &str) -> Result<(Arc<Table>, Vec<u8>)> {
    match txn.get(&descriptor_key(name))? {
        Some(bytes) => Ok((Arc::new(decode_table(&bytes)?), bytes)),
        None => Err(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )),
    }
}

/// Reads a table's schema or fails with 42P01.
pub fn require_table(txn: &mut Txn, name: &str) -> Result<Arc<Table>> {
    get_table(txn, name)?.ok_or_else(|| {
        SqlError::new(sqlstate::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist"))
    })
}

/// Every table, in name order.
pub fn list_tables(txn: &mut Txn) -> Result<Vec<Arc<Table>>> {
    let mut prefix = SYSTEM_PREFIX.to_vec();
    prefix.extend_from_slice(b"tbl");
    let mut out = Vec::new();
    for row in txn.scan(KeyRange::prefix(&prefix), false)? {
        let (_, bytes) = row?;
        out.push(Arc::new(decode_table(&bytes)?));
    }
    Ok(out)
}

/// Stores (creates or replaces) a table's schema.
pub fn put_table(txn: &mut Txn, table: &Table) -> Result<()> {
    txn.put(&descriptor_key(&table.name), &encode_table(table))?;
    Ok(())
}

/// Removes a table's schema and every row and index entry.
pub fn drop_table(txn: &mut Txn, table: &Table) -> Result<()> {
    let keys: Vec<Vec<u8>> = txn
        .scan(table.all_keys(), false)?
        .map(|r| r.map(|(k, _)| k))
        .collect::<std::result::Result<_, _>>()?;
    for k in keys {
        txn.delete(&k)?;
    }
    txn.delete(&descriptor_key(&table.name))?;
    Ok(())
}

/// A new table id for a table `txn` creates. The counter moves in a
/// transaction of its own, committed at once: like a PostgreSQL sequence or
/// oid it is never rolled back, so concurrent CREATE TABLEs (of different
/// names) do not conflict on it, and a rolled-back CREATE leaves a gap.
pub fn allocate_table_id(txn: &Txn) -> Result<u32> {
    let key = counter_key("table_id");
    let next = txn.store().run(strata_txn::Isolation::Snapshot, |counter| {
        let next = match counter.get(&key)? {
            Some(v) => u64::from_le_bytes(
                v.try_into()
                    .map_err(|_| strata_txn::Error::Corruption("table id counter".into()))?,
            ),
            None => FIRST_TABLE_ID,
        };
        counter.put(&key, &(next + 1).to_le_bytes())?;
        Ok(next)
    })?;
    u32::try_from(next)
        .map_err(|_| SqlError::new(sqlstate::PROGRAM_LIMIT_EXCEEDED, "too many tables created"))
}

fn corrupt(what: &str) -> SqlError {
    SqlError::new(sqlstate::DATA_CORRUPTED, format!("corrupt catalog entry: {what}"))
}

// ----- descriptor encoding -----
//
// A small self-describing binary format: u8 format version, then fields in a
// fixed order, strings and lists length-prefixed with u32 LE.

const FORMAT: u8 = 1;

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
            None => self.u8(0),
        }
    }
    fn opt_str(&mut self, v: &Option<String>) {
        match v {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    fn ty(&mut self, ty: &DataType) {
        match ty {
            DataType::Bool => self.u8(1),
            DataType::Int2 => self.u8(2),
            DataType::Int4 => self.u8(3),
            DataType::Int8 => self.u8(4),
            DataType::Float4 => self.u8(5),
            DataType::Float8 => self.u8(6),
            DataType::Numeric { precision, scale } => {
                self.u8(7);
                self.opt_u32(*precision);
                self.opt_u32(*scale);
            }
            DataType::Text => self.u8(8),
            DataType::Varchar(n) => {
                self.u8(9);
                self.opt_u32(*n);
            }
            DataType::Char(n) => {
                self.u8(10);
                self.opt_u32(*n);
            }
            DataType::Bytea => self.u8(11),
            DataType::Date => self.u8(12),
            DataType::Timestamp => self.u8(13),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("name is not UTF-8"))
    }
    fn opt_u32(&mut self) -> Result<Option<u32>> {
        Ok(if self.u8()? == 1 { Some(self.u32()?) } else { None })
    }
    fn opt_str(&mut self) -> Result<Option<String>> {
        Ok(if self.u8()? == 1 { Some(self.str()?) } else { None })
    }
    fn ty(&mut self) -> Result<DataType> {
        Ok(match self.u8()? {
            1 => DataType::Bool,
            2 => DataType::Int2,
            3 => DataType::Int4,
            4 => DataType::Int8,
            5 => DataType::Float4,
            6 => DataType::Float8,
            7 => DataType::Numeric { precision: self.opt_u32()?, scale: self.opt_u32()? },
            8 => DataType::Text,
            9 => DataType::Varchar(self.opt_u32()?),
            10 => DataType::Char(self.opt_u32()?),
            11 => DataType::Bytea,
            12 => DataType::Date,
            13 => DataType::Timestamp,
            t => return Err(corrupt(&format!("unknown type tag {t}"))),
        })
    }
}

fn encode_table(t: &Table) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.u8(FORMAT);
    w.u32(t.id);
    w.str(&t.name);
    w.u32(t.columns.len() as u32);
    for c in &t.columns {
        w.str(&c.name);
        w.ty(&c.ty);
        w.u8(u8::from(c.nullable) | (u8::from(c.hidden) << 1));
        w.opt_str(&c.default);
    }
    w.u32(t.primary_key.len() as u32);
    for &p in &t.primary_key {
        w.u32(p as u32);
    }
    w.u32(t.indexes.len() as u32);
    for i in &t.indexes {
        w.u32(i.id);
        w.str(&i.name);
        w.u8(u8::from(i.unique));
        w.u32(i.columns.len() as u32);
        for &c in &i.columns {
            w.u32(c as u32);
        }
    }
    w.u32(t.checks.len() as u32);
    for c in &t.checks {
        w.str(&c.name);
        w.str(&c.expr);
    }
    w.u32(t.next_index_id);
    w.0
}

fn decode_table(buf: &[u8]) -> Result<Table> {
    let mut r = Reader { buf, pos: 0 };
    if r.u8()? != FORMAT {
        return Err(corrupt("unknown descriptor format"));
    }
    let id = r.u32()?;
    let name = r.str()?;
    let ncols = r.u32()? as usize;
    let mut columns = Vec::with_capacity(ncols.min(1024));
    for _ in 0..ncols {
        let name = r.str()?;
        let ty = r.ty()?;
        let flags = r.u8()?;
        let default = r.opt_str()?;
        columns.push(Column {
            name,
            ty,
            nullable: flags & 1 == 1,
            hidden: flags & 2 == 2,
            default,
        });
    }
    let column = |r: &mut Reader<'_>| -> Result<usize> {
        let c = r.u32()? as usize;
        if c >= ncols {
            return Err(corrupt("column position out of range"));
        }
        Ok(c)
    };
    let npk = r.u32()? as usize;
    let primary_key = (0..npk).map(|_| column(&mut r)).collect::<Result<Vec<_>>>()?;
    let nidx = r.u32()? as usize;
    let mut indexes = Vec::with_capacity(nidx.min(1024));
    for _ in 0..nidx {
        let id = r.u32()?;
        let name = r.str()?;
        let unique = r.u8()? == 1;
        let n = r.u32()? as usize;
        let columns = (0..n).map(|_| column(&mut r)).collect::<Result<Vec<_>>>()?;
        indexes.push(Index { id, name, columns, unique });
    }
    let nchecks = r.u32()? as usize;
    let mut checks = Vec::with_capacity(nchecks.min(1024));
    for _ in 0..nchecks {
        checks.push(Check { name: r.str()?, expr: r.str()? });
    }
    let next_index_id = r.u32()?;
    if r.pos != buf.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Table { id, name, columns, primary_key, indexes, checks, next_index_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            id: 101,
            name: "orders".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    ty: DataType::Int8,
                    nullable: false,
                    default: None,
                    hidden: false,
                },
                Column {
                    name: "total".into(),
                    ty: DataType::Numeric { precision: Some(10), scale: Some(2) },
                    nullable: true,
                    default: Some("0".into()),
                    hidden: false,
                },
                Column {
                    name: "note".into(),
                    ty: DataType::Varchar(Some(20)),
                    nullable: true,
                    default: None,
                    hidden: false,
                },
            ],
            primary_key: vec![0],
            indexes: vec![Index {
                id: 2,
                name: "orders_note".into(),
                columns: vec![2, 1],
                unique: true,
            }],
            checks: vec![Check { name: "orders_total_check".into(), expr: "total >= 0".into() }],
            next_index_id: 3,
        }
    }

    #[test]
    fn descriptors_round_trip() {
        let t = sample();
        assert_eq!(decode_table(&encode_table(&t)).unwrap(), t);
    }

    #[test]
    fn damaged_descriptors_are_errors_not_panics() {
        let bytes = encode_table(&sample());
        for cut in 0..bytes.len() {
            let err = decode_table(&bytes[..cut]).unwrap_err();
            assert_eq!(err.code, sqlstate::DATA_CORRUPTED);
        }
        let mut bad = bytes.clone();
        bad.push(0);
        assert!(decode_table(&bad).is_err());
    }
}
