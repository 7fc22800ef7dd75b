#!/usr/bin/env bash
# The demo on a bundled fixture: pack a real TensorFlow SavedModel into model.tar.gz,
# validate it (framework, signatures, findings), unpack it safely, and show that a
# hostile archive is refused. Needs only Rust; builds sagedock on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
sagedock() { target/release/sagedock "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SAGEDOCK_CACHE_DIR="$work/cache"

echo "\$ sagedock pack fixtures/models/tensorflow -o model.tar.gz"
sagedock pack fixtures/models/tensorflow -o "$work/model.tar.gz"
echo
echo "\$ sagedock validate model.tar.gz"
sagedock validate "$work/model.tar.gz"
echo
echo "\$ sagedock unpack model.tar.gz opt-ml-model"
sagedock unpack "$work/model.tar.gz" "$work/opt-ml-model"
(cd "$work/opt-ml-model" && find . -type f | sort | sed 's/^/  /')
echo
echo "\$ sagedock unpack fixtures/archives/hostile/symlink-chain-escape.tar.gz evil   # refused"
sagedock unpack fixtures/archives/hostile/symlink-chain-escape.tar.gz "$work/evil" || echo "(exit $?: refused, and $work/evil does not exist: $(test -e "$work/evil" && echo no || echo yes))"
