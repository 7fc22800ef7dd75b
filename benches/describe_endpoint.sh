#!/usr/bin/env bash
# DescribeEndpoint throughput (what boto3 waiters poll) against a real `sagedock up`.
#
#   bash benches/describe_endpoint.sh [SECONDS]      (default 10)
#
# Starts `sagedock up` (release build) with a temporary data directory, deploys one
# endpoint on sagedock/echo through the API, then loads DescribeEndpoint with wrk (one
# thread, 32 connections; the other core is sagedock's) and prints wrk's report.
# Needs wrk (apt-get install wrk), a Docker engine and the test images.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --quiet
work="$(mktemp -d)"
SAGEDOCK_CACHE_DIR="$work/cache" target/release/sagedock up --port 0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
up=$!
trap 'kill -TERM $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' "$work/out")"
api() {
    curl -sf -X POST "$url/" -H "Content-Type: application/x-amz-json-1.1" -H "X-Amz-Target: SageMaker.$1" -d "$2"
}
api CreateModel '{"ModelName":"bench","PrimaryContainer":{"Image":"sagedock/echo:latest"}}' >/dev/null
api CreateEndpointConfig '{"EndpointConfigName":"bench","ProductionVariants":[{"VariantName":"AllTraffic","ModelName":"bench","InitialInstanceCount":1,"InstanceType":"ml.m5.large"}]}' >/dev/null
api CreateEndpoint '{"EndpointName":"bench","EndpointConfigName":"bench"}' >/dev/null
until api DescribeEndpoint '{"EndpointName":"bench"}' | grep -q '"InService"'; do sleep 0.1; done
cat >"$work/describe.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"EndpointName":"bench"}'
wrk.headers["Content-Type"] = "application/x-amz-json-1.1"
wrk.headers["X-Amz-Target"] = "SageMaker.DescribeEndpoint"
LUA
echo "DescribeEndpoint against $url for ${seconds}s (wrk -t1 -c32):"
wrk -t1 -c32 -d"${seconds}s" --latency -s "$work/describe.lua" "$url/"
