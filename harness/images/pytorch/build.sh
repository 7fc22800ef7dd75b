#!/usr/bin/env bash
# Builds sagedock/pytorch:latest: SageMaker's PyTorch inference container, CPU (the
# SageMaker PyTorch inference toolkit on TorchServe from PyPI, PyTorch 1.13.1 from Debian).
# Builds sagedock/mms first (../mms/build.sh), which it is built FROM.
#
# Usage: harness/images/pytorch/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.pytorch.source-sha256
#   matches this folder's sources (Dockerfile, entrypoint.py, make_model.py) and the
#   sagedock/mms image it was built on, unless --force is given (see ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
here="$(dirname "$0")"
exec bash "$here/../pip-image.sh" pytorch "${SAGEDOCK_PYTORCH_IMAGE:-sagedock/pytorch:latest}" \
    --base mms sagedock/mms:latest Dockerfile entrypoint.py make_model.py -- "$@"
