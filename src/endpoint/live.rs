//! The live table's entries: endpoints that can take traffic, their variants, instances
//! and containers ([`Backend`]: how the router reaches one container, and its counters).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::http::uri::PathAndQuery;

use super::asynchronous::queue::AsyncOutput;
use super::capture::Capture;
use super::http1::Destination;
use super::metrics::Series;
use super::multimodel::{ModelRepository, ModelTable};
use super::serverless::Serverless;

/// One container.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    /// ContainerHostname (multi-container models).
    pub hostname: String,
    pub addr: SocketAddr,
    /// `POST /invocations` on `addr`, its request head's start encoded once.
    pub(super) invocations: Destination,
    /// `name` as a header value, made once.
    pub(super) name_header: HeaderValue,
    pub(super) outstanding: AtomicUsize,
    /// False once the instance is known dead or unhealthy: routing passes it by.
    healthy: AtomicBool,
    /// The models loaded in a multi-model container.
    pub models: Option<Arc<ModelTable>>,
    /// The container's CloudWatch log stream in its endpoint's group (empty when the
    /// container is not an endpoint's, as in tests).
    pub log_stream: String,
    /// Whatever keeps `addr` reserved for this container (its network lease): held as long
    /// as the router may still send to it.
    _reservation: Option<Arc<dyn std::any::Any + Send + Sync>>,
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
        Arc::new(Self::make(name.into(), hostname.into(), addr, None, None))
    }

    /// An endpoint's container, logging to `log_stream`, whose address `reservation`
    /// keeps reserved; a multi-model one when `multi_model`.
    pub fn reserved(
        name: impl Into<String>,
        hostname: impl Into<String>,
        addr: SocketAddr,
        multi_model: bool,
        log_stream: String,
        reservation: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Arc<Self> {
        let models = multi_model.then(Arc::default);
        let mut backend = Self::make(name.into(), hostname.into(), addr, models, reservation);
        backend.log_stream = log_stream;
        Arc::new(backend)
    }

    /// A multi-model container (models are loaded into it on demand).
    pub fn multi_model(
        name: impl Into<String>,
        hostname: impl Into<String>,
        addr: SocketAddr,
    ) -> Arc<Self> {
        Arc::new(Self::make(
            name.into(),
            hostname.into(),
            addr,
            Some(Arc::default()),
            None,
        ))
    }

    fn make(
        name: String,
        hostname: String,
        addr: SocketAddr,
        models: Option<Arc<ModelTable>>,
        reservation: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Backend {
        Backend {
            name_header: HeaderValue::from_str(&name)
                .unwrap_or_else(|_| HeaderValue::from_static("container")),
            name,
            hostname,
            addr,
            invocations: Destination::new(addr, &PathAndQuery::from_static("/invocations")),
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            models,
            log_stream: String::new(),
            _reservation: reservation,
        }
    }

    /// How SageMaker names the container in error messages: `primary`, or its hostname.
    pub fn label(&self) -> &str {
        if self.hostname.is_empty() {
            "primary"
        } else {
            &self.hostname
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Takes the container out of rotation (`false`) or puts it back.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Requests being answered now.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
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

    /// Outstanding requests, or `None` when the instance cannot take one (no containers,
    /// or taken out of rotation).
    pub(super) fn load(&self) -> Option<usize> {
        let first = self.containers.first()?;
        self.containers
            .iter()
            .all(|b| b.is_healthy())
            .then(|| first.outstanding())
    }
}

/// How a variant picks an instance for a call (RoutingConfig.RoutingStrategy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Routing {
    /// Any instance in rotation, at random (SageMaker's default).
    #[default]
    Random,
    /// One of those with the fewest calls in flight, ties broken at random.
    LeastOutstandingRequests,
}

impl Routing {
    /// The strategy botocore names, as RoutingConfig spells it.
    pub fn parse(name: &str) -> Option<Routing> {
        match name {
            "RANDOM" => Some(Routing::Random),
            "LEAST_OUTSTANDING_REQUESTS" => Some(Routing::LeastOutstandingRequests),
            _ => None,
        }
    }
}

/// A production variant that can take traffic.
#[derive(Debug, Clone)]
pub struct LiveVariant {
    pub name: String,
    pub weight: f64,
    /// How its model's containers are invoked.
    pub mode: Mode,
    /// How a call picks an instance.
    pub routing: Routing,
    /// Serverless variants: MaxConcurrency and cold starts.
    pub serverless: Option<Arc<Serverless>>,
    pub instances: Vec<LiveInstance>,
    /// Multi-model variants: where TargetModel is fetched from.
    pub models: Option<Arc<ModelRepository>>,
    /// `name` as the x-Amzn-Invoked-Production-Variant value, made once.
    pub(super) invoked: HeaderValue,
    /// Its metrics (set by [`super::Router::publish`]).
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
            routing: Routing::default(),
            serverless: None,
            instances,
            models,
            series: Arc::default(),
        }
    }

    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    pub fn with_serverless(mut self, serverless: Option<Arc<Serverless>>) -> Self {
        self.serverless = serverless;
        self
    }

    /// Instances that can take a call now.
    pub fn healthy_instances(&self) -> usize {
        self.instances.iter().filter(|i| i.load().is_some()).count()
    }
}

/// An endpoint that can take traffic.
#[derive(Debug, Clone)]
pub struct LiveEndpoint {
    pub name: String,
    pub variants: Vec<LiveVariant>,
    /// AsyncInferenceConfig.OutputConfig, when the endpoint takes asynchronous requests.
    pub async_output: Option<AsyncOutput>,
    /// DataCaptureConfig, when the endpoint captures calls.
    pub capture: Option<Arc<Capture>>,
}
