//! Criterion micro-benchmarks of what a transaction costs in `strata-txn`:
//!
//! - `read_one_key/engine_get`: `strata_lsm::Db::get` of an existing key,
//!   straight on the engine.
//! - `read_one_key/txn_read_only`: `begin_read_only`, the same `get`, `commit`,
//!   on a `Store` over that very engine (so over the same data). The
//!   difference from `engine_get` is the price of the transaction: taking and
//!   releasing a snapshot, the age check, the outcome counter.
//! - `rw_one_key/buffered`: `begin`, `get`, `put`, `commit` of one key with
//!   `Durability::Buffered`: validation, timestamp, WAL write (to the OS, no
//!   fsync) and memtable insert; the transaction path without the disk.
//! - `rw_one_key/sync`: the same with `Durability::Sync`, one committer, so
//!   one fsync per commit: what a lone client waits for.
//!
//! Each store starts with 10,000 keys of 16 bytes with 100-byte values
//! (those of `lsm-bench`), all in the memtable; keys are visited in a seeded
//! random order. The read-write benchmarks add a version per iteration, so
//! their memtable grows (and is flushed in the background) as they run, as
//! it would under an update-heavy load. Run with
//! `cargo bench -p strata-benches --bench txn_micro`; commit throughput with
//! many committers is `txn-bench`'s job (criterion times one thread).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_benches::{KeyFormat, Rng, ValueGen};
use strata_lsm::{Durability, MAX_TS};
use strata_txn::{Hlc, LocalShard, Store, TxnOptions};

const KEYS: u64 = 10_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
/// Keys per loading transaction.
const LOAD_CHUNK: usize = 1_000;

/// The benchmark's keys, in a seeded random order.
fn keys_in_random_order() -> Vec<Vec<u8>> {
    let format = KeyFormat::new(KEY_BYTES, KEYS).expect("16 digits hold 10,000 keys");
    let mut keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format.key(i)).collect();
    Rng::new(7).shuffle(&mut keys);
    keys
}

/// Writes every key with a value, in transactions of `LOAD_CHUNK` keys.
fn load(store: &Store, keys: &[Vec<u8>]) {
    let mut values = ValueGen::new(1);
    for chunk in keys.chunks(LOAD_CHUNK) {
        let mut txn = store.begin();
        for key in chunk {
            txn.put(key, values.next(VALUE_BYTES)).expect("a small write set");
        }
        txn.commit().expect("no concurrent writer to conflict with");
    }
}

fn options(durability: Durability) -> TxnOptions {
    TxnOptions { durability, ..TxnOptions::default() }
}

/// A store and its engine, to read the same data with and without a
/// transaction. Built as `Store::open` builds it, except that the clock's
/// high-water mark stays in memory (reads never persist it).
fn store_with_engine(path: &Path) -> (Store, Arc<LocalShard>) {
    let opts = options(Durability::Buffered);
    let db = strata_lsm::Db::open(path, opts.engine.clone()).expect("open the engine");
    let hlc = Arc::new(Hlc::system_volatile(opts.max_clock_offset_ms));
    let shard =
        Arc::new(LocalShard::new(db, hlc.clone(), opts.durability, opts.max_conflict_entries));
    let store = Store::with_shard(shard.clone(), hlc, opts);
    (store, shard)
}

fn read_one_key(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, shard) = store_with_engine(dir.path());
    let keys = keys_in_random_order();
    load(&store, &keys);

    let mut group = c.benchmark_group("read_one_key");
    group.throughput(Throughput::Elements(1));
    let engine = shard.engine();
    let mut next = keys.iter().cycle();
    group.bench_function("engine_get", |b| {
        b.iter(|| {
            let key = next.next().expect("cycle");
            black_box(engine.get(black_box(key), MAX_TS).expect("a read in memory"))
        })
    });
    let mut next = keys.iter().cycle();
    group.bench_function("txn_read_only", |b| {
        b.iter(|| {
            let key = next.next().expect("cycle");
            let mut txn = store.begin_read_only();
            let value = txn.get(black_box(key)).expect("a read in memory");
            txn.commit().expect("a read-only commit cannot fail");
            black_box(value)
        })
    });
    group.finish();
}

fn rw_one_key(c: &mut Criterion) {
    let keys = keys_in_random_order();
    let mut group = c.benchmark_group("rw_one_key");
    group.throughput(Throughput::Elements(1));
    for (name, durability) in [("buffered", Durability::Buffered), ("sync", Durability::Sync)] {
        if durability == Durability::Sync {
            // An fsync per iteration: 100 samples would take far longer
            // than the measurement time.
            group.sample_size(20);
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(dir.path(), options(durability)).expect("open the store");
        load(&store, &keys);
        let mut values = ValueGen::new(2);
        let mut next = keys.iter().cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                let key = next.next().expect("cycle");
                let mut txn = store.begin();
                black_box(txn.get(key).expect("a read in memory"));
                txn.put(key, values.next(VALUE_BYTES)).expect("a one-key write set");
                txn.commit().expect("a single writer never conflicts")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, read_one_key, rw_one_key);
criterion_main!(benches);
