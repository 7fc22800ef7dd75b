#!/usr/bin/env bash
# Runs the client suites (boto3, AWS CLI, SageMaker Python SDK) against `sagedock up`.
#
#   harness/clients/run.sh [pytest args...]      e.g. -k lifecycle, -m "not slow", -x
#
# Creates (or reuses) a venv with the pinned packages of requirements.txt/constraints.txt,
# then runs `python -m pytest -q harness/clients` from the repository root. Needs only
# python3 with venv + pip (on Debian without python3-venv it installs that package when
# run as root). Exit status: pytest's; "no tests collected" (pytest's 5) is a failure too.
#
# Environment:
#   SAGEDOCK_CLIENTS_VENV  venv location (default: $HOME/.cache/sagedock/clients-venv)
#   SAGEDOCK_BIN           the sagedock binary (default: <repo>/target/debug/sagedock)
#   PYTHON                 the interpreter to make the venv with (default: python3)
#   CI=true                a missing Docker engine or test image fails instead of skipping
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SAGEDOCK_CLIENTS_VENV:-${HOME:-/root}/.cache/sagedock/clients-venv}"
python="${PYTHON:-python3}"

log() { echo "[clients/run.sh] $*" >&2; }

if ! command -v "$python" >/dev/null 2>&1; then
    log "$python not found: install Python 3 (3.11 is what the pins were resolved with)"
    exit 2
fi

make_venv() {
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
}

# What the venv must hold: the pins plus the interpreter they were installed for.
stamp_of() {
    {
        "$python" -c 'import sys; print(sys.version)'
        cat "$here/requirements.txt" "$here/constraints.txt"
    } | sha256sum | cut -d' ' -f1
}
want="$(stamp_of)"
stamp_file="$venv/.sagedock-clients-stamp"

if [[ ! -x "$venv/bin/python" || ! -f "$stamp_file" || "$(cat "$stamp_file")" != "$want" ]]; then
    log "creating venv at $venv"
    if ! make_venv 2>/tmp/sagedock-clients-venv.err; then
        # Debian/Ubuntu ship venv's ensurepip separately (python3-venv).
        if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
            log "\`$python -m venv\` failed ($(tail -n1 /tmp/sagedock-clients-venv.err)); installing python3-venv"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq python3-venv >/dev/null
            make_venv
        else
            cat /tmp/sagedock-clients-venv.err >&2
            log "\`$python -m venv\` failed; on Debian/Ubuntu: sudo apt-get install -y python3-venv"
            exit 2
        fi
    fi
    log "installing pinned packages (requirements.txt + constraints.txt)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet \
        -r "$here/requirements.txt" -c "$here/constraints.txt"
    echo "$want" > "$stamp_file"
else
    log "reusing venv at $venv"
fi

bin="${SAGEDOCK_BIN:-$repo/target/debug/sagedock}"
if [[ ! -x "$bin" ]]; then
    log "warning: sagedock binary $bin not found (build it, or set SAGEDOCK_BIN); the tests will error"
fi

cd "$repo"
set +e
# --durations: the slowest tests, for keeping CI within its time.
"$venv/bin/python" -m pytest -q --durations=15 harness/clients "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
    log "pytest collected no tests: treating that as a failure"
    exit 1
fi
exit $rc
