//! The one HTTP port sagedock serves. A request goes to the service its signature names
//! ([`service`]): S3 to the S3 API over the S3 root, STS to [`sts`], CloudWatch Logs to
//! the log record's API; SageMaker's are `POST /` with `X-Amz-Target: SageMaker.<Operation>`
//! for the control plane (AWS JSON 1.1) and `/endpoints/<name>/…` for the runtime API;
//! `GET /ping` and `GET /metrics` are answered here, and `GET /` (with `/_sagedock/…`) by
//! the [`dashboard`] when the run has one. So boto3, the AWS CLI and the
//! SageMaker SDK need one `AWS_ENDPOINT_URL`.
//!
//! [`App`] is the service: tests call [`App::handle`] with a request in hand, no socket
//! involved; [`listener::serve`] runs it on a port (connection threads, timeouts, a
//! connection cap), each connection on sagedock's own HTTP/1.1 loop for invocations and
//! on hyper for the rest ([`connection`]). Nothing a caller sends can panic the process: a panic while answering
//! becomes a 500 in AWS's shape and one line in the log.
//!
//! Does not: implement an operation (the control plane and the router do).

mod connection;
pub mod listener;
pub mod service;
pub mod sts;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use http_body_util::{BodyExt, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

pub use listener::{serve, Limits};

use crate::control::{AwsError, ControlPlane};
use crate::dashboard::{self, Dashboard};
use crate::endpoint::{uuid_like, ApiError, Router};
use crate::http::{full, Body, RequestBody};
use crate::logs::api::LogsError;
use crate::logs::LogRecord;
use crate::storage::api::S3Api;
use service::Service;

/// The largest control-plane request body read.
const MAX_CONTROL_BODY: usize = 16 << 20;

/// The AWS services beside SageMaker that the port answers for (`sagedock up` has them;
/// `serve` and `ci` do not).
#[derive(Debug, Default)]
pub struct Services {
    pub s3: S3,
    pub logs: Option<Arc<LogRecord>>,
    /// The page at `/` and its routes under `/_sagedock/`.
    pub dashboard: Option<Arc<Dashboard>>,
}

/// Where S3 requests on the port go.
#[derive(Debug, Default)]
pub enum S3 {
    /// Nowhere: this run has no S3.
    #[default]
    None,
    /// To the S3 API over the S3 root.
    Served(S3Api),
    /// Elsewhere: the S3-compatible server at this URL holds the objects (`--s3-endpoint`).
    Elsewhere(String),
}

/// What the port serves.
pub struct App {
    pub router: Arc<Router>,
    pub control: Option<Arc<ControlPlane>>,
    services: Services,
    request_ids: AtomicU64,
    /// The runtime control-plane operations run on (they start long-lived tasks, which
    /// belong with the deployments rather than on a connection thread).
    control_runtime: tokio::runtime::Handle,
}

impl App {
    /// Must be called from within the runtime control-plane operations should run on.
    pub fn new(router: Arc<Router>, control: Option<Arc<ControlPlane>>) -> Arc<Self> {
        App::with_services(router, control, Services::default())
    }

    /// An app that also answers for S3, STS and CloudWatch Logs.
    pub fn with_services(
        router: Arc<Router>,
        control: Option<Arc<ControlPlane>>,
        services: Services,
    ) -> Arc<Self> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(32))
            .unwrap_or(1);
        Arc::new(App {
            router,
            control,
            services,
            request_ids: AtomicU64::new(seed),
            control_runtime: tokio::runtime::Handle::current(),
        })
    }

    /// A request id in AWS's UUID form.
    fn request_id(&self) -> String {
        uuid_like(self.request_ids.fetch_add(1, Ordering::Relaxed))
    }

    /// Answers one request. A panic while answering is caught: the caller gets a 500 in
    /// the shape of the API it called.
    pub async fn handle<B: RequestBody>(
        self: Arc<Self>,
        req: Request<B>,
    ) -> Result<Response<Body>, Infallible> {
        let request_id = self.request_id();
        let control = is_control(&req);
        let answered = std::panic::AssertUnwindSafe(self.dispatch(req, &request_id))
            .catch_unwind()
            .await;
        let mut response = answered.unwrap_or_else(|_| {
            let message = format!("sagedock failed while answering request {request_id}; the log has a line about it. Please report it.");
            if control {
                AwsError::internal(message).into_response()
            } else {
                ApiError::Internal(message).into_response()
            }
        });
        if let Ok(value) = HeaderValue::try_from(request_id) {
            response.headers_mut().insert("x-amzn-requestid", value);
        }
        Ok(response)
    }

    async fn dispatch<B: RequestBody>(&self, req: Request<B>, request_id: &str) -> Response<Body> {
        match Service::of(&req) {
            Service::S3 => self.s3(req).await,
            Service::Sts => sts::handle(req, &self.router.account, request_id).await,
            Service::Logs => self.logs(req).await,
            Service::Other(name) => unknown_service(&req, &name),
            Service::SageMaker | Service::Unsigned => self.sagemaker(req, request_id).await,
        }
    }

    async fn sagemaker<B: RequestBody>(&self, req: Request<B>, request_id: &str) -> Response<Body> {
        // A clone of the URI shares its bytes: the path outlives `req` without a copy.
        let uri = req.uri().clone();
        let path = uri.path();
        match (req.method(), path) {
            (&Method::POST, "/") if target(&req).starts_with("Logs_20140328.") => {
                self.logs(req).await
            }
            (&Method::POST, "/") if is_control(&req) => self.control(req).await,
            (&Method::POST, p) if p.starts_with("/endpoints/") => {
                let rest = &p["/endpoints/".len()..];
                let Some((name, action)) = rest.split_once('/') else {
                    return not_found(path);
                };
                let name = crate::http::percent_decode(name);
                match action {
                    "invocations" => self.router.invoke(&name, req, request_id).await,
                    "async-invocations" => {
                        self.router
                            .clone()
                            .invoke_async(&name, req, request_id)
                            .await
                    }
                    "invocations-response-stream" => {
                        self.router.invoke_stream(&name, req, request_id).await
                    }
                    _ => not_found(path),
                }
            }
            (&Method::POST, "/invocations") => match self.router.only() {
                Some(endpoint) => self.router.invoke(&endpoint.name, req, request_id).await,
                None => not_found(path),
            },
            (&Method::GET, "/ping") => plain(StatusCode::OK, "ok\n"),
            (&Method::GET, p) if p == "/" || p.starts_with(dashboard::PREFIX) => {
                let page = match &self.services.dashboard {
                    Some(dashboard) => dashboard.get(p).await,
                    None => None,
                };
                page.unwrap_or_else(|| not_found(path))
            }
            (&Method::GET, "/metrics") => {
                let mut text = self.router.render_metrics();
                if let Some(control) = &self.control {
                    text.push_str(&control.render_metrics());
                }
                let mut response = Response::new(full(text));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => not_found(path),
        }
    }

    async fn control<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let Some(control) = self.control.clone() else {
            return AwsError::unknown_operation("the SageMaker control plane (run `sagedock up`)")
                .into_response();
        };
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = match Limited::new(req.into_body(), MAX_CONTROL_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return AwsError::validation("The request body is over 16 MiB.").into_response()
            }
        };
        // Operations start deployments and Docker connections that must outlive any
        // connection thread: they run on the main runtime.
        let outcome = self
            .control_runtime
            .spawn(async move { control.handle(&target, &body).await })
            .await;
        match outcome {
            Ok(result) => crate::control::respond(result),
            Err(e) => {
                tracing::error!(error = %e, "a control-plane operation failed");
                AwsError::internal(format!("The operation failed: {e}")).into_response()
            }
        }
    }
}

impl App {
    async fn s3<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        match &self.services.s3 {
            S3::Served(api) => api.handle(req).await,
            S3::Elsewhere(endpoint) => s3_not_here(&format!(
                "This sagedock keeps its objects on the S3 server {endpoint} (--s3-endpoint): send S3 requests there (export AWS_ENDPOINT_URL_S3={endpoint})."
            )),
            S3::None => s3_not_here(
                "This sagedock serves no S3: `sagedock up` does (over --s3-root, or a folder in its data directory).",
            ),
        }
    }

    async fn logs<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let target = target(&req).to_string();
        let Some(record) = self.services.logs.clone() else {
            let error = LogsError::new(
                "UnknownOperationException",
                "This sagedock keeps no CloudWatch Logs: `sagedock up` does.",
            );
            return logs_response(Err(error));
        };
        let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return logs_response(Err(LogsError::new(
                    "InvalidParameterException",
                    "The request body is over 1 MiB.",
                )))
            }
        };
        let (account, region) = (self.router.account.clone(), self.router.region.clone());
        let answered = tokio::task::spawn_blocking(move || {
            crate::logs::api::handle(&record, &target, &body, &account, &region)
        })
        .await;
        match answered {
            Ok(result) => logs_response(result),
            Err(e) => logs_response(Err(LogsError::new(
                "ServiceUnavailableException",
                format!("The operation failed: {e}"),
            ))),
        }
    }
}

fn target<B>(req: &Request<B>) -> &str {
    req.headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn logs_response(result: Result<serde_json::Value, crate::logs::api::LogsError>) -> Response<Body> {
    let (status, body, kind) = match result {
        Ok(value) => (StatusCode::OK, value, None),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body(),
            Some(e.kind),
        ),
    };
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Some(kind) = kind {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(kind));
    }
    response
}

/// S3's error shape, for S3 requests this run cannot serve.
fn s3_not_here(message: &str) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code><Message>{message}</Message></Error>"
    )));
    *response.status_mut() = StatusCode::NOT_IMPLEMENTED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

/// A request signed for a service sagedock does not serve, in that protocol's error
/// shape: query-protocol services (form bodies) get XML, the others JSON.
fn unknown_service<B>(req: &Request<B>, name: &str) -> Response<Body> {
    let message = format!("sagedock serves SageMaker, sagemaker-runtime, S3, STS (GetCallerIdentity) and CloudWatch Logs (reading) on this port, not the {name} service.");
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let (body, content_type) = if form {
        (
            format!("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{message}</Message></Error></ErrorResponse>"),
            "text/xml",
        )
    } else {
        (
            serde_json::json!({"__type": "UnknownOperationException", "message": message})
                .to_string(),
            "application/x-amz-json-1.1",
        )
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static("UnknownOperationException"),
    );
    response
}

fn is_control<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST
        && req.uri().path() == "/"
        && req.headers().contains_key("x-amz-target")
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

/// A path sagedock does not serve.
fn not_found(path: &str) -> Response<Body> {
    let body = serde_json::json!({
        "message": format!("sagedock serves POST / (SageMaker API, X-Amz-Target), POST /endpoints/NAME/invocations, POST /endpoints/NAME/async-invocations, POST /endpoints/NAME/invocations-response-stream, GET /ping, GET /metrics and (`sagedock up`) the dashboard at GET /; not {path}")
    });
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static("UnknownOperationException"),
    );
    response
}

/// Logs a panic as one line (no backtrace, whatever RUST_BACKTRACE says): a request that
/// panics is answered with a 500, and a flood of such requests must not flood the log.
pub fn log_panics_in_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!("sagedock panicked{at}: {message}");
    }));
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
