//! The one port, called in process: requests handed to [`App::handle`] with no socket,
//! the control plane over a store in a temporary folder and an engine that is never
//! reached, and fake containers served by wiremock behind the router. No Docker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use wiremock::matchers::{body_bytes, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::App;
use crate::artifact::Cache;
use crate::control::{ControlPlane, Settings};
use crate::deploy::{Capacity, DeployOptions, Deployer};
use crate::endpoint::{
    AsyncOutput, AsyncQueue, Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Router,
};
use crate::runtime::Engine;
use crate::state::Store;
use crate::storage::{S3Location, Storage};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// An answer, read whole.
struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The AWS error type, from either API's shape.
    fn error(&self) -> String {
        self.header("x-amzn-errortype")
            .map(str::to_string)
            .or_else(|| self.json()["__type"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn message(&self) -> String {
        let v = self.json();
        v["message"]
            .as_str()
            .or_else(|| v["Message"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

async fn send(app: &Arc<App>, req: Request<Full<Bytes>>) -> Reply {
    let response = app.clone().handle(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// One control-plane call as botocore makes it.
async fn call(app: &Arc<App>, op: &str, body: Value) -> Reply {
    let req = Request::post("/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("SageMaker.{op}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(app, req).await
}

async fn ok(app: &Arc<App>, op: &str, body: Value) -> Value {
    let reply = call(app, op, body).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{op}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

async fn invoke(app: &Arc<App>, endpoint: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = Request::post(format!("/endpoints/{endpoint}/invocations"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(
        app,
        req.body(Full::new(Bytes::copy_from_slice(body))).unwrap(),
    )
    .await
}

/// The control plane over a store in `dir`, deploying on an engine that is never reached,
/// with `s3://` under `dir/s3` and caps of 4 instances per endpoint, 6 in all.
fn control_plane(dir: &std::path::Path) -> Arc<App> {
    control_plane_on(dir, refusing_engine(dir))
}

/// An engine socket nobody listens on any more: every call is refused at once.
fn refusing_engine(dir: &std::path::Path) -> Engine {
    let socket = dir.join("no-engine.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    Engine::unconnected(&socket)
}

/// An engine that takes connections and never answers: deployments stay `Creating`.
fn silent_engine(dir: &std::path::Path) -> Engine {
    let socket = dir.join("silent-engine.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Engine::unconnected(&socket)
}

fn control_plane_on(dir: &std::path::Path, engine: Engine) -> Arc<App> {
    let (control, router) = control(dir, engine);
    App::new(router, Some(control))
}

/// The control plane of [`control_plane`], without the server (for the fuzz targets).
pub(super) fn control_plane_for_fuzzing(dir: &std::path::Path) -> Arc<ControlPlane> {
    control(dir, refusing_engine(dir)).0
}

fn control(dir: &std::path::Path, engine: Engine) -> (Arc<ControlPlane>, Arc<Router>) {
    std::fs::create_dir_all(dir.join("s3")).unwrap();
    let storage = Storage::root(&dir.join("s3")).unwrap();
    let store = Arc::new(Store::open(&dir.join("data")).unwrap());
    let router = Arc::new(Router::new(ACCOUNT, REGION).with_storage(storage.clone()));
    let deployer = Arc::new(Deployer::new(
        engine,
        Cache::at(dir.join("cache")),
        storage,
        "dir:test:offline".into(),
        REGION.into(),
        DeployOptions::with_capacity(Capacity {
            per_endpoint: 4,
            total: 6,
        }),
    ));
    let settings = Settings {
        region: REGION.into(),
        account: ACCOUNT.into(),
    };
    let control = ControlPlane::new(
        settings,
        store,
        deployer,
        router.clone(),
        Duration::from_secs(5),
    );
    (control, router)
}

fn model(name: &str) -> Value {
    json!({"ModelName": name, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
           "PrimaryContainer": {"Image": "sagedock/echo:latest"}})
}

fn config(name: &str, model: &str, count: u64) -> Value {
    json!({"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}]})
}

#[tokio::test]
async fn models_are_created_described_listed_and_deleted_in_aws_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let mut input = model("Demo-Model");
    input["VpcConfig"] = json!({"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]});
    input["NotAMember"] = json!(true);
    let created = ok(&app, "CreateModel", input).await;
    assert_eq!(
        created["ModelArn"],
        "arn:aws:sagemaker:us-east-1:123456789012:model/demo-model"
    );
    let described = ok(&app, "DescribeModel", json!({"ModelName": "Demo-Model"})).await;
    assert_eq!(described["ModelName"], "Demo-Model");
    assert_eq!(
        described["PrimaryContainer"]["Image"],
        "sagedock/echo:latest"
    );
    assert_eq!(
        described["VpcConfig"]["Subnets"][0], "subnet-1",
        "kept and described"
    );
    assert!(
        described.get("NotAMember").is_none(),
        "unknown members are dropped"
    );
    assert!(described["CreationTime"].as_f64().unwrap() > 1.6e9);
    let again = call(&app, "CreateModel", model("Demo-Model")).await;
    assert_eq!(again.error(), "ValidationException");
    assert!(
        again
            .message()
            .starts_with("Cannot create already existing model"),
        "{}",
        again.message()
    );
    for i in 0..3 {
        ok(&app, "CreateModel", model(&format!("m{i}"))).await;
    }
    let listed = ok(
        &app,
        "ListModels",
        json!({"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 2}),
    )
    .await;
    let names: Vec<&str> = listed["Models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ModelName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Demo-Model", "m0"]);
    let rest = ok(
        &app,
        "ListModels",
        json!({"SortBy": "Name", "SortOrder": "Ascending", "NextToken": listed["NextToken"]}),
    )
    .await;
    assert_eq!(rest["Models"].as_array().unwrap().len(), 2);
    ok(&app, "DeleteModel", json!({"ModelName": "m0"})).await;
    let gone = call(&app, "DescribeModel", json!({"ModelName": "m0"})).await;
    assert_eq!(
        (gone.status, gone.error().as_str()),
        (StatusCode::BAD_REQUEST, "ValidationException")
    );
    assert_eq!(
        gone.message(),
        "Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/m0\"."
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_message_aws_gives() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let reply = call(
        &app,
        "CreateModel",
        json!({"ModelName": "bad_name!", "PrimaryContainer": {"Image": "i"}}),
    )
    .await;
    assert_eq!(reply.error(), "ValidationException");
    assert!(
        reply
            .message()
            .starts_with("1 validation error detected: Value 'bad_name!' at 'modelName'"),
        "{}",
        reply.message()
    );
    ok(&app, "CreateModel", model("m")).await;
    for (count, kind, says) in [
        (
            json!(0),
            "ValidationException",
            "greater than or equal to 1",
        ),
        (
            json!(4_294_967_296_u64),
            "ValidationException",
            "less than or equal to 2147483647",
        ),
        (
            json!(1_000_000_000_000_u64),
            "ValidationException",
            "less than or equal to 2147483647",
        ),
        (
            json!("three"),
            "SerializationException",
            "initialInstanceCount",
        ),
        (
            json!(-1),
            "ValidationException",
            "greater than or equal to 1",
        ),
    ] {
        let mut input = config("c", "m", 1);
        input["ProductionVariants"][0]["InitialInstanceCount"] = count.clone();
        let reply = call(&app, "CreateEndpointConfig", input).await;
        assert_eq!(reply.error(), kind, "{count}: {}", reply.message());
        assert!(
            reply.message().contains(says),
            "{count}: {}",
            reply.message()
        );
    }
    let mut t3 = config("c", "m", 1);
    t3["ProductionVariants"][0]["InstanceType"] = json!("ml.t3.medium");
    let reply = call(&app, "CreateEndpointConfig", t3).await;
    assert!(
        reply
            .message()
            .contains("Member must satisfy enum value set"),
        "{}",
        reply.message()
    );
    let reply = call(
        &app,
        "CreateEndpointConfig",
        config("c", "missing-model", 1),
    )
    .await;
    assert_eq!(
        reply.message(),
        "Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/missing-model\"."
    );
    let reply = call(&app, "NoSuchOperation", json!({})).await;
    assert_eq!(reply.error(), "UnknownOperationException");
    let req = Request::post("/")
        .header("x-amz-target", "SageMaker.ListModels")
        .body(Full::new(Bytes::from_static(b"{not json")))
        .unwrap();
    assert_eq!(send(&app, req).await.error(), "SerializationException");
    let req = Request::post("/")
        .header("x-amz-target", "SageMaker.ListModels")
        .body(Full::new(Bytes::from_static(b"[1]")))
        .unwrap();
    assert_eq!(send(&app, req).await.error(), "SerializationException");
}

#[tokio::test]
async fn model_data_must_be_a_location_sagedock_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    for (url, refused) in [
        ("s3://bucket//etc/", true),
        ("s3://../etc/passwd", true),
        ("s3://bucket/a/../../x", true),
        ("file:///", true),
        ("/proc/self", true),
        ("s3://models/m.tar.gz", false),
        ("file:///tmp/m.tar.gz", false),
    ] {
        let input =
            json!({"ModelName": "m", "PrimaryContainer": {"Image": "i", "ModelDataUrl": url}});
        let reply = call(&app, "CreateModel", input).await;
        assert_eq!(
            reply.status != StatusCode::OK,
            refused,
            "{url}: {}",
            reply.message()
        );
        if !refused {
            ok(&app, "DeleteModel", json!({"ModelName": "m"})).await;
        }
    }
}

#[tokio::test]
async fn asynchronous_output_must_be_writable_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    ok(&app, "CreateModel", model("m")).await;
    let with_output = |path: &str| {
        let mut c = config("c", "m", 1);
        c["AsyncInferenceConfig"] = json!({"OutputConfig": {"S3OutputPath": path}});
        c
    };
    for bad in [
        "s3://bucket/../../tmp/x",
        "s3://bucket//tmp",
        "https://example.com/x",
    ] {
        let reply = call(&app, "CreateEndpointConfig", with_output(bad)).await;
        assert_eq!(reply.error(), "ValidationException", "{bad}");
    }
    std::os::unix::fs::symlink("/tmp", dir.path().join("s3/escape")).unwrap();
    let reply = call(&app, "CreateEndpointConfig", with_output("s3://escape/out")).await;
    assert!(
        reply.message().contains("outside the S3 root"),
        "{}",
        reply.message()
    );
    ok(&app, "CreateEndpointConfig", with_output("s3://bucket/out")).await;
}

#[tokio::test]
async fn instance_counts_stay_within_the_machine_caps() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane_on(dir.path(), silent_engine(dir.path()));
    ok(&app, "CreateModel", model("m")).await;
    ok(&app, "CreateEndpointConfig", config("five", "m", 5)).await;
    ok(&app, "CreateEndpointConfig", config("three", "m", 3)).await;
    ok(&app, "CreateEndpointConfig", config("one", "m", 1)).await;
    let reply = call(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e", "EndpointConfigName": "five"}),
    )
    .await;
    assert_eq!(reply.error(), "ResourceLimitExceeded");
    assert!(
        reply
            .message()
            .contains("at most 4 per endpoint (raise it with --max-instances-per-endpoint)"),
        "{}",
        reply.message()
    );
    ok(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e1", "EndpointConfigName": "three"}),
    )
    .await;
    ok(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e2", "EndpointConfigName": "three"}),
    )
    .await;
    let reply = call(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e3", "EndpointConfigName": "one"}),
    )
    .await;
    assert_eq!(reply.error(), "ResourceLimitExceeded");
    assert!(
        reply
            .message()
            .contains("to 7; it runs at most 6 in all (raise it with --max-instances)"),
        "{}",
        reply.message()
    );
    let described = ok(&app, "DescribeEndpoint", json!({"EndpointName": "e1"})).await;
    assert_eq!(described["EndpointStatus"], "Creating");
    let reply = call(&app, "UpdateEndpointWeightsAndCapacities", json!({"EndpointName": "e1",
        "DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredInstanceCount": -1}]})).await;
    assert_eq!(reply.error(), "ValidationException");
    assert!(
        reply.message().contains("desiredInstanceCount"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn a_deployment_the_engine_cannot_take_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    ok(&app, "CreateModel", model("m")).await;
    ok(&app, "CreateEndpointConfig", config("c", "m", 1)).await;
    ok(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e", "EndpointConfigName": "c"}),
    )
    .await;
    let mut described = Value::Null;
    for _ in 0..500 {
        described = ok(&app, "DescribeEndpoint", json!({"EndpointName": "e"})).await;
        if described["EndpointStatus"] != "Creating" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(described["EndpointStatus"], "Failed", "{described}");
    assert!(
        described["FailureReason"]
            .as_str()
            .unwrap()
            .contains("Docker engine"),
        "{described}"
    );
    let listed = ok(&app, "ListEndpoints", json!({"StatusEquals": "Failed"})).await;
    assert_eq!(listed["Endpoints"][0]["EndpointName"], "e");
    ok(&app, "DeleteEndpoint", json!({"EndpointName": "e"})).await;
}

#[tokio::test]
async fn tags_belong_to_resources_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let arn = ok(&app, "CreateModel", model("m")).await["ModelArn"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&app, "AddTags", json!({"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}]})).await;
    ok(
        &app,
        "AddTags",
        json!({"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "b"}]}),
    )
    .await;
    let tags = ok(&app, "ListTags", json!({"ResourceArn": arn})).await;
    let mut pairs: Vec<(String, String)> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().into(),
                t["Value"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("env".to_string(), "dev".to_string()),
            ("team".into(), "b".into())
        ]
    );
    ok(
        &app,
        "DeleteTags",
        json!({"ResourceArn": arn, "TagKeys": ["env"]}),
    )
    .await;
    assert_eq!(
        ok(&app, "ListTags", json!({"ResourceArn": arn})).await["Tags"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let reply = call(
        &app,
        "ListTags",
        json!({"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/nope"}),
    )
    .await;
    assert!(
        reply.message().contains("does not exist"),
        "{}",
        reply.message()
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    let reply = call(&app, "AddTags", json!({"ResourceArn": arn, "Tags": many})).await;
    assert_eq!(reply.error(), "ValidationException");
}

// ---------------------------------------------------------------------------------------
// The runtime API against fake containers.

fn addr(server: &MockServer) -> SocketAddr {
    *server.address()
}

/// A router serving `endpoint` with one variant whose instances are `containers`.
fn routed(endpoint: LiveEndpoint) -> Arc<App> {
    let router = Arc::new(Router::new(ACCOUNT, REGION));
    router.publish(endpoint);
    App::new(router, None)
}

fn single(name: &str, backends: Vec<Arc<Backend>>) -> LiveEndpoint {
    LiveEndpoint {
        name: name.into(),
        async_output: None,
        variants: vec![LiveVariant::new(
            "AllTraffic",
            1.0,
            Mode::Single,
            backends.into_iter().map(LiveInstance::single).collect(),
            None,
        )],
    }
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
