//! Checkpoints: a copy that reads like the original at every timestamp,
//! whatever the original does afterwards.

use std::collections::BTreeMap;

use strata_lsm::{Db, Durability, KeyRange, MAX_TS, Options, WriteBatch, clone_checkpoint};

fn small() -> Options {
    Options { background_compaction: false, ..Options::small_for_tests() }
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

fn scan_all(db: &Db, ts: u64) -> Rows {
    db.scan(KeyRange::all(), ts, false).unwrap().map(|r| r.unwrap()).collect()
}

/// Writes `rounds` batches: key `k{i % 50}` at timestamp `base + round`,
/// with every seventh write a tombstone.
fn write_rounds(db: &Db, base: u64, rounds: u64) {
    for round in 0..rounds {
        let ts = base + round;
        let mut batch = WriteBatch::new();
        for i in 0..20u64 {
            let key = format!("k{:03}", (round * 7 + i) % 50);
            if (round + i) % 7 == 0 {
                batch.delete(key.as_bytes(), ts);
            } else {
                batch.put(key.as_bytes(), ts, format!("v{ts}-{i}-{}", "x".repeat(40)).as_bytes());
            }
        }
        db.write(&batch, Durability::Buffered).unwrap();
    }
}

#[test]
fn checkpoint_reads_like_the_original_at_every_timestamp_after_the_original_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    write_rounds(&db, 10, 200);
    db.flush().unwrap();
    write_rounds(&db, 210, 50); // some only in the memtable: the checkpoint flushes
    let timestamps = [9, 10, 11, 50, 100, 209, 210, 230, 259, 260, MAX_TS];
    let expected: BTreeMap<u64, Rows> =
        timestamps.iter().map(|&ts| (ts, scan_all(&db, ts))).collect();
    let point: Vec<Option<Vec<u8>>> =
        (0..50).map(|i| db.get(format!("k{i:03}").as_bytes(), 150).unwrap()).collect();
    assert!(expected[&MAX_TS].len() > 10, "the test writes live keys");

    let cp = dir.path().join("cp");
    let info = db.checkpoint(&cp).unwrap();
    assert!(info.linked > 0 && info.copied == 0, "same file system: linked, {info:?}");
    assert!(info.files.iter().any(|f| f.starts_with("MANIFEST-")));
    assert!(info.files.contains(&"CURRENT".to_string()));
    assert!(info.files.iter().all(|f| !f.ends_with(".wal")), "no WAL in a checkpoint");

    // The original goes on: new writes, then a full compaction, which
    // deletes every table the checkpoint linked.
    write_rounds(&db, 300, 100);
    db.compact().unwrap();
    let originals: Vec<_> = std::fs::read_dir(dir.path().join("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for table in info.files.iter().filter(|f| f.ends_with(".sst")) {
        assert!(!originals.contains(table), "compaction removed {table} from the original");
    }
    drop(db);

    let copy = Db::open(&cp, small()).unwrap();
    for (&ts, rows) in &expected {
        assert_eq!(&scan_all(&copy, ts), rows, "scan at {ts}");
    }
    for (i, want) in point.iter().enumerate() {
        assert_eq!(&copy.get(format!("k{i:03}").as_bytes(), 150).unwrap(), want);
    }
    // Nothing the original wrote after the checkpoint.
    assert_eq!(copy.max_timestamp(), 259);
    // The copy is a database of its own: writable, and it survives reopening.
    copy.put(b"new", 1000, b"yes", Durability::Sync).unwrap();
    copy.compact().unwrap();
    drop(copy);
    let copy = Db::open(&cp, small()).unwrap();
    assert_eq!(copy.get(b"new", 1000).unwrap(), Some(b"yes".to_vec()));
    assert_eq!(scan_all(&copy, 230), expected[&230]);
}

#[test]
fn checkpoint_keeps_the_gc_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    write_rounds(&db, 10, 40);
    db.set_gc_watermark(30);
    let at_30 = scan_all(&db, 30);
    let cp = dir.path().join("cp");
    assert_eq!(db.checkpoint(&cp).unwrap().gc_watermark, 30);
    let copy = Db::open(&cp, small()).unwrap();
    assert_eq!(copy.gc_watermark(), 30);
    assert!(copy.get(b"k001", 29).is_err(), "below the watermark: too old");
    assert_eq!(scan_all(&copy, 30), at_30);
}

#[test]
fn checkpoint_of_an_empty_db_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    let cp = dir.path().join("cp");
    let info = db.checkpoint(&cp).unwrap();
    assert_eq!(info.linked + info.copied, 0);
    assert_eq!(info.files.len(), 2, "a manifest and CURRENT: {info:?}");
    let copy = Db::open(&cp, small()).unwrap();
    assert!(scan_all(&copy, MAX_TS).is_empty());
    assert_eq!(copy.max_timestamp(), 0);
}

#[test]
fn checkpoint_refuses_a_directory_that_holds_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    let cp = dir.path().join("cp");
    std::fs::create_dir_all(&cp).unwrap();
    std::fs::write(cp.join("stray"), b"x").unwrap();
    assert!(matches!(db.checkpoint(&cp), Err(strata_lsm::Error::InvalidArgument(_))));
}

#[test]
fn a_cloned_checkpoint_leaves_the_checkpoint_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    write_rounds(&db, 10, 100);
    let want = scan_all(&db, MAX_TS);
    let cp = dir.path().join("cp");
    let info = db.checkpoint(&cp).unwrap();
    drop(db);
    let listing = |p: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let bytes: Vec<Vec<u8>> =
        info.files.iter().map(|f| std::fs::read(cp.join(f)).unwrap()).collect();

    let clone = dir.path().join("clone");
    clone_checkpoint(&cp, &clone).unwrap();
    let db = Db::open(&clone, small()).unwrap();
    assert_eq!(scan_all(&db, MAX_TS), want);
    write_rounds(&db, 200, 100);
    db.compact().unwrap(); // deletes the clone's names for the linked tables
    drop(db);
    assert_eq!(listing(&cp), info.files);
    for (f, b) in info.files.iter().zip(&bytes) {
        assert_eq!(&std::fs::read(cp.join(f)).unwrap(), b, "{f} changed");
    }
    let again = dir.path().join("again");
    clone_checkpoint(&cp, &again).unwrap();
    assert_eq!(scan_all(&Db::open(&again, small()).unwrap(), MAX_TS), want);
}

#[test]
fn a_damaged_checkpoint_file_is_corruption_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    write_rounds(&db, 10, 100);
    db.flush().unwrap();
    for (name, at_end) in [("sst", true), ("MANIFEST-", false)] {
        let cp = dir.path().join(format!("cp-{name}"));
        let info = db.checkpoint(&cp).unwrap();
        let victim = info.files.iter().find(|f| f.contains(name)).unwrap();
        let path = cp.join(victim);
        // Break the link first: the original's table must stay intact.
        let mut bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // A table's footer, or a manifest record's body.
        let at = if at_end { bytes.len() - 20 } else { bytes.len() / 2 };
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        match Db::open(&cp, small()) {
            Err(e) => assert!(e.is_corruption(), "{victim}: {e}"),
            Ok(_) => panic!("{victim}: a damaged checkpoint opened"),
        }
    }
    // The original never noticed.
    assert!(!scan_all(&db, MAX_TS).is_empty());
}
