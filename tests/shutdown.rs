//! Stopping `sagedock up` and `sagedock serve` leaves no container behind, even when a
//! container's PID 1 ignores SIGTERM (Docker then waits its 30 s grace before killing it):
//! a clean stop finishes every removal in flight and says what it waits for; a second
//! Ctrl-C removes at once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::docker::labelled_containers;
use crate::util::up::{ok, setup, wait_status, Up};

/// A model and config on the echo image whose PID 1 ignores SIGTERM (`env` added).
fn stubborn(up: &Up, name: &str, env: serde_json::Value) {
    let mut environment = json!({"ECHO_QUIET": "1", "ECHO_IGNORE_SIGTERM": "1"});
    if let Some(extra) = env.as_object() {
        for (k, v) in extra {
            environment[k] = v.clone();
        }
    }
    ok(
        &up.url,
        "CreateModel",
        json!({"ModelName": name, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
        "PrimaryContainer": {"Image": "sagedock/echo:latest", "Environment": environment}}),
    );
    ok(
        &up.url,
        "CreateEndpointConfig",
        json!({"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}]}),
    );
}

fn left(endpoint: &str) -> Vec<String> {
    labelled_containers(&format!("label=sagedock.endpoint={endpoint}"))
}

fn stderr(up: &Up) -> String {
    up.stderr()
}

/// SIGTERM while one endpoint is being deleted, one's old fleet drains after an update, and
/// one is still being created: `up` waits for all three removals, says so, and leaves
/// nothing behind.
#[test]
fn a_stop_finishes_every_removal_in_flight() {
    let Some(sb) = setup() else { return };
    let mut up = Up::start_with(&sb, &[]).unwrap();
    stubborn(&up, "deleting", json!({}));
    stubborn(&up, "updating", json!({}));
    stubborn(&up, "updated", json!({}));
    // Never healthy: its endpoint stays Creating.
    stubborn(&up, "creating", json!({"ECHO_STARTUP_DELAY_MS": "600000"}));
    for name in ["deleting", "updating"] {
        ok(
            &up.url,
            "CreateEndpoint",
            json!({"EndpointName": name, "EndpointConfigName": name}),
        );
    }
    for name in ["deleting", "updating"] {
        wait_status(&up.url, name, &["InService"]);
    }
    ok(
        &up.url,
        "CreateEndpoint",
        json!({"EndpointName": "creating", "EndpointConfigName": "creating"}),
    );
    ok(
        &up.url,
        "UpdateEndpoint",
        json!({"EndpointName": "updating", "EndpointConfigName": "updated"}),
    );
    wait_status(&up.url, "updating", &["InService"]);
    ok(
        &up.url,
        "DeleteEndpoint",
        json!({"EndpointName": "deleting"}),
    );
    while left("creating").is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    up.process.send("TERM");
    std::thread::sleep(Duration::from_secs(2));
    let said = stderr(&up);
    assert!(
        said.contains("waiting for") && said.contains("Ctrl-C again removes them at once"),
        "{said}"
    );
    assert_eq!(up.process.exit_within(Duration::from_secs(60)), Some(0));
    assert!(
        t0.elapsed() > Duration::from_secs(20),
        "it did wait: {:?}",
        t0.elapsed()
    );
    for name in ["deleting", "updating", "creating"] {
        assert_eq!(
            left(name),
            Vec::<String>::new(),
            "{name}: containers left behind"
        );
    }
}

/// A second Ctrl-C does not abandon the containers: it removes them at once.
#[test]
fn a_second_ctrl_c_removes_at_once() {
    let Some(sb) = setup() else { return };
    let mut up = Up::start_with(&sb, &[]).unwrap();
    stubborn(&up, "twice", json!({}));
    ok(
        &up.url,
        "CreateEndpoint",
        json!({"EndpointName": "twice", "EndpointConfigName": "twice"}),
    );
    wait_status(&up.url, "twice", &["InService"]);
    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "twice"}));
    let t0 = Instant::now();
    up.process.send("INT");
    std::thread::sleep(Duration::from_secs(1));
    up.process.send("INT");
    assert_eq!(up.process.exit_within(Duration::from_secs(15)), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(left("twice"), Vec::<String>::new());
}

/// Ctrl-C while `serve` waits for a container that ignores SIGTERM: it says it waits, and a
/// second Ctrl-C removes the container at once.
#[test]
fn serve_interrupted_while_starting_says_it_waits_and_a_second_ctrl_c_forces() {
    let Some(sb) = setup() else { return };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sagedock"))
        .args([
            "serve",
            "--port",
            "0",
            "--image",
            "sagedock/echo:latest",
            "--name",
            "interrupted",
        ])
        .args([
            "-e",
            "ECHO_IGNORE_SIGTERM=1",
            "-e",
            "ECHO_STARTUP_DELAY_MS=600000",
        ])
        .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
        .stderr(std::fs::File::create(sb.join("serve.err")).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while left("interrupted").is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let kill = |signal: &str| {
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
    };
    kill("INT");
    std::thread::sleep(Duration::from_secs(2));
    let said = std::fs::read_to_string(sb.join("serve.err")).unwrap();
    assert!(
        said.contains("waiting for 1 container(s) to stop"),
        "{said}"
    );
    let t0 = Instant::now();
    kill("INT");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(130));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "serve did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left("interrupted"), Vec::<String>::new());
}
