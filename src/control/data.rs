//! Model data locations: `ModelDataUrl` and `ModelDataSource.S3DataSource` resolved to a
//! directory that can be mounted at `/opt/ml/model`.
//!
//! `s3://bucket/key` is read from `<s3-root>/bucket/key` (no credentials involved); a
//! local path or `file://` URL is read as it is. A `.tar.gz` goes through the artifact
//! cache; a directory (an uncompressed `S3Prefix`) is mounted as it is.

use std::path::{Path, PathBuf};

use serde_json::Value;

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

/// The model data of a container definition, as a directory to mount; `None` when the
/// container has none (bring-your-own images may need none). Returns the directory and
/// the archive's sha256 ("" for directories).
pub fn model_dir(
    container: &Value,
    s3_root: Option<&Path>,
    cache: &Cache,
) -> Result<Option<(PathBuf, String)>, String> {
    let url = container
        .get("ModelDataUrl")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            container
                .pointer("/ModelDataSource/S3DataSource/S3Uri")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let Some(url) = url else { return Ok(None) };
    let path = locate(&url, s3_root)?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("model data {url} ({}): {e}", path.display()))?;
    if meta.is_dir() {
        return Ok(Some((path, String::new())));
    }
    let compression = container
        .pointer("/ModelDataSource/S3DataSource/CompressionType")
        .and_then(Value::as_str)
        .unwrap_or("Gzip");
    if compression == "None" {
        // One uncompressed object: it becomes /opt/ml/model/<its name>.
        let dir = cache.root().join("objects").join(
            crate::artifact::hex(url.as_bytes())
                .chars()
                .take(32)
                .collect::<String>(),
        );
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let name = path.file_name().ok_or("model data has no file name")?;
        std::fs::copy(&path, dir.join(name))
            .map_err(|e| format!("copying {}: {e}", path.display()))?;
        return Ok(Some((dir, String::new())));
    }
    let cached = cache
        .unpack(&path, &Limits::default())
        .map_err(|e| e.to_string())?;
    Ok(Some((cached.model_dir, cached.sha256)))
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
