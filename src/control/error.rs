//! AWS wire errors, serialised in exactly one place.
//!
//! The control plane speaks AWS JSON 1.1: an error is HTTP 400 (or 5xx) with the body
//! `{"__type": "<code>", "message": "<text>"}`; botocore reads the code from `__type`.
//! The runtime API (rest-json) also sends the code in the `x-amzn-ErrorType` header.

use serde_json::json;

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

    /// An operation sagedock does not implement.
    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            "UnknownOperationException",
            400,
            format!("sagedock does not implement {target}; it serves the SageMaker hosting operations (models, endpoint configs, endpoints, tags)"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalFailure", 500, message)
    }

    /// The AWS JSON 1.1 body.
    pub fn json_body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({ "__type": self.code, "message": self.message }))
            .expect("serialisable")
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<super::store::StoreError> for AwsError {
    fn from(e: super::store::StoreError) -> Self {
        AwsError::internal(e.to_string())
    }
}
