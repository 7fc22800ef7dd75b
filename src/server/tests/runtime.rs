//! The runtime API in process, against fake containers served by wiremock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::Value;
use wiremock::matchers::{body_bytes, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{control_plane, invoke, send, single, ACCOUNT, REGION};
use crate::endpoint::{
    AsyncOutput, AsyncQueue, Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Router,
    Routing,
};
use crate::server::App;
use crate::storage::{S3Location, Storage};

fn addr(server: &MockServer) -> SocketAddr {
    *server.address()
}

/// A router serving `endpoint` with one variant whose instances are `containers`.
fn routed(endpoint: LiveEndpoint) -> Arc<App> {
    let router = Arc::new(Router::new(ACCOUNT, REGION));
    router.publish(endpoint);
    App::new(router, None)
}

#[tokio::test]
async fn invocations_reach_the_container_with_sagemakers_headers() {
    let container = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/invocations"))
        .and(header("content-type", "text/csv"))
        .and(header("accept", "application/json"))
        .and(header("x-amzn-sagemaker-custom-attributes", "a=1"))
        .and(body_bytes(b"1,2,3".to_vec()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("[6]", "application/json")
                .insert_header("x-amzn-sagemaker-custom-attributes", "seen"),
        )
        .expect(2)
        .mount(&container)
        .await;
    let app = routed(single("ep", vec![Backend::new("c0", addr(&container))]));
    let reply = invoke(
        &app,
        "ep",
        &[
            ("content-type", "text/csv"),
            ("accept", "application/json"),
            ("x-amzn-sagemaker-custom-attributes", "a=1"),
        ],
        b"1,2,3",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(&reply.body[..], b"[6]");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.header("x-amzn-sagemaker-custom-attributes"),
        Some("seen")
    );
    assert_eq!(
        reply.header("x-amzn-invoked-production-variant"),
        Some("AllTraffic")
    );
    assert!(reply.header("x-amzn-requestid").is_some());
    // The path form of `serve` reaches the only endpoint.
    let req = Request::post("/invocations")
        .header("content-type", "text/csv")
        .header("accept", "application/json")
        .header("x-amzn-sagemaker-custom-attributes", "a=1")
        .body(Full::new(Bytes::from_static(b"1,2,3")))
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_containers_error_is_a_model_error_with_its_status() {
    let container = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(415).set_body_string("no csv here"))
        .mount(&container)
        .await;
    let app = routed(single("ep", vec![Backend::new("c0", addr(&container))]));
    let reply = invoke(&app, "ep", &[], b"x").await;
    assert_eq!(reply.status, StatusCode::FAILED_DEPENDENCY);
    assert_eq!(reply.error(), "ModelError");
    let body = reply.json();
    assert_eq!(body["OriginalStatusCode"], 415);
    assert_eq!(body["OriginalMessage"], "no csv here");
    assert_eq!(body["ErrorCode"], "CLIENT_ERROR_FROM_MODEL");
    assert!(body["Message"]
        .as_str()
        .unwrap()
        .starts_with("Received client error (415) from primary with message \"no csv here\""));
    assert_eq!(
        body["LogStreamArn"],
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/ep"
    );
}

#[tokio::test]
async fn variants_are_chosen_by_target_or_by_weight() {
    let (a, b) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a"))
        .mount(&a)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("b"))
        .mount(&b)
        .await;
    let variant = |name: &str, weight: f64, server: &MockServer| {
        LiveVariant::new(
            name,
            weight,
            Mode::Single,
            vec![LiveInstance::single(Backend::new(name, addr(server)))],
            None,
        )
    };
    let app = routed(LiveEndpoint {
        name: "ab".into(),
        async_output: None,
        capture: None,
        variants: vec![variant("Blue", 1.0, &a), variant("Green", 0.0, &b)],
    });
    for _ in 0..20 {
        assert_eq!(
            &invoke(&app, "ab", &[], b"").await.body[..],
            b"a",
            "weight 0 takes nothing"
        );
    }
    let reply = invoke(
        &app,
        "ab",
        &[("x-amzn-sagemaker-target-variant", "Green")],
        b"",
    )
    .await;
    assert_eq!(
        (
            &reply.body[..],
            reply.header("x-amzn-invoked-production-variant")
        ),
        (&b"b"[..], Some("Green"))
    );
    let reply = invoke(
        &app,
        "ab",
        &[("x-amzn-sagemaker-target-variant", "Red")],
        b"",
    )
    .await;
    assert_eq!(
        reply.message(),
        "Variant Red not found for endpoint ab of account 123456789012."
    );
    let reply = invoke(
        &app,
        "ab",
        &[("x-amzn-sagemaker-target-variant", "bad variant!")],
        b"",
    )
    .await;
    assert_eq!(reply.error(), "ValidationError");
    assert!(
        reply
            .message()
            .contains("at 'targetVariant' failed to satisfy constraint"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn pipelines_chain_and_direct_calls_pick_one_container() {
    let (first, second) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(body_bytes(b"in".to_vec()))
        .respond_with(ResponseTemplate::new(200).set_body_raw("mid", "text/plain"))
        .mount(&first)
        .await;
    Mock::given(method("POST"))
        .and(body_bytes(b"mid".to_vec()))
        .and(header("content-type", "text/plain"))
        .respond_with(ResponseTemplate::new(200).set_body_string("out"))
        .mount(&second)
        .await;
    Mock::given(method("POST"))
        .and(body_bytes(b"direct".to_vec()))
        .respond_with(ResponseTemplate::new(200).set_body_string("from second"))
        .mount(&second)
        .await;
    let instance = || LiveInstance {
        containers: vec![
            Backend::with_hostname("c1", "pre", addr(&first)),
            Backend::with_hostname("c2", "model", addr(&second)),
        ],
    };
    let endpoint = |name: &str, mode: Mode| LiveEndpoint {
        name: name.into(),
        async_output: None,
        capture: None,
        variants: vec![LiveVariant::new(
            "AllTraffic",
            1.0,
            mode,
            vec![instance()],
            None,
        )],
    };
    let router = Arc::new(Router::new(ACCOUNT, REGION));
    router.publish(endpoint("serial", Mode::Serial));
    router.publish(endpoint("direct", Mode::Direct));
    let app = App::new(router, None);
    assert_eq!(&invoke(&app, "serial", &[], b"in").await.body[..], b"out");
    let reply = invoke(
        &app,
        "direct",
        &[("x-amzn-sagemaker-target-container-hostname", "model")],
        b"direct",
    )
    .await;
    assert_eq!(&reply.body[..], b"from second");
    let reply = invoke(&app, "direct", &[], b"direct").await;
    assert!(
        reply.message().contains("specify TargetContainerHostname"),
        "{}",
        reply.message()
    );
    let reply = invoke(
        &app,
        "serial",
        &[("x-amzn-sagemaker-target-container-hostname", "model")],
        b"in",
    )
    .await;
    assert!(
        reply
            .message()
            .contains("not configured for direct invocation"),
        "{}",
        reply.message()
    );
}

/// An address nobody listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn an_undeliverable_call_goes_elsewhere_and_none_left_fails_fast() {
    let alive = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("alive"))
        .mount(&alive)
        .await;
    let dead = Backend::new("dead", closed_port().await);
    let app = routed(single(
        "ep",
        vec![dead.clone(), Backend::new("alive", addr(&alive))],
    ));
    for _ in 0..5 {
        // The dead one has no outstanding calls, so it is chosen first every time.
        let reply = invoke(&app, "ep", &[], b"x").await;
        assert_eq!(
            (reply.status, &reply.body[..]),
            (StatusCode::OK, &b"alive"[..])
        );
        assert_eq!(reply.header("x-sagedock-instance"), Some("alive"));
    }
    let app = routed(single(
        "lone",
        vec![Backend::new("dead", closed_port().await)],
    ));
    let t0 = std::time::Instant::now();
    let reply = invoke(&app, "lone", &[], b"x").await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Out of rotation: not even tried.
    let healthy = Backend::new("alive", addr(&alive));
    let app = routed(single("sick", vec![healthy.clone()]));
    healthy.set_healthy(false);
    assert_eq!(
        invoke(&app, "sick", &[], b"x").await.error(),
        "ServiceUnavailable"
    );
    healthy.set_healthy(true);
    assert_eq!(invoke(&app, "sick", &[], b"x").await.status, StatusCode::OK);
}

#[tokio::test]
async fn runtime_headers_and_bodies_are_held_to_botocores_limits() {
    let container = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&container)
        .await;
    let app = routed(single("ep", vec![Backend::new("c0", addr(&container))]));
    let long = "a".repeat(1025);
    let reply = invoke(
        &app,
        "ep",
        &[("x-amzn-sagemaker-custom-attributes", &long)],
        b"",
    )
    .await;
    assert_eq!(reply.error(), "ValidationError");
    assert!(
        reply.message().contains("customAttributes"),
        "{}",
        reply.message()
    );
    let reply = invoke(
        &app,
        "ep",
        &[("x-amzn-sagemaker-inference-component", "ic")],
        b"",
    )
    .await;
    assert!(
        reply
            .message()
            .contains("Inference Component Name header is not allowed"),
        "{}",
        reply.message()
    );
    let reply = invoke(
        &app,
        "ep",
        &[("x-amzn-sagemaker-target-model", "a.tar.gz")],
        b"",
    )
    .await;
    assert_eq!(
        reply.json()["ErrorCode"],
        "TARGET_MODEL_HEADER_NOT_SUPPORTED"
    );
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    let reply = invoke(&app, "ep", &[], &big).await;
    assert_eq!(
        (reply.status, reply.header("connection")),
        (StatusCode::BAD_REQUEST, Some("close"))
    );
    let reply = invoke(&app, "nope", &[], b"").await;
    assert_eq!(
        reply.message(),
        "Endpoint nope of account 123456789012 not found."
    );
}

#[tokio::test]
async fn hostile_paths_never_panic() {
    let app = routed(single("ep", Vec::new()));
    for path in [
        "/endpoints/%\u{20ac}/invocations",
        "/endpoints/%/invocations",
        "/endpoints/%ff%fe/invocations",
        "/endpoints//invocations",
        "/endpoints/ep",
        "/endpoints/ep/other",
        "/nothing",
    ] {
        // Raw UTF-8 in the path, as a client can send it (hyper accepts it).
        let reply = send(
            &app,
            Request::post(path).body(Full::new(Bytes::new())).unwrap(),
        )
        .await;
        assert!(
            reply.status.is_client_error() || reply.status.is_server_error(),
            "{path}: {}",
            reply.status
        );
    }
}

/// A request body that panics when read: what a bug in a handler would look like.
struct Exploding;

impl hyper::body::Body for Exploding {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        panic!("a handler bug")
    }
}

#[tokio::test]
async fn a_panic_while_answering_is_a_500_in_aws_shape() {
    let app = routed(single("ep", vec![Backend::new("c", closed_port().await)]));
    let req = Request::post("/endpoints/ep/invocations")
        .body(Exploding)
        .unwrap();
    let response = app.clone().handle(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["x-amzn-errortype"], "InternalFailure");
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let req = Request::post("/")
        .header("x-amz-target", "SageMaker.ListModels")
        .body(Exploding)
        .unwrap();
    let response = app.clone().handle(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["__type"],
        "InternalFailure"
    );
}

#[tokio::test]
async fn asynchronous_requests_read_and_write_only_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("inputs")).unwrap();
    std::fs::write(root.join("inputs/payload"), "from s3").unwrap();
    let storage = Storage::root(&root).unwrap();
    let container = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_bytes(b"from s3".to_vec()))
        .respond_with(ResponseTemplate::new(200).set_body_string("result"))
        .mount(&container)
        .await;
    let router = Arc::new(Router::new(ACCOUNT, REGION).with_storage(storage));
    let mut endpoint = single("ep", vec![Backend::new("c0", addr(&container))]);
    let queue = AsyncQueue::new(1);
    queue.resize(1);
    endpoint.async_output = Some(AsyncOutput {
        output_path: S3Location::parse("s3://outputs/results").unwrap(),
        failure_path: None,
        queue,
    });
    router.publish(endpoint);
    let app = App::new(router, None);
    let post = |headers: &[(&str, &str)]| {
        let mut req = Request::post("/endpoints/ep/async-invocations");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Full::new(Bytes::new())).unwrap()
    };
    for (name, value) in [
        ("x-amzn-sagemaker-inputlocation", "/proc/self/environ"),
        (
            "x-amzn-sagemaker-inputlocation",
            "s3://inputs/../../etc/passwd",
        ),
        ("x-amzn-sagemaker-inputlocation", "s3://../etc/passwd"),
        ("x-amzn-sagemaker-filename", "/tmp/x.txt"),
        ("x-amzn-sagemaker-s3outputpathextension", "../../tmp"),
    ] {
        let mut headers = vec![(name, value)];
        if name != "x-amzn-sagemaker-inputlocation" {
            headers.push(("x-amzn-sagemaker-inputlocation", "s3://inputs/payload"));
        }
        let reply = send(&app, post(&headers)).await;
        assert_eq!(
            reply.error(),
            "ValidationError",
            "{name}: {value}: {}",
            reply.message()
        );
    }
    let reply = send(
        &app,
        post(&[
            ("x-amzn-sagemaker-inputlocation", "s3://inputs/payload"),
            ("x-amzn-sagemaker-filename", "r.json"),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.message());
    assert_eq!(
        reply.header("x-amzn-sagemaker-outputlocation"),
        Some("s3://outputs/results/r.json")
    );
    let written = root.join("outputs/results/r.json");
    for _ in 0..200 {
        if written.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_to_string(written).unwrap(), "result");
}

/// Sequential calls (one in flight at a time, so every instance is always idle and tied)
/// reach every instance under both routing strategies.
#[tokio::test]
async fn sequential_calls_reach_every_instance_under_both_routing_strategies() {
    for routing in [Routing::Random, Routing::LeastOutstandingRequests] {
        let mut containers = Vec::new();
        for _ in 0..3 {
            let container = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/invocations"))
                .respond_with(ResponseTemplate::new(200).set_body_raw("ok", "text/plain"))
                .mount(&container)
                .await;
            containers.push(container);
        }
        let backends = containers
            .iter()
            .zip(["c0", "c1", "c2"])
            .map(|(c, name)| Backend::new(name, addr(c)))
            .collect();
        let mut endpoint = single("ep", backends);
        endpoint.variants[0] = endpoint.variants[0].clone().with_routing(routing);
        let app = routed(endpoint);
        for _ in 0..60 {
            let reply = invoke(&app, "ep", &[], b"x").await;
            assert_eq!(reply.status, StatusCode::OK);
        }
        for (i, container) in containers.iter().enumerate() {
            let calls = container
                .received_requests()
                .await
                .unwrap_or_default()
                .len();
            // Each has a 1 in 3 chance a call; none at all in 60 calls is (2/3)^60 ≈ 3e-11.
            assert!(calls > 0, "{routing:?}: instance {i} got no call of 60");
        }
    }
}
