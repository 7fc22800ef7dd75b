//! The S3 API over the S3 root, on sagedock's port: what the SageMaker SDK, boto3's
//! `upload_file`/`download_file` (multipart included) and `aws s3 cp|ls|sync` send.
//!
//! The protocol is the `s3s` crate's (request parsing, SigV4 and SigV2 checks, chunked
//! and trailer-checksum uploads, multipart, XML errors in S3's shape); objects are kept by
//! `s3s-fs`, as files: `s3://bucket/key` is `<root>/bucket/key`, the same file the rest of
//! sagedock reads for that location, so what a client uploads is what CreateModel finds.
//! s3s-fs writes each object to a temporary file and renames it into place (a reader
//! never sees half an object), keeps object metadata in hidden files at the root, and
//! refuses keys that would leave the root. Requests are path-style, or virtual-host style
//! with the bucket under `localhost` (`http://BUCKET.localhost:9474/key`).
//!
//! Does not: decide which requests are S3's (the server layer does, by signature).

use std::path::Path;

use http_body_util::BodyExt;
use hyper::{Request, Response, StatusCode};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Result};

use super::StorageError;
use crate::credentials::Credentials;
use crate::endpoint::{full, Body, BoxError, RequestBody};

/// The domain virtual-host style requests name buckets under.
pub const VIRTUAL_HOST_DOMAIN: &str = "localhost";

/// The S3 API over one root.
#[derive(Clone)]
pub struct S3Api {
    service: S3Service,
}

impl std::fmt::Debug for S3Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Api").finish_non_exhaustive()
    }
}

impl S3Api {
    /// The API over `root` (an existing folder), accepting requests signed with
    /// `credentials`.
    pub fn new(root: &Path, credentials: Credentials) -> Result<S3Api, StorageError> {
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| StorageError::Io {
            location: "the S3 API".into(),
            path: root.to_path_buf(),
            source: std::io::Error::other(format!("{e:?}")),
        })?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(Keys(credentials));
        builder.set_host(LocalhostBuckets);
        Ok(S3Api {
            service: builder.build(),
        })
    }

    /// Answers one S3 request.
    pub async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let req =
            req.map(|body| s3s::Body::http_body_unsync(body.map_err(|e| -> BoxError { e.into() })));
        match self.service.call(req).await {
            Ok(response) => response.map(BodyExt::boxed),
            Err(e) => {
                tracing::error!(error = ?e, "the S3 API failed");
                internal_error()
            }
        }
    }
}

fn internal_error() -> Response<Body> {
    let mut response = Response::new(full(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    response
}

/// Signatures are checked against the access keys this run knows.
struct Keys(Credentials);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records: sagedock knows {}. Sign with one of them (`sagedock up` prints the export line), or start sagedock with your key in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
                self.0.ids().join(", ")
            )),
        }
    }
}

/// `BUCKET.localhost[:port]` names a bucket; any other host is path-style.
struct LocalhostBuckets;

impl S3Host for LocalhostBuckets {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match bucket_of_host(host) {
            Some(bucket) => VirtualHost::new(VIRTUAL_HOST_DOMAIN).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

/// The bucket a virtual-host style `Host` header names, if it names one.
fn bucket_of_host(host: &str) -> Option<&str> {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let bucket = name.strip_suffix(VIRTUAL_HOST_DOMAIN)?.strip_suffix('.')?;
    (!bucket.is_empty()).then_some(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_read_from_localhost_subdomains_only() {
        assert_eq!(bucket_of_host("models.localhost:9474"), Some("models"));
        assert_eq!(
            bucket_of_host("my.dotted.bucket.localhost"),
            Some("my.dotted.bucket")
        );
        assert_eq!(bucket_of_host("localhost:9474"), None);
        assert_eq!(bucket_of_host(".localhost"), None);
        assert_eq!(bucket_of_host("sagedock:9474"), None);
        assert_eq!(bucket_of_host("notlocalhost"), None);
        assert_eq!(bucket_of_host("example.com"), None);
    }
}
