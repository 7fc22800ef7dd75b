#!/usr/bin/env bash
# Builds the local Debian base image sagedock/debian:bookworm from nothing.
#
# There is no container registry on these machines (`docker pull` fails), so the base
# for every Debian-based test image is bootstrapped here with debootstrap from the same
# Debian mirror the host's apt uses, then imported with `docker import`.
#
# Usage: harness/images/debian/build.sh [--force]
#   Exits 0 at once when the image already exists, unless --force is given.
# Env:   SAGEDOCK_DEBIAN_MIRROR  overrides the mirror read from the host's apt sources.
#        SAGEDOCK_DEBIAN_IMAGE   overrides the tag (default sagedock/debian:bookworm).
set -euo pipefail

IMAGE="${SAGEDOCK_DEBIAN_IMAGE:-sagedock/debian:bookworm}"
SUITE=bookworm
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[debian/build.sh] $*" >&2; }
start=$(date +%s)

if [ "$FORCE" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already exists (use --force to rebuild)"
    exit 0
fi

# --- the mirror: whatever the host's apt uses for the main Debian archive -------------
SOURCES_FILE=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    SOURCES_FILE=/etc/apt/sources.list.d/debian.sources
elif [ -s /etc/apt/sources.list ]; then
    SOURCES_FILE=/etc/apt/sources.list
fi

find_mirror() {
    local f="$1"
    case "$f" in
        *.sources)
            # deb822: first stanza of Types: deb whose Suites name the release itself
            # (not only -security / -updates); take its first URI.
            awk -v suite="$SUITE" '
                BEGIN { RS=""; FS="\n" }
                {
                    uris=""; suites=""; types=""
                    for (i = 1; i <= NF; i++) {
                        if ($i ~ /^URIs:/)   { uris=$i;   sub(/^URIs:[ \t]*/, "", uris) }
                        if ($i ~ /^Suites:/) { suites=" " $i " " }
                        if ($i ~ /^Types:/)  { types=$i }
                    }
                    if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ ("[ \t]" suite "[ \t]") && uris != "") {
                        split(uris, u, /[ \t]+/); print u[1]; exit
                    }
                }' "$f"
            ;;
        *)
            # one-line format: deb [opts] URI SUITE COMPONENTS...
            awk -v suite="$SUITE" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i+1) == suite) { print $i; exit }
                }' "$f"
            ;;
    esac
}

MIRROR="${SAGEDOCK_DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ] && [ -n "$SOURCES_FILE" ]; then
    MIRROR="$(find_mirror "$SOURCES_FILE")"
fi
if [ -z "$MIRROR" ]; then
    log "could not find a Debian mirror for '$SUITE' in the host's apt sources;"
    log "set SAGEDOCK_DEBIAN_MIRROR=http://<mirror>/debian"
    exit 1
fi
log "mirror: $MIRROR (from ${SOURCES_FILE:-SAGEDOCK_DEBIAN_MIRROR})"

# --- debootstrap ------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
fi

WORK="$(mktemp -d /tmp/sagedock-debian.XXXXXX)"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ROOTFS="$WORK/rootfs"

log "debootstrap --variant=minbase $SUITE into $ROOTFS"
if ! debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    log "debootstrap failed; last lines of its log:"
    tail -n 30 "$WORK/debootstrap.log" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    exit 1
fi

# --- make apt inside containers use the same sources as the host ------------------------
rm -f "$ROOTFS/etc/apt/sources.list"
mkdir -p "$ROOTFS/etc/apt/sources.list.d" "$ROOTFS/etc/apt/apt.conf.d"
if [ -n "$SOURCES_FILE" ]; then
    cp "$SOURCES_FILE" "$ROOTFS/etc/apt/sources.list.d/$(basename "$SOURCES_FILE" | sed 's/^sources\.list$/debian.list/')"
else
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOTFS/etc/apt/sources.list.d/debian.list"
fi
# Carry over the host's apt settings that decide whether that mirror is usable at all
# (a snapshot mirror needs Check-Valid-Until false; a proxy must be reused). Only these
# keys are copied; nothing else of the host's apt configuration.
if command -v apt-config >/dev/null 2>&1; then
    apt-config dump 2>/dev/null \
        | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy)( |::)' \
        >"$ROOTFS/etc/apt/apt.conf.d/90sagedock-host" || true
    [ -s "$ROOTFS/etc/apt/apt.conf.d/90sagedock-host" ] || rm -f "$ROOTFS/etc/apt/apt.conf.d/90sagedock-host"
fi
# Container-friendly apt defaults (the same ideas as Debian's official images).
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
echo 'APT::Install-Recommends "false";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends"

# Trim what a container never needs.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/debootstrap
: >"$ROOTFS/etc/hostname"
rm -f "$ROOTFS/etc/resolv.conf"   # docker bind-mounts its own

log "importing as $IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' \
    -m "debootstrap --variant=minbase $SUITE (sagedock harness/images/debian/build.sh)" \
    - "$IMAGE" >/dev/null

log "built $IMAGE in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
