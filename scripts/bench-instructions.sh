#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind, for
# one Weft hop and for nginx as the equivalent one-hop reverse proxy, side by
# side. Requests per second on a shared 2-core VM move by ±10–20% between
# runs; an instruction count does not move with the machine's load, so it
# shows small changes in the proxy's own work. Kernel work (TCP, epoll, wake-
# ups) is not counted: scripts/bench-proxy.sh measures the whole.
#
#   scripts/bench-instructions.sh [--install] [--no-pgo] [--requests N]
#
# --install     apt-get install the missing tools (valgrind nginx-light
#               nghttp2-client curl).
# --no-pgo      count the plain release build, not the profile-guided one.
# --requests N  requests in the measured difference (default 20000).
#
# Each proxy runs under callgrind twice: for 1,000 requests and for 1,000+N
# (h2load --h1, 8 connections, the same 100-byte nginx backend as
# bench-proxy.sh). The difference divided by N is its cost per request, so
# start-up and configuration cancel out. Prints a Markdown table and writes it
# to benches/results/instructions-latest.md. Listens on 127.79.0.x (override
# with BENCH_NET=127.A.B); builds weft (scripts/build-pgo.sh, or
# target/release/weft with --no-pgo) if needed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATES="$ROOT/benches/proxy"
RESULTS="$ROOT/benches/results"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NET="${BENCH_NET:-127.79.0}"
BACKEND_LOCAL_PORT=18079
BASELINE=1000
REQUESTS=20000
INSTALL=0
HAPROXY_MAXCONN=1000
NOFILE=4096
PGO=1

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --install) INSTALL=1 ;;
        --no-pgo) PGO=0 ;;
        --requests) REQUESTS="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
case "$REQUESTS" in ''|*[!0-9]*) echo "--requests needs a number" >&2; exit 64 ;; esac

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

# Runs `cmd` under callgrind, sends `n` requests once `url` answers, stops it
# gracefully (callgrind writes its totals on exit) and sets COUNT.
COUNT=0
counted() { # name n url authority cmd...
    local name="$1" n="$2" url="$3" authority="$4"; shift 4
    local out="$RUN/$name-$n"
    valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$@" >"$out.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "$url" "$authority"
    h2load --h1 -n "$n" -c 8 -t 1 -H ":authority: $authority" "$url" >"$out.h2load" 2>&1 || true
    local ok
    ok="$(awk '/^status codes:/ {print $3}' "$out.h2load")"
    [ "${ok:-0}" = "$n" ] || die "$name: ${ok:-0} of $n requests answered 2xx (see $out.h2load)"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    COUNT="$(awk '/^summary:/ {print $2}' "$out.cg")"
    [ -n "$COUNT" ] || die "$name: callgrind wrote no totals (see $out.log)"
}

PER_REQUEST=0
per_request() { # name url authority cmd... : sets PER_REQUEST
    local name="$1" url="$2" authority="$3"; shift 3
    local base
    counted "$name" "$BASELINE" "$url" "$authority" "$@"
    base="$COUNT"
    counted "$name" $((BASELINE + REQUESTS)) "$url" "$authority" "$@"
    PER_REQUEST="$(calc "($COUNT - $base) / $REQUESTS")"
}

main() {
    check_tools valgrind nginx h2load curl
    build
    RUN="$(mktemp -d /tmp/weft-instructions.XXXXXX)"
    mkdir -p "$RUN/config" "$RUN/tmp-backend" "$RUN/tmp-proxy"
    render "$TEMPLATES/mesh.yaml" "$RUN/config/mesh.yaml"
    render "$TEMPLATES/nginx-backend.conf" "$RUN/nginx-backend.conf"
    # One nginx process (no master) so callgrind sees all of its work.
    render "$TEMPLATES/nginx-proxy.conf" "$RUN/nginx-proxy.conf.tmp"
    sed -e 's/^worker_processes .*/worker_processes 1;\nmaster_process off;/' \
        "$RUN/nginx-proxy.conf.tmp" >"$RUN/nginx-proxy.conf"
    start backend nginx -c "$RUN/nginx-backend.conf" -p "$RUN"
    start discovery env RUST_LOG=warn "$WEFT" discovery --config-dir "$RUN/config" \
        --grpc-addr "$NET.250:15010" --monitoring-addr "$NET.250:15014"
    wait_http "http://$NET.1:9080/"

    log "Weft, 1 hop: $BASELINE and $((BASELINE + REQUESTS)) requests under callgrind"
    local weft nginx host=backend-direct.bench.svc.cluster.local
    # Not through `env`: callgrind would count env, not the weft it execs.
    export RUST_LOG=error
    per_request weft "http://$NET.9:9080/" "$host" \
        "$WEFT" proxy --discovery-address "$NET.250:15010" --ip "$NET.9" \
        --namespace bench --name client1 --labels app=client-one-hop \
        --service-account client-one-hop --concurrency 2
    weft="$PER_REQUEST"
    log "nginx proxy: the same"
    per_request nginx "http://$NET.20:9080/" "$NET.20:9080" \
        nginx -c "$RUN/nginx-proxy.conf" -p "$RUN"
    nginx="$PER_REQUEST"

    mkdir -p "$RESULTS"
    {
        echo "**Instructions per request, $(date -u '+%Y-%m-%d %H:%M UTC')** (weft $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $WEFT_BUILD, $(nginx -v 2>&1 | sed 's/.*: //'), $(valgrind --version))"
        echo
        echo "User-space instructions (callgrind) per HTTP/1.1 request through one proxy to the nginx backend, 100-byte body, keep-alive; the difference between $BASELINE and $((BASELINE + REQUESTS)) requests, over $REQUESTS."
        echo
        echo "| proxy | instructions per request | / nginx |"
        echo "|---|---:|---:|"
        printf '| Weft, 1 hop | %.0f | %s |\n' "$weft" "$(calc "$weft / $nginx" | awk '{printf "%.2f", $1}')"
        printf '| nginx proxy | %.0f | 1.00 |\n' "$nginx"
    } | tee "$RESULTS/instructions-latest.md"
}

main
