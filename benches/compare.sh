#!/usr/bin/env bash
# Runs YCSB A, B, C, E, F and TPC-C with identical parameters against
# embedded Strata (key-value and SQL), Strata's server (`strata start`, over
# the PostgreSQL protocol with the same client code as PostgreSQL), SQLite
# and a private PostgreSQL, and prints Markdown tables of the results with
# ratios to PostgreSQL.
#
#   benches/compare.sh            # standard size (about 15 minutes)
#   benches/compare.sh --quick    # small size (a few minutes)
#
# PostgreSQL: installed with apt-get when no server binaries are found;
# started on 127.0.0.1:$PG_PORT (default 54329, or the next free port) with a throw-away data
# directory and trust authentication, stopped and erased on exit. It keeps
# its defaults for durability (fsync=on, synchronous_commit=on), matching
# the drivers' default `--durability sync` for every target.
#
# Raw results, one JSON object per run: $OUT/results.jsonl (default
# target/compare); the tables: $OUT/summary.md.
set -euo pipefail

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
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

# --- Build and run -------------------------------------------------------
cargo build --release -p strata-benches --bin ycsb --bin tpcc
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

# --- Tables ---------------------------------------------------------------
{
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $PG_VERSION"
    echo "YCSB: $RECORDS records, $THREADS threads, $DURATION after $WARMUP warm-up;"
    echo "TPC-C: ${TPCC_ARGS[*]}; durability sync everywhere"
    echo
    python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def name(t):
    if t.startswith("postgres://strata@"):
        return "strata-server"
    return "postgresql" if t.startswith("postgres") else t
ycsb = [r for r in runs if "workload" in r]
tpcc = [r for r in runs if "tpmc" in r]
targets = ["strata", "strata-sql", "strata-server", "sqlite", "postgresql"]
print("| YCSB | " + " | ".join(f"{t} ops/s" for t in targets) + " | server/pg | strata/sqlite |")
print("|---" * (len(targets) + 3) + "|")
for w in "abcef":
    by = {name(r["target"]): r for r in ycsb if r["workload"] == w}
    cells = [f'{by[t]["ops_per_sec"]:,.0f}' if t in by else "-" for t in targets]
    def ratio(a, b):
        return f'{by[a]["ops_per_sec"] / by[b]["ops_per_sec"]:.2f}' if a in by and b in by else "-"
    print(f"| {w.upper()} | " + " | ".join(cells) + f' | {ratio("strata-server", "postgresql")} | {ratio("strata", "sqlite")} |')
print()
print("| YCSB p99 (us), per operation | " + " | ".join(targets) + " |")
print("|---" * (len(targets) + 1) + "|")
for w in "abcef":
    by = {name(r["target"]): r for r in ycsb if r["workload"] == w}
    ops = sorted({op for r in by.values() for op in r["ops"]})
    for op in ops:
        cells = [f'{by[t]["ops"][op]["p99_us"]:,.0f}' if t in by and op in by[t]["ops"] else "-" for t in targets]
        print(f"| {w.upper()} {op} | " + " | ".join(cells) + " |")
print()
print("| TPC-C | tpmC | New-Order p99 ms | Payment p99 ms | aborts (NO/P/D) | consistency |")
print("|---|---|---|---|---|---|")
for r in tpcc:
    t = r["txns"]
    aborts = f'{t["new_order"]["aborts"]}/{t["payment"]["aborts"]}/{t["delivery"]["aborts"]}'
    print(f'| {name(r["target"])} | {r["tpmc"]:,.0f} | {t["new_order"]["p99_ms"]:.1f} | '
          f'{t["payment"]["p99_ms"]:.1f} | {aborts} | {r["consistency"] if isinstance(r["consistency"], str) else "VIOLATED"} |')
PY
} | tee "$OUT/summary.md"
