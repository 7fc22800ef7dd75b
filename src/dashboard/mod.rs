//! The dashboard at `/` of `sagedock up`: one page, embedded in the binary, that shows
//! what the port serves — models, endpoint configs, endpoints and jobs with their status,
//! the containers behind each instance, live invocation charts, logs, artifact findings —
//! and sends test requests.
//!
//! The page reads through the APIs any client uses on this port (the SageMaker API's
//! List and Describe operations, CloudWatch Logs, InvokeEndpoint), so it shows what boto3
//! would see. This module adds only what no AWS API says, under `/_sagedock/`:
//! - `containers`: this run's containers with the engine's CPU and memory figures;
//! - `events`: server-sent events, every second, of each variant's invocations, errors
//!   and latency quantiles, from the same counters `/metrics` serves;
//! - `models/NAME/artifact`: the layout findings of a model's data (and a SavedModel's
//!   signatures), as `sagedock validate` reports them;
//! - `info`: the version, region and account.
//!
//! Everything here reads; nothing changes state. Does not: serve the AWS APIs (the
//! server and control plane do) or run an operation.

mod events;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::artifact::{Cache, Limits};
use crate::control::ControlPlane;
use crate::endpoint::Router;
use crate::framework::inspect::{self, Choice};
use crate::framework::Framework;
use crate::http::{full, Body};
use crate::runtime::{gc, labels, stats, Engine};
use crate::storage::{ModelLocation, Storage};
use crate::sync::locked;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The page's own files and routes live under this prefix.
pub const PREFIX: &str = "/_sagedock/";

/// What the dashboard reads from.
pub struct Dashboard {
    engine: Engine,
    /// The owner label of this run's containers.
    owner: String,
    router: Arc<Router>,
    control: Arc<ControlPlane>,
    storage: Storage,
    cache: Cache,
    /// Each container's last CPU figure, so the next read can say how busy it was since.
    usage: Mutex<HashMap<String, stats::Usage>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("owner", &self.owner)
            .finish()
    }
}

/// One container as the page lists it.
#[derive(Debug, Serialize)]
struct Container {
    id: String,
    name: String,
    image: String,
    endpoint: Option<String>,
    variant: Option<String>,
    training_job: Option<String>,
    transform_job: Option<String>,
    state: String,
    status: String,
    created_unix: i64,
    host_port: Option<u16>,
    log_group: Option<String>,
    log_stream: Option<String>,
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
}

impl Dashboard {
    pub fn new(
        engine: Engine,
        owner: String,
        router: Arc<Router>,
        control: Arc<ControlPlane>,
        storage: Storage,
        cache: Cache,
    ) -> Arc<Dashboard> {
        Arc::new(Dashboard {
            engine,
            owner,
            router,
            control,
            storage,
            cache,
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// Answers a GET for `path` (`/` or under [`PREFIX`]); `None` when the path is not
    /// the dashboard's.
    pub async fn get(&self, path: &str) -> Option<Response<Body>> {
        if path == "/" {
            return Some(asset(INDEX_HTML, "text/html; charset=utf-8"));
        }
        let route = path.strip_prefix(PREFIX)?;
        let response = match route {
            "app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
            "style.css" => asset(STYLE_CSS, "text/css; charset=utf-8"),
            "info" => json_response(
                StatusCode::OK,
                &json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "region": self.router.region,
                    "account": self.router.account,
                }),
            ),
            "containers" => self.containers().await,
            "events" => events::stream(self.router.clone()),
            _ => {
                let model = route
                    .strip_prefix("models/")
                    .and_then(|rest| rest.strip_suffix("/artifact"))?;
                self.artifact(&crate::http::percent_decode(model)).await
            }
        };
        Some(response)
    }

    /// This run's containers, with the engine's figures.
    async fn containers(&self) -> Response<Body> {
        let found = match gc::list(&self.engine).await {
            Ok(found) => found,
            Err(e) => {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"message": e.to_string()}),
                )
            }
        };
        let ours: Vec<gc::Managed> = found
            .into_iter()
            .filter(|c| c.labels.get(labels::OWNER) == Some(&self.owner))
            .collect();
        let figures = futures_util::future::join_all(ours.iter().map(|c| async {
            if c.state == "running" {
                stats::sample(&self.engine, &c.id).await
            } else {
                None
            }
        }))
        .await;
        let mut last = locked(&self.usage);
        last.retain(|id, _| ours.iter().any(|c| &c.id == id));
        let containers: Vec<Container> = ours
            .into_iter()
            .zip(figures)
            .map(|(c, figure)| {
                let cpu_percent = figure.and_then(|now| {
                    let earlier = last.insert(c.id.clone(), now)?;
                    now.cpus_since(&earlier).map(|cpus| cpus * 100.0)
                });
                let (log_group, log_stream) = crate::logs::collect::destination(&c.name, &c.labels)
                    .map_or((None, None), |(g, s)| (Some(g), Some(s)));
                let label = |key: &str| c.labels.get(key).filter(|v| !v.is_empty()).cloned();
                Container {
                    endpoint: label(labels::ENDPOINT),
                    variant: label(labels::VARIANT),
                    training_job: label(labels::TRAINING_JOB),
                    transform_job: label(labels::TRANSFORM_JOB),
                    id: c.id,
                    name: c.name,
                    image: c.image,
                    state: c.state,
                    status: c.status,
                    created_unix: c.created_unix,
                    host_port: c.host_port,
                    log_group,
                    log_stream,
                    cpu_percent,
                    memory_bytes: figure.and_then(|f| f.memory_bytes),
                    memory_limit_bytes: figure.and_then(|f| f.memory_limit_bytes),
                }
            })
            .collect();
        drop(last);
        json_response(StatusCode::OK, &json!({ "containers": containers }))
    }

    /// The layout findings of each of a model's containers' model data, the way the
    /// container will see it.
    async fn artifact(&self, name: &str) -> Response<Body> {
        let model = match self.control.model(name) {
            Ok(model) => model,
            Err(e) => return crate::control::respond(Err(e)),
        };
        let mut containers = Vec::new();
        for container in model.spec.containers() {
            let data = container.model_data();
            let (report, message) = match data {
                None => (
                    None,
                    Some("no model data: the container gets an empty /opt/ml/model".to_string()),
                ),
                Some(_) if container.is_multi_model() => (
                    None,
                    Some(
                        "a multi-model container: its models are checked as each is loaded"
                            .to_string(),
                    ),
                ),
                Some(_) if container.uncompressed() => (
                    None,
                    Some(
                        "uncompressed model data (CompressionType None) is mounted as it is"
                            .to_string(),
                    ),
                ),
                Some(url) => match self.report(url, container.image()).await {
                    Ok(report) => (Some(report), None),
                    Err(message) => (None, Some(message)),
                },
            };
            containers.push(json!({
                "image": container.image(),
                "model_data_url": data,
                "report": report,
                "message": message,
            }));
        }
        json_response(StatusCode::OK, &json!({ "containers": containers }))
    }

    /// `sagedock validate`'s report of the model data at `url`, under the rules of the
    /// stack `image` serves.
    async fn report(&self, url: &str, image: &str) -> Result<serde_json::Value, String> {
        let location = ModelLocation::parse(url).map_err(|e| e.to_string())?;
        let path = self
            .storage
            .fetch(&location, &self.cache.root().join("downloads"))
            .await
            .map_err(|e| e.to_string())?;
        let (cache, choice) = (
            self.cache.clone(),
            Choice::Named(Framework::of_image(image)),
        );
        let checked = tokio::task::spawn_blocking(move || {
            inspect::check(&path, choice, &Limits::default(), &cache)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        serde_json::to_value(&checked.report).map_err(|e| e.to_string())
    }
}

/// One of the page's files.
fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
