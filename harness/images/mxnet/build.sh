#!/usr/bin/env bash
# Builds sagedock/mxnet:latest: SageMaker's MXNet serving container (the SageMaker MXNet
# inference toolkit on Multi Model Server, MXNet 1.9.1 from PyPI). Builds sagedock/mms
# first (../mms/build.sh), which it is built FROM.
#
# Usage: harness/images/mxnet/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.mxnet.source-sha256
#   matches this folder's sources (Dockerfile, entrypoint.py) and the sagedock/mms image
#   it was built on, unless --force is given (see ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
here="$(dirname "$0")"
exec bash "$here/../pip-image.sh" mxnet "${SAGEDOCK_MXNET_IMAGE:-sagedock/mxnet:latest}" \
    --base mms sagedock/mms:latest Dockerfile entrypoint.py -- "$@"
