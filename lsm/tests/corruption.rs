//! Damaged files produce errors, never wrong data; a torn WAL tail recovers to
//! the last whole record.

use std::path::{Path, PathBuf};

use strata_lsm::{Db, Durability, Error, KeyRange, MAX_TS, Options, WriteBatch};

fn options() -> Options {
    Options { background_compaction: false, ..Options::small_for_tests() }
}

fn files_with(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    out.sort();
    out
}

fn flip(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[offset] ^= 0x5a;
    std::fs::write(path, data).unwrap();
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 30) as usize)).into_bytes()
}

/// Reads everything back: each result is right, or an error that reports
/// corruption. Returns whether any corruption was reported.
fn read_all_checked(db: &Db, n: u32) -> bool {
    let mut saw_corruption = false;
    for i in 0..n {
        match db.get(&key(i), MAX_TS) {
            Ok(v) => assert_eq!(v, Some(value(i)), "wrong data for key {i}"),
            Err(e) => {
                assert!(e.is_corruption(), "unexpected error {e}");
                saw_corruption = true;
            }
        }
    }
    for reverse in [false, true] {
        let mut expected: Box<dyn Iterator<Item = u32>> =
            if reverse { Box::new((0..n).rev()) } else { Box::new(0..n) };
        // Positioning the scan reads blocks, so creating it may report damage.
        let scan = match db.scan(KeyRange::all(), MAX_TS, reverse) {
            Ok(scan) => scan,
            Err(e) => {
                assert!(e.is_corruption(), "unexpected error {e}");
                saw_corruption = true;
                continue;
            }
        };
        for entry in scan {
            match entry {
                Ok((k, v)) => {
                    let i = expected.next().expect("scan returned extra keys");
                    assert_eq!((k, v), (key(i), value(i)), "scan returned wrong data");
                }
                Err(e) => {
                    assert!(e.is_corruption(), "unexpected error {e}");
                    saw_corruption = true;
                    break;
                }
            }
        }
    }
    saw_corruption
}

fn build_one_table(dir: &Path, n: u32) -> PathBuf {
    let db = Db::open(dir, options()).unwrap();
    let mut b = WriteBatch::new();
    for i in 0..n {
        b.put(&key(i), 1, &value(i));
    }
    db.write(&b, Durability::Sync).unwrap();
    db.flush().unwrap();
    drop(db);
    let tables = files_with(dir, |n| n.ends_with(".sst"));
    assert_eq!(tables.len(), 1);
    tables[0].clone()
}

#[test]
fn any_flipped_byte_in_a_table_is_caught() {
    let n = 200;
    let dir = tempfile::tempdir().unwrap();
    let table = build_one_table(dir.path(), n);
    let pristine = std::fs::read(&table).unwrap();
    let mut caught_at_open = 0;
    let mut caught_at_read = 0;
    for offset in (0..pristine.len()).step_by(7) {
        std::fs::write(&table, &pristine).unwrap();
        flip(&table, offset);
        match Db::open(dir.path(), options()) {
            Err(e) => {
                assert!(e.is_corruption(), "offset {offset}: {e}");
                assert!(e.to_string().contains(".sst"), "error names the file: {e}");
                caught_at_open += 1;
            }
            Ok(db) => {
                assert!(read_all_checked(&db, n), "flip at offset {offset} went unnoticed");
                caught_at_read += 1;
            }
        }
    }
    assert!(caught_at_open > 0 && caught_at_read > 0, "{caught_at_open} {caught_at_read}");
}

#[test]
fn flipped_manifest_byte_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    build_one_table(dir.path(), 50);
    let manifests = files_with(dir.path(), |n| n.starts_with("MANIFEST-"));
    let manifest = manifests.last().unwrap();
    let len = std::fs::metadata(manifest).unwrap().len() as usize;
    let pristine = std::fs::read(manifest).unwrap();
    for offset in 0..len {
        std::fs::write(manifest, &pristine).unwrap();
        flip(manifest, offset);
        let err = Db::open(dir.path(), options()).expect_err("damaged manifest opened");
        assert!(err.is_corruption(), "offset {offset}: {err}");
    }
    std::fs::write(manifest, &pristine).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(!read_all_checked(&db, 50));
}

/// Writes `n` batches that stay in the WAL (the database is closed without a
/// flush) and returns the WAL's path.
fn wal_with_batches(dir: &Path, n: u32) -> PathBuf {
    let db = Db::open(dir, options()).unwrap();
    for i in 0..n {
        db.put(&key(i), 1, &value(i), Durability::Sync).unwrap();
    }
    drop(db);
    let wals = files_with(dir, |n| n.ends_with(".wal"));
    assert_eq!(wals.len(), 1);
    wals[0].clone()
}

#[test]
fn damage_in_the_middle_of_the_wal_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_with_batches(dir.path(), 40);
    let size = std::fs::read(&wal).unwrap().iter().rposition(|&b| b != 0).unwrap();
    flip(&wal, size / 2);
    let err = Db::open(dir.path(), options()).expect_err("damaged WAL opened");
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(".wal"), "error names the file: {err}");
}

#[test]
fn torn_wal_tail_recovers_to_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_with_batches(dir.path(), 40);
    let mut data = std::fs::read(&wal).unwrap();
    let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    // Tear the last record: zero its final bytes, as an interrupted write would.
    for b in &mut data[end - 6..end] {
        *b = 0;
    }
    std::fs::write(&wal, &data).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.stats().wal_torn_tails, 1);
    assert!(!read_all_checked(&db, 39));
    assert_eq!(db.get(&key(39), MAX_TS).unwrap(), None, "the torn batch is gone, wholly");
    // Recovery rewrote state cleanly: the next open sees the same.
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.stats().wal_torn_tails, 0);
    assert!(!read_all_checked(&db, 39));
}

#[test]
fn missing_table_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let table = build_one_table(dir.path(), 10);
    std::fs::remove_file(&table).unwrap();
    match Db::open(dir.path(), options()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, table),
        other => panic!("expected an I/O error naming the table, got {other:?}"),
    }
}
