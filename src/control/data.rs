//! Model data locations: `ModelDataUrl` and `ModelDataSource.S3DataSource` resolved to a
//! directory that can be mounted at `/opt/ml/model`.
//!
//! `s3://bucket/key` is read from `<s3-root>/bucket/key` (no credentials involved), or,
//! with `--s3-endpoint`, downloaded from that S3-compatible server (object_store; signed
//! with the caller's AWS_* environment credentials when there are some, else with a
//! dummy key that local servers such as moto accept; no credential is written to disk or
//! passed to a container). A local path or
//! `file://` URL is read as it is. A `.tar.gz` goes through the artifact cache; a
//! directory (an uncompressed `S3Prefix`) is mounted as it is.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use object_store::{aws::AmazonS3Builder, ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::artifact::{Cache, Limits};

/// Turns a URL into a local path.
pub fn locate(url: &str, s3_root: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let root = s3_root.ok_or_else(|| {
            format!("{url} is in S3: start sagedock with --s3-root DIR, where DIR/<bucket>/<key> holds the object")
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || key.split('/').any(|p| p == "..") {
            return Err(format!("{url} is not a valid S3 location"));
        }
        return Ok(root.join(bucket).join(key));
    }
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if url.starts_with('/') {
        return Ok(PathBuf::from(url));
    }
    Err(format!(
        "{url}: sagedock reads model data from s3:// (under --s3-root), file:// or an absolute path"
    ))
}

/// The model data URL of a container definition, if it has one (bring-your-own images
/// may need none).
pub fn url_of(container: &Value) -> Option<String> {
    container
        .get("ModelDataUrl")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            container
                .pointer("/ModelDataSource/S3DataSource/S3Uri")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

/// A client for the bucket of `url` on the S3-compatible server at `endpoint` (path-style,
/// signed with the environment's AWS credentials, else a dummy key), and the object key.
fn s3_store(url: &str, endpoint: &str) -> Result<(object_store::aws::AmazonS3, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url} is not an s3:// URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let mut builder = AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // Local S3-compatible servers (moto, LocalStack) accept any key: sign with a dummy.
        builder = builder
            .with_access_key_id("sagedock")
            .with_secret_access_key("sagedock")
            .with_region("us-east-1");
    }
    let store = builder
        .build()
        .map_err(|e| format!("S3 endpoint {endpoint}: {e}"))?;
    Ok((store, key.to_string()))
}

/// Where `s3://`, `file://` and plain paths are read and written.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub s3_root: Option<PathBuf>,
    pub s3_endpoint: Option<String>,
}

impl Storage {
    /// A local path for the model data at `url`: under the S3 root, as given, or
    /// downloaded (from `--s3-endpoint`) into `downloads`.
    pub async fn fetch(&self, url: &str, downloads: &Path) -> Result<PathBuf, String> {
        match (&self.s3_endpoint, url.starts_with("s3://")) {
            (Some(endpoint), true) => download(url, endpoint, downloads).await,
            _ => locate(url, self.s3_root.as_deref()),
        }
    }

    /// Reads one object.
    pub async fn read(&self, url: &str) -> Result<bytes::Bytes, String> {
        if let (Some(endpoint), true) = (&self.s3_endpoint, url.starts_with("s3://")) {
            let (store, key) = s3_store(url, endpoint)?;
            let got = store
                .get(&object_store::path::Path::from(key))
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            return got.bytes().await.map_err(|e| format!("{url}: {e}"));
        }
        let path = locate(url, self.s3_root.as_deref())?;
        tokio::fs::read(&path)
            .await
            .map(Into::into)
            .map_err(|e| format!("{url} ({}): {e}", path.display()))
    }

    /// Writes one object (locally: beside it, then renamed, so readers see all or nothing).
    pub async fn write(&self, url: &str, bytes: bytes::Bytes) -> Result<(), String> {
        if let (Some(endpoint), true) = (&self.s3_endpoint, url.starts_with("s3://")) {
            let (store, key) = s3_store(url, endpoint)?;
            store
                .put(&object_store::path::Path::from(key), bytes.into())
                .await
                .map(drop)
                .map_err(|e| format!("{url}: {e}"))?;
            return Ok(());
        }
        let path = locate(url, self.s3_root.as_deref())?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| e.to_string())?;
        }
        let partial = path.with_extension("sagedock-part");
        tokio::fs::write(&partial, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Downloads `s3://bucket/key` (an object, or every object under a prefix ending in `/`)
/// from the S3-compatible server at `endpoint` into `downloads`; returns the local path.
pub async fn download(url: &str, endpoint: &str, downloads: &Path) -> Result<PathBuf, String> {
    let (store, bucket_key) = s3_store(url, endpoint)?;
    let key = bucket_key.as_str();
    let id: String = crate::artifact::hex(url.as_bytes())
        .chars()
        .take(40)
        .collect();
    let dest = downloads.join(id);
    let fail = |e: String| format!("downloading {url} from {endpoint}: {e}");
    if key.is_empty() || key.ends_with('/') {
        let prefix = object_store::path::Path::from(key.trim_end_matches('/'));
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
            if relative
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            {
                return Err(format!(
                    "{url}: object key {full} cannot become a path under /opt/ml/model"
                ));
            }
            fetch_object(&store, &meta.location, &staging.join(relative))
                .await
                .map_err(fail)?;
        }
        let _ = tokio::fs::remove_dir_all(&dest).await;
        tokio::fs::rename(&staging, &dest)
            .await
            .map_err(|e| fail(e.to_string()))?;
        return Ok(dest);
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    let file = dest.join(name);
    fetch_object(&store, &object_store::path::Path::from(key), &file)
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

/// The model data at `path` (a local file or directory) as a directory to mount, with
/// the archive's sha256 ("" for directories and uncompressed objects).
pub fn model_dir_at(
    path: &Path,
    url: &str,
    container: &Value,
    cache: &Cache,
) -> Result<(PathBuf, String), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("model data {url} ({}): {e}", path.display()))?;
    if meta.is_dir() {
        return Ok((path.to_path_buf(), String::new()));
    }
    let compression = container
        .pointer("/ModelDataSource/S3DataSource/CompressionType")
        .and_then(Value::as_str)
        .unwrap_or("Gzip");
    if compression == "None" {
        // One uncompressed object: it becomes /opt/ml/model/<its name>.
        let id: String = crate::artifact::hex(url.as_bytes())
            .chars()
            .take(32)
            .collect();
        let dir = cache.root().join("objects").join(id);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let name = path.file_name().ok_or("model data has no file name")?;
        std::fs::copy(path, dir.join(name))
            .map_err(|e| format!("copying {}: {e}", path.display()))?;
        return Ok((dir, String::new()));
    }
    let cached = cache
        .unpack(path, &Limits::default())
        .map_err(|e| e.to_string())?;
    Ok((cached.model_dir, cached.sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_under_the_s3_root() {
        let root = Path::new("/data/s3");
        assert_eq!(
            locate("s3://bucket/models/m.tar.gz", Some(root)).unwrap(),
            root.join("bucket/models/m.tar.gz")
        );
        assert!(locate("s3://bucket/m.tar.gz", None)
            .unwrap_err()
            .contains("--s3-root"));
        assert!(locate("s3://bucket/../etc", Some(root)).is_err());
        assert_eq!(
            locate("file:///tmp/m.tar.gz", None).unwrap(),
            PathBuf::from("/tmp/m.tar.gz")
        );
        assert!(locate("https://example.com/m.tar.gz", None).is_err());
    }
}
