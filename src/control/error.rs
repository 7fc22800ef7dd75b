//! The control plane's errors, in AWS's wire shape, serialised in exactly one place
//! ([`AwsError::into_response`]).
//!
//! The control plane speaks AWS JSON 1.1: an error is HTTP 400 (or 5xx) with the body
//! `{"__type": "<code>", "message": "<text>"}`; botocore reads the code from `__type`.

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::botocore::Invalid;
use crate::http::{full, Body};
use crate::state::StoreError;

/// An error as AWS sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl AwsError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        AwsError {
            code,
            message: message.into(),
            status,
        }
    }

    /// `ValidationException` (400): bad input or a missing resource, as SageMaker answers both.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", 400, message)
    }

    /// `ResourceLimitExceeded` (400): more instances than this machine runs.
    pub fn resource_limit(message: impl Into<String>) -> Self {
        Self::new("ResourceLimitExceeded", 400, message)
    }

    /// `ResourceInUse` (400): a name already taken (training jobs).
    pub fn resource_in_use(message: impl Into<String>) -> Self {
        Self::new("ResourceInUse", 400, message)
    }

    /// `ResourceNotFound` (400): no such resource (tuning jobs).
    pub fn resource_not_found(message: impl Into<String>) -> Self {
        Self::new("ResourceNotFound", 400, message)
    }

    /// `SerializationException` (400): a body that is not the operation's JSON.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", 400, message)
    }

    /// An operation sagedock does not implement.
    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            "UnknownOperationException",
            400,
            format!("sagedock does not implement {target}; it serves the SageMaker hosting operations (models, endpoint configs, endpoints, tags), training jobs and hyperparameter tuning jobs"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalFailure", 500, message)
    }

    /// The response: status, AWS JSON 1.1 body.
    pub fn into_response(self) -> Response<Body> {
        let body = json!({ "__type": self.code, "message": self.message });
        let mut response = Response::new(full(body.to_string()));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        response
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AwsError {}

impl From<StoreError> for AwsError {
    fn from(e: StoreError) -> Self {
        AwsError::internal(e.to_string())
    }
}

impl From<Invalid> for AwsError {
    fn from(e: Invalid) -> Self {
        match e {
            Invalid::Serialization(message) => AwsError::serialization(message),
            constraints @ Invalid::Constraints(_) => AwsError::validation(constraints.message()),
        }
    }
}
