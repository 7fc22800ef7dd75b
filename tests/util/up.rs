//! A running `sagedock up`, and the control-plane calls tests make to it as botocore would.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::docker::ready;
use super::http::http;
use super::process::Running;
use super::Sandbox;

/// One control-plane call as botocore makes it: the status and the JSON answer.
pub fn aws(url: &str, op: &str, body: Value) -> (u16, Value) {
    let reply = http(
        "POST",
        &format!("{url}/"),
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", &format!("SageMaker.{op}")),
        ],
        body.to_string().as_bytes(),
    );
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
    )
}

/// A call that must succeed.
pub fn ok(url: &str, op: &str, body: Value) -> Value {
    let (status, value) = aws(url, op, body);
    assert_eq!(status, 200, "{op}: {value}");
    value
}

/// A running `sagedock up` on the sandbox's data directory and S3 root.
pub struct Up {
    pub process: Running,
    pub url: String,
}

impl Up {
    pub fn start(sb: &Sandbox) -> Result<Up, String> {
        Self::start_with(sb, &[])
    }

    /// `sagedock up` with `extra` arguments.
    pub fn start_with(sb: &Sandbox, extra: &[&str]) -> Result<Up, String> {
        Self::start_env(sb, extra, &[])
    }

    /// `sagedock up` with `extra` arguments and `env` in its environment.
    pub fn start_env(sb: &Sandbox, extra: &[&str], env: &[(&str, &str)]) -> Result<Up, String> {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("sagedock"));
        command
            .args(["up", "--port", "0", "--health-timeout", "60s"])
            .arg("--data-dir")
            .arg(sb.join("data"))
            .arg("--s3-root")
            .arg(sb.join("s3"))
            .args(extra)
            .envs(env.iter().copied())
            .env("SAGEDOCK_CACHE_DIR", sb.cache_dir());
        let mut process = Running::spawn(command);
        let url = process
            .wait_for(Duration::from_secs(60), |out| {
                out.lines()
                    .find_map(|l| l.strip_prefix("listening on "))
                    .map(|u| u.trim().to_string())
            })
            .map_err(|(code, err)| format!("exit {code:?}: {err}"))?;
        Ok(Up { process, url })
    }

    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Sends a signal and waits for the exit; the exit code.
    pub fn signal(self, signal: &str) -> Option<i32> {
        self.process.stop(signal)
    }
}

/// Polls DescribeEndpoint until the status is one of `until` (two minutes at most).
pub fn wait_status(url: &str, endpoint: &str, until: &[&str]) -> Value {
    let t0 = Instant::now();
    loop {
        let (status, value) = aws(url, "DescribeEndpoint", json!({"EndpointName": endpoint}));
        assert_eq!(status, 200, "{value}");
        if until.contains(&value["EndpointStatus"].as_str().unwrap_or("")) {
            return value;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "stuck: {value}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Model (with `container` as its PrimaryContainer), config (`count` instances of
/// `AllTraffic`) and endpoint, all named `name`.
pub fn deploy(url: &str, name: &str, container: Value, count: u32) {
    ok(
        url,
        "CreateModel",
        json!({
            "ModelName": name,
            "PrimaryContainer": container,
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
        }),
    );
    ok(
        url,
        "CreateEndpointConfig",
        json!({
            "EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": count, "InstanceType": "ml.t2.medium"}],
        }),
    );
    ok(
        url,
        "CreateEndpoint",
        json!({"EndpointName": name, "EndpointConfigName": name}),
    );
}

/// Model, config (one instance) and endpoint named `name` with `container`.
pub fn deploy_container(url: &str, name: &str, container: Value) {
    deploy(url, name, container, 1);
}

/// A sandbox with `s3://bucket/model.tar.gz` (the scikit-learn fixture), once Docker and
/// the test images are there; `None` when no engine answers outside CI.
pub fn setup() -> Option<Sandbox> {
    if !ready() {
        return None;
    }
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.join("s3/bucket")).unwrap();
    sb.pack("sklearn", "s3/bucket/model.tar.gz");
    Some(sb)
}
