//! Helpers for tests that need a Docker engine and the test images.
//!
//! A test that needs Docker calls [`require_docker`]: it runs whenever an engine answers;
//! when none does it is skipped locally, but under `CI=true` it fails, so CI cannot pass
//! by skipping.

use std::path::Path;
use std::process::{Command, Stdio};

/// True when a Docker engine answers; panics under CI=true when none does.
pub fn require_docker() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and no Docker engine answers: run harness/ci/docker.sh");
        }
        eprintln!("SKIPPED: no Docker engine answers (run harness/ci/docker.sh)");
    }
    ok
}

/// True when a Docker engine answers, with the test images built; under CI=true a
/// missing engine fails the test.
pub fn ready() -> bool {
    if !require_docker() {
        return false;
    }
    require_images();
    true
}

/// Builds the test images if they are missing or stale (idempotent, serialised by a lock).
/// Under `SAGEDOCK_TEST_IMAGES=preloaded` the engine is not the one images are built on
/// (harness/ci/podman.sh copies them to Podman): nothing is built.
pub fn require_images() {
    if std::env::var("SAGEDOCK_TEST_IMAGES").is_ok_and(|v| v == "preloaded") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("flock")
        .arg("/tmp/sagedock-test-images.lock")
        .arg("bash")
        .arg(root.join("harness/images/build-all.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("running harness/images/build-all.sh");
    assert!(status.success(), "building the test images failed");
}

/// Containers sagedock labels, as `docker ps` sees them (name → labels JSON).
pub fn labelled_containers(filter: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=sagedock.managed=true",
            "--filter",
            filter,
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `docker inspect` of one container, parsed.
pub fn inspect(name: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["inspect", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker inspect {name}");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}
