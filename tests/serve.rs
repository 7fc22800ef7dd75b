//! `sagedock serve`, `ps`, `logs`, `gc` against a real Docker engine with real images:
//! the container contract (serve, read-only /opt/ml/model, env, instance-type limits,
//! labels), readiness failures, cleanup on SIGTERM, and gc after SIGKILL.

use std::time::{Duration, Instant};

use predicates::prelude::PredicateBooleanExt;
use serde_json::Value;

use crate::util::docker::{inspect, labelled_containers, ready, require_docker};
use crate::util::http::http;
use crate::util::serve::Served;
use crate::util::{json, Sandbox};

/// The run id in the container names sagedock printed.
fn containers_of(served: &Served) -> Vec<String> {
    served
        .stdout()
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("instance ")?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn echo_serves_under_the_container_contract_and_is_removed_on_sigterm() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.pack("pytorch", "model.tar.gz");
    let served = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--model",
            "model.tar.gz",
            "--name",
            "contract",
            "--instance-type",
            "ml.t3.medium",
            "--instance-count",
            "2",
            "-e",
            "FOO=bar",
        ],
    )
    .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    let names = containers_of(&served);
    assert_eq!(names.len(), 2, "{}", served.stdout());

    // The body, content type and custom attributes come back through sagedock.
    let reply = http(
        "POST",
        &format!("{}/invocations", served.url),
        &[
            ("Content-Type", "text/csv"),
            ("X-Amzn-SageMaker-Custom-Attributes", "trace=1"),
            ("X-Not-Forwarded", "x"),
        ],
        b"1,2,3",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "1,2,3");
    assert_eq!(reply.header("content-type"), Some("text/csv"));
    assert_eq!(
        reply.header("x-amzn-sagemaker-custom-attributes"),
        Some("trace=1")
    );
    let via_runtime_path = http(
        "POST",
        &format!("{}/endpoints/contract/invocations", served.url),
        &[],
        b"x",
    );
    assert_eq!(via_runtime_path.text(), "x");

    // The container's own view: read-only model, env, limits of ml.t3.medium (2 vCPU, 4 GiB).
    let report = http(
        "POST",
        &format!("{}/invocations", served.url),
        &[("X-Amzn-SageMaker-Custom-Attributes", "report=1")],
        b"",
    );
    let report: Value = serde_json::from_slice(&report.body).unwrap();
    assert_eq!(report["args"], serde_json::json!(["/echo", "serve"]));
    assert_eq!(report["model_dir"]["writable"], false, "{report:#}");
    let files = report["model_dir"]["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f == "code/inference.py"), "{report:#}");
    assert!(
        report["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains(" ro")),
        "{report:#}"
    );
    assert_eq!(report["env"]["FOO"], "bar");
    assert_eq!(report["env"]["AWS_REGION"], "us-east-1");
    assert_eq!(report["cgroup"]["memory_max"], "4294967296");
    assert_eq!(report["cgroup"]["cpu_max"], "200000 100000");

    // Docker's view of the same container.
    let info = inspect(&names[0]);
    assert_eq!(info["Config"]["Cmd"], serde_json::json!(["serve"]));
    assert!(info["HostConfig"]["Binds"][0]
        .as_str()
        .unwrap()
        .contains(":/opt/ml/model:ro"));
    assert_eq!(info["HostConfig"]["Memory"], 4_294_967_296u64);
    assert_eq!(info["HostConfig"]["NanoCpus"], 2_000_000_000u64);
    let labels = &info["Config"]["Labels"];
    assert_eq!(labels["sagedock.managed"], "true");
    assert_eq!(labels["sagedock.endpoint"], "contract");
    assert_eq!(labels["sagedock.variant"], "AllTraffic");
    assert!(labels["sagedock.run"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));

    // Concurrent slow requests spread over both instances (least outstanding requests).
    let url = format!("{}/invocations", served.url);
    let answered: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    http(
                        "POST",
                        &url,
                        &[("X-Amzn-SageMaker-Custom-Attributes", "sleep_ms=300")],
                        b"x",
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap()
                    .header("x-sagedock-instance")
                    .unwrap()
                    .to_string()
            })
            .collect()
    });
    let mut distinct = answered.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "requests went to {answered:?}");

    // `ps` lists them; `logs` shows their output.
    let ps = sb.cmd().args(["ps", "--json"]).output().unwrap();
    let listed: Vec<String> = json(&ps)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().all(|n| listed.contains(n)), "{listed:?}");
    let logs = sb.cmd().args(["logs", &names[0]]).output().unwrap();
    assert!(String::from_utf8_lossy(&logs.stdout).contains("echo: listening on 0.0.0.0:8080"));

    assert_eq!(served.stop("TERM"), Some(0));
    for name in &names {
        assert!(
            labelled_containers(&format!("name={name}")).is_empty(),
            "{name} was not removed"
        );
    }
}

#[test]
fn the_mms_walkthrough_answers_through_its_custom_handler() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.pack("mms", "sentiment.tar.gz");
    let served = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/mms:latest",
            "--model",
            "sentiment.tar.gz",
            "--name",
            "paddle-sentiment",
        ],
    )
    .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    let reply = http(
        "POST",
        &format!("{}/endpoints/paddle-sentiment/invocations", served.url),
        &[("Content-Type", "text/plain")],
        b"This is an amazing movie.",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["sentiment"], "positive");
    assert_eq!(answer["text"], "This is an amazing movie.");
    assert_eq!(served.stop("TERM"), Some(0));
}

#[test]
fn a_container_that_exits_at_start_is_reported_at_once() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let t0 = Instant::now();
    let err = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--name",
            "dies",
            "-e",
            "ECHO_FAIL_AT_START=42",
        ],
    )
    .err()
    .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "it waited for the 10-minute health deadline"
    );
    assert_eq!(err.0, Some(1));
    assert!(
        err.1.contains("exited with code 42 while starting"),
        "{}",
        err.1
    );
    assert!(
        err.1
            .contains("ECHO_FAIL_AT_START=42: failing at start on purpose"),
        "the log tail is shown: {}",
        err.1
    );
    assert!(labelled_containers("label=sagedock.endpoint=dies").is_empty());
}

#[test]
fn a_health_timeout_reports_the_last_ping_and_the_logs() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let err = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--name",
            "unhealthy",
            "-e",
            "ECHO_PING_STATUS=503",
            "--health-timeout",
            "2s",
        ],
    )
    .err()
    .unwrap();
    assert_eq!(err.0, Some(1));
    assert!(
        err.1
            .contains("did not answer GET /ping with 200 within 2s"),
        "{}",
        err.1
    );
    assert!(err.1.contains("last /ping: HTTP 503"), "{}", err.1);
    // The container's own lines; those logging sagedock's polling are left out.
    assert!(
        err.1.contains("echo: ready (but /ping always answers 503"),
        "{}",
        err.1
    );
    assert!(!err.1.contains("echo: GET /ping 503"), "{}", err.1);
    assert!(labelled_containers("label=sagedock.endpoint=unhealthy").is_empty());
}

#[test]
fn sigkill_leaves_labelled_containers_that_gc_removes() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let served = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--name",
            "killed",
            "--instance-count",
            "2",
        ],
    )
    .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    let names = containers_of(&served);
    let network = inspect(&names[0])["NetworkSettings"]["Networks"]
        .as_object()
        .and_then(|n| n.keys().next().cloned())
        .unwrap();
    assert!(network.starts_with("sagedock-"), "{network}");
    served.stop("KILL");
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=killed").len(),
        2,
        "SIGKILL leaves them behind"
    );
    let ps = json(&sb.cmd().args(["ps", "--json"]).output().unwrap());
    let orphans: Vec<&Value> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| names.contains(&c["name"].as_str().unwrap().to_string()))
        .collect();
    assert!(orphans.iter().all(|c| c["owner_alive"] == false), "{ps:#}");
    let gc = json(&sb.cmd().args(["gc", "--json"]).output().unwrap());
    for name in &names {
        assert!(
            gc["removed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == name.as_str()),
            "{gc}"
        );
    }
    assert!(labelled_containers("label=sagedock.endpoint=killed").is_empty());
    let left = std::process::Command::new("docker")
        .args(["network", "inspect", &network])
        .output()
        .unwrap();
    assert!(
        !left.status.success(),
        "gc removes the dead run's network too"
    );
}

#[test]
fn network_isolation_keeps_the_container_on_an_internal_network() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let served = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--name",
            "isolated",
            "--network-isolation",
        ],
    )
    .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    assert_eq!(
        http(
            "POST",
            &format!("{}/invocations", served.url),
            &[],
            b"still reachable"
        )
        .text(),
        "still reachable"
    );
    let name = &containers_of(&served)[0];
    let info = inspect(name);
    let networks = info["NetworkSettings"]["Networks"].as_object().unwrap();
    let network = networks.keys().next().unwrap().clone();
    assert_eq!(networks.len(), 1, "{networks:?}");
    assert!(
        network.starts_with("sagedock-") && network.ends_with("-isolated"),
        "{network}"
    );
    assert!(info["NetworkSettings"]["Ports"]
        .as_object()
        .is_none_or(|p| p.values().all(Value::is_null)));
    let out = std::process::Command::new("docker")
        .args(["network", "inspect", &network])
        .output()
        .unwrap();
    let net: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(net[0]["Internal"], true);
    assert_eq!(served.stop("TERM"), Some(0));
    let gone = std::process::Command::new("docker")
        .args(["network", "inspect", &network])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the run's network is removed with it"
    );
}

#[test]
fn a_missing_image_and_an_unreachable_engine_say_what_to_do() {
    if !require_docker() {
        return;
    }
    let sb = Sandbox::new();
    sb.cmd()
        .args([
            "serve",
            "--port",
            "0",
            "--image",
            "sagedock/does-not-exist:1",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "image sagedock/does-not-exist:1 is not in the local Docker engine",
        ))
        .stderr(predicates::str::contains("--pull"))
        .stderr(predicates::str::contains("beyond this machine").not());
    // Listening beyond loopback is allowed, with a warning: the API has no authentication.
    sb.cmd()
        .args([
            "serve",
            "--bind",
            "0.0.0.0",
            "--port",
            "0",
            "--image",
            "sagedock/does-not-exist:1",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "warning: listening on 0.0.0.0, beyond this machine",
        ));
    sb.cmd()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["ps"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "cannot reach the Docker engine at unix:///nonexistent/docker.sock",
        ));
}

#[test]
fn bad_instance_types_and_oversize_env_fail_before_anything_starts() {
    let sb = Sandbox::new();
    sb.cmd()
        .args([
            "serve",
            "--port",
            "0",
            "--image",
            "x",
            "--instance-type",
            "ml.m5.xlarg",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "unknown instance type 'ml.m5.xlarg'; did you mean ml.m5.xlarge",
        ));
    let long = format!("BIG={}", "v".repeat(1025));
    sb.cmd()
        .args(["serve", "--port", "0", "--image", "x", "-e", &long])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("limited to 1024 characters"));
    sb.cmd()
        .args([
            "serve",
            "--port",
            "0",
            "--image",
            "x",
            "--instance-type",
            "ml.g4dn.xlarge",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .code(2);
}
