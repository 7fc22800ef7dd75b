//! The image map: which local image runs when a request names one of AWS's framework
//! images by its ECR URI (`763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13-cpu-py310`),
//! as the SageMaker Python SDK does whenever a notebook gives a framework version and no
//! `image_uri`. No registry is reachable from where sagedock runs, and AWS's images would
//! be pulled from one.
//!
//! An ECR URI is read as the SDK reads it (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]/
//! <repository>:<tag>`); the account and region do not matter. `repository:tag` is looked up
//! first, then `repository`. The built-in entries name the images `harness/images/` builds;
//! `--image-map FILE` (a JSON object of the same keys) adds entries and overrides these.
//! Any other image name is used as it is.

use std::collections::BTreeMap;
use std::path::Path;

/// The built-in map: AWS's repositories and the local images that stand in for them.
pub const BUILT_IN: [(&str, &str); 7] = [
    ("tensorflow-training", "sagedock/tensorflow-training:latest"),
    ("tensorflow-inference", "sagedock/tensorflow:latest"),
    ("sagemaker-scikit-learn", "sagedock/sklearn:latest"),
    ("mxnet-inference", "sagedock/mxnet:latest"),
    ("sagemaker-mxnet-serving", "sagedock/mxnet:latest"),
    ("sagemaker-xgboost", "sagedock/xgboost:latest"),
    ("pytorch-inference", "sagedock/pytorch:latest"),
];

/// ECR repository (optionally `:tag`) → local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMap {
    entries: BTreeMap<String, String>,
}

impl Default for ImageMap {
    fn default() -> Self {
        ImageMap {
            entries: BUILT_IN
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// An image map file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the image map {path}: {detail} (expected a JSON object such as {{\"tensorflow-training\": \"my/tf-train:latest\", \"sagemaker-xgboost:1.7-1\": \"my/xgb:1.7\"}})")]
pub struct ImageMapError {
    pub path: String,
    pub detail: String,
}

impl ImageMap {
    /// The built-in map with the entries of `path` added over it.
    pub fn load(path: &Path) -> Result<ImageMap, ImageMapError> {
        let fail = |detail: String| ImageMapError {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let more: BTreeMap<String, String> =
            serde_json::from_slice(&text).map_err(|e| fail(e.to_string()))?;
        let mut map = ImageMap::default();
        for (key, image) in more {
            if key.is_empty() || image.trim().is_empty() {
                return Err(fail(format!("the entry '{key}' is empty")));
            }
            map.entries.insert(key, image);
        }
        Ok(map)
    }

    /// The image that runs for `image`.
    pub fn resolve<'a>(&'a self, image: &'a str) -> &'a str {
        let Some((repository, tag)) = ecr_repository(image) else {
            return image;
        };
        self.entries
            .get(&format!("{repository}:{tag}"))
            .or_else(|| self.entries.get(repository))
            .map_or(image, String::as_str)
    }

    /// The entries, for `sagedock up` to print.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `(repository, tag)` of an ECR image URI, else None.
pub fn ecr_repository(image: &str) -> Option<(&str, &str)> {
    let (host, rest) = image.split_once('/')?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    let is_ecr = !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && parts.next() == Some("dkr")
        && parts.next() == Some("ecr")
        && host.contains(".amazonaws.com");
    if !is_ecr {
        return None;
    }
    let (repository, tag) = rest.rsplit_once(':').unwrap_or((rest, "latest"));
    (!repository.is_empty()).then_some((repository, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_framework_images_map_to_local_ones_whatever_the_account_and_region() {
        let map = ImageMap::default();
        assert_eq!(
            map.resolve(
                "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13-cpu-py310"
            ),
            "sagedock/tensorflow-training:latest"
        );
        assert_eq!(
            map.resolve(
                "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/tensorflow-inference:2.13-cpu"
            ),
            "sagedock/tensorflow:latest"
        );
        assert_eq!(
            map.resolve(
                "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
            ),
            "sagedock/sklearn:latest"
        );
        assert_eq!(
            map.resolve("246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"),
            "sagedock/xgboost:latest"
        );
        assert_eq!(
            map.resolve(
                "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:1.13-cpu-py39"
            ),
            "sagedock/pytorch:latest"
        );
        assert_eq!(map.resolve("sagedock/echo:latest"), "sagedock/echo:latest");
        assert_eq!(
            map.resolve("123.dkr.ecr.us-east-1.amazonaws.com/my-own:1"),
            "123.dkr.ecr.us-east-1.amazonaws.com/my-own:1"
        );
        assert_eq!(
            map.resolve("registry.example.com/tensorflow-training:2"),
            "registry.example.com/tensorflow-training:2"
        );
    }

    #[test]
    fn a_map_file_overrides_and_adds_tagged_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.json");
        std::fs::write(
            &path,
            r#"{"tensorflow-training": "mine/tf:1", "sagemaker-xgboost:1.7-1": "mine/xgb:1.7"}"#,
        )
        .unwrap();
        let map = ImageMap::load(&path).unwrap();
        assert_eq!(
            map.resolve("1.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-training:2.13"),
            "mine/tf:1"
        );
        assert_eq!(
            map.resolve("1.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
            "mine/xgb:1.7"
        );
        assert_eq!(
            map.resolve("1.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5"),
            "sagedock/xgboost:latest",
            "another tag falls back to the repository's entry"
        );
        std::fs::write(&path, "[1]").unwrap();
        let err = ImageMap::load(&path).unwrap_err().to_string();
        assert!(err.contains("expected a JSON object"), "{err}");
    }
}
