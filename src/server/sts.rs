//! STS on sagedock's port: `GetCallerIdentity`, answering with the account sagedock runs
//! as (`--account`), for code that asks who it is before it names a bucket or a role.
//!
//! STS speaks AWS's query protocol: form-encoded `Action=…` in, XML out.
//!
//! Does not: issue credentials (AssumeRole and the rest are "not implemented", in STS's
//! error shape).

use http_body_util::{BodyExt, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::http::percent_decode;
use crate::http::{full, Body, RequestBody};

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Answers one STS request as `account`.
pub async fn handle<B: RequestBody>(
    req: Request<B>,
    account: &str,
    request_id: &str,
) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_string();
    let access_key = access_key(&req);
    let body = match Limited::new(req.into_body(), 64 << 10).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                "The request body is over 64 KiB.",
                request_id,
            )
        }
    };
    let form = String::from_utf8_lossy(&body);
    let action = [form.as_ref(), query.as_str()]
        .into_iter()
        .flat_map(|text| text.split('&'))
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(|a| percent_decode(a).into_owned());
    match action.as_deref() {
        Some("GetCallerIdentity") => xml(
            StatusCode::OK,
            format!(
                "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\"><GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/sagedock</Arn><UserId>{}</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                escape(&access_key)
            ),
        ),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("sagedock's STS implements GetCallerIdentity only, not {other}."),
            request_id,
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "The request names no Action.",
            request_id,
        ),
    }
}

/// The access key id the request was signed with (the caller's "UserId").
fn access_key<B>(req: &Request<B>) -> String {
    req.headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split_once("Credential=")?.1.split('/').next())
        .unwrap_or("sagedock")
        .to_string()
}

fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Body> {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            escape(message)
        ),
    )
}

fn xml(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

/// Text safe inside an XML element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
