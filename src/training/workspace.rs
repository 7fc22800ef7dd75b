//! The `/opt/ml` tree of each host of a training job, as SageMaker lays it out
//! (CONTRACT §5, CONTRACT-training B.5): `input/config/{hyperparameters,resourceconfig,
//! inputdataconfig}.json` (and `checkpointconfig.json` when the job checkpoints),
//! `input/data/<channel>`, `model`, `output/data`, `code` when the job ships code, and the
//! checkpoint folder. Each host has its own tree under the job's folder in sagedock's data
//! directory; the container gets each part mounted where SageMaker puts it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::state::training_job::{DistributionType, InputMode, TrainingJobSpec};

/// The instance group name SageMaker's toolkit assumes for a job without InstanceGroups.
pub const GROUP: &str = "homogeneousCluster";

/// One host's tree.
#[derive(Debug, Clone)]
pub struct HostTree {
    /// `algo-<n>`.
    pub host: String,
    pub root: PathBuf,
}

impl HostTree {
    pub fn input(&self) -> PathBuf {
        self.root.join("input")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("input/config")
    }
    pub fn channel(&self, name: &str) -> PathBuf {
        self.root.join("input/data").join(name)
    }
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }
    pub fn output(&self) -> PathBuf {
        self.root.join("output")
    }
    pub fn output_data(&self) -> PathBuf {
        self.root.join("output/data")
    }
    pub fn code(&self) -> PathBuf {
        self.root.join("code")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Makes the folders. Those the container writes are open to every user: an image may
    /// run its program as a user of its own.
    pub fn create(&self, spec: &TrainingJobSpec) -> std::io::Result<()> {
        for dir in [self.config(), self.root.join("input/data")] {
            std::fs::create_dir_all(dir)?;
        }
        let mut writable = vec![self.model(), self.output(), self.output_data()];
        if spec.checkpoint_config.is_some() {
            writable.push(self.checkpoints());
        }
        for dir in writable {
            std::fs::create_dir_all(&dir)?;
            open_to_all(&dir)?;
        }
        Ok(())
    }

    /// Writes the configuration files the container reads.
    pub fn write_config(
        &self,
        spec: &TrainingJobSpec,
        hosts: &[String],
        instance_type: &str,
    ) -> std::io::Result<()> {
        let config = self.config();
        write_json(
            &config.join("hyperparameters.json"),
            &json!(spec.hyperparameters()),
        )?;
        write_json(
            &config.join("resourceconfig.json"),
            &resource_config(&self.host, hosts, instance_type),
        )?;
        write_json(
            &config.join("inputdataconfig.json"),
            &input_data_config(spec),
        )?;
        if let Some(checkpoints) = &spec.checkpoint_config {
            write_json(
                &config.join("checkpointconfig.json"),
                &json!({"LocalPath": checkpoints.local_path(), "S3Path": checkpoints.s3_uri}),
            )?;
        }
        Ok(())
    }
}

/// The hosts of a job of `count` instances, in the order SageMaker lists them (sorted as
/// text: `algo-10` before `algo-2`).
pub fn hosts(count: u32) -> Vec<String> {
    let mut hosts: Vec<String> = (1..=count).map(|n| format!("algo-{n}")).collect();
    hosts.sort();
    hosts
}

/// resourceconfig.json for `host`.
pub fn resource_config(host: &str, hosts: &[String], instance_type: &str) -> Value {
    json!({
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": GROUP,
        "hosts": hosts,
        "instance_groups": [{
            "instance_group_name": GROUP,
            "instance_type": instance_type,
            "hosts": hosts,
        }],
        "network_interface_name": "eth0",
    })
}

/// inputdataconfig.json: per channel its content type (when given), input mode (the
/// channel's, else the job's), distribution and record wrapper.
pub fn input_data_config(spec: &TrainingJobSpec) -> Value {
    let job_mode = spec.algorithm_specification.training_input_mode;
    let channels: BTreeMap<&str, Value> = spec
        .channels()
        .iter()
        .map(|c| {
            let mut entry = Map::new();
            if let Some(content_type) = &c.content_type {
                entry.insert("ContentType".into(), json!(content_type));
            }
            let mode: InputMode = c.input_mode.unwrap_or(job_mode);
            entry.insert("TrainingInputMode".into(), json!(mode.as_str()));
            let distribution = c
                .data_source
                .s3_data_source
                .as_ref()
                .and_then(|s| s.s3_data_distribution_type)
                .unwrap_or(DistributionType::FullyReplicated);
            entry.insert("S3DistributionType".into(), json!(distribution.as_str()));
            entry.insert(
                "RecordWrapperType".into(),
                json!(c.record_wrapper_type.as_deref().unwrap_or("None")),
            );
            (c.channel_name.as_str(), Value::Object(entry))
        })
        .collect();
    json!(channels)
}

fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
}

#[cfg(unix)]
fn open_to_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

#[cfg(not(unix))]
fn open_to_all(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TrainingJobSpec {
        serde_json::from_value(json!({
            "TrainingJobName": "j",
            "HyperParameters": {"epochs": "2", "sagemaker_program": "\"train.py\""},
            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
            "RoleArn": "r",
            "InputDataConfig": [
                {"ChannelName": "training", "ContentType": "text/csv",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/t/"}}},
                {"ChannelName": "validation", "InputMode": "FastFile",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/v/",
                                                  "S3DataDistributionType": "ShardedByS3Key"}}}
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
            "StoppingCondition": {},
            "CheckpointConfig": {"S3Uri": "s3://b/ckpt"}
        }))
        .unwrap()
    }

    #[test]
    fn config_files_are_written_as_sagemaker_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let tree = HostTree {
            host: "algo-2".into(),
            root: dir.path().join("algo-2"),
        };
        let spec = spec();
        tree.create(&spec).unwrap();
        let hosts = hosts(2);
        tree.write_config(&spec, &hosts, "ml.m5.large").unwrap();
        let read = |name: &str| -> Value {
            serde_json::from_slice(&std::fs::read(tree.config().join(name)).unwrap()).unwrap()
        };
        assert_eq!(
            read("hyperparameters.json")["sagemaker_program"],
            "\"train.py\""
        );
        let resources = read("resourceconfig.json");
        assert_eq!(resources["current_host"], "algo-2");
        assert_eq!(resources["hosts"], json!(["algo-1", "algo-2"]));
        assert_eq!(
            resources["instance_groups"][0]["instance_group_name"],
            GROUP
        );
        let inputs = read("inputdataconfig.json");
        assert_eq!(
            inputs["training"],
            json!({"ContentType": "text/csv", "TrainingInputMode": "File",
                   "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"})
        );
        assert_eq!(inputs["validation"]["TrainingInputMode"], "FastFile");
        assert_eq!(inputs["validation"]["S3DistributionType"], "ShardedByS3Key");
        assert_eq!(
            read("checkpointconfig.json")["LocalPath"],
            "/opt/ml/checkpoints"
        );
        assert!(tree.checkpoints().is_dir());
    }

    #[test]
    fn hosts_are_listed_as_text_sorts_them() {
        assert_eq!(hosts(1), ["algo-1"]);
        let ten = hosts(10);
        assert_eq!(&ten[..3], ["algo-1", "algo-10", "algo-2"]);
    }
}
