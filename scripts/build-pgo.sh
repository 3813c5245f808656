#!/usr/bin/env bash
# The profile-guided release build of weft: builds an instrumented binary, runs
# it on the benchmark meshes' traffic, merges what it recorded, and rebuilds
# with that profile, so the compiler lays out and inlines for the request
# path. Prints the binary's path, target/pgo/weft (under CARGO_TARGET_DIR if
# set). Takes two release builds (about 18 minutes on 2 cores) plus a minute of
# training; the benchmark scripts call it unless given --no-pgo.
#
#   scripts/build-pgo.sh [--install] [--force]
#
# --install  apt-get install the missing tools (nginx-light wrk curl) and add
#            rustup's llvm-tools component (llvm-profdata). h2load
#            (nghttp2-client), when present, adds h2c to the training.
# --force    rebuild even when target/pgo/weft was built from this commit.
#
# Training traffic, on 127.80.0.x (override with PGO_NET=127.A.B): HTTP/1.1
# through one sidecar and through two (client to server sidecar), h2c through
# one, and through two sidecars over mesh mTLS, with connections reused and
# with a new connection (a full handshake) per request. Code the training
# does not reach is still built, optimised as rarely run code.
#
# A binary is reused while what it is built and trained from (the sources,
# Cargo.toml and Cargo.lock, this script, bench-lib.sh and the benchmark mesh
# configs, as committed), the rustc version and RUSTFLAGS are the same; one
# built while any of those had uncommitted changes never is.
#
# Exits 69 when a tool it needs is missing (the benchmark scripts then
# measure the plain release build and say so).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PGO="$TARGET/pgo"
NET="${PGO_NET:-127.80.0}"
BACKEND_LOCAL_PORT=18080
NOFILE=4096
HAPROXY_MAXCONN=0
DURATION=4
CONNS=32
INSTALL=0
FORCE=0

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --install) INSTALL=1 ;;
        --force) FORCE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

# llvm-profdata must match rustc's LLVM: rustup's llvm-tools component has it.
find_profdata() {
    local sysroot host
    sysroot="$(rustc --print sysroot)"
    host="$(rustc -vV | awk '/^host:/ {print $2}')"
    PROFDATA="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
    [ -x "$PROFDATA" ] && return 0
    if [ "$INSTALL" -eq 1 ] && command -v rustup >/dev/null 2>&1; then
        log "adding rustup's llvm-tools component (llvm-profdata)"
        rustup component add llvm-tools >&2 || die "rustup component add llvm-tools failed"
        [ -x "$PROFDATA" ] && return 0
    fi
    log "no llvm-profdata for rustc's LLVM at $PROFDATA: run 'rustup component add llvm-tools' (or pass --install)"
    exit 69
}

# What the binary is built and trained from. Benchmark, test and doc edits
# leave it out, so they do not cost a 19-minute rebuild.
PGO_INPUTS=(Cargo.toml Cargo.lock src crates scripts/build-pgo.sh scripts/bench-lib.sh benches/proxy benches/mtls)

# The inputs' committed contents, rustc and RUSTFLAGS; empty when an input
# has uncommitted changes (such a build is never reused).
source_key() {
    git -C "$ROOT" diff --quiet HEAD -- "${PGO_INPUTS[@]}" 2>/dev/null || return 0
    [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=normal -- "${PGO_INPUTS[@]}" 2>/dev/null)" ] || return 0
    local trees
    trees="$(git -C "$ROOT" rev-parse "${PGO_INPUTS[@]/#/HEAD:}" 2>/dev/null | tr '\n' ' ')" || return 0
    printf '%s|%s|%s\n' "$(sha256sum <<<"$trees" | cut -c1-16)" "$(rustc -V)" "${RUSTFLAGS:-}"
}

# Stops the weft processes with SIGINT, as Ctrl-C would: they exit normally,
# and the profile runtime writes their counts on the way out.
stop_weft() { # name...
    local name pid
    for name in "$@"; do
        pid="$(eval "echo \${PID_$name:-}")"
        [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null || true
    done
    local i
    for name in "$@"; do
        pid="$(eval "echo \${PID_$name:-}")"
        [ -n "$pid" ] || continue
        for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop within 10 s of SIGINT; its profile is lost"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

# Ends a training mesh: its weft processes (named), then nginx and the run dir.
stop_mesh() { # weft-name...
    stop_weft "$@"
    kill "$PID_backend" 2>/dev/null || true
    wait "$PID_backend" 2>/dev/null || true
    rm -rf "$RUN"
}

drive_wrk() { # addr host
    wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "Host: $2" "http://$1/" >>"$RUN/train.log" 2>&1 \
        || die "wrk failed on $1 (Host: $2); see $RUN/train.log"
}

drive_h2() { # url authority
    h2load -t2 -c"$CONNS" -m10 -D "$DURATION" -H ":authority: $2" "$1" >>"$RUN/train.log" 2>&1 \
        || die "h2load failed on $1; see $RUN/train.log"
}

# The benchmark's plaintext mesh: one hop to nginx, two hops through the
# server sidecar, h2c.
train_plain() {
    RUN="$(mktemp -d /tmp/weft-pgo.XXXXXX)"
    mkdir -p "$RUN/config" "$RUN/tmp-backend"
    render "$ROOT/benches/proxy/mesh.yaml" "$RUN/config/mesh.yaml"
    render "$ROOT/benches/proxy/nginx-backend.conf" "$RUN/nginx-backend.conf"
    start backend nginx -c "$RUN/nginx-backend.conf" -p "$RUN"
    start discovery env RUST_LOG=warn "$INSTRUMENTED" discovery --config-dir "$RUN/config" \
        --grpc-addr "$NET.250:15010" --monitoring-addr "$NET.250:15014"
    local name ip app
    for name in server:2:backend-meshed client1:9:client-one-hop client2:10:client-two-hops; do
        IFS=: read -r name ip app <<<"$name"
        start "$name" env RUST_LOG=error "$INSTRUMENTED" proxy --discovery-address "$NET.250:15010" \
            --ip "$NET.$ip" --namespace bench --name "$name" --labels "app=$app" \
            --service-account "$app" --concurrency 2
    done
    wait_http "http://$NET.9:9080/" backend-direct.bench.svc.cluster.local
    wait_http "http://$NET.10:9080/" backend-meshed.bench.svc.cluster.local
    log "training: HTTP/1.1 one hop, two hops; h2c one hop"
    drive_wrk "$NET.9:9080" backend-direct.bench.svc.cluster.local
    drive_wrk "$NET.10:9080" backend-meshed.bench.svc.cluster.local
    if command -v h2load >/dev/null 2>&1; then
        drive_h2 "http://$NET.9:9080/" backend-direct.bench.svc.cluster.local
    else
        log "no h2load: h2c is left out of the training"
    fi
    stop_mesh client1 client2 server discovery
}

# The mTLS benchmark's mesh: two sidecars with workload certificates.
train_mtls() {
    start_mtls_mesh "$INSTRUMENTED"
    wait_http "http://$NET.10:9080/" backend-mtls.bench.svc.cluster.local
    wait_http "http://$NET.10:9080/" backend-mtls-new.bench.svc.cluster.local
    log "training: mTLS hop, mTLS with a handshake per request"
    drive_wrk "$NET.10:9080" backend-mtls.bench.svc.cluster.local
    drive_wrk "$NET.10:9080" backend-mtls-new.bench.svc.cluster.local
    stop_mesh client server discovery
}

main() {
    check_tools nginx wrk curl
    find_profdata
    local key
    key="$(source_key)"
    if [ "$FORCE" -eq 0 ] && [ -n "$key" ] && [ -x "$PGO/weft" ] \
        && [ "$(cat "$PGO/weft.source" 2>/dev/null)" = "$key" ]; then
        log "reusing $PGO/weft (built from the same sources)"
        echo "$PGO/weft"
        return 0
    fi
    mkdir -p "$PGO"
    rm -rf "$PGO/raw" "$PGO/weft.source"
    # Own target directories: other RUSTFLAGS would make cargo rebuild the
    # plain release build's artefacts next time.
    log "building the instrumented weft (release, about 10 minutes)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$PGO/generate" \
        RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$PGO/raw" \
        cargo build --release --bin weft) >&2
    INSTRUMENTED="$PGO/generate/release/weft"
    train_plain
    train_mtls
    compgen -G "$PGO/raw/*.profraw" >/dev/null || die "the training run wrote no profile in $PGO/raw"
    "$PROFDATA" merge -o "$PGO/weft.profdata" "$PGO/raw" >&2
    log "building weft with the profile (release, about 8 minutes)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$PGO/use" \
        RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PGO/weft.profdata" \
        cargo build --release --bin weft) >&2
    cp "$PGO/use/release/weft" "$PGO/weft.new" && mv "$PGO/weft.new" "$PGO/weft"
    [ -n "$key" ] && echo "$key" >"$PGO/weft.source"
    echo "$PGO/weft"
}

main
