//! The durable log store: the same operations on a `FileStore` and on the
//! in-memory model (`MemStore`) give the same state, across reopens; torn
//! tails are cut, damage elsewhere is refused with the file and offset;
//! truncation and compaction behave, and compaction deletes whole segments.

use std::fs;
use std::path::{Path, PathBuf};

use strata_replication::{
    Entry, Error, FileStore, FileStoreOptions, HardState, LogStore, MemStore, Membership, Payload,
    Persisted, Rng, Snapshot,
};

fn small() -> FileStoreOptions {
    FileStoreOptions { segment_size_bytes: 256 }
}

fn entry(index: u64, term: u64) -> Entry {
    let payload = match index % 5 {
        0 => Payload::Empty,
        1 => Payload::Membership(Membership::new([1, 2, index])),
        _ => Payload::Command(format!("cmd {index} of term {term}").into_bytes()),
    };
    Entry { index, term, payload }
}

fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi).map(|i| entry(i, term)).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .collect();
    out.sort();
    out
}

/// The commit index as a store reports it: within the stored log.
fn normalized(mut p: Persisted) -> Persisted {
    let last = p.snapshot.index + p.entries.len() as u64;
    p.hard_state.commit = p.hard_state.commit.clamp(p.snapshot.index, last);
    p
}

#[test]
fn round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let initial = Persisted::bootstrap([1, 2, 3]);
    let mut store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
    assert_eq!(store.load().unwrap(), initial);
    store.append(&entries(1, 10, 1)).unwrap();
    store.set_hard_state(HardState { term: 1, vote: Some(2), commit: 0 }).unwrap();
    store.set_hard_state(HardState { term: 1, vote: Some(2), commit: 7 }).unwrap();
    store.sync().unwrap();
    let want = Persisted {
        hard_state: HardState { term: 1, vote: Some(2), commit: 7 },
        snapshot: initial.snapshot.clone(),
        entries: entries(1, 10, 1),
    };
    assert_eq!(store.load().unwrap(), want);
    drop(store);
    // A different `initial` is ignored: the directory holds a store.
    let store = FileStore::open(dir.path(), small(), &Persisted::default()).unwrap();
    assert_eq!(store.load().unwrap(), want);
}

/// Random operations against the model, reopening now and then (Raft's
/// usage: appends never truncate at or below the commit index, snapshots
/// cover committed entries).
#[test]
fn matches_the_in_memory_model() {
    for seed in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let initial = Persisted::bootstrap([1, 2, 3]);
        let mut rng = Rng::new(seed);
        let mut model = MemStore::new(initial.clone());
        let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
        let mut term = 1;
        for step in 0..250 {
            let cur = model.load().unwrap();
            let (base, last) = (cur.snapshot.index, cur.snapshot.index + cur.entries.len() as u64);
            let commit = cur.hard_state.commit.max(base);
            match rng.below(100) {
                0..=44 => {
                    let from = rng.range(commit + 1, last + 2);
                    if rng.chance(0.2) {
                        term += 1;
                    }
                    let batch = entries(from, from + rng.below(6), term);
                    model.append(&batch).unwrap();
                    store.append(&batch).unwrap();
                }
                45..=64 => {
                    let mut hs = cur.hard_state;
                    hs.commit = rng.range(commit, last + 1);
                    if rng.chance(0.2) {
                        hs.term = hs.term.max(term) + 1;
                        hs.vote = if rng.chance(0.5) { Some(rng.range(1, 4)) } else { None };
                    }
                    model.set_hard_state(hs).unwrap();
                    store.set_hard_state(hs).unwrap();
                }
                65..=74 if commit > base => {
                    let index = rng.range(base + 1, commit + 1);
                    let term_at = cur.entries[(index - base - 1) as usize].term;
                    let snapshot = Snapshot {
                        index,
                        term: term_at,
                        membership: Membership::new([1, 2, 3]),
                        data: format!("state at {index}").into_bytes(),
                        files: Vec::new(),
                    };
                    model.compact(&snapshot).unwrap();
                    store.compact(&snapshot).unwrap();
                }
                75..=77 => {
                    term += 1;
                    let index = last + rng.range(0, 5);
                    let snapshot = Snapshot {
                        index,
                        term,
                        membership: Membership::new([1, 2, 3, 4]),
                        data: vec![7; rng.below(300) as usize],
                        files: Vec::new(),
                    };
                    model.install_snapshot(&snapshot).unwrap();
                    store.install_snapshot(&snapshot).unwrap();
                    let hs = HardState { commit: index, ..model.load().unwrap().hard_state };
                    model.set_hard_state(hs).unwrap();
                    store.set_hard_state(hs).unwrap();
                }
                78..=84 => {
                    model.sync().unwrap();
                    store.sync().unwrap();
                    drop(store);
                    store = FileStore::open(dir.path(), small(), &Persisted::default()).unwrap();
                }
                _ => {
                    model.sync().unwrap();
                    store.sync().unwrap();
                }
            }
            assert_eq!(
                normalized(store.load().unwrap()),
                normalized(model.load().unwrap()),
                "seed {seed} step {step}"
            );
        }
    }
}

/// Appends `n` batches of two entries, syncing each; returns where the
/// records of the last segment end after each (zeros follow them in the
/// file).
fn write_batches(store: &mut FileStore, dir: &Path, n: u64) -> Vec<u64> {
    let mut lens = Vec::new();
    for b in 0..n {
        store.append(&entries(2 * b + 1, 2 * b + 2, 1)).unwrap();
        store.sync().unwrap();
        let file_len = fs::metadata(segments(dir).last().unwrap()).unwrap().len();
        assert!(file_len > store.last_segment_len(), "zeros follow the records");
        lens.push(store.last_segment_len());
    }
    lens
}

/// A closed store of one segment holding four synced batches (entries 1
/// to 8): its directory, its initial state, where each batch's records
/// end, and the segment's path.
fn four_synced_batches() -> (tempfile::TempDir, Persisted, Vec<u64>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let initial = Persisted::bootstrap([1]);
    let mut store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
    let lens = write_batches(&mut store, dir.path(), 4);
    drop(store);
    let seg = segments(dir.path()).pop().unwrap();
    (dir, initial, lens, seg)
}

/// Where the records of a segment end: after its 20-byte header, each
/// record is a 12-byte header (payload length first) and its payload; an
/// all-zero header is where the zeros begin.
fn records_end(segment: &[u8]) -> usize {
    let mut at = 20;
    while at + 12 <= segment.len() && segment[at..at + 12].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    at
}

/// The zeros written ahead of the records are the end of the log, not a
/// torn tail; a segment is cut to its records when the next one starts;
/// and a stray byte in the zeros is a torn tail, cut off with no record lost.
#[test]
fn zeros_after_the_records_end_the_log() {
    let (dir, initial, lens, seg) = four_synced_batches();
    let file_len = fs::metadata(&seg).unwrap().len();
    assert!(file_len >= lens[3] + 1024, "{file_len} bytes for records ending at {}", lens[3]);
    assert!(fs::read(&seg).unwrap()[lens[3] as usize..].iter().all(|&b| b == 0));
    assert_eq!(records_end(&fs::read(&seg).unwrap()), lens[3] as usize);

    let mut store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
    assert_eq!(store.load().unwrap().entries, entries(1, 8, 1));
    assert_eq!(store.last_segment_len(), lens[3]);
    assert_eq!(fs::metadata(&seg).unwrap().len(), file_len, "zeros are not cut as a torn tail");
    store.append(&entries(9, 10, 1)).unwrap();
    store.sync().unwrap();
    let end = store.last_segment_len();
    drop(store);

    let mut bytes = fs::read(&seg).unwrap();
    bytes[end as usize + 1000] = 7;
    fs::write(&seg, &bytes).unwrap();
    let store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
    assert_eq!(store.load().unwrap().entries, entries(1, 10, 1));
    assert_eq!(fs::metadata(&seg).unwrap().len(), end, "the damaged zeros are cut off");
    drop(store);

    // Rolled segments end exactly at their last record.
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
    write_batches(&mut store, dir.path(), 10);
    let segs = segments(dir.path());
    assert!(segs.len() > 2);
    for older in &segs[..segs.len() - 1] {
        let bytes = fs::read(older).unwrap();
        assert_eq!(records_end(&bytes), bytes.len(), "{} ends in zeros", older.display());
    }
    drop(store);
    let store = FileStore::open(dir.path(), small(), &initial).unwrap();
    assert_eq!(store.load().unwrap().entries, entries(1, 20, 1));
}

#[test]
fn a_torn_tail_is_cut_back_to_the_last_whole_record() {
    let (dir, initial, lens, seg) = four_synced_batches();
    let full = fs::read(&seg).unwrap();
    // Every cut inside the last record loses exactly that record.
    for cut in lens[2]..lens[3] {
        fs::write(&seg, &full[..cut as usize]).unwrap();
        let store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
        assert_eq!(store.load().unwrap().entries, entries(1, 6, 1), "cut at {cut}");
        assert_eq!(fs::metadata(&seg).unwrap().len(), lens[2], "the tail is truncated");
    }
    // Garbage or zeros after the last record (a write that reached the disk
    // only in part) are dropped too, and appending goes on after them.
    for junk in [vec![0u8; 100], vec![0xab; 7], b"\x05\x00\x00\x00garbage".to_vec()] {
        let mut bytes = full.clone();
        bytes.extend_from_slice(&junk);
        fs::write(&seg, &bytes).unwrap();
        let mut store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
        assert_eq!(store.load().unwrap().entries, entries(1, 8, 1));
        store.append(&entries(9, 9, 1)).unwrap();
        store.sync().unwrap();
        drop(store);
        let store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
        assert_eq!(store.load().unwrap().entries, entries(1, 9, 1));
        fs::write(&seg, &full).unwrap();
    }
}

#[test]
fn a_flipped_byte_before_the_tail_is_refused_with_file_and_offset() {
    let (dir, initial, lens, seg) = four_synced_batches();
    let full = fs::read(&seg).unwrap();
    // Flip each byte of the second record in turn (header and payload).
    let (start, end) = (lens[0], lens[1]);
    for at in start..end {
        let mut bytes = full.clone();
        bytes[at as usize] ^= 0x10;
        fs::write(&seg, &bytes).unwrap();
        match FileStore::open(dir.path(), FileStoreOptions::default(), &initial) {
            Err(Error::CorruptFile { path, offset, reason }) => {
                assert_eq!(path, seg, "byte {at}");
                assert_eq!(offset, start, "byte {at}: {reason}");
            }
            other => panic!("flipped byte {at}: expected corruption, got {other:?}"),
        }
    }
    fs::write(&seg, &full).unwrap();
    // The message names the file and the offset.
    let mut bytes = full.clone();
    bytes[start as usize + 20] ^= 1;
    fs::write(&seg, &bytes).unwrap();
    let err = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("log-00000000000000000001") && text.contains(&format!("offset {start}")));
    fs::write(&seg, &full).unwrap();
    // Damage to `meta` or to the snapshot is refused as well.
    for name in ["meta", "snap-00000000000000000000-00000000000000000000"] {
        let path = dir.path().join(name);
        let good = fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[20] ^= 4;
        fs::write(&path, &bad).unwrap();
        let err = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap_err();
        assert!(matches!(&err, Error::CorruptFile { path: p, .. } if *p == path), "{err}");
        fs::write(&path, &good).unwrap();
    }
    let store = FileStore::open(dir.path(), FileStoreOptions::default(), &initial).unwrap();
    assert_eq!(store.load().unwrap().entries, entries(1, 8, 1));
}

#[test]
fn damage_in_an_older_segment_is_corruption_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let initial = Persisted::bootstrap([1]);
    let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
    write_batches(&mut store, dir.path(), 10);
    drop(store);
    let segs = segments(dir.path());
    assert!(segs.len() > 2);
    let first = &segs[0];
    let mut bytes = fs::read(first).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 3);
    fs::write(first, &bytes).unwrap();
    let err = FileStore::open(dir.path(), small(), &initial).unwrap_err();
    assert!(matches!(&err, Error::CorruptFile { path, .. } if path == first), "{err}");
    // A missing segment in the middle is named too.
    fs::remove_file(first).unwrap();
    fs::remove_file(&segs[1]).unwrap();
    fs::write(first, b"").unwrap();
    let err = FileStore::open(dir.path(), small(), &initial).unwrap_err();
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
}

#[test]
fn a_conflicting_suffix_is_replaced_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let initial = Persisted::bootstrap([1, 2, 3]);
    let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
    store.append(&entries(1, 30, 1)).unwrap();
    store.sync().unwrap();
    let before = segments(dir.path()).len();
    assert!(before > 3, "small segments roll: {before}");
    // A new leader's log differs from index 10 on (Raft §5.3).
    store.append(&entries(10, 12, 2)).unwrap();
    store.sync().unwrap();
    let mut want = entries(1, 9, 1);
    want.extend(entries(10, 12, 2));
    assert_eq!(store.load().unwrap().entries, want);
    drop(store);
    let store = FileStore::open(dir.path(), small(), &initial).unwrap();
    assert_eq!(store.load().unwrap().entries, want);
}

#[test]
fn compaction_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let initial = Persisted::bootstrap([1, 2, 3]);
    let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
    store.append(&entries(1, 100, 1)).unwrap();
    store.set_hard_state(HardState { term: 1, vote: Some(1), commit: 90 }).unwrap();
    store.sync().unwrap();
    let before = segments(dir.path());
    let snapshot = Snapshot {
        index: 80,
        term: 1,
        membership: Membership::new([1, 2, 3]),
        data: b"state at 80".to_vec(),
        files: Vec::new(),
    };
    store.compact(&snapshot).unwrap();
    let after = segments(dir.path());
    assert!(after.len() < before.len() / 2, "{} -> {} segments", before.len(), after.len());
    assert_eq!(after[..], before[before.len() - after.len()..], "a prefix of segments goes");
    assert_eq!(store.segment_seqs().len(), after.len());
    let p = store.load().unwrap();
    assert_eq!((p.snapshot.clone(), p.entries.clone()), (snapshot.clone(), entries(81, 100, 1)));
    assert_eq!(p.hard_state, HardState { term: 1, vote: Some(1), commit: 90 });
    drop(store);
    let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
    assert_eq!(store.load().unwrap(), p);
    // Installing a leader's snapshot drops the whole log.
    let installed = Snapshot {
        index: 500,
        term: 4,
        membership: Membership::new([1, 2]),
        data: vec![1; 1000],
        files: Vec::new(),
    };
    store.install_snapshot(&installed).unwrap();
    store.append(&entries(501, 502, 4)).unwrap();
    store.set_hard_state(HardState { term: 4, vote: None, commit: 500 }).unwrap();
    store.sync().unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("snap-"))
        .collect();
    assert_eq!(names, vec!["snap-00000000000000000500-00000000000000000004".to_string()]);
    drop(store);
    let store = FileStore::open(dir.path(), small(), &initial).unwrap();
    let p = store.load().unwrap();
    assert_eq!((p.snapshot, p.entries), (installed, entries(501, 502, 4)));
    assert_eq!(p.hard_state, HardState { term: 4, vote: None, commit: 500 });
}

/// A snapshot with files: gathered in the staging directory, moved beside
/// the log when stored, the previous one's deleted after the switch, and
/// checked (present, right size) on every open.
#[test]
fn snapshot_files_move_into_place_and_are_checked_on_open() {
    use strata_replication::storage::snapshot_files;
    let dir = tempfile::tempdir().unwrap();
    let initial = Persisted::bootstrap([1, 2, 3]);
    let mut store = FileStore::open(dir.path(), small(), &initial).unwrap();
    store.append(&entries(1, 30, 1)).unwrap();
    store.set_hard_state(HardState { term: 1, vote: Some(1), commit: 30 }).unwrap();
    store.sync().unwrap();

    let stage = |store: &FileStore, index: u64, contents: &[(&str, &[u8])]| {
        let staged = store.staging_dir(index, 1).unwrap();
        for (name, bytes) in contents {
            fs::write(staged.join(name), bytes).unwrap();
        }
        Snapshot {
            index,
            term: 1,
            membership: Membership::new([1, 2, 3]),
            data: b"meta".to_vec(),
            files: snapshot_files::describe(&staged).unwrap(),
        }
    };
    let first = stage(&store, 10, &[("000001.sst", b"table one"), ("CURRENT", b"M\n")]);
    assert_eq!(first.files.len(), 2);
    store.compact(&first).unwrap();
    let first_dir = store.snapshot_dir(10, 1);
    assert_eq!(fs::read(first_dir.join("000001.sst")).unwrap(), b"table one");
    assert!(!store.staged_path(10, 1).exists(), "moved, not copied");
    assert_eq!(store.load().unwrap().snapshot, first);

    let second = stage(&store, 20, &[("000009.sst", b"table nine")]);
    store.compact(&second).unwrap();
    assert!(!first_dir.exists(), "the previous snapshot's files go after the switch");
    snapshot_files::verify(&store.snapshot_dir(20, 1), &second.files, true).unwrap();
    // A leftover staging directory is garbage at the next open.
    store.staging_dir(25, 1).unwrap();
    drop(store);
    let store = FileStore::open(dir.path(), small(), &initial).unwrap();
    assert!(!store.staged_path(25, 1).exists());
    assert_eq!(store.load().unwrap().snapshot, second);

    // Storing a snapshot whose files were not gathered fails clearly.
    let mut store = store;
    let missing = Snapshot { index: 28, files: second.files.clone(), ..second.clone() };
    assert!(matches!(store.compact(&missing), Err(Error::CorruptFile { .. })));
    drop(store);

    // A listed file cut short or missing: the store refuses to open.
    let table = dir.path().join(format!("snap-{:020}-{:020}.d/000009.sst", 20, 1));
    fs::write(&table, b"table").unwrap();
    let e = FileStore::open(dir.path(), small(), &initial).unwrap_err();
    assert!(matches!(&e, Error::CorruptFile { path, .. } if *path == table), "{e}");
    fs::remove_file(&table).unwrap();
    assert!(matches!(
        FileStore::open(dir.path(), small(), &initial),
        Err(Error::CorruptFile { .. })
    ));
}
