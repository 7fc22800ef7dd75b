//! Model data made ready to mount: a location fetched through storage, a model.tar.gz
//! unpacked through the artifact cache, an uncompressed object given a folder of its own;
//! and the SageMaker SDK's `SAGEMAKER_SUBMIT_DIRECTORY` fetched for the container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DeployError;
use crate::artifact::{Cache, Limits, ModelDir};
use crate::storage::{ModelLocation, S3Location, Storage};

/// Where the SageMaker SDK's frameworks look for the inference code.
pub const SUBMIT_DIRECTORY: &str = "SAGEMAKER_SUBMIT_DIRECTORY";
/// Where a fetched `s3://` submit directory is mounted (read-only) in the container.
pub const SUBMIT_MOUNT: &str = "/opt/ml/.sagedock/submit";

/// The folder to mount for the model data at `location`.
pub async fn fetch(
    storage: &Storage,
    cache: &Cache,
    location: &ModelLocation,
    uncompressed: bool,
) -> Result<ModelDir, DeployError> {
    let path = storage
        .fetch(location, &cache.root().join("downloads"))
        .await
        .map_err(|source| DeployError::ModelData {
            location: location.to_string(),
            source,
        })?;
    let (cache, location) = (cache.clone(), location.to_string());
    tokio::task::spawn_blocking(move || folder_of(&path, &location, uncompressed, &cache))
        .await
        .map_err(|e| DeployError::Internal(e.to_string()))?
}

/// The model data at `path` (a local file or folder) as a folder to mount.
fn folder_of(
    path: &Path,
    location: &str,
    uncompressed: bool,
    cache: &Cache,
) -> Result<ModelDir, DeployError> {
    let io = |source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Ok(ModelDir::folder(path.to_path_buf()));
    }
    if uncompressed {
        // One uncompressed object: it becomes /opt/ml/model/<its name>.
        let id: String = crate::artifact::hex(location.as_bytes())
            .chars()
            .take(32)
            .collect();
        let dir = cache.root().join("objects").join(id);
        std::fs::create_dir_all(&dir).map_err(|source| DeployError::Io {
            path: dir.clone(),
            source,
        })?;
        let name = path.file_name().unwrap_or_default();
        std::fs::copy(path, dir.join(name)).map_err(io)?;
        return Ok(ModelDir::folder(dir));
    }
    let cached =
        cache
            .unpack(path, &Limits::default())
            .map_err(|source| DeployError::Artifact {
                location: location.to_string(),
                source,
            })?;
    Ok(ModelDir {
        path: cached.model_dir,
        sha256: cached.sha256,
    })
}

/// `SAGEMAKER_SUBMIT_DIRECTORY` as an `s3://` URI (the SageMaker SDK's sourcedir.tar.gz for
/// SKLearnModel, XGBoostModel and other frameworks it does not repack): containers here
/// have no AWS credentials, so sagedock fetches the object from the same storage as model
/// data and the variable names a read-only local copy instead. Returns that (host file,
/// container path) to mount, and rewrites the variable in `env`.
pub async fn submit_directory(
    storage: &Storage,
    cache: &Cache,
    env: &mut BTreeMap<String, String>,
) -> Result<Option<(PathBuf, String)>, DeployError> {
    let Some(url) = env
        .get(SUBMIT_DIRECTORY)
        .filter(|u| u.starts_with("s3://"))
        .cloned()
    else {
        return Ok(None);
    };
    let failed = |source| DeployError::SubmitDirectory {
        location: url.clone(),
        source,
    };
    let location = S3Location::parse(&url).map_err(failed)?;
    let host = storage
        .fetch(
            &ModelLocation::S3(location.clone()),
            &cache.root().join("downloads"),
        )
        .await
        .map_err(failed)?;
    // Docker would make a folder of a missing bind source: it must be a file.
    if !std::fs::metadata(&host).is_ok_and(|m| m.is_file()) {
        return Err(DeployError::SubmitDirectoryNotObject { location: url });
    }
    let name = location.file_name().unwrap_or("sourcedir.tar.gz");
    let at = format!("{SUBMIT_MOUNT}/{name}");
    tracing::info!(url, local = at, "{SUBMIT_DIRECTORY} fetched by sagedock");
    env.insert(SUBMIT_DIRECTORY.to_string(), at.clone());
    Ok(Some((host, at)))
}
