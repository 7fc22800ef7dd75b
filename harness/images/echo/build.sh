#!/usr/bin/env bash
# Builds sagedock/echo:latest: a tiny SageMaker serving container for sagedock's tests
# (FROM scratch + a static std-only Rust binary; see README.md).
#
# Usage: harness/images/echo/build.sh [--force]
#   Exits 0 at once when the image exists and its label sagedock.echo.source-sha256 matches
#   the sources (Cargo.toml, src/*.rs, Dockerfile); otherwise compiles the crate (static,
#   target dir ./target) and builds the image. --force rebuilds anyway.
#   Builds are serialised with a lock file (./target/.build.lock): one cargo at a time.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${SAGEDOCK_ECHO_IMAGE:-sagedock/echo:latest}"
LABEL=sagedock.echo.source-sha256
TARGET=x86_64-unknown-linux-gnu
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[echo/build.sh] $*" >&2; }
start=$(date +%s%N)
elapsed() { awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.1f s", ns / 1e9 }'; }

# Hash of everything that goes into the image, in a stable order.
source_hash() {
    (cd "$HERE" && find Cargo.toml Dockerfile src -type f | LC_ALL=C sort | xargs sha256sum) \
        | sha256sum | cut -d' ' -f1
}
image_hash() {
    docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true
}

HASH="$(source_hash)"
if [ "$FORCE" = 0 ] && [ "$(image_hash)" = "$HASH" ]; then
    log "$IMAGE is up to date (sources ${HASH:0:12}; use --force to rebuild); elapsed $(elapsed)"
    exit 0
fi

mkdir -p "$HERE/target"
exec 9>"$HERE/target/.build.lock"
flock 9
# Another build.sh may have built it while we waited for the lock.
if [ "$FORCE" = 0 ] && [ "$(image_hash)" = "$HASH" ]; then
    log "$IMAGE was built meanwhile (sources ${HASH:0:12}); elapsed $(elapsed)"
    exit 0
fi

log "compiling sagedock-echo (static, $TARGET)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --quiet \
    --manifest-path "$HERE/Cargo.toml" --target "$TARGET" --target-dir "$HERE/target"
BIN="$HERE/target/$TARGET/release/sagedock-echo"

CONTEXT="$(mktemp -d /tmp/sagedock-echo-context.XXXXXX)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$HERE/Dockerfile" "$CONTEXT/Dockerfile"
cp "$BIN" "$CONTEXT/echo"

OLD_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
log "building $IMAGE"
# The classic builder: this machine's docker client has no buildx plugin.
BUILD_LOG="$CONTEXT.log"
if ! DOCKER_BUILDKIT=0 docker build --label "$LABEL=$HASH" -t "$IMAGE" "$CONTEXT" >"$BUILD_LOG" 2>&1; then
    log "docker build failed; last lines of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2
    exit 1
fi
rm -f "$BUILD_LOG"
# Drop the image this one replaced (left untagged), unless a container still uses it.
NEW_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
    docker image rm "$OLD_ID" >/dev/null 2>&1 || true
fi

log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'), sources ${HASH:0:12}); elapsed $(elapsed)"
