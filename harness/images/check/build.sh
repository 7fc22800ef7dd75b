#!/usr/bin/env bash
# Builds the images `sagedock check`'s tests break the container contract with, each
# from an image built here (no registry):
#   sagedock/check-shell-form  ENTRYPOINT in shell form (`sh -c`, the shell stays PID 1
#                              and does not pass SIGTERM on)
#   sagedock/check-tini        ENTRYPOINT ["/tini", "--"] with the program in CMD, which
#                              SageMaker's `serve` replaces
#   sagedock/check-user        USER 1000
# Needs sagedock/echo:latest (../echo/build.sh) and sagedock/debian:bookworm
# (../debian/build.sh), and /usr/bin/tini-static (Debian's tini, a dependency of docker.io).
# Idempotent and quick: the classic builder's cache makes a rebuild take well under a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp /usr/bin/tini-static "$ctx/tini"
for name in shell-form tini user; do
    cp "$here/$name.Dockerfile" "$ctx/Dockerfile"
    if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "sagedock/check-$name:latest" "$ctx" 2>&1); then
        echo "$out" >&2
        exit 1
    fi
done
echo "[check/build.sh] built sagedock/check-{shell-form,tini,user}" >&2
