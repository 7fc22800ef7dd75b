//! A hyperparameter tuning job (CreateHyperParameterTuningJob): what it searches, its
//! status, and the trials it launched (each a training job of its own, which holds the
//! trial's status and metrics).

use std::collections::BTreeMap;

use super::JobStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::training_job::{
    AlgorithmSpecification, Channel, CheckpointConfig, OutputDataConfig, ResourceConfig,
    StoppingCondition,
};

/// The hyperparameter SageMaker adds to every trial: the objective's metric name.
pub const OBJECTIVE_HYPERPARAMETER: &str = "_tuning_objective_metric";

/// A tuning job as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuningJob {
    pub name: String,
    pub arn: String,
    pub created: f64,
    #[serde(rename = "input")]
    pub spec: TuningJobSpec,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub last_modified: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// The trials launched, in order.
    #[serde(default)]
    pub trials: Vec<Trial>,
}

impl TuningJob {
    /// Ends the job with `status` (and a reason for Failed); a finished job stays finished.
    pub fn finish(&mut self, status: JobStatus, reason: Option<&str>, now: f64) {
        if self.status.is_terminal() {
            return;
        }
        self.status = status;
        self.failure_reason = reason.map(|r| r.chars().take(1024).collect());
        self.end_time = Some(now);
        self.last_modified = now;
    }
}

/// One trial: its training job and the values it was given for the tuned hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub training_job_name: String,
    pub tuned: BTreeMap<String, String>,
}

/// CreateHyperParameterTuningJob's members, without its tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobSpec {
    pub hyper_parameter_tuning_job_name: String,
    pub hyper_parameter_tuning_job_config: TuningJobConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job_definition: Option<TrainingJobDefinition>,
    /// Kept and described (TrainingJobDefinitions, WarmStartConfig, Autotune are refused
    /// when given; see the control plane).
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// HyperParameterTuningJobConfig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TuningJobConfig {
    pub strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper_parameter_tuning_job_objective: Option<Objective>,
    pub resource_limits: ResourceLimits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_ranges: Option<ParameterRanges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job_early_stopping_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u32>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// HyperParameterTuningJobObjective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Objective {
    #[serde(rename = "Type")]
    pub kind: ObjectiveType,
    pub metric_name: String,
}

/// HyperParameterTuningJobObjectiveType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectiveType {
    Maximize,
    Minimize,
}

/// ResourceLimits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_number_of_training_jobs: Option<u32>,
    pub max_parallel_training_jobs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_in_seconds: Option<u64>,
}

/// ParameterRanges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterRanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_parameter_ranges: Option<Vec<NumericRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_parameter_ranges: Option<Vec<NumericRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_parameter_ranges: Option<Vec<CategoricalRange>>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// IntegerParameterRange, ContinuousParameterRange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NumericRange {
    pub name: String,
    pub min_value: String,
    pub max_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_type: Option<String>,
}

/// CategoricalParameterRange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CategoricalRange {
    pub name: String,
    pub values: Vec<String>,
}

/// HyperParameterTrainingJobDefinition: what every trial runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrainingJobDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_hyper_parameters: Option<BTreeMap<String, String>>,
    pub algorithm_specification: AlgorithmSpecification,
    pub role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_data_config: Option<Vec<Channel>>,
    pub output_data_config: OutputDataConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_config: Option<ResourceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper_parameter_tuning_resource_config: Option<ResourceConfig>,
    pub stopping_condition: StoppingCondition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_network_isolation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_config: Option<CheckpointConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}
