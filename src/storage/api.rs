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
//! One thing is sagedock's own, for speed: GetObject's bytes are read in 1 MiB blocks on
//! one blocking thread (s3s-fs reads 4 KiB at a time through tokio's file, a trip through
//! the blocking pool each: 9 s of CPU per GiB, against 0.8 s now). Every operation is
//! otherwise s3s-fs's, delegated unchanged.
//!
//! Does not: decide which requests are S3's (the server layer does, by signature).

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper::{Request, Response, StatusCode};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{self, StreamingBlob};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

use super::{S3Location, StorageError};
use crate::credentials::Credentials;
use crate::http::{full, Body, BoxError, RequestBody};

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
        let objects = Objects {
            fs,
            root: root.to_path_buf(),
        };
        let mut builder = S3ServiceBuilder::new(objects);
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

/// The size of the blocks objects are read in.
const BLOCK: usize = 1 << 20;

/// s3s-fs, with GetObject's bytes read by sagedock.
struct Objects {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

impl Objects {
    /// The file holding an object, under the root's confinement rule.
    fn object_file(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let location = S3Location::parse(&format!("s3://{bucket}/{key}")).ok()?;
        super::existing(&self.root, &location).ok()
    }
}

/// Operations passed to s3s-fs as they are (in the form `async_trait` gives the trait).
macro_rules! delegate {
    ($($name:ident: $input:ident => $output:ident;)*) => {$(
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            req: S3Request<dto::$input>,
        ) -> Pin<Box<dyn Future<Output = S3Result<S3Response<dto::$output>>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            self.fs.$name(req)
        }
    )*};
}

#[async_trait::async_trait]
impl S3 for Objects {
    delegate! {
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
        complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
        copy_object: CopyObjectInput => CopyObjectOutput;
        create_bucket: CreateBucketInput => CreateBucketOutput;
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
        delete_bucket: DeleteBucketInput => DeleteBucketOutput;
        delete_object: DeleteObjectInput => DeleteObjectOutput;
        delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
        head_bucket: HeadBucketInput => HeadBucketOutput;
        head_object: HeadObjectInput => HeadObjectOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
        list_objects: ListObjectsInput => ListObjectsOutput;
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
        list_parts: ListPartsInput => ListPartsOutput;
        put_object: PutObjectInput => PutObjectOutput;
        upload_part: UploadPartInput => UploadPartOutput;
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
    }

    /// s3s-fs answers (headers, range, checksums), then the body is replaced by one read
    /// in large blocks from the same file.
    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let file = self.object_file(&req.input.bucket, &req.input.key);
        let mut response = self.fs.get_object(req).await?;
        let output = &mut response.output;
        let start = output
            .content_range
            .as_deref()
            .and_then(range_start)
            .unwrap_or(0);
        let length = output
            .content_length
            .and_then(|l| u64::try_from(l).ok())
            .unwrap_or(0);
        if let Some(file) = file {
            output.body = Some(StreamingBlob::wrap(read_in_blocks(file, start, length)));
        }
        Ok(response)
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/SIZE`.
fn range_start(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// `length` bytes of `file` from `start`, read in [`BLOCK`]s on one blocking thread.
fn read_in_blocks(
    file: PathBuf,
    start: u64,
    length: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let read = || -> std::io::Result<()> {
            let mut f = std::fs::File::open(&file)?;
            f.seek(SeekFrom::Start(start))?;
            let mut left = length;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(BLOCK).min(BLOCK);
                let mut block = vec![0; n];
                f.read_exact(&mut block)?;
                left -= n as u64;
                if tx.blocking_send(Ok(Bytes::from(block))).is_err() {
                    return Ok(()); // the client went away
                }
            }
            Ok(())
        };
        if let Err(e) = read() {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
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
    fn a_content_range_gives_its_first_byte() {
        assert_eq!(
            range_start("bytes 8388608-16777215/1073741824"),
            Some(8_388_608)
        );
        assert_eq!(range_start("bytes 0-0/1"), Some(0));
        assert_eq!(range_start("items 1-2/3"), None);
        assert_eq!(range_start("bytes x-1/2"), None);
    }

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
