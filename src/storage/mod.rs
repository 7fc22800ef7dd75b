//! Object storage: where `s3://` locations are read and written (model data, asynchronous
//! inference inputs and results, multi-model archives, inference code), and where the local
//! `file://` model data extension is read.
//!
//! `s3://bucket/key` is the file `<s3-root>/bucket/key` (`--s3-root`), or an object on an
//! S3-compatible server (`--s3-endpoint`; see [`remote`]). One rule maps a location to a
//! file, and every caller goes through it: a location is parsed once ([`S3Location`]:
//! S3's bucket rules; no empty, `.` or `..` key segment, no absolute key), and the path it
//! becomes is proved to lie under the root once symbolic links are resolved — reading
//! resolves the whole path, writing creates folders one at a time and never follows a link
//! out. Model data given as `file://` (a documented local extension) may not be `/`, nor
//! lie under /proc, /sys or /dev.
//!
//! Does not: unpack archives (the artifact cache does) or know which API asked.

pub mod api;
mod location;
mod objects;
pub mod remote;

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

pub use location::{ModelLocation, S3Location};
pub use objects::Objects;

/// Why a location could not be used. Each message names the location.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location} is not a location sagedock can use: {reason}")]
    InvalidLocation { location: String, reason: String },
    #[error("{location} is in S3, and this sagedock has no S3 storage: start it with --s3-root DIR (s3://BUCKET/KEY is DIR/BUCKET/KEY) or --s3-endpoint URL")]
    NoS3 { location: String },
    #[error("{location} resolves to {path}, outside the S3 root {root} (through a symbolic link); sagedock reads and writes only under the root")]
    Escapes {
        location: String,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("{location}: there is nothing at {path}")]
    NotFound { location: String, path: PathBuf },
    #[error("{location} ({path}): {source}")]
    Io {
        location: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location} on the S3 server {endpoint}: {detail}")]
    Remote {
        location: String,
        endpoint: String,
        detail: String,
    },
}

impl StorageError {
    /// True when the caller named a location that cannot exist or be reached (a
    /// ValidationError for the APIs), false when the machine failed.
    pub fn is_callers_fault(&self) -> bool {
        !matches!(self, StorageError::Io { .. })
    }
}

/// Where `s3://` locations live.
#[derive(Debug, Clone, Default)]
pub enum Storage {
    /// No S3: only `file://` model data can be read.
    #[default]
    None,
    /// Under a local folder (canonical).
    Root(PathBuf),
    /// On an S3-compatible server.
    Remote(String),
}

impl Storage {
    /// Storage under `root` (`--s3-root`), which must exist.
    pub fn root(root: &Path) -> Result<Storage, StorageError> {
        let canonical = root.canonicalize().map_err(|source| StorageError::Io {
            location: "--s3-root".into(),
            path: root.to_path_buf(),
            source,
        })?;
        Ok(Storage::Root(canonical))
    }

    /// Storage on the S3-compatible server at `endpoint` (`--s3-endpoint`).
    pub fn remote(endpoint: impl Into<String>) -> Storage {
        Storage::Remote(endpoint.into())
    }

    /// Whether `s3://` locations can be read and written at all.
    pub fn has_s3(&self) -> bool {
        !matches!(self, Storage::None)
    }

    /// A local path holding the model data at `location` (a file or a folder): under the
    /// S3 root, as given (`file://`), or downloaded from the S3 server into `downloads`.
    pub async fn fetch(
        &self,
        location: &ModelLocation,
        downloads: &Path,
    ) -> Result<PathBuf, StorageError> {
        match location {
            ModelLocation::File(path) => {
                let where_ = location.to_string();
                let canonical = canonical(&where_, path)?;
                location::check_local(&where_, &canonical)?;
                Ok(canonical)
            }
            ModelLocation::S3(s3) => match self {
                Storage::None => Err(StorageError::NoS3 {
                    location: s3.to_string(),
                }),
                Storage::Root(root) => existing(root, s3),
                Storage::Remote(endpoint) => remote::download(s3, endpoint, downloads).await,
            },
        }
    }

    /// Reads one object.
    pub async fn read(&self, location: &S3Location) -> Result<Bytes, StorageError> {
        match self {
            Storage::None => Err(StorageError::NoS3 {
                location: location.to_string(),
            }),
            Storage::Remote(endpoint) => remote::read(location, endpoint).await,
            Storage::Root(root) => {
                let path = existing(root, location)?;
                tokio::fs::read(&path)
                    .await
                    .map(Bytes::from)
                    .map_err(|source| StorageError::Io {
                        location: location.to_string(),
                        path,
                        source,
                    })
            }
        }
    }

    /// Checks that `location` can be written (without writing): an object under the
    /// root whose folders are, or can become, folders under the root.
    pub fn check_writable(&self, location: &S3Location) -> Result<(), StorageError> {
        match self {
            Storage::None => Err(StorageError::NoS3 {
                location: location.to_string(),
            }),
            Storage::Remote(_) => Ok(()),
            Storage::Root(root) => {
                if location.is_prefix() {
                    return Err(object_expected(location));
                }
                let mut dir = root.clone();
                let segments: Vec<&str> = location.segments().collect();
                let (_, folders) = segments.split_last().expect("an object has a key");
                for name in std::iter::once(location.bucket()).chain(folders.iter().copied()) {
                    let next = dir.join(name);
                    match std::fs::symlink_metadata(&next) {
                        Err(_) => return Ok(()),
                        Ok(_) => dir = inside(root, location, &next)?,
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes one object: beside its final name, then renamed, so a reader sees all of it
    /// or nothing.
    pub async fn write(&self, location: &S3Location, bytes: Bytes) -> Result<(), StorageError> {
        match self {
            Storage::None => Err(StorageError::NoS3 {
                location: location.to_string(),
            }),
            Storage::Remote(endpoint) => remote::write(location, endpoint, bytes).await,
            Storage::Root(root) => {
                let (root, location) = (root.clone(), location.clone());
                tokio::task::spawn_blocking(move || write_under(&root, &location, &bytes))
                    .await
                    .map_err(|e| StorageError::Io {
                        location: String::new(),
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })?
            }
        }
    }
}

fn object_expected(location: &S3Location) -> StorageError {
    StorageError::InvalidLocation {
        location: location.to_string(),
        reason: "it names a prefix (a folder), not an object".into(),
    }
}

/// `path` with every symbolic link resolved; `NotFound` when nothing is there.
fn canonical(location: &str, path: &Path) -> Result<PathBuf, StorageError> {
    path.canonicalize().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            StorageError::NotFound {
                location: location.to_string(),
                path: path.to_path_buf(),
            }
        } else {
            StorageError::Io {
                location: location.to_string(),
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// `path` resolved, proved to lie under `root`.
fn inside(root: &Path, location: &S3Location, path: &Path) -> Result<PathBuf, StorageError> {
    let resolved = canonical(&location.to_string(), path)?;
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(StorageError::Escapes {
            location: location.to_string(),
            path: resolved,
            root: root.to_path_buf(),
        })
    }
}

/// The existing file or folder `location` names under `root`, resolved.
fn existing(root: &Path, location: &S3Location) -> Result<PathBuf, StorageError> {
    let mut path = root.join(location.bucket());
    for segment in location.segments() {
        path.push(segment);
    }
    debug_assert!(path
        .components()
        .all(|c| !matches!(c, Component::ParentDir)));
    inside(root, location, &path)
}

/// Writes `bytes` at `location` under `root`, creating folders one at a time: an existing
/// one is entered only once resolved under the root, so no write leaves it.
fn write_under(root: &Path, location: &S3Location, bytes: &[u8]) -> Result<(), StorageError> {
    if location.is_prefix() {
        return Err(object_expected(location));
    }
    let io = |path: &Path| {
        let (location, path) = (location.to_string(), path.to_path_buf());
        move |source| StorageError::Io {
            location,
            path,
            source,
        }
    };
    let segments: Vec<&str> = location.segments().collect();
    let (name, folders) = segments.split_last().expect("an object has a key");
    let mut dir = root.to_path_buf();
    for folder in std::iter::once(location.bucket()).chain(folders.iter().copied()) {
        let next = dir.join(folder);
        match std::fs::create_dir(&next) {
            Ok(()) => dir = next,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                dir = inside(root, location, &next)?;
                if !dir.is_dir() {
                    return Err(StorageError::InvalidLocation {
                        location: location.to_string(),
                        reason: format!("{} is a file, not a folder", next.display()),
                    });
                }
            }
            Err(e) => return Err(io(&next)(e)),
        }
    }
    let target = dir.join(name);
    let mut partial = tempfile::Builder::new()
        .prefix(".sagedock-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    std::io::Write::write_all(&mut partial, bytes).map_err(io(&target))?;
    // Renaming replaces whatever is at `target` (a symbolic link itself, never its target).
    partial.persist(&target).map_err(|e| io(&target)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(url: &str) -> S3Location {
        S3Location::parse(url).unwrap()
    }

    #[tokio::test]
    async fn objects_are_read_and_written_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::root(dir.path()).unwrap();
        let out = s3("s3://bucket/a/b/result.out");
        storage.check_writable(&out).unwrap();
        storage
            .write(&out, Bytes::from_static(b"42"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("bucket/a/b/result.out")).unwrap(),
            b"42"
        );
        assert_eq!(storage.read(&out).await.unwrap(), Bytes::from_static(b"42"));
        let missing = storage.read(&s3("s3://bucket/nope")).await.unwrap_err();
        assert!(
            matches!(missing, StorageError::NotFound { .. }),
            "{missing}"
        );
        let folder = storage
            .fetch(&ModelLocation::S3(s3("s3://bucket/a/")), dir.path())
            .await
            .unwrap();
        assert!(folder.ends_with("bucket/a"));
    }

    #[tokio::test]
    async fn symbolic_links_cannot_lead_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        let root = dir.path().join("s3");
        std::fs::create_dir_all(root.join("bucket")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("bucket/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
        let storage = Storage::root(&root).unwrap();
        let read = storage
            .read(&s3("s3://bucket/link/secret"))
            .await
            .unwrap_err();
        assert!(matches!(read, StorageError::Escapes { .. }), "{read}");
        let write = storage
            .write(&s3("s3://bucket/link/new"), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(write, StorageError::Escapes { .. }), "{write}");
        assert!(!outside.path().join("new").exists());
        assert!(storage.check_writable(&s3("s3://escape/deep/new")).is_err());
        let write = storage
            .write(&s3("s3://escape/deep/new"), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(write, StorageError::Escapes { .. }), "{write}");
        assert!(
            !outside.path().join("deep").exists(),
            "no folder made outside"
        );
        let fetched = storage
            .fetch(&ModelLocation::S3(s3("s3://bucket/link/")), dir.path())
            .await
            .unwrap_err();
        assert!(matches!(fetched, StorageError::Escapes { .. }), "{fetched}");
    }

    #[tokio::test]
    async fn local_model_data_is_resolved_and_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc", dir.path().join("proc-link")).unwrap();
        let storage = Storage::None;
        let link = ModelLocation::File(dir.path().join("proc-link"));
        let err = storage.fetch(&link, dir.path()).await.unwrap_err();
        assert!(err.to_string().contains("/proc"), "{err}");
        let s3_without_storage = storage
            .fetch(&ModelLocation::S3(s3("s3://bucket/m.tar.gz")), dir.path())
            .await
            .unwrap_err();
        assert!(matches!(s3_without_storage, StorageError::NoS3 { .. }));
    }
}
