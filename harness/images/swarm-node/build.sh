#!/usr/bin/env bash
# Builds sagedock/swarm-node:latest, one node of harness/swarm/up.sh's cluster (see Dockerfile).
# Usage: harness/images/swarm-node/build.sh [--force] [--no-cache]
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,3p' "$0"; exit 0 ;; esac
exec bash "$(dirname "$0")/../pip-image.sh" swarm-node "${SAGEDOCK_SWARM_NODE_IMAGE:-sagedock/swarm-node:latest}" \
    Dockerfile node.sh -- "$@"
