#!/usr/bin/env bash
# Builds sagedock/mms:latest: the real Multi Model Server as a SageMaker serving image.
# Builds the base image sagedock/debian:bookworm first (../debian/build.sh).
#
# Usage: harness/images/mms/build.sh [--force] [--no-cache]
#   Exits 0 at once when the image exists and its label sagedock.mms.source-sha256 matches
#   this folder's sources (Dockerfile, entrypoint.sh, log4j2.xml), unless --force is given
#   (see ../pip-image.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,8p' "$0"; exit 0 ;; esac
exec bash "$(dirname "$0")/../pip-image.sh" mms "${SAGEDOCK_MMS_IMAGE:-sagedock/mms:latest}" \
    Dockerfile entrypoint.sh log4j2.xml -- "$@"
