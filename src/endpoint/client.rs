//! How sagedock talks to containers: invocations through its own HTTP/1.1 client
//! ([`invoke`], [`through`]: a whole answer, the calling task driving the connection),
//! streamed answers and every other request through hyper's pooled client ([`client`]:
//! one pool per thread, so a pooled connection is driven by the thread that uses it).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName};
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::http1::{self, Answer, Destination, Failed};

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
pub(super) static FORWARDED: [HeaderName; 5] = [
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
    /// No answer within the time limit.
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

/// Sends one invocation to a container with the forwarded headers (sagedock's own
/// HTTP/1.1 client, [`super::http1`]), waiting at most `timeout` for the whole answer.
pub async fn invoke(
    to: &Destination,
    headers: &HeaderMap,
    payload: &Bytes,
    timeout: Duration,
) -> Result<Answer, Undelivered> {
    let forwarded = FORWARDED
        .iter()
        .filter_map(|name| headers.get(name).map(|value| (name, value)));
    match tokio::time::timeout(timeout, http1::post(to, forwarded, payload)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(Failed::Connect(e))) => Err(Undelivered::NotSent(e.to_string())),
        Ok(Err(Failed::Lost(detail))) => Err(Undelivered::NoAnswer(detail)),
        Err(_) => Err(Undelivered::TimedOut(timeout)),
    }
}

/// Sends one POST to `/invocations` on the container at `addr` with the forwarded headers
/// through hyper's client, waiting at most `timeout` for the answer's head; its body is
/// read as it arrives (a streamed answer).
pub async fn post_streaming(
    addr: std::net::SocketAddr,
    headers: &HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Result<Response<Incoming>, Undelivered> {
    let mut out = Request::post(format!("http://{addr}/invocations"));
    for name in &FORWARDED {
        if let Some(value) = headers.get(name) {
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
    Answered { index: usize, answer: Answer },
    /// Container `index` gave no answer (at index 0 with [`Undelivered::NotSent`],
    /// nothing was delivered).
    Undelivered { index: usize, why: Undelivered },
}

/// Sends `payload` through `chain` (not empty): each answer becomes the next request, with
/// its Content-Type; each container has `timeout` for its answer.
pub async fn through(
    chain: &[std::sync::Arc<super::Backend>],
    headers: &HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Passed {
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
        let answer = match invoke(&backend.invocations, &headers, &payload, timeout).await {
            Ok(answer) => answer,
            Err(why) => return Passed::Undelivered { index, why },
        };
        if index + 1 >= chain.len() || !answer.status.is_success() {
            return Passed::Answered { index, answer };
        }
        if let Some(content_type) = answer.content_type {
            headers
                .to_mut()
                .insert(hyper::header::CONTENT_TYPE, content_type);
        }
        payload = answer.body;
        index += 1;
    }
}
