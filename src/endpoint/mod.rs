//! The one HTTP port sagedock serves: the sagemaker-runtime API (InvokeEndpoint) and,
//! under `sagedock up`, the SageMaker control plane (AWS JSON 1.1, `POST /` with
//! `X-Amz-Target: SageMaker.<Operation>`), so boto3, the AWS CLI and the SageMaker SDK need
//! a single `endpoint_url`.
//!
//! Owns: parsing requests into the two APIs and writing their answers, including every
//! error in its AWS shape. Routing invocations is [`router`]'s job; operations are the
//! control plane's.
//!
//! Does not: own container lifecycles.

pub mod asynchronous;
pub mod metrics;
pub mod multimodel;
pub mod router;
pub mod stream;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use asynchronous::{AsyncOutput, AsyncQueue};
pub use router::{Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Router};

use crate::control::{error::AwsError, ControlPlane};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// An id in AWS's UUID form (version-4 layout) from a counter or random number.
pub(crate) fn uuid_like(n: u64) -> String {
    let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        h & 0xfff,
        (n >> 4) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// What the port serves.
pub struct App {
    pub router: Arc<Router>,
    pub control: Option<Arc<ControlPlane>>,
    request_ids: AtomicU64,
    /// The runtime control-plane operations run on (they start long-lived tasks, which
    /// belong with the deployer rather than on a connection thread).
    control_runtime: tokio::runtime::Handle,
}

impl App {
    pub fn new(router: Arc<Router>, control: Option<Arc<ControlPlane>>) -> Arc<Self> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Arc::new(App {
            router,
            control,
            request_ids: AtomicU64::new(seed),
            control_runtime: tokio::runtime::Handle::current(),
        })
    }

    /// A request id in AWS's UUID form.
    fn request_id(&self) -> String {
        uuid_like(self.request_ids.fetch_add(1, Ordering::Relaxed))
    }

    /// Handles one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let request_id = self.request_id();
        // A clone of the URI shares its bytes: the path outlives `req` without a copy.
        let uri = req.uri().clone();
        let path = uri.path();
        let mut response = match (req.method(), path) {
            (&Method::POST, "/") if req.headers().contains_key("x-amz-target") => {
                self.control(req).await
            }
            (&Method::POST, p) if p.starts_with("/endpoints/") => match p
                .strip_prefix("/endpoints/")
                .and_then(|r| r.split_once('/'))
            {
                Some((name, "invocations")) => {
                    let name = percent_decode(name);
                    self.router.invoke(&name, req, &request_id).await
                }
                Some((name, "async-invocations")) => {
                    let name = percent_decode(name);
                    self.router.invoke_async(&name, req, &request_id).await
                }
                Some((name, "invocations-response-stream")) => {
                    let name = percent_decode(name);
                    self.router.invoke_stream(&name, req, &request_id).await
                }
                _ => not_found(path),
            },
            (&Method::POST, "/invocations") => match self.router.only() {
                Some(endpoint) => self.router.invoke(&endpoint.name, req, &request_id).await,
                None => not_found(path),
            },
            (&Method::GET, "/ping") => plain(StatusCode::OK, "ok\n"),
            (&Method::GET, "/metrics") => {
                let mut response = Response::new(full(self.router.metrics.render()));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => not_found(path),
        };
        if let Ok(value) = HeaderValue::try_from(request_id) {
            response.headers_mut().insert("x-amzn-requestid", value);
        }
        Ok(response)
    }

    async fn control(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(control) = self.control.clone() else {
            return aws_json_error(&AwsError::unknown_operation(
                "the SageMaker control plane (run `sagedock up`)",
            ));
        };
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = match Limited::new(req.into_body(), 16 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return aws_json_error(&AwsError::validation("request body over 16 MiB")),
        };
        let outcome = self
            .control_runtime
            .spawn(async move { control.handle(&target, &body).await })
            .await;
        let outcome = outcome.unwrap_or_else(|e| {
            Err(AwsError::new(
                "InternalFailure",
                500,
                format!("the operation failed: {e}"),
            ))
        });
        match outcome {
            Ok(value) => {
                let mut response = Response::new(full(serde_json::to_vec(&value).expect("json")));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-amz-json-1.1"),
                );
                response
            }
            Err(err) => aws_json_error(&err),
        }
    }
}

fn aws_json_error(err: &AwsError) -> Response<Body> {
    let mut response = Response::new(full(err.json_body()));
    *response.status_mut() = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn not_found(path: &str) -> Response<Body> {
    let body = serde_json::json!({
        "message": format!("sagedock serves POST / (SageMaker API, X-Amz-Target), POST /endpoints/NAME/invocations, POST /endpoints/NAME/invocations-response-stream, GET /ping and GET /metrics; not {path}")
    });
    let mut response = Response::new(full(serde_json::to_vec(&body).expect("json")));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("UnknownOperationException"),
    );
    response
}

/// Decodes `%XX` escapes in a path segment.
fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Serves `app` on `listener` until the task is cancelled (then the connection threads
/// end too).
///
/// Connections are dealt round-robin to one thread per core, each running a
/// single-threaded runtime: a request, the connection to its container (pooled per
/// thread, see [`router::HttpClient`]) and the answer stay on one thread, so an
/// invocation costs no wake-up of another thread. On a small machine that wake-up was a
/// third of sagedock's added latency.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lanes = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
        let app = app.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sagedock-http-{i}"))
            .spawn(move || connection_thread(rx, app));
        match spawned {
            Ok(_) => lanes.push(tx),
            Err(e) => tracing::warn!(error = %e, "could not start a connection thread"),
        }
    }
    let mut next = 0usize;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        if lanes.is_empty() {
            // No connection thread could start: serve on this runtime.
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                tokio::spawn(serve_connection(stream, app.clone()));
            }
            continue;
        }
        next = (next + 1) % lanes.len();
        let _ = lanes[next].send(stream);
    }
}

/// One connection thread: serves the connections it is dealt until the sender is gone.
fn connection_thread(
    mut connections: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
    app: Arc<App>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "could not start a connection thread's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        tokio::spawn(keep_timer_armed());
        while let Some(stream) = connections.recv().await {
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                tokio::spawn(serve_connection(stream, app.clone()));
            }
        }
    });
}

/// Keeps a timer pending on the connection thread, due sooner than any invocation's
/// deadline (60 s at the least, see [`router::Router`]).
///
/// Tokio's timer wakes its driver (a write to an eventfd and one more pass through
/// `epoll_wait`) whenever a timer is registered that is due before every pending one. With
/// no timer pending, that was every invocation: its deadline was the only timer. A timer
/// that fires every 30 s keeps the deadlines from ever being the earliest, at the cost of
/// one wake-up per thread per 30 s.
async fn keep_timer_armed() {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, app: Arc<App>) {
    let service = hyper::service::service_fn(move |req| app.clone().handle(req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("my%2Dendpoint"), "my-endpoint");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%4"), "end%4");
    }
}
