#!/usr/bin/env bash
# Builds sagedock/xgboost:latest: SageMaker's XGBoost container (the built-in algorithm
# 1.7-1, trained and served, and script mode), XGBoost 1.7.4 from Debian. Builds
# sagedock/sklearn first (../sklearn/build.sh), which it is built FROM.
#
# Usage: harness/images/xgboost/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.xgboost.source-sha256
#   matches this folder's sources and the sagedock/sklearn image it was built on, unless
#   --force is given (see ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
here="$(dirname "$0")"
exec bash "$here/../pip-image.sh" xgboost "${SAGEDOCK_XGBOOST_IMAGE:-sagedock/xgboost:latest}" \
    --base sklearn sagedock/sklearn:latest Dockerfile entrypoint.py sagedock_xgboost/__init__.py sagedock_xgboost/data.py \
    sagedock_xgboost/hyperparameters.py sagedock_xgboost/selectable.py sagedock_xgboost/serving.py sagedock_xgboost/training.py \
    -- "$@"
