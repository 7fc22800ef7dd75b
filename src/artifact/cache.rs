//! The cache of unpacked artifacts, keyed by the sha256 of the archive.
//!
//! Layout under the cache root (`$SAGEDOCK_CACHE_DIR`, else the user's cache directory
//! plus `sagedock`):
//!
//! ```text
//! artifacts/<sha256>/model/       the unpacked /opt/ml/model tree
//! artifacts/<sha256>/entry.json   where it came from, sizes, when it was made
//! artifacts/<sha256>/last-used    its mtime is the last use
//! index/<key>                     sha256 of the archive whose path, inode, size, mtime
//!                                 and ctime hash to <key>
//! tmp/                            staging for unpacks and prunes in progress
//! ```
//!
//! A second deployment of an unchanged archive costs one `stat` and two small reads
//! (the index lets the digest be known without reading the archive again). A first
//! deployment hashes while it unpacks, in one pass.
//!
//! Invariants: an entry appears by one `rename` of a complete staging directory and
//! disappears by one `rename` into `tmp/` before deletion, so concurrent users never see
//! a half-written or half-deleted entry. Two processes unpacking the same archive at once
//! both succeed; the second rename loses and its copy is discarded.

use std::sync::Arc;

use crate::progress::Meter;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::unpack::{unpack_into, UnpackError};
use super::Limits;

/// Environment variable that overrides the cache root.
pub const CACHE_DIR_ENV: &str = "SAGEDOCK_CACHE_DIR";

/// Staging directories older than this are leftovers of killed runs.
const STALE_STAGING: Duration = Duration::from_secs(3600);

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory: set {CACHE_DIR_ENV} or HOME")]
    NoCacheDir,
    #[error("cache at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An unpacked artifact ready to mount.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CachedArtifact {
    pub sha256: String,
    /// The tree to mount at /opt/ml/model.
    pub model_dir: PathBuf,
    /// True when no unpack was needed.
    pub hit: bool,
    pub entries: u64,
    pub bytes: u64,
}

/// What `entry.json` records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct EntryMeta {
    sha256: String,
    source: PathBuf,
    archive_bytes: u64,
    unpacked_bytes: u64,
    entries: u64,
    created_unix: u64,
}

/// One cache entry, as `cache ls` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheEntry {
    pub sha256: String,
    pub source: PathBuf,
    pub unpacked_bytes: u64,
    pub entries: u64,
    pub created_unix: u64,
    pub last_used_unix: u64,
    pub path: PathBuf,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pruned {
    pub removed: Vec<String>,
    pub freed_bytes: u64,
}

/// The cache of unpacked artifacts.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Moved by the bytes of each archive unpacked, for a progress line.
    meter: Option<Arc<Meter>>,
}

impl Cache {
    /// The cache at `$SAGEDOCK_CACHE_DIR`, else `<user cache dir>/sagedock`.
    pub fn from_env() -> Result<Cache, CacheError> {
        if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(Cache::at(dir));
        }
        dirs::cache_dir()
            .map(|d| Cache::at(d.join("sagedock")))
            .ok_or(CacheError::NoCacheDir)
    }

    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache {
            root: root.into(),
            meter: None,
        }
    }

    /// The same cache, its unpacking told to `meter`.
    pub fn with_meter(mut self, meter: Option<Arc<Meter>>) -> Cache {
        self.meter = meter;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, sha256: &str) -> PathBuf {
        self.root.join("artifacts").join(sha256)
    }

    /// Unpacks `archive` through the cache: reuses the entry when this archive (or one with
    /// the same bytes) was unpacked before.
    pub fn unpack(&self, archive: &Path, limits: &Limits) -> Result<CachedArtifact, CacheError> {
        let meta = fs::metadata(archive).map_err(|source| {
            CacheError::Unpack(UnpackError {
                archive: archive.to_path_buf(),
                kind: super::UnpackErrorKind::Open(source),
            })
        })?;
        let key = stat_key(archive, &meta);
        let index = self.root.join("index").join(&key);
        if let Some(hit) = self.lookup(&index) {
            return Ok(hit);
        }
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        fs::create_dir_all(self.root.join("artifacts")).map_err(io_err(&self.root))?;
        let staging = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(&tmp)
            .map_err(io_err(&tmp))?;
        let model_dir = staging.path().join("model");
        fs::create_dir(&model_dir).map_err(io_err(&model_dir))?;
        let unpacked = unpack_into(archive, &model_dir, limits, self.meter.clone())?;
        let entry_meta = EntryMeta {
            sha256: unpacked.sha256.clone(),
            source: archive
                .canonicalize()
                .unwrap_or_else(|_| archive.to_path_buf()),
            archive_bytes: meta.len(),
            unpacked_bytes: unpacked.bytes,
            entries: unpacked.entries,
            created_unix: unix_now(),
        };
        write_json(&staging.path().join("entry.json"), &entry_meta)?;
        File::create(staging.path().join("last-used")).map_err(io_err(staging.path()))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&model_dir, fs::Permissions::from_mode(0o755))
            .map_err(io_err(&model_dir))?;
        let entry = self.entry_dir(&unpacked.sha256);
        let hit = match fs::rename(staging.path(), &entry) {
            Ok(()) => {
                let _ = staging.keep();
                false
            }
            // Another process (or another path with the same bytes) got there first.
            Err(_) if entry.join("model").is_dir() => true,
            Err(e) => return Err(io_err(&entry)(e)),
        };
        fs::create_dir_all(self.root.join("index")).map_err(io_err(&self.root))?;
        write_atomic(&index, unpacked.sha256.as_bytes(), &tmp)?;
        touch(&entry.join("last-used"));
        Ok(CachedArtifact {
            sha256: unpacked.sha256,
            model_dir: entry.join("model"),
            hit,
            entries: unpacked.entries,
            bytes: unpacked.bytes,
        })
    }

    fn lookup(&self, index: &Path) -> Option<CachedArtifact> {
        let sha256 = fs::read_to_string(index).ok()?;
        let entry = self.entry_dir(sha256.trim());
        let meta: EntryMeta =
            serde_json::from_slice(&fs::read(entry.join("entry.json")).ok()?).ok()?;
        if !entry.join("model").is_dir() {
            return None;
        }
        touch(&entry.join("last-used"));
        Some(CachedArtifact {
            sha256: meta.sha256,
            model_dir: entry.join("model"),
            hit: true,
            entries: meta.entries,
            bytes: meta.unpacked_bytes,
        })
    }

    /// Lists entries, most recently used first.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let dir = self.root.join("artifacts");
        let read = match fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut entries = Vec::new();
        for item in read {
            let path = item.map_err(io_err(&dir))?.path();
            let Ok(bytes) = fs::read(path.join("entry.json")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_slice::<EntryMeta>(&bytes) else {
                continue;
            };
            let last_used_unix = fs::metadata(path.join("last-used"))
                .and_then(|m| m.modified())
                .map(unix_secs)
                .unwrap_or(meta.created_unix);
            entries.push(CacheEntry {
                sha256: meta.sha256,
                source: meta.source,
                unpacked_bytes: meta.unpacked_bytes,
                entries: meta.entries,
                created_unix: meta.created_unix,
                last_used_unix,
                path: path.join("model"),
            });
        }
        entries.sort_by(|a, b| {
            b.last_used_unix
                .cmp(&a.last_used_unix)
                .then(a.sha256.cmp(&b.sha256))
        });
        Ok(entries)
    }

    /// Removes entries last used more than `older_than` ago (all entries when `None`),
    /// index records that point nowhere, and stale staging directories.
    pub fn prune(&self, older_than: Option<Duration>) -> Result<Pruned, CacheError> {
        let now = unix_now();
        let cutoff = older_than.map(|d| now.saturating_sub(d.as_secs()));
        let tmp = self.root.join("tmp");
        let mut pruned = Pruned::default();
        for entry in self.list()? {
            if cutoff.is_some_and(|c| entry.last_used_unix > c) {
                continue;
            }
            fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
            let doomed = tmp.join(format!("prune-{}-{}", entry.sha256, std::process::id()));
            let dir = self.entry_dir(&entry.sha256);
            match fs::rename(&dir, &doomed) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir)(e)),
            }
            remove_tree(&doomed)?;
            pruned.freed_bytes += entry.unpacked_bytes;
            pruned.removed.push(entry.sha256);
        }
        self.prune_index()?;
        self.prune_staging(&tmp, now)?;
        Ok(pruned)
    }

    fn prune_index(&self) -> Result<(), CacheError> {
        let dir = self.root.join("index");
        let Ok(read) = fs::read_dir(&dir) else {
            return Ok(());
        };
        for item in read.flatten() {
            let target = fs::read_to_string(item.path()).unwrap_or_default();
            if target.is_empty() || !self.entry_dir(target.trim()).is_dir() {
                let _ = fs::remove_file(item.path());
            }
        }
        Ok(())
    }

    fn prune_staging(&self, tmp: &Path, now: u64) -> Result<(), CacheError> {
        let Ok(read) = fs::read_dir(tmp) else {
            return Ok(());
        };
        for item in read.flatten() {
            let age = item
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.saturating_sub(unix_secs(t)))
                .unwrap_or(0);
            if age >= STALE_STAGING.as_secs() {
                remove_tree(&item.path())?;
            }
        }
        Ok(())
    }
}

/// A key for "this exact file, unchanged": path, device, inode, size, mtime and ctime.
/// ctime cannot be set back by tools that preserve mtimes, so a rewrite changes the key.
fn stat_key(archive: &Path, meta: &fs::Metadata) -> String {
    let path = archive
        .canonicalize()
        .unwrap_or_else(|_| archive.to_path_buf());
    let mut hasher = Sha256::new();
    hasher.update(path.as_os_str().as_encoded_bytes());
    for n in [
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime().cast_unsigned(),
        meta.mtime_nsec().cast_unsigned(),
        meta.ctime().cast_unsigned(),
        meta.ctime_nsec().cast_unsigned(),
    ] {
        hasher.update(n.to_le_bytes());
    }
    super::hex(&hasher.finalize())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), CacheError> {
    let bytes = serde_json::to_vec_pretty(value).expect("serialisable");
    fs::write(path, bytes).map_err(io_err(path))
}

fn write_atomic(path: &Path, bytes: &[u8], tmp: &Path) -> Result<(), CacheError> {
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(io_err(tmp))?;
    io::Write::write_all(&mut file, bytes).map_err(io_err(path))?;
    file.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), CacheError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn touch(path: &Path) {
    if let Ok(file) = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_now() -> u64 {
    unix_secs(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path) -> PathBuf {
        let src = dir.join("src");
        fs::create_dir_all(src.join("code")).unwrap();
        fs::write(src.join("model.pth"), b"weights").unwrap();
        fs::write(
            src.join("code/inference.py"),
            b"def model_fn(d):\n    pass\n",
        )
        .unwrap();
        let out = dir.join("model.tar.gz");
        super::super::pack(&src, &out, &Default::default()).unwrap();
        out
    }

    #[test]
    fn second_unpack_is_a_hit_and_prune_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache"));
        let tgz = archive(dir.path());
        let first = cache.unpack(&tgz, &Limits::default()).unwrap();
        assert!(!first.hit);
        assert_eq!(
            fs::read(first.model_dir.join("model.pth")).unwrap(),
            b"weights"
        );
        let second = cache.unpack(&tgz, &Limits::default()).unwrap();
        assert!(second.hit);
        assert_eq!(second.model_dir, first.model_dir);
        let listed = cache.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].sha256, first.sha256);
        let kept = cache.prune(Some(Duration::from_secs(3600))).unwrap();
        assert!(kept.removed.is_empty());
        let pruned = cache.prune(None).unwrap();
        assert_eq!(pruned.removed, vec![first.sha256]);
        assert!(cache.list().unwrap().is_empty());
        assert!(!first.model_dir.exists());
    }

    #[test]
    fn same_bytes_at_another_path_share_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache"));
        let tgz = archive(dir.path());
        let copy = dir.path().join("copy.tar.gz");
        fs::copy(&tgz, &copy).unwrap();
        let a = cache.unpack(&tgz, &Limits::default()).unwrap();
        let b = cache.unpack(&copy, &Limits::default()).unwrap();
        assert_eq!(a.model_dir, b.model_dir);
        assert!(b.hit);
        assert_eq!(cache.list().unwrap().len(), 1);
        assert_eq!(
            fs::read_dir(dir.path().join("cache/tmp")).unwrap().count(),
            0
        );
    }
}
