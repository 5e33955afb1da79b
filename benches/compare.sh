#!/usr/bin/env bash
# Runs YCSB A, B, C, E, F and TPC-C with identical parameters and the same
# SQL text against embedded Strata (key-value and SQL), Strata's server
# (`strata start`, over the PostgreSQL protocol with the same client code as
# PostgreSQL), SQLite and a private PostgreSQL; then `bench-report` writes
# the tables (with the ratios server / PostgreSQL and embedded Strata /
# SQLite, the command and the date) between the `<!-- compare:begin -->` and
# `<!-- compare:end -->` markers of BENCHMARKS.md and draws the charts into
# docs/bench/.
#
#   benches/compare.sh            # full size, about 30 minutes on 2 cores (estimated)
#   benches/compare.sh --quick    # small size, about 7 minutes
#   benches/compare.sh --no-doc   # leave BENCHMARKS.md and docs/bench alone
#
# Sizes (both: all targets at --durability sync, zipfian requests):
#   full:   YCSB 100,000 records of 10 x 100 B, 8 threads, 30 s after 5 s
#           warm-up; TPC-C 2 warehouses at full scale (100,000 items, 3,000
#           customers per district), 8 terminals, 60 s after 10 s warm-up.
#   quick:  YCSB 10,000 records, 4 threads, 5 s after 1 s; TPC-C 1
#           warehouse scaled down to 10,000 items and 300 customers per
#           district, 4 terminals, 15 s after 2 s.
#
# PostgreSQL: installed with apt-get when no server binaries are found;
# started on 127.0.0.1:$PG_PORT (default 54329, or the next free port) with a throw-away data
# directory and trust authentication, stopped and erased on exit. It keeps
# its defaults for durability (fsync=on, synchronous_commit=on), matching
# the drivers' default `--durability sync` for every target. The charts'
# font (DejaVu Sans, fonts-dejavu-core) is installed with apt-get if absent.
#
# Raw results, one JSON object per run: $OUT/results.jsonl (default
# target/compare); the section alone: $OUT/summary.md. To redo the tables
# and charts from saved results:
#   cargo run --release -p strata-benches --bin bench-report -- \
#       --results $OUT/results.jsonl --markdown BENCHMARKS.md --charts docs/bench
set -euo pipefail

QUICK=0
DOC=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-doc) DOC=0 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/target/compare}"
PG_PORT="${PG_PORT:-54329}"
mkdir -p "$OUT"
: > "$OUT/results.jsonl"

if [ "$QUICK" = 1 ]; then
    RECORDS=10000; DURATION=5s; WARMUP=1s; THREADS=4
    TPCC_ARGS=(--warehouses 1 --terminals 4 --items 10000 --customers 300 --duration 15s --warmup 2s)
else
    RECORDS=100000; DURATION=30s; WARMUP=5s; THREADS=8
    TPCC_ARGS=(--warehouses 2 --terminals 8 --duration 60s --warmup 10s)
fi

# --- PostgreSQL ---------------------------------------------------------
pg_bin() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}
PG_BIN="$(pg_bin)"
if [ -z "$PG_BIN" ]; then
    echo "installing PostgreSQL (apt-get)..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN="$(pg_bin)"
fi
[ -n "$PG_BIN" ] || { echo "no PostgreSQL server binaries found" >&2; exit 1; }

# The first free port from $PG_PORT on (something else may listen there).
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while port_busy "$PG_PORT"; do PG_PORT=$((PG_PORT + 1)); done

PG_DATA="$(mktemp -d /tmp/strata-compare-pg.XXXXXX)"
# The server refuses to run as root: run it as the package's postgres user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DATA"; fi
cleanup() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$PG_DATA"
}
trap cleanup EXIT
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DATA -c max_connections=200" >/dev/null
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
PG_VERSION="$("$PG_BIN/postgres" --version)"

# The charts' font.
FONT="${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}"
if [ "$DOC" = 1 ] && [ ! -f "$FONT" ]; then
    echo "installing fonts-dejavu-core (apt-get) for the charts..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null
    [ -f "$FONT" ] || { echo "no chart font at $FONT" >&2; exit 1; }
fi

# --- Build and run -------------------------------------------------------
cargo build --release -p strata-benches --bin ycsb --bin tpcc --bin bench-report
cargo build --release -p strata-cli --bin strata
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

# Strata's server on the next free port, with a throw-away data directory.
STRATA_PORT=$((PG_PORT + 1))
while port_busy "$STRATA_PORT"; do STRATA_PORT=$((STRATA_PORT + 1)); done
STRATA_DATA="$(mktemp -d /tmp/strata-compare-server.XXXXXX)"
"$BIN/strata" start --data "$STRATA_DATA" --listen "127.0.0.1:$STRATA_PORT" \
    --max-connections 200 > "$STRATA_DATA.log" 2>&1 &
STRATA_PID=$!
cleanup_all() {
    kill -TERM "$STRATA_PID" 2>/dev/null || true
    wait "$STRATA_PID" 2>/dev/null || true
    rm -rf "$STRATA_DATA" "$STRATA_DATA.log"
    cleanup
}
trap cleanup_all EXIT
for _ in $(seq 100); do port_busy "$STRATA_PORT" && break; sleep 0.1; done
STRATA_URL="postgres://strata@127.0.0.1:$STRATA_PORT/strata"

for w in a b c e f; do
    for target in strata strata-sql "$STRATA_URL" sqlite "$PG_URL"; do
        echo "ycsb $w on ${target%%@*}..." >&2
        "$BIN/ycsb" --target "$target" --workload "$w" --records "$RECORDS" \
            --duration "$DURATION" --warmup "$WARMUP" --threads "$THREADS" --json \
            >> "$OUT/results.jsonl"
    done
done
for target in strata-sql "$STRATA_URL" sqlite "$PG_URL"; do
    echo "tpcc on ${target%%@*}..." >&2
    "$BIN/tpcc" --target "$target" "${TPCC_ARGS[@]}" --json >> "$OUT/results.jsonl"
done

# --- Tables and charts ---------------------------------------------------
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- 2>/dev/null; then COMMIT="$COMMIT (with uncommitted changes)"; fi
COMMAND="benches/compare.sh${*:+ $*}"
REPORT=("$BIN/bench-report" --results "$OUT/results.jsonl" --summary "$OUT/summary.md"
    --command "$COMMAND" --commit "$COMMIT" --font "$FONT"
    --note "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $PG_VERSION.")
if [ "$DOC" = 1 ]; then
    REPORT+=(--markdown BENCHMARKS.md --charts docs/bench --chart-url docs/bench)
fi
"${REPORT[@]}"
cat "$OUT/summary.md"
