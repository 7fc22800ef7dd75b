//! InvokeEndpoint: the call forwarded through the chosen containers, and their answer
//! passed back with the headers the sagemaker-runtime API defines — or turned into its
//! error (ModelError, with the container's own status and message).
//!
//! A call that reached no container (the connection was refused: the instance died a
//! moment ago) goes to another instance in rotation; when none is left it fails at once
//! with ServiceUnavailable instead of waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::HeaderMap;
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response};

use super::capture::{Call, Capture};
use super::client::{self, Passed, Undelivered};
use super::error::ApiError;
use super::http1::{Answer, Destination};
use super::live::Backend;
use super::multimodel::{LoadError, Ready, TargetModel};
use super::route::Target;
use super::serverless::Admission;
use super::{Body, RequestBody, Router, INVOCATION_TIMEOUT};

/// The caller's InferenceId.
const INFERENCE_ID: &str = "x-amzn-sagemaker-inference-id";

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What became of a call through a chain of containers.
pub(super) enum Outcome {
    /// The last container answered (or one in the chain failed): the response and the
    /// model's status (0 when it never answered).
    Answered(Response<Body>, u16),
    /// The first container could not be reached: nothing was delivered.
    NotDelivered(String),
}

impl Router {
    /// Handles InvokeEndpoint for `name`.
    pub async fn invoke<B: RequestBody>(
        &self,
        name: &str,
        req: Request<B>,
        request_id: &str,
    ) -> Response<Body> {
        let t0 = Instant::now();
        let (parts, body) = req.into_parts();
        let (mut target, _admitted) =
            match self.admitted_target(name, &parts.headers, request_id).await {
                Ok(t) => t,
                Err(e) => return e.into_response(),
            };
        let payload = match Self::payload(body).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let mut tried = Vec::new();
        loop {
            let (outcome, started) = self.attempt(name, &target, &parts.headers, &payload).await;
            match outcome {
                Outcome::Answered(mut response, status) => {
                    let series = &target.variant().series;
                    series.record(status, started.elapsed(), t0.elapsed());
                    if let Some(capture) = target
                        .capture()
                        .filter(|c| (200..300).contains(&status) && c.samples(self.unit_random()))
                    {
                        let variant = &target.variant().name;
                        response = self
                            .capture_call(capture, variant, &parts.headers, &payload, response)
                            .await;
                    }
                    target.label(&mut response);
                    return response;
                }
                Outcome::NotDelivered(detail) => {
                    tracing::info!(
                        endpoint = name,
                        container = target.first().name,
                        detail,
                        "call not delivered; trying another instance"
                    );
                    tried.push(target.instance_index());
                    let Some(next) = target.elsewhere(&tried, self.unit_random()) else {
                        target
                            .variant()
                            .series
                            .record(0, Duration::ZERO, t0.elapsed());
                        let mut response = self.unavailable(name, target.variant()).into_response();
                        target.label(&mut response);
                        return response;
                    };
                    target = next;
                }
            }
        }
    }

    /// Where the call goes. A serverless variant first admits it (ThrottlingException
    /// past MaxConcurrency) and, when no instance is warm, waits for a cold start (recorded
    /// as ModelSetupTime) and resolves again; any other call resolves once.
    async fn admitted_target(
        &self,
        name: &str,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Result<(Target, Option<Admission>), ApiError> {
        let resolved = self.resolve("InvokeEndpoint", name, headers, request_id);
        let serverless = match &resolved {
            Ok(target) => target.variant().serverless.clone(),
            // Serverless endpoints have one variant; none warm is a cold start.
            Err(ApiError::Unavailable(_)) => self
                .get(name)
                .and_then(|e| e.variants.first()?.serverless.clone()),
            Err(_) => None,
        };
        let Some(serverless) = serverless else {
            return resolved.map(|target| (target, None));
        };
        let admission = serverless.admit(name)?;
        if let Ok(target) = resolved {
            return Ok((target, Some(admission)));
        }
        let took = serverless.warm_up().await.map_err(|e| {
            ApiError::Unavailable(format!(
                "Endpoint {name} of account {} could not start a serverless instance: {e}",
                self.account
            ))
        })?;
        let target = self.resolve("InvokeEndpoint", name, headers, request_id)?;
        if let Some(took) = took {
            target.variant().series.record_setup(took);
        }
        Ok((target, Some(admission)))
    }

    /// Records a captured call: the model's answer is read whole (it is at most
    /// InvokeEndpoint's 6 MB), recorded, and passed on.
    async fn capture_call(
        &self,
        capture: &Capture,
        variant: &str,
        headers: &HeaderMap,
        payload: &Bytes,
        response: Response<Body>,
    ) -> Response<Body> {
        let (parts, body) = response.into_parts();
        let output = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return ApiError::Internal(format!("The model's answer broke off: {e}"))
                    .into_response()
            }
        };
        let call = Call {
            variant,
            input_type: header_text(headers, "content-type"),
            input: payload,
            output_type: header_text(&parts.headers, "content-type"),
            output: &output,
            inference_id: header_text(headers, INFERENCE_ID),
        };
        capture.record(&call, self.unit_random().to_bits());
        Response::from_parts(parts, super::full(output))
    }

    /// One try on the target's instance (counted in its outstanding requests); the
    /// outcome, and when the model's time began (after a multi-model load).
    async fn attempt(
        &self,
        name: &str,
        target: &Target,
        headers: &HeaderMap,
        payload: &Bytes,
    ) -> (Outcome, Instant) {
        let first = target.first().clone();
        first.outstanding.fetch_add(1, Ordering::Relaxed);
        let mut started = Instant::now();
        let outcome = match &target.model {
            Some(model) => {
                let run = self
                    .run_model(name, target, model, headers, payload.clone(), &mut started)
                    .await;
                match run {
                    Ok((response, status)) => Outcome::Answered(response, status),
                    Err(e) => {
                        let status = e.model_status();
                        Outcome::Answered(e.into_response(), status)
                    }
                }
            }
            None => {
                let chain = target.chain();
                self.run_chain(name, chain, headers, payload.clone(), INVOCATION_TIMEOUT)
                    .await
            }
        };
        first.outstanding.fetch_sub(1, Ordering::Relaxed);
        (outcome, started)
    }

    /// Invokes a multi-model endpoint's TargetModel: loads it into the instance first when
    /// it is not loaded (`started` is moved past the wait for the load), and once more when
    /// the container says it no longer has it. Returns the answer and the model's status.
    pub(super) async fn run_model(
        &self,
        name: &str,
        target: &Target,
        model: &TargetModel,
        headers: &HeaderMap,
        payload: Bytes,
        started: &mut Instant,
    ) -> Result<(Response<Body>, u16), ApiError> {
        let backend = target.first();
        let Some(table) = &backend.models else {
            return Err(self.not_found(name));
        };
        for attempt in 0..2 {
            let ready = table
                .ensure(&backend.name, backend.addr, model, self.model_load_wait)
                .await;
            match ready {
                Ok(Some(Ready::Hit)) => {
                    target.variant().series.record_model_load(None);
                }
                Ok(Some(Ready::Loaded(waited))) => {
                    target.variant().series.record_model_load(Some(waited));
                    *started = Instant::now();
                }
                Ok(None) => {
                    return Err(ApiError::ModelNotReady(format!(
                        "Model {} is still being loaded on endpoint {name} (waited {} s); try again.",
                        model.name,
                        self.model_load_wait.as_secs()
                    )));
                }
                Err(LoadError::Data(message)) => return Err(ApiError::validation(message)),
                Err(LoadError::Container(status, text)) => {
                    return Err(self.model_error(name, backend, status, text))
                }
                Err(LoadError::Unreachable(detail)) => {
                    return Err(self.model_error(name, backend, 0, detail))
                }
                Err(LoadError::Internal(detail)) => {
                    return Err(ApiError::Internal(format!(
                        "sagedock could not stage model {}: {detail}",
                        model.name
                    )));
                }
            }
            let path: PathAndQuery = format!("/models/{}/invoke", model.key)
                .parse()
                .map_err(|_| self.not_found(name))?;
            let to = Destination::new(backend.addr, &path);
            let answer = client::invoke(&to, headers, &payload, INVOCATION_TIMEOUT)
                .await
                .map_err(|failed| self.model_error(name, backend, 0, failed.detail()))?;
            let status = answer.status.as_u16();
            if status == 404 && attempt == 0 {
                // Unloaded behind sagedock's back (or the container restarted): load again.
                table.forget(&model.key);
                continue;
            }
            return Ok((self.answer(name, backend, answer), status));
        }
        Err(self.not_found(name))
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
    ) -> Outcome {
        match client::through(chain, headers, payload, timeout).await {
            Passed::Answered { index, answer } => {
                let status = answer.status.as_u16();
                Outcome::Answered(self.answer(name, &chain[index], answer), status)
            }
            Passed::Undelivered {
                index: 0,
                why: Undelivered::NotSent(detail),
            } => Outcome::NotDelivered(detail),
            Passed::Undelivered { index, why } => {
                let Some(backend) = chain.get(index) else {
                    return Outcome::Answered(self.not_found(name).into_response(), 0);
                };
                let error = self.model_error(name, backend, 0, why.detail());
                Outcome::Answered(error.into_response(), 0)
            }
        }
    }

    /// The container's answer as the API's: a 2xx passes through with its Content-Type
    /// and custom attributes; anything else is a ModelError.
    pub(super) fn answer(&self, name: &str, backend: &Backend, answer: Answer) -> Response<Body> {
        if !answer.status.is_success() {
            let text = String::from_utf8_lossy(&answer.body).into_owned();
            return self
                .model_error(name, backend, answer.status.as_u16(), text)
                .into_response();
        }
        let mut out = Response::new(super::full(answer.body));
        let headers = out.headers_mut();
        if let Some(value) = answer.content_type {
            headers.insert(hyper::header::CONTENT_TYPE, value);
        }
        if let Some(value) = answer.custom_attributes {
            headers.insert("x-amzn-sagemaker-custom-attributes", value);
        }
        out
    }

    /// ModelError (424), as SageMaker reports a container's failure; its LogStreamArn
    /// names the container's stream.
    pub(super) fn model_error(
        &self,
        name: &str,
        backend: &Backend,
        status: u16,
        original: String,
    ) -> ApiError {
        let client_error = (400..500).contains(&status);
        let kind = if client_error { "client" } else { "server" };
        let container = backend.label();
        let group = crate::logs::endpoint_group(name);
        let stream = if backend.log_stream.is_empty() {
            String::new()
        } else {
            format!(":log-stream:{}", backend.log_stream)
        };
        ApiError::Model {
            client_error,
            message: format!(
                "Received {kind} error ({status}) from {container} with message \"{original}\". See `sagedock logs {name}` (CloudWatch log group {group} in account {}) for more information.",
                self.account
            ),
            original_status: status,
            original_message: original,
            log_stream_arn: format!(
                "arn:aws:logs:{}:{}:log-group:{group}{stream}",
                self.region, self.account
            ),
        }
    }
}
