#!/usr/bin/env bash
# InvokeEndpoint overhead: the echo container called directly vs through sagedock, with
# the same load in the same run.
#
#   bash benches/invoke_overhead.sh [SECONDS] [ROUNDS]      (defaults 10 and 3)
#
# Starts `sagedock serve` (release build) on sagedock/echo (ECHO_QUIET=1), then runs wrk
# (1 thread, 32 connections, POST of a 100-byte body) alternately against the container's
# own address and against sagedock's /invocations, and prints each run's requests/s and
# latency percentiles. Needs wrk, a Docker engine and the test images. On a 2-core machine
# wrk, sagedock and the container share the cores: the "via sagedock" runs pay for the
# proxy's CPU as well as its latency.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
rounds="${2:-3}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --quiet
work="$(mktemp -d)"
target/release/sagedock serve --image sagedock/echo:latest --port 0 -e ECHO_QUIET=1 --name bench >"$work/out" 2>"$work/err" &
serve=$!
trap 'kill -TERM $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do grep -q "instance .* at " "$work/out" && break; sleep 0.1; done
via="$(sed -n 's/^  POST \(http:\/\/[^ ]*\/invocations\)$/\1/p' "$work/out" | head -n1)"
direct="http://$(sed -n 's/^  instance [^ ]* at \([0-9.:]*\).*/\1/p' "$work/out" | head -n1)/invocations"
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 100)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
run() {
    wrk -t1 -c32 -d"${seconds}s" --latency -s "$work/post.lua" "$1" \
        | awk -v who="$2" '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2} /Non-2xx/{bad=$NF}
              END {printf "%-15s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n", who, rps, p50, p99, (bad==""?0:bad)}'
}
echo "direct: $direct   via sagedock: $via   ${seconds}s per run, wrk -t1 -c32"
for r in $(seq 1 "$rounds"); do
    run "$direct" "direct"
    run "$via" "via sagedock"
done
