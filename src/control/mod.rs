//! The SageMaker control plane (AWS JSON 1.1): models, endpoint configs, endpoints, tags,
//! training jobs, hyperparameter tuning jobs and batch transform jobs.
//!
//! A request is decoded once at the edge ([`ControlPlane::handle`]): its body checked
//! against botocore's model (types, ranges, lengths, patterns, enums; the message AWS
//! would give), then parsed into the operation's typed input ([`shapes`]). The operations
//! ([`models`], [`endpoint_configs`], [`endpoints`], [`tags`], [`training_jobs`],
//! [`tuning_jobs`], [`transform_jobs`]) apply
//! SageMaker's own rules, keep the resources in the [`crate::state::Store`], and hand
//! endpoint work to the [`lifecycle`], which deploys plans ([`plan`]) and writes status
//! back, and training jobs to the [`crate::training::Trainer`] (a tuning job's trials
//! too, launched by the tuner in [`tuning_jobs`]), and transform jobs with their plan to
//! the [`crate::transform::Transformer`]. Errors take their
//! AWS shape in one place ([`error`]).
//!
//! Does not: proxy invocations (see `endpoint`), or talk to Docker (see `deploy`).

mod endpoint_configs;
mod endpoints;
pub mod error;
pub mod lifecycle;
mod list;
mod models;
pub mod plan;
pub mod shapes;
mod tags;
mod training_jobs;
mod transform_jobs;
mod tuning_jobs;

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use error::AwsError;
use lifecycle::Lifecycle;

use crate::deploy::Deployer;
use crate::endpoint::Router;
use crate::http::{full, Body};
use crate::state::Store;
use crate::storage::ModelLocation;
use crate::training::{TrainOptions, Trainer, TrainerParts};
use crate::transform::Transformer;
use training_jobs::Jobs;
use tuning_jobs::Tuner;

/// As whom and where the control plane answers.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    pub account: String,
}

impl Settings {
    /// A resource's ARN (the name lower-cased, as SageMaker writes it).
    pub fn arn(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:aws:sagemaker:{}:{}:{kind}/{}",
            self.region,
            self.account,
            name.to_lowercase()
        )
    }
}

/// How the control plane deploys and serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// ContainerStartupHealthCheckTimeoutInSeconds when a variant does not set it.
    pub health_timeout: Duration,
    /// How long an invocation waits for a multi-model load.
    pub model_load_wait: Duration,
    pub deploy: crate::deploy::DeployOptions,
}

/// The operations sagedock serves.
pub(crate) const OPERATIONS: [&str; 30] = [
    "CreateModel",
    "DescribeModel",
    "ListModels",
    "DeleteModel",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "ListEndpointConfigs",
    "DeleteEndpointConfig",
    "CreateEndpoint",
    "DescribeEndpoint",
    "ListEndpoints",
    "DeleteEndpoint",
    "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities",
    "AddTags",
    "ListTags",
    "DeleteTags",
    "CreateTrainingJob",
    "DescribeTrainingJob",
    "ListTrainingJobs",
    "StopTrainingJob",
    "CreateHyperParameterTuningJob",
    "DescribeHyperParameterTuningJob",
    "ListHyperParameterTuningJobs",
    "ListTrainingJobsForHyperParameterTuningJob",
    "StopHyperParameterTuningJob",
    "CreateTransformJob",
    "DescribeTransformJob",
    "ListTransformJobs",
    "StopTransformJob",
];

/// The control plane.
pub struct ControlPlane {
    settings: Settings,
    store: Arc<Store>,
    lifecycle: Arc<Lifecycle>,
    jobs: Arc<Jobs>,
    tuner: Arc<Tuner>,
    transformer: Arc<Transformer>,
    /// ContainerStartupHealthCheckTimeout of a transform job's containers.
    health_timeout: Duration,
}

type OpResult = Result<Value, AwsError>;

impl ControlPlane {
    /// The control plane over `store`, deploying with `deployer` and publishing endpoints
    /// to `router`, running training jobs with `trainer`. `health_timeout` is the default
    /// ContainerStartupHealthCheckTimeout.
    pub fn new(
        settings: Settings,
        store: Arc<Store>,
        deployer: Arc<Deployer>,
        router: Arc<Router>,
        trainer: Arc<Trainer>,
        transformer: Arc<Transformer>,
        health_timeout: Duration,
    ) -> Arc<ControlPlane> {
        let lifecycle = Lifecycle::new(
            settings.clone(),
            store.clone(),
            deployer,
            router,
            health_timeout,
        );
        let jobs = Arc::new(Jobs {
            settings: settings.clone(),
            store: store.clone(),
            trainer,
        });
        let tuner = Tuner::new(jobs.clone());
        Arc::new(ControlPlane {
            settings,
            store,
            lifecycle,
            jobs,
            tuner,
            transformer,
            health_timeout,
        })
    }

    /// Everything `sagedock up` serves, over the state in `data_dir` (the caller holds its
    /// lock, `owner`): the control plane and the router it publishes endpoints to, reading
    /// and writing `s3://` locations in `storage`, recording job output in `record`.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        settings: Settings,
        data_dir: &std::path::Path,
        owner: String,
        engine: crate::runtime::Engine,
        cache: crate::artifact::Cache,
        storage: crate::storage::Storage,
        record: Arc<crate::logs::LogRecord>,
        options: Options,
    ) -> Result<(Arc<ControlPlane>, Arc<Router>), crate::state::StoreError> {
        let store = Arc::new(Store::open(data_dir)?);
        let router = Arc::new(
            Router::new(&settings.account, &settings.region)
                .with_storage(storage.clone())
                .with_model_load_wait(options.model_load_wait),
        );
        let train = TrainOptions {
            pull: options.deploy.pull,
            cpu_only: options.deploy.cpu_only,
            images: options.deploy.images.clone(),
        };
        let deployer = Arc::new(Deployer::new(
            engine.clone(),
            cache,
            storage.clone(),
            owner.clone(),
            settings.region.clone(),
            options.deploy,
        ));
        let transformer = Transformer::new(
            deployer.clone(),
            record.clone(),
            store.clone(),
            data_dir.join("transform"),
        );
        let trainer = Trainer::new(TrainerParts {
            engine,
            storage,
            networks: deployer.networks().clone(),
            record,
            store: store.clone(),
            owner,
            region: settings.region.clone(),
            work: data_dir.join("training"),
            options: train,
        });
        let control = Self::new(
            settings,
            store,
            deployer,
            router.clone(),
            trainer,
            transformer,
            options.health_timeout,
        );
        Ok((control, router))
    }

    /// After a restart: re-adopt, redeploy and clean up (see [`Lifecycle::restore`]);
    /// training jobs that were running are marked Failed.
    pub async fn restore(&self) -> Result<(), crate::runtime::RuntimeError> {
        if let Err(e) = self.jobs.trainer.restore() {
            tracing::warn!(error = %e, "could not mark interrupted training jobs");
        }
        if let Err(e) = self.tuner.restore() {
            tracing::warn!(error = %e, "could not mark interrupted tuning jobs");
        }
        if let Err(e) = self.transformer.restore() {
            tracing::warn!(error = %e, "could not mark interrupted transform jobs");
        }
        self.lifecycle.restore().await
    }

    /// The training jobs' metrics, as Prometheus text (for `GET /metrics`).
    pub fn render_metrics(&self) -> String {
        self.jobs.trainer.render_metrics()
    }
    /// Stops every deployment, training and transform job and removes every container.
    /// Stops every deployment and training job and removes every container.
    pub async fn shutdown(&self) {
        self.tuner.shutdown();
        self.jobs.trainer.shutdown();
        self.transformer.shutdown();
        self.lifecycle.shutdown().await;
    }

    /// Runs one operation: `target` is the `X-Amz-Target` header, `body` the JSON input.
    pub async fn handle(&self, target: &str, body: &[u8]) -> OpResult {
        let op = target
            .strip_prefix("SageMaker.")
            .filter(|op| OPERATIONS.contains(op))
            .ok_or_else(|| {
                AwsError::unknown_operation(if target.is_empty() {
                    "(no X-Amz-Target)"
                } else {
                    target
                })
            })?;
        let mut input: Value = if body.is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(body).map_err(|e| {
                AwsError::serialization(format!("The request body is not JSON: {e}"))
            })?
        };
        if !input.is_object() {
            return Err(AwsError::serialization(
                "The request body must be a JSON object.",
            ));
        }
        let model = crate::botocore::sagemaker();
        model.retain_known(op, &mut input);
        model.check_input_except(op, &input, local_model_data)?;
        tracing::debug!(op, "control plane operation");
        match op {
            "CreateModel" => answer(self.create_model(parse(input)?)),
            "DescribeModel" => self.describe_model(parse(input)?),
            "ListModels" => self.list_models(&parse(input)?),
            "DeleteModel" => answer(self.delete_model(parse(input)?)),
            "CreateEndpointConfig" => answer(self.create_endpoint_config(parse(input)?)),
            "DescribeEndpointConfig" => self.describe_endpoint_config(parse(input)?),
            "ListEndpointConfigs" => self.list_endpoint_configs(&parse(input)?),
            "DeleteEndpointConfig" => answer(self.delete_endpoint_config(parse(input)?)),
            "CreateEndpoint" => answer(self.create_endpoint(parse(input)?)),
            "DescribeEndpoint" => self.describe_endpoint(parse(input)?),
            "ListEndpoints" => self.list_endpoints(&parse(input)?),
            "DeleteEndpoint" => answer(self.delete_endpoint(parse(input)?)),
            "UpdateEndpoint" => answer(self.update_endpoint(parse(input)?)),
            "UpdateEndpointWeightsAndCapacities" => {
                answer(self.update_weights_and_capacities(parse(input)?))
            }
            "AddTags" => self.add_tags(parse(input)?),
            "ListTags" => self.list_tags(parse(input)?),
            "DeleteTags" => answer(self.delete_tags(parse(input)?)),
            "CreateTrainingJob" => answer(self.create_training_job(parse(input)?)),
            "DescribeTrainingJob" => self.describe_training_job(parse(input)?),
            "ListTrainingJobs" => self.list_training_jobs(&parse(input)?),
            "StopTrainingJob" => answer(self.stop_training_job(parse(input)?)),
            "CreateHyperParameterTuningJob" => answer(self.create_tuning_job(parse(input)?)),
            "DescribeHyperParameterTuningJob" => self.describe_tuning_job(parse(input)?),
            "ListHyperParameterTuningJobs" => self.list_tuning_jobs(&parse(input)?),
            "ListTrainingJobsForHyperParameterTuningJob" => self.list_trials(parse(input)?),
            "StopHyperParameterTuningJob" => answer(self.stop_tuning_job(parse(input)?)),
            "CreateTransformJob" => answer(self.create_transform_job(parse(input)?)),
            "DescribeTransformJob" => self.describe_transform_job(parse(input)?),
            "ListTransformJobs" => self.list_transform_jobs(&parse(input)?),
            "StopTransformJob" => answer(self.stop_transform_job(parse(input)?)),
            _ => Err(AwsError::unknown_operation(target)),
        }
    }

    /// `ValidationException` for a resource that is not there, as SageMaker words it.
    fn not_found(&self, what: &str, kind: &str, name: &str) -> AwsError {
        AwsError::validation(format!(
            "Could not find {what} \"{}\".",
            self.settings.arn(kind, name)
        ))
    }

    fn exists(&self, what: &str, kind: &str, name: &str) -> AwsError {
        AwsError::validation(format!(
            "Cannot create already existing {what} \"{}\".",
            self.settings.arn(kind, name)
        ))
    }
}

/// An `s3://` location a job reads or writes (`what` names the member); refused when this
/// sagedock has no S3 storage (`has_s3` false).
fn s3_location(
    has_s3: bool,
    uri: &str,
    what: &str,
) -> Result<crate::storage::S3Location, AwsError> {
    if !has_s3 {
        return Err(AwsError::validation(format!(
            "{what} {uri}: this sagedock has no S3 storage; start it with --s3-root DIR or --s3-endpoint URL."
        )));
    }
    crate::storage::S3Location::parse(uri).map_err(|e| AwsError::validation(format!("{what}: {e}")))
}

/// The local model data extension: `ModelDataUrl` (and an S3 data source's `S3Uri`) may
/// be `file:///path` or `/path`, which botocore's `(https|s3)://…` pattern would refuse.
fn local_model_data(shape: &str, value: &str) -> bool {
    matches!(shape, "Url" | "S3ModelUri")
        && matches!(ModelLocation::parse(value), Ok(ModelLocation::File(_)))
}

/// The operation's typed input (the model check has passed: a failure here is a member
/// sagedock reads more strictly than botocore states).
fn parse<T: DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(|e| AwsError::serialization(e.to_string()))
}

fn answer<T: Serialize>(output: Result<T, AwsError>) -> OpResult {
    serde_json::to_value(output?).map_err(|e| AwsError::internal(e.to_string()))
}

/// An operation's answer as AWS JSON 1.1: the output, or the error in its AWS shape.
pub fn respond(result: OpResult) -> Response<Body> {
    match result {
        Ok(value) => {
            let mut response = Response::new(full(value.to_string()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            response
        }
        Err(err) => err.into_response(),
    }
}
