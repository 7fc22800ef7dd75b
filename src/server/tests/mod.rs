//! The one port, called in process: requests handed to [`App::handle`] with no socket,
//! the control plane over a store in a temporary folder and an engine that is never
//! reached ([`control`]), and fake containers served by wiremock behind the router
//! ([`runtime`]), and the other AWS services on the port told apart by signature
//! ([`services`]). No Docker.

mod control;
mod runtime;
mod services;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::App;
use crate::artifact::Cache;
use crate::control::{ControlPlane, Settings};
use crate::deploy::{Capacity, DeployOptions, Deployer};
use crate::endpoint::{Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Router};
use crate::runtime::Engine;
use crate::state::Store;
use crate::storage::Storage;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// An endpoint `name` with one variant, AllTraffic, whose instances are one container
/// each.
pub(super) fn single(name: &str, backends: Vec<Arc<Backend>>) -> LiveEndpoint {
    LiveEndpoint {
        name: name.into(),
        async_output: None,
        capture: None,
        variants: vec![LiveVariant::new(
            "AllTraffic",
            1.0,
            Mode::Single,
            backends.into_iter().map(LiveInstance::single).collect(),
            None,
        )],
    }
}

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
        engine.clone(),
        Cache::at(dir.join("cache")),
        storage.clone(),
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
    let trainer = crate::training::Trainer::new(crate::training::TrainerParts {
        engine,
        storage,
        networks: deployer.networks().clone(),
        record: Arc::new(crate::logs::LogRecord::open(&dir.join("logs")).unwrap()),
        store: store.clone(),
        owner: "dir:test:offline".into(),
        region: REGION.into(),
        work: dir.join("training"),
        options: Default::default(),
    });
    let transformer = crate::transform::Transformer::new(
        deployer.clone(),
        Arc::new(crate::logs::LogRecord::open(&dir.join("logs")).unwrap()),
        store.clone(),
        dir.join("transform"),
    );
    let control = ControlPlane::new(
        settings,
        store,
        deployer,
        router.clone(),
        trainer,
        transformer,
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
