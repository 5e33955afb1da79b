//! Criterion micro-benchmarks of `strata-lsm`'s building blocks, through
//! `strata_lsm::internals` (not a stable API):
//!
//! - `memtable`: inserting 10,000 versions into an empty memtable; point gets
//!   in a memtable of 10,000 keys.
//! - `block`: encoding a 4 KiB data block; decoding all of it; seeking in it.
//! - `bloom`: building a filter over 10,000 keys; probing it for present and
//!   absent keys.
//!
//! Keys and values are those of `lsm-bench` (16-byte decimal keys, 100-byte
//! values). Run with `cargo bench -p strata-benches --bench lsm_micro`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use strata_benches::{KeyFormat, Rng, ValueGen};
use strata_lsm::ValueRef;
use strata_lsm::internals::{Block, BlockBuilder, BloomBuilder, MemTable, hash_key, may_contain};

const KEYS: u64 = 10_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
const BLOCK_BYTES: usize = 4096;
/// As in `strata-lsm`'s tables.
const RESTART_INTERVAL: usize = 16;
const BLOOM_BITS_PER_KEY: usize = 10;

/// `KEYS` sorted keys, each with a value.
fn entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let format = KeyFormat::new(KEY_BYTES, KEYS).expect("16 digits hold 10,000 keys");
    let mut values = ValueGen::new(1);
    (0..KEYS).map(|i| (format.key(i), values.next(VALUE_BYTES).to_vec())).collect()
}

/// Indexes `0..n` in a seeded random order.
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(7).shuffle(&mut order);
    order
}

fn memtable(c: &mut Criterion) {
    let entries = entries();
    let order = shuffled(entries.len());
    let mut group = c.benchmark_group("memtable");

    group.throughput(Throughput::Elements(KEYS));
    group.bench_function("insert_10k_random_order", |b| {
        b.iter_batched(
            || MemTable::new(None),
            |mem| {
                for (ts, &i) in order.iter().enumerate() {
                    let (key, value) = &entries[i];
                    mem.insert(key, ts as u64 + 1, ValueRef::Put(value));
                }
                mem
            },
            BatchSize::PerIteration,
        )
    });

    let mem = MemTable::new(None);
    for (key, value) in &entries {
        mem.insert(key, 1, ValueRef::Put(value));
    }
    group.throughput(Throughput::Elements(1));
    let mut next = order.iter().cycle();
    group.bench_function("get_in_10k", |b| {
        b.iter(|| {
            let key = &entries[*next.next().expect("cycle")].0;
            black_box(mem.get(black_box(key), u64::MAX))
        })
    });
    group.finish();
}

/// Encodes entries into one block until it reaches `BLOCK_BYTES`.
fn encode_block(builder: &mut BlockBuilder, entries: &[(Vec<u8>, Vec<u8>)], out: &mut Vec<u8>) {
    for (key, value) in entries {
        if builder.estimated_size() >= BLOCK_BYTES {
            break;
        }
        builder.add(key, 1, ValueRef::Put(value));
    }
    out.clear();
    builder.finish_into(out);
}

fn block(c: &mut Criterion) {
    let entries = entries();
    let mut builder = BlockBuilder::new(RESTART_INTERVAL);
    let mut bytes = Vec::new();
    encode_block(&mut builder, &entries, &mut bytes);
    let block = Block::parse(&bytes).expect("a block just built parses");
    let mut keys = Vec::new();
    let in_block = block.decode_all(&mut keys).expect("a block just built decodes").len();
    assert!(in_block > 1 && bytes.len() >= BLOCK_BYTES);

    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_4k", |b| {
        let mut out = Vec::with_capacity(2 * BLOCK_BYTES);
        b.iter(|| {
            encode_block(&mut builder, &entries, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode_all_4k", |b| {
        b.iter(|| {
            let block = Block::parse(black_box(&bytes)).expect("valid block");
            black_box(block.decode_all(&mut keys).expect("valid block").len())
        })
    });

    group.throughput(Throughput::Elements(1));
    let order = shuffled(in_block);
    let mut next = order.iter().cycle();
    let mut key = Vec::new();
    group.bench_function("seek_4k", |b| {
        b.iter(|| {
            let target = &entries[*next.next().expect("cycle")].0;
            let block = Block::parse(black_box(&bytes)).expect("valid block");
            black_box(block.seek(target, u64::MAX, &mut key).expect("valid block"))
        })
    });
    group.finish();
}

fn bloom(c: &mut Criterion) {
    let entries = entries();
    let mut group = c.benchmark_group("bloom");

    group.throughput(Throughput::Elements(KEYS));
    group.bench_function("build_10k", |b| {
        b.iter(|| {
            let mut builder = BloomBuilder::new();
            for (key, _) in &entries {
                builder.add_key(key);
            }
            black_box(builder.build(BLOOM_BITS_PER_KEY))
        })
    });

    // A filter over the even keys: probing odd keys asks about absent ones.
    let mut builder = BloomBuilder::new();
    for (key, _) in entries.iter().step_by(2) {
        builder.add_key(key);
    }
    let filter = builder.build(BLOOM_BITS_PER_KEY);
    let order = shuffled(entries.len() / 2);
    group.throughput(Throughput::Elements(1));
    for (name, parity) in [("probe_present", 0), ("probe_absent", 1)] {
        let mut next = order.iter().cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                let key = &entries[2 * *next.next().expect("cycle") + parity].0;
                black_box(may_contain(&filter, hash_key(black_box(key))))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, memtable, block, bloom);
criterion_main!(benches);
