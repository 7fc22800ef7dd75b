#!/usr/bin/env bash
# Builds a serving image FROM sagedock/debian:bookworm whose Dockerfile installs packages
# from PyPI: the shared body of mms/build.sh, tensorflow/build.sh and mxnet/build.sh.
#
# Usage: pip-image.sh NAME IMAGE [--base FOLDER BASE_IMAGE] SOURCE... -- [--force] [--no-cache]
#   NAME     the folder (mms, tensorflow) and the label's middle part
#   IMAGE    the tag to build
#   --base   the image is FROM BASE_IMAGE, another sagedock image: FOLDER/build.sh builds
#            it first, and IMAGE is rebuilt when that base changed (its image ID is hashed
#            with the sources)
#   SOURCE   the folder's files whose hash decides whether the image is up to date
#   Exits 0 at once when IMAGE exists and its label sagedock.NAME.source-sha256 matches the
#   sources' hash (and the base's image ID), unless --force is given (--force rebuilds
#   this image, not the base; use the base's build.sh --force for that). --force reuses
#   Docker's layer cache; --no-cache (implies --force) rebuilds every layer,
#   re-downloading packages.
set -euo pipefail

IMAGES="$(cd "$(dirname "$0")" && pwd)"
NAME="$1"; IMAGE="$2"; shift 2
BASE_ID=""
if [ "${1:-}" = "--base" ]; then
    bash "$IMAGES/$2/build.sh"
    BASE_ID="$(docker image inspect -f '{{.Id}}' "$3")"
    shift 3
fi
SOURCES=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do SOURCES+=("$1"); shift; done
[ "$#" -gt 0 ] && shift
HERE="$IMAGES/$NAME"
CA_SRC="${SAGEDOCK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
FORCE=0
NO_CACHE=()
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --no-cache) FORCE=1; NO_CACHE=(--no-cache) ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[$NAME/build.sh] $*" >&2; }
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

LABEL="sagedock.$NAME.source-sha256"
HASH="$(cd "$HERE" && {
    sha256sum "${SOURCES[@]}"
    [ -z "$BASE_ID" ] || echo "base $BASE_ID"
} | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] \
    && [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$HASH" ]; then
    log "$IMAGE is up to date (sources ${HASH:0:12}; use --force to rebuild); elapsed $(elapsed)"
    exit 0
fi

"$IMAGES/debian/build.sh"

if [ ! -f "$CA_SRC" ]; then
    log "CA bundle $CA_SRC not found (set SAGEDOCK_CA_BUNDLE); pip inside the build needs it"
    exit 1
fi
cp "$CA_SRC" "$HERE/ca-certificates.crt"
trap 'rm -f "$HERE/ca-certificates.crt"' EXIT

log "building $IMAGE"
# The classic builder: this machine's docker client has no buildx plugin.
BUILD_LOG="$(mktemp "/tmp/sagedock-$NAME-build.XXXXXX.log")"
if ! DOCKER_BUILDKIT=0 docker build "${NO_CACHE[@]}" --label "$LABEL=$HASH" -t "$IMAGE" "$HERE" >"$BUILD_LOG" 2>&1; then
    log "docker build failed; last lines of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2
    exit 1
fi
rm -f "$BUILD_LOG"

log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')); elapsed $(elapsed)"
