//! Concurrency through SQL: several [`Session`]s of one [`Database`], each
//! its own client, interleaved by hand or run on threads.
//!
//! Strata validates optimistically (first committer wins): statements never
//! wait for each other, and a transaction that lost a race learns it at
//! `COMMIT`, which fails with SQLSTATE 40001 and ends the transaction. The
//! scenarios below pin down where each anomaly is caught:
//!
//! | scenario                                  | REPEATABLE READ | SERIALIZABLE | FOR UPDATE |
//! |-------------------------------------------|-----------------|--------------|------------|
//! | lost update (read, write read+1)          | prevented       | prevented    | prevented  |
//! | write skew (doctors on call)              | **allowed**     | prevented    | prevented  |
//! | write skew through a phantom (booking)    | **allowed**     | prevented    |            |
//! | duplicate key from two snapshots          | prevented       | prevented    |            |

use std::collections::BTreeSet;

use strata_sql::{Database, Session, SqlError, StatementResult, TxnStatus, Value, sqlstate};

/// Runs one statement that must succeed.
fn ok(s: &mut Session, sql: &str) -> StatementResult {
    ok_with(s, sql, &[])
}

fn ok_with(s: &mut Session, sql: &str, params: &[Value]) -> StatementResult {
    match s.execute(sql, params) {
        Ok(mut results) => results.pop().expect("one statement, one result"),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Runs one statement that must fail with SQLSTATE `code`.
fn fails(s: &mut Session, sql: &str, code: &str) -> SqlError {
    match s.execute(sql, &[]) {
        Ok(r) => panic!("{sql}: expected SQLSTATE {code}, got {:?}", r.last().map(|r| &r.tag)),
        Err(e) => {
            assert_eq!(e.code, code, "{sql}: {e}");
            e
        }
    }
}

/// The single integer a query returns.
fn int(s: &mut Session, sql: &str) -> i64 {
    int_or_err(s, sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn int_or_err(s: &mut Session, sql: &str, params: &[Value]) -> Result<i64, SqlError> {
    let r = s.execute(sql, params)?.pop().expect("one statement, one result");
    assert_eq!(r.rows.len(), 1, "{sql}: one row expected");
    match r.rows[0][0] {
        Value::Int(i) => Ok(i),
        ref other => panic!("{sql}: expected an integer, got {other:?}"),
    }
}

fn setup(statements: &str) -> Database {
    let db = Database::open_temporary().expect("open a temporary database");
    db.session().execute(statements, &[]).expect("setup statements");
    db
}

/// A small deterministic generator, so the threaded tests need no crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

// ---------------------------------------------------------------------------
// (a) Lost update
// ---------------------------------------------------------------------------

const COUNTER: &str = "CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL);
                       INSERT INTO counter VALUES (1, 0)";

/// Both sessions read n = 0 and write n = 1; the second to commit must fail,
/// or one increment would be lost. Neither the reads (even FOR UPDATE) nor
/// the UPDATEs wait or fail: the conflict is found when the second commits.
#[test]
fn lost_update_fails_the_second_committer_at_commit() {
    for (begin, lock) in [
        ("BEGIN", ""),
        ("BEGIN ISOLATION LEVEL REPEATABLE READ", ""),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", ""),
        ("BEGIN", " FOR UPDATE"),
    ] {
        let db = setup(COUNTER);
        let (mut s1, mut s2) = (db.session(), db.session());
        ok(&mut s1, begin);
        ok(&mut s2, begin);
        let read = format!("SELECT n FROM counter WHERE id = 1{lock}");
        let n1 = int(&mut s1, &read);
        let n2 = int(&mut s2, &read);
        assert_eq!((n1, n2), (0, 0));
        let update = "UPDATE counter SET n = $1 WHERE id = 1";
        assert_eq!(ok_with(&mut s1, update, &[Value::Int(n1 + 1)]).tag, "UPDATE 1");
        assert_eq!(ok_with(&mut s2, update, &[Value::Int(n2 + 1)]).tag, "UPDATE 1", "{begin}");
        assert_eq!(ok(&mut s1, "COMMIT").tag, "COMMIT");
        fails(&mut s2, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
        // A failed COMMIT ends the transaction, as in PostgreSQL.
        assert_eq!(s2.status(), TxnStatus::Idle, "{begin}");
        assert_eq!(int(&mut s2, "SELECT n FROM counter WHERE id = 1"), 1, "{begin}");
    }
}

/// The same race with the increment inside one statement.
#[test]
fn lost_update_in_one_statement_is_prevented() {
    let db = setup(COUNTER);
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, "BEGIN");
    ok(&mut s2, "BEGIN");
    ok(&mut s1, "UPDATE counter SET n = n + 1 WHERE id = 1");
    ok(&mut s2, "UPDATE counter SET n = n + 1 WHERE id = 1");
    ok(&mut s2, "COMMIT");
    fails(&mut s1, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(int(&mut s1, "SELECT n FROM counter"), 1);
}

/// Outside BEGIN, each statement is its own transaction and the session
/// retries it after a serialization failure; a concurrent explicit
/// transaction still loses.
#[test]
fn autocommit_update_beats_an_open_transaction() {
    let db = setup(COUNTER);
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, "BEGIN");
    ok(&mut s1, "UPDATE counter SET n = n + 1 WHERE id = 1");
    ok(&mut s2, "UPDATE counter SET n = n + 10 WHERE id = 1");
    fails(&mut s1, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(int(&mut s1, "SELECT n FROM counter"), 10);
}

const THREADS: usize = 8;
const INCREMENTS: i64 = 100;

/// Runs 8 threads × 100 read-then-write increments of the counter through
/// `Database::transaction`; returns how many times it gave up (and the
/// increment was tried again).
fn increment_concurrently(db: &Database) -> u64 {
    let gave_up = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..INCREMENTS {
                    loop {
                        let outcome = db.transaction(|s| {
                            let n = int_or_err(s, "SELECT n FROM counter WHERE id = 1", &[])?;
                            s.execute(
                                "UPDATE counter SET n = $1 WHERE id = 1",
                                &[Value::Int(n + 1)],
                            )
                        });
                        match outcome {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() => {
                                gave_up.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => panic!("increment: {e}"),
                        }
                    }
                }
            });
        }
    });
    gave_up.into_inner()
}

/// No increment is lost: the counter ends at exactly 800.
#[test]
fn threaded_increments_are_all_counted() {
    let db = setup(COUNTER);
    let gave_up = increment_concurrently(&db);
    let n = int(&mut db.session(), "SELECT n FROM counter WHERE id = 1");
    assert_eq!(n, THREADS as i64 * INCREMENTS);
    eprintln!("threaded_increments: Database::transaction gave up {gave_up} times");
}

/// `Database::transaction` retries at once, without the jittered backoff of
/// `Store::run`, and gives up after 20 attempts: with 8 threads on one row,
/// 0 to 20 of the 800 increments give up in a typical run (2 cores).
#[test]
fn threaded_increments_never_exhaust_the_retries() {
    let db = setup(COUNTER);
    assert_eq!(increment_concurrently(&db), 0);
}

// ---------------------------------------------------------------------------
// (b) Write skew
// ---------------------------------------------------------------------------

const DOCTORS: &str = "CREATE TABLE doctors (name TEXT PRIMARY KEY, on_call BOOL NOT NULL);
                       INSERT INTO doctors VALUES ('alice', true), ('bob', true)";

/// Alice and Bob are both on call; each checks that another doctor is on
/// call and takes himself off. Returns the outcome of both COMMITs and how
/// many doctors are on call afterwards.
fn doctors_go_off_call(
    begin: &str,
    lock: &str,
) -> (Result<(), SqlError>, Result<(), SqlError>, i64) {
    let db = setup(DOCTORS);
    let (mut alice, mut bob) = (db.session(), db.session());
    ok(&mut alice, begin);
    ok(&mut bob, begin);
    let on_call = format!("SELECT name FROM doctors WHERE on_call {lock}");
    assert_eq!(ok(&mut alice, &on_call).rows.len(), 2);
    assert_eq!(ok(&mut bob, &on_call).rows.len(), 2);
    ok(&mut alice, "UPDATE doctors SET on_call = false WHERE name = 'alice'");
    ok(&mut bob, "UPDATE doctors SET on_call = false WHERE name = 'bob'");
    let commit = |s: &mut Session| s.execute("COMMIT", &[]).map(|_| ());
    let (a, b) = (commit(&mut alice), commit(&mut bob));
    let left = int(&mut db.session(), "SELECT count(*) FROM doctors WHERE on_call");
    (a, b, left)
}

/// Snapshot isolation allows write skew: both commit and nobody is on call.
#[test]
fn write_skew_is_allowed_under_repeatable_read() {
    for begin in ["BEGIN ISOLATION LEVEL REPEATABLE READ", "BEGIN ISOLATION LEVEL READ COMMITTED"] {
        let (a, b, left) = doctors_go_off_call(begin, "");
        assert_eq!((a, b, left), (Ok(()), Ok(()), 0), "{begin}");
    }
}

/// SERIALIZABLE validates what was read: Bob's scan saw Alice's row, which
/// changed before he committed.
#[test]
fn write_skew_is_prevented_under_serializable() {
    let (a, b, left) = doctors_go_off_call("BEGIN ISOLATION LEVEL SERIALIZABLE", "");
    assert_eq!(a, Ok(()));
    assert_eq!(b.expect_err("Bob must fail").code, sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(left, 1);
}

/// SET default_transaction_isolation makes plain BEGIN serializable.
#[test]
fn write_skew_is_prevented_with_serializable_by_default() {
    let db = setup(DOCTORS);
    let (mut alice, mut bob) = (db.session(), db.session());
    for s in [&mut alice, &mut bob] {
        ok(s, "SET default_transaction_isolation = 'serializable'");
        ok(s, "BEGIN");
        assert_eq!(int(s, "SELECT count(*) FROM doctors WHERE on_call"), 2);
    }
    ok(&mut alice, "UPDATE doctors SET on_call = false WHERE name = 'alice'");
    ok(&mut bob, "UPDATE doctors SET on_call = false WHERE name = 'bob'");
    ok(&mut alice, "COMMIT");
    fails(&mut bob, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
}

/// SELECT ... FOR UPDATE adds the rows read to the conflict set, so even
/// under snapshot isolation the second doctor fails.
#[test]
fn write_skew_is_prevented_with_select_for_update() {
    let (a, b, left) = doctors_go_off_call("BEGIN ISOLATION LEVEL REPEATABLE READ", "FOR UPDATE");
    assert_eq!(a, Ok(()));
    assert_eq!(b.expect_err("Bob must fail").code, sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(left, 1);
}

/// Write skew through a phantom: both check that a room is free for the
/// night (no row matches, so there is no row to conflict on) and book it.
/// SERIALIZABLE validates the scanned range too.
fn double_booking(begin: &str) -> (Result<(), SqlError>, Result<(), SqlError>, i64) {
    let db = setup("CREATE TABLE bookings (id INT PRIMARY KEY, room INT, night INT)");
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, begin);
    ok(&mut s2, begin);
    let free = "SELECT count(*) FROM bookings WHERE room = 7 AND night = 1";
    assert_eq!(int(&mut s1, free), 0);
    assert_eq!(int(&mut s2, free), 0);
    ok(&mut s1, "INSERT INTO bookings VALUES (1, 7, 1)");
    ok(&mut s2, "INSERT INTO bookings VALUES (2, 7, 1)");
    let commit = |s: &mut Session| s.execute("COMMIT", &[]).map(|_| ());
    let (a, b) = (commit(&mut s1), commit(&mut s2));
    (a, b, int(&mut db.session(), free))
}

#[test]
fn phantom_double_booking_is_allowed_under_repeatable_read() {
    let (a, b, booked) = double_booking("BEGIN ISOLATION LEVEL REPEATABLE READ");
    assert_eq!((a, b, booked), (Ok(()), Ok(()), 2));
}

#[test]
fn phantom_double_booking_is_prevented_under_serializable() {
    let (a, b, booked) = double_booking("BEGIN ISOLATION LEVEL SERIALIZABLE");
    assert_eq!(a, Ok(()));
    assert_eq!(b.expect_err("the second booking must fail").code, sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(booked, 1);
}

// ---------------------------------------------------------------------------
// (c) Unique constraints under concurrent inserts
// ---------------------------------------------------------------------------

const USERS: &str = "CREATE TABLE users (id INT PRIMARY KEY, email TEXT UNIQUE)";

/// Two transactions insert rows that clash (on a unique column or the
/// primary key). Each statement succeeds against its own snapshot; only the
/// first COMMIT does; the loser, run again, sees the winner's row.
fn duplicate_race(first: &str, second: &str) {
    for begin in ["BEGIN", "BEGIN ISOLATION LEVEL SERIALIZABLE"] {
        duplicate_race_in(begin, first, second);
    }
}

fn duplicate_race_in(begin: &str, first: &str, second: &str) {
    let db = setup(USERS);
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, begin);
    ok(&mut s2, begin);
    assert_eq!(ok(&mut s1, first).tag, "INSERT 0 1");
    assert_eq!(ok(&mut s2, second).tag, "INSERT 0 1");
    ok(&mut s1, "COMMIT");
    fails(&mut s2, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(s2.status(), TxnStatus::Idle, "{begin}");
    // The retry sees the committed row.
    ok(&mut s2, begin);
    fails(&mut s2, second, sqlstate::UNIQUE_VIOLATION);
    ok(&mut s2, "ROLLBACK");
    fails(&mut s2, second, sqlstate::UNIQUE_VIOLATION);
    assert_eq!(int(&mut s2, "SELECT count(*) FROM users"), 1);
}

#[test]
fn concurrent_duplicate_unique_value_fails_at_commit() {
    duplicate_race(
        "INSERT INTO users VALUES (1, 'ann@example.com')",
        "INSERT INTO users VALUES (2, 'ann@example.com')",
    );
}

#[test]
fn concurrent_duplicate_primary_key_fails_at_commit() {
    duplicate_race(
        "INSERT INTO users VALUES (1, 'ann@example.com')",
        "INSERT INTO users VALUES (1, 'bob@example.com')",
    );
}

/// Changing a unique value to one another transaction just inserted.
#[test]
fn concurrent_update_into_a_unique_value_fails_at_commit() {
    let db = setup(&format!("{USERS}; INSERT INTO users VALUES (1, 'ann@example.com')"));
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, "BEGIN");
    ok(&mut s2, "BEGIN");
    ok(&mut s1, "INSERT INTO users VALUES (2, 'bob@example.com')");
    assert_eq!(ok(&mut s2, "UPDATE users SET email = 'bob@example.com' WHERE id = 1").count, 1);
    ok(&mut s1, "COMMIT");
    fails(&mut s2, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
    fails(
        &mut s2,
        "UPDATE users SET email = 'bob@example.com' WHERE id = 1",
        sqlstate::UNIQUE_VIOLATION,
    );
}

/// DDL is transactional and validated like any write: two sessions creating
/// the same table cannot both commit.
#[test]
fn concurrent_create_table_of_one_name_fails_at_commit() {
    let db = Database::open_temporary().expect("open a temporary database");
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, "BEGIN");
    ok(&mut s2, "BEGIN");
    ok(&mut s1, "CREATE TABLE t (id INT PRIMARY KEY)");
    ok(&mut s2, "CREATE TABLE t (id INT PRIMARY KEY, extra TEXT)");
    ok(&mut s1, "COMMIT");
    fails(&mut s2, "COMMIT", sqlstate::SERIALIZATION_FAILURE);
    fails(&mut s2, "CREATE TABLE t (id INT PRIMARY KEY, extra TEXT)", sqlstate::DUPLICATE_TABLE);
    fails(&mut s2, "SELECT extra FROM t", sqlstate::UNDEFINED_COLUMN);
}

/// Tables of different names do not clash, as in PostgreSQL: the table-id
/// counter moves in a transaction of its own (`catalog::allocate_table_id`),
/// so only the two descriptors (different keys) are in the DDL transactions.
#[test]
fn concurrent_create_table_of_different_names_both_commit() {
    let db = Database::open_temporary().expect("open a temporary database");
    let (mut s1, mut s2) = (db.session(), db.session());
    ok(&mut s1, "BEGIN");
    ok(&mut s2, "BEGIN");
    ok(&mut s1, "CREATE TABLE a (id INT PRIMARY KEY)");
    ok(&mut s2, "CREATE TABLE b (id INT PRIMARY KEY)");
    ok(&mut s1, "COMMIT");
    ok(&mut s2, "COMMIT");
}

/// 8 threads insert overlapping ranges of ids, 10 rows a transaction, with
/// ON CONFLICT DO NOTHING on both the primary key and a unique column: every
/// distinct id ends up exactly once, and the unique index agrees with the rows.
#[test]
fn threaded_insert_on_conflict_do_nothing_keeps_one_row_per_id() {
    const PER_THREAD: u64 = 100;
    const STRIDE: u64 = 30;
    const BATCH: u64 = 10;
    let db = setup("CREATE TABLE ids (id INT PRIMARY KEY, tag TEXT UNIQUE, by_thread INT)");
    std::thread::scope(|scope| {
        for t in 0..THREADS as u64 {
            let db = &db;
            scope.spawn(move || {
                let mut ids: Vec<u64> = (t * STRIDE..t * STRIDE + PER_THREAD).collect();
                // Visit in a per-thread order, so threads collide mid-batch.
                let mut rng = Rng(t + 1);
                for i in (1..ids.len()).rev() {
                    ids.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for batch in ids.chunks(BATCH as usize) {
                    let values: Vec<String> =
                        batch.iter().map(|id| format!("({id}, 'tag-{id}', {t})")).collect();
                    let sql = format!(
                        "INSERT INTO ids VALUES {} ON CONFLICT DO NOTHING",
                        values.join(", ")
                    );
                    loop {
                        match db.transaction(|s| s.execute(&sql, &[])) {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() => continue,
                            Err(e) => panic!("{sql}: {e}"),
                        }
                    }
                }
            });
        }
    });
    let distinct: BTreeSet<u64> =
        (0..THREADS as u64).flat_map(|t| t * STRIDE..t * STRIDE + PER_THREAD).collect();
    let mut s = db.session();
    assert_eq!(int(&mut s, "SELECT count(*) FROM ids"), distinct.len() as i64);
    assert_eq!(int(&mut s, "SELECT count(DISTINCT tag) FROM ids"), distinct.len() as i64);
    assert_eq!(
        int(&mut s, "SELECT count(*) FROM ids WHERE tag <> 'tag-' || id"),
        0,
        "every row keeps its own tag"
    );
    for id in distinct {
        let tag = Value::Text(format!("tag-{id}"));
        let found = int_or_err(&mut s, "SELECT count(*) FROM ids WHERE tag = $1", &[tag]);
        assert_eq!(found, Ok(1), "unique index entry for id {id}");
    }
}

/// Random transfers between accounts on 4 threads while a reader checks,
/// in one snapshot, that money is neither made nor lost.
#[test]
fn threaded_transfers_conserve_the_total() {
    const ACCOUNTS: u64 = 10;
    const TRANSFERS: usize = 100;
    let db = setup("CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL CHECK (bal >= 0))");
    for id in 0..ACCOUNTS {
        db.execute("INSERT INTO acct VALUES ($1, 100)", &[Value::Int(id as i64)])
            .expect("insert an account");
    }
    let total = 100 * ACCOUNTS as i64;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let db = &db;
                scope.spawn(move || {
                    let mut rng = Rng(t + 11);
                    for _ in 0..TRANSFERS {
                        let from = Value::Int(rng.below(ACCOUNTS) as i64);
                        let to = Value::Int(rng.below(ACCOUNTS) as i64);
                        let amount = Value::Int(rng.below(30) as i64);
                        let outcome = db.transaction(|s| {
                            s.execute(
                                "UPDATE acct SET bal = bal - $2 WHERE id = $1",
                                &[from.clone(), amount.clone()],
                            )?;
                            s.execute(
                                "UPDATE acct SET bal = bal + $2 WHERE id = $1",
                                &[to.clone(), amount.clone()],
                            )
                        });
                        match outcome {
                            Ok(_) => {}
                            // Overdrawn, or too much contention: no transfer.
                            Err(e) if e.code == sqlstate::CHECK_VIOLATION || e.is_retryable() => {}
                            Err(e) => panic!("transfer: {e}"),
                        }
                    }
                })
            })
            .collect();
        scope.spawn(|| {
            let mut s = db.session();
            let mut checks = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
                assert_eq!(int(&mut s, "SELECT sum(bal) FROM acct"), total);
                assert_eq!(int(&mut s, "SELECT count(*) FROM acct WHERE bal < 0"), 0);
                checks += 1;
            }
        });
        for w in writers {
            w.join().expect("writer");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(int(&mut db.session(), "SELECT sum(bal) FROM acct"), total);
}
