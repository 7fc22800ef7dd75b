#!/usr/bin/env bash
# Runs every sagedock test, as CI does:
#   1. makes sure a Docker engine answers (installing and starting one if needed);
#   2. builds the test images (harness/images/build-all.sh, idempotent);
#   3. runs the Rust tests with cargo-nextest (or cargo test where nextest is missing),
#      the AWS SDK for Rust's included, and the swarm suite on a three-node Docker Swarm
#      on this machine (harness/swarm/up.sh); then the suites that drive an engine again
#      against rootful Podman (harness/ci/podman.sh);
#   4. runs the client suites (boto3, AWS CLI, SageMaker SDK, the dashboard in headless
#      chromium) against `sagedock up`.
# Safe to run again and again. Under CI=true a test that needs Docker fails when no
# engine answers: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash harness/ci/docker.sh
bash harness/ci/browser.sh
bash harness/images/build-all.sh
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d " ") free (images built)"

# With the AWS SDK for Rust's tests (tests/aws_sdk.rs): its crates take minutes to compile,
# once; the client suites use the binary that build made, so nothing is compiled twice.
features=(--features aws-sdk-tests)
rust=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked "${features[@]}" --no-fail-fast --final-status-level=fail || rust=$?
else
    cargo test --locked "${features[@]}" --no-fail-fast || rust=$?
fi

# The swarm the tests/swarm.rs suite stood up (harness/swarm/up.sh) is not needed again.
bash harness/swarm/down.sh || true

# The suites that drive an engine, once more against rootful Podman's Docker API
# (harness/ci/podman.sh), but for what Podman does not do as Docker does (README: "Podman").
podman_skip=(network_isolation_keeps the_demo_runs with_every_instance_dead)
podman=0
podman_host="$(bash harness/ci/podman.sh sagedock/echo:latest sagedock/mms:latest)" || podman=$?
if [[ $podman -eq 0 ]]; then
    echo "== the engine suites against Podman ($podman_host)"
    podman_env=(env "$podman_host" SAGEDOCK_TEST_IMAGES=preloaded)
    if cargo nextest --version >/dev/null 2>&1; then
        skip="$(IFS='|'; echo "${podman_skip[*]}")"
        "${podman_env[@]}" cargo nextest run --locked "${features[@]}" --no-fail-fast \
            --final-status-level=fail \
            -E "test(/^(up|serve|faults|shutdown)::/) - test(/${skip}/)" || podman=$?
    else
        skips=()
        for t in "${podman_skip[@]}"; do skips+=(--skip "$t"); done
        "${podman_env[@]}" cargo test --locked "${features[@]}" --no-fail-fast --test tests -- \
            up:: serve:: faults:: shutdown:: "${skips[@]}" || podman=$?
    fi
fi

# The test build has just built the binary (the integration tests run it) with the same
# features. `cargo build` would compile most dependencies again (without the features the
# dev-dependencies add to them): minutes on two cores, for the same program.
if [[ $rust -ne 0 || ! -x target/debug/sagedock ]]; then
    cargo build --locked --quiet "${features[@]}"
fi
clients=0
SAGEDOCK_BIN="$PWD/target/debug/sagedock" bash harness/clients/run.sh || clients=$?

if [[ $rust -ne 0 || $podman -ne 0 || $clients -ne 0 ]]; then
    echo "FAILED: rust tests exit $rust, on Podman exit $podman, client suites exit $clients" >&2
    exit 1
fi
