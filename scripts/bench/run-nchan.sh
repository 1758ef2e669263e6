#!/usr/bin/env bash
# Runs Nginx + Nchan (scripts/bench/nchan.conf) in a temporary prefix, as the point of
# comparison for ssehub's benchmarks. Needs Debian's nginx-light and libnginx-mod-nchan.
#
#   run-nchan.sh start [PORT]         start in the background (default port 8090); prints
#                                     PREFIX=... MASTER_PID=... WORKER_PID=... PORT=...
#   run-nchan.sh stop PREFIX          stop the instance started in PREFIX, remove PREFIX
#   run-nchan.sh run PORT -- CMD...   start, run CMD with NCHAN_WORKER_PID and NCHAN_URL
#                                     in its environment, stop; exits with CMD's status
#
# Pass the *worker* pid to ssehub-bench --server-pid: the worker serves the connections,
# the master only supervises it.
#
# Example:
#   scripts/bench/run-nchan.sh run 8090 -- sh -c 'target/release/ssehub-bench \
#       --target nchan --url "$NCHAN_URL" --server-pid "$NCHAN_WORKER_PID" \
#       fanout -n 1000 --rate 1000 --duration-secs 2'
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf_template="$here/nchan.conf"
nginx_bin="${NGINX:-/usr/sbin/nginx}"

die() { echo "run-nchan.sh: $*" >&2; exit 2; }

# Prints the pid of the first child of $1, waiting up to 5 s for it to appear.
worker_of() {
    local master=$1 i worker
    for i in $(seq 50); do
        worker=$(pgrep -P "$master" | head -n1 || true)
        [ -n "$worker" ] && { echo "$worker"; return 0; }
        sleep 0.1
    done
    return 1
}

# Waits up to 5 s until 127.0.0.1:$1 accepts connections.
wait_port() {
    local port=$1 i
    for i in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start() {
    local port=${1:-8090}
    [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
    [ -x "$nginx_bin" ] || die "$nginx_bin not found (apt-get install nginx-light libnginx-mod-nchan)"
    [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || die "Nchan module not found (apt-get install libnginx-mod-nchan)"
    local prefix
    prefix=$(mktemp -d /tmp/nchan-bench.XXXXXX)
    # The worker runs as an unprivileged user; it must reach its temp dirs.
    chmod 755 "$prefix"
    mkdir -p "$prefix/logs" "$prefix/tmp"
    sed "s/__PORT__/$port/" "$conf_template" > "$prefix/nginx.conf"
    "$nginx_bin" -t -q -p "$prefix/" -c "$prefix/nginx.conf" 2> "$prefix/logs/configtest.log" \
        || { cat "$prefix/logs/configtest.log" >&2; die "config test failed"; }
    nohup "$nginx_bin" -p "$prefix/" -c "$prefix/nginx.conf" -g 'daemon off;' \
        > "$prefix/logs/stdout.log" 2>&1 < /dev/null &
    local master=$!
    local worker
    worker=$(worker_of "$master") || { kill "$master" 2>/dev/null || true; die "no worker process; see $prefix/logs/error.log"; }
    wait_port "$port" || { kill "$master" 2>/dev/null || true; die "port $port does not answer; see $prefix/logs/error.log"; }
    echo "$master" > "$prefix/master.pid"
    echo "PREFIX=$prefix MASTER_PID=$master WORKER_PID=$worker PORT=$port"
}

stop() {
    local prefix=${1:?usage: run-nchan.sh stop PREFIX}
    [ -f "$prefix/master.pid" ] || die "$prefix/master.pid not found"
    local master i
    master=$(cat "$prefix/master.pid")
    # Fast shutdown (TERM); then wait up to 10 s, then KILL.
    kill -TERM "$master" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$master" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$master" 2>/dev/null; then
        pkill -KILL -P "$master" || true
        kill -KILL "$master" 2>/dev/null || true
    fi
    case $prefix in /tmp/nchan-bench.*) rm -rf "$prefix" ;; esac
}

run() {
    local port=${1:?usage: run-nchan.sh run PORT -- CMD...}
    shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: run-nchan.sh run PORT -- CMD..."
    local line prefix worker status=0
    line=$(start "$port")
    echo "$line" >&2
    prefix=$(sed -n 's/.*PREFIX=\([^ ]*\).*/\1/p' <<< "$line")
    worker=$(sed -n 's/.*WORKER_PID=\([0-9]*\).*/\1/p' <<< "$line")
    NCHAN_WORKER_PID=$worker NCHAN_URL="http://127.0.0.1:$port" "$@" || status=$?
    stop "$prefix"
    return "$status"
}

case ${1:-} in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
