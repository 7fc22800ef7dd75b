#!/usr/bin/env bash
# Builds sagedock/mms:latest: the real Multi Model Server as a SageMaker serving image.
# Builds the base image sagedock/debian:bookworm first (../debian/build.sh).
#
# Usage: harness/images/mms/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.mms.source-sha256 matches
#   this folder's sources (Dockerfile, entrypoint.sh, log4j2.xml), unless --force is given
#   (--force rebuilds this image, not the base; use ../debian/build.sh --force for that).
#   --force reuses Docker's layer cache (picks up edits in this folder in seconds);
#   --no-cache (implies --force) rebuilds every layer, re-downloading packages.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${SAGEDOCK_MMS_IMAGE:-sagedock/mms:latest}"
CA_SRC="${SAGEDOCK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
FORCE=0
NO_CACHE=()
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --no-cache) FORCE=1; NO_CACHE=(--no-cache) ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[mms/build.sh] $*" >&2; }
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

LABEL=sagedock.mms.source-sha256
HASH="$(cd "$HERE" && sha256sum Dockerfile entrypoint.sh log4j2.xml | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] \
    && [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$HASH" ]; then
    log "$IMAGE is up to date (sources ${HASH:0:12}; use --force to rebuild); elapsed $(elapsed)"
    exit 0
fi

"$HERE/../debian/build.sh"

if [ ! -f "$CA_SRC" ]; then
    log "CA bundle $CA_SRC not found (set SAGEDOCK_CA_BUNDLE); pip inside the build needs it"
    exit 1
fi
cp "$CA_SRC" "$HERE/ca-certificates.crt"
trap 'rm -f "$HERE/ca-certificates.crt"' EXIT

log "building $IMAGE"
# The classic builder: this machine's docker client has no buildx plugin.
BUILD_LOG="$(mktemp /tmp/sagedock-mms-build.XXXXXX.log)"
if ! DOCKER_BUILDKIT=0 docker build "${NO_CACHE[@]}" --label "$LABEL=$HASH" -t "$IMAGE" "$HERE" >"$BUILD_LOG" 2>&1; then
    log "docker build failed; last lines of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2
    exit 1
fi
rm -f "$BUILD_LOG"

log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')); elapsed $(elapsed)"
