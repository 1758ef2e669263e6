#!/usr/bin/env bash
# Runs every benchmark scenario against ssehub and against Nginx + Nchan (and, if asked,
# the two reference peers), in one run, each scenario against a freshly started server,
# and summarises the results.
#
#   scripts/bench/compare.sh [RESULTS_DIR]
#
# RESULTS_DIR (default target/bench-results/<date-time>) receives, per case and server,
# <case>.<target>.json (the generator's report), .txt (its table) and .log (the
# server's log); commands.txt (every command exactly as run), machine.txt, load.txt
# (load average before each step: other work on the box disturbs the figures),
# failures.txt (steps that failed, if any), and summary.md + latency.svg +
# throughput.svg from `ssehub-bench report`. To put the charts in the repo:
#   target/release/ssehub-bench report RESULTS_DIR --svg-dir docs/bench
#
# Needs the release binaries (cargo build --release -p ssehub -p ssehub-bench), and
# Debian's nginx-light + libnginx-mod-nchan. Takes about 7 minutes on 2 cores.
#
# Environment: CASES="fanout-1000x20 sweep-1000 ..." runs only those cases;
# TARGETS picks the servers, each case runs against them in this order:
#   ssehub      target/release/ssehub, with the config below
#   nchan       Nginx + Nchan (scripts/bench/run-nchan.sh)
#   tokio-peer  target/release/peer-tokio: a bare tokio broadcaster, no framework (the
#               floor of the machine)
#   actix-peer  target/release/peer-actix: a bare actix-web streaming endpoint (the
#               floor of the framework ssehub is built on)
# Default "ssehub nchan": the peers would double a full run's time, and the targets are
# ssehub against Nchan; add them for a case or two, e.g.
#   TARGETS="ssehub tokio-peer actix-peer" CASES="idle-5000 connect-10000" compare.sh DIR
# Without nchan, Nginx is not needed (as for a before/after of one change).
# SSEHUB_PORT (default 3990), NCHAN_PORT (8990), TOKIO_PEER_PORT (3992) and
# ACTIX_PEER_PORT (3993) pick the ports on 127.0.0.1; the peers run with their default
# worker count (cores − 1, at least 1, as ssehub).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

ssehub_bin=target/release/ssehub
bench_bin=target/release/ssehub-bench
peer_tokio_bin=target/release/peer-tokio
peer_actix_bin=target/release/peer-actix
nchan_sh=scripts/bench/run-nchan.sh
nginx_bin="${NGINX:-/usr/sbin/nginx}"
nchan_module=/usr/lib/nginx/modules/ngx_nchan_module.so
ssehub_port="${SSEHUB_PORT:-3990}"
nchan_port="${NCHAN_PORT:-8990}"
tokio_peer_port="${TOKIO_PEER_PORT:-3992}"
actix_peer_port="${ACTIX_PEER_PORT:-3993}"
results="${1:-target/bench-results/$(date +%Y%m%d-%H%M%S)}"
targets="${TARGETS:-ssehub nchan}"

# Upper bound of one generator run; the generator abandons its run itself at
# BENCH_TIMEOUT and is killed GRACE seconds later if it has not gone by then.
BENCH_TIMEOUT=120
GRACE=15
# Longest wait for a server to exit after SIGTERM before it is killed.
STOP_WAIT_SECS=15

die() { echo "compare.sh: $*" >&2; exit 2; }

# Every target compare.sh knows, in the order each case runs them.
all_targets="ssehub nchan tokio-peer actix-peer"
wants() { case " $targets " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for target in $targets; do
    case " $all_targets " in *" $target "*) ;; *) die "unknown target $target in TARGETS (known: $all_targets)" ;; esac
done

# port_of TARGET: where TARGET listens on 127.0.0.1.
port_of() {
    case $1 in
        ssehub) echo "$ssehub_port" ;;
        nchan) echo "$nchan_port" ;;
        tokio-peer) echo "$tokio_peer_port" ;;
        actix-peer) echo "$actix_peer_port" ;;
    esac
}

if wants nchan; then
    [ -x "$nginx_bin" ] || die "$nginx_bin not found: apt-get install nginx-light libnginx-mod-nchan"
    [ -f "$nchan_module" ] || die "$nchan_module not found: apt-get install libnginx-mod-nchan"
fi
needed=("$bench_bin")
wants ssehub && needed+=("$ssehub_bin")
wants tokio-peer && needed+=("$peer_tokio_bin")
wants actix-peer && needed+=("$peer_actix_bin")
for bin in "${needed[@]}"; do
    [ -x "$bin" ] || die "$bin not found: cargo build --release -p ssehub -p ssehub-bench"
done
for target in $targets; do
    port=$(port_of "$target")
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is already in use (set SSEHUB_PORT / NCHAN_PORT / TOKIO_PEER_PORT / ACTIX_PEER_PORT)"
    fi
done

mkdir -p "$results"
results="$(cd "$results" && pwd)"
: > "$results/commands.txt"
: > "$results/load.txt"
rm -f "$results/failures.txt"

# ssehub's config: the demo clock off (it would publish into the measurements), the
# default client_buffer (256), room for every connection of the run.
ssehub_conf="$results/ssehub.toml"
cat > "$ssehub_conf" <<'EOF'
[server]
shutdown_timeout_secs = 5

[sse]
client_buffer = 256
max_clients = 100000

[demo]
clock_secs = 0
EOF

# What runs now, for the trap: the generator, a server started here (ssehub or a
# peer) and its target name, an Nchan prefix.
bench_pid=""
server_pid=""
server_name=""
nchan_prefix=""
nchan_pid=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [ -n "$bench_pid" ] && kill -TERM "$bench_pid" 2>/dev/null
    [ -n "$server_pid" ] && stop_server
    [ -n "$nchan_prefix" ] && stop_nchan
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note() { printf '%s\n' "$*" >> "$results/commands.txt"; }

machine_facts() {
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "nproc: $(nproc)"
        grep -m1 'model name' /proc/cpuinfo || true
        echo "kernel: $(uname -r)"
        echo "rustc: $(rustc -V 2>/dev/null || echo unknown)"
        wants nchan && echo "nginx: $("$nginx_bin" -v 2>&1)"
        dpkg-query -W nginx-light libnginx-mod-nchan 2>/dev/null || true
        echo "ssehub commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
            "(uncommitted changes: $(git status --porcelain -- src 2>/dev/null | wc -l) files in src/," \
            "$(git status --porcelain -- bench scripts/bench 2>/dev/null | wc -l) in bench/ and scripts/bench/)"
        echo "open files limit (soft/hard): $(ulimit -Sn)/$(ulimit -Hn)"
        sysctl net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.core.somaxconn 2>/dev/null || true
        echo
        free -m
        if wants nchan; then echo; "$nginx_bin" -V 2>&1; fi
    } > "$results/machine.txt"
}

# Waits up to 5 s until 127.0.0.1:$1 accepts connections.
wait_port() {
    local i
    for i in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_server TARGET LOG: ssehub or a peer, on its port, its output to LOG.
start_server() {
    local target=$1 log=$2 port cmd
    port=$(port_of "$target")
    case $target in
        ssehub) cmd=("$ssehub_bin" --config "$ssehub_conf" --bind "127.0.0.1:$port") ;;
        tokio-peer) cmd=("$peer_tokio_bin" --bind "127.0.0.1:$port") ;;
        actix-peer) cmd=("$peer_actix_bin" --bind "127.0.0.1:$port") ;;
    esac
    note "${cmd[*]}"
    "${cmd[@]}" > "$log" 2>&1 &
    server_pid=$! server_name=$target
    wait_port "$port" || { cat "$log" >&2; return 1; }
}

# SIGTERM, then up to STOP_WAIT_SECS for a clean exit, then SIGKILL.
stop_server() {
    local pid=$server_pid name=$server_name i status=0
    server_pid=""
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq $((STOP_WAIT_SECS * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "$name (pid $pid) ignored SIGTERM for ${STOP_WAIT_SECS}s: killed" >> "$results/failures.txt"
    fi
    wait "$pid" 2>/dev/null || status=$?
    [ "$status" = 0 ] || echo "$name (pid $pid) exited with status $status" >> "$results/failures.txt"
}

start_nchan() {
    local line
    note "$nchan_sh start $nchan_port"
    line=$(timeout 20 "$nchan_sh" start "$nchan_port") || return 1
    nchan_prefix=$(sed -n 's/.*PREFIX=\([^ ]*\).*/\1/p' <<< "$line")
    nchan_pid=$(sed -n 's/.*WORKER_PID=\([0-9]*\).*/\1/p' <<< "$line")
    [ -n "$nchan_prefix" ] && [ -n "$nchan_pid" ]
}

stop_nchan() {
    local prefix=$nchan_prefix
    nchan_prefix=""
    timeout 20 "$nchan_sh" stop "$prefix" || echo "stopping nchan in $prefix failed" >> "$results/failures.txt"
}

# run_case CASE TARGET SCENARIO-ARGS...: a fresh server, one generator run, stop.
run_case() {
    local case=$1 target=$2
    shift 2
    local base="$results/$case.$target" pid url
    printf '%s %-18s %-7s load %s\n' "$(date +%T)" "$case" "$target" "$(cut -d' ' -f1-3 /proc/loadavg)" \
        | tee -a "$results/load.txt"
    note ""
    note "# $case, $target"
    url="http://127.0.0.1:$(port_of "$target")"
    if [ "$target" = nchan ]; then
        start_nchan || { echo "$case $target: nchan did not start" >> "$results/failures.txt"; return 0; }
        pid=$nchan_pid
    else
        start_server "$target" "$base.log" || { echo "$case $target: $target did not start" >> "$results/failures.txt"; return 0; }
        pid=$server_pid
    fi
    local cmd=("$bench_bin" --target "$target" --url "$url" --server-pid "$pid"
        --timeout-secs "$BENCH_TIMEOUT" --json "$base.json" "$@")
    note "${cmd[*]}"
    rm -f "$base.json"
    timeout -k 5 $((BENCH_TIMEOUT + GRACE)) "${cmd[@]}" > "$base.txt" 2>&1 &
    bench_pid=$!
    local status=0
    wait "$bench_pid" || status=$?
    bench_pid=""
    [ "$status" = 0 ] || echo "$case $target: ssehub-bench exited with status $status (see $case.$target.txt)" >> "$results/failures.txt"
    if [ "$target" = nchan ]; then
        cp "$nchan_prefix/logs/error.log" "$base.log" 2>/dev/null || true
        stop_nchan
    else
        stop_server
    fi
}

# case_both CASE SCENARIO-ARGS...: the case against ssehub, then Nchan (then the peers,
# if TARGETS has them).
case_both() {
    local case=$1
    if [ -n "${CASES:-}" ]; then
        case " $CASES " in *" $case "*) ;; *) return 0 ;; esac
    fi
    local target
    for target in $all_targets; do
        wants "$target" && run_case "$case" "$target" "${@:2}"
    done
    return 0
}

machine_facts
note "# compare.sh run, $(date -u +%Y-%m-%dT%H:%M:%SZ), in $repo"

case_both fanout-1000x20 fanout -n 1000 --rate 20 --duration-secs 5
case_both fanout-1000x1000 fanout -n 1000 --rate 1000 --duration-secs 2 --publishers 16
case_both broadcast-19000 fanout -n 19000 --rate 1 --events 3 --publishers 1
# Past one core's worth of fan-out, and many subscribers at a moderate pace.
case_both fanout-1000x2000 fanout -n 1000 --rate 2000 --duration-secs 2 --publishers 32
case_both fanout-10000x50 fanout -n 10000 --rate 50 --duration-secs 4
case_both idle-5000 idle -n 5000
case_both connect-10000 connect -n 10000
# 4 KiB events at 80/s for 15 s: 1,200 events, ~5 MB per stalled subscriber. A
# stalled socket with a 4 KiB receive buffer still lets the server's kernel buffer
# ~3-4 MB; past that, ssehub's queue (256 events) fills and it must drop them. The
# healthy ones read ~4.5 GB in all, ~14 s of generator CPU: with one generator thread
# the generator, not the server, would set their latency, hence two.
slow_load=(--rate 80 --duration-secs 15 --publishers 8 --pad-bytes 4096 --threads 2)
case_both slow-stalled slow -n 1000 --stalled 100 --stalled-rcvbuf 4096 "${slow_load[@]}"
case_both slow-baseline slow -n 900 --stalled 0 "${slow_load[@]}"
case_both churn-100000 churn --cycles 100000 --warmup-cycles 10000
case_both publish publish --events 20000 --publishers 8
for n in 100 1000 5000 10000 19000; do
    case_both "sweep-$n" fanout -n "$n" --rate 20 --duration-secs 3
done

note ""
note "$bench_bin report $results --svg-dir $results"
"$bench_bin" report "$results" --svg-dir "$results" > "$results/summary.md"
echo "results in $results (summary.md)"
if [ -s "$results/failures.txt" ]; then
    echo "some steps failed:" >&2
    cat "$results/failures.txt" >&2
    exit 1
fi
