//! CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs,
//! DeleteEndpointConfig, and SageMaker's rules for a config beyond its shape: unique
//! variant names, models that exist, an instance type and count for every variant that is
//! not serverless, and, for asynchronous inference and data capture, output locations
//! sagedock can write (no data capture on serverless variants).

use std::collections::HashSet;

use super::error::AwsError;
use super::shapes::{
    CreateEndpointConfigInput, DescribeEndpointConfigOutput, Empty, EndpointConfigArn,
    EndpointConfigName, EndpointConfigSummary, ListInput,
};
use super::{list, ControlPlane, OpResult};
use crate::runtime::instance;
use crate::state::{
    now, AsyncInferenceConfig, EndpointConfig, ModelSpec, ProductionVariant, TagSet,
};
use crate::storage::S3Location;

impl ControlPlane {
    pub(super) fn create_endpoint_config(
        &self,
        input: CreateEndpointConfigInput,
    ) -> Result<EndpointConfigArn, AwsError> {
        let mut spec = input.spec;
        let mut seen = HashSet::new();
        for variant in &mut spec.production_variants {
            if !seen.insert(variant.variant_name.clone()) {
                return Err(AwsError::validation(format!(
                    "The variant name \"{}\" is used more than once.",
                    variant.variant_name
                )));
            }
            let model = variant.model_name.as_deref().ok_or_else(|| {
                AwsError::validation("1 validation error detected: Value null at 'productionVariants.member.modelName' failed to satisfy constraint: Member must not be null")
            })?;
            let model = self.model(model)?;
            check_variant(variant)?;
            if variant.serverless_config.is_some() {
                check_serverless(variant, &model.spec)?;
            }
            // SageMaker fills in the weight where it is missing.
            variant.initial_variant_weight = Some(variant.weight());
        }
        let serverless = spec
            .production_variants
            .iter()
            .any(|v| v.serverless_config.is_some());
        if serverless && spec.production_variants.len() > 1 {
            return Err(AwsError::validation(
                "An endpoint configuration with a serverless variant may have only that one production variant.",
            ));
        }
        if serverless && spec.async_inference_config.is_some() {
            return Err(AwsError::validation(
                "AsyncInferenceConfig is not supported for endpoint configurations with serverless variants.",
            ));
        }
        if let Some(config) = &spec.async_inference_config {
            self.check_async(config)?;
        }
        if let Some(capture) = &spec.data_capture_config {
            if spec
                .production_variants
                .iter()
                .any(|v| v.serverless_config.is_some())
            {
                return Err(AwsError::validation(
                    "DataCaptureConfig is not supported for endpoint configurations with serverless variants.",
                ));
            }
            self.check_writable(&capture.destination_s3_uri, "Captured data")?;
        }
        let name = spec.endpoint_config_name.clone();
        let record = EndpointConfig {
            arn: self.settings.arn("endpoint-config", &name),
            name: name.clone(),
            created: now(),
            spec,
        };
        if !self.store.insert_new(&name, &record)? {
            return Err(self.exists("endpoint configuration", "endpoint-config", &name));
        }
        self.put_tags(&record.arn, &input.tags)?;
        Ok(EndpointConfigArn {
            endpoint_config_arn: record.arn,
        })
    }

    /// Results of asynchronous requests must have somewhere to go: an `s3://` output path
    /// (and failure path) this sagedock can write under.
    fn check_async(&self, config: &AsyncInferenceConfig) -> Result<(), AwsError> {
        let output = config.output_config.s3_output_path.as_deref().ok_or_else(|| {
            AwsError::validation("AsyncInferenceConfig.OutputConfig.S3OutputPath is required: sagedock writes each asynchronous result there.")
        })?;
        let paths = std::iter::once(output).chain(config.output_config.s3_failure_path.as_deref());
        for path in paths {
            self.check_writable(path, "Asynchronous results")?;
        }
        Ok(())
    }

    /// `path` must be an `s3://` prefix this sagedock can write under; `what` names what
    /// goes there.
    fn check_writable(&self, path: &str, what: &str) -> Result<(), AwsError> {
        let location = S3Location::parse(path).map_err(|e| AwsError::validation(e.to_string()))?;
        let probe = location
            .join("sagedock-probe")
            .map_err(|e| AwsError::validation(e.to_string()))?;
        self.lifecycle
            .deployer()
            .storage()
            .check_writable(&probe)
            .map_err(|e| {
                AwsError::validation(format!("{what} could not be written to {path}: {e}"))
            })
    }

    pub(super) fn endpoint_config(&self, name: &str) -> Result<EndpointConfig, AwsError> {
        self.store
            .get(name)?
            .ok_or_else(|| self.not_found("endpoint configuration", "endpoint-config", name))
    }

    pub(super) fn describe_endpoint_config(&self, input: EndpointConfigName) -> OpResult {
        let config = self.endpoint_config(&input.endpoint_config_name)?;
        super::answer(Ok(DescribeEndpointConfigOutput {
            spec: &config.spec,
            endpoint_config_arn: &config.arn,
            creation_time: config.created,
        }))
    }

    pub(super) fn list_endpoint_configs(&self, input: &ListInput) -> OpResult {
        let items = self
            .store
            .list::<EndpointConfig>()?
            .into_iter()
            .map(|c| EndpointConfigSummary {
                endpoint_config_name: c.name,
                endpoint_config_arn: c.arn,
                creation_time: c.created,
            })
            .collect();
        list::page(items, input)
    }

    pub(super) fn delete_endpoint_config(
        &self,
        input: EndpointConfigName,
    ) -> Result<Empty, AwsError> {
        let name = &input.endpoint_config_name;
        if !self.store.delete::<EndpointConfig>(name)? {
            return Err(self.not_found("endpoint configuration", "endpoint-config", name));
        }
        self.store
            .delete::<TagSet>(&self.settings.arn("endpoint-config", name))?;
        Ok(Empty {})
    }
}

/// What SageMaker refuses on a serverless variant: instance settings beside it, memory
/// off its 1 GB steps, more provisioned than maximum concurrency, and models it cannot
/// serve serverless (several containers, multi-model, network isolation, a VPC).
fn check_serverless(variant: &ProductionVariant, model: &ModelSpec) -> Result<(), AwsError> {
    let Some(config) = &variant.serverless_config else {
        return Ok(());
    };
    let refuse = |why: &str| {
        Err(AwsError::validation(format!(
            "Variant {} is serverless: {why}",
            variant.variant_name
        )))
    };
    if variant.instance_type.is_some() || variant.initial_instance_count.is_some() {
        return refuse(
            "InstanceType and InitialInstanceCount cannot be given with ServerlessConfig.",
        );
    }
    if config.memory_size_in_mb % 1024 != 0 || !(1024..=6144).contains(&config.memory_size_in_mb) {
        return refuse("MemorySizeInMB must be 1024, 2048, 3072, 4096, 5120 or 6144.");
    }
    if config.provisioned_concurrency.unwrap_or(0) > config.max_concurrency {
        return refuse("ProvisionedConcurrency must not be greater than MaxConcurrency.");
    }
    if model.containers().len() > 1 {
        return refuse("serverless endpoints do not support models with several containers (inference pipelines).");
    }
    if model.containers().iter().any(|c| c.is_multi_model()) {
        return refuse("serverless endpoints do not support multi-model endpoints.");
    }
    if model.network_isolation() {
        return refuse("serverless endpoints do not support network isolation.");
    }
    if model.echoed.contains_key("VpcConfig") {
        return refuse("serverless endpoints do not support VpcConfig.");
    }
    Ok(())
}

/// A variant that is not serverless needs an instance type sagedock knows and a count.
fn check_variant(variant: &ProductionVariant) -> Result<(), AwsError> {
    if variant.serverless_config.is_some() {
        return Ok(());
    }
    let itype = variant.instance_type.as_deref().ok_or_else(|| {
        AwsError::validation("1 validation error detected: Value null at 'productionVariants.member.instanceType' failed to satisfy constraint: Member must not be null")
    })?;
    instance::lookup(itype).map_err(AwsError::validation)?;
    if variant.initial_instance_count.is_none() {
        return Err(AwsError::validation(
            "1 validation error detected: Value null at 'productionVariants.member.initialInstanceCount' failed to satisfy constraint: Member must not be null",
        ));
    }
    Ok(())
}
