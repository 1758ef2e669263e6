#!/usr/bin/env bash
# Cluster mode (SPEC §10) beside one node: fan-out with the subscribers split over two
# nodes and the publisher on one, and what Redis adds to publish→receive latency.
#
#   scripts/bench/cluster.sh [RESULTS_DIR]
#
# Starts its own redis-server on 127.0.0.1:${REDIS_PORT:-6399} (appendonly, fsync every
# second, as README recommends), emptied before every run, and fresh ssehub nodes on
# 127.0.0.1:3981 and 3982 for every run. Each case runs REPEAT times (default 3), the
# layouts alternated so that all see the same machine:
#   memory    one node, in memory (no Redis): the baseline
#   redis-1   one node on Redis: subscribers and publisher on it
#   redis-2   two nodes on Redis: subscribers split over both, publisher on node 1
# Cases: fanout (1,000 subscribers × 1,000 events/s, 3 s, 16 publishers) and latency
# (1,000 × 20 events/s, 10 s). RESULTS_DIR (default target/bench-cluster/<date-time>)
# gets each run's report (.txt) and server logs; a summary goes to stdout.
#
# Needs the release binaries (cargo build --release -p ssehub -p ssehub-bench) and
# Debian's redis-server. Takes about 3 minutes. Everything runs on this machine: with
# two cores, two nodes, Redis and the generator share them.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
ssehub=target/release/ssehub
bench=target/release/ssehub-bench
results="${1:-target/bench-cluster/$(date +%Y%m%d-%H%M%S)}"
redis_port="${REDIS_PORT:-6399}"
repeat="${REPEAT:-3}"
ports=(3981 3982)
mkdir -p "$results"
for bin in "$ssehub" "$bench"; do
    [ -x "$bin" ] || { echo "$bin not found: cargo build --release -p ssehub -p ssehub-bench" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 2; }

redis_dir=$(mktemp -d)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save "" \
    --appendonly yes --appendfsync everysec --daemonize yes --logfile "$redis_dir/redis.log"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$redis_dir"
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_nodes LAYOUT LOG-PREFIX: the nodes of LAYOUT, ready; their pids in `pids`.
start_nodes() {
    local layout=$1 prefix=$2 n=1 redis_url=""
    case $layout in
        memory) ;;
        redis-1) redis_url="redis://127.0.0.1:$redis_port" ;;
        redis-2) redis_url="redis://127.0.0.1:$redis_port"; n=2 ;;
    esac
    redis-cli -p "$redis_port" flushall >/dev/null
    pids=()
    # Written once, before any node starts: a node reading it while it is rewritten
    # would start with an empty config.
    local conf="$results/$layout.toml"
    printf '[server]\nshutdown_timeout_secs = 5\n[sse]\nmax_clients = 100000\n[demo]\nclock_secs = 0\n[cluster]\nredis_url = "%s"\n' \
        "$redis_url" > "$conf"
    for i in $(seq 0 $((n - 1))); do
        "$ssehub" --config "$conf" --bind "127.0.0.1:${ports[$i]}" > "$prefix.node$i.log" 2>&1 &
        pids+=($!)
    done
    for i in $(seq 0 $((n - 1))); do
        for _ in $(seq 100); do
            [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ports[$i]}/readyz")" = 200 ] && break
            sleep 0.1
        done
        if [ -n "$redis_url" ] && ! curl -s "http://127.0.0.1:${ports[$i]}/stats" | grep -q '"node"'; then
            echo "node $i of $layout is not in cluster mode (see $prefix.node$i.log)" >&2
            exit 1
        fi
    done
}

stop_nodes() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

# run LAYOUT CASE RUN SCENARIO-ARGS...
run() {
    local layout=$1 case=$2 run=$3
    shift 3
    local base="$results/$case.$layout.$run"
    start_nodes "$layout" "$base"
    local args=(--url "http://127.0.0.1:${ports[0]}" --timeout-secs 120)
    for i in "${!pids[@]}"; do
        args+=(--sub-url "http://127.0.0.1:${ports[$i]}" --server-pid "${pids[$i]}")
    done
    "$bench" "${args[@]}" "$@" > "$base.txt" 2>&1 || echo "$case $layout $run: ssehub-bench failed (see $base.txt)"
    stop_nodes
    printf '%-8s %-8s run %s: %s\n' "$case" "$layout" "$run" \
        "$(awk '$1=="received"||$1=="lost"||$1=="per_sec"||$1=="p50"||$1=="p99"||$1=="cpu_secs"&&!g {printf "%s=%s ", $1, $2} $1=="generator"{g=1}' "$base.txt")"
}

for run_number in $(seq "$repeat"); do
    for layout in memory redis-1 redis-2; do
        run "$layout" fanout "$run_number" fanout -n 1000 --rate 1000 --duration-secs 3 --publishers 16
        run "$layout" latency "$run_number" fanout -n 1000 --rate 20 --duration-secs 10
    done
done | tee "$results/summary.txt"
