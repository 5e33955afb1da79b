//! The YCSB core workloads (Cooper et al., "Benchmarking Cloud Serving
//! Systems with YCSB", SoCC 2010), as YCSB's `CoreWorkload` defines them,
//! against embedded Strata (key-value or SQL), SQLite and PostgreSQL.
//!
//! | workload | mix | request distribution |
//! |---|---|---|
//! | A | 50% read, 50% update | zipfian |
//! | B | 95% read, 5% update | zipfian |
//! | C | 100% read | zipfian |
//! | D | 95% read, 5% insert | latest |
//! | E | 95% scan (length uniform in 1..=100), 5% insert | zipfian |
//! | F | 50% read, 50% read-modify-write | zipfian |
//!
//! **Keys.** Record `n` has key `"user"` followed by the decimal FNV-1a
//! 64-bit hash of `n` (YCSB's default `insertorder=hashed`,
//! [`key_name`]), so consecutive records are scattered over the key space and
//! a scan reads records in hash order. The load phase inserts records
//! `0..records`; inserts of the run phase take the next numbers.
//!
//! **Request distributions** ([`KeyChooser`]):
//! - `zipfian` is YCSB's *scrambled* zipfian: a rank is drawn from a zipfian
//!   distribution (θ = 0.99) over 10^10 ranks with YCSB's precomputed ζ, and
//!   the record is `fnv64(rank) mod n`, so popular records are spread over the
//!   key space. `n` is the record count plus twice the expected inserts (as
//!   YCSB sizes it); draws of records not inserted yet are drawn again.
//! - `uniform`: every loaded record alike (inserted ones are not chosen, as
//!   in YCSB).
//! - `latest`: YCSB's skewed-latest: the newest record acknowledged minus a
//!   zipfian rank over the records so far, so recent inserts are hottest. ζ
//!   grows incrementally as records are inserted.
//!
//! **Operations.** A read fetches every field; an update writes one random
//! field (YCSB's `writeallfields=false`); an insert writes a whole record; a
//! scan reads every field of up to `len` records from the chosen key on, in
//! key order; a read-modify-write reads a record and updates one field *in
//! one transaction* (YCSB's JDBC binding runs the two without one: this
//! driver is stricter). On the key-value target a record is one key whose
//! value holds the fields ([`encode_record`]), so an update reads the record
//! and writes it back in one transaction. On SQL targets the table is
//! `usertable(ycsb_key VARCHAR PRIMARY KEY, field0..fieldN TEXT)`, and reads,
//! updates, inserts and scans are single autocommit statements.
//!
//! **Checks.** Every read and read-modify-write must find its record with
//! all its fields at their size, every scan must start at its key and return
//! keys in ascending order; misses are counted (`not_found`) and the smoke
//! test asserts there are none. After the run the records are counted: they
//! must be the loaded ones plus the acknowledged inserts.
//!
//! **Counting.** Latency is per operation, retries and their backoff
//! included, recorded only after the warm-up. `aborts` are serialization
//! failures: on Strata targets the engine's count (it includes those its SQL
//! autocommit statements retry by themselves), elsewhere the retryable errors
//! the driver saw. `retries` are the operations the driver ran again.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use strata_txn::{KeyRange, Store};

use crate::driver::{self, Attempts, json_string, micros, with_retries};
use crate::histogram::Histogram;
use crate::sqldb::{DbError, Durability, Param, SqlBackend, SqlConn, Target};
use crate::workload::{Rng, ValueGen};
use crate::zipfian::{self, Zipfian};

/// An operation of the core workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Read, Op::Update, Op::Insert, Op::Scan, Op::ReadModifyWrite];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Update => "update",
            Op::Insert => "insert",
            Op::Scan => "scan",
            Op::ReadModifyWrite => "rmw",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How keys of existing records are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    Zipfian,
    Uniform,
    Latest,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Zipfian => "zipfian",
            Distribution::Uniform => "uniform",
            Distribution::Latest => "latest",
        }
    }
}

/// Proportions of each operation, in [`Op::ALL`] order; they sum to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix(pub [f64; 5]);

impl Mix {
    pub fn proportion(&self, op: Op) -> f64 {
        self.0[op.index()]
    }

    /// The operation a uniform `u` in `[0, 1)` selects.
    pub fn choose(&self, u: f64) -> Op {
        let mut acc = 0.0;
        for op in Op::ALL {
            acc += self.proportion(op);
            if u < acc {
                return op;
            }
        }
        // Rounding: the last operation with a share.
        *Op::ALL.iter().rev().find(|op| self.proportion(**op) > 0.0).expect("a non-empty mix")
    }
}

/// A core workload: its letter, mix and default request distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    pub letter: char,
    pub mix: Mix,
    pub distribution: Distribution,
}

/// Workload `letter` (`a` to `f`, either case).
pub fn workload(letter: char) -> Result<Workload> {
    let letter = letter.to_ascii_lowercase();
    //                   read  update insert scan  rmw
    let (mix, distribution) = match letter {
        'a' => ([0.50, 0.50, 0.0, 0.0, 0.0], Distribution::Zipfian),
        'b' => ([0.95, 0.05, 0.0, 0.0, 0.0], Distribution::Zipfian),
        'c' => ([1.0, 0.0, 0.0, 0.0, 0.0], Distribution::Zipfian),
        'd' => ([0.95, 0.0, 0.05, 0.0, 0.0], Distribution::Latest),
        'e' => ([0.0, 0.0, 0.05, 0.95, 0.0], Distribution::Zipfian),
        'f' => ([0.50, 0.0, 0.0, 0.0, 0.50], Distribution::Zipfian),
        other => bail!("unknown YCSB workload `{other}`: expected a to f"),
    };
    Ok(Workload { letter, mix: Mix(mix), distribution })
}

/// YCSB's `Utils.fnvhash64`: FNV-1a over the 8 bytes of `value`, low byte
/// first, made non-negative as a Java `long` (`Math.abs`).
pub fn fnv_hash64(value: u64) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET_BASIS;
    let mut rest = value;
    for _ in 0..8 {
        hash ^= rest & 0xff;
        hash = hash.wrapping_mul(PRIME);
        rest >>= 8;
    }
    (hash as i64).unsigned_abs()
}

/// The key of record `n` (YCSB's `buildKeyName` with hashed insert order).
pub fn key_name(n: u64) -> String {
    format!("user{}", fnv_hash64(n))
}

/// A zipfian distribution whose item count only grows (for `latest`): ζ is
/// extended by the new terms instead of summed again.
#[derive(Clone, Debug)]
struct GrowingZipfian {
    zipf: Zipfian,
    zeta_n: f64,
}

impl GrowingZipfian {
    fn new(items: u64) -> Result<GrowingZipfian> {
        let zeta_n = zipfian::zeta(items, zipfian::YCSB_THETA);
        Ok(GrowingZipfian { zipf: Zipfian::with_zeta(items, zipfian::YCSB_THETA, zeta_n)?, zeta_n })
    }

    /// A rank in `0..items`, `items` at least the count of the last call.
    fn sample(&mut self, rng: &mut Rng, items: u64) -> u64 {
        let had = self.zipf.items();
        if items > had {
            let theta = zipfian::YCSB_THETA;
            self.zeta_n += (had + 1..=items).map(|k| (k as f64).powf(-theta)).sum::<f64>();
            self.zipf = Zipfian::with_zeta(items, theta, self.zeta_n).expect("valid parameters");
        }
        self.zipf.sample(rng)
    }
}

/// Chooses the record of a read, update, scan or read-modify-write (see the
/// module doc). One per thread.
#[derive(Clone, Debug)]
pub struct KeyChooser {
    kind: ChooserKind,
}

#[derive(Clone, Debug)]
enum ChooserKind {
    Uniform(u64),
    Scrambled { zipf: Zipfian, items: u64 },
    Latest(GrowingZipfian),
}

impl KeyChooser {
    /// For `records` loaded records and about `expected_inserts` more.
    pub fn new(distribution: Distribution, records: u64, expected_inserts: u64) -> Result<Self> {
        ensure!(records > 0, "YCSB needs at least one record");
        let kind = match distribution {
            Distribution::Uniform => ChooserKind::Uniform(records),
            Distribution::Zipfian => ChooserKind::Scrambled {
                zipf: Zipfian::with_zeta(
                    zipfian::YCSB_SCRAMBLED_ITEMS,
                    zipfian::YCSB_THETA,
                    zipfian::YCSB_SCRAMBLED_ZETA,
                )?,
                items: records + 2 * expected_inserts,
            },
            Distribution::Latest => ChooserKind::Latest(GrowingZipfian::new(records)?),
        };
        Ok(KeyChooser { kind })
    }

    /// A record number below `inserted` (every record below it exists).
    pub fn next(&mut self, rng: &mut Rng, inserted: u64) -> u64 {
        match &mut self.kind {
            ChooserKind::Uniform(n) => rng.below((*n).min(inserted)),
            ChooserKind::Scrambled { zipf, items } => loop {
                let n = fnv_hash64(zipf.sample(rng)) % *items;
                if n < inserted {
                    return n;
                }
            },
            ChooserKind::Latest(z) => inserted - 1 - z.sample(rng, inserted),
        }
    }
}

/// Record numbers of the run phase's inserts, and how far every record is
/// acknowledged (YCSB's `AcknowledgedCounterGenerator`): readers choose only
/// below that, so they never look for a record still being inserted.
#[derive(Debug)]
struct InsertSequence {
    next: AtomicU64,
    /// Every record below this is inserted.
    acked: AtomicU64,
    /// Inserted records above `acked`.
    pending: Mutex<BTreeSet<u64>>,
}

impl InsertSequence {
    fn new(records: u64) -> InsertSequence {
        InsertSequence {
            next: AtomicU64::new(records),
            acked: AtomicU64::new(records),
            pending: Mutex::new(BTreeSet::new()),
        }
    }

    fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn acknowledge(&self, n: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.insert(n);
        let mut limit = self.acked.load(Ordering::Acquire);
        while pending.remove(&limit) {
            limit += 1;
        }
        self.acked.store(limit, Ordering::Release);
    }

    fn inserted(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }
}

/// A record's value on the key-value target: each field as a little-endian
/// `u32` length and its bytes.
pub fn encode_record(fields: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// The inverse of [`encode_record`].
pub fn decode_record(mut bytes: &[u8]) -> Result<Vec<String>, DbError> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let bad = || DbError::fatal("a corrupt YCSB record");
        let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(bad)?.try_into().expect("4"));
        let field = bytes.get(4..4 + len as usize).ok_or_else(bad)?;
        fields.push(String::from_utf8(field.to_vec()).map_err(|_| bad())?);
        bytes = &bytes[4 + len as usize..];
    }
    Ok(fields)
}

/// What a read-like operation found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Yes,
    /// Missing, short, or (scan) out of order.
    No,
}

/// One thread's connection, whatever the target.
trait Client {
    /// Inserts `records` in one transaction.
    fn load(&mut self, records: &[(String, Vec<String>)]) -> Result<(), DbError>;
    fn read(&mut self, key: &str) -> Result<Option<Vec<String>>, DbError>;
    /// Sets one field; whether the record exists.
    fn update(&mut self, key: &str, field: usize, value: &str) -> Result<bool, DbError>;
    fn insert(&mut self, key: &str, fields: &[String]) -> Result<(), DbError>;
    /// Keys and fields of up to `len` records from `key` on, in key order.
    fn scan(&mut self, key: &str, len: u64) -> Result<Vec<(String, Vec<String>)>, DbError>;
    /// Reads a record and sets one field, in one transaction.
    fn read_modify_write(
        &mut self,
        key: &str,
        field: usize,
        value: &str,
    ) -> Result<Option<Vec<String>>, DbError>;
    /// Records in the store.
    fn count(&mut self) -> Result<u64, DbError>;
}

fn txn_error(e: strata_txn::Error) -> DbError {
    DbError { retryable: e.is_retryable(), message: format!("strata: {e}") }
}

/// The `strata` target: one key per record in the transactional key-value
/// store.
struct KvClient {
    store: Store,
}

impl KvClient {
    fn write_field(
        &mut self,
        key: &str,
        field: usize,
        value: &str,
    ) -> Result<Option<Vec<String>>, DbError> {
        let mut txn = self.store.begin();
        let Some(bytes) = txn.get(key.as_bytes()).map_err(txn_error)? else {
            return Ok(None);
        };
        let mut fields = decode_record(&bytes)?;
        let read = fields.clone();
        *fields.get_mut(field).ok_or_else(|| DbError::fatal("a record with too few fields"))? =
            value.to_string();
        txn.put(key.as_bytes(), &encode_record(&fields)).map_err(txn_error)?;
        txn.commit().map_err(txn_error)?;
        Ok(Some(read))
    }
}

impl Client for KvClient {
    fn load(&mut self, records: &[(String, Vec<String>)]) -> Result<(), DbError> {
        let mut txn = self.store.begin();
        for (key, fields) in records {
            txn.put(key.as_bytes(), &encode_record(fields)).map_err(txn_error)?;
        }
        txn.commit().map(drop).map_err(txn_error)
    }

    fn read(&mut self, key: &str) -> Result<Option<Vec<String>>, DbError> {
        let mut txn = self.store.begin_read_only();
        match txn.get(key.as_bytes()).map_err(txn_error)? {
            Some(bytes) => decode_record(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn update(&mut self, key: &str, field: usize, value: &str) -> Result<bool, DbError> {
        Ok(self.write_field(key, field, value)?.is_some())
    }

    fn insert(&mut self, key: &str, fields: &[String]) -> Result<(), DbError> {
        let mut txn = self.store.begin();
        txn.put(key.as_bytes(), &encode_record(fields)).map_err(txn_error)?;
        txn.commit().map(drop).map_err(txn_error)
    }

    fn scan(&mut self, key: &str, len: u64) -> Result<Vec<(String, Vec<String>)>, DbError> {
        let mut txn = self.store.begin_read_only();
        let range = KeyRange::new(Bound::Included(key.as_bytes()), Bound::Unbounded);
        let mut out = Vec::with_capacity(len as usize);
        for row in txn.scan(range, false).map_err(txn_error)?.take(len as usize) {
            let (k, v) = row.map_err(txn_error)?;
            let k = String::from_utf8(k).map_err(|_| DbError::fatal("a non-UTF-8 key"))?;
            out.push((k, decode_record(&v)?));
        }
        Ok(out)
    }

    fn read_modify_write(
        &mut self,
        key: &str,
        field: usize,
        value: &str,
    ) -> Result<Option<Vec<String>>, DbError> {
        self.write_field(key, field, value)
    }

    fn count(&mut self) -> Result<u64, DbError> {
        let mut txn = self.store.begin_read_only();
        let mut n = 0;
        for row in txn.scan(KeyRange::all(), false).map_err(txn_error)? {
            row.map_err(txn_error)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The SQL targets: `usertable` through a [`SqlConn`].
struct SqlClient {
    conn: Box<dyn SqlConn>,
    sql: SqlText,
}

/// The statements of the SQL targets.
#[derive(Clone, Debug)]
struct SqlText {
    read: String,
    /// One per field: `UPDATE usertable SET fieldN = $1 WHERE ycsb_key = $2`.
    update: Vec<String>,
    insert: String,
    scan: String,
}

impl SqlText {
    fn new(fields: usize) -> SqlText {
        let placeholders: Vec<String> = (1..=fields + 1).map(|i| format!("${i}")).collect();
        let columns: Vec<String> = (0..fields).map(|i| format!("field{i}")).collect();
        SqlText {
            read: "SELECT * FROM usertable WHERE ycsb_key = $1".into(),
            update: columns
                .iter()
                .map(|c| format!("UPDATE usertable SET {c} = $1 WHERE ycsb_key = $2"))
                .collect(),
            insert: format!(
                "INSERT INTO usertable (ycsb_key, {}) VALUES ({})",
                columns.join(", "),
                placeholders.join(", ")
            ),
            scan: "SELECT * FROM usertable WHERE ycsb_key >= $1 ORDER BY ycsb_key LIMIT $2".into(),
        }
    }

    fn create_table(fields: usize) -> String {
        let columns: Vec<String> = (0..fields).map(|i| format!(", field{i} TEXT")).collect();
        format!("CREATE TABLE usertable (ycsb_key VARCHAR(64) PRIMARY KEY{})", columns.concat())
    }
}

fn row_fields(row: &[crate::sqldb::Datum]) -> Result<(String, Vec<String>), DbError> {
    let key = row.first().ok_or_else(|| DbError::fatal("an empty row"))?.as_str()?.to_string();
    let fields =
        row[1..].iter().map(|d| d.as_str().map(str::to_string)).collect::<Result<_, _>>()?;
    Ok((key, fields))
}

/// Runs `body` in a transaction on `conn`, rolling back if it fails.
fn in_txn<T>(
    conn: &mut dyn SqlConn,
    body: impl FnOnce(&mut dyn SqlConn) -> Result<T, DbError>,
) -> Result<T, DbError> {
    conn.begin(false)?;
    match body(&mut *conn).and_then(|v| conn.commit().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) => {
            // The error that matters is the first; a failed rollback of a
            // transaction the server already ended adds nothing.
            let _ = conn.rollback();
            Err(e)
        }
    }
}

impl SqlClient {
    fn insert_params(key: &str, fields: &[String]) -> Vec<Param> {
        std::iter::once(Param::Text(key.to_string()))
            .chain(fields.iter().map(|f| Param::Text(f.clone())))
            .collect()
    }
}

impl Client for SqlClient {
    fn load(&mut self, records: &[(String, Vec<String>)]) -> Result<(), DbError> {
        let insert = &self.sql.insert;
        in_txn(&mut *self.conn, |c| {
            for (key, fields) in records {
                c.execute(insert, &SqlClient::insert_params(key, fields))?;
            }
            Ok(())
        })
    }

    fn read(&mut self, key: &str) -> Result<Option<Vec<String>>, DbError> {
        let rows = self.conn.query(&self.sql.read, &[Param::Text(key.to_string())])?;
        rows.first().map(|r| row_fields(r).map(|(_, f)| f)).transpose()
    }

    fn update(&mut self, key: &str, field: usize, value: &str) -> Result<bool, DbError> {
        let params = [Param::Text(value.to_string()), Param::Text(key.to_string())];
        Ok(self.conn.execute(&self.sql.update[field], &params)? == 1)
    }

    fn insert(&mut self, key: &str, fields: &[String]) -> Result<(), DbError> {
        self.conn.execute(&self.sql.insert, &SqlClient::insert_params(key, fields)).map(drop)
    }

    fn scan(&mut self, key: &str, len: u64) -> Result<Vec<(String, Vec<String>)>, DbError> {
        let params = [Param::Text(key.to_string()), Param::Int(len as i64)];
        let rows = self.conn.query(&self.sql.scan, &params)?;
        rows.iter().map(|r| row_fields(r)).collect()
    }

    fn read_modify_write(
        &mut self,
        key: &str,
        field: usize,
        value: &str,
    ) -> Result<Option<Vec<String>>, DbError> {
        let sql = &self.sql;
        in_txn(&mut *self.conn, |c| {
            let rows = c.query(&sql.read, &[Param::Text(key.to_string())])?;
            let Some(row) = rows.first() else { return Ok(None) };
            let (_, fields) = row_fields(row)?;
            let params = [Param::Text(value.to_string()), Param::Text(key.to_string())];
            c.execute(&sql.update[field], &params)?;
            Ok(Some(fields))
        })
    }

    fn count(&mut self) -> Result<u64, DbError> {
        let rows = self.conn.query("SELECT COUNT(*) FROM usertable", &[])?;
        let n = rows.first().and_then(|r| r.first()).ok_or_else(|| DbError::fatal("no count"))?;
        Ok(n.as_i64()? as u64)
    }
}

/// Where the clients connect.
enum Backend {
    Kv(Store),
    Sql(SqlBackend),
}

impl Backend {
    fn client(&self, fields: usize) -> Result<Box<dyn Client>, DbError> {
        Ok(match self {
            Backend::Kv(store) => Box::new(KvClient { store: store.clone() }),
            Backend::Sql(b) => {
                Box::new(SqlClient { conn: b.connect()?, sql: SqlText::new(fields) })
            }
        })
    }

    /// Serialization failures the engine counted, for Strata targets.
    fn engine_aborts(&self) -> Option<u64> {
        let store = match self {
            Backend::Kv(store) => store,
            Backend::Sql(b) => b.strata()?.store(),
        };
        let s = store.stats();
        Some(s.aborts_write_write + s.aborts_read_write + s.aborts_phantom)
    }
}

/// Parameters of one YCSB run.
#[derive(Clone, Debug)]
pub struct YcsbConfig {
    pub target: Target,
    pub workload: Workload,
    /// Records loaded before the run.
    pub records: u64,
    /// Operations of the measured phase, over all threads; if `None`, the
    /// phase lasts `duration`.
    pub operations: Option<u64>,
    pub duration: Duration,
    pub fields: usize,
    pub field_bytes: usize,
    pub threads: usize,
    /// Operations run before the measured phase, not recorded.
    pub warmup: Duration,
    /// Scan lengths are uniform in `1..=max_scan`.
    pub max_scan: u64,
    /// Records per loading transaction.
    pub load_batch: usize,
    pub durability: Durability,
    /// Where embedded targets keep their files; a temporary directory if
    /// `None` (erased at the end).
    pub dir: Option<PathBuf>,
    pub seed: u64,
}

impl YcsbConfig {
    /// YCSB's defaults (10 fields of 100 bytes) for `workload` on `target`,
    /// 1,000 records, 1,000 operations, one thread, no warm-up.
    pub fn new(target: Target, workload: Workload) -> YcsbConfig {
        YcsbConfig {
            target,
            workload,
            records: 1_000,
            operations: Some(1_000),
            duration: Duration::from_secs(10),
            fields: 10,
            field_bytes: 100,
            threads: 1,
            warmup: Duration::ZERO,
            max_scan: 100,
            load_batch: 100,
            durability: Durability::Sync,
            dir: None,
            seed: 0x1cdb,
        }
    }
}

/// Counts and latencies of one operation type.
#[derive(Clone, Debug)]
pub struct OpReport {
    pub op: Op,
    /// Operations completed (found or not).
    pub count: u64,
    /// Reads, updates, scans or read-modify-writes that did not find their
    /// record (or whose scan was out of order or short of fields).
    pub not_found: u64,
    /// Operations given up after [`driver::MAX_ATTEMPTS`] serialization failures.
    pub failed: u64,
    pub latency: Histogram,
}

impl OpReport {
    fn new(op: Op) -> OpReport {
        OpReport { op, count: 0, not_found: 0, failed: 0, latency: Histogram::new() }
    }

    fn merge(&mut self, other: &OpReport) {
        self.count += other.count;
        self.not_found += other.not_found;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct YcsbReport {
    pub target: String,
    pub workload: char,
    pub distribution: Distribution,
    pub threads: usize,
    pub records: u64,
    pub fields: usize,
    pub field_bytes: usize,
    pub durability: Durability,
    pub durability_detail: &'static str,
    pub load_elapsed: Duration,
    pub warmup: Duration,
    /// From the end of the warm-up to the end of the last operation.
    pub elapsed: Duration,
    /// Per operation type that the workload uses, in [`Op::ALL`] order.
    pub ops: Vec<OpReport>,
    pub aborts: u64,
    pub retries: u64,
    /// Records counted after the run (loaded plus acknowledged inserts).
    pub records_after: u64,
}

impl YcsbReport {
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().map(|o| o.count).sum()
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.total_ops() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn op(&self, op: Op) -> Option<&OpReport> {
        self.ops.iter().find(|o| o.op == op)
    }

    pub fn not_found(&self) -> u64 {
        self.ops.iter().map(|o| o.not_found).sum()
    }

    /// The report as text lines.
    pub fn text(&self) -> String {
        let mut out = format!(
            "ycsb {} on {}: {} records of {} x {} B, {} threads, {} distribution, durability {} ({})\n",
            self.workload.to_ascii_uppercase(),
            self.target,
            self.records,
            self.fields,
            self.field_bytes,
            self.threads,
            self.distribution.name(),
            self.durability.name(),
            self.durability_detail,
        );
        out += &format!(
            "load: {:.2} s ({:.0} records/s); warm-up {:.1} s; run {:.2} s\n",
            self.load_elapsed.as_secs_f64(),
            self.records as f64 / self.load_elapsed.as_secs_f64().max(1e-9),
            self.warmup.as_secs_f64(),
            self.elapsed.as_secs_f64()
        );
        out += &format!(
            "throughput: {:.0} ops/s ({} ops); aborts {}, retries {}, not found {}\n",
            self.ops_per_sec(),
            self.total_ops(),
            self.aborts,
            self.retries,
            self.not_found()
        );
        out += &format!(
            "{:<7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7}\n",
            "op", "count", "p50 us", "p95 us", "p99 us", "p99.9 us", "notfound", "failed"
        );
        for o in &self.ops {
            let p = |q| micros(o.latency.percentile(q));
            out += &format!(
                "{:<7} {:>10} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>9} {:>7}\n",
                o.op.name(),
                o.count,
                p(50.0),
                p(95.0),
                p(99.0),
                p(99.9),
                o.not_found,
                o.failed
            );
        }
        out
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|o| {
                let p = |q| micros(o.latency.percentile(q));
                format!(
                    "\"{}\":{{\"count\":{},\"not_found\":{},\"failed\":{},\"p50_us\":{:.1},\
                     \"p95_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}}}",
                    o.op.name(),
                    o.count,
                    o.not_found,
                    o.failed,
                    p(50.0),
                    p(95.0),
                    p(99.0),
                    p(99.9),
                    micros(o.latency.max())
                )
            })
            .collect();
        let fields = [
            format!("\"target\":{}", json_string(&self.target)),
            format!("\"workload\":\"{}\"", self.workload),
            format!("\"distribution\":\"{}\"", self.distribution.name()),
            format!("\"threads\":{}", self.threads),
            format!("\"records\":{}", self.records),
            format!("\"fields\":{}", self.fields),
            format!("\"field_bytes\":{}", self.field_bytes),
            format!("\"durability\":{}", json_string(self.durability_detail)),
            format!("\"load_s\":{:.3}", self.load_elapsed.as_secs_f64()),
            format!("\"warmup_s\":{:.3}", self.warmup.as_secs_f64()),
            format!("\"elapsed_s\":{:.3}", self.elapsed.as_secs_f64()),
            format!("\"operations\":{}", self.total_ops()),
            format!("\"ops_per_sec\":{:.1}", self.ops_per_sec()),
            format!("\"aborts\":{}", self.aborts),
            format!("\"retries\":{}", self.retries),
            format!("\"records_after\":{}", self.records_after),
            format!("\"ops\":{{{}}}", ops.join(",")),
        ];
        format!("{{{}}}", fields.join(","))
    }
}

/// A record's fields: `fields` printable strings of `bytes` each.
fn make_fields(values: &mut ValueGen, fields: usize, bytes: usize) -> Vec<String> {
    (0..fields).map(|_| make_field(values, bytes)).collect()
}

fn make_field(values: &mut ValueGen, bytes: usize) -> String {
    String::from_utf8(values.next(bytes).to_vec()).expect("ValueGen makes printable ASCII")
}

/// Whether `fields` is a whole record.
fn complete(fields: &[String], cfg: &YcsbConfig) -> bool {
    fields.len() == cfg.fields && fields.iter().all(|f| f.len() == cfg.field_bytes)
}

/// What one thread measured.
struct ThreadOutcome {
    ops: Vec<OpReport>,
    retries: u64,
    aborts: u64,
    end: Instant,
}

/// Loads, runs and checks one YCSB workload; see the module doc.
pub fn run(cfg: &YcsbConfig) -> Result<YcsbReport> {
    ensure!(cfg.threads > 0, "--threads must be positive");
    ensure!(cfg.fields > 0 && cfg.field_bytes > 0, "records need fields of at least one byte");
    ensure!(cfg.max_scan > 0 && cfg.load_batch > 0, "scan length and load batch must be positive");
    if let Some(ops) = cfg.operations {
        ensure!(ops > 0, "--operations must be positive");
    }
    let temp = match &cfg.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("ycsb-").tempdir()?),
    };
    let dir: &Path = cfg.dir.as_deref().unwrap_or_else(|| temp.as_ref().expect("made").path());
    let backend = open(cfg, dir)?;

    let load_elapsed = load(cfg, &backend)?;

    let mix = cfg.workload.mix;
    let expected_inserts =
        (cfg.operations.unwrap_or(cfg.records) as f64 * mix.proportion(Op::Insert)) as u64;
    let chooser = KeyChooser::new(cfg.workload.distribution, cfg.records, expected_inserts)?;
    let inserts = InsertSequence::new(cfg.records);

    let start = OnceLock::new();
    let barrier = Barrier::new(cfg.threads + 1);
    let mut aborts_at_start = None;
    let results: Vec<std::thread::Result<Result<ThreadOutcome>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (start, barrier, backend, chooser, inserts) =
                    (&start, &barrier, &backend, &chooser, &inserts);
                s.spawn(move || {
                    let client = backend.client(cfg.fields);
                    barrier.wait();
                    let start: Instant = *start.get().expect("set before the barrier opens");
                    worker(cfg, t, client?, chooser.clone(), inserts, start)
                })
            })
            .collect();
        start.set(Instant::now()).expect("set once");
        barrier.wait();
        std::thread::sleep(cfg.warmup);
        aborts_at_start = backend.engine_aborts();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let engine_aborts = backend.engine_aborts().zip(aborts_at_start).map(|(end, at)| end - at);
    let measured_from = *start.get().expect("set") + cfg.warmup;

    let mut ops: Vec<OpReport> = Op::ALL.iter().map(|&op| OpReport::new(op)).collect();
    let (mut retries, mut driver_aborts, mut end) = (0, 0, measured_from);
    for r in results {
        let r = r.map_err(|_| anyhow::anyhow!("a YCSB thread panicked"))??;
        for (mine, theirs) in ops.iter_mut().zip(&r.ops) {
            mine.merge(theirs);
        }
        retries += r.retries;
        driver_aborts += r.aborts;
        end = end.max(r.end);
    }
    ops.retain(|o| mix.proportion(o.op) > 0.0 || o.count > 0);

    let mut client = backend.client(cfg.fields)?;
    let records_after = client.count().context("counting the records after the run")?;
    let expected = inserts.inserted();
    ensure!(
        records_after == expected,
        "{records_after} records after the run, expected {expected} ({} loaded and the \
         acknowledged inserts)",
        cfg.records
    );
    Ok(YcsbReport {
        target: cfg.target.name(),
        workload: cfg.workload.letter,
        distribution: cfg.workload.distribution,
        threads: cfg.threads,
        records: cfg.records,
        fields: cfg.fields,
        field_bytes: cfg.field_bytes,
        durability: cfg.durability,
        durability_detail: cfg.durability.describe(&cfg.target),
        load_elapsed,
        warmup: cfg.warmup,
        elapsed: end.saturating_duration_since(measured_from),
        ops,
        aborts: engine_aborts.unwrap_or(driver_aborts),
        retries,
        records_after,
    })
}

fn open(cfg: &YcsbConfig, dir: &Path) -> Result<Backend> {
    if cfg.target == Target::Strata {
        let path = dir.join("strata-kv");
        let store = Store::open(&path, cfg.durability.strata_options())
            .with_context(|| format!("opening a store in {}", path.display()))?;
        return Ok(Backend::Kv(store));
    }
    let sub = dir.join(match &cfg.target {
        Target::StrataSql => "strata-sql",
        _ => "sqlite",
    });
    if cfg.dir.is_some() && sub.exists() {
        std::fs::remove_dir_all(&sub).with_context(|| format!("erasing {}", sub.display()))?;
    }
    let backend = SqlBackend::open(&cfg.target, &sub, cfg.durability)?;
    let mut conn = backend.connect()?;
    if matches!(cfg.target, Target::Postgres(_)) {
        conn.batch("DROP TABLE IF EXISTS usertable")?;
    }
    conn.batch(&SqlText::create_table(cfg.fields))?;
    Ok(Backend::Sql(backend))
}

/// Inserts records `0..records` from `threads` threads, `load_batch` per
/// transaction; returns how long it took.
fn load(cfg: &YcsbConfig, backend: &Backend) -> Result<Duration> {
    let started = Instant::now();
    let per_thread = cfg.records.div_ceil(cfg.threads as u64);
    std::thread::scope(|s| {
        let loaders: Vec<_> = (0..cfg.threads as u64)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    let mut client = backend.client(cfg.fields)?;
                    let mut values = ValueGen::new(driver::thread_seed(cfg.seed, t as usize));
                    let mut rng = Rng::new(driver::thread_seed(cfg.seed ^ 0x10ad, t as usize));
                    let first = t * per_thread;
                    let last = ((t + 1) * per_thread).min(cfg.records);
                    let mut n = first;
                    while n < last {
                        let batch_end = (n + cfg.load_batch as u64).min(last);
                        let batch: Vec<(String, Vec<String>)> = (n..batch_end)
                            .map(|i| {
                                (key_name(i), make_fields(&mut values, cfg.fields, cfg.field_bytes))
                            })
                            .collect();
                        let done = with_retries(&mut rng, || client.load(&batch));
                        done.result.with_context(|| format!("loading records {n}..{batch_end}"))?;
                        n = batch_end;
                    }
                    Ok(())
                })
            })
            .collect();
        for l in loaders {
            l.join().map_err(|_| anyhow::anyhow!("a loading thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(started.elapsed())
}

/// One thread of the run phase: warm-up, then measured operations until its
/// share of `operations` is done or `duration` has passed.
fn worker(
    cfg: &YcsbConfig,
    thread: usize,
    mut client: Box<dyn Client>,
    mut chooser: KeyChooser,
    inserts: &InsertSequence,
    start: Instant,
) -> Result<ThreadOutcome> {
    let mut rng = Rng::new(driver::thread_seed(cfg.seed, thread));
    let mut values = ValueGen::new(driver::thread_seed(cfg.seed ^ 0x7a1e, thread));
    let measure_from = start + cfg.warmup;
    let deadline = measure_from + cfg.duration;
    let quota = cfg.operations.map(|ops| {
        let t = thread as u64;
        ops / cfg.threads as u64 + u64::from(t < ops % cfg.threads as u64)
    });
    let mut ops: Vec<OpReport> = Op::ALL.iter().map(|&op| OpReport::new(op)).collect();
    let (mut retries, mut aborts, mut done) = (0u64, 0u64, 0u64);
    let mut end = Instant::now();
    loop {
        let began = Instant::now();
        let measuring = began >= measure_from;
        if measuring {
            match quota {
                Some(q) if done >= q => break,
                None if began >= deadline => break,
                _ => {}
            }
        }
        let op = cfg.workload.mix.choose(rng.unit_f64());
        let (found, attempts) =
            perform(cfg, op, &mut *client, &mut chooser, inserts, &mut rng, &mut values);
        end = Instant::now();
        if !measuring {
            if let Err(e) = &found
                && !e.retryable
            {
                bail!("{} failed: {e}", op.name());
            }
            continue;
        }
        let report = &mut ops[op.index()];
        aborts += u64::from(attempts);
        match found {
            Ok(found) => {
                retries += u64::from(attempts);
                report.count += 1;
                report.not_found += u64::from(found == Found::No);
                report.latency.record_duration(end - began);
            }
            Err(e) if e.retryable => {
                retries += u64::from(attempts.saturating_sub(1));
                report.failed += 1;
            }
            Err(e) => bail!("{} failed: {e}", op.name()),
        }
        done += 1;
    }
    Ok(ThreadOutcome { ops, retries, aborts, end })
}

/// Runs one operation with retries; returns what it found and how many
/// attempts were aborted.
fn perform(
    cfg: &YcsbConfig,
    op: Op,
    client: &mut dyn Client,
    chooser: &mut KeyChooser,
    inserts: &InsertSequence,
    rng: &mut Rng,
    values: &mut ValueGen,
) -> (Result<Found, DbError>, u32) {
    let found = |ok: bool| if ok { Found::Yes } else { Found::No };
    let mut retry_rng = Rng::new(rng.next_u64());
    let Attempts { result, aborts } = match op {
        Op::Read => {
            let key = key_name(chooser.next(rng, inserts.inserted()));
            with_retries(&mut retry_rng, || {
                Ok(found(client.read(&key)?.is_some_and(|f| complete(&f, cfg))))
            })
        }
        Op::Update => {
            let key = key_name(chooser.next(rng, inserts.inserted()));
            let field = rng.below(cfg.fields as u64) as usize;
            let value = make_field(values, cfg.field_bytes);
            with_retries(&mut retry_rng, || Ok(found(client.update(&key, field, &value)?)))
        }
        Op::ReadModifyWrite => {
            let key = key_name(chooser.next(rng, inserts.inserted()));
            let field = rng.below(cfg.fields as u64) as usize;
            let value = make_field(values, cfg.field_bytes);
            with_retries(&mut retry_rng, || {
                let read = client.read_modify_write(&key, field, &value)?;
                Ok(found(read.is_some_and(|f| complete(&f, cfg))))
            })
        }
        Op::Insert => {
            let n = inserts.take();
            let key = key_name(n);
            let fields = make_fields(values, cfg.fields, cfg.field_bytes);
            let done = with_retries(&mut retry_rng, || client.insert(&key, &fields));
            if done.result.is_ok() {
                inserts.acknowledge(n);
            }
            Attempts { result: done.result.map(|()| Found::Yes), aborts: done.aborts }
        }
        Op::Scan => {
            let key = key_name(chooser.next(rng, inserts.inserted()));
            let len = 1 + rng.below(cfg.max_scan);
            with_retries(&mut retry_rng, || {
                let rows = client.scan(&key, len)?;
                let starts_at_key = rows.first().is_some_and(|(k, _)| *k == key);
                let ordered = rows.windows(2).all(|w| w[0].0 < w[1].0);
                let whole = rows.iter().all(|(_, f)| complete(f, cfg));
                Ok(found(starts_at_key && ordered && whole && rows.len() as u64 <= len))
            })
        }
    };
    (result, aborts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_hash_matches_ycsb() {
        // YCSB's first keys with the default hashed insert order.
        assert_eq!(key_name(0), "user6284781860667377211");
        assert_eq!(key_name(1), "user8517097267634966620");
        assert_eq!(fnv_hash64(3), 4_052_466_453_699_787_802);
        assert!(fnv_hash64(u64::MAX) <= i64::MAX as u64 + 1);
    }

    #[test]
    fn workloads_have_the_core_proportions() {
        for letter in ['a', 'b', 'c', 'd', 'e', 'f'] {
            let w = workload(letter).unwrap();
            let sum: f64 = w.mix.0.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12, "{letter}: {sum}");
        }
        assert_eq!(workload('D').unwrap().distribution, Distribution::Latest);
        assert_eq!(workload('e').unwrap().mix.proportion(Op::Scan), 0.95);
        assert!(workload('g').is_err());
        let a = workload('a').unwrap().mix;
        let mut rng = Rng::new(1);
        let reads = (0..10_000).filter(|_| a.choose(rng.unit_f64()) == Op::Read).count();
        assert!((4_800..5_200).contains(&reads), "{reads}");
        assert_eq!(a.choose(1.0 - f64::EPSILON), Op::Update);
    }

    #[test]
    fn records_round_trip() {
        let fields = vec!["abc".to_string(), String::new(), "x".repeat(100)];
        assert_eq!(decode_record(&encode_record(&fields)).unwrap(), fields);
        assert!(decode_record(&[5, 0, 0, 0, b'a']).is_err());
    }

    #[test]
    fn scrambled_zipfian_is_skewed_but_spread() {
        let mut chooser = KeyChooser::new(Distribution::Zipfian, 1_000, 0).unwrap();
        let mut rng = Rng::new(9);
        let mut counts = vec![0u32; 1_000];
        for _ in 0..100_000 {
            counts[chooser.next(&mut rng, 1_000) as usize] += 1;
        }
        let hottest = counts.iter().enumerate().max_by_key(|(_, c)| **c).unwrap();
        // Rank 0 has 1/ζ(10^10) = 3.8% of the draws, and lands on fnv(0) mod 1000.
        assert_eq!(hottest.0 as u64, fnv_hash64(0) % 1_000);
        assert!((3_400..4_300).contains(hottest.1), "{}", hottest.1);
        // The second-hottest record is not the hottest one's neighbour.
        let second = fnv_hash64(1) % 1_000;
        assert!(counts[second as usize] > 1_500);
        assert!(counts.iter().filter(|&&c| c > 0).count() > 600, "most records are drawn");
    }

    #[test]
    fn choices_stay_below_the_inserted_records() {
        for d in [Distribution::Zipfian, Distribution::Uniform, Distribution::Latest] {
            let mut chooser = KeyChooser::new(d, 100, 50).unwrap();
            let mut rng = Rng::new(3);
            for inserted in [100, 101, 120, 150] {
                assert!((0..2_000).all(|_| chooser.next(&mut rng, inserted) < inserted), "{d:?}");
            }
        }
    }

    #[test]
    fn latest_favours_the_newest_records() {
        let mut chooser = KeyChooser::new(Distribution::Latest, 1_000, 0).unwrap();
        let mut rng = Rng::new(5);
        let draws: Vec<u64> = (0..10_000).map(|_| chooser.next(&mut rng, 1_100)).collect();
        let newest = draws.iter().filter(|&&n| n == 1_099).count();
        assert!(newest > 500, "the newest record is the hottest: {newest} of 10,000");
        let recent = draws.iter().filter(|&&n| n >= 1_000).count();
        assert!(recent > 5_000, "records inserted after the load are drawn: {recent}");
    }

    #[test]
    fn the_insert_sequence_acknowledges_contiguously() {
        let seq = InsertSequence::new(10);
        let (a, b, c) = (seq.take(), seq.take(), seq.take());
        assert_eq!((a, b, c), (10, 11, 12));
        seq.acknowledge(b);
        assert_eq!(seq.inserted(), 10, "11 is done but 10 is not");
        seq.acknowledge(a);
        assert_eq!(seq.inserted(), 12);
        seq.acknowledge(c);
        assert_eq!(seq.inserted(), 13);
    }
}
