//! The local endpoint: one HTTP port in front of an endpoint's instances.
//!
//! Owns: accepting requests, choosing an instance (least outstanding requests), and
//! forwarding `GET /ping` and `POST /invocations` (also under the runtime API's path
//! `/endpoints/{name}/invocations`) over pooled keep-alive connections, passing through
//! the headers SageMaker passes through.
//!
//! Does not: own container lifecycles (it is handed addresses), or speak the full
//! sagemaker-runtime API.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Request headers SageMaker forwards to the container (CONTRACT §1.3).
const FORWARDED: &[&str] = &[
    "content-type",
    "accept",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-target-variant",
    "x-amzn-sagemaker-inference-id",
    "content-length",
    "transfer-encoding",
];

/// One instance behind the endpoint.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    outstanding: AtomicUsize,
}

impl Backend {
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Backend {
            name: name.into(),
            addr,
            outstanding: AtomicUsize::new(0),
        }
    }
}

/// Forwards requests to the instances of one endpoint.
pub struct Forwarder {
    endpoint: String,
    backends: Vec<Backend>,
    client: Client<HttpConnector, Incoming>,
}

impl Forwarder {
    pub fn new(endpoint: impl Into<String>, backends: Vec<Backend>) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        Arc::new(Forwarder {
            endpoint: endpoint.into(),
            backends,
            client,
        })
    }

    /// The backend with the fewest requests in flight (the first on ties).
    fn pick(&self) -> Option<&Backend> {
        self.backends.iter().min_by_key(|b| b.outstanding.load(Ordering::Relaxed))
    }

    /// Handles one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path();
        let invocations = path == "/invocations"
            || path
                .strip_prefix("/endpoints/")
                .and_then(|rest| rest.strip_suffix("/invocations"))
                .is_some_and(|name| name == self.endpoint);
        let target = match (req.method(), path) {
            (&Method::GET, "/ping") => "/ping",
            (&Method::POST, _) if invocations => "/invocations",
            _ => {
                return Ok(text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "sagedock serves GET /ping and POST /invocations (or /endpoints/{}/invocations)\n",
                        self.endpoint
                    ),
                ))
            }
        };
        let Some(backend) = self.pick() else {
            return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "no instance is running\n".into()));
        };
        backend.outstanding.fetch_add(1, Ordering::Relaxed);
        let result = self.forward(backend, req, target).await;
        backend.outstanding.fetch_sub(1, Ordering::Relaxed);
        Ok(result)
    }

    async fn forward(&self, backend: &Backend, req: Request<Incoming>, path: &str) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let mut out = Request::builder()
            .method(parts.method)
            .uri(format!("http://{}{path}", backend.addr));
        for name in FORWARDED {
            if let Some(value) = parts.headers.get(*name) {
                out = out.header(*name, value);
            }
        }
        let out = out.body(body).expect("a valid request");
        match self.client.request(out).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                parts.headers.insert(
                    HeaderName::from_static("x-sagedock-instance"),
                    HeaderValue::from_str(&backend.name).unwrap_or(HeaderValue::from_static("?")),
                );
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!("instance {} at {} did not answer: {e}\n", backend.name, backend.addr),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Serves `forwarder` on `listener` until the task is cancelled.
pub async fn serve(listener: TcpListener, forwarder: Arc<Forwarder>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let forwarder = forwarder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| forwarder.clone().handle(req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
