//! A training job (CreateTrainingJob): what it was asked to run, and where it stands —
//! its status, secondary status and their transitions, the final values of its metrics,
//! where its model went.
//!
//! Statuses follow SageMaker: `InProgress` through the secondary statuses `Starting`,
//! `Downloading`, `Training`, `Uploading`, then `Completed`, `Failed` or (after
//! `Stopping`) `Stopped`; a job past its MaxRuntimeInSeconds ends `Stopped` with the
//! secondary status `MaxRuntimeExceeded`.

use std::collections::BTreeMap;

use super::JobStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A training job as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingJob {
    pub name: String,
    pub arn: String,
    pub created: f64,
    #[serde(rename = "input")]
    pub spec: TrainingJobSpec,
    /// The image that runs (the requested one, or what the image map made of it).
    pub image: String,
    pub status: JobStatus,
    pub secondary_status: SecondaryStatus,
    pub transitions: Vec<StatusTransition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub last_modified: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_end: Option<f64>,
    #[serde(default)]
    pub final_metrics: Vec<MetricDatum>,
    /// The tuning job that launched it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning_job_arn: Option<String>,
}

impl TrainingJob {
    /// A job that has just been accepted: `InProgress`, `Starting`.
    pub fn accepted(
        name: String,
        arn: String,
        spec: TrainingJobSpec,
        image: String,
        now: f64,
    ) -> TrainingJob {
        let mut job = TrainingJob {
            name,
            arn,
            created: now,
            spec,
            image,
            status: JobStatus::InProgress,
            secondary_status: SecondaryStatus::Starting,
            transitions: Vec::new(),
            failure_reason: None,
            last_modified: now,
            training_start: None,
            training_end: None,
            final_metrics: Vec::new(),
            tuning_job_arn: None,
        };
        job.transitions.push(StatusTransition {
            status: SecondaryStatus::Starting,
            start_time: now,
            end_time: None,
            status_message: SecondaryStatus::Starting.message().to_string(),
        });
        job
    }

    /// Moves to `secondary` (and the primary status it implies), closing the transition
    /// before it. A finished job does not move again.
    pub fn advance(&mut self, secondary: SecondaryStatus, now: f64) {
        if self.status.is_terminal() {
            return;
        }
        if let Some(last) = self.transitions.last_mut() {
            if last.status == secondary {
                return;
            }
            last.end_time.get_or_insert(now);
        }
        self.secondary_status = secondary;
        self.status = secondary.primary();
        let closes = self.status.is_terminal();
        self.transitions.push(StatusTransition {
            status: secondary,
            start_time: now,
            end_time: closes.then_some(now),
            status_message: secondary.message().to_string(),
        });
        if secondary == SecondaryStatus::Training {
            self.training_start.get_or_insert(now);
        }
        if closes {
            self.training_end.get_or_insert(now);
        }
        self.last_modified = now;
    }

    /// Ends the job as Failed with `reason` (SageMaker keeps the first 1024 characters).
    pub fn fail(&mut self, reason: &str, now: f64) {
        if self.status.is_terminal() {
            return;
        }
        self.failure_reason = Some(reason.chars().take(1024).collect());
        self.advance(SecondaryStatus::Failed, now);
    }

    /// `s3://…/<job>/output/model.tar.gz` (with CompressionType NONE the folder
    /// `…/output/model/`): where the model goes.
    pub fn model_artifacts(&self) -> String {
        if self.uncompressed_model() {
            format!("{}/model/", self.output_prefix())
        } else {
            format!("{}/model.tar.gz", self.output_prefix())
        }
    }

    /// `s3://…/<job>/output/output.tar.gz`: where `/opt/ml/output/data` goes.
    pub fn output_data_location(&self) -> String {
        format!("{}/output.tar.gz", self.output_prefix())
    }

    fn output_prefix(&self) -> String {
        format!(
            "{}/{}/output",
            self.spec
                .output_data_config
                .s3_output_path
                .trim_end_matches('/'),
            self.name
        )
    }

    /// OutputDataConfig.CompressionType NONE: the model's files are uploaded as they are.
    pub fn uncompressed_model(&self) -> bool {
        self.spec
            .output_data_config
            .compression_type
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("NONE"))
    }

    /// The instance count, also for InstanceGroups.
    pub fn instance_count(&self) -> u32 {
        self.spec.resource_config.instance_count.unwrap_or(1)
    }
}

/// SecondaryStatus (the ones a local job passes through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecondaryStatus {
    Starting,
    Downloading,
    Training,
    Uploading,
    Stopping,
    Stopped,
    MaxRuntimeExceeded,
    Completed,
    Failed,
}

impl SecondaryStatus {
    /// The primary status this secondary status belongs to.
    pub fn primary(self) -> JobStatus {
        match self {
            SecondaryStatus::Starting
            | SecondaryStatus::Downloading
            | SecondaryStatus::Training
            | SecondaryStatus::Uploading => JobStatus::InProgress,
            SecondaryStatus::Stopping => JobStatus::Stopping,
            SecondaryStatus::Stopped | SecondaryStatus::MaxRuntimeExceeded => JobStatus::Stopped,
            SecondaryStatus::Completed => JobStatus::Completed,
            SecondaryStatus::Failed => JobStatus::Failed,
        }
    }

    /// The StatusMessage SageMaker gives the transition.
    pub fn message(self) -> &'static str {
        match self {
            SecondaryStatus::Starting => "Preparing the instances for training",
            SecondaryStatus::Downloading => "Downloading input data",
            SecondaryStatus::Training => "Training image download completed. Training in progress.",
            SecondaryStatus::Uploading => "Uploading generated training model",
            SecondaryStatus::Stopping => "Stopping the training job",
            SecondaryStatus::Stopped => "Training job stopped",
            SecondaryStatus::MaxRuntimeExceeded => {
                "Job stopped because it exceeded MaxRuntimeInSeconds"
            }
            SecondaryStatus::Completed => "Training job completed",
            SecondaryStatus::Failed => "Training job failed",
        }
    }
}

/// One entry of SecondaryStatusTransitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusTransition {
    pub status: SecondaryStatus,
    pub start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    pub status_message: String,
}

/// One entry of FinalMetricDataList.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDatum {
    pub metric_name: String,
    pub value: f64,
    pub timestamp: f64,
}

/// CreateTrainingJob's members, without its tags (DescribeTrainingJob answers with them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrainingJobSpec {
    pub training_job_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper_parameters: Option<BTreeMap<String, String>>,
    pub algorithm_specification: AlgorithmSpecification,
    pub role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_data_config: Option<Vec<Channel>>,
    pub output_data_config: OutputDataConfig,
    pub resource_config: ResourceConfig,
    pub stopping_condition: StoppingCondition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_network_isolation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_config: Option<CheckpointConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// Members kept and described, not acted on (VpcConfig, DebugHookConfig,
    /// ProfilerConfig, ExperimentConfig, RetryStrategy, …).
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl TrainingJobSpec {
    /// The spec with the members SageMaker fills in when they are not given, as
    /// DescribeTrainingJob answers them (the SageMaker Python SDK's `attach` reads
    /// `OutputDataConfig.KmsKeyId` and `StoppingCondition.MaxRuntimeInSeconds`
    /// unconditionally).
    pub fn with_defaults(mut self) -> TrainingJobSpec {
        self.stopping_condition
            .max_runtime_in_seconds
            .get_or_insert(StoppingCondition::DEFAULT_MAX_RUNTIME);
        self.output_data_config
            .compression_type
            .get_or_insert_with(|| "GZIP".to_string());
        self.output_data_config
            .echoed
            .entry("KmsKeyId")
            .or_insert_with(|| Value::String(String::new()));
        self.enable_network_isolation.get_or_insert(false);
        for flag in [
            "EnableInterContainerTrafficEncryption",
            "EnableManagedSpotTraining",
        ] {
            self.echoed.entry(flag).or_insert(Value::Bool(false));
        }
        self
    }

    pub fn hyperparameters(&self) -> BTreeMap<String, String> {
        self.hyper_parameters.clone().unwrap_or_default()
    }

    pub fn channels(&self) -> &[Channel] {
        self.input_data_config.as_deref().unwrap_or(&[])
    }

    pub fn network_isolation(&self) -> bool {
        self.enable_network_isolation.unwrap_or(false)
    }
}

/// AlgorithmSpecification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlgorithmSpecification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_name: Option<String>,
    pub training_input_mode: InputMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_definitions: Option<Vec<MetricDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_arguments: Option<Vec<String>>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// TrainingInputMode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputMode {
    #[default]
    File,
    FastFile,
    Pipe,
}

impl InputMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InputMode::File => "File",
            InputMode::FastFile => "FastFile",
            InputMode::Pipe => "Pipe",
        }
    }
}

/// MetricDefinition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDefinition {
    pub name: String,
    pub regex: String,
}

/// One input channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Channel {
    pub channel_name: String,
    pub data_source: DataSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_wrapper_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_mode: Option<InputMode>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// DataSource (its S3 form; the file-system and dataset forms are refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_data_source: Option<S3DataSource>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// S3DataSource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3DataSource {
    pub s3_data_type: S3DataType,
    pub s3_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_data_distribution_type: Option<DistributionType>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// S3DataType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum S3DataType {
    S3Prefix,
    ManifestFile,
    AugmentedManifestFile,
    Converse,
}

/// S3DataDistributionType.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistributionType {
    #[default]
    FullyReplicated,
    ShardedByS3Key,
}

impl DistributionType {
    pub fn as_str(self) -> &'static str {
        match self {
            DistributionType::FullyReplicated => "FullyReplicated",
            DistributionType::ShardedByS3Key => "ShardedByS3Key",
        }
    }
}

/// OutputDataConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputDataConfig {
    #[serde(rename = "S3OutputPath")]
    pub s3_output_path: String,
    /// `NONE`: the model folder is uploaded as it is, not packed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_type: Option<String>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// ResourceConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    #[serde(
        rename = "VolumeSizeInGB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_size_in_gb: Option<u32>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// StoppingCondition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoppingCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_in_seconds: Option<u64>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl StoppingCondition {
    /// SageMaker's default: one day.
    pub const DEFAULT_MAX_RUNTIME: u64 = 86_400;

    pub fn max_runtime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.max_runtime_in_seconds
                .unwrap_or(Self::DEFAULT_MAX_RUNTIME),
        )
    }
}

/// CheckpointConfig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointConfig {
    #[serde(rename = "S3Uri")]
    pub s3_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
}

impl CheckpointConfig {
    pub const DEFAULT_LOCAL_PATH: &'static str = "/opt/ml/checkpoints";

    pub fn local_path(&self) -> &str {
        self.local_path
            .as_deref()
            .unwrap_or(Self::DEFAULT_LOCAL_PATH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> TrainingJob {
        let spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
            "TrainingJobName": "j",
            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "OutputDataConfig": {"S3OutputPath": "s3://b/out/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "DebugHookConfig": {"S3OutputPath": "s3://b/"}
        }))
        .unwrap();
        TrainingJob::accepted("j".into(), "arn".into(), spec, "img".into(), 1.0)
    }

    #[test]
    fn statuses_move_forward_and_close_their_transitions() {
        let mut job = job();
        job.advance(SecondaryStatus::Downloading, 2.0);
        job.advance(SecondaryStatus::Training, 3.0);
        job.advance(SecondaryStatus::Uploading, 5.0);
        job.advance(SecondaryStatus::Completed, 6.0);
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.training_start, Some(3.0));
        assert_eq!(job.training_end, Some(6.0));
        let ends: Vec<_> = job.transitions.iter().map(|t| t.end_time).collect();
        assert_eq!(
            ends,
            [Some(2.0), Some(3.0), Some(5.0), Some(6.0), Some(6.0)]
        );
        job.fail("late", 7.0);
        assert_eq!(job.status, JobStatus::Completed, "a finished job stays");
        assert_eq!(job.failure_reason, None);
    }

    #[test]
    fn failure_reasons_keep_1024_characters_and_the_model_goes_under_output() {
        let mut job = job();
        job.fail(&"x".repeat(2000), 2.0);
        assert_eq!(job.failure_reason.as_ref().unwrap().len(), 1024);
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.model_artifacts(), "s3://b/out/j/output/model.tar.gz");
        let echoed = serde_json::to_value(&job.spec).unwrap();
        assert_eq!(echoed["DebugHookConfig"]["S3OutputPath"], "s3://b/");
        assert_eq!(job.spec.stopping_condition.max_runtime().as_secs(), 60);
    }
}
