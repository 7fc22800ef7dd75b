//! `sagedock bench` against a real `sagedock serve` of the echo image: the report's counts
//! agree with what the endpoint counted, error answers and broken budgets fail the run,
//! an open loop the container cannot keep up with says so.

use serde_json::Value;

use crate::util::http::http;
use crate::util::serve::{serve_when_ready, Served};
use crate::util::{json, Sandbox};

fn serve_echo(sb: &Sandbox) -> Option<Served> {
    serve_when_ready(
        sb,
        &[
            "--image",
            "sagedock/echo:latest",
            "--name",
            "bench",
            "-e",
            "ECHO_QUIET=1",
        ],
    )
}

/// `sagedock bench --endpoint bench --endpoint-url URL ARGS`.
fn bench(sb: &Sandbox, served: &Served, args: &[&str]) -> std::process::Output {
    sb.cmd()
        .args([
            "bench",
            "--endpoint",
            "bench",
            "--endpoint-url",
            &served.url,
        ])
        .args(["--warmup", "200ms"])
        .args(args)
        .output()
        .unwrap()
}

/// The endpoint's Invocations counter on /metrics.
fn invocations(served: &Served) -> u64 {
    let metrics = http("GET", &format!("{}/metrics", served.url), &[], b"").text();
    metrics
        .lines()
        .filter(|l| l.starts_with("sagemaker_invocations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn closed_loop_report_agrees_with_the_endpoint() {
    let sb = Sandbox::new();
    let Some(served) = serve_echo(&sb) else {
        return;
    };
    let before = invocations(&served);
    let out = bench(
        &sb,
        &served,
        &["-c", "4", "-d", "2s", "--body-text", "{\"x\": 1}", "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = json(&out);
    assert_eq!(report["mode"], "closed");
    assert_eq!(report["failed"], 0, "{report}");
    let ok = report["ok"].as_u64().unwrap();
    assert!(ok > 100, "{report}");
    // Every counted request (and the warm-up's) went through the endpoint.
    let counted = invocations(&served) - before;
    assert!(
        counted >= ok,
        "the endpoint counted {counted}, the report {ok}"
    );
    // serve's one variant served every answer.
    assert_eq!(report["variants"]["AllTraffic"]["ok"], ok, "{report}");
    assert_eq!(report["variants"]["AllTraffic"]["share"], 1.0, "{report}");
    let l = &report["latency_ms"];
    assert!(
        l["p50"].as_f64().unwrap() > 0.0 && l["p50"].as_f64() <= l["p99"].as_f64(),
        "{l}"
    );
}

#[test]
fn model_errors_and_broken_budgets_fail_the_run() {
    let sb = Sandbox::new();
    let Some(served) = serve_echo(&sb) else {
        return;
    };
    // The container answers 500: SageMaker's ModelError (424) reaches the caller.
    let out = bench(
        &sb,
        &served,
        &["-d", "1s", "--custom-attributes", "status=500", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = json(&out);
    assert_eq!(report["ok"], 0);
    assert!(report["latency_ms"].is_null());
    assert!(
        report["failures"]["424 ModelError (500)"].as_u64().unwrap() > 0,
        "{report}"
    );

    // Answers that take 5 ms cannot have a p99 under 1 ms.
    let out = bench(
        &sb,
        &served,
        &[
            "-d",
            "1s",
            "--custom-attributes",
            "sleep_ms=5",
            "--max-p99",
            "1ms",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("budget    p99 ") && text.contains("exceeds max p99 1ms"),
        "{text}"
    );

    // An unknown endpoint is the endpoint's ValidationError, counted.
    let out = sb
        .cmd()
        .args([
            "bench",
            "--endpoint",
            "nope",
            "--endpoint-url",
            &served.url,
            "-d",
            "300ms",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json(&out)["failures"]["400 ValidationError"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn an_open_loop_the_model_cannot_keep_up_with_is_reported_behind() {
    let sb = Sandbox::new();
    let Some(served) = serve_echo(&sb) else {
        return;
    };
    // One connection to a 20 ms model sustains at most 50 requests/s; 100/s are asked.
    // The warm-up's backlog (about 16 requests) is still being served when the measured
    // window opens: 2 s leave room for measured answers on a busy machine.
    let out = bench(
        &sb,
        &served,
        &[
            "-d",
            "2s",
            "--rate",
            "100",
            "--custom-attributes",
            "sleep_ms=20",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = json(&out);
    assert_eq!(report["mode"], "open");
    // At most ~84 of the 200 requests due in the window can be answered.
    assert!(report["unsent"].as_u64().unwrap() > 50, "{report}");
    // The requests that waited are timed from when they fell due: far over 20 ms.
    let p90 = report["latency_ms"]["p90"].as_f64();
    assert!(p90.is_some_and(|p| p > 100.0), "{report}");
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args([
            "bench",
            "--url",
            "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https is not supported"));
    let out = sb
        .cmd()
        .args(["bench", "--url", "http://127.0.0.1:1/x", "--rate", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate 0"));
    let out = sb
        .cmd()
        .args(["bench", "--body-text", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sb
        .cmd()
        .args([
            "bench",
            "--url",
            "http://127.0.0.1:1/x",
            "--body",
            "missing.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
}
