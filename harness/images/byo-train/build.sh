#!/usr/bin/env bash
# Builds sagedock/byo-train:latest: a bring-your-own SageMaker image (`train` and `serve`
# programs, no toolkit) for the training and transform tests. Builds the base image sagedock/debian:bookworm
# first (../debian/build.sh).
#
# Usage: harness/images/byo-train/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.byo-train.source-sha256
#   matches this folder's sources (Dockerfile, train, serve), unless --force is given (see
#   ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
exec bash "$(dirname "$0")/../pip-image.sh" byo-train "${SAGEDOCK_BYO_TRAIN_IMAGE:-sagedock/byo-train:latest}" \
    Dockerfile train serve -- "$@"
