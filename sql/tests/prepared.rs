//! Prepared statements, Describe, and interrupting a running statement: what
//! the wire protocol's extended query flow and CancelRequest rely on.

use std::time::{Duration, Instant};

use strata_sql::{DataType, Database, Description, Session, Value, sqlstate};

fn database() -> Database {
    let db = Database::open_temporary().expect("open a temporary database");
    db.execute(
        "CREATE TABLE item (id INT PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(8,2), added DATE)",
        &[],
    )
    .expect("create item");
    db
}

fn describe(s: &mut Session, sql: &str) -> Description {
    let prepared = s.prepare(sql).unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
    s.describe(&prepared).unwrap_or_else(|e| panic!("describe {sql}: {e}"))
}

fn column_types(d: &Description) -> Vec<(String, DataType)> {
    d.columns.iter().map(|c| (c.name.clone(), c.ty.clone())).collect()
}

#[test]
fn describe_infers_parameter_types_from_their_context() {
    let db = database();
    let mut s = db.session();
    let insert = describe(&mut s, "INSERT INTO item VALUES ($1, $2, $3, $4)");
    assert_eq!(
        insert.params,
        vec![
            Some(DataType::Int4),
            Some(DataType::Text),
            Some(DataType::Numeric { precision: Some(8), scale: Some(2) }),
            Some(DataType::Date)
        ]
    );
    assert!(insert.columns.is_empty(), "INSERT without RETURNING returns no rows");

    let update = describe(&mut s, "UPDATE item SET name = $1 WHERE id = $2 RETURNING id, price");
    assert_eq!(update.params, vec![Some(DataType::Text), Some(DataType::Int4)]);
    assert_eq!(
        column_types(&update),
        vec![
            ("id".to_string(), DataType::Int4),
            ("price".to_string(), DataType::Numeric { precision: Some(8), scale: Some(2) })
        ]
    );

    let select =
        describe(&mut s, "SELECT name, count(*) AS n FROM item WHERE id > $1 GROUP BY name");
    assert_eq!(select.params, vec![Some(DataType::Int4)]);
    assert_eq!(
        column_types(&select),
        vec![("name".to_string(), DataType::Text), ("n".to_string(), DataType::Int8)]
    );

    let delete = describe(&mut s, "DELETE FROM item WHERE added < $1");
    assert_eq!(delete.params, vec![Some(DataType::Date)]);

    let show = describe(&mut s, "SHOW transaction_isolation");
    assert_eq!(column_types(&show), vec![("transaction_isolation".to_string(), DataType::Text)]);
}

#[test]
fn describe_changes_nothing() {
    let db = database();
    let mut s = db.session();
    for sql in [
        "INSERT INTO item VALUES (1, 'a', 1, '2024-01-01')",
        "DROP TABLE item",
        "CREATE TABLE other (x INT)",
        "DELETE FROM item",
    ] {
        describe(&mut s, sql);
    }
    s.execute("INSERT INTO item VALUES (7, 'kept', 2.5, '2024-02-03')", &[]).expect("insert");
    describe(&mut s, "DELETE FROM item");
    describe(&mut s, "UPDATE item SET name = 'changed'");
    let rows = db.query("SELECT name FROM item", &[]).expect("item still exists");
    assert_eq!(rows.get::<String>(0, 0).expect("one row"), "kept");
    assert_eq!(rows.len(), 1);
    let err = db.query("SELECT * FROM other", &[]).expect_err("other was only described");
    assert_eq!(err.code, sqlstate::UNDEFINED_TABLE);
}

#[test]
fn describe_inside_a_transaction_sees_its_own_tables() {
    let db = database();
    let mut s = db.session();
    s.execute("BEGIN; CREATE TABLE fresh (k BIGINT PRIMARY KEY, v BOOLEAN)", &[]).expect("begin");
    let d = describe(&mut s, "SELECT v FROM fresh WHERE k = $1");
    assert_eq!(d.params, vec![Some(DataType::Int8)]);
    assert_eq!(column_types(&d), vec![("v".to_string(), DataType::Bool)]);
    // A failed transaction describes nothing, as PostgreSQL refuses to.
    s.execute("SELECT * FROM missing", &[]).expect_err("missing table");
    let prepared = s.prepare("SELECT 1").expect("prepare");
    let err = s.describe(&prepared).expect_err("aborted transaction");
    assert_eq!(err.code, sqlstate::IN_FAILED_SQL_TRANSACTION);
}

#[test]
fn prepare_takes_exactly_one_statement() {
    let db = database();
    let s = db.session();
    let err = s.prepare("SELECT 1; SELECT 2").expect_err("two statements");
    assert_eq!(err.code, sqlstate::SYNTAX_ERROR);
    assert!(err.message.contains("multiple commands"), "{err}");
    let err = s.prepare("SELEC 1").expect_err("bad syntax");
    assert_eq!(err.code, sqlstate::SYNTAX_ERROR);
}

#[test]
fn prepared_statements_run_many_times_with_parameters() {
    let db = database();
    let mut s = db.session();
    let insert = s.prepare("INSERT INTO item (id, name) VALUES ($1, $2)").expect("prepare");
    for i in 0..20 {
        let r = s
            .execute_prepared(&insert, &[Value::Int(i), Value::Text(format!("n{i}"))])
            .expect("insert");
        assert_eq!(r.tag, "INSERT 0 1");
    }
    let lookup = s.prepare("SELECT name FROM item WHERE id = $1").expect("prepare");
    for i in [0, 7, 19] {
        let r = s.execute_prepared(&lookup, &[Value::Int(i)]).expect("select");
        assert_eq!(r.rows, vec![vec![Value::Text(format!("n{i}"))]]);
    }
    // Text parameters are cast to the inferred type, as the wire protocol sends them.
    let r = s.execute_prepared(&lookup, &[Value::Text("7".into())]).expect("select by text");
    assert_eq!(r.rows, vec![vec![Value::Text("n7".into())]]);
    let err = s.execute_prepared(&lookup, &[]).expect_err("missing parameter");
    assert_eq!(err.code, sqlstate::UNDEFINED_PARAMETER);
}

/// A query that runs for a long time: a cross join of 300 × 300 × 300 rows.
fn slow_query(db: &Database) -> &'static str {
    db.execute("CREATE TABLE n (i INT PRIMARY KEY)", &[]).expect("create n");
    let values: Vec<String> = (1..=300).map(|i| format!("({i})")).collect();
    db.execute(&format!("INSERT INTO n VALUES {}", values.join(",")), &[]).expect("fill n");
    "SELECT count(*) FROM n a, n b, n c WHERE a.i + b.i + c.i = -1"
}

#[test]
fn a_cancelled_statement_fails_with_57014_and_the_session_goes_on() {
    let db = database();
    let sql = slow_query(&db);
    let mut s = db.session();
    let interrupt = s.interrupt();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        interrupt.cancel();
    });
    let started = Instant::now();
    let err = s.execute(sql, &[]).expect_err("cancelled");
    canceller.join().expect("canceller");
    assert_eq!(err.code, sqlstate::QUERY_CANCELED);
    assert_eq!(err.message, "canceling statement due to user request");
    assert!(started.elapsed() < Duration::from_secs(60), "the statement stopped early");
    // The cancel applied to that statement only.
    let r = s.execute("SELECT count(*) FROM n", &[]).expect("next statement runs");
    assert_eq!(r[0].rows, vec![vec![Value::Int(300)]]);
}

#[test]
fn statement_timeout_cancels_long_statements_only() {
    let db = database();
    let sql = slow_query(&db);
    let mut s = db.session();
    let err = s.execute("SET statement_timeout = 'soon'", &[]).expect_err("bad value");
    assert_eq!(err.code, sqlstate::INVALID_PARAMETER_VALUE);
    s.execute("SET statement_timeout = '50ms'", &[]).expect("set");
    let err = s.execute(sql, &[]).expect_err("timed out");
    assert_eq!(err.code, sqlstate::QUERY_CANCELED);
    assert_eq!(err.message, "canceling statement due to statement timeout");
    let r = s.execute("SELECT count(*) FROM n", &[]).expect("a quick statement finishes");
    assert_eq!(r[0].rows, vec![vec![Value::Int(300)]]);
    s.execute("SET statement_timeout = 0", &[]).expect("reset");
}

#[test]
fn a_multi_statement_script_is_one_implicit_transaction() {
    let db = database();
    let mut s = db.session();
    let script = s.execute_script(
        "INSERT INTO item (id, name) VALUES (1, 'a'); INSERT INTO item (id, name) VALUES (1, 'dup')",
    );
    assert_eq!(script.results.len(), 1, "the first insert ran");
    assert_eq!(script.error.expect("duplicate").code, sqlstate::UNIQUE_VIOLATION);
    let rows = db.query("SELECT count(*) FROM item", &[]).unwrap();
    assert_eq!(rows.get::<i64>(0, 0).unwrap(), 0, "and was rolled back with the second");
    assert_eq!(s.status(), strata_sql::TxnStatus::Idle);

    let script = s.execute_script(
        "INSERT INTO item (id, name) VALUES (1, 'a'); UPDATE item SET name = 'b' WHERE id = 1",
    );
    assert!(script.error.is_none());
    assert_eq!(db.query("SELECT name FROM item", &[]).unwrap().get::<String>(0, 0).unwrap(), "b");

    // Explicit transaction control keeps statement-by-statement behaviour.
    let script = s.execute_script(
        "BEGIN; INSERT INTO item (id, name) VALUES (2, 'c'); COMMIT; INSERT INTO item (id, name) VALUES (1, 'dup')",
    );
    assert_eq!(script.results.len(), 3);
    assert!(script.error.is_some());
    assert_eq!(db.query("SELECT count(*) FROM item", &[]).unwrap().get::<i64>(0, 0).unwrap(), 2);
}

/// A prepared SELECT keeps its bound plan between executions, and binds again
/// when a table it reads changes shape, also inside a transaction and when
/// another session made the change; plans over the system catalogs are
/// computed afresh each time.
#[test]
fn cached_plans_follow_schema_changes() {
    let db = database();
    let mut s = db.session();
    let mut other = db.session();
    s.execute("INSERT INTO item VALUES (1, 'one', 1.50, NULL), (2, 'two', 2.50, NULL)", &[])
        .unwrap();
    let select = s.prepare("SELECT * FROM item WHERE id = $1").unwrap();
    let names = |r: &strata_sql::StatementResult| -> Vec<String> {
        r.columns.iter().map(|c| c.name.clone()).collect()
    };
    let first = s.execute_prepared(&select, &[Value::Int(2)]).unwrap();
    assert_eq!(names(&first), ["id", "name", "price", "added"]);
    assert_eq!(first.rows[0][1], Value::Text("two".into()));
    // Again from the cache: the same answer for another parameter.
    let again = s.execute_prepared(&select, &[Value::Int(1)]).unwrap();
    assert_eq!(again.rows[0][1], Value::Text("one".into()));

    // Another session drops a column in the middle: rows no longer decode
    // as the old plan expects, so the plan must be rebuilt.
    other.execute("ALTER TABLE item DROP COLUMN name", &[]).unwrap();
    let after = s.execute_prepared(&select, &[Value::Int(1)]).unwrap();
    assert_eq!(names(&after), ["id", "price", "added"]);
    assert_eq!(after.rows[0][1].to_pg_text(), "1.50");

    // Inside a transaction, its own DDL counts.
    s.execute("BEGIN", &[]).unwrap();
    s.execute("ALTER TABLE item ADD COLUMN note TEXT", &[]).unwrap();
    s.execute("UPDATE item SET note = 'n' WHERE id = 1", &[]).unwrap();
    let inside = s.execute_prepared(&select, &[Value::Int(1)]).unwrap();
    assert_eq!(names(&inside), ["id", "price", "added", "note"]);
    assert_eq!(inside.rows[0][3], Value::Text("n".into()));
    s.execute("ROLLBACK", &[]).unwrap();
    let rolled_back = s.execute_prepared(&select, &[Value::Int(1)]).unwrap();
    assert_eq!(names(&rolled_back), ["id", "price", "added"]);

    // A table dropped and created again under the same name is a new table.
    other.execute("DROP TABLE item", &[]).unwrap();
    other.execute("CREATE TABLE item (id INT PRIMARY KEY, label TEXT)", &[]).unwrap();
    other.execute("INSERT INTO item VALUES (1, 'fresh')", &[]).unwrap();
    let recreated = s.execute_prepared(&select, &[Value::Int(1)]).unwrap();
    assert_eq!(recreated.rows, vec![vec![Value::Int(1), Value::Text("fresh".into())]]);

    let tables = s.prepare("SELECT count(*) FROM pg_class WHERE relkind = 'r'").unwrap();
    let before = s.execute_prepared(&tables, &[]).unwrap().rows[0][0].clone();
    other.execute("CREATE TABLE extra (x INT)", &[]).unwrap();
    let after = s.execute_prepared(&tables, &[]).unwrap().rows[0][0].clone();
    assert_eq!((before, after), (Value::Int(1), Value::Int(2)));
}
