//! The operations' inputs and outputs, typed, with AWS's member names. A request body is
//! checked against botocore's model, then parsed into one of these once; nothing after
//! that reads JSON.

use serde::{Deserialize, Serialize};

use crate::state::training_job::{MetricDatum, StatusTransition};
use crate::state::tuning_job::{ObjectiveType, ResourceLimits, TuningJobSpec};
use crate::state::{
    EndpointConfigSpec, EndpointStatus, JobStatus, ModelSpec, SecondaryStatus, ServerlessConfig,
    Tag, TrainingJobSpec, TransformJobSpec,
};

/// CreateModel.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateModelInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(flatten)]
    pub spec: ModelSpec,
}

/// CreateEndpointConfig.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointConfigInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(flatten)]
    pub spec: EndpointConfigSpec,
}

/// DescribeModel, DeleteModel.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelName {
    pub model_name: String,
}

/// DescribeEndpointConfig, DeleteEndpointConfig.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfigName {
    pub endpoint_config_name: String,
}

/// DescribeEndpoint, DeleteEndpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointName {
    pub endpoint_name: String,
}

/// CreateEndpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointInput {
    pub endpoint_name: String,
    pub endpoint_config_name: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// UpdateEndpoint (RetainAllVariantProperties and the deployment config are accepted and
/// not acted on: sagedock always deploys the new config blue/green).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateEndpointInput {
    pub endpoint_name: String,
    pub endpoint_config_name: String,
}

/// UpdateEndpointWeightsAndCapacities.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateWeightsInput {
    pub endpoint_name: String,
    pub desired_weights_and_capacities: Vec<DesiredWeightAndCapacity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DesiredWeightAndCapacity {
    pub variant_name: String,
    #[serde(default)]
    pub desired_weight: Option<f64>,
    #[serde(default)]
    pub desired_instance_count: Option<u32>,
}

/// SortBy of the List operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SortBy {
    Name,
    CreationTime,
    Status,
}

/// SortOrder of the List operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// ListModels, ListEndpointConfigs, ListEndpoints, ListTrainingJobs, ListTransformJobs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    pub name_contains: Option<String>,
    pub creation_time_before: Option<f64>,
    pub creation_time_after: Option<f64>,
    pub last_modified_time_before: Option<f64>,
    pub last_modified_time_after: Option<f64>,
    /// Checked against the operation's enum by botocore's model.
    pub status_equals: Option<String>,
    pub sort_by: Option<SortBy>,
    pub sort_order: Option<SortOrder>,
    pub max_results: Option<u32>,
    pub next_token: Option<String>,
}

/// AddTags.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsInput {
    pub resource_arn: String,
    pub tags: Vec<Tag>,
}

/// ListTags.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsInput {
    pub resource_arn: String,
}

/// DeleteTags.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteTagsInput {
    pub resource_arn: String,
    pub tag_keys: Vec<String>,
}

/// CreateModel's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelArn {
    pub model_arn: String,
}

/// CreateEndpointConfig's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfigArn {
    pub endpoint_config_arn: String,
}

/// CreateEndpoint's, UpdateEndpoint's and UpdateEndpointWeightsAndCapacities' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointArn {
    pub endpoint_arn: String,
}

/// An answer with no members.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// DescribeModel's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeModelOutput<'a> {
    #[serde(flatten)]
    pub spec: &'a ModelSpec,
    pub model_arn: &'a str,
    pub creation_time: f64,
}

/// DescribeEndpointConfig's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEndpointConfigOutput<'a> {
    #[serde(flatten)]
    pub spec: &'a EndpointConfigSpec,
    pub endpoint_config_arn: &'a str,
    pub creation_time: f64,
}

/// DescribeEndpoint's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEndpointOutput<'a> {
    pub endpoint_name: &'a str,
    pub endpoint_arn: &'a str,
    pub endpoint_config_name: &'a str,
    pub endpoint_status: EndpointStatus,
    pub creation_time: f64,
    pub last_modified_time: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_variants: Vec<ProductionVariantSummary<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_capture_config: Option<DataCaptureConfigSummary>,
}

/// DescribeEndpoint's DataCaptureConfig.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCaptureConfigSummary {
    pub enable_capture: bool,
    /// `Started` while the endpoint captures, else `Stopped`.
    pub capture_status: &'static str,
    pub current_sampling_percentage: u32,
    #[serde(rename = "DestinationS3Uri")]
    pub destination_s3_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductionVariantSummary<'a> {
    pub variant_name: &'a str,
    pub deployed_images: Vec<DeployedImage<'a>>,
    pub current_weight: f64,
    pub desired_weight: f64,
    pub current_instance_count: u32,
    pub desired_instance_count: u32,
    /// Serverless variants: their ServerlessConfig, current and desired alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_serverless_config: Option<ServerlessConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_serverless_config: Option<ServerlessConfig>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeployedImage<'a> {
    pub specified_image: &'a str,
    pub resolved_image: &'a str,
    pub resolution_time: f64,
}

/// An entry of ListModels.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelSummary {
    pub model_name: String,
    pub model_arn: String,
    pub creation_time: f64,
}

/// An entry of ListEndpointConfigs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfigSummary {
    pub endpoint_config_name: String,
    pub endpoint_config_arn: String,
    pub creation_time: f64,
}

/// An entry of ListEndpoints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSummary {
    pub endpoint_name: String,
    pub endpoint_arn: String,
    pub creation_time: f64,
    pub last_modified_time: f64,
    pub endpoint_status: EndpointStatus,
}

/// ListTags' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsOutput<'a> {
    pub tags: &'a [Tag],
}

/// CreateTrainingJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTrainingJobInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(flatten)]
    pub spec: TrainingJobSpec,
}

/// CreateTrainingJob's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrainingJobArn {
    pub training_job_arn: String,
}

/// DescribeTrainingJob, StopTrainingJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrainingJobName {
    pub training_job_name: String,
}

/// DescribeTrainingJob's answer: what was asked, and where the job stands.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTrainingJobOutput<'a> {
    #[serde(flatten)]
    pub spec: &'a TrainingJobSpec,
    pub training_job_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuning_job_arn: Option<&'a str>,
    pub model_artifacts: ModelArtifacts,
    pub training_job_status: JobStatus,
    pub secondary_status: SecondaryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_end_time: Option<f64>,
    pub last_modified_time: f64,
    pub secondary_status_transitions: &'a [StatusTransition],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub final_metric_data_list: &'a [MetricDatum],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_time_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billable_time_in_seconds: Option<u64>,
}

/// ModelArtifacts.
#[derive(Debug, Serialize)]
pub struct ModelArtifacts {
    #[serde(rename = "S3ModelArtifacts")]
    pub s3_model_artifacts: String,
}

/// An entry of ListTrainingJobs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrainingJobSummary {
    pub training_job_name: String,
    pub training_job_arn: String,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_end_time: Option<f64>,
    pub last_modified_time: f64,
    pub training_job_status: JobStatus,
    pub secondary_status: SecondaryStatus,
}

/// CreateHyperParameterTuningJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTuningJobInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(flatten)]
    pub spec: TuningJobSpec,
}

/// CreateHyperParameterTuningJob's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobArn {
    pub hyper_parameter_tuning_job_arn: String,
}

/// DescribeHyperParameterTuningJob, StopHyperParameterTuningJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobName {
    pub hyper_parameter_tuning_job_name: String,
}

/// DescribeHyperParameterTuningJob's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTuningJobOutput<'a> {
    #[serde(flatten)]
    pub spec: &'a TuningJobSpec,
    pub hyper_parameter_tuning_job_arn: &'a str,
    pub hyper_parameter_tuning_job_status: JobStatus,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hyper_parameter_tuning_end_time: Option<f64>,
    pub last_modified_time: f64,
    pub training_job_status_counters: StatusCounters,
    pub objective_status_counters: ObjectiveCounters,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_training_job: Option<TrialSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
}

/// TrainingJobStatusCounters.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusCounters {
    pub completed: u32,
    pub in_progress: u32,
    pub retryable_error: u32,
    pub non_retryable_error: u32,
    pub stopped: u32,
}

/// ObjectiveStatusCounters.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectiveCounters {
    pub succeeded: u32,
    pub pending: u32,
    pub failed: u32,
}

/// HyperParameterTrainingJobSummary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrialSummary {
    pub training_job_name: String,
    pub training_job_arn: String,
    pub tuning_job_name: String,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_end_time: Option<f64>,
    pub training_job_status: JobStatus,
    pub tuned_hyper_parameters: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_hyper_parameter_tuning_job_objective_metric: Option<ObjectiveMetric>,
    pub objective_status: &'static str,
}

/// FinalHyperParameterTuningJobObjectiveMetric.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectiveMetric {
    #[serde(rename = "Type")]
    pub kind: ObjectiveType,
    pub metric_name: String,
    pub value: f64,
}

/// An entry of ListHyperParameterTuningJobs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobSummary {
    pub hyper_parameter_tuning_job_name: String,
    pub hyper_parameter_tuning_job_arn: String,
    pub hyper_parameter_tuning_job_status: JobStatus,
    pub strategy: String,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hyper_parameter_tuning_end_time: Option<f64>,
    pub last_modified_time: f64,
    pub training_job_status_counters: StatusCounters,
    pub objective_status_counters: ObjectiveCounters,
    pub resource_limits: ResourceLimits,
}

/// ListTrainingJobsForHyperParameterTuningJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTrialsInput {
    pub hyper_parameter_tuning_job_name: String,
    pub next_token: Option<String>,
    pub max_results: Option<u32>,
    pub status_equals: Option<String>,
    pub sort_by: Option<TrialSortBy>,
    pub sort_order: Option<SortOrder>,
}

/// TrainingJobSortByOptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TrialSortBy {
    Name,
    CreationTime,
    Status,
    FinalObjectiveMetricValue,
}

/// CreateTransformJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTransformJobInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(flatten)]
    pub spec: TransformJobSpec,
}

/// CreateTransformJob's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformJobArn {
    pub transform_job_arn: String,
}

/// DescribeTransformJob, StopTransformJob.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformJobName {
    pub transform_job_name: String,
}

/// DescribeTransformJob's answer: what was asked, and where the job stands.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTransformJobOutput<'a> {
    #[serde(flatten)]
    pub spec: &'a TransformJobSpec,
    pub transform_job_arn: &'a str,
    pub transform_job_status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform_start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform_end_time: Option<f64>,
}

/// An entry of ListTransformJobs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformJobSummary {
    pub transform_job_name: String,
    pub transform_job_arn: String,
    pub creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform_end_time: Option<f64>,
    pub last_modified_time: f64,
    pub transform_job_status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}
