#!/usr/bin/env bash
# Removes the swarm harness/swarm/up.sh stood up: its nodes (with their engines' volumes,
# so every image and container inside goes too) and their network.
set -euo pipefail
nodes="$(docker ps -aq --filter label=sagedock.swarm=true)"
[[ -z "$nodes" ]] || docker rm -f -v $nodes >/dev/null
docker network rm sagedock-swarm >/dev/null 2>&1 || true
rm -rf /run/sagedock-swarm
echo "[swarm/down.sh] removed" >&2
