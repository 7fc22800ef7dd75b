#!/usr/bin/env bash
# Runs every sagedock test, as CI does: makes sure a Docker engine answers (installing
# and starting one if needed), builds the test images (harness/images, idempotent), then
# runs the Rust test suite with cargo-nextest (or cargo test where nextest is missing).
# Safe to run again and again.
#
# Under CI=true a test that needs Docker fails when no engine answers: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash harness/ci/docker.sh
bash harness/images/build-all.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast --final-status-level=fail
else
    cargo test --locked --no-fail-fast
fi
