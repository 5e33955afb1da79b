//! Criterion micro-benchmarks of what SQL costs over the transaction API it
//! runs on. Each group pairs a statement with the same work done through
//! `strata_txn` directly, on the very same rows:
//!
//! - `point_select`: `SELECT v FROM kv WHERE k = $1` (parse, bind, plan,
//!   execute, commit) against `raw_get`: `begin_read_only`, `get` of the
//!   row's key, `commit`. `sql_session` reuses one `Session`, as a
//!   connection would; `sql_preparsed` hands the session an already parsed
//!   statement (`Session::statement`), which is what a statement cache
//!   would leave; `sql_db_query` goes through `Database::query`, which
//!   opens a session per call.
//! - `update_one_row`: `UPDATE kv SET v = $2 WHERE k = $1` against `raw_get_put`:
//!   `begin`, `get`, `put` of the re-encoded row, `commit` (an UPDATE must read
//!   the row it changes).
//! - `insert_10_rows`: a 10-row `INSERT ... VALUES` with parameters against
//!   `raw_put`: `begin`, for each row a `get` (the primary-key check every
//!   INSERT makes) and a `put`, `commit`.
//! - `parse`: `sqlparser` alone on the point SELECT, to split the SQL cost.
//!
//! The table `kv (k INT PRIMARY KEY, v TEXT)` starts with 10,000 rows with
//! 100-byte values (those of `txn_micro`), keys visited in a seeded random
//! order. Raw operations encode keys and rows with `strata_sql::encoding`, so
//! both sides read and write the same bytes. The database is
//! `Database::open_temporary` (buffered durability: WAL writes reach the OS,
//! no fsync). Run with
//! `cargo bench -p strata-sql --bench sql_micro -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_sql::{DataType, Database, Value, catalog, encoding};

const ROWS: i64 = 10_000;
const VALUE_BYTES: usize = 100;
/// Rows per loading statement.
const LOAD_CHUNK: usize = 500;
const INSERT_ROWS: usize = 10;

/// A seeded xorshift64*, so runs visit keys in the same order.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Every key once, in a seeded random order.
fn keys_in_random_order() -> Vec<i64> {
    let mut keys: Vec<i64> = (0..ROWS).collect();
    let mut rng = Rng(7);
    for i in (1..keys.len()).rev() {
        keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    keys
}

/// A `VALUE_BYTES` text value, different per `seed`.
fn value_text(seed: i64) -> String {
    let mut rng = Rng(seed as u64 | 1);
    (0..VALUE_BYTES).map(|_| char::from(b'a' + (rng.next() % 26) as u8)).collect()
}

/// The database with `kv` loaded, and the key prefix of `kv`'s rows.
struct Fixture {
    db: Database,
    row_prefix: Vec<u8>,
}

impl Fixture {
    fn open() -> Fixture {
        let db = Database::open_temporary().expect("open a temporary database");
        db.execute("CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)", &[]).expect("create kv");
        let keys: Vec<i64> = (0..ROWS).collect();
        for chunk in keys.chunks(LOAD_CHUNK) {
            let rows: Vec<String> =
                chunk.iter().map(|&k| format!("({k}, '{}')", value_text(k))).collect();
            db.execute(&format!("INSERT INTO kv VALUES {}", rows.join(", ")), &[])
                .expect("load kv");
        }
        let mut txn = db.store().begin_read_only();
        let table = catalog::require_table(&mut txn, "kv").expect("kv exists");
        let fixture = Fixture { row_prefix: table.index_prefix(catalog::PRIMARY_INDEX), db };
        // The raw side must read what SQL wrote.
        let stored = txn.get(&fixture.row_key(42)).expect("a read in memory");
        assert_eq!(stored, Some(row_value(42, &value_text(42))), "raw key and row encoding");
        fixture
    }

    /// The storage key of row `k` of `kv`.
    fn row_key(&self, k: i64) -> Vec<u8> {
        let mut key = self.row_prefix.clone();
        encoding::encode_key(&mut key, &Value::Int(k), &DataType::Int4, false);
        key
    }
}

/// The stored bytes of row (`k`, `v`) of `kv`.
fn row_value(k: i64, v: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encoding::encode_row(&[Value::Int(k), Value::Text(v.to_string())], &mut out);
    out
}

const POINT_SELECT: &str = "SELECT v FROM kv WHERE k = $1";

fn point_select(c: &mut Criterion) {
    let f = Fixture::open();
    let keys = keys_in_random_order();
    let mut group = c.benchmark_group("point_select");
    group.throughput(Throughput::Elements(1));

    let raw_keys: Vec<Vec<u8>> = keys.iter().map(|&k| f.row_key(k)).collect();
    let mut next = raw_keys.iter().cycle();
    let store = f.db.store();
    group.bench_function("raw_get", |b| {
        b.iter(|| {
            let key = next.next().expect("cycle");
            let mut txn = store.begin_read_only();
            let value = txn.get(black_box(key)).expect("a read in memory");
            txn.commit().expect("a read-only commit cannot fail");
            black_box(value.expect("every key exists"))
        })
    });

    let mut session = f.db.session();
    let mut next = keys.iter().cycle();
    group.bench_function("sql_session", |b| {
        b.iter(|| {
            let k = *next.next().expect("cycle");
            let mut r = session.execute(POINT_SELECT, &[Value::Int(k)]).expect("point select");
            let rows = r.pop().expect("one statement").rows;
            assert_eq!(rows.len(), 1);
            black_box(rows)
        })
    });

    // What a statement cache would leave: bind, plan, execute, commit.
    let parsed = strata_sql::parse(POINT_SELECT).expect("valid SQL").pop().expect("a statement");
    let mut next = keys.iter().cycle();
    group.bench_function("sql_preparsed", |b| {
        b.iter(|| {
            let k = *next.next().expect("cycle");
            let r = session.statement(&parsed, &[Value::Int(k)]).expect("point select");
            assert_eq!(r.rows.len(), 1);
            black_box(r.rows)
        })
    });

    // A prepared statement: parsed once, its plan cached by the session and
    // revalidated against the table descriptor on each execution.
    let prepared = session.prepare(POINT_SELECT).expect("valid SQL");
    let mut next = keys.iter().cycle();
    group.bench_function("sql_prepared", |b| {
        b.iter(|| {
            let k = *next.next().expect("cycle");
            let r = session.execute_prepared(&prepared, &[Value::Int(k)]).expect("point select");
            assert_eq!(r.rows.len(), 1);
            black_box(r.rows)
        })
    });

    let mut next = keys.iter().cycle();
    group.bench_function("sql_db_query", |b| {
        b.iter(|| {
            let k = *next.next().expect("cycle");
            let rows = f.db.query(POINT_SELECT, &[Value::Int(k)]).expect("point select");
            black_box(rows.get::<String>(0, "v").expect("one row"))
        })
    });
    group.finish();
}

fn update_one_row(c: &mut Criterion) {
    let f = Fixture::open();
    let keys = keys_in_random_order();
    let mut group = c.benchmark_group("update_one_row");
    group.throughput(Throughput::Elements(1));
    // New values are made outside the timed loop.
    let values: Vec<String> = (0..64).map(|i| value_text(ROWS + i)).collect();

    let store = f.db.store();
    let mut next = keys.iter().zip(values.iter().cycle()).cycle();
    group.bench_function("raw_get_put", |b| {
        b.iter(|| {
            let (&k, v) = next.next().expect("cycle");
            let key = f.row_key(k);
            let mut txn = store.begin();
            black_box(txn.get(&key).expect("a read in memory").expect("every key exists"));
            txn.put(&key, &row_value(k, v)).expect("a one-row write set");
            txn.commit().expect("a single writer never conflicts")
        })
    });

    let mut session = f.db.session();
    let mut next = keys.iter().zip(values.iter().cycle()).cycle();
    group.bench_function("sql_session", |b| {
        b.iter(|| {
            let (&k, v) = next.next().expect("cycle");
            let r = session
                .execute(
                    "UPDATE kv SET v = $2 WHERE k = $1",
                    &[Value::Int(k), Value::Text(v.clone())],
                )
                .expect("update");
            assert_eq!(r[0].count, 1);
        })
    });
    group.finish();
}

fn insert_10_rows(c: &mut Criterion) {
    let f = Fixture::open();
    let mut group = c.benchmark_group("insert_10_rows");
    group.throughput(Throughput::Elements(INSERT_ROWS as u64));
    let values: Vec<String> = (0..64).map(|i| value_text(2 * ROWS + i)).collect();

    // Fresh keys for every iteration: SQL counts up from ROWS, raw from 10^9.
    let store = f.db.store();
    let mut next_key = 1_000_000_000i64;
    group.bench_function("raw_put", |b| {
        b.iter(|| {
            let mut txn = store.begin();
            for value in &values[..INSERT_ROWS] {
                let key = f.row_key(next_key);
                assert!(txn.get(&key).expect("a read in memory").is_none());
                txn.put(&key, &row_value(next_key, value)).expect("a small write set");
                next_key += 1;
            }
            txn.commit().expect("a single writer never conflicts")
        })
    });

    let placeholders: Vec<String> =
        (0..INSERT_ROWS).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect();
    let sql = format!("INSERT INTO kv VALUES {}", placeholders.join(", "));
    let mut session = f.db.session();
    let mut next_key = ROWS;
    group.bench_function("sql_session", |b| {
        b.iter(|| {
            let mut params = Vec::with_capacity(2 * INSERT_ROWS);
            for value in &values[..INSERT_ROWS] {
                params.push(Value::Int(next_key));
                params.push(Value::Text(value.clone()));
                next_key += 1;
            }
            let r = session.execute(&sql, &params).expect("insert");
            assert_eq!(r[0].count, INSERT_ROWS as u64);
        })
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    c.bench_function("parse/point_select", |b| {
        b.iter(|| black_box(strata_sql::parse(black_box(POINT_SELECT)).expect("valid SQL")))
    });
}

criterion_group!(benches, point_select, update_one_row, insert_10_rows, parse);
criterion_main!(benches);
