//! `strata sql` driven as users drive it: -c, -f, standard input, output
//! formats and exit statuses.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn strata_sql(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("sql")
        .arg("--data")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn script_on_stdin_prints_psql_tables() {
    let dir = tempfile::tempdir().unwrap();
    let script = "CREATE TABLE t (id INT PRIMARY KEY, name TEXT);\nINSERT INTO t VALUES\n  (1, 'one'),\n  (2, NULL);\nSELECT * FROM t ORDER BY id;\n";
    let out = strata_sql(dir.path(), &[], script);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "CREATE TABLE\nINSERT 0 2\n id | name\n----+------\n  1 | one\n  2 |\n(2 rows)\n\n"
    );
}

#[test]
fn data_persists_and_formats_switch() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata_sql(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE p (k TEXT PRIMARY KEY, v INT)",
            "-c",
            "INSERT INTO p VALUES ('a,b', 1), ('c', 2)",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let csv = strata_sql(dir.path(), &["--csv", "-c", "SELECT * FROM p ORDER BY k"], "");
    assert_eq!(text(&csv.stdout), "k,v\n\"a,b\",1\nc,2\n");
    let bare = strata_sql(dir.path(), &["-A", "-t", "-c", "SELECT v FROM p ORDER BY v"], "");
    assert_eq!(text(&bare.stdout), "1\n2\n");
}

#[test]
fn file_scripts_stop_at_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, "CREATE TABLE a (x INT);\nINSERT INTO a VALUES (1);\nINSERT INTO nowhere VALUES (1);\nINSERT INTO a VALUES (2);\n").unwrap();
    let db = dir.path().join("db");
    let out = strata_sql(&db, &["-f", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        text(&out.stderr).contains("ERROR:  42P01: relation \"nowhere\" does not exist"),
        "{out:?}"
    );
    let count = strata_sql(&db, &["-A", "-t", "-c", "SELECT count(*) FROM a"], "");
    assert_eq!(text(&count.stdout), "1\n", "the script stopped before the last insert");
}

#[test]
fn syntax_errors_show_a_caret_and_c_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata_sql(dir.path(), &["-c", "SELECT 1 +* 2"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("ERROR:  42601: syntax error"), "{err}");
    assert!(err.contains("LINE 1: SELECT 1 +* 2\n"), "{err}");
    assert!(err.lines().nth(2).is_some_and(|l| l.trim_start() == "^"), "{err}");
}

#[test]
fn describe_commands_list_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    strata_sql(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(10) NOT NULL)",
            "-c",
            "CREATE INDEX items_label ON items (label)",
        ],
        "",
    );
    let out = strata_sql(dir.path(), &[], "\\dt\n\\d items\n");
    let s = text(&out.stdout);
    assert!(s.contains(" public | items | table | strata"), "{s}");
    assert!(s.contains(" label  | character varying(10) |           | not null |"), "{s}");
    assert!(s.contains("\"items_pkey\" PRIMARY KEY, btree (id)"), "{s}");
    assert!(s.contains("\"items_label\" btree (label)"), "{s}");
}
