//! InvokeEndpointAsync: the input (InputLocation, or the body) is queued and the call
//! answers 202 at once with the InferenceId and the output and failure locations. A
//! request leaves the queue when the endpoint has room (`MaxConcurrentInvocationsPerInstance`
//! per instance), or expires after `RequestTTLSeconds`; it may run for
//! `InvocationTimeoutSeconds`. The answer is written to the output location, an error to
//! the failure location.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::Semaphore;

use super::router::{validation_error, Router};
use super::Body;

/// RequestTTLSeconds when the caller gives none (6 hours), and its bounds.
const DEFAULT_TTL: u64 = 21_600;
const TTL_RANGE: (u64, u64) = (60, 21_600);
/// InvocationTimeoutSeconds when the caller gives none (15 minutes), and its bounds.
const DEFAULT_TIMEOUT: u64 = 900;
const TIMEOUT_RANGE: (u64, u64) = (1, 3_600);
/// MaxConcurrentInvocationsPerInstance when the endpoint config gives none (SageMaker
/// "chooses an optimal value"; sagedock takes 4).
pub const DEFAULT_PER_INSTANCE: u32 = 4;

/// Where an asynchronous endpoint's results go, and its queue.
#[derive(Debug, Clone)]
pub struct AsyncOutput {
    pub output_path: String,
    pub failure_path: Option<String>,
    pub queue: Arc<AsyncQueue>,
}

/// How many asynchronous requests an endpoint runs at once: per instance times instances.
#[derive(Debug)]
pub struct AsyncQueue {
    slots: Arc<Semaphore>,
    capacity: Mutex<usize>,
    per_instance: usize,
}

impl AsyncQueue {
    /// A queue with no capacity until [`AsyncQueue::resize`].
    pub fn new(per_instance: u32) -> Arc<Self> {
        Arc::new(AsyncQueue {
            slots: Arc::new(Semaphore::new(0)),
            capacity: Mutex::new(0),
            per_instance: per_instance.max(1) as usize,
        })
    }

    /// Sets the capacity for `instances` instances. Shrinking takes effect as running
    /// requests finish.
    pub fn resize(&self, instances: usize) {
        let want = self.per_instance * instances;
        let mut capacity = self.capacity.lock().expect("queue capacity");
        if want > *capacity {
            self.slots.add_permits(want - *capacity);
        } else {
            let mut surplus = *capacity - want;
            surplus -= self.slots.forget_permits(surplus);
            // Permits still in use are given back when their requests end; remove those
            // too, without blocking the caller.
            if surplus > 0 {
                let slots = self.slots.clone();
                tokio::spawn(async move {
                    if let Ok(permits) = slots.acquire_many(surplus as u32).await {
                        permits.forget();
                    }
                });
            }
        }
        *capacity = want;
    }
}

/// An optional integer header within `range`, as SageMaker validates it.
fn int_header(
    headers: &HeaderMap,
    header: &str,
    member: &str,
    (min, max): (u64, u64),
) -> Result<Option<u64>, Box<Response<Body>>> {
    let Some(raw) = headers.get(header) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("");
    let fail = |rule: String| {
        Box::new(validation_error(format!(
            "1 validation error detected: Value '{text}' at '{member}' failed to satisfy constraint: {rule}"
        )))
    };
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| fail("Member must be an integer".into()))?;
    if value < min {
        return Err(fail(format!(
            "Member must have value greater than or equal to {min}"
        )));
    }
    if value > max {
        return Err(fail(format!(
            "Member must have value less than or equal to {max}"
        )));
    }
    Ok(Some(value))
}

/// `base/` + `extension/` (when given).
fn folder(base: &str, extension: Option<&str>) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    out.push('/');
    if let Some(ext) = extension
        .map(|e| e.trim_matches('/'))
        .filter(|e| !e.is_empty())
    {
        out.push_str(ext);
        out.push('/');
    }
    out
}

impl Router {
    /// Handles InvokeEndpointAsync for `name`.
    pub async fn invoke_async(
        self: &Arc<Self>,
        name: &str,
        req: Request<Incoming>,
        request_id: &str,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let Some(output) = self.get(name).and_then(|e| e.async_output.clone()) else {
            return match self.get(name) {
                None => self.not_found(name),
                Some(_) => validation_error(format!(
                    "Endpoint {name} of account {} is not configured for asynchronous inference (AsyncInferenceConfig).",
                    self.account
                )),
            };
        };
        let limits = int_header(
            &parts.headers,
            "x-amzn-sagemaker-requestttlseconds",
            "requestTTLSeconds",
            TTL_RANGE,
        )
        .and_then(|ttl| {
            let timeout = int_header(
                &parts.headers,
                "x-amzn-sagemaker-invocationtimeoutseconds",
                "invocationTimeoutSeconds",
                TIMEOUT_RANGE,
            )?;
            Ok((ttl, timeout))
        });
        let (ttl, timeout) = match limits {
            Ok((ttl, timeout)) => (
                Duration::from_secs(ttl.unwrap_or(DEFAULT_TTL)),
                Duration::from_secs(timeout.unwrap_or(DEFAULT_TIMEOUT)),
            ),
            Err(response) => return *response,
        };
        let target = match self.resolve(name, &parts.headers, request_id) {
            Ok(t) => t,
            Err(response) => return *response,
        };
        let inline = match Self::payload(body).await {
            Ok(p) => p,
            Err(response) => return *response,
        };
        let payload = match header("x-amzn-sagemaker-inputlocation") {
            Some(location) => match self.storage.read(&location).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    return validation_error(format!(
                        "Could not read InputLocation {location}: {e}"
                    ))
                }
            },
            None => inline,
        };
        let id = header("x-amzn-sagemaker-inference-id")
            .unwrap_or_else(|| super::uuid_like(self.unit_random().to_bits()));
        let extension = header("x-amzn-sagemaker-s3outputpathextension");
        let file = header("x-amzn-sagemaker-filename").unwrap_or_else(|| format!("{id}.out"));
        let output_location = folder(&output.output_path, extension.as_deref()) + &file;
        let failure_location = output
            .failure_path
            .as_deref()
            .map(|p| folder(p, extension.as_deref()) + &format!("{id}-error.out"));
        let mut headers = HeaderMap::new();
        for (from, to) in [
            ("x-amzn-sagemaker-content-type", CONTENT_TYPE.as_str()),
            ("x-amzn-sagemaker-accept", "accept"),
            (
                "x-amzn-sagemaker-custom-attributes",
                "x-amzn-sagemaker-custom-attributes",
            ),
        ] {
            if let Some(value) = parts.headers.get(from) {
                if let Ok(name) = HeaderName::from_bytes(to.as_bytes()) {
                    headers.insert(name, value.clone());
                }
            }
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert("x-amzn-sagemaker-inference-id", value);
        }
        let (this, endpoint) = (self.clone(), name.to_string());
        let (out, fail) = (output_location.clone(), failure_location.clone());
        let queued = Instant::now();
        let request = id.clone();
        let series = target.variant().series.clone();
        series.backlog(true);
        tokio::spawn(async move {
            // Leaves the backlog however the task ends (answered, failed, expired, dropped).
            struct Leave(Arc<super::metrics::Series>);
            impl Drop for Leave {
                fn drop(&mut self) {
                    self.0.backlog(false);
                }
            }
            let _leave = Leave(series);
            let write = |ok: bool, bytes: bytes::Bytes| {
                let this = this.clone();
                let (out, fail, endpoint) = (out.clone(), fail.clone(), endpoint.clone());
                async move {
                    let written = match (ok, &fail) {
                        (true, _) => this.storage.write(&out, bytes).await,
                        (false, Some(fail)) => this.storage.write(fail, bytes).await,
                        (false, None) => Ok(()),
                    };
                    if let Err(e) = written {
                        tracing::warn!(endpoint, error = %e, "could not write the asynchronous inference result");
                    }
                }
            };
            let slot = tokio::time::timeout(ttl, output.queue.slots.clone().acquire_owned()).await;
            let Ok(Ok(_slot)) = slot else {
                let message = format!(
                    "Request {request} expired: it waited in the queue of endpoint {endpoint} for longer than RequestTTLSeconds ({} s).",
                    ttl.as_secs()
                );
                write(false, message.into()).await;
                return;
            };
            let started = Instant::now();
            let (response, status) = this
                .run_chain(&endpoint, target.chain(), &headers, payload, timeout)
                .await;
            target
                .variant()
                .series
                .record(status, started.elapsed(), queued.elapsed());
            let ok = response.status().is_success();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            write(ok, bytes).await;
        });
        let mut response = Response::new(super::full(
            serde_json::to_vec(&json!({ "InferenceId": id })).expect("json"),
        ));
        *response.status_mut() = StatusCode::ACCEPTED;
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(value) = HeaderValue::from_str(&output_location) {
            h.insert("x-amzn-sagemaker-outputlocation", value);
        }
        if let Some(value) = failure_location.and_then(|f| HeaderValue::from_str(&f).ok()) {
            h.insert("x-amzn-sagemaker-failurelocation", value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_join_the_extension() {
        assert_eq!(folder("s3://b/out", None), "s3://b/out/");
        assert_eq!(folder("s3://b/out/", Some("/x/y/")), "s3://b/out/x/y/");
        assert_eq!(folder("s3://b/out", Some("")), "s3://b/out/");
    }

    #[test]
    fn integer_headers_are_checked_against_their_bounds() {
        let mut h = HeaderMap::new();
        assert!(int_header(&h, "t", "requestTTLSeconds", TTL_RANGE)
            .unwrap()
            .is_none());
        h.insert("t", HeaderValue::from_static("120"));
        assert_eq!(
            int_header(&h, "t", "requestTTLSeconds", TTL_RANGE).unwrap(),
            Some(120)
        );
        for bad in ["59", "21601", "x"] {
            h.insert("t", HeaderValue::from_static(bad));
            assert!(int_header(&h, "t", "requestTTLSeconds", TTL_RANGE).is_err());
        }
    }

    #[tokio::test]
    async fn the_queue_follows_the_instance_count() {
        let q = AsyncQueue::new(2);
        assert_eq!(q.slots.available_permits(), 0);
        q.resize(3);
        assert_eq!(q.slots.available_permits(), 6);
        let held = q.slots.clone().acquire_many_owned(5).await.unwrap();
        q.resize(1);
        assert_eq!(q.slots.available_permits(), 0);
        drop(held);
        tokio::task::yield_now().await;
        for _ in 0..10 {
            if q.slots.available_permits() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(q.slots.available_permits(), 2);
    }
}
