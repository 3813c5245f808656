# Shared by the benchmark scripts (sourced, not run): tools, build, processes,
# /proc readings, measurements and number formatting. The sourcing script sets
# ROOT, TARGET, NET, DURATION, CONNS, RATE and INSTALL before calling these.

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------

# command -> Debian package
declare -A PACKAGE=([nginx]=nginx-light [haproxy]=haproxy [wrk]=wrk [h2load]=nghttp2-client [curl]=curl [openssl]=openssl [valgrind]=valgrind)

check_tools() { # command... : the tools this benchmark needs
    local missing=() cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to build weft (install Rust)"
    [ ${#missing[@]} -eq 0 ] && return 0
    local pkgs=()
    for cmd in "${missing[@]}"; do pkgs+=("${PACKAGE[$cmd]}"); done
    if [ "$INSTALL" -eq 0 ]; then
        {
            echo "[bench] missing tools: ${missing[*]}"
            echo "  nginx   : backend and the nginx reverse-proxy setup   (package nginx-light)"
            echo "  haproxy : the HAProxy reverse-proxy setup             (package haproxy)"
            echo "  wrk     : max requests/s over HTTP/1.1                (package wrk)"
            echo "  h2load  : max requests/s over HTTP/2 (h2c)            (package nghttp2-client)"
            echo "  curl    : readiness checks                            (package curl)"
            echo "  openssl : TLS handshake rates (mTLS benchmark)        (package openssl)"
            echo "  valgrind: instruction counts (instructions benchmark)  (package valgrind)"
            echo "Install them with: apt-get install -y ${pkgs[*]}"
            echo "or rerun with --install."
        } >&2
        exit 69
    fi
    log "installing ${pkgs[*]} (system services are not started)"
    # policy-rc.d exit 101 keeps the packages' init scripts from starting
    # nginx/haproxy on port 80; an existing one is left as it is.
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    local rc=0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2 || rc=$?
    [ "$added" -eq 1 ] && rm -f "$policy"
    [ $rc -eq 0 ] || die "apt-get install failed"
}

# --- build -------------------------------------------------------------------

# PGO=1 (the default; the scripts' --no-pgo sets 0) measures the
# profile-guided build from scripts/build-pgo.sh, the way weft is meant to be
# shipped; PGO=0 the plain release build. Without the tools the profile-guided
# build needs (its exit code 69) it falls back to the plain build, and the
# report's Versions line says so.
build() {
    if [ "${PGO:-1}" -eq 1 ]; then
        log "building weft with profile-guided optimisation (scripts/build-pgo.sh; --no-pgo skips it)"
        local flags=() rc=0
        [ "$INSTALL" -eq 1 ] && flags+=(--install)
        WEFT="$("$ROOT/scripts/build-pgo.sh" "${flags[@]}")" || rc=$?
        case "$rc" in
            0) WEFT_BUILD="profile-guided release build" ;;
            69) log "WARNING: no profile-guided build (a tool it needs is missing, see above); measuring the plain release build"
                PGO=0 ;;
            *) die "the profile-guided build failed (exit $rc)" ;;
        esac
    fi
    if [ "${PGO:-1}" -ne 1 ]; then
        log "building weft (release)"
        (cd "$ROOT" && cargo build --release --bin weft) >&2
        WEFT="$TARGET/release/weft"
        WEFT_BUILD="release build, no profile guidance"
    fi
    log "building the proxy_load bench"
    LOADGEN="$(cd "$ROOT" && cargo bench --bench proxy_load --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*proxy_load[^"]*"' | tail -1 | sed 's/.*:"\(.*\)"/\1/')"
    [ -x "$WEFT" ] || die "no weft binary at $WEFT"
    [ -n "$LOADGEN" ] && [ -x "$LOADGEN" ] || die "could not build the proxy_load bench (cargo bench --bench proxy_load --no-run)"
}

# --- processes ---------------------------------------------------------------

RUN=""
PIDS=()

cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$RUN" ] && [ -z "${BENCH_KEEP_RUN:-}" ]; then rm -rf "$RUN"; fi
    # Keep the script's own exit code (69: tools missing, 64: usage).
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

render() { # template -> file
    sed -e "s/127\.@NET@/$NET/g; s/@NET@/${NET#127.}/g" \
        -e "s|@RUN@|$RUN|g; s/@BACKEND_LOCAL_PORT@/$BACKEND_LOCAL_PORT/g" \
        -e "s/@NOFILE@/$NOFILE/g; s/@HAPROXY_MAXCONN@/$HAPROXY_MAXCONN/g" "$1" >"$2"
}

start() { # name cmd... : runs in the background, logs to $RUN/name.log
    local name="$1"; shift
    "$@" >"$RUN/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_${name//-/_}=$!"
}

wait_http() { # url [host header]
    local url="$1" host="${2:-}" i
    for i in $(seq 1 300); do
        if curl -fsS -o /dev/null --max-time 2 ${host:+-H "Host: $host"} "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "no answer from $url ${host:+(Host: $host)} within 30s; see logs in $RUN"
}


# --- the mTLS mesh (benches/mtls/) -------------------------------------------

# nginx, a control plane with a CA, and a server and a client sidecar holding
# workload certificates (bench-mtls.sh measures it, build-pgo.sh trains on it).
# Sets RUN; the caller waits for what it needs to answer.
start_mtls_mesh() { # weft-binary
    local weft="$1" i
    RUN="$(mktemp -d /tmp/weft-bench-mtls.XXXXXX)"
    mkdir -p "$RUN/config" "$RUN/tmp-backend" "$RUN/ca"
    render "$ROOT/benches/mtls/mesh.yaml" "$RUN/config/mesh.yaml"
    render "$ROOT/benches/proxy/nginx-backend.conf" "$RUN/nginx-backend.conf"
    start backend nginx -c "$RUN/nginx-backend.conf" -p "$RUN"
    start discovery env RUST_LOG=warn "$weft" discovery --config-dir "$RUN/config" \
        --grpc-addr "$NET.250:15010" --secure-grpc-addr "$NET.250:15012" \
        --monitoring-addr "$NET.250:15014" --ca-dir "$RUN/ca"
    for i in $(seq 1 100); do [ -s "$RUN/ca/root-cert.pem" ] && break; sleep 0.1; done
    [ -s "$RUN/ca/root-cert.pem" ] || die "the control plane wrote no $RUN/ca/root-cert.pem"
    start_mtls_sidecar "$weft" server "$NET.2" backend-meshed backend
    start_mtls_sidecar "$weft" client "$NET.10" client client
}

start_mtls_sidecar() { # weft-binary name ip app-label service-account
    "$1" token issue --ca-dir "$RUN/ca" --namespace bench --service-account "$5" >"$RUN/$2.token"
    start "$2" env RUST_LOG=error "$1" proxy --discovery-address "$NET.250:15012" \
        --root-cert "$RUN/ca/root-cert.pem" --token-file "$RUN/$2.token" \
        --ip "$3" --namespace bench --name "$2" --labels "app=$4" --service-account "$5" \
        --concurrency 2
}

# --- /proc readings ----------------------------------------------------------

CLK_TCK="$(getconf CLK_TCK)"

pids_of() { # pid... -> the pids and their children (nginx workers)
    local p
    for p in "$@"; do
        echo "$p"
        pgrep -P "$p" 2>/dev/null || true
    done
}

cpu_ticks() { # pid... -> utime+stime summed, in clock ticks
    local p total=0 stat
    for p in $(pids_of "$@"); do
        stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
        # Fields after the ")" of comm: utime and stime are the 12th and 13th.
        set -- ${stat##*) }
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

rss_kb() { # pid... -> VmRSS summed, in kB
    local p total=0 kb
    for p in $(pids_of "$@"); do
        kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)" || continue
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# --- measurements ------------------------------------------------------------

declare -A R # results: R[setup.metric]

# The parentheses matter: awk reads a bare ">" in printf's arguments as a redirection.
calc() { awk "BEGIN { printf \"%s\", ($*) }"; }

measure_wrk() { # setup addr host pids...
    local setup="$1" addr="$2" host="$3"; shift 3
    local out cpu0 cpu1 peak=0 rss pid
    cpu0="$(cpu_ticks "$@")"
    wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "Host: $host" "http://$addr/" >"$RUN/wrk-$setup.txt" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if [ $# -gt 0 ]; then
            rss="$(rss_kb "$@")"; [ "$rss" -gt "$peak" ] && peak="$rss"
        fi
    done
    wait "$pid" || die "wrk failed for $setup: $(cat "$RUN/wrk-$setup.txt")"
    cpu1="$(cpu_ticks "$@")"
    out="$(cat "$RUN/wrk-$setup.txt")"
    local rps total errors
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    total="$(awk '/requests in/ {print $1}' <<<"$out")"
    errors="$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")"
    [ -n "$errors" ] && log "$setup wrk: $errors"
    R[$setup.rps]="${rps:-0}"
    if [ $# -gt 0 ]; then R[$setup.rss_load]="$peak"; fi
    if [ $# -gt 0 ] && [ "${total:-0}" -gt 0 ]; then
        R[$setup.cpu]="$(calc "($cpu1 - $cpu0) / $CLK_TCK / $total * 1000")"
    fi
}

measure_h2load() { # setup url authority
    local setup="$1" url="$2" authority="$3" out
    out="$(h2load -t2 -c"$CONNS" -m10 --warm-up-time=1 -D "$DURATION" \
        -H ":authority: $authority" "$url" 2>&1)" || true
    echo "$out" >"$RUN/h2load-$setup.txt"
    R[$setup.h2rps]="$(awk '/^finished in/ {print $4}' <<<"$out" | tr -d ',')"
    local ok
    ok="$(awk '/^status codes:/ {print $3}' <<<"$out")"
    [ "${ok:-0}" = 0 ] && R[$setup.h2rps]="n/a" && log "$setup h2load: no 2xx (see $RUN/h2load-$setup.txt)"
    return 0
}

# One fixed-rate latency run; the loader's key=value line goes to `out`.
latency_run() { # addr host out
    "$LOADGEN" latency --addr "$1" --host "$2" --rate "$RATE" \
        --duration "$DURATION" --warmup 2 --connections 32 >"$3"
}

# A latency run's figures into R[setup.key], or R[setup.key.round].
latency_figures() { # setup file [round]
    local k
    for k in p50_us p90_us p99_us errors achieved_rps; do
        R[$1.$k${3:+.$3}]="$(tr ' ' '\n' <"$2" | awk -F= -v k="$k" '$1 == k {print $2}')"
    done
}

measure_latency() { # setup addr host
    latency_run "$2" "$3" "$RUN/latency-$1.txt" || die "latency run failed for $1"
    latency_figures "$1" "$RUN/latency-$1.txt"
}

measure_idle_conns() { # setup addr host pids...
    local setup="$1" addr="$2" host="$3"; shift 3
    local err="$RUN/idle-$setup.err" pid i
    "$LOADGEN" idle --addr "$addr" --host "$host" --count "$IDLE_CONNS" --hold 300 \
        >"$RUN/idle-$setup.txt" 2>"$err" &
    pid=$!
    for i in $(seq 1 1200); do
        grep -q '^ready' "$err" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1 # let the proxy settle after the last connection
    R[$setup.idle_open]="$(sed -n 's/^ready open=\([0-9]*\).*/\1/p' "$err")"
    [ $# -gt 0 ] && R[$setup.rss_conns]="$(rss_kb "$@")"
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local failed
    failed="$(sed -n 's/^ready open=[0-9]* failed=\([0-9]*\).*/\1/p' "$err")"
    [ "${failed:-0}" != 0 ] && log "$setup: $failed of $IDLE_CONNS idle connections failed: $(cat "$RUN/idle-$setup.txt")"
    return 0
}

# setup | label | HTTP/1.1 address | Host | h2c URL | pid variables (proxy processes)
proxy_pids() { # PID_ variable names -> their pids, one a line
    local v
    for v in "$@"; do echo "${!v}"; done
}

# --- report ------------------------------------------------------------------

mb() { [ -n "${1:-}" ] && calc "$1 / 1024" | awk '{printf "%.1f", $1}' || printf -- '-'; }
ms() { [ -n "${1:-}" ] && calc "$1 / 1000" | awk '{printf "%.2f", $1}' || printf -- '-'; }
ratio() { # value base -> "x0.45", "-" when either is missing
    if [[ "${1:-}" =~ ^[0-9.]+$ ]] && [[ "${2:-}" =~ ^[0-9.]+$ ]] && [ "$(calc "$2 > 0")" = 1 ]; then
        calc "$1 / $2" | awk '{printf "%.2f", $1}'
    else
        printf -- '-'
    fi
}

