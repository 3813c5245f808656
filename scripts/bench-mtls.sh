#!/usr/bin/env bash
# What mTLS costs in Weft: the same two-sidecar path (client sidecar -> server
# sidecar -> nginx) in plaintext and over mesh mTLS, in one run on this
# machine, plus connections per second with a new upstream connection for
# every request (TLS handshakes per second for mTLS). Prints a Markdown table
# and writes it to benches/results/mtls-latest.md. Run by hand:
#
#   scripts/bench-mtls.sh [--install] [--no-pgo] [--duration SECONDS]
#
# --install       apt-get install the missing tools (nginx-light wrk curl).
# --no-pgo        measure the plain release build, not the profile-guided one.
# --duration S    seconds of each max-throughput and fixed-rate run (default 10).
#
# BENCH_KEEP_RUN=1 keeps the run directory. Builds weft (scripts/build-pgo.sh,
# or target/release/weft with --no-pgo) and the proxy_load bench if needed;
# honours CARGO_TARGET_DIR. Everything listens on 127.78.0.x (override with
# BENCH_NET=127.A.B).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="$ROOT/benches/results"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NET="${BENCH_NET:-127.78.0}"
BACKEND_LOCAL_PORT=18078
DURATION=10
INSTALL=0
CONNS=64
RATE=1000
PGO=1
NOFILE=65536
HAPROXY_MAXCONN=0

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --install) INSTALL=1 ;;
        --no-pgo) PGO=0 ;;
        --duration) DURATION="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

start_all() {
    start_mtls_mesh "$WEFT"
    wait_http "http://$NET.1:9080/"
    wait_http "http://$NET.2:15021/healthz/ready"
    wait_http "http://$NET.10:15021/healthz/ready"
    local s
    for s in plain mtls plain-new mtls-new; do
        wait_http "http://$NET.10:9080/" "backend-$s.bench.svc.cluster.local"
    done
    # The mTLS hop must really be mTLS: the server sidecar counts the peer's
    # identity only on mTLS connections, so check the certificate is in place.
    curl -fsS "http://$NET.2:15000/certs" | grep -q 'spiffe://cluster.local/ns/bench/sa/backend' \
        || die "the server sidecar has no workload certificate (see $RUN/server.log)"
    log "all setups answer (run dir $RUN)"
}

# setup | label | Host
SETUPS=(
    "plain|plaintext hop|backend-plain.bench.svc.cluster.local"
    "mtls|mTLS hop|backend-mtls.bench.svc.cluster.local"
    "plain_new|plaintext, new connection per request|backend-plain-new.bench.svc.cluster.local"
    "mtls_new|mTLS, new connection (handshake) per request|backend-mtls-new.bench.svc.cluster.local"
)

report() {
    local s label rest
    echo "**mTLS benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')**"
    echo
    echo "Machine: $(nproc) cores ($(uname -m)), load average before the run: $LOAD_BEFORE. weft $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($WEFT_BUILD)."
    echo "Path: wrk -> client sidecar ($NET.10) -> server sidecar ($NET.2) -> nginx, both sidecars --concurrency 2 with workload certificates (ECDSA P-256) from the mesh CA; TLS 1.3 with aws-lc-rs. Max rps: wrk -t2 -c$CONNS -d${DURATION}s. Latency: open-loop $RATE rps over 32 connections. CPU: both sidecars."
    echo
    echo "| setup | rps | p50 ms | p99 ms | CPU s / 1k req |"
    echo "|---|---:|---:|---:|---:|"
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s label _ <<<"$rest"
        printf '| %s | %.0f | %s | %s | %s |\n' "$label" "${R[$s.rps]:-0}" \
            "$(ms "${R[$s.p50_us]:-}")" "$(ms "${R[$s.p99_us]:-}")" \
            "$(if [ -n "${R[$s.cpu]:-}" ]; then awk '{printf "%.3f", $1}' <<<"${R[$s.cpu]}"; else printf -- '-'; fi)"
    done
    echo
    echo "mTLS / plaintext: rps $(ratio "${R[mtls.rps]:-}" "${R[plain.rps]:-}"), p99 $(ratio "${R[mtls.p99_us]:-}" "${R[plain.p99_us]:-}"), CPU per request $(ratio "${R[mtls.cpu]:-}" "${R[plain.cpu]:-}")."
    echo "Handshakes: $(printf '%.0f' "${R[mtls_new.rps]:-0}") mTLS connections per second (one full handshake each, client and server sidecar together), against $(printf '%.0f' "${R[plain_new.rps]:-0}") plaintext connections per second ($(ratio "${R[mtls_new.rps]:-}" "${R[plain_new.rps]:-}"))."
    local notes="" 
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s label _ <<<"$rest"
        [ "${R[$s.errors]:-0}" != 0 ] && notes+=" $label: ${R[$s.errors]} errors in the latency run."
    done
    [ -n "$notes" ] && echo && echo "Notes:$notes"
    return 0
}

main() {
    check_tools nginx wrk curl
    build
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
    start_all
    local rest s label host
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s label host <<<"$rest"
        log "$label: wrk, ${RATE} rps latency"
        measure_wrk "$s" "$NET.10:9080" "$host" "$PID_client" "$PID_server"
        measure_latency "$s" "$NET.10:9080" "$host"
    done
    mkdir -p "$RESULTS"
    report | tee "$RESULTS/mtls-latest.md"
}

main
