#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine.
#
# CI machines and fresh developer machines start with only the docker client: no engine
# runs. This installs Debian's docker.io when dockerd is missing and starts dockerd in the
# background when `docker info` fails, then waits (bounded) until the engine answers.
# Safe to run again: it does nothing when an engine already answers.
set -euo pipefail

log() { echo "[docker.sh] $*" >&2; }

if docker info >/dev/null 2>&1; then
    log "engine already answers"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq docker.io >/dev/null
fi

log "starting dockerd (log: /tmp/dockerd.log)"
nohup dockerd >/tmp/dockerd.log 2>&1 &

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        log "engine answers: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
        exit 0
    fi
    sleep 0.5
done
log "dockerd did not answer within 30 s; last lines of /tmp/dockerd.log:"
tail -n 30 /tmp/dockerd.log >&2 || true
exit 1
