//! The dashboard's own routes on a real `sagedock up` (the page itself is driven by a real
//! browser in harness/clients/test_dashboard.py): the page and its files, this run's
//! containers with the engine's figures, the live metrics stream, a model's findings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::http::http;
use crate::util::up::{deploy_container, ok, setup, wait_status, Up};

fn get_json(url: &str) -> Value {
    let reply = http("GET", url, &[], b"");
    assert_eq!(reply.status, 200, "{url}: {}", reply.text());
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn the_page_its_files_and_the_routes_it_reads() {
    let Some(sb) = setup() else { return };
    let up = Up::start(&sb).unwrap();
    // The page and its files, embedded: no request leaves the port.
    let page = http("GET", &format!("{}/", up.url), &[], b"");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("/_sagedock/app.js"), "{}", page.text());
    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let reply = http("GET", &format!("{}/_sagedock/{file}", up.url), &[], b"");
        assert_eq!(reply.status, 200, "{file}");
        assert!(reply.header("content-type").unwrap().starts_with(kind));
        assert!(
            reply.body.len() > 1000,
            "{file} is {} bytes",
            reply.body.len()
        );
    }
    let missing = http("GET", &format!("{}/_sagedock/nope", up.url), &[], b"");
    assert_eq!(missing.status, 404);

    let info = get_json(&format!("{}/_sagedock/info", up.url));
    assert_eq!(info["region"], "us-east-1");

    deploy_container(
        &up.url,
        "watched",
        json!({"Image": "sagedock/echo:latest", "ModelDataUrl": "s3://bucket/model.tar.gz"}),
    );
    wait_status(&up.url, "watched", &["InService"]);

    // The endpoint's container, with what the engine says of it; the second read has a
    // CPU figure (the share of a CPU since the first).
    let containers = get_json(&format!("{}/_sagedock/containers", up.url));
    let ours: Vec<&Value> = containers["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["endpoint"] == "watched")
        .collect();
    assert_eq!(ours.len(), 1, "{containers}");
    let c = ours[0];
    assert_eq!(c["image"], "sagedock/echo:latest");
    assert_eq!(c["variant"], "AllTraffic");
    assert_eq!(c["state"], "running");
    assert_eq!(c["log_group"], "/aws/sagemaker/Endpoints/watched");
    assert!(c["log_stream"].as_str().unwrap().starts_with("AllTraffic/"));
    assert!(c["memory_bytes"].as_u64().unwrap() > 0, "{c}");
    std::thread::sleep(Duration::from_millis(300));
    let again = get_json(&format!("{}/_sagedock/containers", up.url));
    let cpu = again["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["endpoint"] == "watched")
        .unwrap()["cpu_percent"]
        .as_f64();
    assert!(cpu.is_some_and(|p| p >= 0.0), "{again}");

    // The metrics stream: invocations made while it is open show in its events.
    let events = open_events(&up.url);
    let invoke_url = format!("{}/endpoints/watched/invocations", up.url);
    let invoker = std::thread::spawn(move || {
        for _ in 0..40 {
            let reply = http("POST", &invoke_url, &[], b"x");
            assert_eq!(reply.status, 200);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let event = next_event_where(events, |e| {
        e["series"].as_array().is_some_and(|s| {
            s.iter().any(|v| {
                v["endpoint"] == "watched"
                    && v["invocations_per_s"].as_f64() > Some(0.0)
                    && v["model_latency_ms"]["p50"].as_f64() > Some(0.0)
            })
        })
    });
    invoker.join().unwrap();
    assert_eq!(event["series"][0]["variant"], "AllTraffic", "{event}");

    // A model's findings under its image's rules: a TensorFlow Serving image's model data
    // with its SavedModel's signatures. (CreateModel alone: nothing runs.)
    sb.pack("tensorflow", "s3/bucket/tf.tar.gz");
    ok(
        &up.url,
        "CreateModel",
        json!({
            "ModelName": "tf",
            "PrimaryContainer": {"Image": "sagedock/tensorflow:latest", "ModelDataUrl": "s3://bucket/tf.tar.gz"},
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
        }),
    );
    let report = get_json(&format!("{}/_sagedock/models/tf/artifact", up.url));
    let first = &report["containers"][0];
    assert_eq!(first["model_data_url"], "s3://bucket/tf.tar.gz");
    assert_eq!(first["report"]["framework"], "tensorflow", "{report}");
    let signatures = &first["report"]["tensorflow_models"][0]["saved_model"]["signatures"];
    assert!(
        signatures
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "serving_default" && s["inputs"][0]["name"] == "x"),
        "{report}"
    );
    // An unknown model is the API's own error.
    let unknown = http(
        "GET",
        &format!("{}/_sagedock/models/nope/artifact", up.url),
        &[],
        b"",
    );
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.text().contains("Could not find model"),
        "{}",
        unknown.text()
    );

    assert_eq!(up.signal("TERM"), Some(0));
}

/// `GET /_sagedock/events`, open.
fn open_events(url: &str) -> TcpStream {
    let authority = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /_sagedock/events HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    stream
}

/// Reads `metrics` events (20 s at most) until one satisfies `wanted`.
fn next_event_where(mut stream: TcpStream, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    let mut buffer = [0u8; 8192];
    while Instant::now() < deadline {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        assert!(seen.contains("content-type: text/event-stream"), "{seen}");
        for line in seen.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if let Ok(event) = serde_json::from_str::<Value>(line) {
                if wanted(&event) {
                    return event;
                }
            }
        }
    }
    panic!("no event as wanted within 20 s: {seen}");
}
