//! Property tests over everything a caller's bytes reach first: path decoding, the whole
//! request path of the one port (methods, paths, headers, bodies), the control plane's JSON
//! dispatch, botocore-driven header checks, S3 locations, and the event-stream framing of
//! streamed answers; and what a container sends back, as the invocation path's HTTP/1.1
//! client reads it. None may panic; errors keep their AWS shape.
//!
//! Each target first replays its corpus, `fixtures/fuzz/<target>/` (inputs that once broke
//! something, or reach deep), then runs generated cases: `PROPTEST_CASES` of them (256 by
//! default; CI's bound). A failing case proptest finds is saved under `proptest-regressions/`
//! for the next run; add it to the corpus once it is understood.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use proptest::prelude::*;
use serde_json::Value;

use super::{App, Services, S3};
use crate::credentials::Credentials;
use crate::endpoint::{Backend, Router};
use crate::logs::LogRecord;
use crate::storage::api::S3Api;
use crate::storage::{ModelLocation, S3Location};

/// The corpus of one target: each file's bytes.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An app with one endpoint whose one container refuses connections, and S3 and Logs
/// over a temporary folder (kept for the test binary's life).
fn app() -> Arc<App> {
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    std::fs::create_dir_all(dir.path().join("s3")).unwrap();
    let router = Arc::new(Router::new("123456789012", "us-east-1"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    router.publish(super::tests::single("ep", vec![Backend::new("c", closed)]));
    let services = Services {
        s3: S3::Served(S3Api::new(&dir.path().join("s3"), Credentials::with(None)).unwrap()),
        logs: Some(Arc::new(LogRecord::open(&dir.path().join("logs")).unwrap())),
        dashboard: None,
    };
    App::with_services(router, None, services)
}

/// One request from raw parts: `METHOD PATH\nheader: value\n...\n\nBODY`.
fn request(raw: &[u8]) -> Option<Request<Full<Bytes>>> {
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(raw.len());
    let (head, body) = (&raw[..split], raw.get(split + 2..).unwrap_or(&[]));
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let (method, path) = lines.next()?.split_once(' ')?;
    let mut req = Request::builder().method(method).uri(path);
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    req.body(Full::new(Bytes::copy_from_slice(body))).ok()
}

/// Sends `raw` (when it is a request at all) and checks the answer's shape.
fn answer(rt: &tokio::runtime::Runtime, app: &Arc<App>, raw: &[u8]) {
    let Some(req) = request(raw) else { return };
    let head = req.method() == hyper::Method::HEAD;
    rt.block_on(async {
        let response = app.clone().handle(req).await.unwrap();
        let status = response.status();
        let typed = response.headers().contains_key("x-amzn-errortype");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        // S3 and STS answer errors in XML, with a code; a HEAD's error has no body.
        let xml = body.starts_with(b"<") && body.windows(6).any(|w| w == b"<Code>");
        if !status.is_success() && !xml && !head {
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert!(
                typed || json.get("__type").is_some(),
                "{status} without an AWS error type: {}",
                String::from_utf8_lossy(&body)
            );
        }
    });
}

#[test]
fn requests_never_panic_the_server() {
    let rt = runtime();
    let _guard = rt.enter();
    let app = app();
    for raw in corpus("request") {
        answer(&rt, &app, &raw);
    }
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]);
    let segment = "[a-zA-Z0-9%._~€-]{0,12}";
    let path = prop::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/")));
    let header = (
        prop::sample::select(vec![
            "content-type",
            "accept",
            "x-amz-target",
            "x-amzn-sagemaker-custom-attributes",
            "x-amzn-sagemaker-target-variant",
            "x-amzn-sagemaker-target-model",
            "x-amzn-sagemaker-target-container-hostname",
            "x-amzn-sagemaker-inference-component",
            "x-amzn-sagemaker-inputlocation",
            "x-amzn-sagemaker-requestttlseconds",
            "authorization",
            "host",
        ]),
        prop_oneof![
            "[ -~]{0,40}",
            "(s3|sts|logs|sagemaker|iam|[a-z]{0,6})".prop_map(|service| format!(
                "AWS4-HMAC-SHA256 Credential=sagedock/20261130/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
            )),
        ],
    );
    let headers = prop::collection::vec(header, 0..4);
    let body = prop::collection::vec(any::<u8>(), 0..64);
    proptest!(|(method in method, path in path, headers in headers, body in body)| {
        let mut raw = format!("{method} {path}\n");
        for (k, v) in &headers {
            raw.push_str(&format!("{k}: {v}\n"));
        }
        raw.push('\n');
        let mut raw = raw.into_bytes();
        raw.extend(&body);
        answer(&rt, &app, &raw);
    });
}

#[test]
fn path_decoding_never_panics() {
    for raw in corpus("path") {
        let text = String::from_utf8_lossy(&raw);
        let _ = crate::http::percent_decode(text.trim_end());
    }
    proptest!(|(s in "\\PC{0,40}")| {
        let decoded = crate::http::percent_decode(&s);
        if !s.contains('%') {
            prop_assert_eq!(decoded.as_ref(), s.as_str());
        }
    });
}

/// The control plane's dispatch, fed arbitrary JSON for every operation.
#[test]
fn control_plane_input_never_panics() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let control = {
        let _guard = rt.enter();
        super::tests::control_plane_for_fuzzing(dir.path())
    };
    let call = |op: &str, body: &[u8]| {
        rt.block_on(async {
            match control.handle(&format!("SageMaker.{op}"), body).await {
                Ok(v) => assert!(v.is_object()),
                Err(e) => assert!(!e.code.is_empty() && !e.message.is_empty()),
            }
        })
    };
    for raw in corpus("control") {
        let text = String::from_utf8_lossy(&raw);
        let (op, body) = text.split_once('\n').unwrap_or((&text, ""));
        call(op.trim(), body.as_bytes());
    }
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "m",
            "c",
            "e",
            "AllTraffic",
            "ml.m5.large",
            "s3://b/x",
            "Name"
        ])
        .prop_map(Value::from),
    ];
    let member = prop::sample::select(vec![
        "ModelName",
        "EndpointName",
        "EndpointConfigName",
        "PrimaryContainer",
        "Containers",
        "Image",
        "ModelDataUrl",
        "Environment",
        "ProductionVariants",
        "VariantName",
        "InitialInstanceCount",
        "InstanceType",
        "InitialVariantWeight",
        "Tags",
        "Key",
        "Value",
        "ResourceArn",
        "TagKeys",
        "DesiredWeightsAndCapacities",
        "DesiredInstanceCount",
        "SortBy",
        "NextToken",
        "MaxResults",
        "AsyncInferenceConfig",
        "OutputConfig",
        "S3OutputPath",
    ]);
    let json = leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(member.clone(), inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    });
    let op = prop::sample::select(crate::control::OPERATIONS.to_vec());
    proptest!(|(op in op, body in json)| {
        call(op, body.to_string().as_bytes());
    });
}

#[test]
fn runtime_headers_never_panic_the_checks() {
    proptest!(|(name in "[a-z-]{1,40}", value in prop::collection::vec(any::<u8>(), 0..2000))| {
        for op in ["InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream"] {
            let _ = crate::botocore::runtime().check_headers(op, [(name.as_str(), value.as_slice())]);
        }
    });
}

#[test]
fn s3_locations_stay_paths_under_their_bucket() {
    let check = |url: &str| {
        if let Ok(loc) = S3Location::parse(url) {
            assert!(
                loc.segments()
                    .all(|s| !s.is_empty() && s != "." && s != ".."),
                "{url}"
            );
            assert!(!loc.key().starts_with('/'), "{url}");
        }
        let _ = ModelLocation::parse(url);
    };
    for raw in corpus("location") {
        check(String::from_utf8_lossy(&raw).trim_end());
    }
    proptest!(|(url in "(s3://|file://|/)?[a-z0-9./%-]{0,30}")| check(&url));
}

#[test]
fn event_stream_frames_carry_any_chunk() {
    use aws_smithy_eventstream::frame::read_message_from;
    proptest!(|(chunk in prop::collection::vec(any::<u8>(), 0..4096), message in "\\PC{0,200}")| {
        let frame = crate::endpoint::stream::payload_part(Bytes::from(chunk.clone()));
        let decoded = read_message_from(frame).unwrap();
        prop_assert_eq!(decoded.payload().as_ref(), chunk.as_slice());
        let error = crate::endpoint::stream::model_stream_error("StreamBroken", &message);
        let decoded = read_message_from(error).unwrap();
        let body: Value = serde_json::from_slice(decoded.payload()).unwrap();
        prop_assert_eq!(body["Message"].as_str(), Some(message.as_str()));
    });
}

#[test]
fn container_answers_never_panic_the_reader_however_they_arrive() {
    use crate::endpoint::http1::read_in_pieces;
    let check = |raw: &[u8], splits: &[usize]| {
        let whole = read_in_pieces(raw, &[], 1 << 20);
        // Where the bytes break between reads changes nothing.
        assert_eq!(read_in_pieces(raw, splits, 1 << 20), whole);
    };
    for raw in corpus("answer") {
        for at in 0..raw.len() {
            check(&raw, &[at]);
        }
    }
    let head = "HTTP/1\\.[01] [0-9]{3} [A-Za-z ]{0,10}\r\n((Content-Length: [0-9]{1,3}|Transfer-Encoding: (chunked|gzip)|Connection: (close|keep-alive)|[A-Za-z-]{1,12}: [ -~]{0,20})\r\n){0,4}\r\n";
    let chunked_body = "([0-9a-fA-F]{1,3}(;[a-z=]{0,5})?\r\n[ -~]{0,20}\r\n){0,3}(0\r\n\r\n)?";
    proptest!(|(
        head in head,
        body in prop_oneof![chunked_body.prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..200)],
        splits in prop::collection::vec(0usize..300, 0..4),
    )| {
        let mut raw = head.into_bytes();
        raw.extend_from_slice(&body);
        check(&raw, &splits);
    });
    proptest!(|(raw in prop::collection::vec(any::<u8>(), 0..300), splits in prop::collection::vec(0usize..300, 0..4))| {
        check(&raw, &splits);
    });
}

#[test]
fn the_connection_loop_takes_only_whole_plain_invocations() {
    use super::connection::takes;
    let check = |raw: &[u8]| {
        if let Some((request, length, body, _)) = takes(raw) {
            // What it takes is one head it read whole, and a body it may wait for.
            assert!(length <= raw.len() && body <= crate::endpoint::MAX_PAYLOAD);
            assert_eq!(request.method(), hyper::Method::POST);
            assert!(request.uri().path().ends_with("/invocations"));
            assert!(!request.headers().contains_key("transfer-encoding"));
        }
    };
    for raw in corpus("request") {
        check(&raw);
    }
    let head = "POST /(invocations|endpoints/[a-z%0-9/?]{0,8}/invocations) HTTP/1\\.[01]\r\n((Content-Length: [0-9+-]{0,9}|Transfer-Encoding: chunked|Connection: (close|keep-alive)|Expect: 100-continue|[A-Za-z-]{1,12}: [ -~]{0,20})\r\n){0,4}\r\n";
    proptest!(|(head in head, body in prop::collection::vec(any::<u8>(), 0..50))| {
        let mut raw = head.into_bytes();
        raw.extend_from_slice(&body);
        check(&raw);
    });
    proptest!(|(raw in prop::collection::vec(any::<u8>(), 0..300))| check(&raw));
}
