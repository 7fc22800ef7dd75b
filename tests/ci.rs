//! `sagedock ci` on real containers: the bundled echo spec passes; a spec with a broken
//! artifact, a wrong expectation and a missing image fails each check that should fail,
//! skips what cannot run, and says so in JUnit XML that a real XML parser reads.

use crate::util::docker::{labelled_containers, ready};
use crate::util::{fixture, junit_counts, Sandbox};

/// Runs `sagedock ci SPEC ARGS` and returns its stdout, asserting every check passed.
fn passing_run(sb: &Sandbox, spec: &str, args: &[&str]) -> String {
    let out = sb
        .cmd()
        .arg("ci")
        .arg(fixture(spec))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_bundled_echo_spec_passes() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let junit = sb.join("report.xml");
    let stdout = passing_run(&sb, "ci/echo.json", &["--junit", junit.to_str().unwrap()]);
    assert!(
        stdout.contains("5 checks: 5 passed, 0 failed, 0 skipped"),
        "{stdout}"
    );
    assert_eq!(junit_counts(&junit), (5, 0, 0));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"request a container error is a ModelError\""),
        "{xml}"
    );
    // Every container is gone once the run ends.
    assert!(labelled_containers("sagedock.endpoint=echo").is_empty());
}

#[test]
fn failed_checks_fail_and_what_cannot_run_is_skipped() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    // A PyTorch model without code/inference.py: the PyTorch container could not load it.
    sb.write("model/model.pth", b"weights");
    sb.write(
        "spec.json",
        r#"{"endpoints": [
          {"name": "broken", "image": "sagedock/echo:latest", "model": "model", "framework": "pytorch",
           "requests": [{"name": "wrong expectation", "body": "hello", "content_type": "text/plain",
                         "expect": {"body_contains": ["goodbye"]}}]},
          {"name": "absent", "image": "sagedock/absent-image:latest",
           "requests": [{"name": "never sent", "body": "x"}],
           "load": {"duration": "1s"}}
        ]}"#,
    );
    let out = sb
        .cmd()
        .args(["ci", "spec.json", "--junit", "out.xml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // The artifact's error fails its check, but the endpoint still starts (SageMaker's
    // would too) and its request is checked.
    assert!(
        stdout.contains("FAIL validate model: 1 error(s), first: [code.missing]"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS start"), "{stdout}");
    assert!(
        stdout.contains("FAIL request wrong expectation: the body does not contain \"goodbye\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL start: ") && stdout.contains("sagedock/absent-image:latest"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SKIP request never sent: the endpoint did not start"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SKIP load: the endpoint did not start"),
        "{stdout}"
    );
    assert_eq!(junit_counts(&sb.join("out.xml")), (6, 3, 2));
}

#[test]
fn a_bad_spec_stops_before_anything_starts() {
    let sb = Sandbox::new();
    sb.write(
        "spec.json",
        r#"{"endpoints": [{"name": "a", "image": "i", "replicas": 2}]}"#,
    );
    let out = sb.cmd().args(["ci", "spec.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.json") && stderr.contains("unknown field `replicas`"),
        "{stderr}"
    );
    let out = sb
        .cmd()
        .args(["ci", "spec.json", "--junit", "no/such/dir/out.xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The MMS walkthrough's model on the real Multi Model Server, as a CI spec.
#[test]
fn the_sentiment_spec_passes_on_the_real_multi_model_server() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let stdout = passing_run(&sb, "ci/sentiment.json", &[]);
    assert!(stdout.contains("PASS request negative review"), "{stdout}");
    assert!(stdout.contains("5 checks: 5 passed"), "{stdout}");
}

/// The TensorFlow walkthroughs' SavedModel on real TensorFlow, as a CI spec.
#[test]
fn the_tensorflow_spec_passes_on_real_tensorflow() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let stdout = passing_run(&sb, "ci/tensorflow.json", &[]);
    assert!(
        stdout.contains("PASS request a wrong shape is the model's error"),
        "{stdout}"
    );
    assert!(stdout.contains("6 checks: 6 passed"), "{stdout}");
}

/// The MXNet walkthrough's checkpoint on AWS's MXNet serving toolkit, as a CI spec.
#[test]
fn the_mxnet_spec_passes_on_real_mxnet() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let stdout = passing_run(&sb, "ci/mxnet.json", &[]);
    assert!(stdout.contains("PASS request csv rows"), "{stdout}");
    assert!(stdout.contains("6 checks: 6 passed"), "{stdout}");
}

/// The scikit-learn fixture on SageMaker's scikit-learn serving stack, as a CI spec.
#[test]
fn the_sklearn_spec_passes_on_real_scikit_learn() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    let stdout = passing_run(&sb, "ci/sklearn.json", &[]);
    assert!(stdout.contains("PASS request csv rows"), "{stdout}");
    assert!(stdout.contains("5 checks: 5 passed"), "{stdout}");
}

#[test]
fn the_contract_rules_run_as_cases() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    sb.write(
        "spec.json",
        r#"{"endpoints": [
          {"name": "keeps-rules", "image": "sagedock/echo:latest",
           "requests": [{"name": "echoes", "body": "1,2", "content_type": "text/csv"}],
           "contract": {"load_duration": "1s"}},
          {"name": "strict-headers", "image": "sagedock/echo:latest",
           "environment": {"ECHO_STRICT_HEADERS": "1"},
           "requests": [{"name": "echoes", "body": "1,2", "content_type": "text/csv"}],
           "contract": {"load_duration": "1s"}}
        ]}"#,
    );
    let out = sb
        .cmd()
        .args(["ci", "spec.json", "--junit", "out.xml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS contract stop.sigterm"), "{stdout}");
    // InvokeEndpoint passes on only the headers SageMaker passes, so the request check
    // passes; the contract's request with unknown headers added does not.
    assert!(stdout.contains("PASS request echoes"), "{stdout}");
    assert!(
        stdout.contains("FAIL contract invoke.unknown-headers: answered 200 without them and 400"),
        "{stdout}"
    );
    // The rule with nothing to measure (no model) is left out: 1 start + 1 request + 22
    // rules for each endpoint.
    assert_eq!(junit_counts(&sb.join("out.xml")), (48, 1, 0));
}
