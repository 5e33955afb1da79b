//! Write groups ([`Db::write_group`]): several batches with one WAL write and
//! one fsync, each batch still its own record, and the stages reported in
//! order: written, then durable, and visible only after both.

use strata_lsm::{Db, Durability, GroupStage, Options, WriteBatch};

fn batch(key: &[u8], ts: u64, value: &[u8]) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(key, ts, value);
    b
}

#[test]
fn a_group_shares_one_fsync_and_is_visible_only_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::small_for_tests()).unwrap();
        let mut two = batch(b"b", 11, b"vb");
        two.put(b"c", 11, b"vc");
        let group = [batch(b"a", 10, b"va"), WriteBatch::new(), two];
        let before = db.stats();
        let mut stages = Vec::new();
        db.write_group(&group, Durability::Sync, &mut |stage| {
            let syncs = db.stats().wal_syncs - before.wal_syncs;
            stages.push((stage, syncs, db.get(b"a", 20).unwrap()));
        })
        .unwrap();
        assert_eq!(
            stages,
            vec![(GroupStage::Written, 0, None), (GroupStage::Durable, 1, None)],
            "written before the fsync, durable after it, visible only after both"
        );
        let after = db.stats();
        assert_eq!(after.wal_syncs - before.wal_syncs, 1, "one fsync for the group");
        assert_eq!(after.batches_written - before.batches_written, 2, "the empty batch is skipped");
        for (key, value) in [(b"a", b"va"), (b"b", b"vb"), (b"c", b"vc")] {
            assert_eq!(db.get(key, 20).unwrap(), Some(value.to_vec()));
        }
    }
    let db = Db::open(dir.path(), Options::small_for_tests()).unwrap();
    assert_eq!(db.stats().wal_records_recovered, 2, "one WAL record per batch");
    assert_eq!(db.get(b"c", 11).unwrap(), Some(b"vc".to_vec()));
}

#[test]
fn an_empty_group_reports_both_stages_without_touching_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::small_for_tests()).unwrap();
    let mut stages = Vec::new();
    db.write_group(&[WriteBatch::new()], Durability::Sync, &mut |s| stages.push(s)).unwrap();
    db.write_group(&[], Durability::Sync, &mut |s| stages.push(s)).unwrap();
    use GroupStage::{Durable, Written};
    assert_eq!(stages, vec![Written, Durable, Written, Durable]);
    assert_eq!(db.stats().wal_syncs, 0);
}
