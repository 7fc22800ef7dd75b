//! `sagedock up --engine swarm` on the three-node Docker Swarm harness/swarm/up.sh stands
//! up on this machine (docker-in-docker nodes, a registry on the first): instances spread
//! over the nodes, each answering through sagedock with its model data from the model
//! image; a killed task replaced, routing following it; an update moving traffic with no
//! failed call; a stopped node's instance back on another node.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::docker::ready;
use crate::util::http::http;
use crate::util::up::{deploy, ok, wait_status, Up};
use crate::util::{until, Sandbox};

/// The swarm's manager API and registry, as harness/swarm/up.sh prints them.
struct Swarm {
    docker_host: String,
    registry: String,
}

impl Swarm {
    /// Stands the swarm up (or finds it up) with the echo image in its registry; `None`
    /// when no engine answers outside CI.
    fn up() -> Option<Swarm> {
        if !ready() {
            return None;
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("flock")
            .arg("/tmp/sagedock-test-swarm.lock")
            .arg("bash")
            .arg(root.join("harness/swarm/up.sh"))
            .arg("sagedock/echo:latest")
            .output()
            .expect("running harness/swarm/up.sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "harness/swarm/up.sh failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key}= in harness/swarm/up.sh's output: {text}"))
                .to_string()
        };
        Some(Swarm {
            docker_host: value("DOCKER_HOST"),
            registry: value("SAGEDOCK_REGISTRY"),
        })
    }

    /// `docker` against the manager; stdout, which must be a success.
    fn docker(&self, args: &[&str]) -> String {
        docker_at(&self.docker_host, args)
    }

    /// `sagedock up --engine swarm` on `sb`, its health checks each second.
    fn sagedock_up(&self, sb: &Sandbox) -> Up {
        Up::start_env(
            sb,
            &[
                "--engine",
                "swarm",
                "--registry",
                &self.registry,
                "--health-check-interval",
                "1s",
            ],
            &[("DOCKER_HOST", &self.docker_host)],
        )
        .unwrap()
    }

    /// The nodes running the endpoint's tasks now, one entry per task (none while a
    /// service is being replaced).
    fn nodes_of(&self, endpoint: &str) -> Vec<String> {
        let services = self.services_of(endpoint);
        if services.is_empty() {
            return Vec::new();
        }
        let mut args = vec![
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
        ];
        args.extend(services.iter().map(String::as_str));
        // A service removed between the two calls (a replaced instance's): ask again.
        let out = Command::new("docker")
            .args(&args)
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        let mut nodes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        nodes.sort();
        nodes
    }

    fn services_of(&self, endpoint: &str) -> Vec<String> {
        self.docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=sagedock.endpoint={endpoint}"),
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }
}

fn docker_at(host: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} at {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A sandbox with `s3://bucket/model.tar.gz` (the scikit-learn fixture).
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.join("s3/bucket")).unwrap();
    sb.pack("sklearn", "s3/bucket/model.tar.gz");
    sb
}

fn echo(env: Value) -> Value {
    json!({"Image": "sagedock/echo:latest", "ModelDataUrl": "s3://bucket/model.tar.gz", "Environment": env})
}

/// One call; the instance reports itself: the status and its report.
fn invoke(url: &str, endpoint: &str) -> (u16, Value) {
    let reply = http(
        "POST",
        &format!("{url}/endpoints/{endpoint}/invocations"),
        &[
            ("Content-Type", "text/plain"),
            ("X-Amzn-SageMaker-Custom-Attributes", "report=1"),
        ],
        b"ping",
    );
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
    )
}

/// The instances (hostnames) that answer `calls` calls, every call a success.
fn answering(url: &str, endpoint: &str, calls: usize) -> BTreeSet<String> {
    (0..calls)
        .map(|_| {
            let (status, report) = invoke(url, endpoint);
            assert_eq!(status, 200, "{report}");
            report["hostname"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn instances_spread_over_the_nodes_and_each_answers_with_its_model() {
    let Some(swarm) = Swarm::up() else { return };
    let sb = sandbox();
    let up = swarm.sagedock_up(&sb);
    let t0 = Instant::now();
    deploy(&up.url, "spread", echo(json!({"ECHO_QUIET": "1"})), 3);
    wait_status(&up.url, "spread", &["InService"]);
    eprintln!(
        "3 instances InService on the swarm after {:?}",
        t0.elapsed()
    );

    let nodes = swarm.nodes_of("spread");
    assert_eq!(nodes.len(), 3, "one task per instance: {nodes:?}");
    let distinct: BTreeSet<_> = nodes.iter().collect();
    assert_eq!(distinct.len(), 3, "each on a node of its own: {nodes:?}");

    // Round-robin reaches each of the three, and each has the model at /opt/ml/model.
    assert_eq!(answering(&up.url, "spread", 30).len(), 3);
    let (_, report) = invoke(&up.url, "spread");
    let files = report["model_dir"]["files"].to_string();
    assert!(files.contains("model.joblib"), "{report}");
    assert_eq!(
        report["env"]["ECHO_QUIET"], "1",
        "the model's environment reaches the task"
    );

    // The endpoint's log group has every instance's output, from whichever node.
    let described = ok(
        &up.url,
        "DescribeEndpoint",
        json!({"EndpointName": "spread"}),
    );
    assert_eq!(
        described["ProductionVariants"][0]["CurrentInstanceCount"],
        3
    );

    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "spread"}));
    until(Duration::from_secs(30), "the services are removed", || {
        swarm.services_of("spread").is_empty()
    });
    up.signal("INT");
}

#[test]
fn a_killed_task_is_replaced_and_routing_follows_it() {
    let Some(swarm) = Swarm::up() else { return };
    let sb = sandbox();
    let up = swarm.sagedock_up(&sb);
    deploy(&up.url, "phoenix", echo(json!({"ECHO_QUIET": "1"})), 2);
    wait_status(&up.url, "phoenix", &["InService"]);
    let before = answering(&up.url, "phoenix", 10);
    assert_eq!(before.len(), 2, "{before:?}");

    // Kill one task's container on its own node, as a crash would.
    let service = swarm.services_of("phoenix")[0].clone();
    let task = swarm.docker(&[
        "service",
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        &service,
    ]);
    let inspected: Value = serde_json::from_str(&swarm.docker(&["inspect", task.trim()])).unwrap();
    let node_id = inspected[0]["NodeID"].as_str().unwrap().to_string();
    let container = inspected[0]["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap()
        .to_string();
    let node = swarm
        .docker(&[
            "node",
            "inspect",
            "-f",
            "{{.Description.Hostname}}",
            &node_id,
        ])
        .trim()
        .to_string();
    let t0 = Instant::now();
    docker_at(
        &format!("unix:///run/sagedock-swarm/{node}.sock"),
        &["kill", &container],
    );

    // The endpoint stays in service on the other instance; the lost one is replaced by a
    // new task, and the calls reach it.
    let mut seen = BTreeSet::new();
    let took = until(Duration::from_secs(90), "a replacement answers", || {
        let (status, report) = invoke(&up.url, "phoenix");
        if status == 200 {
            seen.insert(report["hostname"].as_str().unwrap_or("").to_string());
        }
        seen.difference(&before).next().is_some()
    });
    eprintln!(
        "a killed task's instance was replaced and answering after {:?}",
        t0.elapsed()
    );
    assert!(took < Duration::from_secs(90));
    let after = answering(&up.url, "phoenix", 10);
    assert_eq!(after.len(), 2, "two instances again: {after:?}");
    assert_ne!(after, before, "one of them is new");
    let described = wait_status(&up.url, "phoenix", &["InService"]);
    assert_eq!(
        described["ProductionVariants"][0]["CurrentInstanceCount"],
        2
    );
    assert_eq!(
        swarm.services_of("phoenix").len(),
        2,
        "the dead one's service is gone"
    );

    ok(
        &up.url,
        "DeleteEndpoint",
        json!({"EndpointName": "phoenix"}),
    );
    up.signal("INT");
}

#[test]
fn an_update_moves_traffic_with_no_failed_call() {
    let Some(swarm) = Swarm::up() else { return };
    let sb = sandbox();
    let up = swarm.sagedock_up(&sb);
    deploy(&up.url, "moving", echo(json!({"ECHO_QUIET": "1"})), 2);
    wait_status(&up.url, "moving", &["InService"]);
    let before = answering(&up.url, "moving", 10);

    ok(
        &up.url,
        "CreateModel",
        json!({
            "ModelName": "moving-v2",
            "PrimaryContainer": echo(json!({"ECHO_QUIET": "1", "VERSION": "2"})),
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
        }),
    );
    ok(
        &up.url,
        "CreateEndpointConfig",
        json!({
            "EndpointConfigName": "moving-v2",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "moving-v2", "InitialInstanceCount": 2, "InstanceType": "ml.t2.medium"}],
        }),
    );
    // Calls go on all through the update; not one may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = {
        let (url, stop, calls, failures) = (
            up.url.clone(),
            stop.clone(),
            calls.clone(),
            failures.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = invoke(&url, "moving");
                calls.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    ok(
        &up.url,
        "UpdateEndpoint",
        json!({"EndpointName": "moving", "EndpointConfigName": "moving-v2"}),
    );
    std::thread::sleep(Duration::from_millis(500));
    wait_status(&up.url, "moving", &["InService"]);
    until(
        Duration::from_secs(30),
        "the old instances are gone",
        || swarm.services_of("moving").len() == 2,
    );
    stop.store(true, Ordering::Relaxed);
    caller.join().unwrap();
    assert!(calls.load(Ordering::Relaxed) > 10);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no call failed");
    let (_, report) = invoke(&up.url, "moving");
    assert_eq!(
        report["env"]["VERSION"], "2",
        "the new model answers: {report}"
    );
    assert!(answering(&up.url, "moving", 10).is_disjoint(&before));

    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "moving"}));
    up.signal("INT");
}

#[test]
fn a_stopped_node_s_instance_comes_back_on_another_node() {
    let Some(swarm) = Swarm::up() else { return };
    let sb = sandbox();
    let up = swarm.sagedock_up(&sb);
    deploy(&up.url, "nomad", echo(json!({"ECHO_QUIET": "1"})), 3);
    wait_status(&up.url, "nomad", &["InService"]);
    let nodes = swarm.nodes_of("nomad");
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // A worker goes away as a machine does: its engine and every container on it stop.
    let victim = "sagedock-swarm-3";
    assert!(nodes.iter().any(|n| n == victim), "{nodes:?}");
    let t0 = Instant::now();
    docker_at("unix:///var/run/docker.sock", &["stop", "-t", "0", victim]);
    let restart = scopeguard(victim);

    let took = until(
        Duration::from_secs(120),
        "three instances answer again, none on the stopped node",
        || {
            let now = swarm.nodes_of("nomad");
            now.len() == 3 && !now.iter().any(|n| n == victim)
        },
    );
    eprintln!(
        "the stopped node's instance was running on another node after {:?}",
        t0.elapsed()
    );
    assert!(took < Duration::from_secs(120));
    assert_eq!(answering(&up.url, "nomad", 30).len(), 3);
    let described = wait_status(&up.url, "nomad", &["InService"]);
    assert_eq!(
        described["ProductionVariants"][0]["CurrentInstanceCount"],
        3
    );

    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "nomad"}));
    up.signal("INT");
    drop(restart);
}

/// Starts the stopped node again when dropped (the test passing or not): it rejoins the
/// swarm with its engine's state.
fn scopeguard(node: &'static str) -> impl Drop {
    struct Restart(&'static str);
    impl Drop for Restart {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["start", self.0]).output();
        }
    }
    Restart(node)
}
