//! From the stored resources to a deployment plan: an endpoint config's variants, each
//! with its model's containers, model data, environment and limits.

use std::time::Duration;

use crate::deploy::{
    AsyncPlan, ContainerPlan, EndpointPlan, ModelSource, ServerlessPlan, Serves, VariantPlan,
};
use crate::endpoint::asynchronous::DEFAULT_PER_INSTANCE;
use crate::endpoint::capture::CaptureSettings;
use crate::endpoint::{Mode, Routing};
use crate::runtime::instance::{self, InstanceType};
use crate::state::model::InferenceExecutionMode;
use crate::state::{
    AsyncInferenceConfig, ContainerDefinition, DataCaptureConfig, EndpointConfig, Model, ModelSpec,
    ProductionVariant, Store, TransformJobSpec, VariantState,
};
use crate::storage::{ModelLocation, S3Location, StorageError};

/// Why a plan could not be made (a FailureReason).
pub type Reason = String;

/// The plan for endpoint `name` at `generation` from `config`. `counts` overrides the
/// config's instance counts and weights (what an endpoint runs now, after
/// UpdateEndpointWeightsAndCapacities).
pub fn endpoint_plan(
    store: &Store,
    name: &str,
    config: &EndpointConfig,
    generation: u64,
    counts: Option<&[VariantState]>,
    default_health_timeout: Duration,
) -> Result<EndpointPlan, Reason> {
    let variants = config
        .spec
        .production_variants
        .iter()
        .map(|variant| {
            let now = counts.and_then(|c| c.iter().find(|v| v.name == variant.variant_name));
            variant_plan(store, variant, now, default_health_timeout)
        })
        .collect::<Result<_, _>>()?;
    Ok(EndpointPlan {
        endpoint: name.to_string(),
        generation,
        variants,
        asynchronous: config
            .spec
            .async_inference_config
            .as_ref()
            .map(async_plan)
            .transpose()?,
        capture: config
            .spec
            .data_capture_config
            .as_ref()
            .map(capture_settings)
            .transpose()?,
        serves: Serves::Endpoint,
    })
}

/// The plan of a transform job's containers: its model's containers (a pipeline's in
/// order), `InstanceCount` instances of `InstanceType`, each container's environment the
/// model's, then the batch variables (SAGEMAKER_BATCH, and those the request sets), then
/// the request's Environment, which wins.
pub fn transform_plan(
    model: &Model,
    spec: &TransformJobSpec,
    health_timeout: Duration,
) -> Result<EndpointPlan, Reason> {
    let mut batch = vec![("SAGEMAKER_BATCH".to_string(), "true".to_string())];
    if let Some(mb) = spec.max_payload_in_mb {
        batch.push(("SAGEMAKER_MAX_PAYLOAD_IN_MB".into(), mb.to_string()));
    }
    if let Some(strategy) = spec.batch_strategy {
        batch.push((
            "SAGEMAKER_BATCH_STRATEGY".into(),
            strategy.env_value().into(),
        ));
    }
    if let Some(n) = spec.max_concurrent_transforms.filter(|n| *n > 0) {
        batch.push(("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS".into(), n.to_string()));
    }
    let mut containers = container_plans(&model.spec).map_err(|e| e.to_string())?;
    for container in &mut containers {
        container.environment.extend(batch.iter().cloned());
        if let Some(env) = &spec.environment {
            container
                .environment
                .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let resources = &spec.transform_resources;
    let variant = VariantPlan {
        containers,
        mode: mode(&model.spec),
        network_isolation: model.spec.network_isolation(),
        health_timeout,
        ..VariantPlan::new(
            "AllTraffic",
            instance::lookup(&resources.instance_type)?,
            ContainerPlan::new("", Default::default(), ModelSource::None),
        )
    }
    .with_instance_count(resources.instance_count);
    Ok(EndpointPlan {
        serves: Serves::TransformJob,
        ..EndpointPlan::single(&spec.transform_job_name, variant)
    })
}

/// One production variant's plan; `now` is what it runs now, when it runs.
fn variant_plan(
    store: &Store,
    variant: &ProductionVariant,
    now: Option<&VariantState>,
    default_health_timeout: Duration,
) -> Result<VariantPlan, Reason> {
    let model: Model = store
        .get(variant.model_name())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "Model {} of variant {} no longer exists.",
                variant.model_name(),
                variant.variant_name
            )
        })?;
    Ok(VariantPlan {
        name: variant.variant_name.clone(),
        weight: now.map_or(variant.weight(), |v| v.current_weight),
        instance_count: now.map_or(variant.instance_count(), |v| v.current_count),
        instance_type: match &variant.serverless_config {
            Some(s) => InstanceType::serverless(s.memory_size_in_mb),
            None => instance::lookup(variant.instance_type())?,
        },
        containers: container_plans(&model.spec).map_err(|e| e.to_string())?,
        mode: mode(&model.spec),
        routing: variant
            .routing_config
            .as_ref()
            .and_then(|r| Routing::parse(&r.routing_strategy))
            .unwrap_or_default(),
        serverless: variant.serverless_config.as_ref().map(|s| ServerlessPlan {
            max_concurrency: s.max_concurrency,
            provisioned: s.provisioned_concurrency.unwrap_or(0),
        }),
        network_isolation: model.spec.network_isolation(),
        health_timeout: variant
            .container_startup_health_check_timeout_in_seconds
            .map_or(default_health_timeout, |s| {
                Duration::from_secs(u64::from(s))
            }),
    })
}

/// AsyncInferenceConfig as the router applies it.
fn async_plan(config: &AsyncInferenceConfig) -> Result<AsyncPlan, Reason> {
    let parse = |url: &str| S3Location::parse(url).map_err(|e| e.to_string());
    let output = config
        .output_config
        .s3_output_path
        .as_deref()
        .ok_or("AsyncInferenceConfig.OutputConfig has no S3OutputPath")?;
    Ok(AsyncPlan {
        output: parse(output)?,
        failure: config
            .output_config
            .s3_failure_path
            .as_deref()
            .map(parse)
            .transpose()?,
        per_instance: config
            .max_concurrent_invocations_per_instance()
            .unwrap_or(DEFAULT_PER_INSTANCE),
    })
}

/// DataCaptureConfig as the router applies it.
fn capture_settings(config: &DataCaptureConfig) -> Result<CaptureSettings, String> {
    let types = config.capture_content_type_header.as_ref();
    Ok(CaptureSettings {
        enabled: config.enabled(),
        sampling_percentage: config.initial_sampling_percentage.min(100),
        destination: S3Location::parse(&config.destination_s3_uri).map_err(|e| e.to_string())?,
        input: config.captures("Input"),
        output: config.captures("Output"),
        csv_types: types
            .map(|t| t.csv_content_types.clone())
            .unwrap_or_default(),
        json_types: types
            .map(|t| t.json_content_types.clone())
            .unwrap_or_default(),
    })
}

/// How a model's containers are invoked.
pub fn mode(spec: &ModelSpec) -> Mode {
    if spec.containers().len() < 2 {
        return Mode::Single;
    }
    match spec.inference_execution_config.as_ref().map(|c| c.mode) {
        Some(InferenceExecutionMode::Direct) => Mode::Direct,
        _ => Mode::Serial,
    }
}

/// A model's containers as a plan runs them. ContainerHostname: the given ones, else
/// `container-<n>` by position (none for a single container, which SageMaker calls
/// `primary` in messages).
pub fn container_plans(spec: &ModelSpec) -> Result<Vec<ContainerPlan>, StorageError> {
    let containers = spec.containers();
    containers
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let hostname = match &c.container_hostname {
                Some(name) => name.clone(),
                None if containers.len() == 1 => String::new(),
                None => format!("container-{}", j + 1),
            };
            Ok(ContainerPlan {
                image: c.image().to_string(),
                hostname,
                environment: c
                    .environment()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                model: model_source(c)?,
                bind_port: None,
            })
        })
        .collect()
}

/// Where a container's model data comes from.
pub fn model_source(container: &ContainerDefinition) -> Result<ModelSource, StorageError> {
    let Some(url) = container.model_data() else {
        return Ok(ModelSource::None);
    };
    let location = ModelLocation::parse(url)?;
    Ok(if container.is_multi_model() {
        ModelSource::MultiModel(location)
    } else {
        ModelSource::Location {
            location,
            uncompressed: container.uncompressed(),
        }
    })
}
