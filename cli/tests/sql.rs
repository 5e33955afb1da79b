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

/// A pseudo-terminal pair: (controller, terminal).
fn openpty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut controller, mut terminal) = (0, 0);
    // SAFETY: openpty(3) writes two new descriptors into our integers; null
    // name, termios and window size are allowed and mean defaults.
    let r = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty failed");
    // SAFETY: both descriptors were just opened for us and are owned by nobody else.
    unsafe {
        (std::os::fd::OwnedFd::from_raw_fd(controller), std::os::fd::OwnedFd::from_raw_fd(terminal))
    }
}

#[test]
fn interactive_shell_edits_lines_keeps_history_and_shows_transaction_state() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (controller, terminal) = openpty();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["sql", "--data"])
        .arg(dir.path().join("db"))
        .env("HOME", dir.path())
        .env("TERM", "xterm")
        .stdin(Stdio::from(terminal.try_clone().unwrap()))
        .stdout(Stdio::from(terminal.try_clone().unwrap()))
        .stderr(Stdio::from(terminal))
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let mut reader = std::fs::File::from(controller.try_clone().unwrap());
    let seen = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
            if n == 0 {
                break;
            }
            seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut keyboard = std::fs::File::from(controller);
    let mut type_and_wait = |keys: &str, expect: &str| {
        let from = screen.lock().unwrap().len();
        keyboard.write_all(keys.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if screen.lock().unwrap()[from..].contains(expect) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {expect:?} in {:?}",
                screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    type_and_wait("", "strata=> ");
    type_and_wait("SELECT 1 +\r", "strata-> ");
    type_and_wait(" 41 AS answer;\r", "(1 row)");
    assert!(screen.lock().unwrap().contains("42"), "{:?}", screen.lock().unwrap());
    type_and_wait("BEGIN;\r", "strata*> ");
    type_and_wait("SELECT * FROM missing;\r", "strata!> ");
    type_and_wait("ROLLBACK;\r", "strata=> ");
    // Ctrl-C at the prompt discards the line, not the shell.
    type_and_wait("SELECT 'discarded'\x03", "strata=> ");
    type_and_wait("\\q\r", "");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the shell did not quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let history = std::fs::read_to_string(dir.path().join(".strata_history")).unwrap();
    assert!(history.contains("SELECT 1 +"), "{history}");
    assert!(history.contains("BEGIN;"), "{history}");
    assert!(!history.contains("discarded"), "{history}");
}
