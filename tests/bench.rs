//! `sagedock bench` against a real `sagedock serve` of the echo image: the report's counts
//! agree with what the endpoint counted, error answers and broken budgets fail the run,
//! an open loop the container cannot keep up with says so, `--compare-direct` measures the
//! container beside the endpoint, `--find-max` finds where a model saturates.

use serde_json::Value;

use crate::util::http::http;
use crate::util::serve::{serve_when_ready, Served};
use crate::util::{json, Sandbox};

fn serve_echo(sb: &Sandbox) -> Option<Served> {
    serve_echo_with(sb, &[])
}

fn serve_echo_with(sb: &Sandbox, extra: &[&str]) -> Option<Served> {
    let mut args = vec![
        "--image",
        "sagedock/echo:latest",
        "--name",
        "bench",
        "-e",
        "ECHO_QUIET=1",
    ];
    args.extend(extra);
    serve_when_ready(sb, &args)
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
fn compare_direct_runs_the_same_load_at_the_container_and_writes_a_page() {
    let sb = Sandbox::new();
    let Some(served) = serve_echo(&sb) else {
        return;
    };
    let page = sb.join("report.html");
    let out = bench(
        &sb,
        &served,
        &[
            "-c",
            "2",
            "-d",
            "1s",
            "--body-text",
            "{}",
            "--compare-direct",
            "--json",
            "--html",
            page.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = json(&out);
    let direct = &report["direct"];
    assert!(direct["ok"].as_u64().unwrap() > 50, "{report}");
    assert_eq!(direct["failed"], 0, "{report}");
    // Straight at the container's own /invocations, not through the runtime API, so no
    // variant names the answers.
    let url = direct["url"].as_str().unwrap();
    assert!(
        url.ends_with(":8080/invocations") && url != report["url"],
        "{url}"
    );
    assert!(
        direct["variants"].as_object().unwrap().is_empty(),
        "{report}"
    );
    // One second measured: one second in each timeline, its answers the run's.
    assert_eq!(report["timeline"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["timeline"][0]["ok"], report["ok"], "{report}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("direct to the container"), "{html}");
    assert_eq!(html.matches("<svg").count(), 4, "{html}");
    // The page's figures are the JSON's.
    let ok = report["ok"].as_u64().unwrap();
    assert!(
        html.contains(&format!("<td data-field=\"ok\">{ok}</td>")),
        "{html}"
    );
}

#[test]
fn bodies_from_a_folder_or_json_lines_are_sent_in_turn() {
    let sb = Sandbox::new();
    let Some(served) = serve_echo(&sb) else {
        return;
    };
    sb.write("bodies/a.json", "{\"a\": 1}");
    sb.write("bodies/b.json", "{\"b\": 2}");
    let dir = sb.join("bodies");
    let out = bench(
        &sb,
        &served,
        &["-d", "500ms", "--bodies", dir.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["bodies"], 2);
    let lines = sb.write("requests.jsonl", "{\"x\": 1}\n\n{\"x\": 2}\r\n{\"x\": 3}\n");
    let out = bench(
        &sb,
        &served,
        &["-d", "500ms", "--jsonl", lines.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["bodies"], 3);
    // Nothing to send is said before anything runs.
    std::fs::create_dir_all(sb.join("empty")).unwrap();
    let empty = sb.join("empty");
    let out = bench(&sb, &served, &["--bodies", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the folder has no files"));
    let blank = sb.write("blank.jsonl", "\n \n");
    let out = bench(&sb, &served, &["--jsonl", blank.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the file has no lines"));
}

/// A model that answers one request at a time in 20 ms saturates at 50 requests/s:
/// `--find-max` finds that rate within 10 %.
#[test]
fn find_max_finds_where_a_serial_model_saturates() {
    let sb = Sandbox::new();
    let Some(served) = serve_echo_with(&sb, &["-e", "ECHO_SERIAL=1"]) else {
        return;
    };
    let page = sb.join("max.html");
    let out = bench(
        &sb,
        &served,
        &[
            "-c",
            "16",
            "-d",
            "3s",
            "--custom-attributes",
            "sleep_ms=20",
            "--find-max",
            "--slo",
            "p99=200ms",
            "--json",
            "--html",
            page.to_str().unwrap(),
        ],
    );
    let search: Value = json(&out);
    assert_eq!(out.status.code(), Some(0), "{search}");
    let max = search["max_rate"].as_f64().unwrap();
    assert!((45.0..=55.0).contains(&max), "found {max}/s: {search}");
    // Every step is in the curve; the rate found passed and every rate above it failed.
    let steps = search["steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{search}");
    for step in steps {
        let rate = step["rate"].as_f64().unwrap();
        assert_eq!(step["passed"].as_bool().unwrap(), rate <= max, "{search}");
    }
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("p99 objective"), "{html}");
    assert!(html.contains("<b data-field=\"max_rate\">"), "{html}");
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
    for (args, said) in [
        (&["--find-max"][..], "--slo"),
        (&["--slo", "p99=1ms"][..], "--find-max"),
        (
            &["--find-max", "--slo", "p42=1ms"][..],
            "is not p50, p90, p99 or p99.9",
        ),
        (&["--compare-direct"][..], "--endpoint"),
        (&["--html", "no/such/dir/r.html"][..], "does not exist"),
    ] {
        let out = sb
            .cmd()
            .args(["bench", "--url", "http://127.0.0.1:1/x"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}
