//! InvokeEndpoint: choose a variant (by weight, or the caller's TargetVariant), choose an
//! instance (least outstanding requests), forward over pooled keep-alive connections, and
//! answer with the headers and errors the sagemaker-runtime API defines.
//!
//! The table of live endpoints is replaced whole on every change (copy on write), so the
//! request path takes a read lock only long enough to clone one `Arc`, and never holds a
//! lock across an await. A `Target` is indices into that `Arc`: routing copies nothing.
//!
//! The other invocation kinds build on this: response streaming in [`super::stream`],
//! multi-model endpoints in [`super::multimodel`], asynchronous requests in
//! [`super::asynchronous`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::asynchronous::AsyncOutput;
use super::metrics::Series;
use super::multimodel::{self, ModelRepository, ModelTable};
use super::Body;

/// The pooled HTTP client sagedock talks to containers with. There is one per thread
/// (`client()`): a pooled connection is then driven by the thread that uses it.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// This thread's client.
pub(super) fn client() -> HttpClient {
    thread_local! {
        static CLIENT: HttpClient = {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(connector)
        };
    }
    CLIENT.with(Clone::clone)
}

/// How SageMaker names a container in error messages: `primary`, or its hostname.
pub(super) fn container_label(backend: &Backend) -> String {
    if backend.hostname.is_empty() {
        "primary".into()
    } else {
        backend.hostname.clone()
    }
}

/// Which of an instance's containers an invocation passes through.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// All of them, in order (one container, or an inference pipeline).
    All,
    /// The one at this index (direct invocation).
    One(usize),
}

/// Where one invocation goes: indices into the endpoint it holds (no copies).
pub(super) struct Target {
    endpoint: Arc<LiveEndpoint>,
    variant: usize,
    instance: usize,
    route: Route,
    /// Multi-model endpoints: the TargetModel, its key in the container, and where it is.
    pub(super) model: Option<(String, String, Arc<ModelRepository>)>,
}

const INVOKED_VARIANT: HeaderName = HeaderName::from_static("x-amzn-invoked-production-variant");
const SAGEDOCK_INSTANCE: HeaderName = HeaderName::from_static("x-sagedock-instance");

impl Target {
    pub(super) fn variant(&self) -> &LiveVariant {
        &self.endpoint.variants[self.variant]
    }

    /// The containers the request passes through, in order.
    pub(super) fn chain(&self) -> &[Arc<Backend>] {
        let containers = &self.variant().instances[self.instance].containers;
        match self.route {
            Route::All => containers,
            Route::One(i) => std::slice::from_ref(&containers[i]),
        }
    }

    /// The instance's first container, which counts the instance's outstanding requests.
    pub(super) fn first(&self) -> &Arc<Backend> {
        &self.variant().instances[self.instance].containers[0]
    }

    /// Adds the response headers that name the variant (and, for debugging, the container).
    pub(super) fn label(&self, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        headers.insert(INVOKED_VARIANT, self.variant().invoked.clone());
        // Not an AWS header: which container answered, for people debugging routing.
        if let Some(last) = self.chain().last() {
            headers.insert(SAGEDOCK_INSTANCE, last.name_header.clone());
        }
    }
}

/// How long an invocation waits for a multi-model load before ModelNotReadyException.
pub const MODEL_LOAD_WAIT: Duration = Duration::from_secs(60);
/// InvokeEndpoint's payload limit: 6 MB.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;
/// How long a container may take to answer one invocation.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Request headers SageMaker passes to the container (CONTRACT §1.3).
const FORWARDED: [HeaderName; 5] = [
    hyper::header::CONTENT_TYPE,
    hyper::header::ACCEPT,
    HeaderName::from_static("x-amzn-sagemaker-custom-attributes"),
    HeaderName::from_static("x-amzn-sagemaker-inference-id"),
    // Multi-model endpoints only (the header is refused for the others).
    HeaderName::from_static("x-amzn-sagemaker-target-model"),
];

/// One container.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    /// ContainerHostname (multi-container models).
    pub hostname: String,
    pub addr: SocketAddr,
    /// `http://<addr>/invocations`, parsed once.
    invocations: hyper::Uri,
    /// `name` as a header value, made once.
    name_header: HeaderValue,
    pub(super) outstanding: AtomicUsize,
    /// The models loaded in a multi-model container.
    pub models: Option<Arc<ModelTable>>,
}

impl Backend {
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Arc<Self> {
        Self::with_hostname(name, "", addr)
    }

    pub fn with_hostname(
        name: impl Into<String>,
        hostname: impl Into<String>,
        addr: SocketAddr,
    ) -> Arc<Self> {
        let name = name.into();
        Arc::new(Backend {
            name_header: HeaderValue::from_str(&name)
                .unwrap_or_else(|_| HeaderValue::from_static("container")),
            name,
            hostname: hostname.into(),
            addr,
            invocations: format!("http://{addr}/invocations")
                .parse()
                .expect("a valid URI"),
            outstanding: AtomicUsize::new(0),
            models: None,
        })
    }

    /// A multi-model container (models are loaded into it on demand).
    pub fn multi_model(
        name: impl Into<String>,
        hostname: impl Into<String>,
        addr: SocketAddr,
    ) -> Arc<Self> {
        let mut backend =
            Arc::into_inner(Self::with_hostname(name, hostname, addr)).expect("a new backend");
        backend.models = Some(Arc::default());
        Arc::new(backend)
    }
}

/// How the containers of a multi-container model are invoked
/// (`InferenceExecutionConfig.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One container.
    Single,
    /// An inference pipeline: each container's answer is the next one's request.
    Serial,
    /// The caller names one container with TargetContainerHostname.
    Direct,
}

/// One instance: its containers, in order.
#[derive(Debug, Clone)]
pub struct LiveInstance {
    pub containers: Vec<Arc<Backend>>,
}

impl LiveInstance {
    pub fn single(backend: Arc<Backend>) -> Self {
        LiveInstance {
            containers: vec![backend],
        }
    }

    fn load(&self) -> usize {
        self.containers
            .first()
            .map_or(usize::MAX, |b| b.outstanding.load(Ordering::Relaxed))
    }
}

/// A production variant that can take traffic.
#[derive(Debug, Clone)]
pub struct LiveVariant {
    pub name: String,
    pub weight: f64,
    /// How its model's containers are invoked.
    pub mode: Mode,
    pub instances: Vec<LiveInstance>,
    /// Multi-model variants: where TargetModel is fetched from.
    pub models: Option<Arc<ModelRepository>>,
    /// `name` as the x-Amzn-Invoked-Production-Variant value, made once.
    invoked: HeaderValue,
    /// Its metrics (set by [`Router::publish`]).
    pub(super) series: Arc<Series>,
}

impl LiveVariant {
    pub fn new(
        name: impl Into<String>,
        weight: f64,
        mode: Mode,
        instances: Vec<LiveInstance>,
        models: Option<Arc<ModelRepository>>,
    ) -> Self {
        let name = name.into();
        LiveVariant {
            invoked: HeaderValue::from_str(&name)
                .unwrap_or_else(|_| HeaderValue::from_static("AllTraffic")),
            name,
            weight,
            mode,
            instances,
            models,
            series: Arc::default(),
        }
    }
}

/// An endpoint that can take traffic.
#[derive(Debug, Clone)]
pub struct LiveEndpoint {
    pub name: String,
    pub variants: Vec<LiveVariant>,
    /// AsyncInferenceConfig.OutputConfig, when the endpoint takes asynchronous requests.
    pub async_output: Option<AsyncOutput>,
}

/// Routes invocations to live endpoints.
pub struct Router {
    endpoints: RwLock<HashMap<String, Arc<LiveEndpoint>>>,
    pub(super) account: String,
    region: String,
    counter: AtomicU64,
    /// Invocation metrics, served on GET /metrics.
    pub metrics: super::metrics::Metrics,
    /// Where InvokeEndpointAsync reads inputs and writes results.
    pub(super) storage: crate::control::data::Storage,
    /// How long an invocation waits for a multi-model load.
    pub(super) model_load_wait: Duration,
}

/// An error in the rest-json shape of sagemaker-runtime.
pub(super) fn runtime_error(
    status: StatusCode,
    code: &'static str,
    body: serde_json::Value,
) -> Response<Body> {
    let mut response = Response::new(super::full(serde_json::to_vec(&body).expect("json")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    response
}

/// A ValidationError as the runtime API words it: `{"Message": …}` (SageMaker also sends
/// an `ErrorCode` for some; see [`validation_error_coded`]).
pub(super) fn validation_error(message: String) -> Response<Body> {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        json!({ "Message": message }),
    )
}

/// A ValidationError with the `ErrorCode` SageMaker gives it.
fn validation_error_coded(code: &str, message: String) -> Response<Body> {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        json!({ "ErrorCode": code, "Message": message }),
    )
}

impl Router {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Arc<Self> {
        Arc::new(Router {
            endpoints: RwLock::new(HashMap::new()),
            account: account.into(),
            region: region.into(),
            counter: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            metrics: Default::default(),
            storage: Default::default(),
            model_load_wait: MODEL_LOAD_WAIT,
        })
    }

    /// A router whose asynchronous invocations read and write through `storage`, and
    /// whose multi-model invocations wait `model_load_wait` for a load.
    pub fn with_storage(
        account: impl Into<String>,
        region: impl Into<String>,
        storage: crate::control::data::Storage,
        model_load_wait: Duration,
    ) -> Arc<Self> {
        let mut router = Arc::into_inner(Self::new(account, region)).expect("a new router");
        router.storage = storage;
        router.model_load_wait = model_load_wait;
        Arc::new(router)
    }

    /// Makes `endpoint` live (replacing any earlier version of it).
    pub fn publish(&self, mut endpoint: LiveEndpoint) {
        for variant in &mut endpoint.variants {
            variant.series = self.metrics.series(&endpoint.name, &variant.name);
        }
        let mut table = self.endpoints.write().expect("router lock");
        table.insert(endpoint.name.clone(), Arc::new(endpoint));
    }

    /// Takes an endpoint out of service (it was deleted): its metrics go too.
    pub fn withdraw(&self, name: &str) {
        self.endpoints.write().expect("router lock").remove(name);
        self.metrics.forget(name);
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveEndpoint>> {
        self.endpoints
            .read()
            .expect("router lock")
            .get(name)
            .cloned()
    }

    /// The only live endpoint, when there is exactly one (`sagedock serve`).
    pub fn only(&self) -> Option<Arc<LiveEndpoint>> {
        let table = self.endpoints.read().expect("router lock");
        (table.len() == 1)
            .then(|| table.values().next().cloned())
            .flatten()
    }

    pub(super) fn not_found(&self, name: &str) -> Response<Body> {
        validation_error(format!(
            "Endpoint {name} of account {} not found.",
            self.account
        ))
    }

    /// A fast pseudo-random number in [0, 1) for weighted choice.
    pub(super) fn unit_random(&self) -> f64 {
        let mut x = self
            .counter
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The index of the variant a request goes to.
    fn choose_variant(
        &self,
        endpoint: &LiveEndpoint,
        target: Option<&str>,
    ) -> Result<usize, Box<Response<Body>>> {
        if let Some(target) = target {
            return endpoint
                .variants
                .iter()
                .position(|v| v.name == target)
                .ok_or_else(|| {
                    Box::new(validation_error(format!(
                        "Variant {target} not found for endpoint {} of account {}.",
                        endpoint.name, self.account
                    )))
                });
        }
        let total: f64 = endpoint.variants.iter().map(|v| v.weight).sum();
        if endpoint.variants.is_empty() {
            return Err(Box::new(self.not_found(&endpoint.name)));
        }
        if total <= 0.0 {
            return Ok(0);
        }
        let mut point = self.unit_random() * total;
        for (i, variant) in endpoint.variants.iter().enumerate() {
            if point < variant.weight {
                return Ok(i);
            }
            point -= variant.weight;
        }
        Ok(endpoint.variants.len() - 1)
    }

    /// Reads the request body, refusing more than [`MAX_PAYLOAD`].
    pub(super) async fn payload(body: Incoming) -> Result<Bytes, Box<Response<Body>>> {
        match Limited::new(body, MAX_PAYLOAD).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(_) => {
                let mut response = validation_error(format!(
                    "1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have length less than or equal to {MAX_PAYLOAD}"
                ));
                // The rest of the body is not read: the connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                Err(Box::new(response))
            }
        }
    }

    /// Chooses the variant, the instance and the containers a request goes to.
    /// `request_id` is the request's x-amzn-RequestId (some messages quote it).
    pub(super) fn resolve(
        &self,
        name: &str,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Result<Target, Box<Response<Body>>> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let Some(endpoint) = self.get(name) else {
            return Err(Box::new(self.not_found(name)));
        };
        if header("x-amzn-sagemaker-inference-component").is_some() {
            return Err(Box::new(validation_error(format!(
                "Inference Component Name header is not allowed for endpoint {name} of account {}: it has no inference components (sagedock serves models deployed with CreateModel and CreateEndpointConfig, not CreateInferenceComponent).",
                self.account
            ))));
        }
        let variant_index =
            self.choose_variant(&endpoint, header("x-amzn-sagemaker-target-variant"))?;
        let variant = &endpoint.variants[variant_index];
        let model = match (&variant.models, header("x-amzn-sagemaker-target-model")) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(Box::new(validation_error_coded(
                    "TARGET_MODEL_HEADER_NOT_SUPPORTED",
                    format!("Endpoint {name} is not a multi-model endpoint and does not support target model header."),
                )))
            }
            (Some(_), None) => {
                return Err(Box::new(validation_error(format!(
                    "Request {request_id} is missing a target model header."
                ))));
            }
            (Some(repository), Some(target)) => Some((
                target.to_string(),
                multimodel::model_key(target),
                repository.clone(),
            )),
        };
        // A multi-model invocation prefers an instance that has its model loaded.
        let has_model = |i: &&LiveInstance| match (&model, i.containers.first()) {
            (Some((_, key, _)), Some(b)) => b.models.as_ref().is_some_and(|t| t.has(key)),
            _ => false,
        };
        let least_loaded = |warm_only: bool| {
            variant
                .instances
                .iter()
                .enumerate()
                .filter(|(_, i)| i.load() != usize::MAX && (!warm_only || has_model(i)))
                .min_by_key(|(_, i)| i.load())
                .map(|(k, _)| k)
        };
        let warm = model.as_ref().and_then(|_| least_loaded(true));
        let Some(instance_index) = warm.or_else(|| least_loaded(false)) else {
            return Err(Box::new(self.not_found(name)));
        };
        let instance = &variant.instances[instance_index];
        let refuse = |message: String| Err(Box::new(validation_error(message)));
        let route = match (variant.mode, header("x-amzn-sagemaker-target-container-hostname")) {
            (Mode::Direct, Some(host)) => match instance.containers.iter().position(|b| b.hostname == host) {
                Some(i) => Route::One(i),
                None => {
                    return refuse(format!(
                        "The container hostname {host} does not exist on endpoint {name} of account {}.",
                        self.account
                    ))
                }
            },
            (Mode::Direct, None) => {
                return refuse(format!(
                    "Endpoint {name} of account {} uses direct invocation: specify TargetContainerHostname.",
                    self.account
                ))
            }
            (_, Some(_)) => {
                return refuse(format!(
                    "Endpoint {name} of account {} is not configured for direct invocation: TargetContainerHostname is not allowed.",
                    self.account
                ))
            }
            (Mode::Serial, None) => Route::All,
            (Mode::Single, None) => Route::One(0),
        };
        Ok(Target {
            endpoint: endpoint.clone(),
            variant: variant_index,
            instance: instance_index,
            route,
            model,
        })
    }

    /// Handles InvokeEndpoint for `name`.
    pub async fn invoke(
        &self,
        name: &str,
        req: Request<Incoming>,
        request_id: &str,
    ) -> Response<Body> {
        let t0 = Instant::now();
        let (parts, body) = req.into_parts();
        let target = match self.resolve(name, &parts.headers, request_id) {
            Ok(t) => t,
            Err(response) => return *response,
        };
        let payload = match Self::payload(body).await {
            Ok(p) => p,
            Err(response) => return *response,
        };
        target.first().outstanding.fetch_add(1, Ordering::Relaxed);
        let mut started = Instant::now();
        let (mut response, status) = match &target.model {
            Some(model) => {
                self.run_model(name, &target, model, &parts.headers, payload, &mut started)
                    .await
            }
            None => {
                self.run_chain(
                    name,
                    target.chain(),
                    &parts.headers,
                    payload,
                    INVOCATION_TIMEOUT,
                )
                .await
            }
        };
        let model = started.elapsed();
        target.first().outstanding.fetch_sub(1, Ordering::Relaxed);
        target.variant().series.record(status, model, t0.elapsed());
        target.label(&mut response);
        response
    }

    /// Sends the request through `chain` (one container, or a pipeline): each answer
    /// becomes the next request, with its Content-Type.
    pub(super) async fn run_chain(
        &self,
        name: &str,
        chain: &[Arc<Backend>],
        headers: &HeaderMap,
        payload: Bytes,
        timeout: Duration,
    ) -> (Response<Body>, u16) {
        // Only a pipeline changes the headers between containers.
        let mut headers = std::borrow::Cow::Borrowed(headers);
        let mut payload = payload;
        for (i, backend) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            let response = match self
                .forward(backend, &headers, payload.clone(), timeout)
                .await
            {
                Ok(response) => response,
                Err(detail) => {
                    return (
                        self.model_error(name, &container_label(backend), 0, detail),
                        0,
                    )
                }
            };
            let status = response.status().as_u16();
            if last || !response.status().is_success() {
                return (
                    self.answer(name, &container_label(backend), response).await,
                    status,
                );
            }
            if let Some(content_type) = response.headers().get(CONTENT_TYPE) {
                headers.to_mut().insert(CONTENT_TYPE, content_type.clone());
            }
            payload = match response.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return (
                        self.model_error(name, &container_label(backend), 0, e.to_string()),
                        0,
                    )
                }
            };
        }
        (self.not_found(name), 0)
    }

    pub(super) async fn forward(
        &self,
        backend: &Backend,
        headers: &HeaderMap,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Response<Incoming>, String> {
        self.forward_to(backend.invocations.clone(), headers, payload, timeout)
            .await
    }

    /// Sends one request, waiting at most `timeout` for the answer's head.
    pub(super) async fn forward_to(
        &self,
        uri: hyper::Uri,
        headers: &HeaderMap,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Response<Incoming>, String> {
        let mut out = Request::post(uri);
        for name in FORWARDED {
            if let Some(value) = headers.get(&name) {
                out = out.header(name, value);
            }
        }
        let out = out.body(Full::new(payload)).expect("a valid request");
        match tokio::time::timeout(timeout, client().request(out)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(format!("the container could not be reached ({e})")),
            Err(_) => Err(format!(
                "Your invocation timed out while waiting for a response from container primary. Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again. (limit: {} s)",
                timeout.as_secs()
            )),
        }
    }

    pub(super) async fn answer(
        &self,
        name: &str,
        container: &str,
        response: Response<Incoming>,
    ) -> Response<Body> {
        let status = response.status();
        if status.is_success() {
            let (parts, body) = response.into_parts();
            let mut out = Response::new(body.boxed());
            for header in ["content-type", "x-amzn-sagemaker-custom-attributes"] {
                if let Some(value) = parts.headers.get(header) {
                    out.headers_mut().insert(header, value.clone());
                }
            }
            return out;
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body).into_owned();
        self.model_error(name, container, status.as_u16(), text)
    }

    /// ModelError (424), as SageMaker reports a container's failure.
    pub(super) fn model_error(
        &self,
        name: &str,
        container: &str,
        status: u16,
        original: String,
    ) -> Response<Body> {
        let kind = if (400..500).contains(&status) {
            "client"
        } else {
            "server"
        };
        let group = format!("/aws/sagemaker/Endpoints/{name}");
        runtime_error(
            StatusCode::FAILED_DEPENDENCY,
            "ModelError",
            json!({
                "ErrorCode": if kind == "client" { "CLIENT_ERROR_FROM_MODEL" } else { "SERVER_ERROR_FROM_MODEL" },
                "LogStreamArn": format!("arn:aws:logs:{}:{}:log-group:{group}", self.region, self.account),
                "Message": format!(
                    "Received {kind} error ({status}) from {container} with message \"{original}\". See `sagedock logs {name}` (CloudWatch log group {group} in account {}) for more information.",
                    self.account
                ),
                "OriginalMessage": original,
                "OriginalStatusCode": status,
            }),
        )
    }
}
