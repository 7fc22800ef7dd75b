//! Objects on an S3-compatible server (`--s3-endpoint`), through `object_store`:
//! path-style requests, signed with the caller's AWS_* environment credentials when there
//! are some, else with a dummy key that local servers such as moto accept. No credential is
//! written to disk or passed to a container.
//!
//! Downloads land in a folder of sagedock's (`downloads`), named after the location; an
//! object keeps its name, a prefix's objects keep their keys relative to it, and each key
//! is held to [`S3Location`]'s rules before it becomes a path.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{aws::AmazonS3Builder, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use super::{S3Location, StorageError};

fn failed(location: &S3Location, endpoint: &str, detail: impl std::fmt::Display) -> StorageError {
    StorageError::Remote {
        location: location.to_string(),
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    }
}

/// A client for the location's bucket on the server at `endpoint`.
fn client(
    location: &S3Location,
    endpoint: &str,
) -> Result<object_store::aws::AmazonS3, StorageError> {
    let mut builder = AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(location.bucket())
        .with_virtual_hosted_style_request(false);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // Local S3-compatible servers (moto, LocalStack) accept any key: sign with a dummy.
        builder = builder
            .with_access_key_id("sagedock")
            .with_secret_access_key("sagedock")
            .with_region("us-east-1");
    }
    builder.build().map_err(|e| failed(location, endpoint, e))
}

pub(super) async fn read(location: &S3Location, endpoint: &str) -> Result<Bytes, StorageError> {
    let store = client(location, endpoint)?;
    let got = store
        .get(&object_store::path::Path::from(location.key()))
        .await
        .map_err(|e| failed(location, endpoint, e))?;
    got.bytes().await.map_err(|e| failed(location, endpoint, e))
}

pub(super) async fn write(
    location: &S3Location,
    endpoint: &str,
    bytes: Bytes,
) -> Result<(), StorageError> {
    let store = client(location, endpoint)?;
    store
        .put(
            &object_store::path::Path::from(location.key()),
            bytes.into(),
        )
        .await
        .map(drop)
        .map_err(|e| failed(location, endpoint, e))
}

/// Downloads an object, or every object under a prefix, into `downloads`; returns the
/// local file or folder.
pub(super) async fn download(
    location: &S3Location,
    endpoint: &str,
    downloads: &Path,
) -> Result<PathBuf, StorageError> {
    let store = client(location, endpoint)?;
    let id: String = crate::artifact::hex(location.to_string().as_bytes())
        .chars()
        .take(40)
        .collect();
    let dest = downloads.join(id);
    let fail = |e: String| failed(location, endpoint, format!("downloading: {e}"));
    let Some(name) = location.file_name() else {
        let key = location.key().trim_end_matches('/');
        let prefix = object_store::path::Path::from(key);
        let staging = dest.with_extension("part");
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut listing = store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| fail(e.to_string()))?;
            let full = meta.location.as_ref();
            let relative = full
                .strip_prefix(prefix.as_ref())
                .unwrap_or(full)
                .trim_start_matches('/');
            if relative.is_empty() || relative.ends_with('/') {
                continue; // a folder marker, not a file
            }
            // Each object's key must itself be a path that stays in the folder.
            location.join(relative).map_err(|_| {
                fail(format!(
                    "object key {full} cannot become a path under /opt/ml/model"
                ))
            })?;
            let mut path = staging.clone();
            for segment in relative.split('/') {
                path.push(segment);
            }
            fetch_object(&store, &meta.location, &path)
                .await
                .map_err(fail)?;
        }
        let _ = tokio::fs::remove_dir_all(&dest).await;
        tokio::fs::rename(&staging, &dest)
            .await
            .map_err(|e| fail(e.to_string()))?;
        return Ok(dest);
    };
    let file = dest.join(name);
    fetch_object(
        &store,
        &object_store::path::Path::from(location.key()),
        &file,
    )
    .await
    .map_err(fail)?;
    Ok(file)
}

/// Streams one object into `path` (written beside it, then renamed).
async fn fetch_object(
    store: &impl ObjectStore,
    key: &object_store::path::Path,
    path: &Path,
) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| e.to_string())?;
    }
    let partial = path.with_extension("sagedock-part");
    let mut out = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = store
        .get(key)
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        out.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    out.flush().await.map_err(|e| e.to_string())?;
    drop(out);
    tokio::fs::rename(&partial, path)
        .await
        .map_err(|e| e.to_string())
}
