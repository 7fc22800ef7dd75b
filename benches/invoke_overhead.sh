#!/usr/bin/env bash
# InvokeEndpoint overhead: the echo container called directly vs through sagedock, with
# the same load in the same run.
#
#   bash benches/invoke_overhead.sh [SECONDS] [ROUNDS]      (defaults 5 and 5)
#
# Starts `sagedock serve` (release build) on sagedock/echo (ECHO_QUIET=1), then runs wrk
# (1 thread, POST of a 100-byte body) alternately against the container's own address and
# against sagedock's /invocations, ROUNDS times per scenario, and prints per scenario the
# median of the rounds' requests/s, p50 and p99, and what sagedock adds; for the runs
# through sagedock also its CPU time per invocation (user + system, from /proc), which
# varies far less than latency on a shared VM:
#
#   1 client, no model time      the latency a single caller sees added
#   32 clients, no model time    saturation: every core is busy, so the proxy's own CPU
#                                (two HTTP exchanges per call) costs throughput
#   32 clients, 5 ms model       a model that takes 5 ms (custom attribute sleep_ms=5)
#
# When nginx and HAProxy are installed (apt-get install -y nginx-light haproxy), the same
# load also runs through each of them, as reference reverse proxies in front of the same
# container (HTTP/1.1 keep-alive to it, one worker per core), so what sagedock adds can be
# read against what the best-known proxies add on the same machine. The fourth reference is
# what `docker run -p` gives without sagedock: a second echo container with its port
# published on 127.0.0.1, called through the engine's docker-proxy.
#
# Needs wrk, a Docker engine and the test images. On a 2-core machine wrk, sagedock and
# the container share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
rounds="${2:-5}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --quiet
work="$(mktemp -d)"
target/release/sagedock serve --image sagedock/echo:latest --port 0 -e ECHO_QUIET=1 --name bench >"$work/out" 2>"$work/err" &
serve=$!
stop_references() {
    [ -f "$work/published.id" ] && docker rm -f "$(cat "$work/published.id")" >/dev/null 2>&1
    [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null
    [ -f "$work/haproxy.pid" ] && kill -TERM "$(cat "$work/haproxy.pid")" 2>/dev/null
    return 0
}
trap 'stop_references; kill -TERM $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do grep -q "instance .* at " "$work/out" && break; sleep 0.1; done
via="$(sed -n 's/^  POST \(http:\/\/[^ ]*\/invocations\)$/\1/p' "$work/out" | head -n1)"
container="$(sed -n 's/^  instance [^ ]* at \([0-9.:]*\).*/\1/p' "$work/out" | head -n1)"
direct="http://$container/invocations"
declare -A url=([direct]="$direct" [via]="$via")
paths="direct via"

# A free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cores="$(nproc)"
if command -v nginx >/dev/null; then
    port="$(free_port)"
    cat >"$work/nginx.conf" <<CONF
worker_processes $cores;
pid $work/nginx.pid;
error_log $work/nginx.log;
events { worker_connections 1024; }
http {
    access_log off;
    upstream echo { server $container; keepalive 64; }
    server {
        listen 127.0.0.1:$port;
        location / { proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
    nginx -c "$work/nginx.conf" -e "$work/nginx.log"
    for _ in $(seq 1 50); do [ -s "$work/nginx.pid" ] && break; sleep 0.1; done
    url[nginx]="http://127.0.0.1:$port/invocations"; paths="$paths nginx"
fi
if command -v haproxy >/dev/null; then
    port="$(free_port)"
    cat >"$work/haproxy.cfg" <<CONF
global
    nbthread $cores
    daemon
    pidfile $work/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend in
    bind 127.0.0.1:$port
    default_backend container
backend container
    server echo $container
CONF
    haproxy -f "$work/haproxy.cfg"
    url[haproxy]="http://127.0.0.1:$port/invocations"; paths="$paths haproxy"
fi
if command -v docker >/dev/null; then
    docker run -d --rm -p 127.0.0.1::8080 -e ECHO_QUIET=1 --name "sagedock-bench-published-$$" \
        sagedock/echo:latest serve >"$work/published.id"
    published="$(docker port "$(cat "$work/published.id")" 8080/tcp | head -n1)"
    for _ in $(seq 1 100); do
        curl -fs "http://$published/ping" >/dev/null 2>&1 && break
        sleep 0.1
    done
    url[published]="http://$published/invocations"; paths="$paths published"
fi
for sleep_ms in 0 5; do
    cat >"$work/post-$sleep_ms.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("x", 100)
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["X-Amzn-SageMaker-Custom-Attributes"] = "sleep_ms=$sleep_ms"
LUA
done

# The processes that serve a path (none for direct).
pids() {
    case "$1" in
        via) echo "$serve" ;;
        nginx) pgrep -P "$(cat "$work/nginx.pid")" ;;
        haproxy) cat "$work/haproxy.pid" ;;
        published) pgrep -f "docker-proxy .*-host-port ${published##*:}( |$)" ;;
    esac
}
# Their CPU time so far, in clock ticks.
ticks() {
    local total=0 pid
    for pid in $(pids "$1"); do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo "$total"
}
hz="$(getconf CLK_TCK)"

# One wrk run on a path: prints "rps p50_us p99_us non2xx cpu_us_per_call".
run() {
    local before after
    before="$(ticks "$1")"
    wrk -t1 -c"$2" -d"${seconds}s" --latency -s "$work/post-$3.lua" "${url[$1]}" >"$work/wrk.out"
    after="$(ticks "$1")"
    awk -v cpu="$((after - before))" -v hz="$hz" '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
        /^ +50%/ {p50 = us($2)} /^ +99%/ {p99 = us($2)} /^Requests\/sec/ {rps = $2} /Non-2xx/ {bad = $NF}
        / requests in / {n = $1}
        END {printf "%.0f %.0f %.0f %d %.1f\n", rps, p50, p99, bad + 0, (n > 0 ? cpu * 1e6 / hz / n : 0)}' "$work/wrk.out"
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "direct: $direct   via sagedock: $via   references: ${paths#direct via}"
echo "wrk -t1, ${seconds}s x $rounds rounds, medians; 'added' rows compare each proxy with direct, round by round"
printf "%-26s %-20s %10s %9s %9s %13s\n" scenario path "req/s" "p50 us" "p99 us" "CPU us/call"
for scenario in "1 0" "32 0" "32 5"; do
    read -r clients sleep_ms <<<"$scenario"
    for path in $paths; do : >"$work/$path"; done
    for _ in $(seq 1 "$rounds"); do
        for path in $paths; do run "$path" "$clients" "$sleep_ms" >>"$work/$path"; done
    done
    for path in $paths; do
        if awk '$4 > 0 {bad = 1} END {exit !bad}' "$work/$path"; then
            echo "non-2xx answers through $path in scenario '$scenario'" >&2; exit 1
        fi
    done
    label="$clients client(s), model ${sleep_ms} ms"
    for path in $paths; do
        cpu="$(cut -d' ' -f5 "$work/$path" | median)"
        [ "$path" = direct ] && cpu="-"
        name="$path"; [ "$path" = via ] && name="sagedock"; [ "$path" = published ] && name="docker run -p"
        printf "%-26s %-20s %10s %9s %9s %13s\n" "$label" "$name" \
            "$(cut -d' ' -f1 "$work/$path" | median)" "$(cut -d' ' -f2 "$work/$path" | median)" \
            "$(cut -d' ' -f3 "$work/$path" | median)" "$cpu"
    done
    # Per round: proxy/direct throughput and the added p50 and p99 (rounds are paired).
    for path in ${paths#direct}; do
        paste -d' ' "$work/direct" "$work/$path" \
            | awk '{print $6 / $1, $7 - $2, $8 - $3}' >"$work/added"
        name="$path"; [ "$path" = via ] && name="sagedock"; [ "$path" = published ] && name="docker run -p"
        printf "%-26s %-20s %9.2fx %+9.0f %+9.0f\n" "$label" "$name added" \
            "$(cut -d' ' -f1 "$work/added" | median)" "$(cut -d' ' -f2 "$work/added" | median)" \
            "$(cut -d' ' -f3 "$work/added" | median)"
    done
done
