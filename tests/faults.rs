//! Instances that die or fall ill while in service, against `sagedock up` on real
//! containers: detected, taken out of rotation, replaced, the endpoint in service
//! throughout — and no call ever answered by a container that is not the endpoint's.
//!
//! The kill test prints its figures (detection, replacement, errors under load):
//! `cargo nextest run faults:: --no-capture`.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::docker::{inspect, labelled_containers};
use crate::util::http::http;
use crate::util::serve::Served;
use crate::util::until;
use crate::util::up::{deploy as deploy_model, ok, setup, wait_status, Up};

/// An echo endpoint of `count` instances, in service.
fn deploy(up: &Up, name: &str, count: u32) {
    let container = json!({"Image": "sagedock/echo:latest", "Environment": {"ECHO_QUIET": "1"}});
    deploy_model(&up.url, name, container, count);
    wait_status(&up.url, name, &["InService"]);
}

/// The running containers of an endpoint: name → hostname (what the echo image reports as
/// X-Echo-Instance).
fn containers(endpoint: &str) -> Vec<(String, String)> {
    labelled_containers(&format!("label=sagedock.endpoint={endpoint}"))
        .into_iter()
        .filter_map(|name| {
            let info = inspect(&name);
            (info["State"]["Running"] == true).then(|| {
                (
                    name,
                    info["Config"]["Hostname"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
        })
        .collect()
}

fn current_count(up: &Up, endpoint: &str) -> u64 {
    let d = ok(
        &up.url,
        "DescribeEndpoint",
        json!({"EndpointName": endpoint}),
    );
    assert_eq!(
        d["EndpointStatus"], "InService",
        "the endpoint stays in service: {d}"
    );
    d["ProductionVariants"][0]["CurrentInstanceCount"]
        .as_u64()
        .unwrap()
}

/// One call; the container reports itself (`report=1`): the status, the hostname of the
/// container that answered (from the container's own answer), the AWS error type.
fn invoke_at(url: &str, endpoint: &str, attributes: &str) -> (u16, Option<String>, String) {
    let attributes = if attributes.is_empty() {
        "report=1".to_string()
    } else {
        format!("report=1,{attributes}")
    };
    let headers = [
        ("Content-Type", "text/plain"),
        ("X-Amzn-SageMaker-Custom-Attributes", attributes.as_str()),
    ];
    let reply = http(
        "POST",
        &format!("{url}/endpoints/{endpoint}/invocations"),
        &headers,
        b"ping",
    );
    let report: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let instance = report["hostname"].as_str().map(str::to_string);
    let error = reply.header("x-amzn-errortype").unwrap_or("").to_string();
    (reply.status, instance, error)
}

fn invoke(up: &Up, endpoint: &str, attributes: &str) -> (u16, Option<String>, String) {
    invoke_at(&up.url, endpoint, attributes)
}

/// When a call started and ended, its status, and the container that answered.
type Call = (Instant, Instant, u16, Option<String>);

#[test]
fn a_killed_instance_is_replaced_under_steady_load_and_no_stranger_answers() {
    let Some(sb) = setup() else { return };
    let up = Up::start_with(&sb, &["--health-check-interval", "1s"]).unwrap();
    deploy(&up, "steady", 2);
    let before = containers("steady");
    assert_eq!(before.len(), 2, "{before:?}");

    // Steady load from one client: each call's time, status and answering container.
    let stop = Arc::new(AtomicBool::new(false));
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let load = {
        let (stop, calls, url) = (stop.clone(), calls.clone(), up.url.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, instance, _) = invoke_at(&url, "steady", "");
                calls
                    .lock()
                    .unwrap()
                    .push((started, Instant::now(), status, instance));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let killed = before[0].0.clone();
    // SIGKILL to the container's main process from the host, so that the kill's instant
    // is known to the millisecond (`docker kill` takes a few hundred of its own).
    let pid = inspect(&killed)["State"]["Pid"].as_u64().unwrap();
    assert!(pid > 0, "{killed} is not running");
    let t_kill = Instant::now();
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    // DescribeEndpoint's CurrentInstanceCount is the router's rotation, read live.
    let detected = until(Duration::from_secs(10), "out of rotation", || {
        current_count(&up, "steady") == 1
    });
    let t_out = t_kill + detected;
    until(Duration::from_secs(60), "replaced", || {
        current_count(&up, "steady") == 2
    });
    let replaced = t_kill.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    let after = containers("steady");
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|(name, _)| name != &killed),
        "the dead one is gone: {after:?}"
    );
    let ours: BTreeSet<String> = before
        .iter()
        .chain(&after)
        .map(|(_, host)| host.clone())
        .collect();
    let calls = calls.lock().unwrap();
    for (_, _, status, instance) in calls.iter().filter(|(_, _, s, _)| *s == 200) {
        let instance = instance.as_deref().unwrap_or("");
        assert!(
            ours.contains(instance),
            "answered by {instance}, not one of the endpoint's {ours:?} (status {status})"
        );
    }
    let window: Vec<&Call> = calls
        .iter()
        .filter(|(_, end, _, _)| *end >= t_kill)
        .collect();
    let failed = |c: &&&Call| c.2 != 200;
    let before_out = window.iter().filter(|c| c.0 < t_out).filter(failed).count();
    let late: Vec<_> = window
        .iter()
        .filter(|c| c.0 >= t_out)
        .filter(failed)
        .map(|c| (c.0.duration_since(t_kill), c.2))
        .collect();
    eprintln!(
        "figures: seen out of rotation {:.0} ms after the SIGKILL (DescribeEndpoint polled every 10 ms); \
         the replacement in rotation after {:.2} s; {} of {} calls failed from the kill to 1 s after the \
         replacement, all started before the instance left the rotation ({} calls in all)",
        detected.as_secs_f64() * 1e3,
        replaced.as_secs_f64(),
        before_out + late.len(),
        window.len(),
        calls.len()
    );
    // Calls sent while the dead container was still in rotation may fail (they reached,
    // or were sent to, a container that had died); none started after it left.
    assert!(
        late.is_empty(),
        "calls started after the dead instance left the rotation failed (time since the kill, status): {late:?}"
    );
    let metrics = http("GET", &format!("{}/metrics", up.url), &[], b"").text();
    assert!(
        metrics.contains("sagedock_instance_replacements_total{EndpointName=\"steady\",VariantName=\"AllTraffic\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "sagedock_healthy_instances{EndpointName=\"steady\",VariantName=\"AllTraffic\"} 2"
    ));
}

#[test]
fn with_every_instance_dead_calls_fail_fast_and_no_other_run_answers() {
    let Some(sb) = setup() else { return };
    let up = Up::start_with(&sb, &["--health-check-interval", "1s"]).unwrap();
    deploy(&up, "lonely", 1);
    let before = containers("lonely");
    // Another run on the same engine, with containers of its own.
    let other = Served::start(
        &sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--name",
            "stranger",
            "--instance-count",
            "2",
        ],
    )
    .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    let strangers: BTreeSet<String> = containers("stranger").into_iter().map(|(_, h)| h).collect();
    assert_eq!(strangers.len(), 2);
    assert!(Command::new("docker")
        .args(["kill", &before[0].0])
        .status()
        .unwrap()
        .success());
    let mut failed_fast = false;
    let t0 = Instant::now();
    loop {
        let t = Instant::now();
        let (status, instance, error) = invoke(&up, "lonely", "");
        if let Some(instance) = &instance {
            assert!(
                !strangers.contains(instance),
                "answered by another run's container {instance}"
            );
        }
        match status {
            503 => {
                assert_eq!(error, "ServiceUnavailable");
                assert!(
                    t.elapsed() < Duration::from_secs(2),
                    "a call with no instance took {:?}",
                    t.elapsed()
                );
                failed_fast = true;
            }
            200 => {
                assert_ne!(
                    instance.as_deref(),
                    Some(before[0].1.as_str()),
                    "answered by the dead container"
                );
                break;
            }
            other => panic!("status {other} ({error})"),
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never replaced");
    }
    assert!(
        failed_fast,
        "the dead instance's calls failed fast before the replacement answered"
    );
    assert_eq!(current_count(&up, "lonely"), 1);
    drop(other);
}

#[test]
fn an_instance_failing_its_health_checks_is_replaced() {
    let Some(sb) = setup() else { return };
    let up = Up::start_with(&sb, &["--health-check-interval", "500ms"]).unwrap();
    deploy(&up, "sickly", 1);
    let before = containers("sickly");
    let (status, _, _) = invoke(&up, "sickly", "sick=1");
    assert_eq!(status, 200);
    until(Duration::from_secs(30), "replaced", || {
        let now = containers("sickly");
        now.len() == 1 && now[0].0 != before[0].0
    });
    until(Duration::from_secs(10), "back in rotation", || {
        current_count(&up, "sickly") == 1
    });
    let (status, instance, _) = invoke(&up, "sickly", "");
    assert_eq!(status, 200);
    assert_ne!(instance.as_deref(), Some(before[0].1.as_str()));
    // Its removal runs in the background (stop, then remove): it ends soon after.
    until(
        Duration::from_secs(10),
        "the sick container is removed",
        || {
            let old: Value = serde_json::from_slice(
                &Command::new("docker")
                    .args([
                        "ps",
                        "-a",
                        "--format",
                        "{{json .Names}}",
                        "--filter",
                        &format!("name={}", before[0].0),
                    ])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap_or(Value::Null);
            old.is_null()
        },
    );
}
