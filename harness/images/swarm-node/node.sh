#!/bin/bash
# A swarm node's entry point: makes the kernel interfaces a nested engine writes writable,
# starts the registry when asked (SAGEDOCK_REGISTRY=1), then runs dockerd in the
# foreground. Its API is also served on /run/sagedock-swarm/<hostname>.sock when that
# folder is mounted from the host.
set -euo pipefail

# Docker mounts /sys and every cgroup hierarchy read-only in a container; the node's
# engine makes cgroups and network devices.
# (A bind remount changes this mount's flags only: the hierarchies are the host's.)
mount -o remount,rw /sys
for hierarchy in /sys/fs/cgroup/*; do
    if mountpoint -q "$hierarchy"; then
        mount -o remount,bind,rw "$hierarchy"
    fi
done

if [[ "${SAGEDOCK_REGISTRY:-0}" == 1 ]]; then
    # Debian's default config asks for htpasswd credentials; this cluster's registry, like
    # a private network's, takes none.
    cat >/etc/docker/registry/sagedock.yml <<'YAML'
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker/registry
  delete:
    enabled: true
http:
  addr: :5000
YAML
    docker-registry serve /etc/docker/registry/sagedock.yml >/var/log/registry.log 2>&1 &
fi

hosts=(--host unix:///var/run/docker.sock)
if [[ -d /run/sagedock-swarm ]]; then
    rm -f "/run/sagedock-swarm/$(hostname).sock"
    hosts+=(--host "unix:///run/sagedock-swarm/$(hostname).sock")
fi
# Each node's containers get cgroups of their own, apart from the host engine's /docker.
exec dockerd "${hosts[@]}" \
    --storage-driver overlay2 \
    --cgroup-parent "/$(hostname)" \
    --insecure-registry "${SAGEDOCK_REGISTRY_ADDR:-sagedock-swarm-1:5000}"
