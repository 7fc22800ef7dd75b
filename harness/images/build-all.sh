#!/usr/bin/env bash
# Builds every test image this repository needs (idempotent: images that are up to date
# are left alone). Needs a Docker engine (harness/ci/docker.sh) and, for the Debian base
# of the MMS image, network access to Debian's package mirror and PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/echo/build.sh"
bash "$here/mms/build.sh"
bash "$here/tensorflow/build.sh"
bash "$here/tensorflow-training/build.sh"
bash "$here/mxnet/build.sh"
bash "$here/sklearn/build.sh"
bash "$here/xgboost/build.sh"
bash "$here/pytorch/build.sh"
bash "$here/byo-train/build.sh"
