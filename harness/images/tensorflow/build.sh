#!/usr/bin/env bash
# Builds sagedock/tensorflow:latest: SageMaker's TensorFlow Serving container contract on
# real TensorFlow (tensorflow-cpu from PyPI; see serve.py). Builds the base image
# sagedock/debian:bookworm first (../debian/build.sh).
#
# Usage: harness/images/tensorflow/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.tensorflow.source-sha256
#   matches this folder's sources (Dockerfile, serve.py), unless --force is given (see
#   ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
exec bash "$(dirname "$0")/../pip-image.sh" tensorflow "${SAGEDOCK_TF_IMAGE:-sagedock/tensorflow:latest}" \
    Dockerfile serve.py -- "$@"
