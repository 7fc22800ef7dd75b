//! The HTTP client sagedock talks to containers with: pooled keep-alive connections, one
//! pool per thread (a pooled connection is then driven by the thread that uses it), and
//! the one function that sends a request to a container.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName};
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// The pooled client type.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long connecting to a container may take. Containers are on this machine: a
/// connection that takes longer is to an address nobody answers on any more.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// This thread's client.
pub fn client() -> HttpClient {
    thread_local! {
        static CLIENT: HttpClient = {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(connector)
        };
    }
    CLIENT.with(Clone::clone)
}

/// Request headers SageMaker passes to the container (CONTRACT §1.3).
pub(super) const FORWARDED: [HeaderName; 5] = [
    hyper::header::CONTENT_TYPE,
    hyper::header::ACCEPT,
    HeaderName::from_static("x-amzn-sagemaker-custom-attributes"),
    HeaderName::from_static("x-amzn-sagemaker-inference-id"),
    // Multi-model endpoints only (the header is refused for the others).
    HeaderName::from_static("x-amzn-sagemaker-target-model"),
];

/// Why a container gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// Nothing reached the container (no connection): the call can go elsewhere.
    NotSent(String),
    /// The request may have reached it, and no answer came.
    NoAnswer(String),
    /// No answer head within the time limit.
    TimedOut(Duration),
}

impl Undelivered {
    /// The text a ModelError carries.
    pub fn detail(&self) -> String {
        match self {
            Undelivered::NotSent(e) | Undelivered::NoAnswer(e) => {
                format!("the container could not be reached ({e})")
            }
            Undelivered::TimedOut(limit) => format!(
                "Your invocation timed out while waiting for a response from container primary. Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again. (limit: {} s)",
                limit.as_secs()
            ),
        }
    }
}

/// Sends one POST to `uri` with the forwarded headers, waiting at most `timeout` for the
/// answer's head.
pub async fn post(
    uri: hyper::Uri,
    headers: &HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Result<Response<Incoming>, Undelivered> {
    let mut out = Request::post(uri);
    for name in FORWARDED {
        if let Some(value) = headers.get(&name) {
            out = out.header(name, value);
        }
    }
    let out = out
        .body(Full::new(payload))
        .map_err(|e| Undelivered::NotSent(e.to_string()))?;
    match tokio::time::timeout(timeout, client().request(out)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) if e.is_connect() => Err(Undelivered::NotSent(e.to_string())),
        Ok(Err(e)) => Err(Undelivered::NoAnswer(e.to_string())),
        Err(_) => Err(Undelivered::TimedOut(timeout)),
    }
}

/// What became of a request sent through a chain of containers (one, or a pipeline).
pub enum Passed {
    /// Container `index` answered: the last one, or one before it that failed (not 2xx).
    Answered {
        index: usize,
        response: Response<Incoming>,
    },
    /// Container `index` gave no answer (at index 0 with [`Undelivered::NotSent`],
    /// nothing was delivered).
    Undelivered { index: usize, why: Undelivered },
}

/// Sends `payload` through `chain` (not empty): each answer becomes the next request, with
/// its Content-Type; each container has `timeout` for its answer's head.
pub async fn through(
    chain: &[std::sync::Arc<super::Backend>],
    headers: &HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Passed {
    use http_body_util::BodyExt;
    // Only a pipeline changes the headers between containers.
    let mut headers = std::borrow::Cow::Borrowed(headers);
    let mut payload = payload;
    let mut index = 0;
    loop {
        let Some(backend) = chain.get(index) else {
            return Passed::Undelivered {
                index,
                why: Undelivered::NotSent("no container to send to".into()),
            };
        };
        let response = match post(backend.invocations.clone(), &headers, payload, timeout).await {
            Ok(response) => response,
            Err(why) => return Passed::Undelivered { index, why },
        };
        if index + 1 >= chain.len() || !response.status().is_success() {
            return Passed::Answered { index, response };
        }
        if let Some(content_type) = response.headers().get(hyper::header::CONTENT_TYPE) {
            headers
                .to_mut()
                .insert(hyper::header::CONTENT_TYPE, content_type.clone());
        }
        payload = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                return Passed::Undelivered {
                    index,
                    why: Undelivered::NoAnswer(e.to_string()),
                }
            }
        };
        index += 1;
    }
}
