#!/usr/bin/env bash
# Makes sure a rootful Podman answers Docker's API on a socket of its own, with the test
# images sagedock's Podman suites use, and prints the DOCKER_HOST that reaches it.
#
# Usage: harness/ci/podman.sh [IMAGE...]     (default: sagedock/echo:latest)
#   Installs Debian's podman when it is missing, writes the containers.conf below, starts
#   `podman system service` on unix:///run/sagedock-podman.sock when nothing answers there,
#   and copies each IMAGE from the Docker engine (`docker save | podman load`) unless
#   Podman has it with the same ID. Safe to run again. Prints DOCKER_HOST=… on stdout.
#
# Why the containers.conf: Podman's default rlimits for a container (nofile and nproc of
# 1048576 and more) need CAP_SYS_RESOURCE, which root lacks on these machines, so every
# start fails with "setrlimit RLIMIT_NPROC: Operation not permitted"; the defaults here
# are the limits the service itself has. crun refuses a host whose cgroups are mounted in
# hybrid mode ("cgroups in hybrid mode not supported"), so containers run under runc,
# which Debian's docker.io installs, with cgroupfs (there is no systemd to manage them).
set -euo pipefail

log() { echo "[podman.sh] $*" >&2; }

SOCKET=/run/sagedock-podman.sock
STATE=/run/sagedock-podman
CONF="$STATE/containers.conf"
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(sagedock/echo:latest)

if ! command -v podman >/dev/null 2>&1; then
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "podman is missing: sudo apt-get install -y podman"
        exit 2
    fi
    log "installing podman from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends podman runc crun containernetworking-plugins \
        golang-github-containernetworking-plugin-dnsname >/dev/null
fi

mkdir -p "$STATE"
# Podman lowers its own process limit to 32768 when it cannot raise it: a container may
# ask for no more than the service holds.
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
[[ "$nofile" == unlimited || "$nofile" -gt 1048576 ]] && nofile=1048576
cat >"$CONF.new" <<EOF
# Written by harness/ci/podman.sh: see the comment at its top.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$CONF.new" "$CONF"
export CONTAINERS_CONF="$CONF"

answers() { curl -sf --max-time 2 --unix-socket "$SOCKET" http://podman/_ping >/dev/null 2>&1; }

if answers; then
    log "podman already answers on $SOCKET"
else
    log "starting podman system service on $SOCKET (log: $STATE/service.log)"
    rm -f "$SOCKET"
    nohup podman system service --time=0 "unix://$SOCKET" >"$STATE/service.log" 2>&1 &
    for _ in $(seq 1 40); do answers && break; sleep 0.25; done
    if ! answers; then
        log "podman did not answer within 10 s; last lines of $STATE/service.log:"
        tail -n 30 "$STATE/service.log" >&2 || true
        exit 1
    fi
fi

for image in "${images[@]}"; do
    want="$(docker image inspect -f '{{.Id}}' "$image")"
    have="$(podman image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    if [[ "sha256:$have" == "$want" || "$have" == "$want" ]]; then
        log "$image is in podman already"
        continue
    fi
    log "copying $image from the Docker engine to podman"
    docker save "$image" | podman load -q >/dev/null
done

log "podman $(podman version --format '{{.Server.Version}}' 2>/dev/null || podman --version) answers Docker's API"
echo "DOCKER_HOST=unix://$SOCKET"
