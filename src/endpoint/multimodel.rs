//! Multi-model endpoints (a container with `Mode: MultiModel`, CONTRACT §1.6): the first
//! InvokeEndpoint naming a TargetModel on an instance fetches `<ModelDataUrl><TargetModel>`,
//! unpacks it through the artifact cache, makes it appear at
//! `/opt/ml/models/<key>/model` in the container and loads it with `POST /models`; later
//! calls go straight to `POST /models/<key>/invoke`. When the container answers 507 (no
//! room), the instance's least recently used model is unloaded and the load retried.
//!
//! How a model reaches a running container without a new mount: the instance's host
//! directory mounted at [`MODELS_MOUNT`] gets a symbolic link `<key>/model` whose target
//! is the unpacked tree as the container sees it, under [`ARTIFACTS_MOUNT`] (the cache's
//! artifacts, mounted read-only). The container reads the cached tree in place: nothing is
//! copied, and a model shared by endpoints is unpacked once.
//!
//! The invocation side is in `invoke`; a load runs in its own task: callers wait for it at most the load wait (60 s, as
//! SageMaker), then get ModelNotReadyException while it goes on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::client;
use crate::artifact::{Cache, Limits};
use crate::runtime::spec::{ARTIFACTS_MOUNT, MODELS_MOUNT};
use crate::storage::{ModelLocation, Storage};
use crate::sync::locked;

/// How long a load may run in all (SageMaker keeps loading for 360 s).
const LOAD_LIMIT: Duration = Duration::from_secs(360);

/// The host directory mounted at [`MODELS_MOUNT`] in the multi-model container `container`.
pub fn models_dir(cache: &Cache, container: &str) -> PathBuf {
    cache.root().join("multi-model").join(container)
}

/// The host directory mounted at [`ARTIFACTS_MOUNT`].
pub fn artifacts_dir(cache: &Cache) -> PathBuf {
    cache.root().join("artifacts")
}

/// Removes the model-link folders of multi-model containers that are gone (left by a
/// killed run): those not in `alive` and untouched for an hour (another sagedock sharing
/// the cache may be creating a container for a new one right now).
pub fn sweep_links(cache: &Cache, alive: &std::collections::HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(models_dir(cache, "")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if idle && !alive.contains(&name) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The opaque `model_name` the container is given for a TargetModel (SageMaker does not
/// pass the TargetModel itself as the name; it sends it in a header).
pub fn model_key(target_model: &str) -> String {
    let digest = Sha256::digest(target_model.as_bytes());
    crate::artifact::hex(&digest[..16])
}

/// A multi-model call's model: the TargetModel, its key in the container, and where it is.
pub struct TargetModel {
    pub name: String,
    pub key: String,
    pub repository: Arc<ModelRepository>,
}

/// Why a TargetModel could not be served.
#[derive(Debug, Clone)]
pub enum LoadError {
    /// The model data is missing or unusable (the caller's mistake): ValidationError.
    Data(String),
    /// The container refused the load: its status and body (ModelError).
    Container(u16, String),
    /// The container could not be reached.
    Unreachable(String),
    /// sagedock could not stage the model (InternalFailure).
    Internal(String),
}

/// The model data at `url` could not be read.
fn download_failed(url: impl std::fmt::Display, detail: impl std::fmt::Display) -> LoadError {
    LoadError::Data(format!(
        "Failed to download model data (url: {url}). Please ensure that there is an object located at the URL. ({detail})"
    ))
}

/// Where a multi-model variant's models come from.
#[derive(Debug)]
pub struct ModelRepository {
    /// The container's ModelDataUrl: TargetModel is relative to it.
    pub prefix: ModelLocation,
    storage: Storage,
    cache: Cache,
}

impl ModelRepository {
    pub fn new(prefix: ModelLocation, storage: Storage, cache: Cache) -> Self {
        ModelRepository {
            prefix,
            storage,
            cache,
        }
    }

    /// The host directory of container `container`'s model links.
    pub fn models_dir(&self, container: &str) -> PathBuf {
        models_dir(&self.cache, container)
    }

    /// `<prefix>/<target>`, refusing targets that would leave the prefix.
    pub fn url_of(&self, target: &str) -> Result<ModelLocation, LoadError> {
        let refuse = |why: String| {
            LoadError::Data(format!(
                "TargetModel {target:?} is not a path relative to the model data prefix {}: {why}",
                self.prefix
            ))
        };
        if target.is_empty()
            || target.starts_with(char::is_whitespace)
            || target.chars().any(char::is_control)
        {
            return Err(refuse(
                "it is empty or holds white space or control characters".into(),
            ));
        }
        match &self.prefix {
            ModelLocation::S3(prefix) => prefix
                .join(target)
                .map(ModelLocation::S3)
                .map_err(|e| refuse(e.to_string())),
            ModelLocation::File(dir) => {
                let bad = target.starts_with('/')
                    || target
                        .split('/')
                        .any(|p| p.is_empty() || p == "." || p == "..");
                if bad {
                    return Err(refuse("it must stay under the prefix".into()));
                }
                Ok(ModelLocation::File(dir.join(target)))
            }
        }
    }

    /// Fetches and unpacks `location`, then links it into `container`'s models folder
    /// as `<key>/model`; returns the path the container loads it from.
    async fn stage(
        &self,
        container: &str,
        key: &str,
        location: &ModelLocation,
    ) -> Result<String, LoadError> {
        let path = self
            .storage
            .fetch(location, &self.cache.root().join("downloads"))
            .await
            .map_err(|detail| download_failed(location, detail))?;
        let (cache, container, key) = (self.cache.clone(), container.to_string(), key.to_string());
        let url = location.to_string();
        tokio::task::spawn_blocking(move || link(&cache, &container, &key, &path, &url))
            .await
            .map_err(|e| LoadError::Internal(e.to_string()))?
    }
}

/// Unpacks the archive at `path` through the cache and links the tree into the
/// container's models directory.
fn link(
    cache: &Cache,
    container: &str,
    key: &str,
    path: &Path,
    url: &str,
) -> Result<String, LoadError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| download_failed(url, format_args!("{}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(LoadError::Data(format!(
            "{url} is a directory; a multi-model endpoint's TargetModel names a model.tar.gz under the model data prefix"
        )));
    }
    let cached = cache
        .unpack(path, &Limits::default())
        .map_err(|e| LoadError::Data(format!("model data {url}: {e}")))?;
    let relative = cached
        .model_dir
        .strip_prefix(artifacts_dir(cache))
        .map_err(|_| {
            LoadError::Internal(format!("{url}: the unpacked tree is outside the cache"))
        })?;
    let target = Path::new(ARTIFACTS_MOUNT).join(relative);
    let dir = models_dir(cache, container).join(key);
    std::fs::create_dir_all(&dir)
        .map_err(|e| LoadError::Internal(format!("{}: {e}", dir.display())))?;
    // Replaced atomically: a link made beside it, then renamed over the old one.
    let staged = dir.join(".model.new");
    let _ = std::fs::remove_file(&staged);
    let made = symlink(&target, &staged).and_then(|()| std::fs::rename(&staged, dir.join("model")));
    made.map_err(|e| LoadError::Internal(format!("linking {}: {e}", dir.display())))?;
    Ok(format!("{MODELS_MOUNT}/{key}/model"))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "multi-model endpoints need symbolic links (Unix)",
    ))
}

#[derive(Debug, Clone)]
enum LoadState {
    Loading,
    Loaded,
    Failed(LoadError),
}

struct Slot {
    state: watch::Receiver<LoadState>,
    last_used: Instant,
}

/// The models loaded (or loading) in one multi-model container.
#[derive(Default)]
pub struct ModelTable {
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for ModelTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map_or(0, |s| s.len());
        write!(f, "ModelTable({n} models)")
    }
}

/// What [`ModelTable::ensure`] found.
pub enum Ready {
    /// Loaded before this call (SageMaker's ModelCacheHit).
    Hit,
    /// Loaded by this call (or while it waited); how long it waited.
    Loaded(Duration),
}

impl ModelTable {
    /// Whether `key` is loaded.
    pub fn has(&self, key: &str) -> bool {
        self.slots
            .lock()
            .expect("model table")
            .get(key)
            .is_some_and(|s| matches!(*s.state.borrow(), LoadState::Loaded))
    }

    /// Forgets `key` (the container no longer has it).
    pub fn forget(&self, key: &str) {
        locked(&self.slots).remove(key);
    }

    /// Makes sure `model` is loaded in the container `container` (at `addr`), starting a
    /// load when none runs; waits at most `wait`. `Ok(None)`: still loading after `wait`.
    pub async fn ensure(
        self: &Arc<Self>,
        container: &str,
        addr: SocketAddr,
        model: &TargetModel,
        wait: Duration,
    ) -> Result<Option<Ready>, LoadError> {
        let key = model.key.as_str();
        let t0 = Instant::now();
        let mut state = {
            let mut slots = locked(&self.slots);
            match slots.get_mut(key) {
                Some(slot) if !matches!(*slot.state.borrow(), LoadState::Failed(_)) => {
                    slot.last_used = t0;
                    if matches!(*slot.state.borrow(), LoadState::Loaded) {
                        return Ok(Some(Ready::Hit));
                    }
                    slot.state.clone()
                }
                _ => {
                    let (tx, rx) = watch::channel(LoadState::Loading);
                    slots.insert(
                        key.to_string(),
                        Slot {
                            state: rx.clone(),
                            last_used: t0,
                        },
                    );
                    let job = LoadJob {
                        table: self.clone(),
                        repository: model.repository.clone(),
                        name: container.to_string(),
                        addr,
                        key: key.to_string(),
                        target: model.name.clone(),
                    };
                    tokio::spawn(async move {
                        let outcome = tokio::time::timeout(LOAD_LIMIT, job.run())
                            .await
                            .unwrap_or_else(|_| {
                                Err(LoadError::Unreachable(format!(
                                    "loading {} took longer than {} s",
                                    job.target,
                                    LOAD_LIMIT.as_secs()
                                )))
                            });
                        if outcome.is_err() {
                            job.table.forget(&job.key);
                        }
                        let _ = tx.send(match outcome {
                            Ok(()) => LoadState::Loaded,
                            Err(e) => LoadState::Failed(e),
                        });
                    });
                    rx
                }
            }
        };
        let settled =
            tokio::time::timeout(wait, state.wait_for(|s| !matches!(s, LoadState::Loading))).await;
        match settled {
            Err(_) => Ok(None),
            Ok(Err(_)) => Err(LoadError::Unreachable(
                "the model load was abandoned".into(),
            )),
            Ok(Ok(s)) => match &*s {
                LoadState::Failed(e) => Err(e.clone()),
                _ => Ok(Some(Ready::Loaded(t0.elapsed()))),
            },
        }
    }

    /// The least recently used loaded model other than `except`, taken out of the table.
    fn evict_candidate(&self, except: &str) -> Option<String> {
        let mut slots = locked(&self.slots);
        let victim = slots
            .iter()
            .filter(|(k, s)| k.as_str() != except && matches!(*s.state.borrow(), LoadState::Loaded))
            .min_by_key(|(_, s)| s.last_used)
            .map(|(k, _)| k.clone())?;
        slots.remove(&victim);
        Some(victim)
    }
}

/// One load, run in its own task.
struct LoadJob {
    table: Arc<ModelTable>,
    repository: Arc<ModelRepository>,
    name: String,
    addr: SocketAddr,
    key: String,
    target: String,
}

impl LoadJob {
    async fn run(&self) -> Result<(), LoadError> {
        let location = self.repository.url_of(&self.target)?;
        let path = self
            .repository
            .stage(&self.name, &self.key, &location)
            .await?;
        let body =
            serde_json::to_vec(&json!({ "model_name": self.key, "url": path })).expect("json");
        loop {
            let (status, text) = self.call("POST", "/models", Some(body.clone())).await?;
            match StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR) {
                s if s.is_success() => return Ok(()),
                // Loaded already (e.g. sagedock restarted and re-adopted the container).
                StatusCode::CONFLICT => return Ok(()),
                StatusCode::INSUFFICIENT_STORAGE => {
                    let Some(victim) = self.table.evict_candidate(&self.key) else {
                        return Err(LoadError::Container(status, text));
                    };
                    tracing::info!(
                        container = self.name,
                        model = victim,
                        "unloading the least recently used model to make room"
                    );
                    let (unloaded, detail) = self
                        .call("DELETE", &format!("/models/{victim}"), None)
                        .await?;
                    if !(200..300).contains(&unloaded) && unloaded != 404 {
                        return Err(LoadError::Container(unloaded, detail));
                    }
                }
                _ => return Err(LoadError::Container(status, text)),
            }
        }
    }

    /// One call to the container's MME API: its status and body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, String), LoadError> {
        let uri: hyper::Uri = format!("http://{}{path}", self.addr)
            .parse()
            .map_err(|e| LoadError::Unreachable(format!("{path}: {e}")))?;
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("a valid request");
        let response = client::client().request(request).await.map_err(|e| {
            LoadError::Unreachable(format!("the container could not be reached ({e})"))
        })?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        Ok((status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_models_stay_under_the_prefix() {
        let prefix = ModelLocation::parse("s3://bucket/models").unwrap();
        let repo = ModelRepository::new(prefix, Storage::default(), Cache::at("/c"));
        let url = |t: &str| repo.url_of(t).map(|l| l.to_string());
        assert_eq!(url("a.tar.gz").unwrap(), "s3://bucket/models/a.tar.gz");
        assert_eq!(url("x/b.tar.gz").unwrap(), "s3://bucket/models/x/b.tar.gz");
        for bad in [
            "",
            "../a.tar.gz",
            "x/../../a",
            "/abs.tar.gz",
            " lead",
            "a\nb",
        ] {
            assert!(repo.url_of(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(model_key("a.tar.gz").len(), 32);
        assert_ne!(model_key("a.tar.gz"), model_key("b.tar.gz"));
    }
}
