//! Serverless variants on a real engine: MemorySizeInMB as the container's memory limit,
//! MaxConcurrency enforced (ThrottlingException beyond it), scale to zero when idle, the
//! cold start the next call pays (ModelSetupTime on /metrics), and ProvisionedConcurrency
//! keeping an instance warm.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::docker::{inspect, labelled_containers};
use crate::util::http::http;
use crate::util::up::{ok, setup, wait_status, Up};

/// A serverless endpoint `name` on the echo image.
fn serverless(url: &str, name: &str, config: serde_json::Value) {
    ok(
        url,
        "CreateModel",
        json!({"ModelName": name, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
               "PrimaryContainer": {"Image": "sagedock/echo:latest"}}),
    );
    ok(
        url,
        "CreateEndpointConfig",
        json!({"EndpointConfigName": name, "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": name, "ServerlessConfig": config}]}),
    );
    ok(
        url,
        "CreateEndpoint",
        json!({"EndpointName": name, "EndpointConfigName": name}),
    );
    wait_status(url, name, &["InService"]);
}

fn invoke(url: &str, name: &str, attributes: &str) -> (u16, String, Option<String>) {
    let reply = http(
        "POST",
        &format!("{url}/endpoints/{name}/invocations"),
        &[("X-Amzn-SageMaker-Custom-Attributes", attributes)],
        b"x",
    );
    let error = reply.header("x-amzn-errortype").map(str::to_string);
    (reply.status, reply.text(), error)
}

/// Waits until `name`'s containers number `n` (a minute at most).
fn wait_containers(name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while labelled_containers(&format!("label=sagedock.endpoint={name}")).len() != n {
        assert!(Instant::now() < deadline, "{name} never had {n} containers");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serverless_limits_scale_to_zero_and_cold_starts() {
    let Some(sb) = setup() else { return };
    let up = Up::start_with(&sb, &["--serverless-idle", "3s"]).unwrap();
    serverless(
        &up.url,
        "cold",
        json!({"MemorySizeInMB": 2048, "MaxConcurrency": 2}),
    );
    let containers = labelled_containers("label=sagedock.endpoint=cold");
    assert_eq!(containers.len(), 1);
    let host = &inspect(&containers[0])["HostConfig"];
    assert_eq!(host["Memory"], 2048_i64 << 20);

    // Two calls in flight at once are the most: a third is throttled, at once.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = up.url.clone();
            std::thread::spawn(move || invoke(&url, "cold", "sleep_ms=1500"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (status, text, error) = invoke(&up.url, "cold", "");
    assert_eq!(
        (status, error.as_deref()),
        (400, Some("ThrottlingException")),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_millis(500));
    for call in slow {
        assert_eq!(call.join().unwrap().0, 200);
    }

    // Idle past --serverless-idle: scaled to zero.
    wait_containers("cold", 0);
    // The next call pays a cold start, and /metrics shows it.
    let t0 = Instant::now();
    let (status, text, _) = invoke(&up.url, "cold", "");
    let took = t0.elapsed();
    assert_eq!(status, 200, "{text}");
    assert_eq!(labelled_containers("label=sagedock.endpoint=cold").len(), 1);
    let metrics = http("GET", &format!("{}/metrics", up.url), &[], b"").text();
    let setup_count = metrics
        .lines()
        .find(|l| {
            l.starts_with("sagemaker_model_setup_time_microseconds_count")
                && l.contains("EndpointName=\"cold\"")
        })
        .unwrap_or_else(|| panic!("no ModelSetupTime for cold in\n{metrics}"));
    assert!(setup_count.ends_with(" 1"), "{setup_count}");
    let setup_sum: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("sagemaker_model_setup_time_microseconds_sum")
                && l.contains("EndpointName=\"cold\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(setup_sum > 0 && Duration::from_micros(setup_sum) <= took);
    let described = wait_status(&up.url, "cold", &["InService"]);
    let variant = &described["ProductionVariants"][0];
    assert_eq!(variant["CurrentServerlessConfig"]["MemorySizeInMB"], 2048);
    assert_eq!(variant["DesiredServerlessConfig"]["MaxConcurrency"], 2);
    drop(up);
}

#[test]
fn provisioned_concurrency_keeps_an_instance_warm() {
    let Some(sb) = setup() else { return };
    let up = Up::start_with(&sb, &["--serverless-idle", "1s"]).unwrap();
    serverless(
        &up.url,
        "warm",
        json!({"MemorySizeInMB": 1024, "MaxConcurrency": 4, "ProvisionedConcurrency": 1}),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(labelled_containers("label=sagedock.endpoint=warm").len(), 1);
    let (status, _, _) = invoke(&up.url, "warm", "");
    assert_eq!(status, 200);
    let metrics = http("GET", &format!("{}/metrics", up.url), &[], b"").text();
    assert!(
        !metrics.lines().any(|l| {
            l.starts_with("sagemaker_model_setup_time_microseconds_count")
                && l.contains("EndpointName=\"warm\"")
                && !l.ends_with(" 0")
        }),
        "{metrics}"
    );
    drop(up);
}
