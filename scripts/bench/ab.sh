#!/usr/bin/env bash
# One generator run against a fresh server: for before/after comparisons of two builds,
# run alternately (A B A B ...) so that both see the same machine.
#
#   scripts/bench/ab.sh SERVER_BINARY LABEL CASE SCENARIO-ARGS...
#   e.g. scripts/bench/ab.sh target/release/ssehub after fanout fanout -n 1000 --rate 1000 --duration-secs 2 --publishers 16
#
# The server runs with the demo clock off on 127.0.0.1:${AB_PORT:-3991}; the report goes
# to target/ab/LABEL-CASE.txt and a one-line summary to stdout. AB_SSE adds lines to the
# server's [sse] section, e.g. AB_SSE='history_path = "/tmp/h.redb"'.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin=$1 label=$2 case=$3
shift 3
port="${AB_PORT:-3991}"
out="$repo/target/ab"
mkdir -p "$out"
conf="$out/ssehub.toml"
printf '[server]\nshutdown_timeout_secs = 5\n[sse]\nmax_clients = 100000\n%s\n[demo]\nclock_secs = 0\n' "${AB_SSE:-}" > "$conf"
"$bin" --config "$conf" --bind "127.0.0.1:$port" > "$out/$label-$case.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$repo/target/release/ssehub-bench" --url "http://127.0.0.1:$port" --server-pid "$pid" \
    --timeout-secs 120 "$@" > "$out/$label-$case.txt" 2>&1 || true
kill -TERM "$pid"; wait "$pid" || true
trap - EXIT
echo "$label $case: $(grep -E 'rss_bytes_per_conn|wall_secs|per_sec |  cpu_secs  |rate_achieved|p99 |lost|all_heads_ms' "$out/$label-$case.txt" | tr -s ' ' | tr '\n' ';')"
