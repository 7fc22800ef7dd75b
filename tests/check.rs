//! `sagedock check IMAGE` on real containers: the echo image passes every rule; each
//! knob of the echo image and each small image of `harness/images/check/` that breaks a
//! rule fails (or warns on) that rule for the right reason; the AWS-style stacks built in
//! `harness/images/` pass, and what they would pay in SageMaker is said.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::docker::ready;
use crate::util::{fixture, junit_counts, Sandbox};

/// Runs `sagedock check ARGS --json`: the exit code and the report.
fn check(sb: &Sandbox, args: &[&str]) -> (Option<i32>, Value) {
    let out = sb
        .cmd()
        .arg("check")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// A rule of the report: (verdict, measured).
fn rule(report: &Value, code: &str) -> (String, String) {
    let rule = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no rule {code} in {report:#}"));
    (
        rule["verdict"].as_str().unwrap().to_string(),
        rule["measured"].as_str().unwrap().to_string(),
    )
}

/// Asserts each `(code, verdict)`, showing the rule when one differs.
fn assert_verdicts(report: &Value, expected: &[(&str, &str)]) {
    for (code, verdict) in expected {
        let (got, measured) = rule(report, code);
        assert_eq!(&got, verdict, "{code}: {measured}\n{report:#}");
    }
}

/// The codes of every rule with `verdict`.
fn with_verdict(report: &Value, verdict: &str) -> Vec<String> {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == verdict)
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

/// The first number in `text` followed by ` s` or ` ms`, in seconds.
fn seconds_in(text: &str) -> f64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    for pair in words.windows(2) {
        let unit = pair[1].trim_end_matches([',', ';', ':', ')']);
        if let Ok(n) = pair[0].parse::<f64>() {
            match unit {
                "s" => return n,
                "ms" => return n / 1000.0,
                _ => {}
            }
        }
    }
    panic!("no duration in {text:?}")
}

/// Runs `sagedock check IMAGE --model model --request REQUEST --content-type T` with a
/// one-second load, as the stacks built here are checked.
fn check_stack(
    sb: &Sandbox,
    image: &str,
    model: &str,
    request: &str,
    content_type: &str,
) -> (Option<i32>, Value) {
    check(
        sb,
        &[
            image,
            "--model",
            model,
            "--request",
            request,
            "--content-type",
            content_type,
            "--load-duration",
            "1s",
        ],
    )
}

/// Makes `model/` in the sandbox with the image's own framework: `docker run` with it
/// mounted at /out and `args` after the volume.
fn make_model_with(sb: &Sandbox, args: &[&str]) {
    std::fs::create_dir_all(sb.join("model")).unwrap();
    let made = Command::new("docker")
        .args(["run", "--rm", "-v"])
        .arg(format!("{}:/out", sb.join("model").display()))
        .args(args)
        .status()
        .unwrap();
    assert!(made.success(), "docker run {args:?}");
}

#[test]
fn the_echo_image_passes_every_rule() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("model/weights.bin", b"w");
    sb.write("request.csv", b"1,2,3\n");
    let (code, report) = check(
        &sb,
        &[
            "sagedock/echo:latest",
            "--model",
            "model",
            "--request",
            "request.csv",
            "--content-type",
            "text/csv",
            "--load-duration",
            "1s",
            "--junit",
            "check.xml",
        ],
    );
    assert_eq!(code, Some(0), "{report:#}");
    let rules = report["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 23, "{report:#}");
    assert_eq!(with_verdict(&report, "pass").len(), 23, "{report:#}");
    let (_, listen) = rule(&report, "start.listen");
    assert!(seconds_in(&listen) < 0.25, "{listen}");
    let (_, load) = rule(&report, "limits.survives");
    assert!(
        load.contains("requests answered 2xx under load (4 connections"),
        "{load}"
    );
    let (_, memory) = rule(&report, "limits.memory");
    assert!(memory.contains("of 8192 MiB"), "{memory}");
    assert_eq!(junit_counts(&sb.join("check.xml")), (23, 0, 0));
}

#[test]
fn echo_knobs_break_their_rules() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("request.json", b"{}");
    let (code, report) = check(
        &sb,
        &[
            "sagedock/echo:latest",
            "--request",
            "request.json",
            "--load-duration",
            "1s",
            "--stop-timeout",
            "2s",
            "--health-timeout",
            "8s",
            "-e",
            "ECHO_STARTUP_DELAY_MS=4500",
            "-e",
            "ECHO_IGNORE_SIGTERM=1",
            "-e",
            "ECHO_LISTEN_DELAY_MS=1000",
            "-e",
            "ECHO_COLD_MS=1500",
            "-e",
            "ECHO_NO_CONTENT_TYPE=1",
            "-e",
            "ECHO_STRICT_HEADERS=1",
        ],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("start.listen", "pass"),
            ("start.health", "warn"),
            ("invoke.answer", "pass"),
            ("invoke.content-type", "warn"),
            ("invoke.unknown-headers", "fail"),
            ("invoke.warm-up", "warn"),
            ("stop.sigterm", "fail"),
            ("image.bind-to-port", "pass"),
            ("env.model-read-only", "skip"),
        ],
    );
    let (_, listen) = rule(&report, "start.listen");
    assert!(seconds_in(&listen) >= 1.0, "{listen}");
    let (_, headers) = rule(&report, "invoke.unknown-headers");
    assert!(
        headers.contains("unknown header x-amzn-trace-id"),
        "{headers}"
    );
    let (_, warm) = rule(&report, "invoke.warm-up");
    assert!(seconds_in(&warm) >= 1.5, "{warm}");
    let (_, stop) = rule(&report, "stop.sigterm");
    assert!(
        stop.contains("did not exit within 2 s of SIGTERM"),
        "{stop}"
    );
}

#[test]
fn a_server_busy_with_invocations_fails_its_health_checks() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("request.json", b"{}");
    // One request at a time, each 800 ms: a /ping queued behind the load's four waits
    // more than 2 s. And an x86 image on a Graviton instance type.
    let (code, report) = check(
        &sb,
        &[
            "sagedock/echo:latest",
            "--instance-type",
            "ml.c6g.large",
            "--request",
            "request.json",
            "--custom-attributes",
            "sleep_ms=800",
            "--load-duration",
            "2s",
            "-e",
            "ECHO_SERIAL=1",
            "-e",
            "ECHO_IGNORE_BIND_TO_PORT=1",
        ],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("image.architecture", "fail"),
            ("image.bind-to-port", "fail"),
            ("ping.stable", "fail"),
            ("ping.latency", "fail"),
            ("invoke.answer", "pass"),
            ("limits.survives", "pass"),
        ],
    );
    let (_, arch) = rule(&report, "image.architecture");
    assert!(arch.contains("runs arm64"), "{arch}");
    let (_, latency) = rule(&report, "ping.latency");
    assert!(latency.contains("no answer within 2 s"), "{latency}");
    let (_, bind) = rule(&report, "image.bind-to-port");
    assert!(bind.contains("8081: Connection refused"), "{bind}");
}

#[test]
fn a_sample_that_outgrows_the_instance_is_killed() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("request.json", b"{}");
    // ml.t2.medium has 4 GiB; the request makes the echo server touch 4.2 GiB.
    let (code, report) = check(
        &sb,
        &[
            "sagedock/echo:latest",
            "--instance-type",
            "ml.t2.medium",
            "--request",
            "request.json",
            "--custom-attributes",
            "alloc_mb=4300",
        ],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("invoke.answer", "fail"),
            ("invoke.warm-up", "skip"),
            ("limits.memory", "fail"),
            ("limits.survives", "fail"),
            ("stop.sigterm", "skip"),
        ],
    );
    let (_, memory) = rule(&report, "limits.memory");
    assert!(memory.contains("OOM-killed"), "{memory}");
}

#[test]
fn execution_parameters_are_read_as_transform_jobs_read_them() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("request.csv", b"1,2,3\n");
    let args = |parameters: &str| {
        [
            "sagedock/byo-train:latest".to_string(),
            "--request".into(),
            "request.csv".into(),
            "--content-type".into(),
            "text/csv".into(),
            "--load-duration".into(),
            "1s".into(),
            "-e".into(),
            format!("BYO_EXECUTION_PARAMETERS={parameters}"),
        ]
    };
    let good = args(
        r#"{"MaxConcurrentTransforms": 4, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}"#,
    );
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let (code, report) = check(&sb, &good);
    assert_eq!(code, Some(0), "{report:#}");
    let (verdict, measured) = rule(&report, "batch.execution-parameters");
    assert_eq!(verdict, "pass", "{measured}");
    assert!(
        measured
            .contains("MaxConcurrentTransforms 4, BatchStrategy SINGLE_RECORD, MaxPayloadInMB 2"),
        "{measured}"
    );
    let bad = args(r#"{"BatchStrategy": "Lines"}"#);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let (_, report) = check(&sb, &bad);
    assert_verdicts(&report, &[("batch.execution-parameters", "warn")]);
}

#[test]
fn a_start_that_needs_the_network_warns_or_fails_under_isolation() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    // PyPI, as a `code/requirements.txt` install at start would reach it (these machines
    // reach PyPI; under isolation the name does not even resolve).
    let target = "ECHO_CONNECT_AT_START=pypi.org:443";
    let (code, report) = check(&sb, &["sagedock/echo:latest", "-e", target]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_verdicts(
        &report,
        &[("env.network-isolation", "warn"), ("start.health", "pass")],
    );
    let (_, why) = rule(&report, "env.network-isolation");
    assert!(why.contains("cannot resolve pypi.org:443"), "{why}");
    let (code, report) = check(
        &sb,
        &["sagedock/echo:latest", "-e", target, "--network-isolation"],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(&report, &[("env.network-isolation", "fail")]);
}

#[test]
fn a_requirements_install_at_start_needs_the_network() {
    if !ready() {
        return;
    }
    // The scikit-learn fixture with a `code/requirements.txt`: the container pip-installs
    // it at start, as SageMaker's scikit-learn container does, from PyPI.
    let sb = Sandbox::new();
    crate::util::copy_tree(&fixture("models/sklearn"), &sb.join("model"));
    sb.write("model/code/requirements.txt", b"tabulate==0.9.0\n");
    sb.write("request.json", b"[[1, 2, 3, 4]]");
    let (code, report) = check(
        &sb,
        &[
            "sagedock/sklearn:latest",
            "--model",
            "model",
            "--request",
            "request.json",
            "--load-duration",
            "1s",
            "-e",
            "SAGEMAKER_PROGRAM=inference.py",
            "-e",
            "SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code",
            // pip gives up at once without a network instead of retrying for a minute.
            "-e",
            "PIP_RETRIES=0",
            "-e",
            "PIP_DEFAULT_TIMEOUT=3",
        ],
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("env.network-isolation", "warn"),
            ("start.health", "pass"),
            ("invoke.answer", "pass"),
        ],
    );
    let (_, why) = rule(&report, "env.network-isolation");
    assert!(
        why.contains("No matching distribution found for tabulate==0.9.0"),
        "{why}"
    );
}

#[test]
fn a_write_into_the_model_fails() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("model/weights.bin", b"w");
    let (code, report) = check(
        &sb,
        &[
            "sagedock/echo:latest",
            "--model",
            "model",
            "-e",
            "ECHO_WRITE_MODEL=1",
        ],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("env.model-read-only", "fail"),
            ("start.health", "fail"),
            ("stop.sigterm", "skip"),
        ],
    );
    let (_, why) = rule(&report, "env.model-read-only");
    assert!(why.contains("Read-only file system"), "{why}");
}

#[test]
fn images_that_break_the_entrypoint_rules() {
    if !ready() {
        return;
    }
    let built = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/images/check/build.sh"))
        .status()
        .unwrap();
    assert!(built.success());
    let sb = Sandbox::new();
    let (code, report) = check(
        &sb,
        &["sagedock/check-shell-form:latest", "--stop-timeout", "2s"],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("image.entrypoint", "fail"),
            ("start.health", "pass"),
            ("stop.sigterm", "fail"),
        ],
    );
    let (code, report) = check(&sb, &["sagedock/check-tini:latest"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("image.init", "warn"),
            ("image.cmd", "warn"),
            ("start.health", "fail"),
        ],
    );
    let (_, why) = rule(&report, "start.health");
    assert!(why.contains("exec serve failed"), "{why}");
    let (code, report) = check(&sb, &["sagedock/check-user:latest"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_verdicts(&report, &[("image.user", "warn"), ("stop.sigterm", "pass")]);
}

#[test]
fn the_aws_style_stacks_pass() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("tf.json", br#"{"instances": [[6.4, 3.2, 4.5, 1.5]]}"#);
    sb.write("mx.json", b"[[6.4, 3.2, 4.5, 1.5]]");
    sb.write("review.txt", b"This is an amazing movie.");
    let stacks: [(&str, &str, &str, &str); 3] = [
        (
            "sagedock/tensorflow:latest",
            "tensorflow",
            "tf.json",
            "application/json",
        ),
        (
            "sagedock/mxnet:latest",
            "mxnet",
            "mx.json",
            "application/json",
        ),
        ("sagedock/mms:latest", "mms", "review.txt", "text/plain"),
    ];
    for (image, model, request, content_type) in stacks {
        let model = fixture(&format!("models/{model}"));
        let (code, report) =
            check_stack(&sb, image, model.to_str().unwrap(), request, content_type);
        assert_eq!(code, Some(0), "{image}: {report:#}");
        assert!(with_verdict(&report, "skip").is_empty(), "{report:#}");
        // What passing takes, said: each of these stacks listens only once its server
        // has loaded, seconds after the start.
        let (_, listen) = rule(&report, "start.listen");
        assert!(listen.contains("refused until then"), "{image}: {listen}");
        if image.contains("mxnet") {
            // MXNet binds the model on the first request: a cold start the report names.
            assert_verdicts(&report, &[("invoke.warm-up", "warn")]);
        }
    }
}

#[test]
fn the_xgboost_stack_passes_with_a_booster_it_trained() {
    if !ready() {
        return;
    }
    // A booster trained by XGBoost 1.7.4 in the image itself, saved as the built-in
    // algorithm saves it (`xgboost-model`, XGBoost's own binary format).
    let sb = Sandbox::new();
    make_model_with(
        &sb,
        &[
            "--entrypoint",
            "python3",
            "sagedock/xgboost:latest",
            "-c",
            "import numpy as np, xgboost as xgb\n\
             x = np.random.default_rng(0).uniform(size=(200, 3))\n\
             d = xgb.DMatrix(x, label=x @ [3.0, 2.0, -1.0])\n\
             xgb.train({'max_depth': 3}, d, 20).save_model('/out/xgboost-model')",
        ],
    );
    sb.write("rows.csv", b"0.5,0.5,0.5\n1,0,0");
    let (code, report) = check_stack(
        &sb,
        "sagedock/xgboost:latest",
        "model",
        "rows.csv",
        "text/csv",
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert!(with_verdict(&report, "skip").is_empty(), "{report:#}");
    assert!(with_verdict(&report, "fail").is_empty(), "{report:#}");
    // The built-in algorithm declares batch transform's limits, as AWS's container does.
    let (_, batch) = rule(&report, "batch.execution-parameters");
    assert!(batch.contains("MULTI_RECORD"), "{batch}");
}

#[test]
fn the_pytorch_stack_passes_with_a_torchscript_model() {
    if !ready() {
        return;
    }
    // TorchScript written by the image's own torch (harness/images/pytorch/make_model.py),
    // served by the toolkit's default handlers on TorchServe.
    let sb = Sandbox::new();
    make_model_with(
        &sb,
        &[
            "sagedock/pytorch:latest",
            "sagedock-pytorch-make-model",
            "/out",
        ],
    );
    sb.write("rows.json", b"[[1, 1, 1], [0, 0, 0]]");
    let (code, report) = check_stack(
        &sb,
        "sagedock/pytorch:latest",
        "model",
        "rows.json",
        "application/json",
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert!(with_verdict(&report, "fail").is_empty(), "{report:#}");
    assert_verdicts(
        &report,
        &[
            ("invoke.answer", "pass"),
            ("stop.sigterm", "pass"),
            ("image.bind-to-port", "pass"),
        ],
    );
}
