//! `strata-benches`: shared pieces of Strata's benchmark drivers.
//!
//! The `lsm-bench` binary is a `db_bench`-like driver that runs the same
//! workloads against Strata's storage engine and (with the `rocksdb` feature)
//! against RocksDB configured alike; `txn-bench` measures `strata-txn`'s
//! commit throughput and its behaviour under contention; `ycsb` and `tpcc`
//! run the YCSB core workloads and TPC-C against embedded Strata, SQLite and
//! PostgreSQL with the same client code. The drivers live here as library
//! modules so that the smoke tests (`tests/smoke.rs`) call them directly:
//!
//! - [`ycsb`]: YCSB workloads A to F, key choice and the run loop.
//! - [`tpcc`]: TPC-C's schema, loader, five transactions and consistency
//!   checks.
//! - [`sqldb`]: one SQL client interface ([`sqldb::SqlConn`]) over embedded
//!   Strata, SQLite and PostgreSQL, with comparable durability settings.
//! - [`driver`]: durations, seeds, the retry loop that counts aborts, JSON.
//! - [`report`]: `bench-report`, which turns the drivers' JSON lines into the
//!   comparison tables of `BENCHMARKS.md` and PNG charts (`compare.sh` runs it).
//!
//! - [`histogram`]: a dependency-free latency histogram with about 1.6%
//!   relative precision, for p50/p99 figures.
//! - [`workload`]: a seeded PRNG, `db_bench`-style keys (zero-padded decimal, so
//!   key order is index order) and compressible values.
//! - [`zipfian`]: YCSB's zipfian generator (Gray et al.), for skewed key
//!   choice.
//! - [`engine`]: the [`Engine`] trait the drivers are written against, with a
//!   Strata implementation and, behind the `rocksdb` feature, a RocksDB one.
//!
//! Nothing here measures anything by itself: drivers time the calls and feed
//! the histogram.

pub mod driver;
pub mod engine;
pub mod histogram;
pub mod report;
pub mod sqldb;
pub mod tpcc;
pub mod workload;
pub mod ycsb;
pub mod zipfian;

pub use engine::{Batch, Engine, EngineConfig, EngineScan, StrataEngine, WriteCounters};
pub use histogram::Histogram;
pub use workload::{KeyFormat, Rng, ValueGen};
pub use zipfian::Zipfian;
