//! `sagedock up` and `sagedock demo` against a real engine: the lifecycle through the
//! AWS JSON 1.1 API, persistence, re-adoption after SIGKILL, the data-directory lock, and
//! failed deployments and updates. (The boto3 / AWS CLI / SDK suites live in
//! harness/clients and run from harness/ci/test.sh.)

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::docker::{labelled_containers, ready};
use crate::util::http::http;
use crate::util::up::{aws, deploy_container, ok, setup, wait_status, Up};
use crate::util::Sandbox;

/// Model + config + endpoint on the echo image, with `env` in the model.
fn deploy(url: &str, name: &str, env: Value) {
    deploy_container(
        url,
        name,
        json!({"Image": "sagedock/echo:latest", "ModelDataUrl": "s3://bucket/model.tar.gz", "Environment": env}),
    );
}

#[test]
fn the_demo_runs_end_to_end() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["demo", "--requests", "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("demo-endpoint InService"), "{text}");
    // Real TensorFlow computed it: the fixture is y = 0.5 x + 2.
    assert!(
        text.contains("answer {\"predictions\": [[5.2, 3.6, 4.25, 2.75]]}"),
        "{text}"
    );
    assert!(
        text.contains("latency over 20 sequential invocations: p50"),
        "{text}"
    );
    assert!(text.contains("cleaned up"), "{text}");
}

#[test]
fn sigkill_then_restart_readopts_the_running_containers() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    deploy(&up.url, "survivor", json!({}));
    wait_status(&up.url, "survivor", &["InService"]);
    let before = labelled_containers("label=sagedock.endpoint=survivor");
    assert_eq!(before.len(), 1);
    up.signal("KILL");
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=survivor"),
        before,
        "SIGKILL leaves the container"
    );

    // Another sagedock starting meanwhile leaves them for this data directory's `up`.
    sb.cmd()
        .args(["serve", "--port", "0", "--image", "sagedock/does-not-exist"])
        .assert()
        .code(2);
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=survivor"),
        before
    );
    let up = Up::start(&sb).unwrap();
    let described = wait_status(&up.url, "survivor", &["InService"]);
    assert_eq!(
        described["ProductionVariants"][0]["CurrentInstanceCount"],
        1
    );
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=survivor"),
        before,
        "re-adopted, not duplicated"
    );
    let reply = http(
        "POST",
        &format!("{}/endpoints/survivor/invocations", up.url),
        &[("Content-Type", "text/plain")],
        b"still here",
    );
    assert_eq!((reply.status, reply.text().as_str()), (200, "still here"));
    // `gc` from another shell leaves the containers of a running `up` alone.
    sb.cmd().args(["gc"]).assert().success();
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=survivor"),
        before
    );

    assert_eq!(up.signal("TERM"), Some(0));
    assert!(
        labelled_containers("label=sagedock.endpoint=survivor").is_empty(),
        "SIGTERM removes them"
    );

    // After a clean stop the endpoint persists and is deployed again.
    let up = Up::start(&sb).unwrap();
    let (_, listed) = aws(&up.url, "ListModels", json!({}));
    assert_eq!(listed["Models"][0]["ModelName"], "survivor");
    wait_status(&up.url, "survivor", &["InService"]);
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=survivor").len(),
        1
    );
    assert_eq!(up.signal("TERM"), Some(0));
}

#[test]
fn container_output_outlives_the_container_in_its_log_stream() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    deploy(&up.url, "logged", json!({}));
    wait_status(&up.url, "logged", &["InService"]);
    let reply = http(
        "POST",
        &format!("{}/endpoints/logged/invocations", up.url),
        &[],
        b"x",
    );
    assert_eq!(reply.status, 200);
    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "logged"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !labelled_containers("label=sagedock.endpoint=logged").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the endpoint's container was not removed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The container is gone; `sagedock logs` reads its stream from the record.
    let text = sb.logs("logged");
    assert!(text.contains("echo: listening on"), "{text}");
    assert!(text.contains("POST /invocations 200"), "{text}");
    assert!(text.contains("SIGTERM"), "{text}");
    // --tail keeps the last lines.
    let out = sb
        .cmd()
        .args(["logs", "logged", "--tail", "1", "--data-dir"])
        .arg(sb.join("data"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    drop(up);
}

#[test]
fn a_second_up_on_the_same_data_dir_refuses() {
    let Some(sb) = setup() else { return };
    let _first = Up::start(&sb).unwrap();
    let err = Up::start(&sb).err().expect("the second must refuse");
    assert!(
        err.contains("another sagedock is already running on the data directory"),
        "{err}"
    );
}

#[test]
fn a_container_that_dies_fails_the_endpoint_with_a_reason() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    deploy(&up.url, "doomed", json!({"ECHO_FAIL_AT_START": "3"}));
    let described = wait_status(&up.url, "doomed", &["Failed", "InService"]);
    assert_eq!(described["EndpointStatus"], "Failed");
    let reason = described["FailureReason"].as_str().unwrap();
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(labelled_containers("label=sagedock.endpoint=doomed").is_empty());

    // A model archive that wraps everything in one folder: the finding that explains the
    // failure comes first in FailureReason, before the container's own output.
    std::fs::create_dir_all(sb.join("wrapped/model")).unwrap();
    std::fs::write(sb.join("wrapped/model/model.pkl"), "tree").unwrap();
    sb.cmd()
        .args(["pack", "wrapped", "-o", "s3/bucket/wrapped.tar.gz"])
        .assert()
        .success();
    deploy_container(
        &up.url,
        "wrapped",
        json!({"Image": "sagedock/echo:latest", "ModelDataUrl": "s3://bucket/wrapped.tar.gz",
               "Environment": {"ECHO_FAIL_AT_START": "3"}}),
    );
    let described = wait_status(&up.url, "wrapped", &["Failed", "InService"]);
    let reason = described["FailureReason"].as_str().unwrap();
    assert!(
        reason.starts_with("the model data has warning[layout.wrapped] model: everything is inside the folder 'model/'"),
        "{reason}"
    );
    assert!(reason.contains("exited with code 3"), "{reason}");
    // And one with no model data at all says so.
    deploy_container(
        &up.url,
        "nodata",
        json!({"Image": "sagedock/echo:latest", "Environment": {"ECHO_FAIL_AT_START": "3"}}),
    );
    let described = wait_status(&up.url, "nodata", &["Failed", "InService"]);
    let reason = described["FailureReason"].as_str().unwrap();
    assert!(
        reason.starts_with("no model data was mounted at /opt/ml/model"),
        "{reason}"
    );
    let (status, err) = aws(&up.url, "DescribeModel", json!({"ModelName": "nope"}));
    assert_eq!(status, 400);
    assert_eq!(err["__type"], "ValidationException");
    assert_eq!(
        err["message"],
        "Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/nope\"."
    );
    drop(up);
}

#[test]
fn updates_shift_traffic_only_to_a_healthy_fleet() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    deploy(&up.url, "rolling", json!({}));
    wait_status(&up.url, "rolling", &["InService"]);
    let first = labelled_containers("label=sagedock.endpoint=rolling");

    // A failing update: the old fleet keeps serving, InService with a FailureReason.
    ok(
        &up.url,
        "CreateModel",
        json!({
            "ModelName": "broken", "PrimaryContainer": {"Image": "sagedock/echo:latest", "Environment": {"ECHO_FAIL_AT_START": "9"}},
        }),
    );
    ok(
        &up.url,
        "CreateEndpointConfig",
        json!({
            "EndpointConfigName": "broken",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "broken", "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}],
        }),
    );
    ok(
        &up.url,
        "UpdateEndpoint",
        json!({"EndpointName": "rolling", "EndpointConfigName": "broken"}),
    );
    let described = wait_status(&up.url, "rolling", &["InService", "Failed"]);
    assert_eq!(described["EndpointStatus"], "InService");
    assert_eq!(described["EndpointConfigName"], "rolling");
    assert!(
        described["FailureReason"]
            .as_str()
            .unwrap()
            .contains("exited with code 9"),
        "{described}"
    );
    assert_eq!(
        labelled_containers("label=sagedock.endpoint=rolling"),
        first
    );
    let reply = http(
        "POST",
        &format!("{}/endpoints/rolling/invocations", up.url),
        &[],
        b"old fleet",
    );
    assert_eq!(reply.text(), "old fleet");

    // A good update replaces the fleet; invocations keep working throughout.
    ok(
        &up.url,
        "CreateEndpointConfig",
        json!({
            "EndpointConfigName": "rolling-2",
            "ProductionVariants": [{"VariantName": "Blue", "ModelName": "rolling", "InitialInstanceCount": 2, "InstanceType": "ml.t2.medium"}],
        }),
    );
    ok(
        &up.url,
        "UpdateEndpoint",
        json!({"EndpointName": "rolling", "EndpointConfigName": "rolling-2"}),
    );
    let t0 = Instant::now();
    loop {
        let reply = http(
            "POST",
            &format!("{}/endpoints/rolling/invocations", up.url),
            &[],
            b"x",
        );
        assert_eq!(
            reply.status,
            200,
            "an invocation failed during the update: {}",
            reply.text()
        );
        let (_, d) = aws(
            &up.url,
            "DescribeEndpoint",
            json!({"EndpointName": "rolling"}),
        );
        if d["EndpointStatus"] == "InService" && d["EndpointConfigName"] == "rolling-2" {
            assert_eq!(d["ProductionVariants"][0]["VariantName"], "Blue");
            assert_eq!(d["ProductionVariants"][0]["CurrentInstanceCount"], 2);
            assert!(d.get("FailureReason").is_none(), "{d}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120));
    }
    let reply = http(
        "POST",
        &format!("{}/endpoints/rolling/invocations", up.url),
        &[],
        b"new fleet",
    );
    assert_eq!(
        reply.header("x-amzn-invoked-production-variant"),
        Some("Blue")
    );
    let t0 = Instant::now();
    while labelled_containers("label=sagedock.endpoint=rolling").len() != 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the old fleet was not removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(labelled_containers("label=sagedock.endpoint=rolling")
        .iter()
        .all(|c| !first.contains(c)));

    ok(
        &up.url,
        "DeleteEndpoint",
        json!({"EndpointName": "rolling"}),
    );
    let t0 = Instant::now();
    while aws(
        &up.url,
        "DescribeEndpoint",
        json!({"EndpointName": "rolling"}),
    )
    .0 == 200
    {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, err) = aws(
        &up.url,
        "DescribeEndpoint",
        json!({"EndpointName": "rolling"}),
    );
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    assert!(labelled_containers("label=sagedock.endpoint=rolling").is_empty());
}

#[test]
fn sigkill_while_creating_then_restart_ends_in_service_without_duplicates() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    deploy(&up.url, "midway", json!({"ECHO_STARTUP_DELAY_MS": "3000"}));
    let t0 = Instant::now();
    while labelled_containers("label=sagedock.endpoint=midway").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no container appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, d) = aws(
        &up.url,
        "DescribeEndpoint",
        json!({"EndpointName": "midway"}),
    );
    assert_eq!(d["EndpointStatus"], "Creating", "killed mid-lifecycle: {d}");
    up.signal("KILL");

    let up = Up::start(&sb).unwrap();
    let described = wait_status(&up.url, "midway", &["InService", "Failed"]);
    assert_eq!(described["EndpointStatus"], "InService", "{described}");
    let t0 = Instant::now();
    while labelled_containers("label=sagedock.endpoint=midway").len() != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "duplicates remain: {:?}",
            labelled_containers("label=sagedock.endpoint=midway")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = http(
        "POST",
        &format!("{}/endpoints/midway/invocations", up.url),
        &[],
        b"after the crash",
    );
    assert_eq!(reply.text(), "after the crash");
    assert_eq!(up.signal("TERM"), Some(0));
}

#[test]
fn multi_container_models_run_as_pipelines_or_direct() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    let containers = |hosts: bool| {
        let c = |n: &str| {
            let mut c = json!({"Image": "sagedock/echo:latest", "Environment": {"ECHO_APPEND": format!("|{n}")}});
            if hosts {
                c["ContainerHostname"] = json!(n);
            }
            c
        };
        json!([c("one"), c("two")])
    };
    ok(
        &up.url,
        "CreateModel",
        json!({"ModelName": "pipe", "Containers": containers(false)}),
    );
    ok(
        &up.url,
        "CreateModel",
        json!({
            "ModelName": "direct", "Containers": containers(true), "InferenceExecutionConfig": {"Mode": "Direct"},
        }),
    );
    for name in ["pipe", "direct"] {
        ok(
            &up.url,
            "CreateEndpointConfig",
            json!({
                "EndpointConfigName": name,
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}],
            }),
        );
        ok(
            &up.url,
            "CreateEndpoint",
            json!({"EndpointName": name, "EndpointConfigName": name}),
        );
    }
    for name in ["pipe", "direct"] {
        let d = wait_status(&up.url, name, &["InService", "Failed"]);
        assert_eq!(d["EndpointStatus"], "InService", "{d}");
        assert_eq!(
            labelled_containers(&format!("label=sagedock.endpoint={name}")).len(),
            2
        );
    }
    let invoke = |name: &str, headers: &[(&str, &str)]| {
        http(
            "POST",
            &format!("{}/endpoints/{name}/invocations", up.url),
            headers,
            b"x",
        )
    };

    // Serial: each container's answer is the next one's request; each listens on its own
    // SAGEMAKER_BIND_TO_PORT.
    let reply = invoke("pipe", &[("Content-Type", "text/plain")]);
    assert_eq!((reply.status, reply.text().as_str()), (200, "x|one|two"));
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    let refused = invoke(
        "pipe",
        &[("X-Amzn-SageMaker-Target-Container-Hostname", "one")],
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("x-amzn-errortype"), Some("ValidationError"));

    // Direct: the caller picks the container.
    assert_eq!(
        invoke(
            "direct",
            &[("X-Amzn-SageMaker-Target-Container-Hostname", "two")]
        )
        .text(),
        "x|two"
    );
    assert_eq!(
        invoke(
            "direct",
            &[("X-Amzn-SageMaker-Target-Container-Hostname", "one")]
        )
        .text(),
        "x|one"
    );
    let missing = invoke("direct", &[]);
    assert_eq!(
        (missing.status, missing.header("x-amzn-errortype")),
        (400, Some("ValidationError"))
    );
    let unknown = invoke(
        "direct",
        &[("X-Amzn-SageMaker-Target-Container-Hostname", "three")],
    );
    assert!(unknown.text().contains("three"), "{}", unknown.text());

    // Hostnames: all or none.
    let (status, err) = aws(
        &up.url,
        "CreateModel",
        json!({
            "ModelName": "half", "Containers": [
                {"Image": "sagedock/echo:latest", "ContainerHostname": "a"}, {"Image": "sagedock/echo:latest"}],
        }),
    );
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    assert_eq!(up.signal("TERM"), Some(0));
}

#[test]
fn a_restart_with_lower_caps_fails_the_endpoint_instead_of_refusing_to_start() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    let echo = json!({"Image": "sagedock/echo:latest", "ModelDataUrl": "s3://bucket/model.tar.gz"});
    crate::util::up::deploy(&up.url, "wide", echo, 2);
    wait_status(&up.url, "wide", &["InService"]);
    assert_eq!(up.signal("TERM"), Some(0));

    // The data directory holds an endpoint of two instances; this run allows one.
    let up = Up::start_with(&sb, &["--max-instances-per-endpoint", "1"]).unwrap();
    let described = wait_status(&up.url, "wide", &["Failed", "InService"]);
    assert_eq!(described["EndpointStatus"], "Failed", "{described}");
    let reason = described["FailureReason"].as_str().unwrap_or("");
    assert!(
        reason.contains("at most 1 per endpoint")
            && reason.contains("--max-instances-per-endpoint"),
        "{reason}"
    );
    assert!(labelled_containers("label=sagedock.endpoint=wide").is_empty());
    // The rest of the API serves, and the endpoint can be mended by the caller.
    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "wide"}));
    assert_eq!(up.signal("TERM"), Some(0));
}
