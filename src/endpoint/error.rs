//! The runtime API's errors, typed, and turned into responses in exactly one place
//! ([`ApiError::into_response`]): sagemaker-runtime speaks rest-json, so the error code
//! travels in the `x-amzn-ErrorType` header and the members in a JSON body.

use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::{full, Body};

/// An answer that is not the model's own.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400 ValidationError: bad input, or an endpoint, variant or model that is not there.
    /// Some carry SageMaker's `ErrorCode`.
    Validation {
        message: String,
        code: Option<&'static str>,
    },
    /// 400 ValidationError for a body over the limit: the rest of the body is not read,
    /// so the connection is closed after the answer.
    PayloadTooLarge(String),
    /// 424 ModelError: the container answered an error, timed out or broke off.
    Model {
        client_error: bool,
        message: String,
        original_status: u16,
        original_message: String,
        log_stream_arn: String,
    },
    /// 429 ModelNotReadyException: a multi-model endpoint's model is still loading.
    ModelNotReady(String),
    /// 500 InternalFailure: sagedock itself failed.
    Internal(String),
    /// 503 ServiceUnavailable: no instance of the endpoint can take the call now.
    Unavailable(String),
    /// 400 ThrottlingException: a serverless variant has MaxConcurrency calls in flight.
    Throttling(String),
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::Validation {
            message: message.into(),
            code: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. }
            | ApiError::PayloadTooLarge(_)
            | ApiError::Throttling(_) => StatusCode::BAD_REQUEST,
            ApiError::Model { .. } => StatusCode::FAILED_DEPENDENCY,
            ApiError::ModelNotReady(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code AWS puts in `x-amzn-ErrorType`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } | ApiError::PayloadTooLarge(_) => "ValidationError",
            ApiError::Model { .. } => "ModelError",
            ApiError::ModelNotReady(_) => "ModelNotReadyException",
            ApiError::Internal(_) => "InternalFailure",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Throttling(_) => "ThrottlingException",
        }
    }

    /// The model's status as metrics count it (0: it never answered).
    pub fn model_status(&self) -> u16 {
        match self {
            ApiError::Model {
                original_status, ..
            } => *original_status,
            _ => 0,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::Validation { message, .. }
            | ApiError::PayloadTooLarge(message)
            | ApiError::Model { message, .. }
            | ApiError::ModelNotReady(message)
            | ApiError::Internal(message)
            | ApiError::Unavailable(message)
            | ApiError::Throttling(message) => message,
        }
    }

    /// The response: status, `x-amzn-ErrorType`, JSON members.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let code = self.code();
        let close = matches!(self, ApiError::PayloadTooLarge(_));
        let body = match self {
            ApiError::Validation {
                message,
                code: Some(error_code),
            } => json!({ "ErrorCode": error_code, "Message": message }),
            ApiError::Model {
                client_error,
                message,
                original_status,
                original_message,
                log_stream_arn,
            } => json!({
                "ErrorCode": if client_error { "CLIENT_ERROR_FROM_MODEL" } else { "SERVER_ERROR_FROM_MODEL" },
                "LogStreamArn": log_stream_arn,
                "Message": message,
                "OriginalMessage": original_message,
                "OriginalStatusCode": original_status,
            }),
            other => json!({ "Message": other.message() }),
        };
        let mut response = Response::new(full(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
        if close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(e: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let code = response.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .to_string();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, code, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn each_error_has_its_aws_shape() {
        let (status, code, json) = body(ApiError::validation("nope")).await;
        assert_eq!((status.as_u16(), code.as_str()), (400, "ValidationError"));
        assert_eq!(json, serde_json::json!({"Message": "nope"}));
        let (status, code, json) = body(ApiError::Model {
            client_error: true,
            message: "m".into(),
            original_status: 415,
            original_message: "o".into(),
            log_stream_arn: "arn".into(),
        })
        .await;
        assert_eq!((status.as_u16(), code.as_str()), (424, "ModelError"));
        assert_eq!(json["OriginalStatusCode"], 415);
        assert_eq!(json["ErrorCode"], "CLIENT_ERROR_FROM_MODEL");
        let (status, code, _) = body(ApiError::Unavailable("x".into())).await;
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (503, "ServiceUnavailable")
        );
        let response = ApiError::PayloadTooLarge("big".into()).into_response();
        assert_eq!(response.headers()["connection"], "close");
    }
}
