//! InvokeEndpointAsync: the input (InputLocation, or the body) is queued and the call
//! answers 202 at once with the InferenceId and the output and failure locations. A
//! request leaves the queue when the endpoint has room (`MaxConcurrentInvocationsPerInstance`
//! per instance), or expires after `RequestTTLSeconds`; it may run for
//! `InvocationTimeoutSeconds`. The answer is written to the output location, an error to
//! the failure location.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::error::ApiError;
use super::invoke::Outcome;
use super::{Body, RequestBody, Router};
use crate::storage::{S3Location, Storage};

pub(super) mod queue;
pub use queue::{AsyncOutput, AsyncQueue, DEFAULT_PER_INSTANCE};

/// RequestTTLSeconds when the caller gives none (6 hours; botocore's model bounds it).
const DEFAULT_TTL: u64 = 21_600;
/// InvocationTimeoutSeconds when the caller gives none (15 minutes).
const DEFAULT_TIMEOUT: u64 = 900;

/// An integer header botocore's model has checked already.
fn seconds(headers: &HeaderMap, name: &str, default: u64) -> Duration {
    let value = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Duration::from_secs(value)
}

/// Where one asynchronous request's result and error go.
struct Locations {
    output: S3Location,
    failure: S3Location,
}

impl Locations {
    /// `<output path>/<extension>/<file name>` and the failure location beside the failure
    /// path (or, with none configured, beside the output); each checked writable.
    fn of(
        output: &AsyncOutput,
        headers: &HeaderMap,
        id: &str,
        storage: &Storage,
    ) -> Result<Locations, ApiError> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let extension = header("x-amzn-sagemaker-s3outputpathextension")
            .map(|e| e.trim_matches('/'))
            .filter(|e| !e.is_empty());
        let under = |base: &S3Location, file: &str| {
            let relative = match extension {
                Some(ext) => format!("{ext}/{file}"),
                None => file.to_string(),
            };
            base.join(&relative)
                .map_err(|e| ApiError::validation(e.to_string()))
        };
        let file =
            header("x-amzn-sagemaker-filename").map_or_else(|| format!("{id}.out"), str::to_string);
        let locations = Locations {
            output: under(&output.output_path, &file)?,
            failure: under(
                output.failure_path.as_ref().unwrap_or(&output.output_path),
                &format!("{id}-error.out"),
            )?,
        };
        for location in [&locations.output, &locations.failure] {
            storage.check_writable(location).map_err(|e| {
                ApiError::validation(format!(
                    "The result of this request could not be written: {e}"
                ))
            })?;
        }
        Ok(locations)
    }
}

/// What the container gets: the asynchronous API's own header names mapped to the ones
/// InvokeEndpoint forwards, and the InferenceId.
fn container_headers(request: &HeaderMap, id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (from, to) in [
        ("x-amzn-sagemaker-content-type", CONTENT_TYPE.as_str()),
        ("x-amzn-sagemaker-accept", "accept"),
        (
            "x-amzn-sagemaker-custom-attributes",
            "x-amzn-sagemaker-custom-attributes",
        ),
    ] {
        if let Some(value) = request.get(from) {
            if let Ok(name) = HeaderName::from_bytes(to.as_bytes()) {
                headers.insert(name, value.clone());
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert("x-amzn-sagemaker-inference-id", value);
    }
    headers
}

/// The 202: the InferenceId, and where the result and an error will be.
fn accepted(id: &str, locations: &Locations) -> Response<Body> {
    let mut response = Response::new(super::full(json!({ "InferenceId": id }).to_string()));
    *response.status_mut() = StatusCode::ACCEPTED;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (header, location) in [
        ("x-amzn-sagemaker-outputlocation", &locations.output),
        ("x-amzn-sagemaker-failurelocation", &locations.failure),
    ] {
        if let Ok(value) = HeaderValue::from_str(&location.to_string()) {
            h.insert(header, value);
        }
    }
    response
}

impl Router {
    /// Handles InvokeEndpointAsync for `name`.
    pub async fn invoke_async<B: RequestBody>(
        self: &Arc<Self>,
        name: &str,
        req: Request<B>,
        request_id: &str,
    ) -> Response<Body> {
        match self.enqueue(name, req, request_id).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn enqueue<B: RequestBody>(
        self: &Arc<Self>,
        name: &str,
        req: Request<B>,
        request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let target = self.resolve("InvokeEndpointAsync", name, &parts.headers, request_id)?;
        let Some(output) = self.get(name).and_then(|e| e.async_output.clone()) else {
            return Err(ApiError::validation(format!(
                "Endpoint {name} of account {} is not configured for asynchronous inference (AsyncInferenceConfig).",
                self.account
            )));
        };
        let ttl = seconds(
            &parts.headers,
            "x-amzn-sagemaker-requestttlseconds",
            DEFAULT_TTL,
        );
        let timeout = seconds(
            &parts.headers,
            "x-amzn-sagemaker-invocationtimeoutseconds",
            DEFAULT_TIMEOUT,
        );
        let inline = Self::payload(body).await?;
        let payload = match header("x-amzn-sagemaker-inputlocation") {
            Some(location) => {
                let input = S3Location::parse(&location).map_err(|e| {
                    ApiError::validation(format!(
                        "InputLocation must be an s3:// URI of an object: {e}"
                    ))
                })?;
                self.storage.read(&input).await.map_err(|e| {
                    ApiError::validation(format!("Could not read InputLocation {location}: {e}"))
                })?
            }
            None => inline,
        };
        let id = header("x-amzn-sagemaker-inference-id").unwrap_or_else(|| self.next_id());
        let locations = Locations::of(&output, &parts.headers, &id, &self.storage)?;
        let headers = container_headers(&parts.headers, &id);
        let response = accepted(&id, &locations);
        let job = Job {
            router: self.clone(),
            endpoint: name.to_string(),
            id,
            target,
            headers,
            payload,
            ttl,
            timeout,
            locations,
            queue: output.queue.clone(),
        };
        tokio::spawn(job.run());
        Ok(response)
    }
}

/// One queued request.
struct Job {
    router: Arc<Router>,
    endpoint: String,
    id: String,
    target: super::route::Target,
    headers: HeaderMap,
    payload: bytes::Bytes,
    ttl: Duration,
    timeout: Duration,
    locations: Locations,
    queue: Arc<AsyncQueue>,
}

/// Leaves the backlog however the job ends (answered, failed, expired, dropped).
struct Leave(Arc<super::metrics::Series>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.backlog(false);
    }
}

impl Job {
    async fn run(self) {
        let series = self.target.variant().series.clone();
        series.backlog(true);
        let _leave = Leave(series);
        let queued = Instant::now();
        let Some(_slot) = self.queue.admit(self.ttl).await else {
            let message = format!(
                "Request {} expired: it waited in the queue of endpoint {} for longer than RequestTTLSeconds ({} s).",
                self.id,
                self.endpoint,
                self.ttl.as_secs()
            );
            self.write(false, message.into()).await;
            return;
        };
        let started = Instant::now();
        let outcome = self
            .router
            .run_chain(
                &self.endpoint,
                self.target.chain(),
                &self.headers,
                self.payload.clone(),
                self.timeout,
            )
            .await;
        let (response, status) = match outcome {
            Outcome::Answered(response, status) => (response, status),
            Outcome::NotDelivered(detail) => {
                let error = self.router.model_error(
                    &self.endpoint,
                    &self.target.chain()[0],
                    0,
                    format!("the container could not be reached ({detail})"),
                );
                (error.into_response(), 0)
            }
        };
        self.target
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
        self.write(ok, bytes).await;
    }

    async fn write(&self, ok: bool, bytes: bytes::Bytes) {
        let location = if ok {
            &self.locations.output
        } else {
            &self.locations.failure
        };
        if let Err(e) = self.router.storage.write(location, bytes).await {
            tracing::warn!(
                endpoint = self.endpoint,
                inference_id = self.id,
                error = %e,
                "could not write the asynchronous inference result"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_join_the_extension_and_default_the_failure_path() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::root(dir.path()).unwrap();
        let output = AsyncOutput {
            output_path: S3Location::parse("s3://bucket/out").unwrap(),
            failure_path: None,
            queue: AsyncQueue::new(1),
        };
        let mut h = HeaderMap::new();
        let l = Locations::of(&output, &h, "id1", &storage).unwrap();
        assert_eq!(l.output.to_string(), "s3://bucket/out/id1.out");
        assert_eq!(l.failure.to_string(), "s3://bucket/out/id1-error.out");
        h.insert(
            "x-amzn-sagemaker-s3outputpathextension",
            HeaderValue::from_static("/x/y/"),
        );
        h.insert(
            "x-amzn-sagemaker-filename",
            HeaderValue::from_static("r.json"),
        );
        let l = Locations::of(&output, &h, "id1", &storage).unwrap();
        assert_eq!(l.output.to_string(), "s3://bucket/out/x/y/r.json");
        h.insert(
            "x-amzn-sagemaker-filename",
            HeaderValue::from_static("../../x"),
        );
        assert!(Locations::of(&output, &h, "id1", &storage).is_err());
        let nowhere = Locations::of(&output, &HeaderMap::new(), "id1", &Storage::None);
        assert!(nowhere.is_err(), "no S3 storage: refused before a 202");
    }
}
