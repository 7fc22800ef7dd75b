#!/usr/bin/env bash
# Makes sure Debian's chromium and chromium-driver are installed: the dashboard's browser
# tests (harness/clients/test_dashboard.py) drive them headless. Safe to run again: it does
# nothing when both are there.
set -euo pipefail

log() { echo "[browser.sh] $*" >&2; }

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    log "chromium and chromium-driver already installed"
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "chromium or chromium-driver is missing: sudo apt-get install -y chromium chromium-driver"
    exit 2
fi
log "installing chromium and chromium-driver from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium chromium-driver >/dev/null
log "installed: $(/usr/bin/chromium --version)"
