//! A training job's input channels, brought to `/opt/ml/input/data/<channel>` on each
//! host through the storage layer (its confinement rules hold: nothing outside the S3 root
//! is read).
//!
//! `S3Prefix` is the folder (or the one object) the URI names; `ManifestFile` is the JSON
//! manifest's `prefix` and relative keys. File mode copies the objects into each host's
//! tree (a snapshot: the job does not see later writes); FastFile gives the container the
//! data read-only (the S3 root's folder itself when every host reads all of it).
//! `ShardedByS3Key` hands each host every N-th object, in key order. Pipe mode is refused
//! when the job is created (see the control plane).

use std::path::{Path, PathBuf};

use super::workspace::HostTree;
use crate::state::training_job::{Channel, DistributionType, InputMode, S3DataType};
use crate::storage::{ModelLocation, Objects, S3Location, Storage};

/// A channel that could not be brought in: the FailureReason says which and why.
#[derive(Debug, thiserror::Error)]
#[error("ClientError: Data download failed for channel '{channel}': {detail}")]
pub struct ChannelError {
    pub channel: String,
    pub detail: String,
}

/// Read-only mounts a host's container needs for its FastFile channels: (host path,
/// container path).
pub type Mounts = Vec<(PathBuf, String)>;

/// Brings `channel` to every host; returns each host's read-only mounts.
pub async fn prepare(
    storage: &Storage,
    downloads: &Path,
    channel: &Channel,
    job_mode: InputMode,
    trees: &[HostTree],
) -> Result<Vec<Mounts>, ChannelError> {
    let fail = |detail: String| ChannelError {
        channel: channel.channel_name.clone(),
        detail,
    };
    let source = channel
        .data_source
        .s3_data_source
        .as_ref()
        .ok_or_else(|| fail("only S3 data sources are served".into()))?;
    let location = S3Location::parse(&source.s3_uri).map_err(|e| fail(e.to_string()))?;
    let objects = match source.s3_data_type {
        S3DataType::S3Prefix => {
            let path = storage
                .fetch(&ModelLocation::S3(location.clone()), downloads)
                .await
                .map_err(|e| fail(no_objects(&source.s3_uri, &e.to_string())))?;
            Objects::at(&path).map_err(|e| fail(e.to_string()))?
        }
        S3DataType::ManifestFile => storage.manifest(&location, downloads).await.map_err(fail)?,
        other => {
            return Err(fail(format!(
                "S3DataType {other:?} needs Pipe mode, which sagedock does not run"
            )))
        }
    };
    if objects.files.is_empty() {
        return Err(fail(no_objects(&source.s3_uri, "it holds no objects")));
    }
    let mode = channel.input_mode.unwrap_or(job_mode);
    let sharded = source.s3_data_distribution_type == Some(DistributionType::ShardedByS3Key);
    let at = format!("/opt/ml/input/data/{}", channel.channel_name);
    let mut mounts = Vec::with_capacity(trees.len());
    for (index, tree) in trees.iter().enumerate() {
        match (mode, &objects.folder) {
            (InputMode::FastFile, Some(folder)) if !sharded || trees.len() == 1 => {
                std::fs::create_dir_all(tree.channel(&channel.channel_name))
                    .map_err(|e| fail(e.to_string()))?;
                mounts.push(vec![(folder.clone(), at.clone())]);
            }
            _ => {
                let mine: Vec<(String, PathBuf)> = objects
                    .files
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !sharded || i % trees.len() == index)
                    .map(|(_, f)| f.clone())
                    .collect();
                let dest = tree.channel(&channel.channel_name);
                tokio::task::spawn_blocking(move || copy_all(&mine, &dest))
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .map_err(|e| fail(e.to_string()))?;
                let read_only = mode == InputMode::FastFile;
                mounts.push(if read_only {
                    vec![(tree.channel(&channel.channel_name), at.clone())]
                } else {
                    Vec::new()
                });
            }
        }
    }
    Ok(mounts)
}

/// SageMaker's wording when a prefix holds nothing.
fn no_objects(uri: &str, detail: &str) -> String {
    format!("No S3 objects found under S3 URL \"{uri}\" given in input data source ({detail}). Ensure that objects exist under that S3 prefix.")
}

fn copy_all(files: &[(String, PathBuf)], dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for (relative, from) in files {
        let to = dest.join(relative);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, &to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(uri: &str, mode: Option<InputMode>, sharded: bool) -> Channel {
        serde_json::from_value(serde_json::json!({
            "ChannelName": "train",
            "InputMode": mode.map(InputMode::as_str),
            "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": uri,
                "S3DataDistributionType": if sharded { "ShardedByS3Key" } else { "FullyReplicated" }
            }}
        }))
        .unwrap()
    }

    fn trees(dir: &Path, n: usize) -> Vec<HostTree> {
        (1..=n)
            .map(|i| HostTree {
                host: format!("algo-{i}"),
                root: dir.join(format!("algo-{i}")),
            })
            .collect()
    }

    fn s3(dir: &Path) -> Storage {
        let root = dir.join("s3");
        for (key, body) in [
            ("bkt/data/a.csv", "1"),
            ("bkt/data/sub/b.csv", "2"),
            ("bkt/data/c.csv", "3"),
        ] {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Storage::root(&root).unwrap()
    }

    #[tokio::test]
    async fn file_mode_copies_every_object_to_every_host() {
        let dir = tempfile::tempdir().unwrap();
        let storage = s3(dir.path());
        let trees = trees(dir.path(), 2);
        let mounts = prepare(
            &storage,
            dir.path(),
            &channel("s3://bkt/data/", None, false),
            InputMode::File,
            &trees,
        )
        .await
        .unwrap();
        assert!(mounts.iter().all(Vec::is_empty));
        for tree in &trees {
            assert_eq!(
                std::fs::read_to_string(tree.channel("train").join("sub/b.csv")).unwrap(),
                "2"
            );
            assert!(tree.channel("train").join("c.csv").is_file());
        }
    }

    #[tokio::test]
    async fn sharding_splits_objects_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let storage = s3(dir.path());
        let trees = trees(dir.path(), 2);
        prepare(
            &storage,
            dir.path(),
            &channel("s3://bkt/data", None, true),
            InputMode::File,
            &trees,
        )
        .await
        .unwrap();
        // Key order: a.csv, c.csv, sub/b.csv.
        assert!(trees[0].channel("train").join("a.csv").is_file());
        assert!(trees[0].channel("train").join("sub/b.csv").is_file());
        assert!(trees[1].channel("train").join("c.csv").is_file());
        assert!(!trees[1].channel("train").join("a.csv").exists());
    }

    #[tokio::test]
    async fn fast_file_mounts_the_folder_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let storage = s3(dir.path());
        let trees = trees(dir.path(), 1);
        let mounts = prepare(
            &storage,
            dir.path(),
            &channel("s3://bkt/data/", Some(InputMode::FastFile), false),
            InputMode::File,
            &trees,
        )
        .await
        .unwrap();
        assert_eq!(mounts[0][0].1, "/opt/ml/input/data/train");
        assert!(mounts[0][0].0.ends_with("s3/bkt/data"));
    }

    #[tokio::test]
    async fn a_missing_prefix_says_no_objects() {
        let dir = tempfile::tempdir().unwrap();
        let storage = s3(dir.path());
        let err = prepare(
            &storage,
            dir.path(),
            &channel("s3://bkt/nothing/", None, false),
            InputMode::File,
            &trees(dir.path(), 1),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("ClientError: Data download failed for channel 'train'"),
            "{text}"
        );
        assert!(
            text.contains("No S3 objects found under S3 URL \"s3://bkt/nothing/\""),
            "{text}"
        );
    }
}
