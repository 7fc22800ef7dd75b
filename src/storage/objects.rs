//! The objects a data source names, as local files: every object under a prefix (a
//! folder of the S3 root, or one object), or those a manifest lists. Training channels and
//! batch transform read their input through this.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ModelLocation, S3Location, Storage};

/// The objects of a data source: (key relative to the location, local file), in key
/// order.
#[derive(Debug, Default)]
pub struct Objects {
    pub files: Vec<(String, PathBuf)>,
    /// The folder they all lie in, when the location named a folder.
    pub folder: Option<PathBuf>,
}

impl Objects {
    /// The file at `path`, or every regular file under the folder at `path` (symbolic
    /// links are not followed: nothing outside the folder is read).
    pub fn at(path: &Path) -> std::io::Result<Objects> {
        let meta = std::fs::metadata(path)?;
        if meta.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(Objects {
                files: vec![(name, path.to_path_buf())],
                folder: None,
            });
        }
        let mut files = Vec::new();
        walk(path, "", &mut files)?;
        files.sort();
        Ok(Objects {
            files,
            folder: Some(path.to_path_buf()),
        })
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if kind.is_dir() {
            walk(&entry.path(), &relative, out)?;
        } else if kind.is_file() {
            out.push((relative, entry.path()));
        }
    }
    Ok(())
}

impl Storage {
    /// The objects a manifest lists: `[{"prefix": "s3://bucket/prefix/"}, "relative/key", …]`
    /// (each fetched, into `downloads` from an S3 server); the error says what is wrong with
    /// the manifest or which object is missing.
    pub async fn manifest(
        &self,
        location: &S3Location,
        downloads: &Path,
    ) -> Result<Objects, String> {
        let storage = self;
        let bytes = storage.read(location).await.map_err(|e| e.to_string())?;
        let entries: Vec<Value> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the manifest {location} is not a JSON list: {e}"))?;
        let prefix = entries
            .first()
            .and_then(|e| e.get("prefix"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!("the manifest {location} does not begin with {{\"prefix\": \"s3://…\"}}")
            })?;
        let prefix = S3Location::parse(prefix).map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        for entry in &entries[1..] {
            let relative = entry
                .as_str()
                .ok_or_else(|| format!("the manifest {location} lists {entry}, not a key"))?;
            let object = prefix.join(relative).map_err(|e| e.to_string())?;
            let path = storage
                .fetch(&ModelLocation::S3(object), downloads)
                .await
                .map_err(|e| e.to_string())?;
            files.push((relative.to_string(), path));
        }
        Ok(Objects {
            files,
            folder: None,
        })
    }
}
