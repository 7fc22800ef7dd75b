//! A batch transform job (CreateTransformJob): what it was asked to run over which data, and
//! where it stands — its status, the objects and records done so far, why it failed.
//!
//! Statuses follow SageMaker: `InProgress`, then `Completed`, `Failed` or (after
//! `Stopping`) `Stopped`. The defaults SageMaker applies (MaxPayloadInMB 6, one call in
//! flight, ModelClientConfig's 600 s and 3 retries, SplitType None, AssembleWith None) are
//! read here once; the values a container's `/execution-parameters` gives are applied by
//! the run, where the request leaves a member unset.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::training_job::S3DataType;
use super::JobStatus;

/// A transform job as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformJob {
    pub name: String,
    pub arn: String,
    pub created: f64,
    #[serde(rename = "input")]
    pub spec: TransformJobSpec,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub last_modified: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_end: Option<f64>,
    #[serde(default)]
    pub progress: Progress,
}

/// How far a job has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Input objects in all (known once they are listed).
    pub objects: u64,
    /// Objects whose output was written.
    pub objects_done: u64,
    /// Objects that failed.
    pub objects_failed: u64,
    /// Records transformed (in the objects done).
    pub records: u64,
}

impl TransformJob {
    /// A job that has just been accepted: `InProgress`.
    pub fn accepted(name: String, arn: String, spec: TransformJobSpec, now: f64) -> TransformJob {
        TransformJob {
            name,
            arn,
            created: now,
            spec,
            status: JobStatus::InProgress,
            failure_reason: None,
            last_modified: now,
            transform_start: None,
            transform_end: None,
            progress: Progress::default(),
        }
    }

    /// The transform itself has begun (the containers are healthy).
    pub fn begin(&mut self, now: f64) {
        self.transform_start.get_or_insert(now);
        self.last_modified = now;
    }

    /// Moves to `status`; a finished job does not move again.
    pub fn finish(&mut self, status: JobStatus, now: f64) {
        if self.status.is_terminal() {
            return;
        }
        self.status = status;
        if status.is_terminal() {
            self.transform_end.get_or_insert(now);
        }
        self.last_modified = now;
    }

    /// Ends the job as Failed with `reason` (SageMaker keeps the first 1024 characters).
    pub fn fail(&mut self, reason: &str, now: f64) {
        if self.status.is_terminal() {
            return;
        }
        self.failure_reason = Some(reason.chars().take(1024).collect());
        self.finish(JobStatus::Failed, now);
    }
}

/// CreateTransformJob's members, without its tags (DescribeTransformJob answers with them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformJobSpec {
    pub transform_job_name: String,
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_transforms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_client_config: Option<ModelClientConfig>,
    #[serde(
        rename = "MaxPayloadInMB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_payload_in_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_strategy: Option<BatchStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    pub transform_input: TransformInput,
    pub transform_output: TransformOutput,
    pub transform_resources: TransformResources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing: Option<DataProcessing>,
    /// Members kept and described, not acted on (DataCaptureConfig, ExperimentConfig).
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl TransformJobSpec {
    /// MaxPayloadInMB when neither the request nor the container sets it.
    pub const DEFAULT_MAX_PAYLOAD_MB: u32 = 6;
    /// MaxPayloadInMB's ceiling, and that of MaxConcurrentTransforms × MaxPayloadInMB.
    pub const MAX_PAYLOAD_MB: u32 = 100;

    pub fn split_type(&self) -> SplitType {
        self.transform_input.split_type.unwrap_or_default()
    }

    pub fn assemble_with(&self) -> AssembleWith {
        self.transform_output.assemble_with.unwrap_or_default()
    }

    pub fn gzip(&self) -> bool {
        self.transform_input.compression_type == Some(CompressionType::Gzip)
    }

    /// The call's time limit and how often a failed call is tried again.
    pub fn client(&self) -> (u32, u32) {
        let config = self.model_client_config.clone().unwrap_or_default();
        (
            config
                .invocations_timeout_in_seconds
                .unwrap_or(ModelClientConfig::DEFAULT_TIMEOUT_SECS),
            config
                .invocations_max_retries
                .unwrap_or(ModelClientConfig::DEFAULT_RETRIES),
        )
    }

    /// The DataProcessing that changes records (None when every member is the default).
    pub fn processing(&self) -> Option<&DataProcessing> {
        self.data_processing.as_ref().filter(|d| !d.is_identity())
    }
}

/// ModelClientConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocations_timeout_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocations_max_retries: Option<u32>,
}

impl ModelClientConfig {
    pub const DEFAULT_TIMEOUT_SECS: u32 = 600;
    pub const DEFAULT_RETRIES: u32 = 3;
}

/// BatchStrategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchStrategy {
    MultiRecord,
    SingleRecord,
}

impl BatchStrategy {
    /// As a container reads it in SAGEMAKER_BATCH_STRATEGY.
    pub fn env_value(self) -> &'static str {
        match self {
            BatchStrategy::MultiRecord => "MULTI_RECORD",
            BatchStrategy::SingleRecord => "SINGLE_RECORD",
        }
    }

    /// A container's `/execution-parameters` value: the API's spelling or the
    /// environment's (AWS's examples answer `MULTI_RECORD`).
    pub fn parse(text: &str) -> Option<BatchStrategy> {
        match text {
            "MultiRecord" | "MULTI_RECORD" => Some(BatchStrategy::MultiRecord),
            "SingleRecord" | "SINGLE_RECORD" => Some(BatchStrategy::SingleRecord),
            _ => None,
        }
    }
}

/// TransformInput.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformInput {
    pub data_source: TransformDataSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_type: Option<CompressionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_type: Option<SplitType>,
}

/// TransformDataSource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformDataSource {
    #[serde(rename = "S3DataSource")]
    pub s3_data_source: TransformS3DataSource,
}

/// TransformS3DataSource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformS3DataSource {
    #[serde(rename = "S3DataType")]
    pub s3_data_type: S3DataType,
    #[serde(rename = "S3Uri")]
    pub s3_uri: String,
}

impl Default for TransformS3DataSource {
    fn default() -> Self {
        TransformS3DataSource {
            s3_data_type: S3DataType::S3Prefix,
            s3_uri: String::new(),
        }
    }
}

/// CompressionType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompressionType {
    None,
    Gzip,
}

/// SplitType.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitType {
    #[default]
    None,
    Line,
    RecordIO,
    TFRecord,
}

/// AssembleWith.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssembleWith {
    #[default]
    None,
    Line,
}

/// TransformOutput.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformOutput {
    #[serde(rename = "S3OutputPath")]
    pub s3_output_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assemble_with: Option<AssembleWith>,
    /// KmsKeyId: kept and described; nothing is encrypted.
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// TransformResources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformResources {
    pub instance_type: String,
    pub instance_count: u32,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// DataProcessing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataProcessing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_source: Option<JoinSource>,
}

impl DataProcessing {
    /// `$`, `$` and no join: records pass unchanged.
    pub fn is_identity(&self) -> bool {
        let root = |f: &Option<String>| f.as_deref().is_none_or(|f| f.trim() == "$");
        root(&self.input_filter)
            && root(&self.output_filter)
            && self.join_source != Some(JoinSource::Input)
    }

    pub fn joins(&self) -> bool {
        self.join_source == Some(JoinSource::Input)
    }
}

/// JoinSource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinSource {
    Input,
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_reads_back_as_it_came() {
        let request = serde_json::json!({
            "TransformJobName": "t", "ModelName": "m", "MaxPayloadInMB": 1,
            "BatchStrategy": "MultiRecord",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
                               "ContentType": "text/csv", "SplitType": "Line", "CompressionType": "Gzip"},
            "TransformOutput": {"S3OutputPath": "s3://b/out/", "AssembleWith": "Line", "KmsKeyId": "k"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
            "DataProcessing": {"JoinSource": "Input", "OutputFilter": "$[0,-1]"},
            "ExperimentConfig": {"TrialName": "x"}
        });
        let spec: TransformJobSpec = serde_json::from_value(request.clone()).unwrap();
        assert_eq!(spec.split_type(), SplitType::Line);
        assert!(spec.gzip());
        assert_eq!(spec.client(), (600, 3));
        assert!(spec.processing().is_some());
        assert_eq!(serde_json::to_value(&spec).unwrap(), request);
    }

    #[test]
    fn default_processing_changes_nothing() {
        let p = DataProcessing {
            input_filter: Some("$".into()),
            output_filter: None,
            join_source: Some(JoinSource::None),
        };
        assert!(p.is_identity());
        assert!(!DataProcessing {
            join_source: Some(JoinSource::Input),
            ..p
        }
        .is_identity());
    }

    #[test]
    fn a_finished_job_stays_finished() {
        let mut job =
            TransformJob::accepted("t".into(), "arn".into(), TransformJobSpec::default(), 1.0);
        job.fail("ClientError: x", 2.0);
        job.finish(JobStatus::Completed, 3.0);
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.transform_end, Some(2.0));
    }
}
