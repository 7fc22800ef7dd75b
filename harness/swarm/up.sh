#!/usr/bin/env bash
# Stands up a Docker Swarm of N nodes (default 3) on this one machine, as docker-in-docker
# containers of sagedock/swarm-node on the bridge network sagedock-swarm, with a registry
# on the first node; pushes the given images into that registry. Safe to run again: a
# running cluster is kept and only the images are pushed.
#
# Usage: harness/swarm/up.sh [--nodes N] [IMAGE...]     (default image: sagedock/echo:latest)
#   Prints, on stdout, what sagedock needs:
#     DOCKER_HOST=unix:///run/sagedock-swarm/sagedock-swarm-1.sock    the manager's API
#     SAGEDOCK_REGISTRY=sagedock-swarm-1:5000                        the cluster's registry
#   Each IMAGE is pushed as sagedock-swarm-1:5000/IMAGE, as a user's serving image sits in
#   ECR. harness/swarm/down.sh removes the cluster.
#
# The nodes are not --privileged (this host's engine refuses it): they get every
# capability but CAP_SYS_RESOURCE, with seccomp, AppArmor and the masked system paths
# unconfined, and remount /sys and the cgroup hierarchies writable at start (node.sh).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "[swarm/up.sh] $*" >&2; }
start=$(date +%s%N)
elapsed() { awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.1f s", ns / 1e9 }'; }

nodes=3
images=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nodes) nodes="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) images+=("$1"); shift ;;
    esac
done
[[ ${#images[@]} -gt 0 ]] || images=(sagedock/echo:latest)

NETWORK=sagedock-swarm
SOCKETS=/run/sagedock-swarm
REGISTRY=sagedock-swarm-1:5000
IMAGE="${SAGEDOCK_SWARM_NODE_IMAGE:-sagedock/swarm-node:latest}"
node() { echo "sagedock-swarm-$1"; }
on() { local n="$1"; shift; docker -H "unix://$SOCKETS/$(node "$n").sock" "$@"; }

bash "$here/../images/swarm-node/build.sh"
docker network inspect "$NETWORK" >/dev/null 2>&1 \
    || docker network create --label sagedock.swarm=true "$NETWORK" >/dev/null
mkdir -p "$SOCKETS"

for n in $(seq 1 "$nodes"); do
    name="$(node "$n")"
    if [[ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" == true ]]; then
        continue
    fi
    docker rm -f -v "$name" >/dev/null 2>&1 || true
    registry=0
    [[ $n == 1 ]] && registry=1
    log "starting node $name"
    docker run -d --name "$name" --hostname "$name" --network "$NETWORK" \
        --label sagedock.swarm=true \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined \
        --tmpfs /run --tmpfs /tmp \
        -v "$SOCKETS:$SOCKETS" \
        -e SAGEDOCK_REGISTRY="$registry" -e SAGEDOCK_REGISTRY_ADDR="$REGISTRY" \
        "$IMAGE" >/dev/null
done

for n in $(seq 1 "$nodes"); do
    for _ in $(seq 1 120); do
        on "$n" info >/dev/null 2>&1 && break
        sleep 0.25
    done
    if ! on "$n" info >/dev/null 2>&1; then
        log "node $(node "$n")'s engine did not answer within 30 s; its log:"
        docker logs --tail 30 "$(node "$n")" >&2
        exit 1
    fi
done

if [[ "$(on 1 info -f '{{.Swarm.LocalNodeState}}')" != active ]]; then
    addr="$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$(node 1)")"
    log "initialising the swarm on $(node 1) ($addr)"
    on 1 swarm init --advertise-addr "$addr" >/dev/null
fi
token="$(on 1 swarm join-token -q worker)"
manager="$(on 1 info -f '{{.Swarm.NodeAddr}}'):2377"
for n in $(seq 2 "$nodes"); do
    if [[ "$(on "$n" info -f '{{.Swarm.LocalNodeState}}')" != active ]]; then
        log "joining $(node "$n") to the swarm"
        on "$n" swarm join --token "$token" "$manager" >/dev/null
    fi
done

# A node that was stopped and started again takes a few seconds to be Ready once more.
ready() { [[ "$(on 1 node ls --format '{{.Status}}' | grep -c '^Ready$')" -ge "$nodes" ]]; }
for _ in $(seq 1 120); do ready && break; sleep 0.5; done
if ! ready; then
    log "not every node is Ready within 60 s:"
    on 1 node ls >&2
    exit 1
fi

for image in "${images[@]}"; do
    want="$(docker image inspect -f '{{.Id}}' "$image")"
    if [[ "$(on 1 image inspect -f '{{.Id}}' "$REGISTRY/$image" 2>/dev/null)" != "$want" ]]; then
        log "pushing $image to the registry as $REGISTRY/$image"
        docker save "$image" | on 1 load -q >/dev/null
        on 1 tag "$image" "$REGISTRY/$image"
    fi
    on 1 push -q "$REGISTRY/$image" >/dev/null
done

log "swarm of $nodes nodes ready, $(on 1 node ls -q | wc -l) joined; elapsed $(elapsed)"
echo "DOCKER_HOST=unix://$SOCKETS/$(node 1).sock"
echo "SAGEDOCK_REGISTRY=$REGISTRY"
