#!/usr/bin/env bash
# Builds sagedock/tensorflow-training:latest: SageMaker's training container contract for
# TensorFlow script mode (AWS's sagemaker-training toolkit from PyPI). Builds
# sagedock/tensorflow first (../tensorflow/build.sh), which it is built FROM.
#
# Usage: harness/images/tensorflow-training/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label
#   sagedock.tensorflow-training.source-sha256 matches this folder's Dockerfile and the
#   sagedock/tensorflow image it was built on, unless --force is given (see ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
here="$(dirname "$0")"
exec bash "$here/../pip-image.sh" tensorflow-training \
    "${SAGEDOCK_TF_TRAINING_IMAGE:-sagedock/tensorflow-training:latest}" \
    --base tensorflow sagedock/tensorflow:latest Dockerfile -- "$@"
