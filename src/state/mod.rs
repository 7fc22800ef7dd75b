//! The SageMaker resources sagedock keeps, as typed records, and the store they live in.
//!
//! Each resource has its home here, named after it: [`model`] (CreateModel),
//! [`endpoint_config`] (CreateEndpointConfig), [`endpoint`] (an endpoint's status and
//! variants), [`training_job`] (CreateTrainingJob: what runs and where it stands),
//! [`tuning_job`] (CreateHyperParameterTuningJob and its trials), [`transform_job`] (CreateTransformJob), [`job_status`] (the status the three jobs share) and [`tag`]. The records are the API's own shapes (serde with AWS's member
//! names), so DescribeModel and DescribeEndpointConfig answer with what was created; the
//! members sagedock acts on are typed fields, the ones it only keeps and describes (VpcConfig,
//! KmsKeyId, …) are held as they came, in each shape's `echoed`.
//!
//! Defaults live here once: a variant's weight and instance count, its instance type.
//!
//! Does not: validate requests (the control plane does, against botocore's model) or run
//! anything.

pub mod endpoint;
pub mod endpoint_config;
pub mod job_status;
pub mod model;
pub mod store;
pub mod tag;
pub mod training_job;
pub mod transform_job;
pub mod tuning_job;

pub use endpoint::{Endpoint, EndpointStatus, VariantState};
pub use endpoint_config::{
    AsyncInferenceConfig, DataCaptureConfig, EndpointConfig, EndpointConfigSpec, ProductionVariant,
    ServerlessConfig,
};
pub use job_status::JobStatus;
pub use model::{ContainerDefinition, ContainerMode, ExecutionMode, Model, ModelSpec};
pub use store::{Record, Store, StoreError};
pub use tag::{Tag, TagSet};
pub use training_job::{SecondaryStatus, TrainingJob, TrainingJobSpec};
pub use transform_job::{TransformJob, TransformJobSpec};
pub use tuning_job::TuningJob;

/// Seconds since the epoch, as AWS JSON timestamps are sent.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .map(|s| (s * 1000.0).round() / 1000.0)
        .unwrap_or(0.0)
}
