//! The `strata kv` shell driven as users drive it: -c flags and stdin scripts.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn strata(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("kv")
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

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn script_on_stdin_writes_reads_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata(
        dir.path(),
        &[],
        "put fruit/apple red\nput fruit/kiwi green fuzzy\nput veg/leek white\ndel fruit/apple\nscan fruit/\n",
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.ends_with("fruit/kiwi = green fuzzy\n(1 row)\n"), "{text}");
    // History: the apple existed at the timestamp of its put.
    let put_ts = text.lines().next().unwrap().strip_prefix("OK @").unwrap().to_string();
    let out = strata(
        dir.path(),
        &["-c", &format!("get fruit/apple @{put_ts}"), "-c", "get fruit/apple", "-c", "scan desc"],
        "",
    );
    assert_eq!(
        stdout(&out),
        "red\n(not found)\nveg/leek = white\nfruit/kiwi = green fuzzy\n(2 rows)\n"
    );
}

#[test]
fn errors_stop_a_script_with_nonzero_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata(dir.path(), &[], "put a 1\nfrobnicate\nput b 2\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"), "{out:?}");
    let out = strata(dir.path(), &["-c", "get b"], "");
    assert_eq!(stdout(&out), "(not found)\n", "the script stopped before `put b`");
}
