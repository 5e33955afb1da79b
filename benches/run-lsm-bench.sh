#!/usr/bin/env bash
# Benchmarks Strata's LSM engine against RocksDB with lsm-bench (--engine both).
#
#   benches/run-lsm-bench.sh --num 1000000 --benchmarks fillrandom,readrandom
#
# Arguments go to lsm-bench (see `lsm-bench --help`); --engine is fixed to both.
# The rocksdb feature compiles RocksDB from source: about 16 minutes of both
# cores the first time. Its bindings are generated with libclang, which this
# script installs (with clang, which also compiles RocksDB) when it is absent.
set -euo pipefail

cd "$(dirname "$0")/.."

have_libclang() {
    if [[ -n "${LIBCLANG_PATH:-}" ]]; then
        return 0
    fi
    if ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'; then
        return 0
    fi
    compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}

if ! have_libclang; then
    echo "libclang not found; installing libclang-dev and clang for librocksdb-sys" >&2
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then
        sudo="sudo"
    fi
    # The package lists may be missing or stale: refresh them only if needed.
    if ! $sudo apt-get install -y libclang-dev clang; then
        $sudo apt-get update
        $sudo apt-get install -y libclang-dev clang
    fi
fi

exec cargo run --release -p strata-benches --features rocksdb --bin lsm-bench -- \
    --engine both "$@"
