//! What a training job leaves: `/opt/ml/model` packed deterministically into
//! `<S3OutputPath>/<job>/output/model.tar.gz` (or, with CompressionType NONE, its files
//! under `…/output/model/`), `/opt/ml/output/data` as `output.tar.gz` beside it, the
//! checkpoint folder synced to CheckpointConfig.S3Uri; and the failure a container
//! reported in `/opt/ml/output/failure`.
//!
//! A job of several hosts: each host's folder is laid over the one before, in host order,
//! as the SageMaker Python SDK's local mode merges them.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::workspace::HostTree;
use crate::artifact::pack::{pack, PackOptions};
use crate::storage::{S3Location, Storage};

/// Why an upload failed (the FailureReason says so).
#[derive(Debug, thiserror::Error)]
#[error("ClientError: Failed to upload {what} to {location}: {detail}")]
pub struct UploadError {
    pub what: &'static str,
    pub location: String,
    pub detail: String,
}

/// The folder to upload: `pick(tree)` of the only host, or the hosts' folders merged into
/// `scratch`.
pub fn merged(
    trees: &[HostTree],
    pick: impl Fn(&HostTree) -> PathBuf,
    scratch: &Path,
) -> std::io::Result<PathBuf> {
    if let [only] = trees {
        return Ok(pick(only));
    }
    std::fs::create_dir_all(scratch)?;
    for tree in trees {
        copy_tree(&pick(tree), scratch)?;
    }
    Ok(scratch.to_path_buf())
}

/// Copies the regular files and folders under `from` into `to` (links are not followed).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Packs `dir` into `archive` and uploads it to `location`.
pub async fn upload_packed(
    storage: &Storage,
    dir: PathBuf,
    archive: PathBuf,
    location: &S3Location,
    what: &'static str,
) -> Result<(), UploadError> {
    let fail = |detail: String| UploadError {
        what,
        location: location.to_string(),
        detail,
    };
    let packed = archive.clone();
    tokio::task::spawn_blocking(move || pack(&dir, &packed, &PackOptions::default()))
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
    let bytes = tokio::fs::read(&archive)
        .await
        .map_err(|e| fail(e.to_string()))?;
    storage
        .write(location, Bytes::from(bytes))
        .await
        .map_err(|e| fail(e.to_string()))
}

/// Uploads every file under `dir` to `prefix` + its path relative to `dir`.
pub async fn upload_files(
    storage: &Storage,
    dir: &Path,
    prefix: &S3Location,
    what: &'static str,
) -> Result<(), UploadError> {
    upload_changed(storage, dir, prefix, what, &mut Synced::new()).await
}

/// What a sync has sent: each file's modification time and size when it was uploaded.
pub type Synced = std::collections::HashMap<PathBuf, (std::time::SystemTime, u64)>;

/// Uploads the files under `dir` that are new or changed since `synced` last saw them (a
/// checkpoint folder synced while the job runs, as SageMaker syncs it).
pub async fn upload_changed(
    storage: &Storage,
    dir: &Path,
    prefix: &S3Location,
    what: &'static str,
    synced: &mut Synced,
) -> Result<(), UploadError> {
    let fail = |detail: String| UploadError {
        what,
        location: prefix.to_string(),
        detail,
    };
    let mut files = Vec::new();
    list_files(dir, "", &mut files).map_err(|e| fail(e.to_string()))?;
    for (relative, path) in files {
        let stamp = std::fs::metadata(&path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_some() && synced.get(&path) == stamp.as_ref() {
            continue;
        }
        let location = prefix.join(&relative).map_err(|e| fail(e.to_string()))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        storage
            .write(&location, Bytes::from(bytes))
            .await
            .map_err(|e| fail(e.to_string()))?;
        if let Some(stamp) = stamp {
            synced.insert(path, stamp);
        }
    }
    Ok(())
}

fn list_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), &relative, out)?;
        } else if kind.is_file() {
            out.push((relative, entry.path()));
        }
    }
    out.sort();
    Ok(())
}

/// Whether a folder holds any file.
pub fn has_files(dir: &Path) -> bool {
    let mut files = Vec::new();
    list_files(dir, "", &mut files).is_ok() && !files.is_empty()
}

/// The failure a container wrote to `/opt/ml/output/failure` (the first 1024 characters
/// SageMaker keeps are cut by the record).
pub fn failure_file(tree: &HostTree) -> Option<String> {
    let text = std::fs::read_to_string(tree.output().join("failure")).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_folders_merge_in_host_order() {
        let dir = tempfile::tempdir().unwrap();
        let trees: Vec<HostTree> = (1..=2)
            .map(|i| HostTree {
                host: format!("algo-{i}"),
                root: dir.path().join(format!("algo-{i}")),
            })
            .collect();
        for (tree, body) in trees.iter().zip(["one", "two"]) {
            std::fs::create_dir_all(tree.model().join("sub")).unwrap();
            std::fs::write(tree.model().join("shared.txt"), body).unwrap();
            std::fs::write(
                tree.model().join("sub").join(format!("{}.txt", tree.host)),
                body,
            )
            .unwrap();
        }
        let merged = merged(&trees, HostTree::model, &dir.path().join("merged")).unwrap();
        assert_eq!(
            std::fs::read_to_string(merged.join("shared.txt")).unwrap(),
            "two"
        );
        assert!(merged.join("sub/algo-1.txt").is_file());
        assert!(merged.join("sub/algo-2.txt").is_file());
        let single = super::merged(&trees[..1], HostTree::model, &dir.path().join("x")).unwrap();
        assert_eq!(single, trees[0].model());
        assert!(has_files(&single));
        assert!(!has_files(&dir.path().join("nothing")));
    }
}
