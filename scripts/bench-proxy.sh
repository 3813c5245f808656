#!/usr/bin/env bash
# Weft's data plane side by side with a direct connection, nginx and HAProxy,
# in one run on this machine; prints a Markdown table and writes it to
# benches/results/latest.md. Run by hand (minutes, not part of `cargo test`):
#
#   scripts/bench-proxy.sh [--install] [--no-pgo] [--duration SECONDS] [--rounds N] [--idle-conns N]
#
# --install       apt-get install the missing tools (nginx-light haproxy wrk
#                 nghttp2-client curl) without starting their system services.
# --no-pgo        measure the plain release build, not the profile-guided one
#                 (scripts/build-pgo.sh, two release builds the first time).
# --duration S    seconds of each max-throughput and fixed-rate run (default 10).
# --rounds N      rounds of the HTTP/1.1 max-rps and fixed-rate runs (default 3);
#                 each round runs every setup once, starting one setup later than
#                 the round before, and each figure is the median over the rounds;
#                 then as many paired runs (Weft 1 hop and nginx at once).
# --idle-conns N  idle keep-alive connections held open per setup (default 10000).
# --update-readme put the new table between the bench-proxy markers in README.md.
#
# BENCH_KEEP_RUN=1 keeps the run directory (configs, logs, raw tool output).
# Builds weft (profile-guided, target/pgo/weft; --no-pgo: target/release/weft)
# and the `proxy_load` bench (fixed-rate latency client, idle-connection
# opener) if needed; honours CARGO_TARGET_DIR.
# Everything listens on 127.77.0.x (override with BENCH_NET=127.A.B); all
# processes it starts are stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATES="$ROOT/benches/proxy"
RESULTS="$ROOT/benches/results"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NET="${BENCH_NET:-127.77.0}"
BACKEND_LOCAL_PORT=18077
DURATION=10
IDLE_CONNS=10000
INSTALL=0
UPDATE_README=0
ROUNDS=3
PGO=1
CONNS=64   # wrk/h2load connections
RATE=1000  # fixed-rate latency run

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --install) INSTALL=1 ;;
        --no-pgo) PGO=0 ;;
        --duration) DURATION="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --idle-conns) IDLE_CONNS="$2"; shift ;;
        --update-readme) UPDATE_README=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

start_weft_proxy() { # name ip app-label
    start "$1" env RUST_LOG=error "$WEFT" proxy --discovery-address "$NET.250:15010" \
        --ip "$2" --namespace bench --name "$1" --labels "app=$3" --service-account "$3" \
        --concurrency 2
}

start_all() {
    RUN="$(mktemp -d /tmp/weft-bench.XXXXXX)"
    mkdir -p "$RUN/config" "$RUN/tmp-backend" "$RUN/tmp-proxy"
    render "$TEMPLATES/mesh.yaml" "$RUN/config/mesh.yaml"
    render "$TEMPLATES/nginx-backend.conf" "$RUN/nginx-backend.conf"
    render "$TEMPLATES/nginx-proxy.conf" "$RUN/nginx-proxy.conf"
    render "$TEMPLATES/haproxy.cfg" "$RUN/haproxy.cfg"

    start backend nginx -c "$RUN/nginx-backend.conf" -p "$RUN"
    start nginx_proxy nginx -c "$RUN/nginx-proxy.conf" -p "$RUN"
    start haproxy haproxy -f "$RUN/haproxy.cfg"
    start discovery env RUST_LOG=warn "$WEFT" discovery --config-dir "$RUN/config" \
        --grpc-addr "$NET.250:15010" --monitoring-addr "$NET.250:15014"
    start_weft_proxy server "$NET.2" backend-meshed
    # One client sidecar per setup, so neither's memory carries the other's load.
    start_weft_proxy client1 "$NET.9" client-one-hop
    start_weft_proxy client2 "$NET.10" client-two-hops

    wait_http "http://$NET.1:9080/"
    wait_http "http://$NET.2:15021/healthz/ready"
    wait_http "http://$NET.9:15021/healthz/ready"
    wait_http "http://$NET.10:15021/healthz/ready"
    wait_http "http://$NET.9:9080/" "backend-direct.bench.svc.cluster.local"
    wait_http "http://$NET.10:9080/" "backend-meshed.bench.svc.cluster.local"
    wait_http "http://$NET.20:9080/"
    wait_http "http://$NET.21:9080/"
    log "all setups answer (run dir $RUN)"
}

SETUPS=(
    "direct|direct to nginx|$NET.1:9080|$NET.1:9080|http://$NET.1:9081/|"
    "weft1|Weft, 1 hop|$NET.9:9080|backend-direct.bench.svc.cluster.local|http://$NET.9:9080/|PID_client1"
    "weft2|Weft, 2 hops|$NET.10:9080|backend-meshed.bench.svc.cluster.local|http://$NET.10:9080/|PID_client2 PID_server"
    "nginx|nginx proxy|$NET.20:9080|$NET.20:9080|http://$NET.20:9081/|PID_nginx_proxy"
    "haproxy|HAProxy|$NET.21:9080|$NET.21:9080|http://$NET.21:9080/|PID_haproxy"
)

# The HTTP/1.1 max-rps and fixed-rate latency runs, in rounds: this host's
# load moves over minutes, and one run per setup would let a busy minute fall
# on one setup only. Each round starts one setup later than the one before.
run_rounds() {
    local round i n=${#SETUPS[@]} s label addr host vars pids
    for round in $(seq 1 "$ROUNDS"); do
        for i in $(seq 0 $((n - 1))); do
            IFS='|' read -r s label addr host _ vars <<<"${SETUPS[$(((i + round - 1) % n))]}"
            mapfile -t pids < <(proxy_pids $vars)
            log "round $round of $ROUNDS, $label: wrk, ${RATE} rps latency"
            measure_wrk "$s" "$addr" "$host" "${pids[@]}"
            measure_latency "$s" "$addr" "$host"
            log "  $label: ${R[$s.rps]} rps, p50 ${R[$s.p50_us]} us, p99 ${R[$s.p99_us]} us"
            keep_round "$s" "$round"
        done
    done
    for i in $(seq 0 $((n - 1))); do
        IFS='|' read -r s _ <<<"${SETUPS[$i]}"
        combine_rounds "$s"
    done
}

# Weft 1 hop and the nginx proxy at the fixed rate both at once, once per
# round: the host's load drifts between the sequential runs above, and here
# both meet the same moments of it. Figures: the median over the rounds.
run_paired() {
    local round s addr host pids
    for round in $(seq 1 "$ROUNDS"); do
        log "paired round $round of $ROUNDS: Weft, 1 hop and nginx proxy, ${RATE} rps each at once"
        pids=()
        for s in weft1 nginx; do
            read -r addr host < <(setup_target "$s")
            latency_run "$addr" "$host" "$RUN/paired-$s-$round.txt" &
            pids+=($!)
        done
        for s in "${pids[@]}"; do wait "$s" || die "a paired latency run failed"; done
        for s in weft1 nginx; do
            latency_figures "paired_$s" "$RUN/paired-$s-$round.txt" "$round"
        done
        log "  p99 Weft ${R[paired_weft1.p99_us.$round]} us, nginx ${R[paired_nginx.p99_us.$round]} us"
    done
    combine_rounds paired_weft1
    combine_rounds paired_nginx
}

# A setup's address and Host header.
setup_target() { # setup
    local rest s addr host
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s _ addr host _ <<<"$rest"
        if [ "$s" = "$1" ]; then echo "$addr $host"; return 0; fi
    done
    die "no setup $1"
}

# Keeps one round's figures and raw output apart from the next round's.
keep_round() { # setup round
    local s="$1" round="$2" k
    mv "$RUN/wrk-$s.txt" "$RUN/wrk-$s-$round.txt"
    mv "$RUN/latency-$s.txt" "$RUN/latency-$s-$round.txt"
    for k in rps cpu rss_load p50_us p90_us p99_us errors achieved_rps; do
        if [ -n "${R[$s.$k]:-}" ]; then R[$s.$k.$round]="${R[$s.$k]}"; fi
    done
}

# A setup's figures over the rounds: the median of each rate, time and CPU
# figure, the highest RSS under load, and every latency error.
combine_rounds() { # setup
    local s="$1" k round values
    for k in rps cpu p50_us p90_us p99_us achieved_rps rss_load errors; do
        values=()
        for round in $(seq 1 "$ROUNDS"); do
            if [ -n "${R[$s.$k.$round]:-}" ]; then values+=("${R[$s.$k.$round]}"); fi
        done
        [ ${#values[@]} -eq 0 ] && continue
        case "$k" in
            rss_load) R[$s.$k]="$(printf '%s\n' "${values[@]}" | sort -g | tail -1)" ;;
            errors) R[$s.$k]="$(printf '%s\n' "${values[@]}" | awk '{ sum += $1 } END { print sum }')" ;;
            *) R[$s.$k]="$(printf '%s\n' "${values[@]}" | sort -g | awk '{ v[NR] = $1 }
                END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" ;;
        esac
    done
}

# h2c max rps, then the idle connections (last: they leave proxies larger).
run_setup() {
    local setup label addr host h2url vars pids
    IFS='|' read -r setup label addr host h2url vars <<<"$1"
    mapfile -t pids < <(proxy_pids $vars)
    log "$label: h2load, $IDLE_CONNS idle connections"
    measure_h2load "$setup" "$h2url" "$host"
    # Direct has no proxy whose memory the idle connections would show.
    if [ ${#pids[@]} -gt 0 ]; then measure_idle_conns "$setup" "$addr" "$host" "${pids[@]}"; fi
}

# Idle RSS of a fresh sidecar whose config covers 100 extra services.
measure_100_services() {
    local f="$RUN/config/services100.yaml" i
    : >"$f.tmp"
    for i in $(seq -w 0 99); do
        cat >>"$f.tmp" <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-$i, namespace: bench}
spec:
  hosts: [svc-$i.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.78.$((10#$i)).1}, {address: 127.78.$((10#$i)).2}]
---
EOF
    done
    mv "$f.tmp" "$f"
    sleep 1 # the control plane's debounce
    start_weft_proxy idle100 "$NET.30" idle100
    wait_http "http://$NET.30:15021/healthz/ready"
    # Measured before the config dump below: rendering it (a large JSON
    # document) grows the heap, and that is not idle memory.
    sleep 2
    R[svc100.rss]="$(rss_kb "$PID_idle100")"
    local services
    for i in $(seq 1 50); do
        # No match yet (the config is still on its way) is not an error.
        services="$( (curl -fsS "http://$NET.30:15000/config_dump" || true) | (grep -o 'svc-[0-9][0-9]\.bench\.svc\.cluster\.local' || true) | sort -u | wc -l)"
        [ "$services" -ge 100 ] && break
        sleep 0.2
    done
    R[svc100.services]="$services"
}

report() {
    local s label rest
    echo "**Proxy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')**"
    echo
    echo "Machine: $(nproc) cores ($(uname -m), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), load average before the run: $LOAD_BEFORE."
    echo "Versions: weft $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($WEFT_BUILD), $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), $(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}'), $(h2load --version | head -1)."
    echo "Each proxy: 2 workers (weft --concurrency 2, nginx worker_processes 2, HAProxy nbthread 2), keep-alive on both sides, no access log. Backend: nginx, 100-byte body."
    echo "Max rps: wrk -t2 -c$CONNS -d${DURATION}s (HTTP/1.1) and h2load -t2 -c$CONNS -m10 -D $DURATION (h2c). Latency: open-loop $RATE rps for ${DURATION}s over 32 connections, from the moment each request is released (proxy_load bench). HTTP/1.1 rps, latency and CPU: the median of $ROUNDS rounds, each running every setup in turn (in a rotated order). CPU: utime+stime of the proxy process(es) during the wrk run. RSS: sum over the proxy's processes (nginx master+workers; both sidecars for 2 hops)."
    echo
    echo "| setup | HTTP/1.1 rps | h2c rps | p50 ms | p90 ms | p99 ms | CPU s / 1k req | RSS idle MB | RSS load MB | RSS ${IDLE_CONNS} conns MB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s label _ <<<"$rest"
        printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "${R[$s.rps]:-0}" \
            "$(awk '{ if ($1 ~ /^[0-9.]+$/) printf "%.0f", $1; else printf "%s", $1 }' <<<"${R[$s.h2rps]:--}")" \
            "$(ms "${R[$s.p50_us]:-}")" "$(ms "${R[$s.p90_us]:-}")" "$(ms "${R[$s.p99_us]:-}")" \
            "$(if [ -n "${R[$s.cpu]:-}" ]; then awk '{printf "%.3f", $1}' <<<"${R[$s.cpu]}"; else printf -- '-'; fi)" \
            "$(mb "${R[$s.rss_idle]:-}")" "$(mb "${R[$s.rss_load]:-}")" "$(mb "${R[$s.rss_conns]:-}")"
    done
    echo
    echo "Ratios (setup / direct, setup / nginx proxy; rps: higher is better, the rest: lower is better):"
    echo
    echo "| setup | rps /direct | rps /nginx | h2c rps /direct | h2c rps /nginx | p99 /direct | p99 /nginx | CPU /nginx | RSS idle /nginx | RSS load /nginx | RSS conns /nginx |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s label _ <<<"$rest"
        [ "$s" = direct ] && continue
        echo "| $label | $(ratio "${R[$s.rps]:-}" "${R[direct.rps]:-}") | $(ratio "${R[$s.rps]:-}" "${R[nginx.rps]:-}") | $(ratio "${R[$s.h2rps]:-}" "${R[direct.h2rps]:-}") | $(ratio "${R[$s.h2rps]:-}" "${R[nginx.h2rps]:-}") | $(ratio "${R[$s.p99_us]:-}" "${R[direct.p99_us]:-}") | $(ratio "${R[$s.p99_us]:-}" "${R[nginx.p99_us]:-}") | $(ratio "${R[$s.cpu]:-}" "${R[nginx.cpu]:-}") | $(ratio "${R[$s.rss_idle]:-}" "${R[nginx.rss_idle]:-}") | $(ratio "${R[$s.rss_load]:-}" "${R[nginx.rss_load]:-}") | $(ratio "${R[$s.rss_conns]:-}" "${R[nginx.rss_conns]:-}") |"
    done
    echo
    echo "Paired latency: Weft, 1 hop and the nginx proxy, each at $RATE rps at the same time for ${DURATION}s, so that both meet the same moments of this host (the median of $ROUNDS such runs): p50 $(ms "${R[paired_weft1.p50_us]:-}") against $(ms "${R[paired_nginx.p50_us]:-}") ms, p99 $(ms "${R[paired_weft1.p99_us]:-}") against $(ms "${R[paired_nginx.p99_us]:-}") ms (p99 /nginx $(ratio "${R[paired_weft1.p99_us]:-}" "${R[paired_nginx.p99_us]:-}"))."
    echo
    per_round_p99 weft1 nginx "Sequential"
    per_round_p99 paired_weft1 paired_nginx "Paired"
    echo
    local verdict="meets"
    [ "$(calc "${R[svc100.rss]:-0} > 15 * 1024")" = 1 ] && verdict="misses"
    echo "Memory target: an idle \`weft proxy\` with ${R[svc100.services]:-?} services in its config: $(mb "${R[svc100.rss]:-}") MB RSS, which $verdict the 15 MB aim."
    local notes=""
    for s in paired_weft1 paired_nginx; do
        [ "${R[$s.errors]:-0}" != 0 ] && notes+=" $s: ${R[$s.errors]} errors in the paired latency runs."
    done
    for rest in "${SETUPS[@]}"; do
        IFS='|' read -r s label _ <<<"$rest"
        [ "${R[$s.errors]:-0}" != 0 ] && notes+=" $label: ${R[$s.errors]} errors in the latency run."
        [ -n "${R[$s.achieved_rps]:-}" ] && [ "$(calc "${R[$s.achieved_rps]} < $RATE * 0.95")" = 1 ] && notes+=" $label: latency run reached only ${R[$s.achieved_rps]} rps."
        [ "$s" != direct ] && [ "${R[$s.idle_open]:-0}" != "$IDLE_CONNS" ] && notes+=" $label: ${R[$s.idle_open]:-0} of $IDLE_CONNS idle connections opened."
        [ "$s" = haproxy ] && [ "$HAPROXY_MAXCONN" -lt "$IDLE_CONNS" ] && notes+=" (HAProxy maxconn is $HAPROXY_MAXCONN: it needs 2 FDs per connection under the hard limit of $NOFILE.)"
    done
    [ -n "$notes" ] && echo && echo "Notes:$notes"
    return 0
}

# One line: a setup's p99 beside nginx's, round by round, and in how many
# rounds it was at or below nginx's: a median of 3 can land either side of a
# tie, and the rounds show whether it is one.
per_round_p99() { # setup nginx-setup label
    local a="$1" b="$2" round pairs="" compared=0 at_or_below=0 x y
    for round in $(seq 1 "$ROUNDS"); do
        x="${R[$a.p99_us.$round]:-}" y="${R[$b.p99_us.$round]:-}"
        [ -n "$x" ] && [ -n "$y" ] || continue
        pairs+="${pairs:+, }$x/$y"
        compared=$((compared + 1))
        [ "$x" -le "$y" ] && at_or_below=$((at_or_below + 1))
    done
    [ "$compared" -gt 0 ] || return 0
    echo "$3 p99 per round, Weft 1 hop / nginx proxy (us): $pairs; Weft at or below nginx in $at_or_below of $compared."
}

main() {
    check_tools nginx haproxy wrk h2load curl
    build
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    NOFILE="$(ulimit -n)"
    [ "$NOFILE" = unlimited ] && NOFILE=1048576
    [ "$NOFILE" -gt $((IDLE_CONNS + 1000)) ] || log "ulimit -n is $NOFILE: fewer than $IDLE_CONNS idle connections may open"
    # HAProxy reserves 2 FDs per connection (+ a few) and will not start above the limit.
    HAPROXY_MAXCONN=$(((NOFILE - 32) / 2))
    [ "$HAPROXY_MAXCONN" -gt $((IDLE_CONNS + 100)) ] && HAPROXY_MAXCONN=$((IDLE_CONNS + 100))
    LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
    start_all
    local setup s vars pids
    # Idle RSS of every proxy before any of them has carried traffic.
    for setup in "${SETUPS[@]}"; do
        IFS='|' read -r s _ _ _ _ vars <<<"$setup"
        mapfile -t pids < <(proxy_pids $vars)
        if [ ${#pids[@]} -gt 0 ]; then R[$s.rss_idle]="$(rss_kb "${pids[@]}")"; fi
    done
    run_rounds
    run_paired
    for setup in "${SETUPS[@]}"; do run_setup "$setup"; done
    log "idle sidecar with 100 services"
    measure_100_services
    mkdir -p "$RESULTS"
    report | tee "$RESULTS/latest.md"
    if [ "$UPDATE_README" -eq 1 ]; then update_readme; fi
}

# Replaces what is between <!-- bench-proxy:start --> and <!-- bench-proxy:end -->.
update_readme() {
    local readme="$ROOT/README.md"
    grep -q '<!-- bench-proxy:start -->' "$readme" || die "no bench-proxy markers in $readme"
    awk -v table="$RESULTS/latest.md" '
        /<!-- bench-proxy:start -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
        /<!-- bench-proxy:end -->/ { skip = 0 }
        !skip { print }
    ' "$readme" >"$readme.tmp" && mv "$readme.tmp" "$readme"
    log "README.md updated"
}

main
