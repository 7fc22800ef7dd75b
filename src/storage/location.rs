//! Locations as the SageMaker APIs name them, parsed and checked once: `s3://bucket/key`
//! (with S3's bucket rules and keys that can become paths) and, for model data only, the
//! local extension `file:///path` or `/path`.

use std::path::{Path, PathBuf};

use super::StorageError;

/// S3's longest key, in bytes.
const MAX_KEY: usize = 1024;

/// An `s3://bucket/key` location. The key may be empty or end with `/` (a prefix, the
/// "folder" an `S3Prefix` or an output path names); every segment of it is a name a file
/// can have: not empty, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Location {
    bucket: String,
    key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key`.
    pub fn parse(url: &str) -> Result<S3Location, StorageError> {
        let invalid = |reason: String| StorageError::InvalidLocation {
            location: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it is not an s3:// URI".into()))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(invalid)?;
        check_key(key).map_err(invalid)?;
        Ok(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether this names a prefix (a folder) rather than one object.
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The key's segments (a prefix's trailing `/` gives no empty last segment).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.key.split('/').filter(|s| !s.is_empty())
    }

    /// The location of `relative` under this one, read as a folder (`s3://b/out` joined
    /// with `x/y.out` is `s3://b/out/x/y.out`); `relative` is held to the same rules.
    pub fn join(&self, relative: &str) -> Result<S3Location, StorageError> {
        let base = self.key.trim_end_matches('/');
        let key = if base.is_empty() {
            relative.to_string()
        } else {
            format!("{base}/{relative}")
        };
        S3Location::parse(&format!("s3://{}/{key}", self.bucket))
    }

    /// The object's name: the key's last segment (`None` for a prefix).
    pub fn file_name(&self) -> Option<&str> {
        (!self.is_prefix())
            .then(|| self.segments().last())
            .flatten()
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// S3's bucket naming rules (general purpose buckets).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let fail = |rule: &str| Err(format!("the bucket name '{bucket}' {rule}"));
    if bucket.is_empty() {
        return Err("it names no bucket".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return fail("must be 3 to 63 characters long");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("may hold only lower-case letters, digits, '.' and '-'");
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(bucket.as_bytes()[0]) || !edge(bucket.as_bytes()[bucket.len() - 1]) {
        return fail("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return fail("must not hold two adjacent periods");
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("must not look like an IP address");
    }
    Ok(())
}

/// Keys that can become paths: no leading `/`, no empty, `.` or `..` segment (a
/// trailing `/` marks a prefix), no NUL, at most 1024 bytes.
fn check_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY {
        return Err(format!(
            "the key is {} bytes; S3 allows {MAX_KEY}",
            key.len()
        ));
    }
    if key.contains('\0') {
        return Err("the key holds a NUL character".into());
    }
    if key.starts_with('/') {
        return Err("the key starts with '/' (an empty path segment)".into());
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    if body.is_empty() {
        return Ok(());
    }
    for segment in body.split('/') {
        match segment {
            "" => return Err("the key holds an empty path segment ('//')".into()),
            "." | ".." => {
                return Err(format!(
                    "the key holds a '{segment}' path segment, which sagedock refuses"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where model data is (`ModelDataUrl`, `ModelDataSource.S3DataSource.S3Uri`, a multi-model
/// prefix): in S3, or on this machine (`file:///path` or `/path`, a local extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    S3(S3Location),
    File(PathBuf),
}

/// Host paths no model data may be mounted from: the root itself (Docker's read-only flag
/// leaves /proc, /sys and /dev under it writable) and the kernel's own trees.
const FORBIDDEN_ROOTS: [&str; 3] = ["/proc", "/sys", "/dev"];

impl ModelLocation {
    pub fn parse(url: &str) -> Result<ModelLocation, StorageError> {
        if url.starts_with("s3://") {
            return S3Location::parse(url).map(ModelLocation::S3);
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if !path.starts_with('/') {
            return Err(StorageError::InvalidLocation {
                location: url.to_string(),
                reason: "sagedock reads model data from s3:// (under --s3-root or from --s3-endpoint), file:///PATH or an absolute path".into(),
            });
        }
        check_local(url, Path::new(path))?;
        Ok(ModelLocation::File(PathBuf::from(path)))
    }
}

impl std::fmt::Display for ModelLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelLocation::S3(s3) => s3.fmt(f),
            ModelLocation::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

/// A local model path may not be `/` or lie under /proc, /sys or /dev (checked on the
/// path as given and, by [`super::Storage`], again once symbolic links are resolved).
pub(super) fn check_local(location: &str, path: &Path) -> Result<(), StorageError> {
    let refused = path == Path::new("/")
        || path.parent().is_none()
        || FORBIDDEN_ROOTS.iter().any(|r| path.starts_with(r));
    if refused {
        return Err(StorageError::InvalidLocation {
            location: location.to_string(),
            reason: format!(
                "{} cannot be model data: sagedock does not mount the root directory, /proc, /sys or /dev into containers",
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_follow_s3_rules_and_stay_paths() {
        let loc = S3Location::parse("s3://my-bucket/models/m.tar.gz").unwrap();
        assert_eq!((loc.bucket(), loc.key()), ("my-bucket", "models/m.tar.gz"));
        assert_eq!(loc.file_name(), Some("m.tar.gz"));
        assert!(!loc.is_prefix());
        assert!(S3Location::parse("s3://my-bucket/models/")
            .unwrap()
            .is_prefix());
        assert!(S3Location::parse("s3://my-bucket").unwrap().is_prefix());
        for bad in [
            "s3://../etc/passwd",
            "s3://./x",
            "s3://bucket//etc/",
            "s3://bucket/a/../../etc",
            "s3://bucket/a/./b",
            "s3://bucket/a//b",
            "s3://Bucket/x",
            "s3://b/x",
            "s3://-bucket/x",
            "s3://192.168.1.1/x",
            "s3:///x",
            "s3://bucket/a\0b",
            "https://bucket/x",
            "/etc/passwd",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad} was accepted");
        }
        let err = S3Location::parse("s3://bucket//etc/")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s3://bucket//etc/") && err.contains("'/'"),
            "{err}"
        );
    }

    #[test]
    fn joins_stay_under_the_base() {
        let out = S3Location::parse("s3://bucket/out").unwrap();
        assert_eq!(
            out.join("x/y.out").unwrap().to_string(),
            "s3://bucket/out/x/y.out"
        );
        let root = S3Location::parse("s3://bucket/").unwrap();
        assert_eq!(root.join("a.out").unwrap().key(), "a.out");
        assert!(out.join("../x").is_err());
        assert!(out.join("/x").is_err());
    }

    #[test]
    fn local_model_data_is_not_the_root_or_a_kernel_tree() {
        assert_eq!(
            ModelLocation::parse("file:///tmp/m.tar.gz").unwrap(),
            ModelLocation::File("/tmp/m.tar.gz".into())
        );
        assert!(matches!(
            ModelLocation::parse("/data/model").unwrap(),
            ModelLocation::File(_)
        ));
        for bad in [
            "file:///",
            "/",
            "/proc/self",
            "file:///sys/",
            "/dev/shm",
            "relative/m",
            "https://x/y",
        ] {
            assert!(ModelLocation::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
