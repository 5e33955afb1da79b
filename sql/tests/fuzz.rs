//! Random SQL never panics or hangs the engine.
//!
//! Three generators feed one [`Session`] on a fresh database holding a table
//! of every column type (`t`, with a secondary and a unique index) and a small
//! table with constraints (`u`):
//!
//! - *token soup*: keywords, identifiers of those tables, numbers (with the
//!   integer and float edge values), strings, typed literals, operators and
//!   parentheses in random order: mostly syntax errors, exercising the
//!   parser and the error paths of the binder;
//! - *plausible statements*: SELECT (joins, WHERE, GROUP BY, HAVING, ORDER
//!   BY, LIMIT, set operations, FOR UPDATE) over random expression trees
//!   (arithmetic, comparisons, casts, functions, CASE, IN, BETWEEN,
//!   subqueries, aggregates), INSERT of random literals (with ON CONFLICT and
//!   RETURNING), UPDATE and DELETE with random WHERE, transaction control:
//!   most stop in the binder with a type error;
//! - *well-typed statements*: the same shapes with every expression built for
//!   the type its context wants, so most bind and run: the executor, casts,
//!   functions and date arithmetic meet the edge values.
//!
//! Any result, `Ok` or `Err`, is fine; a panic fails the case (proptest
//! catches it and shrinks to a minimal statement list). A statement running
//! longer than [`STATEMENT_LIMIT`] aborts the process after printing it, so a
//! hang cannot stall CI. Internal errors (SQLSTATE XX000) are printed: they
//! are bugs too, but not panics. Panics already reported ([`KNOWN_PANICS`])
//! are printed and tolerated.
//!
//! Knobs (add `-- --nocapture` to see what they print):
//! - `PROPTEST_CASES=n`: cases per generator (default 256);
//! - `FUZZ_VERBOSE=1`: print every statement with its outcome, to see how
//!   deep the generators reach;
//! - `FUZZ_HUNT=1`: print every panic and carry on instead of shrinking;
//! - `FUZZ_STRICT=1`: known panics fail too.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use strata_sql::{Database, Session, Value, sqlstate};

/// A statement taking longer than this is a hang.
const STATEMENT_LIMIT: Duration = Duration::from_secs(20);
/// A statement taking longer than this is reported as slow.
const SLOW: Duration = Duration::from_millis(500);

const SCHEMA: &str = "
    CREATE TABLE t (
        id INT PRIMARY KEY, a INT, b TEXT, c FLOAT8, d NUMERIC(10,2), e BOOL, f DATE,
        g TIMESTAMP, h BIGINT, s SMALLINT, v VARCHAR(8), y BYTEA, r REAL, ch CHAR(3)
    );
    CREATE INDEX t_a ON t (a);
    CREATE UNIQUE INDEX t_v ON t (v);
    CREATE TABLE u (
        k TEXT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, m NUMERIC, t_id INT CHECK (t_id > 0)
    );
    INSERT INTO t VALUES
        (1, 1, 'one', 1.5, 1.25, true, '2000-01-01', '2000-01-01 12:00:00', 10, 1, 'v1', '\\x01', 0.5, 'abc'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, -5, '', -0.0, -3.50, false, '1999-12-31', '1970-01-01 00:00:00', -10, -1, 'v3', '', -1, ''),
        (4, 2147483647, 'ÉTÉ', '1e300', 99999999.99, true, '2024-02-29', '2100-12-31 23:59:59.999999',
            9223372036854775807, 32767, 'v4', '\\xdeadbeef', '3.4e38', 'x'),
        (5, -2147483648, 'a%b_c', '-1e-300', -99999999.99, false, '0001-01-01', '1900-01-01 00:00:00',
            -9223372036854775808, -32768, '', NULL, '1e-30', 'zz');
    INSERT INTO u VALUES ('a', 1, 1.5, 1), ('b', 2, NULL, 2), ('', 0, 0, NULL), ('d', -7, 1e20, 4);
";

/// Parameters every statement gets, for `$1` and `$2`.
fn params() -> [Value; 2] {
    [Value::Int(3), Value::Text("one".into())]
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

/// Statements in flight, by thread, for the watchdog.
fn in_flight() -> &'static Mutex<HashMap<ThreadId, (Instant, String)>> {
    static IN_FLIGHT: OnceLock<Mutex<HashMap<ThreadId, (Instant, String)>>> = OnceLock::new();
    IN_FLIGHT.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let map = in_flight().lock().unwrap_or_else(|p| p.into_inner());
                if let Some((_, sql)) = map.values().find(|(at, _)| at.elapsed() > STATEMENT_LIMIT)
                {
                    eprintln!("statement hung for more than {STATEMENT_LIMIT:?}:\n{sql}");
                    std::process::abort();
                }
            }
        });
        Mutex::new(HashMap::new())
    })
}

/// Clears this thread's in-flight entry, also when the statement panics.
struct InFlight;

impl InFlight {
    fn start(sql: &str) -> InFlight {
        let mut map = in_flight().lock().unwrap_or_else(|p| p.into_inner());
        map.insert(std::thread::current().id(), (Instant::now(), sql.to_string()));
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = in_flight().lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&std::thread::current().id());
    }
}

/// Panics the engine is known to have and that are not fixed yet, as (source
/// file, message), tolerated (and printed) so the generators keep looking for
/// new ones; `FUZZ_STRICT=1` fails on them too. Empty: every panic found so far
/// is fixed and has a regression test at the end of this file.
const KNOWN_PANICS: &[(&str, &str)] = &[];

thread_local! {
    /// Where and why this thread last panicked, recorded by [`panic_hook`].
    static LAST_PANIC: std::cell::RefCell<Option<(String, String)>> =
        const { std::cell::RefCell::new(None) };
}

fn is_known(file: &str, message: &str) -> bool {
    std::env::var_os("FUZZ_STRICT").is_none()
        && KNOWN_PANICS.iter().any(|(f, m)| file.ends_with(f) && message == *m)
}

/// Records the location of every panic; stays quiet about known ones.
fn panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map_or(String::new(), |l| l.file().replace('\\', "/"));
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !is_known(&file, &message) {
                previous(info);
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = Some((file, message)));
        }));
    });
}

fn execute_watched(s: &mut Session, sql: &str) {
    panic_hook();
    let started = Instant::now();
    let outcome = {
        let _watch = InFlight::start(sql);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.execute(sql, &params())))
    };
    let result = match outcome {
        Ok(result) => result,
        Err(payload) => {
            let (file, message) = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            if is_known(&file, &message) {
                eprintln!("known engine panic ({file}: {message}): {sql}");
                return;
            }
            if std::env::var_os("FUZZ_HUNT").is_some() {
                // Log it and go on, to collect many panics in one run.
                eprintln!("PANIC ({file}: {message}): {sql}");
                return;
            }
            eprintln!("the engine panicked on: {sql}");
            std::panic::resume_unwind(payload);
        }
    };
    let took = started.elapsed();
    if took > SLOW {
        eprintln!("slow statement ({took:?}): {sql}");
    }
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        let outcome = result.as_ref().map_or_else(|e| e.code, |_| "ok");
        eprintln!("{outcome} {sql}");
    }
    if let Err(e) = result {
        assert_eq!(e.code.len(), 5, "malformed SQLSTATE {:?} for {sql}", e.code);
        if e.code == sqlstate::INTERNAL_ERROR {
            eprintln!("internal error: {e}\n  from: {sql}");
        }
    }
}

/// Runs `statements` one by one on a fresh database; then the session must
/// still work.
fn run_case(statements: &[String]) -> Result<(), TestCaseError> {
    let db = Database::open_temporary().expect("open a temporary database");
    let mut s = db.session();
    s.execute(SCHEMA, &[]).expect("schema");
    for sql in statements {
        execute_watched(&mut s, sql);
    }
    s.execute("ROLLBACK", &[]).expect("ROLLBACK always works");
    let one = s.execute("SELECT 1", &[]);
    prop_assert!(one.is_ok(), "the session no longer works: {one:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DELETE", "CREATE",
    "TABLE", "INDEX", "UNIQUE", "PRIMARY", "KEY", "DROP", "ALTER", "ADD", "COLUMN", "RENAME", "TO",
    "AND", "OR", "NOT", "NULL", "IS", "IN", "BETWEEN", "LIKE", "ILIKE", "CASE", "WHEN", "THEN",
    "ELSE", "END", "AS", "ON", "JOIN", "LEFT", "RIGHT", "FULL", "INNER", "OUTER", "CROSS", "GROUP",
    "BY", "HAVING", "ORDER", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "DISTINCT",
    "UNION", "ALL", "INTERSECT", "EXCEPT", "EXISTS", "WITH", "RETURNING", "CONFLICT", "DO",
    "NOTHING", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "TRUE", "FALSE", "CAST",
    "EXPLAIN", "ANALYZE", "FOR", "SHOW", "DEFAULT", "CHECK", "REFERENCES", "IF", "ISOLATION",
    "LEVEL", "SERIALIZABLE", "READ", "ONLY", "INTERVAL", "AS OF SYSTEM TIME", "excluded",
    "count(*)", "ROW", "ANY", "SOME", "ESCAPE", "COLLATE", "TRANSACTION",
];

#[rustfmt::skip]
const TYPES: &[&str] = &[
    "INT", "INTEGER", "BIGINT", "SMALLINT", "TEXT", "VARCHAR(3)", "NUMERIC", "NUMERIC(5,2)",
    "NUMERIC(3)", "FLOAT8", "REAL", "DOUBLE PRECISION", "BOOL", "DATE", "TIMESTAMP", "BYTEA",
    "CHAR(2)", "CHAR",
];

const COLUMNS: &[&str] = &[
    "id", "a", "b", "c", "d", "e", "f", "g", "h", "s", "v", "y", "r", "ch", "t.id", "t.a", "t.b",
    "k", "n", "m", "t_id", "u.k", "u.n",
];

const IDENTIFIERS: &[&str] = &["t", "u", "x", "nope", "*", "t.*", "\"t\"", "\"A\"", "t_a", "t_v"];

#[rustfmt::skip]
const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "||", "=", "<>", "!=", "<", "<=", ">", ">=", "::", "(", ")", "(", ")",
    ",", ",", ";", ".", "^", "~", "@", "&", "|", "#", "<<", ">>", "$1", "$2", "$3", "$0", "[", "]",
    "'", "\"", "--", "/*", "*/", "?",
];

#[rustfmt::skip]
const BINARY: &[&str] = &[
    "+", "-", "*", "/", "%", "||", "=", "<>", "<", "<=", ">", ">=", "AND", "OR", "LIKE", "ILIKE",
    "NOT LIKE", "IS DISTINCT FROM", "IS NOT DISTINCT FROM",
];

const POSTFIX: &[&str] =
    &["IS NULL", "IS NOT NULL", "IS TRUE", "IS NOT FALSE", "IS UNKNOWN", "DESC", "ASC"];

#[rustfmt::skip]
const FUNCTIONS: &[&str] = &[
    // lpad and rpad are left out: a large length aborts the process (see
    // `lpad_with_a_huge_length_is_an_error`); the typed generator pads a little.
    "lower", "upper", "length", "char_length", "substr", "substring", "trim", "btrim", "ltrim",
    "rtrim", "replace", "concat", "left", "right", "repeat", "reverse", "strpos", "abs", "round",
    "ceil", "floor", "trunc", "sqrt", "power", "sign", "mod", "coalesce", "greatest", "least",
    "nullif", "now", "current_date", "date_part", "date_trunc", "nope",
];

const AGGREGATES: &[&str] =
    &["count", "sum", "avg", "min", "max", "count(DISTINCT", "sum(DISTINCT", "bool_and", "every"];

/// Integers and floats at the edges of every width, and beyond.
#[rustfmt::skip]
const EDGE_NUMBERS: &[&str] = &[
    "0", "-0", "1", "-1", "2", "32767", "-32768", "32768", "2147483647", "-2147483648",
    "2147483648", "-2147483649", "9223372036854775807", "-9223372036854775808",
    "9223372036854775808", "-9223372036854775809", "99999999999999999999999999999",
    "79228162514264337593543950335", "79228162514264337593543950336",
    "1000000000000000000000000000000000000000", "0.1", "-0.0", "1.5", "1e308", "1e309", "-1e309",
    "1e-320", "3.4e38", "3.5e38", "0.0000000000000000000000000001", "1e-30", "99999999.995",
    "1.0e10", ".5", "5.", "1e", "0x10", "1_000",
];

#[rustfmt::skip]
const TYPED_LITERALS: &[&str] = &[
    "DATE '2000-01-01'", "DATE '0001-01-01'", "DATE '9999-12-31'", "'2024-02-29'::date",
    "'2023-02-29'::date", "'4713-01-01 BC'::date", "'5874897-12-31'::date", "'infinity'::date",
    "TIMESTAMP '2000-01-01 00:00:00'", "'294276-12-31 23:59:59'::timestamp",
    "'1999-12-31 23:59:60'::timestamp", "'infinity'::timestamp", "'NaN'::float8",
    "'Infinity'::float8", "'-Infinity'::float8", "'NaN'::numeric", "'Infinity'::numeric",
    "'\\x00ff'::bytea", "'\\xZZ'::bytea", "'abc'::bytea", "1.5::numeric(3,1)", "'  12 '::int",
    "'12abc'::int", "'true'::bool", "'maybe'::bool", "''::int", "'1e400'::float8",
    "'-9223372036854775808'::bigint", "'9223372036854775808'::bigint", "'32768'::smallint",
    "E'\\n'", "E'\\x41'", "E'\\u00e9'", "U&'\\0041'", "$$dollar$$", "B'101'", "X'1F'",
    "'2000-01-01'::timestamp + 1", "now() - now()", "CURRENT_DATE", "CURRENT_TIMESTAMP",
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn literal() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<i32>().prop_map(|i| i.to_string()),
        3 => select(EDGE_NUMBERS).prop_map(String::from),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => (-1e6f64..1e6).prop_map(|f| f.to_string()),
        3 => "[a-zA-Z0-9%_ 'é\\\\]{0,6}".prop_map(|s| quote(&s)),
        2 => select(TYPED_LITERALS).prop_map(String::from),
        2 => select(&["NULL", "TRUE", "FALSE", "$1", "$2", "DEFAULT"][..]).prop_map(String::from),
    ]
    .boxed()
}

fn column() -> BoxedStrategy<String> {
    select(COLUMNS).prop_map(String::from).boxed()
}

// ---------------------------------------------------------------------------
// Token soup
// ---------------------------------------------------------------------------

fn token() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(KEYWORDS).prop_map(String::from),
        3 => select(OPERATORS).prop_map(String::from),
        2 => column(),
        1 => select(IDENTIFIERS).prop_map(String::from),
        1 => select(TYPES).prop_map(String::from),
        1 => select(FUNCTIONS).prop_map(|f| format!("{f}(")),
        2 => literal(),
    ]
    .boxed()
}

/// Tokens joined by spaces, half the time after a plausible opening.
fn soup() -> BoxedStrategy<String> {
    const OPENINGS: &[&str] = &[
        "",
        "SELECT",
        "SELECT * FROM t WHERE",
        "SELECT a, b FROM t",
        "INSERT INTO t VALUES (",
        "INSERT INTO t (id, a) VALUES",
        "UPDATE t SET",
        "DELETE FROM t WHERE",
        "WITH w AS (SELECT * FROM t)",
        "BEGIN;",
        "CREATE TABLE z (",
    ];
    (select(OPENINGS), vec(token(), 1..30))
        .prop_map(|(open, tokens)| format!("{open} {}", tokens.join(" ")))
        .boxed()
}

// ---------------------------------------------------------------------------
// Plausible statements
// ---------------------------------------------------------------------------

fn expr() -> BoxedStrategy<String> {
    let leaf = prop_oneof![3 => column(), 2 => literal()];
    leaf.prop_recursive(4, 24, 3, |e| {
        prop_oneof![
            5 => (e.clone(), select(BINARY), e.clone())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (select(&["-", "+", "NOT "][..]), e.clone()).prop_map(|(op, a)| format!("({op}{a})")),
            1 => (e.clone(), select(POSTFIX)).prop_map(|(a, p)| format!("({a} {p})")),
            1 => (e.clone(), select(TYPES)).prop_map(|(a, t)| format!("CAST({a} AS {t})")),
            1 => (e.clone(), select(TYPES)).prop_map(|(a, t)| format!("{a}::{t}")),
            3 => (select(FUNCTIONS), vec(e.clone(), 0..4))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            1 => (e.clone(), e.clone(), proptest::option::of(e.clone())).prop_map(|(w, t, x)| {
                match x {
                    Some(x) => format!("CASE WHEN {w} THEN {t} ELSE {x} END"),
                    None => format!("CASE {w} WHEN {t} THEN 1 END"),
                }
            }),
            1 => (e.clone(), any::<bool>(), e.clone(), e.clone()).prop_map(|(a, not, lo, hi)| {
                format!("({a} {}BETWEEN {lo} AND {hi})", if not { "NOT " } else { "" })
            }),
            1 => (e.clone(), any::<bool>(), vec(e.clone(), 1..4)).prop_map(|(a, not, list)| {
                format!("({a} {}IN ({}))", if not { "NOT " } else { "" }, list.join(", "))
            }),
            1 => e.clone().prop_map(|w| format!("EXISTS (SELECT 1 FROM u WHERE {w})")),
            1 => e.clone().prop_map(|x| format!("(SELECT {x} FROM u ORDER BY k LIMIT 1)")),
            1 => (e.clone(), e.clone())
                .prop_map(|(x, w)| format!("({x} IN (SELECT n FROM u WHERE {w}))")),
            1 => (select(AGGREGATES), e.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a} LIKE {b} ESCAPE '!')")),
        ]
    })
    .boxed()
}

fn from_clause() -> BoxedStrategy<String> {
    const FIXED: &[&str] = &[
        "t",
        "t AS x",
        "u",
        "t JOIN u ON t.id = u.t_id",
        "t LEFT JOIN u ON t.a = u.n",
        "t RIGHT JOIN u ON t.b = u.k",
        "t FULL JOIN u ON t.id = u.n",
        "t, u",
        "t CROSS JOIN t AS t2",
        "(SELECT * FROM t WHERE id > 1) AS t",
        "(VALUES (1, 'a'), (2, NULL)) AS x(a, b)",
        "t JOIN u USING (k)",
        "t NATURAL JOIN u",
    ];
    prop_oneof![
        3 => select(FIXED).prop_map(String::from),
        1 => (select(&["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"][..]), expr())
            .prop_map(|(j, on)| format!("t {j} u ON {on}")),
    ]
    .boxed()
}

fn select_statement() -> BoxedStrategy<String> {
    (
        any::<bool>(),
        vec(expr(), 1..4),
        from_clause(),
        proptest::option::of(expr()),
        proptest::option::of(vec(expr(), 1..3)),
        proptest::option::of(expr()),
        proptest::option::of((
            expr(),
            select(&["", " DESC", " ASC NULLS FIRST", " DESC NULLS LAST"][..]),
        )),
        proptest::option::of((0..20u32, proptest::option::of(0..5u32))),
        proptest::option::of(select(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"][..])),
        any::<bool>(),
    )
        .prop_map(|(distinct, items, from, filter, group, having, order, limit, setop, lock)| {
            let mut sql = format!(
                "SELECT {}{} FROM {from}",
                if distinct { "DISTINCT " } else { "" },
                items.join(", ")
            );
            if let Some(w) = filter {
                sql += &format!(" WHERE {w}");
            }
            if let Some(g) = group {
                sql += &format!(" GROUP BY {}", g.join(", "));
            }
            if let Some(h) = having {
                sql += &format!(" HAVING {h}");
            }
            if let Some(op) = setop {
                sql += &format!(" {op} SELECT {} FROM t", items.join(", "));
            }
            if let Some((o, dir)) = order {
                sql += &format!(" ORDER BY {o}{dir}");
            }
            if let Some((n, offset)) = limit {
                sql += &format!(" LIMIT {n}");
                if let Some(m) = offset {
                    sql += &format!(" OFFSET {m}");
                }
            }
            if lock {
                sql += " FOR UPDATE";
            }
            sql
        })
        .boxed()
}

const T_COLUMNS: &[&str] =
    &["id", "a", "b", "c", "d", "e", "f", "g", "h", "s", "v", "y", "r", "ch"];

fn insert_statement() -> BoxedStrategy<String> {
    const ON_CONFLICT: &[&str] = &[
        "",
        " ON CONFLICT DO NOTHING",
        " ON CONFLICT (id) DO NOTHING",
        " ON CONFLICT (id) DO UPDATE SET a = excluded.a, b = t.b || excluded.b",
        " ON CONFLICT (id) DO UPDATE SET v = excluded.v WHERE t.a > 0",
        " ON CONFLICT (v) DO NOTHING",
    ];
    prop_oneof![
        4 => (
            proptest::sample::subsequence(T_COLUMNS, 1..T_COLUMNS.len()),
            vec(literal(), 1..16),
            1..3usize,
            select(ON_CONFLICT),
            proptest::option::of(expr()),
        )
            .prop_map(|(cols, values, rows, conflict, returning)| {
                let row = format!("({})", values.join(", "));
                let mut sql = format!(
                    "INSERT INTO t ({}) VALUES {}{conflict}",
                    cols.join(", "),
                    vec![row; rows].join(", ")
                );
                if let Some(r) = returning {
                    sql += &format!(" RETURNING {r}");
                }
                sql
            }),
        1 => (vec(literal(), 1..5), select(&ON_CONFLICT[..2])).prop_map(|(values, conflict)| {
            format!("INSERT INTO u VALUES ({}){conflict}", values.join(", "))
        }),
        1 => (expr(), expr()).prop_map(|(a, w)| {
            format!("INSERT INTO t (id, a) SELECT id + 100, {a} FROM t WHERE {w}")
        }),
    ]
    .boxed()
}

fn update_statement() -> BoxedStrategy<String> {
    (
        vec((select(T_COLUMNS), expr()), 1..3),
        proptest::option::of(expr()),
        proptest::option::of(expr()),
    )
        .prop_map(|(sets, filter, returning)| {
            let sets: Vec<String> = sets.iter().map(|(c, e)| format!("{c} = {e}")).collect();
            let mut sql = format!("UPDATE t SET {}", sets.join(", "));
            if let Some(w) = filter {
                sql += &format!(" WHERE {w}");
            }
            if let Some(r) = returning {
                sql += &format!(" RETURNING {r}");
            }
            sql
        })
        .boxed()
}

fn delete_statement() -> BoxedStrategy<String> {
    (select(&["t", "u"][..]), proptest::option::of(expr()), any::<bool>())
        .prop_map(|(table, filter, returning)| {
            let mut sql = format!("DELETE FROM {table}");
            if let Some(w) = filter {
                sql += &format!(" WHERE {w}");
            }
            if returning {
                sql += " RETURNING *";
            }
            sql
        })
        .boxed()
}

fn statement() -> BoxedStrategy<String> {
    prop_oneof![
        5 => select_statement(),
        2 => insert_statement(),
        2 => update_statement(),
        1 => delete_statement(),
        1 => select(&["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT p", "ROLLBACK TO SAVEPOINT p"][..])
            .prop_map(String::from),
        1 => expr().prop_map(|e| format!("EXPLAIN ANALYZE SELECT {e} FROM t")),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Well-typed statements
// ---------------------------------------------------------------------------
//
// Random expression trees over mixed types mostly stop in the binder (42804,
// 42883). These build each expression for a wanted type, so most statements
// bind and run, and the executor, the casts and the functions see edge values.

/// The types the typed generator builds expressions of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ty {
    Int,
    Text,
    Bool,
    Num,
    Float,
    Date,
    Ts,
}

const ALL_TYPES: [Ty; 7] = [Ty::Int, Ty::Text, Ty::Bool, Ty::Num, Ty::Float, Ty::Date, Ty::Ts];

/// Which tables' columns an expression may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Cols {
    /// None: VALUES lists.
    Literals,
    /// `t`'s: UPDATE and DELETE.
    T,
    /// `t`'s and `u`'s: SELECT over a join of the two.
    TU,
}

fn columns_of(ty: Ty, cols: Cols) -> Vec<&'static str> {
    let (t, u): (&[&'static str], &[&'static str]) = match ty {
        Ty::Int => (&["id", "a", "h", "s"], &["n", "t_id"]),
        Ty::Text => (&["b", "v", "ch"], &["k"]),
        Ty::Bool => (&["e"], &[]),
        Ty::Num => (&["d"], &["m"]),
        Ty::Float => (&["c", "r"], &[]),
        Ty::Date => (&["f"], &[]),
        Ty::Ts => (&["g"], &[]),
    };
    match cols {
        Cols::Literals => Vec::new(),
        Cols::T => t.to_vec(),
        Cols::TU => t.iter().chain(u).copied().collect(),
    }
}

fn typed_literal(ty: Ty) -> BoxedStrategy<String> {
    let fixed: &'static [&'static str] = match ty {
        Ty::Int => &[
            "0",
            "1",
            "-1",
            "32767",
            "-32768",
            "2147483647",
            "-2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "CAST(NULL AS INT)",
        ],
        // Text that casts (or almost casts) to the other types too.
        Ty::Text => &[
            "''",
            "'a'",
            "'%'",
            "'_'",
            "'ÉTÉ'",
            "' x '",
            "'v1'",
            "'12'",
            "' -0 '",
            "'1e5'",
            "'-2147483649'",
            "'99999999999999999999999999999'",
            "'NaN'",
            "'-infinity'",
            "'t'",
            "'2000-02-30'",
            "'2024-02-29 24:00:00'",
            "'0001-01-01 BC'",
            "'\\x41'",
            "CAST(NULL AS TEXT)",
        ],
        Ty::Bool => &["TRUE", "FALSE", "CAST(NULL AS BOOL)"],
        Ty::Num => &[
            "0.0",
            "1.25",
            "-3.50",
            "99999999.99",
            "0.000001",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "'NaN'::numeric",
            "CAST(NULL AS NUMERIC)",
        ],
        Ty::Float => &[
            "1.5::float8",
            "'NaN'::float8",
            "'Infinity'::float8",
            "'-Infinity'::float8",
            "'-0'::float8",
            "'1e300'::float8",
            "'1e-300'::float8",
            "'3.4e38'::real",
            "CAST(NULL AS FLOAT8)",
        ],
        Ty::Date => &[
            "DATE '2000-01-01'",
            "DATE '1999-12-31'",
            "DATE '2024-02-29'",
            "DATE '0001-01-01'",
            "'4713-01-01 BC'::date",
            "'5874897-12-31'::date",
            "'294276-12-31'::date",
            "'infinity'::date",
            "'-infinity'::date",
            "current_date",
            "CAST(NULL AS DATE)",
        ],
        Ty::Ts => &[
            "TIMESTAMP '2000-01-01 00:00:00'",
            "TIMESTAMP '1970-01-01 00:00:00.000001'",
            "TIMESTAMP '2024-02-29 23:59:59.999999'",
            "'294276-12-31 23:59:59.999999'::timestamp",
            "'4713-01-01 00:00:00 BC'::timestamp",
            "'infinity'::timestamp",
            "'-infinity'::timestamp",
            "now()",
            "CAST(NULL AS TIMESTAMP)",
        ],
    };
    let random = match ty {
        Ty::Int => any::<i16>().prop_map(|i| i.to_string()).boxed(),
        Ty::Text => "[a-z%_ é]{0,5}".prop_map(|s| quote(&s)).boxed(),
        Ty::Bool => Just("NULL".to_string()).boxed(),
        Ty::Num => (-100_000i64..100_000, 0..5u32)
            .prop_map(|(m, scale)| rust_decimal::Decimal::new(m, scale).to_string())
            .boxed(),
        Ty::Float => (-1e6f64..1e6).prop_map(|f| format!("{f}::float8")).boxed(),
        Ty::Date => {
            (-800_000i32..800_000).prop_map(|d| format!("(DATE '2000-01-01' + {d})")).boxed()
        }
        Ty::Ts => (1..=9999u32, 1..=12u32, 1..=28u32, 0..24u32, 0..60u32, 0..1_000_000u32)
            .prop_map(|(y, mo, d, h, mi, us)| {
                format!("TIMESTAMP '{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:00.{us:06}'")
            })
            .boxed(),
    };
    prop_oneof![2 => select(fixed).prop_map(String::from), 1 => random].boxed()
}

fn typed_leaf(ty: Ty, cols: Cols) -> BoxedStrategy<String> {
    let columns = columns_of(ty, cols);
    if columns.is_empty() {
        return typed_literal(ty);
    }
    prop_oneof![3 => select(columns).prop_map(String::from), 2 => typed_literal(ty)].boxed()
}

const CMP: &[&str] = &["=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM"];
#[rustfmt::skip]
const DATE_FIELDS: &[&str] = &[
    "'year'", "'month'", "'day'", "'hour'", "'minute'", "'second'", "'dow'", "'doy'", "'quarter'",
    "'epoch'",
];
const TRUNC_UNITS: &[&str] =
    &["'year'", "'quarter'", "'month'", "'day'", "'hour'", "'minute'", "'second'"];

fn sql_type(ty: Ty) -> &'static [&'static str] {
    match ty {
        Ty::Int => &["INT", "BIGINT", "SMALLINT"],
        Ty::Text => &["TEXT", "VARCHAR(3)", "CHAR(2)"],
        Ty::Bool => &["BOOL"],
        Ty::Num => &["NUMERIC", "NUMERIC(5,2)", "NUMERIC(3)"],
        Ty::Float => &["FLOAT8", "REAL"],
        Ty::Date => &["DATE"],
        Ty::Ts => &["TIMESTAMP"],
    }
}

/// An expression of any type, depth at most `depth`.
fn any_typed(cols: Cols, depth: u32) -> BoxedStrategy<String> {
    let all: Vec<BoxedStrategy<String>> =
        ALL_TYPES.iter().map(|&t| typed(t, cols, depth)).collect();
    proptest::strategy::Union::new(all).boxed()
}

/// An expression of type `ty` of depth at most `depth`, naming `cols`.
/// Memoized: the same strategy tree serves every call.
fn typed(ty: Ty, cols: Cols, depth: u32) -> BoxedStrategy<String> {
    thread_local! {
        static MEMO: std::cell::RefCell<HashMap<(Ty, Cols, u32), BoxedStrategy<String>>> =
            std::cell::RefCell::new(HashMap::new());
    }
    if let Some(s) = MEMO.with(|m| m.borrow().get(&(ty, cols, depth)).cloned()) {
        return s;
    }
    let s = if depth == 0 {
        typed_leaf(ty, cols)
    } else {
        prop_oneof![2 => typed_leaf(ty, cols), 3 => compound(ty, cols, depth - 1)].boxed()
    };
    MEMO.with(|m| m.borrow_mut().insert((ty, cols, depth), s.clone()));
    s
}

fn compound(ty: Ty, cols: Cols, d: u32) -> BoxedStrategy<String> {
    let sub = |t: Ty| typed(t, cols, d);
    let cast_to = move |from: Ty| {
        (sub(from), select(sql_type(ty))).prop_map(|(x, t)| format!("CAST({x} AS {t})"))
    };
    let case = (sub(Ty::Bool), sub(ty), sub(ty))
        .prop_map(|(w, a, b)| format!("CASE WHEN {w} THEN {a} ELSE {b} END"));
    let pick = (select(&["coalesce", "greatest", "least", "nullif"][..]), sub(ty), sub(ty))
        .prop_map(|(f, a, b)| format!("{f}({a}, {b})"));
    match ty {
        Ty::Int => prop_oneof![
            4 => (sub(Ty::Int), select(&["+", "-", "*", "/", "%"][..]), sub(Ty::Int))
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (select(&["-", "abs", "sign"][..]), sub(Ty::Int))
                .prop_map(|(f, a)| format!("{f}({a})")),
            1 => (sub(Ty::Int), sub(Ty::Int)).prop_map(|(a, b)| format!("mod({a}, {b})")),
            1 => sub(Ty::Text).prop_map(|s| format!("length({s})")),
            1 => (sub(Ty::Text), sub(Ty::Text)).prop_map(|(a, b)| format!("strpos({a}, {b})")),
            1 => case,
            1 => pick,
            1 => cast_to(Ty::Num),
            1 => cast_to(Ty::Float),
            1 => cast_to(Ty::Text),
            1 => (sub(Ty::Date), sub(Ty::Date)).prop_map(|(a, b)| format!("({a} - {b})")),
            1 => sub(Ty::Bool).prop_map(|w| format!("(SELECT count(*) FROM u WHERE {w})")),
            1 => sub(Ty::Bool).prop_map(|w| format!("(SELECT max(n) FROM u WHERE {w})")),
        ]
        .boxed(),
        Ty::Text => prop_oneof![
            3 => (sub(Ty::Text), sub(Ty::Text)).prop_map(|(a, b)| format!("({a} || {b})")),
            2 => (select(&["lower", "upper", "reverse", "trim", "btrim", "ltrim", "rtrim"][..]),
                  sub(Ty::Text))
                .prop_map(|(f, a)| format!("{f}({a})")),
            1 => (sub(Ty::Text), sub(Ty::Int), proptest::option::of(sub(Ty::Int))).prop_map(
                |(s, from, n)| match n {
                    Some(n) => format!("substr({s}, {from}, {n})"),
                    None => format!("substr({s}, {from})"),
                }
            ),
            1 => (select(&["left", "right", "repeat"][..]), sub(Ty::Text), sub(Ty::Int))
                .prop_map(|(f, s, n)| format!("{f}({s}, {n})")),
            1 => (sub(Ty::Text), sub(Ty::Text), sub(Ty::Text))
                .prop_map(|(a, b, c)| format!("replace({a}, {b}, {c})")),
            1 => (select(&["lpad", "rpad"][..]), sub(Ty::Text), -5..40i32, sub(Ty::Text))
                .prop_map(|(f, s, n, fill)| format!("{f}({s}, {n}, {fill})")),
            1 => (sub(Ty::Text), select(&["ltrim", "rtrim", "btrim"][..]), sub(Ty::Text))
                .prop_map(|(a, f, b)| format!("{f}({a}, {b})")),
            2 => (any_typed(cols, d), select(&["TEXT", "VARCHAR(3)", "CHAR(2)"][..]))
                .prop_map(|(x, t)| format!("CAST({x} AS {t})")),
            1 => vec(any_typed(cols, d), 0..4).prop_map(|xs| format!("concat({})", xs.join(", "))),
            1 => case,
            1 => pick,
            1 => sub(Ty::Bool)
                .prop_map(|w| format!("(SELECT k FROM u WHERE {w} ORDER BY k DESC LIMIT 1)")),
        ]
        .boxed(),
        Ty::Bool => {
            let comparisons: Vec<BoxedStrategy<String>> = ALL_TYPES
                .iter()
                .map(|&t| {
                    (sub(t), select(CMP), sub(t))
                        .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
                        .boxed()
                })
                .collect();
            prop_oneof![
                6 => proptest::strategy::Union::new(comparisons),
                2 => (sub(Ty::Bool), select(&["AND", "OR"][..]), sub(Ty::Bool))
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                1 => sub(Ty::Bool).prop_map(|a| format!("(NOT {a})")),
                1 => (any_typed(cols, d), select(&["IS NULL", "IS NOT NULL"][..]))
                    .prop_map(|(a, p)| format!("({a} {p})")),
                1 => (sub(Ty::Bool), select(&["IS TRUE", "IS NOT FALSE", "IS UNKNOWN"][..]))
                    .prop_map(|(a, p)| format!("({a} {p})")),
                2 => (sub(Ty::Text), select(&["LIKE", "ILIKE", "NOT LIKE"][..]), sub(Ty::Text))
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                1 => (sub(Ty::Int), sub(Ty::Int), sub(Ty::Int))
                    .prop_map(|(a, lo, hi)| format!("({a} BETWEEN {lo} AND {hi})")),
                1 => (sub(Ty::Int), vec(sub(Ty::Int), 1..4))
                    .prop_map(|(a, l)| format!("({a} IN ({}))", l.join(", "))),
                1 => (sub(Ty::Text), vec(sub(Ty::Text), 1..4))
                    .prop_map(|(a, l)| format!("({a} NOT IN ({}))", l.join(", "))),
                1 => sub(Ty::Bool).prop_map(|w| format!("EXISTS (SELECT 1 FROM u WHERE {w})")),
                1 => (sub(Ty::Int), sub(Ty::Bool))
                    .prop_map(|(a, w)| format!("({a} IN (SELECT n FROM u WHERE {w}))")),
            ]
            .boxed()
        }
        Ty::Num => prop_oneof![
            3 => (sub(Ty::Num), select(&["+", "-", "*", "/", "%"][..]), sub(Ty::Num))
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (sub(Ty::Num), select(&["+", "*", "/"][..]), sub(Ty::Int))
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (select(&["round", "trunc"][..]), sub(Ty::Num), sub(Ty::Int))
                .prop_map(|(f, a, n)| format!("{f}({a}, {n})")),
            1 => (select(&["round", "ceil", "floor", "abs", "sign", "-"][..]), sub(Ty::Num))
                .prop_map(|(f, a)| format!("{f}({a})")),
            1 => sub(Ty::Num).prop_map(|a| format!("sqrt(abs({a}))")),
            1 => cast_to(Ty::Int),
            1 => cast_to(Ty::Float),
            1 => cast_to(Ty::Text),
            1 => case,
            1 => pick,
            1 => sub(Ty::Bool).prop_map(|w| format!("(SELECT sum(m) FROM u WHERE {w})")),
        ]
        .boxed(),
        Ty::Float => prop_oneof![
            3 => (sub(Ty::Float), select(&["+", "-", "*", "/"][..]), sub(Ty::Float))
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => (sub(Ty::Float), sub(Ty::Float)).prop_map(|(a, b)| format!("power({a}, {b})")),
            1 => (select(&["abs", "-", "round", "floor", "ceil", "trunc", "sign"][..]),
                  sub(Ty::Float))
                .prop_map(|(f, a)| format!("{f}({a})")),
            1 => sub(Ty::Float).prop_map(|a| format!("sqrt(abs({a}))")),
            1 => cast_to(Ty::Int),
            1 => cast_to(Ty::Num),
            1 => cast_to(Ty::Text),
            2 => (select(DATE_FIELDS), prop_oneof![sub(Ty::Date), sub(Ty::Ts)])
                .prop_map(|(f, x)| format!("date_part({f}, {x})")),
            1 => case,
            1 => pick,
        ]
        .boxed(),
        Ty::Date => prop_oneof![
            3 => (sub(Ty::Date), select(&["+", "-"][..]), sub(Ty::Int))
                .prop_map(|(a, op, n)| format!("({a} {op} {n})")),
            1 => cast_to(Ty::Ts),
            1 => cast_to(Ty::Text),
            1 => case,
            1 => pick,
        ]
        .boxed(),
        Ty::Ts => prop_oneof![
            3 => (select(TRUNC_UNITS), prop_oneof![sub(Ty::Ts), sub(Ty::Date)])
                .prop_map(|(u, x)| format!("date_trunc({u}, {x})")),
            1 => cast_to(Ty::Date),
            1 => cast_to(Ty::Text),
            1 => case,
            1 => pick,
        ]
        .boxed(),
    }
}

const FROM_T_AND_U: &[&str] = &[
    "t LEFT JOIN u ON t.id = u.t_id",
    "t JOIN u ON t.a = u.n",
    "t FULL JOIN u ON t.id = u.n",
    "t CROSS JOIN u",
    "u RIGHT JOIN t ON u.k = t.b",
];

fn typed_select() -> BoxedStrategy<String> {
    const DEPTH: u32 = 3;
    let plain = (
        vec(any_typed(Cols::TU, DEPTH), 1..4),
        select(FROM_T_AND_U),
        proptest::option::of(typed(Ty::Bool, Cols::TU, DEPTH)),
        any::<bool>(),
        proptest::option::of(0..6u32),
        any::<bool>(),
    )
        .prop_map(|(items, from, filter, distinct, limit, order)| {
            let mut sql = format!(
                "SELECT {}{} FROM {from}",
                if distinct { "DISTINCT " } else { "" },
                items.join(", ")
            );
            if let Some(w) = filter {
                sql += &format!(" WHERE {w}");
            }
            if order {
                let keys: Vec<String> = (1..=items.len()).map(|i| i.to_string()).collect();
                sql += &format!(" ORDER BY {} DESC NULLS LAST", keys.join(", "));
            }
            if let Some(n) = limit {
                sql += &format!(" LIMIT {n}");
            }
            sql
        });
    let aggregate_of = |ty: Ty, f: &'static [&'static str]| {
        (select(f), typed(ty, Cols::TU, 2)).prop_map(|(f, x)| format!("{f}({x})")).boxed()
    };
    let aggregate = proptest::strategy::Union::new(vec![
        aggregate_of(Ty::Int, &["count", "sum", "avg", "min", "max", "count(DISTINCT"]),
        aggregate_of(Ty::Num, &["sum", "avg", "min", "max"]),
        aggregate_of(Ty::Float, &["sum", "avg", "min", "max"]),
        aggregate_of(Ty::Text, &["min", "max", "count"]),
        aggregate_of(Ty::Date, &["min", "max"]),
        aggregate_of(Ty::Ts, &["min", "max"]),
        Just("count(*)".to_string()).boxed(),
    ])
    .prop_map(|a| if a.starts_with("count(DISTINCT(") { format!("{a})") } else { a });
    let grouped = (
        any_typed(Cols::TU, 2),
        vec(aggregate, 1..3),
        select(FROM_T_AND_U),
        proptest::option::of(typed(Ty::Bool, Cols::TU, 2)),
        proptest::option::of(0..3i32),
    )
        .prop_map(|(key, aggs, from, filter, having)| {
            let mut sql = format!("SELECT {key}, {} FROM {from}", aggs.join(", "));
            if let Some(w) = filter {
                sql += &format!(" WHERE {w}");
            }
            sql += &format!(" GROUP BY {key}");
            if let Some(n) = having {
                sql += &format!(" HAVING count(*) > {n}");
            }
            sql + " ORDER BY 1"
        });
    let set_op = (
        select(&ALL_TYPES[..]).prop_flat_map(|ty| (typed(ty, Cols::T, 2), typed(ty, Cols::TU, 2))),
        select(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"][..]),
    )
        .prop_map(|((a, b), op)| {
            format!(
                "SELECT {a} FROM t {op} SELECT {b} FROM t LEFT JOIN u ON t.id = u.t_id ORDER BY 1"
            )
        });
    let cte = (any_typed(Cols::T, 2), typed(Ty::Bool, Cols::T, 2)).prop_map(|(x, w)| {
        format!("WITH w AS (SELECT {x} AS x1 FROM t WHERE {w}) SELECT x1, count(*) FROM w GROUP BY x1 ORDER BY 2, 1")
    });
    prop_oneof![4 => plain, 2 => grouped, 1 => set_op, 1 => cte].boxed()
}

/// `t`'s writable columns with their types.
const T_TYPED: &[(&str, Ty)] = &[
    ("a", Ty::Int),
    ("b", Ty::Text),
    ("c", Ty::Float),
    ("d", Ty::Num),
    ("e", Ty::Bool),
    ("f", Ty::Date),
    ("g", Ty::Ts),
    ("h", Ty::Int),
    ("s", Ty::Int),
    ("v", Ty::Text),
    ("r", Ty::Float),
    ("ch", Ty::Text),
];

fn typed_write() -> BoxedStrategy<String> {
    let assignment = select(T_TYPED)
        .prop_flat_map(|(c, ty)| typed(ty, Cols::T, 2).prop_map(move |e| format!("{c} = {e}")));
    let update = (
        vec(assignment, 1..3),
        proptest::option::of(typed(Ty::Bool, Cols::T, 2)),
        proptest::option::of(any_typed(Cols::T, 1)),
    )
        .prop_map(|(sets, filter, returning)| {
            let mut sql = format!("UPDATE t SET {}", sets.join(", "));
            if let Some(w) = filter {
                sql += &format!(" WHERE {w}");
            }
            if let Some(r) = returning {
                sql += &format!(" RETURNING {r}");
            }
            sql
        });
    let values: Vec<BoxedStrategy<String>> =
        T_TYPED.iter().map(|&(_, ty)| typed(ty, Cols::Literals, 1)).collect();
    let insert = (
        typed(Ty::Int, Cols::Literals, 1),
        values,
        select(
            &[
                "",
                " ON CONFLICT DO NOTHING",
                " ON CONFLICT (id) DO UPDATE SET a = excluded.a + t.a, b = excluded.b",
            ][..],
        ),
    )
        .prop_map(|(id, values, conflict)| {
            let columns: Vec<&str> = T_TYPED.iter().map(|(c, _)| *c).collect();
            format!(
                "INSERT INTO t (id, {}) VALUES ({id}, {}){conflict}",
                columns.join(", "),
                values.join(", ")
            )
        });
    let insert_select = (typed(Ty::Int, Cols::T, 1), typed(Ty::Text, Cols::T, 2), typed(Ty::Bool, Cols::T, 2))
        .prop_map(|(a, b, w)| {
            format!("INSERT INTO t (id, a, b) SELECT id + 1000, {a}, {b} FROM t WHERE {w} ON CONFLICT DO NOTHING")
        });
    let upsert_u = (typed(Ty::Text, Cols::Literals, 1), typed(Ty::Int, Cols::Literals, 1), typed(Ty::Num, Cols::Literals, 1))
        .prop_map(|(k, n, m)| {
            format!("INSERT INTO u VALUES ({k}, {n}, {m}, 1) ON CONFLICT (k) DO UPDATE SET n = u.n + excluded.n")
        });
    let delete = typed(Ty::Bool, Cols::T, 2).prop_map(|w| format!("DELETE FROM t WHERE {w}"));
    prop_oneof![3 => update, 2 => insert, 1 => insert_select, 1 => upsert_u, 1 => delete].boxed()
}

fn typed_statement() -> BoxedStrategy<String> {
    prop_oneof![3 => typed_select(), 1 => typed_write()].boxed()
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Integration tests have no lib.rs for proptest to find its
        // directory from: name the file.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/fuzz.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn token_soup_never_panics(statements in vec(soup(), 1..4)) {
        run_case(&statements)?;
    }

    #[test]
    fn plausible_statements_never_panic(statements in vec(statement(), 1..6)) {
        run_case(&statements)?;
    }

    #[test]
    fn well_typed_statements_never_panic(statements in vec(typed_statement(), 1..6)) {
        run_case(&statements)?;
    }
}

/// A few statements from past runs of the generators, kept as fixed cases.
#[test]
fn known_edge_cases_do_not_panic() {
    let statements: Vec<String> = [
        "SELECT -9223372036854775808 / -1",
        "SELECT -9223372036854775808 % -1",
        "SELECT abs(-9223372036854775808)",
        "SELECT -(-9223372036854775808)",
        "SELECT mod(-9223372036854775808, -1)",
        "SELECT substr('abc', -9223372036854775808, 9223372036854775807)",
        "SELECT left('abc', -9223372036854775808), right('abc', -9223372036854775808)",
        "SELECT round(1.5, -2147483648), trunc(1.5, 2147483647)",
        "SELECT '294276-12-31 23:59:59'::timestamp + 1",
        "SELECT date_part('year', DATE '0001-01-01')",
        "SELECT h + 1 FROM t",
        "SELECT sum(h) FROM t",
        "SELECT avg(h), sum(d), avg(c) FROM t",
        "UPDATE t SET s = s + 1",
        "SELECT 1 FROM t LIMIT -1",
        "SELECT 1 FROM t OFFSET -1",
        "SELECT 1 FROM t LIMIT 9223372036854775807 OFFSET 9223372036854775807",
    ]
    .map(String::from)
    .to_vec();
    run_case(&statements).expect("no panic");
}

// ---------------------------------------------------------------------------
// Engine bugs the generators found: minimal reproductions
// ---------------------------------------------------------------------------

/// The SQLSTATE `sql` fails with on a fresh database, or `"ok"`. A panic
/// propagates and fails the test.
fn outcome(sql: &str) -> &'static str {
    let db = Database::open_temporary().expect("open a temporary database");
    match db.session().execute(sql, &[]) {
        Ok(_) => "ok",
        Err(e) => e.code,
    }
}

/// PostgreSQL refuses results over 1 GB (54000); Strata's lpad and rpad
/// allocate whatever length is asked: `lpad('a', 2147483647)` builds a 2 GB
/// string for half a minute, a bigint length aborts the process.
#[test]
fn lpad_with_a_huge_length_is_an_error() {
    assert_eq!(outcome("SELECT rpad('a', 2147483647, 'xy')"), sqlstate::PROGRAM_LIMIT_EXCEEDED);
    // PostgreSQL's length is an int4: 42883 for a bigint; any error will do.
    assert_ne!(outcome("SELECT lpad('a', 9223372036854775807)"), "ok");
}

/// `micros_of` multiplies days by micros per day without checking, and
/// `date_trunc` multiplies the day of -infinity back: i64 overflow, a panic
/// in debug builds and garbage in release.
#[test]
fn date_part_and_date_trunc_at_the_ends_of_the_range_do_not_overflow() {
    for sql in [
        "SELECT date_part('year', DATE '5874897-12-31')",
        "SELECT date_part('year', 'infinity'::date)",
        "SELECT date_trunc('day', '-infinity'::timestamp)",
        "SELECT date_trunc('year', '-infinity'::timestamp)",
    ] {
        // PostgreSQL: 5874897, Infinity, -infinity, -infinity. An error
        // (22008) would do too; a panic does not.
        let code = outcome(sql);
        assert!(code == "ok" || code == sqlstate::DATETIME_FIELD_OVERFLOW, "{sql}: {code}");
    }
}

#[test]
fn date_plus_a_huge_bigint_is_out_of_range() {
    for sql in [
        "SELECT DATE '2000-01-02' + 9223372036854775807",
        "SELECT DATE '2000-01-01' - (-9223372036854775808)",
    ] {
        assert_eq!(outcome(sql), sqlstate::DATETIME_FIELD_OVERFLOW, "{sql}");
    }
}

/// Not panics, but wrong answers met on the way: arithmetic lands on the
/// sentinels Strata uses for infinity, and infinities are truncated and
/// subtracted as if finite. PostgreSQL's answer is in each comment.
#[test]
fn infinities_and_range_ends_follow_postgresql() {
    let db = Database::open_temporary().expect("open a temporary database");
    let text = |sql: &str| -> Result<String, &'static str> {
        let r = db.session().execute(sql, &[]).map_err(|e| e.code)?;
        let last = r.last().expect("one result");
        Ok(last.rows[0][0].to_pg_text())
    };
    // 22008 date out of range (this gives 'infinity').
    assert_eq!(
        text("SELECT DATE '2000-01-01' + 2147483647"),
        Err(sqlstate::DATETIME_FIELD_OVERFLOW)
    );
    // 22008 date out of range (past 5874897-12-31).
    assert_eq!(text("SELECT DATE '5874897-12-31' + 1"), Err(sqlstate::DATETIME_FIELD_OVERFLOW));
    // infinity (this gives 294277-01-09 00:00:00).
    assert_eq!(text("SELECT date_trunc('day', 'infinity'::timestamp)"), Ok("infinity".into()));
    // 22008 cannot subtract infinite dates (this gives 2147483647).
    assert_eq!(
        text("SELECT 'infinity'::date - DATE '2000-01-01'"),
        Err(sqlstate::DATETIME_FIELD_OVERFLOW)
    );
}

/// Numeric literals are `rust_decimal`s (28 digits): a float written in
/// exponent notation beyond 7.9e28 cannot be typed in at all.
#[test]
fn large_float_literals_can_be_written() {
    assert_eq!(outcome("SELECT 1e300::float8"), "ok");
    assert_eq!(outcome("SELECT CAST(1e29 AS FLOAT8)"), "ok");
}
