#!/usr/bin/env bash
# The README's demo: make sure a Docker engine answers (installing one on Debian if
# needed), build sagedock, then run `sagedock demo`: pack a bundled model, deploy it
# through the SageMaker API exactly as boto3 would (CreateModel → CreateEndpointConfig →
# CreateEndpoint → wait → InvokeEndpoint) on a real container, show the answer and a
# latency summary, and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash harness/ci/docker.sh
cargo build --release --quiet
exec target/release/sagedock demo "$@"
