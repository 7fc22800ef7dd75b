#!/usr/bin/env bash
# Builds sagedock/sklearn:latest: SageMaker's scikit-learn serving container (nginx,
# gunicorn and the SageMaker containers library, scikit-learn 1.4.2, from PyPI). Builds
# the base image sagedock/debian:bookworm first (../debian/build.sh).
#
# Usage: harness/images/sklearn/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.sklearn.source-sha256
#   matches this folder's sources (Dockerfile, entrypoint.py, sagedock_sklearn_serving.py),
#   unless --force is given (see ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
exec bash "$(dirname "$0")/../pip-image.sh" sklearn "${SAGEDOCK_SKLEARN_IMAGE:-sagedock/sklearn:latest}" \
    Dockerfile entrypoint.py sagedock_sklearn_serving.py -- "$@"
