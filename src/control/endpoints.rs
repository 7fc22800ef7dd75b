//! CreateEndpoint, DescribeEndpoint, ListEndpoints, UpdateEndpoint,
//! UpdateEndpointWeightsAndCapacities and DeleteEndpoint: the records and their answers;
//! the deployments themselves are the [`super::lifecycle`]'s.
//!
//! Every operation that starts instances checks them against this machine's caps first
//! ([`crate::deploy::Capacity`]), answering `ResourceLimitExceeded` as SageMaker does for
//! an account's instance quota.

use std::collections::HashSet;

use super::error::AwsError;
use super::lifecycle::{Kind, Lifecycle};
use super::shapes::{
    CreateEndpointInput, DataCaptureConfigSummary, DeployedImage, DescribeEndpointOutput, Empty,
    EndpointArn, EndpointName, EndpointSummary, ListInput, ProductionVariantSummary,
    UpdateEndpointInput, UpdateWeightsInput,
};
use super::{list, ControlPlane, OpResult};
use crate::state::{now, Endpoint, EndpointConfig, EndpointStatus};

/// Instances a config starts.
fn instances_of(config: &EndpointConfig) -> u64 {
    config
        .spec
        .production_variants
        .iter()
        .map(|v| u64::from(v.instance_count()))
        .sum()
}

/// Instances an endpoint runs or is deploying.
fn instances_now(endpoint: &Endpoint) -> u64 {
    endpoint
        .variants
        .iter()
        .map(|v| u64::from(v.desired_count.max(v.current_count)))
        .sum()
}

impl ControlPlane {
    fn endpoint(&self, name: &str) -> Result<Endpoint, AwsError> {
        self.store
            .get(name)?
            .ok_or_else(|| self.not_found("endpoint", "endpoint", name))
    }

    /// Instances the other endpoints run or are deploying.
    fn instances_elsewhere(&self, except: &str) -> Result<u64, AwsError> {
        Ok(self
            .store
            .list::<Endpoint>()?
            .iter()
            .filter(|e| e.name != except && e.status != EndpointStatus::Failed)
            .map(instances_now)
            .sum())
    }

    /// `ResourceLimitExceeded` when `endpoint` running `instances` (while the others run
    /// theirs, plus `also` of its own) goes past a cap.
    fn check_capacity(&self, endpoint: &str, instances: u64, also: u64) -> Result<(), AwsError> {
        let others = self.instances_elsewhere(endpoint)?;
        self.lifecycle
            .deployer()
            .capacity()
            .check(endpoint, instances, others.saturating_add(also))
            .map_err(|e| AwsError::resource_limit(e.to_string()))
    }

    pub(super) fn create_endpoint(
        &self,
        input: CreateEndpointInput,
    ) -> Result<EndpointArn, AwsError> {
        let name = &input.endpoint_name;
        let config = self.endpoint_config(&input.endpoint_config_name)?;
        self.check_capacity(name, instances_of(&config), 0)?;
        let t = now();
        let record = Endpoint {
            name: name.clone(),
            arn: self.settings.arn("endpoint", name),
            config_name: config.name.clone(),
            status: EndpointStatus::Creating,
            failure_reason: None,
            created: t,
            last_modified: t,
            variants: Lifecycle::variant_states(&config),
            generation: 1,
        };
        if !self.store.insert_new(name, &record)? {
            return Err(AwsError::validation(format!(
                "Cannot create already existing endpoint \"{}\".",
                record.arn
            )));
        }
        self.put_tags(&record.arn, &input.tags)?;
        self.lifecycle.start(name, config, 1, Kind::Create);
        Ok(EndpointArn {
            endpoint_arn: record.arn,
        })
    }

    pub(super) fn describe_endpoint(&self, input: EndpointName) -> OpResult {
        let e = self.endpoint(&input.endpoint_name)?;
        let config = self
            .store
            .get::<EndpointConfig>(&e.config_name)
            .ok()
            .flatten();
        let serverless = |variant: &str| {
            config
                .as_ref()?
                .spec
                .variant(variant)?
                .serverless_config
                .clone()
        };
        let variants = e
            .variants
            .iter()
            .map(|v| ProductionVariantSummary {
                variant_name: &v.name,
                deployed_images: vec![DeployedImage {
                    specified_image: &v.image,
                    resolved_image: &v.image,
                    resolution_time: e.last_modified,
                }],
                current_weight: v.current_weight,
                desired_weight: v.desired_weight,
                current_instance_count: self
                    .lifecycle
                    .current_count(&e.name, &v.name)
                    .unwrap_or(v.current_count),
                desired_instance_count: v.desired_count,
                current_serverless_config: serverless(&v.name),
                desired_serverless_config: serverless(&v.name),
            })
            .collect();
        super::answer(Ok(DescribeEndpointOutput {
            endpoint_name: &e.name,
            endpoint_arn: &e.arn,
            endpoint_config_name: &e.config_name,
            endpoint_status: e.status,
            creation_time: e.created,
            last_modified_time: e.last_modified,
            production_variants: variants,
            failure_reason: e.failure_reason.as_deref(),
            data_capture_config: self.capture_summary(&e, config.as_ref()),
        }))
    }

    /// The endpoint's DataCaptureConfig as DescribeEndpoint summarises it (from its
    /// configuration, while that exists).
    fn capture_summary(
        &self,
        e: &Endpoint,
        config: Option<&EndpointConfig>,
    ) -> Option<DataCaptureConfigSummary> {
        let config = config?.clone();
        let capture = config.spec.data_capture_config?;
        let started = capture.enabled() && e.status == EndpointStatus::InService;
        Some(DataCaptureConfigSummary {
            enable_capture: capture.enabled(),
            capture_status: if started { "Started" } else { "Stopped" },
            current_sampling_percentage: capture.initial_sampling_percentage,
            destination_s3_uri: capture.destination_s3_uri,
            kms_key_id: capture.kms_key_id,
        })
    }

    pub(super) fn list_endpoints(&self, input: &ListInput) -> OpResult {
        let items = self
            .store
            .list::<Endpoint>()?
            .into_iter()
            .map(|e| EndpointSummary {
                endpoint_name: e.name,
                endpoint_arn: e.arn,
                creation_time: e.created,
                last_modified_time: e.last_modified,
                endpoint_status: e.status,
            })
            .collect();
        list::page(items, input)
    }

    pub(super) fn delete_endpoint(&self, input: EndpointName) -> Result<Empty, AwsError> {
        let record = self.endpoint(&input.endpoint_name)?;
        self.lifecycle.delete(record)?;
        Ok(Empty {})
    }

    fn refuse_unsettled(record: &Endpoint) -> Result<(), AwsError> {
        if record.is_settled() {
            Ok(())
        } else {
            Err(AwsError::validation(format!(
                "Cannot update in-progress endpoint \"{}\".",
                record.arn
            )))
        }
    }

    pub(super) fn update_endpoint(
        &self,
        input: UpdateEndpointInput,
    ) -> Result<EndpointArn, AwsError> {
        let name = &input.endpoint_name;
        let mut record = self.endpoint(name)?;
        let config = self.endpoint_config(&input.endpoint_config_name)?;
        // SageMaker lets a serverless endpoint become instance-based, not the reverse.
        let serverless = |c: &EndpointConfig| {
            c.spec
                .production_variants
                .iter()
                .any(|v| v.serverless_config.is_some())
        };
        let running = self.store.get::<EndpointConfig>(&record.config_name)?;
        if serverless(&config) && running.as_ref().is_some_and(|c| !serverless(c)) {
            return Err(AwsError::validation(format!(
                "Endpoint {name} uses instances: it cannot be updated to the serverless configuration {}.",
                input.endpoint_config_name
            )));
        }
        Self::refuse_unsettled(&record)?;
        // The new fleet comes up beside the old one.
        self.check_capacity(name, instances_of(&config), instances_now(&record))?;
        record.status = EndpointStatus::Updating;
        record.generation += 1;
        record.last_modified = now();
        self.store.put(name, &record)?;
        self.lifecycle
            .start(name, config, record.generation, Kind::Update);
        Ok(EndpointArn {
            endpoint_arn: record.arn,
        })
    }

    pub(super) fn update_weights_and_capacities(
        &self,
        input: UpdateWeightsInput,
    ) -> Result<EndpointArn, AwsError> {
        let name = &input.endpoint_name;
        let mut record = self.endpoint(name)?;
        Self::refuse_unsettled(&record)?;
        let mut seen = HashSet::new();
        for d in &input.desired_weights_and_capacities {
            if !seen.insert(d.variant_name.as_str()) {
                return Err(AwsError::validation(format!(
                    "The variant name {} appears more than once.",
                    d.variant_name
                )));
            }
            let arn = record.arn.clone();
            let Some(v) = record.variant_mut(&d.variant_name) else {
                return Err(AwsError::validation(format!(
                    "The variant name(s) [{}] is/are not present in the endpoint \"{arn}\".",
                    d.variant_name
                )));
            };
            if let Some(w) = d.desired_weight {
                v.desired_weight = w;
            }
            if let Some(c) = d.desired_instance_count {
                v.desired_count = c;
            }
        }
        let wanted: u64 = record
            .variants
            .iter()
            .map(|v| u64::from(v.desired_count))
            .sum();
        self.check_capacity(name, wanted, 0)?;
        record.status = EndpointStatus::Updating;
        record.last_modified = now();
        self.store.put(name, &record)?;
        let arn = record.arn.clone();
        self.lifecycle.rescale(name, record);
        Ok(EndpointArn { endpoint_arn: arn })
    }
}
