#!/usr/bin/env bash
# S3 through sagedock's port against a plain file copy on the same disk, in the same run.
#
#   bash benches/s3_throughput.sh [SIZE_MIB] [ROUNDS]      (defaults 1024 and 3)
#
# Makes a SIZE_MIB file of random bytes, starts `sagedock up` (release build) with its data
# directory (and so its S3 root) beside it, then alternates ROUNDS times:
#   PUT  `aws s3 cp FILE s3://bench/object` (the AWS CLI's multipart upload, as users run it)
#        against `cp FILE COPY` (the same bytes written to the same disk, no protocol);
#   GET  `aws s3 cp s3://bench/object OUT` against `cp COPY OUT`.
# Prints each round, then the medians in MiB/s and sagedock's throughput as a fraction of
# the plain copy's. Every file is removed before the next round writes it again. The AWS
# CLI is the one in the client venv (harness/clients/run.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-1024}"
rounds="${2:-3}"
venv="${SAGEDOCK_CLIENTS_VENV:-${HOME:-/root}/.cache/sagedock/clients-venv}"
aws="$venv/bin/aws"
[ -x "$aws" ] || { echo "no AWS CLI at $aws: run harness/clients/run.sh once" >&2; exit 2; }
command -v bc >/dev/null || { echo "bc is missing: apt-get install -y bc" >&2; exit 2; }
cargo build --release --quiet
work="$(mktemp -d "${TMPDIR:-/var/tmp}/sagedock-s3-bench.XXXXXX")"
target/release/sagedock up --port 0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
up=$!
trap 'kill -TERM $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "^listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' "$work/out")"
[ -n "$url" ] || { cat "$work/err" >&2; exit 1; }
export AWS_ENDPOINT_URL="$url" AWS_ACCESS_KEY_ID=sagedock AWS_SECRET_ACCESS_KEY=sagedock \
    AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
echo "making $size MiB of random bytes in $work"
head -c "$((size << 20))" /dev/urandom >"$work/file"
"$aws" s3 mb s3://bench >/dev/null

# Seconds a command takes, to the millisecond.
timed() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    sync
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
rate() { echo "scale=1; $size / $1" | bc -l; }

put_s3=(); put_cp=(); get_s3=(); get_cp=()
for round in $(seq "$rounds"); do
    sync
    rm -f "$work/copy" "$work/out.bin"
    "$aws" s3 rm s3://bench/object >/dev/null 2>&1 || true
    a=$(timed cp "$work/file" "$work/copy")
    b=$(timed "$aws" s3 cp --quiet "$work/file" s3://bench/object)
    c=$(timed cp "$work/copy" "$work/out.bin")
    rm -f "$work/out.bin"
    d=$(timed "$aws" s3 cp --quiet s3://bench/object "$work/out.bin")
    cmp -s "$work/file" "$work/out.bin" || { echo "the object read back differs" >&2; exit 1; }
    put_cp+=("$a"); put_s3+=("$b"); get_cp+=("$c"); get_s3+=("$d")
    printf 'round %d: PUT cp %s MiB/s, via sagedock %s MiB/s; GET cp %s MiB/s, via sagedock %s MiB/s\n' \
        "$round" "$(rate "$a")" "$(rate "$b")" "$(rate "$c")" "$(rate "$d")"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for kind in PUT GET; do
    if [ "$kind" = PUT ]; then ref=$(median "${put_cp[@]}"); via=$(median "${put_s3[@]}");
    else ref=$(median "${get_cp[@]}"); via=$(median "${get_s3[@]}"); fi
    printf '%s %s MiB, median of %d: plain copy %s MiB/s, through sagedock (aws s3 cp) %s MiB/s: %.2fx\n' \
        "$kind" "$size" "$rounds" "$(rate "$ref")" "$(rate "$via")" "$(echo "$ref / $via" | bc -l)"
done
