//! CreateModel, DescribeModel, ListModels, DeleteModel, and the rules SageMaker applies
//! to a model beyond its shape: one of PrimaryContainer or Containers, an image for every
//! container, hostnames for all containers or none, an environment within SageMaker's
//! limits, model data at a location sagedock can read.

use std::collections::HashSet;

use super::error::AwsError;
use super::shapes::{
    CreateModelInput, DescribeModelOutput, Empty, ListInput, ModelArn, ModelName, ModelSummary,
};
use super::{list, plan, ControlPlane, OpResult};
use crate::state::{now, ContainerDefinition, Model, ModelSpec, TagSet};

impl ControlPlane {
    pub(super) fn create_model(&self, input: CreateModelInput) -> Result<ModelArn, AwsError> {
        check_model(&input.spec)?;
        let name = input.spec.model_name.clone();
        let record = Model {
            arn: self.settings.arn("model", &name),
            name: name.clone(),
            created: now(),
            spec: input.spec,
        };
        if !self.store.insert_new(&name, &record)? {
            return Err(self.exists("model", "model", &name));
        }
        self.put_tags(&record.arn, &input.tags)?;
        Ok(ModelArn {
            model_arn: record.arn,
        })
    }

    pub fn model(&self, name: &str) -> Result<Model, AwsError> {
        self.store
            .get(name)?
            .ok_or_else(|| self.not_found("model", "model", name))
    }

    pub(super) fn describe_model(&self, input: ModelName) -> OpResult {
        let model = self.model(&input.model_name)?;
        super::answer(Ok(DescribeModelOutput {
            spec: &model.spec,
            model_arn: &model.arn,
            creation_time: model.created,
        }))
    }

    pub(super) fn list_models(&self, input: &ListInput) -> OpResult {
        let items = self
            .store
            .list::<Model>()?
            .into_iter()
            .map(|m| ModelSummary {
                model_name: m.name,
                model_arn: m.arn,
                creation_time: m.created,
            })
            .collect();
        list::page(items, input)
    }

    pub(super) fn delete_model(&self, input: ModelName) -> Result<Empty, AwsError> {
        let name = &input.model_name;
        if !self.store.delete::<Model>(name)? {
            return Err(self.not_found("model", "model", name));
        }
        self.store
            .delete::<TagSet>(&self.settings.arn("model", name))?;
        Ok(Empty {})
    }
}

/// SageMaker's rules for a model beyond its shape.
fn check_model(spec: &ModelSpec) -> Result<(), AwsError> {
    match (&spec.primary_container, &spec.containers) {
        (Some(_), Some(_)) => {
            return Err(AwsError::validation(
                "Specify either PrimaryContainer or Containers, not both.",
            ))
        }
        (None, None) => {
            return Err(AwsError::validation(
                "Either PrimaryContainer or Containers (1 to 15) must be specified.",
            ))
        }
        _ => {}
    }
    let containers = spec.containers();
    for container in containers {
        check_container(container)?;
    }
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.container_hostname.as_deref())
        .collect();
    if containers.len() > 1 && !names.is_empty() && names.len() != containers.len() {
        return Err(AwsError::validation(
            "ContainerHostname must be specified for all containers or for none of them.",
        ));
    }
    if names.iter().collect::<HashSet<_>>().len() != names.len() {
        return Err(AwsError::validation(
            "ContainerHostname values must be unique within a model.",
        ));
    }
    Ok(())
}

/// One container: an image (sagedock resolves no model packages), its environment within
/// SageMaker's total size, its model data at a location sagedock can use.
fn check_container(container: &ContainerDefinition) -> Result<(), AwsError> {
    if container.image.as_deref().is_none_or(str::is_empty) {
        if container.model_package_name.is_some() {
            return Err(AwsError::validation(
                "sagedock does not resolve ModelPackageName; give the container's Image instead.",
            ));
        }
        return Err(AwsError::validation(
            "1 validation error detected: Value null at 'primaryContainer.image' failed to satisfy constraint: Member must not be null",
        ));
    }
    if let Some(env) = &container.environment {
        crate::runtime::spec::validate_env(env).map_err(|e| AwsError::validation(e.to_string()))?;
    }
    plan::model_source(container).map_err(|e| AwsError::validation(e.to_string()))?;
    Ok(())
}
