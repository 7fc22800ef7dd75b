//! Choosing where an invocation goes: the endpoint, its variant (the caller's
//! TargetVariant, else by weight), an instance among those in rotation (as the variant's
//! routing strategy says: at random, or one with the fewest calls in flight with ties
//! broken at random; for multi-model calls one that has the model loaded, when there is
//! one) and
//! the containers the call passes through (all of a pipeline's, or the one a direct
//! invocation names). The request's headers are checked against botocore's model first.

use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderName};
use hyper::Response;

use super::capture::Capture;
use super::error::ApiError;
use super::live::{Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Routing};
use super::multimodel::{self, TargetModel};
use super::{Body, Router};

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
    pub(super) model: Option<TargetModel>,
}

const INVOKED_VARIANT: HeaderName = HeaderName::from_static("x-amzn-invoked-production-variant");
const SAGEDOCK_INSTANCE: HeaderName = HeaderName::from_static("x-sagedock-instance");

impl Target {
    pub(super) fn variant(&self) -> &LiveVariant {
        &self.endpoint.variants[self.variant]
    }

    fn instance(&self) -> &LiveInstance {
        &self.variant().instances[self.instance]
    }

    /// The containers the request passes through, in order.
    pub(super) fn chain(&self) -> &[Arc<Backend>] {
        let containers = &self.instance().containers;
        match self.route {
            Route::All => containers,
            Route::One(i) => std::slice::from_ref(&containers[i]),
        }
    }

    /// The instance's first container, which counts the instance's outstanding requests.
    pub(super) fn first(&self) -> &Arc<Backend> {
        &self.instance().containers[0]
    }

    /// The same call on another instance of the variant, one that can take it (for a call
    /// that could not be delivered); `None` when no other is in rotation.
    pub(super) fn elsewhere(&self, tried: &[usize], random: f64) -> Option<Target> {
        let variant = self.variant();
        let instance = pick(&variant.instances, variant.routing, random, |k, _| {
            !tried.contains(&k)
        })?;
        Some(Target {
            endpoint: self.endpoint.clone(),
            variant: self.variant,
            instance,
            route: self.route,
            model: None,
        })
    }

    /// The endpoint's data capture, when it captures.
    pub(super) fn capture(&self) -> Option<&Arc<Capture>> {
        self.endpoint.capture.as_ref()
    }

    pub(super) fn instance_index(&self) -> usize {
        self.instance
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

/// An instance in rotation that `keep` accepts, as `routing` chooses; `random` in [0, 1)
/// picks among equals.
fn pick(
    instances: &[LiveInstance],
    routing: Routing,
    random: f64,
    keep: impl Fn(usize, &LiveInstance) -> bool,
) -> Option<usize> {
    let candidates = || {
        instances
            .iter()
            .enumerate()
            .filter(|(k, i)| keep(*k, i))
            .filter_map(|(k, i)| i.load().map(|load| (k, load)))
    };
    let fewest = match routing {
        Routing::Random => None,
        Routing::LeastOutstandingRequests => Some(candidates().map(|(_, load)| load).min()?),
    };
    let equal = || candidates().filter(|(_, load)| fewest.is_none_or(|f| *load == f));
    let count = equal().count();
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let nth = ((random * count as f64) as usize).min(count.checked_sub(1)?);
    equal().nth(nth).map(|(k, _)| k)
}

impl Router {
    /// Checks the request's headers, then chooses the variant, the instance and the
    /// containers a request goes to. `operation` names the runtime operation whose headers
    /// apply; `request_id` is the request's x-amzn-RequestId (some messages quote it).
    pub(super) fn resolve(
        &self,
        operation: &str,
        name: &str,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Result<Target, ApiError> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        crate::botocore::runtime()
            .check_headers(
                operation,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
            )
            .map_err(|e| ApiError::validation(e.message()))?;
        let Some(endpoint) = self.get(name) else {
            return Err(self.not_found(name));
        };
        if header("x-amzn-sagemaker-inference-component").is_some() {
            return Err(ApiError::validation(format!(
                "Inference Component Name header is not allowed for endpoint {name} of account {}: it has no inference components (sagedock serves models deployed with CreateModel and CreateEndpointConfig, not CreateInferenceComponent).",
                self.account
            )));
        }
        let variant_index =
            self.choose_variant(&endpoint, header("x-amzn-sagemaker-target-variant"))?;
        let variant = &endpoint.variants[variant_index];
        let model = self.target_model(
            name,
            variant,
            header("x-amzn-sagemaker-target-model"),
            request_id,
        )?;
        // A multi-model invocation prefers an instance that has its model loaded.
        let random = self.unit_random();
        let warm = model.as_ref().and_then(|m| {
            pick(&variant.instances, variant.routing, random, |_, i| {
                i.containers
                    .first()
                    .and_then(|b| b.models.as_ref())
                    .is_some_and(|t| t.has(&m.key))
            })
        });
        let Some(instance_index) =
            warm.or_else(|| pick(&variant.instances, variant.routing, random, |_, _| true))
        else {
            return Err(self.unavailable(name, variant));
        };
        let hostname = header("x-amzn-sagemaker-target-container-hostname");
        let route = self.route(name, variant, &variant.instances[instance_index], hostname)?;
        Ok(Target {
            endpoint: endpoint.clone(),
            variant: variant_index,
            instance: instance_index,
            route,
            model,
        })
    }

    /// A multi-model call's TargetModel; the header on any other endpoint is refused.
    fn target_model(
        &self,
        name: &str,
        variant: &LiveVariant,
        target: Option<&str>,
        request_id: &str,
    ) -> Result<Option<TargetModel>, ApiError> {
        match (&variant.models, target) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ApiError::Validation {
                message: format!("Endpoint {name} is not a multi-model endpoint and does not support target model header."),
                code: Some("TARGET_MODEL_HEADER_NOT_SUPPORTED"),
            }),
            (Some(_), None) => Err(ApiError::validation(format!(
                "Request {request_id} is missing a target model header."
            ))),
            (Some(repository), Some(target)) => Ok(Some(TargetModel {
                name: target.to_string(),
                key: multimodel::model_key(target),
                repository: repository.clone(),
            })),
        }
    }

    /// The containers of `instance` the call passes through: all of a pipeline's, the one
    /// a direct invocation's TargetContainerHostname names, or the only one.
    fn route(
        &self,
        name: &str,
        variant: &LiveVariant,
        instance: &LiveInstance,
        hostname: Option<&str>,
    ) -> Result<Route, ApiError> {
        let account = &self.account;
        let refuse = |message: String| Err(ApiError::validation(message));
        match (variant.mode, hostname) {
            (Mode::Direct, Some(host)) => match instance.containers.iter().position(|b| b.hostname == host) {
                Some(i) => Ok(Route::One(i)),
                None => refuse(format!(
                    "The container hostname {host} does not exist on endpoint {name} of account {account}."
                )),
            },
            (Mode::Direct, None) => refuse(format!(
                "Endpoint {name} of account {account} uses direct invocation: specify TargetContainerHostname."
            )),
            (_, Some(_)) => refuse(format!(
                "Endpoint {name} of account {account} is not configured for direct invocation: TargetContainerHostname is not allowed."
            )),
            (Mode::Serial, None) => Ok(Route::All),
            (Mode::Single, None) => Ok(Route::One(0)),
        }
    }

    /// The index of the variant a request goes to.
    fn choose_variant(
        &self,
        endpoint: &LiveEndpoint,
        target: Option<&str>,
    ) -> Result<usize, ApiError> {
        if let Some(target) = target {
            return endpoint
                .variants
                .iter()
                .position(|v| v.name == target)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "Variant {target} not found for endpoint {} of account {}.",
                        endpoint.name, self.account
                    ))
                });
        }
        if endpoint.variants.is_empty() {
            return Err(self.not_found(&endpoint.name));
        }
        let total: f64 = endpoint.variants.iter().map(|v| v.weight).sum();
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

    /// ServiceUnavailable: the variant has no instance in rotation.
    pub(super) fn unavailable(&self, name: &str, variant: &LiveVariant) -> ApiError {
        ApiError::Unavailable(format!(
            "Endpoint {name} of account {} has no instance of variant {} that can take the call: {} instance(s), none healthy now; sagedock is replacing them. Try again.",
            self.account,
            variant.name,
            variant.instances.len()
        ))
    }
}
