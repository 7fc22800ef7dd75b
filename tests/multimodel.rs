//! Multi-model endpoints under `sagedock up`, on the echo image (which implements the
//! container's `/models` API and can be told to refuse loads or load slowly): models load
//! on first use from the model data prefix, invocations reach the model they name, the
//! least recently used model is unloaded when the container answers 507, and a slow load
//! answers ModelNotReadyException while it goes on. (The real Multi Model Server runs the
//! same flow in harness/clients/test_boto3_runtime.py.)

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::http::{http, Reply};
use crate::util::up::{deploy_container, ok, setup, wait_status, Up};
use crate::util::Sandbox;

/// Packs a one-file model `<name>.txt` into `s3/mme/<name>.tar.gz`.
fn pack_model(sb: &Sandbox, name: &str) {
    let src = sb.join(&format!("src-{name}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(sb.join("s3/mme")).unwrap();
    std::fs::write(src.join(format!("{name}.txt")), format!("model {name}\n")).unwrap();
    sb.cmd()
        .arg("pack")
        .arg(&src)
        .args(["-o", &format!("s3/mme/{name}.tar.gz")])
        .assert()
        .success();
}

/// A multi-model endpoint `name` on the echo image with `env`.
fn deploy_multi_model(url: &str, name: &str, env: Value) {
    deploy_container(
        url,
        name,
        json!({"Image": "sagedock/echo:latest", "Mode": "MultiModel", "ModelDataUrl": "s3://mme/", "Environment": env}),
    );
}

fn invoke(url: &str, endpoint: &str, target: Option<&str>, attrs: &str) -> Reply {
    let mut headers = vec![("X-Amzn-SageMaker-Custom-Attributes", attrs)];
    if let Some(target) = target {
        headers.push(("X-Amzn-SageMaker-Target-Model", target));
    }
    http(
        "POST",
        &format!("{url}/endpoints/{endpoint}/invocations"),
        &headers,
        b"payload",
    )
}

/// The names of the models loaded in the container, as it lists them.
fn loaded(container_ip: &str) -> Vec<String> {
    let reply = http(
        "GET",
        &format!("http://{container_ip}:8080/models"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let listing: Value = serde_json::from_slice(&reply.body).unwrap();
    let mut names: Vec<String> = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelUrl"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn container_ip(name: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            name,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The files of the model directory the container saw for one invocation (`report=1`).
fn files_seen(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report: Value = serde_json::from_slice(&reply.body).unwrap();
    report["model_dir"]["files"].clone()
}

fn error_code(reply: &Reply) -> String {
    reply.header("x-amzn-errortype").unwrap_or("").to_string()
}

#[test]
fn models_load_on_demand_and_the_least_recently_used_is_unloaded() {
    let Some(sb) = setup() else { return };
    for name in ["a", "b", "c"] {
        pack_model(&sb, name);
    }
    let up = Up::start_with(&sb, &["--model-load-wait", "1s"]).unwrap();
    // Room for two models: a third load answers 507.
    deploy_multi_model(&up.url, "mme", json!({"ECHO_MAX_MODELS": "2"}));
    deploy_multi_model(&up.url, "slow", json!({"ECHO_LOAD_DELAY_MS": "2500"}));
    for name in ["mme", "slow"] {
        let d = wait_status(&up.url, name, &["InService", "Failed"]);
        assert_eq!(d["EndpointStatus"], "InService", "{d}");
    }

    // A multi-model endpoint needs a TargetModel.
    let reply = invoke(&up.url, "mme", None, "");
    assert_eq!(
        (reply.status, error_code(&reply)),
        (400, "ValidationError".into()),
        "{}",
        reply.text()
    );
    // SageMaker's message quotes the request id.
    let id = reply.header("x-amzn-requestid").unwrap().to_string();
    assert!(
        reply
            .text()
            .contains(&format!("Request {id} is missing a target model header.")),
        "{}",
        reply.text()
    );

    // The first call loads the model; the container reads the model's own files.
    let reply = invoke(&up.url, "mme", Some("a.tar.gz"), "report=1");
    assert_eq!(files_seen(&reply), json!(["a.txt"]));
    let container = reply.header("x-sagedock-instance").unwrap().to_string();
    let ip = container_ip(&container);
    assert_eq!(loaded(&ip).len(), 1);
    let reply = invoke(&up.url, "mme", Some("b.tar.gz"), "report=1");
    assert_eq!(files_seen(&reply), json!(["b.txt"]));
    let reply = invoke(&up.url, "mme", Some("b.tar.gz"), "");
    assert_eq!(reply.text(), "payload");
    let both = loaded(&ip);
    assert_eq!(both.len(), 2);
    assert!(
        both.iter()
            .all(|u| u.starts_with("/opt/ml/models/") && u.ends_with("/model")),
        "{both:?}"
    );

    // a is used again, so b is the least recently used when c needs room.
    assert_eq!(invoke(&up.url, "mme", Some("a.tar.gz"), "").status, 200);
    let reply = invoke(&up.url, "mme", Some("c.tar.gz"), "report=1");
    assert_eq!(files_seen(&reply), json!(["c.txt"]));
    let after = loaded(&ip);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        !after.contains(&both[0]) || !after.contains(&both[1]),
        "nothing was unloaded: {after:?}"
    );
    // b comes back on demand (unloading a, now the least recently used).
    let reply = invoke(&up.url, "mme", Some("b.tar.gz"), "report=1");
    assert_eq!(files_seen(&reply), json!(["b.txt"]));

    // A model that is not under the prefix, or a path that leaves it: ValidationError.
    for target in ["missing.tar.gz", "../mme/a.tar.gz"] {
        let reply = invoke(&up.url, "mme", Some(target), "");
        assert_eq!(
            (reply.status, error_code(&reply)),
            (400, "ValidationError".into()),
            "{target}: {}",
            reply.text()
        );
    }
    let reply = invoke(&up.url, "mme", Some("missing.tar.gz"), "");
    assert!(
        reply.text().contains("Failed to download model data"),
        "{}",
        reply.text()
    );

    // A load that takes longer than the wait: ModelNotReadyException (429), and the load
    // goes on, so a later call finds the model loaded.
    let reply = invoke(&up.url, "slow", Some("a.tar.gz"), "");
    assert_eq!(
        (reply.status, error_code(&reply)),
        (429, "ModelNotReadyException".into()),
        "{}",
        reply.text()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let reply = invoke(&up.url, "slow", Some("a.tar.gz"), "");
    assert_eq!(reply.status, 200, "{}", reply.text());

    let metrics = http("GET", &format!("{}/metrics", up.url), &[], b"").text();
    assert!(
        metrics.contains(
            "sagemaker_model_cache_hit_total{EndpointName=\"mme\",VariantName=\"AllTraffic\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("sagemaker_model_loading_wait_time_microseconds_count{EndpointName=\"mme\""));

    // Deleting the endpoint removes the container's model links too.
    ok(&up.url, "DeleteEndpoint", json!({"EndpointName": "mme"}));
    let links = sb.cache_dir().join("multi-model").join(&container);
    let t0 = std::time::Instant::now();
    while links.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} left behind",
            links.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
