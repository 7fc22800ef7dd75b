//! Which AWS service a request on the one port is for.
//!
//! Every signed request names its service: SigV4's credential scope
//! (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`, in the `Authorization` header or,
//! for presigned URLs, the `X-Amz-Credential` query parameter), and SigV2 is S3's alone.
//! That is what decides, never the path: an S3 bucket named `endpoints`, `ping` or
//! `metrics` is S3's when the request is signed for S3. An unsigned request is S3's only
//! when it does not ask for one of sagedock's own paths.
//!
//! Does not: check the signature (S3 does, for its requests).

use hyper::Request;

/// The service a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// The SageMaker API or sagemaker-runtime (both sign as `sagemaker`).
    SageMaker,
    S3,
    Sts,
    Logs,
    /// A service sagedock does not serve, by its signing name.
    Other(String),
    /// No signature: sagedock's own paths (`/ping`, `/metrics`) and unsigned clients.
    Unsigned,
}

impl Service {
    /// The service `req` is signed for.
    pub fn of<B>(req: &Request<B>) -> Service {
        if let Some(auth) = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if auth.starts_with("AWS ") {
                return Service::S3;
            }
            if let Some(name) = scope_service(auth, "Credential=") {
                return Service::named(name);
            }
        }
        if let Some(query) = req.uri().query() {
            if query.contains("AWSAccessKeyId=") && query.contains("Signature=") {
                return Service::S3;
            }
            let presigned = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))
                .map(|scope| scope.replace("%2F", "/").replace("%2f", "/"));
            if let Some(service) = presigned.and_then(|s| scope_service(&s, "").map(Service::named))
            {
                return service;
            }
        }
        Service::Unsigned
    }

    fn named(name: &str) -> Service {
        match name {
            "sagemaker" => Service::SageMaker,
            "s3" => Service::S3,
            "sts" => Service::Sts,
            "logs" => Service::Logs,
            other => Service::Other(other.chars().take(64).collect()),
        }
    }
}

/// The service part of a credential scope found after `marker` in `text`.
fn scope_service<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let scope = text[start..].split([',', ' ', '&']).next()?;
    let mut parts = scope.split('/');
    let (_key, _date, _region) = (parts.next()?, parts.next()?, parts.next()?);
    let service = parts.next()?;
    (parts.next() == Some("aws4_request")).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(service: &str) -> Request<()> {
        Request::builder()
            .uri("/endpoints/x")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=AKIA/20261130/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
            )
            .body(())
            .unwrap()
    }

    #[test]
    fn the_credential_scope_names_the_service_whatever_the_path() {
        assert_eq!(Service::of(&signed("s3")), Service::S3);
        assert_eq!(Service::of(&signed("sagemaker")), Service::SageMaker);
        assert_eq!(Service::of(&signed("sts")), Service::Sts);
        assert_eq!(Service::of(&signed("logs")), Service::Logs);
        assert_eq!(
            Service::of(&signed("dynamodb")),
            Service::Other("dynamodb".into())
        );
    }

    #[test]
    fn presigned_urls_and_sigv2_are_recognised() {
        let presigned = Request::builder()
            .uri("/ping?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=sagedock%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab")
            .body(())
            .unwrap();
        assert_eq!(Service::of(&presigned), Service::S3);
        let v2 = Request::builder()
            .uri("/metrics")
            .header("authorization", "AWS sagedock:c2ln")
            .body(())
            .unwrap();
        assert_eq!(Service::of(&v2), Service::S3);
        let v2_query = Request::builder()
            .uri("/b/k?AWSAccessKeyId=sagedock&Expires=1&Signature=x")
            .body(())
            .unwrap();
        assert_eq!(Service::of(&v2_query), Service::S3);
    }

    #[test]
    fn malformed_or_missing_signatures_are_unsigned() {
        for auth in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=",
            "AWS4-HMAC-SHA256 Credential=a/b/c/s3",
            "AWS4-HMAC-SHA256 Credential=a/b/c/s3/other",
            "Bearer token",
        ] {
            let req = Request::builder()
                .uri("/")
                .header("authorization", auth)
                .body(())
                .unwrap();
            assert_eq!(Service::of(&req), Service::Unsigned, "{auth}");
        }
        let plain = Request::builder().uri("/ping").body(()).unwrap();
        assert_eq!(Service::of(&plain), Service::Unsigned);
    }
}
