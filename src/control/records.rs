//! The records the control plane stores, and the list/paging rules shared by the List
//! operations. Inputs are kept as the caller sent them (so Describe echoes them back);
//! endpoint records add the status the deployer writes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::AwsError;
use super::validate;
use crate::runtime::instance;

/// Seconds since the epoch, as AWS JSON timestamps are sent.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub arn: String,
    pub created: f64,
    /// The CreateModel input (without Tags).
    pub input: Value,
}

impl ModelRecord {
    /// The container that serves (the primary, or the first of `Containers`).
    pub fn containers(&self) -> Vec<Value> {
        match (
            self.input.get("PrimaryContainer"),
            self.input.get("Containers"),
        ) {
            (Some(c), _) => vec![c.clone()],
            (None, Some(Value::Array(list))) => list.clone(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointConfigRecord {
    pub name: String,
    pub arn: String,
    pub created: f64,
    /// The CreateEndpointConfig input (without Tags), weights defaulted.
    pub input: Value,
}

impl EndpointConfigRecord {
    pub fn variants(&self) -> Vec<Value> {
        self.input
            .get("ProductionVariants")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// The state of one production variant of an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantRecord {
    pub name: String,
    pub image: String,
    pub current_weight: f64,
    pub desired_weight: f64,
    pub current_count: u32,
    pub desired_count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub name: String,
    pub arn: String,
    pub config_name: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub created: f64,
    pub last_modified: f64,
    pub variants: Vec<VariantRecord>,
    /// Bumped by every deployment; containers carry it in a label.
    pub generation: u64,
}

impl EndpointRecord {
    pub fn summary(&self) -> Value {
        json!({
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
            "EndpointStatus": self.status,
        })
    }

    pub fn describe(&self) -> Value {
        let mut out = json!({
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config_name,
            "EndpointStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
        });
        if !self.variants.is_empty() {
            out["ProductionVariants"] = Value::Array(
                self.variants
                    .iter()
                    .map(|v| {
                        json!({
                            "VariantName": v.name,
                            "DeployedImages": [{"SpecifiedImage": v.image, "ResolvedImage": v.image, "ResolutionTime": self.last_modified}],
                            "CurrentWeight": v.current_weight,
                            "DesiredWeight": v.desired_weight,
                            "CurrentInstanceCount": v.current_count,
                            "DesiredInstanceCount": v.desired_count,
                        })
                    })
                    .collect(),
            );
        }
        if let Some(reason) = &self.failure_reason {
            out["FailureReason"] = json!(reason);
        }
        out
    }
}

/// Checks one ContainerDefinition.
pub fn check_container(container: &Value) -> Result<(), AwsError> {
    if container
        .get("Image")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        if container.get("ModelPackageName").is_some() {
            return Err(AwsError::validation(
                "sagedock does not resolve ModelPackageName; give the container's Image instead.",
            ));
        }
        return Err(AwsError::validation(
            "1 validation error detected: Value null at 'primaryContainer.image' failed to satisfy constraint: Member must not be null",
        ));
    }
    if let Some(env) = container.get("Environment") {
        let map = env
            .as_object()
            .ok_or_else(|| AwsError::validation("Environment must be a map of strings."))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        crate::runtime::spec::validate_env(&map)
            .map_err(|e| AwsError::validation(e.to_string()))?;
    }
    if let Some(host) = container.get("ContainerHostname").and_then(Value::as_str) {
        validate::hyphenated_name(host, "containerHostname")?;
    }
    Ok(())
}

/// Checks the containers of a multi-container model together: execution mode, and
/// hostnames given for all containers or none, without repeats.
pub fn check_containers(containers: &[&Value], execution: Option<&Value>) -> Result<(), AwsError> {
    if let Some(mode) = execution
        .and_then(|e| e.get("Mode"))
        .and_then(Value::as_str)
    {
        if mode != "Serial" && mode != "Direct" {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value '{mode}' at 'inferenceExecutionConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Serial, Direct]"
            )));
        }
    }
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("ContainerHostname").and_then(Value::as_str))
        .collect();
    if containers.len() > 1 && !names.is_empty() && names.len() != containers.len() {
        return Err(AwsError::validation(
            "ContainerHostname must be specified for all containers or for none of them.",
        ));
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != names.len() {
        return Err(AwsError::validation(
            "ContainerHostname values must be unique within a model.",
        ));
    }
    Ok(())
}

/// Checks one ProductionVariant's instance type, count and weight.
pub fn check_variant(variant: &Value) -> Result<(), AwsError> {
    if variant.get("ServerlessConfig").is_none() {
        let itype = variant.get("InstanceType").and_then(Value::as_str).ok_or_else(|| {
            AwsError::validation("1 validation error detected: Value null at 'productionVariants.member.instanceType' failed to satisfy constraint: Member must not be null")
        })?;
        instance::lookup(itype).map_err(AwsError::validation)?;
        let count = variant
            .get("InitialInstanceCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if count < 1 {
            return Err(AwsError::validation(
                "1 validation error detected: Value at 'productionVariants.member.initialInstanceCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ));
        }
    }
    if variant
        .get("InitialVariantWeight")
        .and_then(Value::as_f64)
        .is_some_and(|w| w < 0.0)
    {
        return Err(AwsError::validation(
            "InitialVariantWeight must be 0 or more.",
        ));
    }
    Ok(())
}

/// SageMaker fills in InitialVariantWeight = 1.0 where it is missing.
pub fn default_weights(input: &mut Value) {
    if let Some(Value::Array(variants)) = input.get_mut("ProductionVariants") {
        for v in variants {
            if v.get("InitialVariantWeight").is_none() {
                v["InitialVariantWeight"] = json!(1.0);
            }
        }
    }
}

/// Filters, sorts and pages summaries for the List operations.
pub fn list_page(
    mut items: Vec<Value>,
    input: &Value,
    name_field: &str,
) -> Result<(Vec<Value>, Option<String>), AwsError> {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let time = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    if let Some(part) = input.get("NameContains").and_then(Value::as_str) {
        let part = part.to_lowercase();
        items.retain(|v| text(v, name_field).to_lowercase().contains(&part));
    }
    if let Some(status) = input.get("StatusEquals").and_then(Value::as_str) {
        items.retain(|v| text(v, "EndpointStatus") == status);
    }
    for (field, key, before) in [
        ("CreationTime", "CreationTimeBefore", true),
        ("CreationTime", "CreationTimeAfter", false),
        ("LastModifiedTime", "LastModifiedTimeBefore", true),
        ("LastModifiedTime", "LastModifiedTimeAfter", false),
    ] {
        if let Some(limit) = input.get(key).and_then(Value::as_f64) {
            items.retain(|v| {
                if before {
                    time(v, field) < limit
                } else {
                    time(v, field) > limit
                }
            });
        }
    }
    let sort_by = input
        .get("SortBy")
        .and_then(Value::as_str)
        .unwrap_or("CreationTime");
    match sort_by {
        "Name" => items.sort_by_key(|v| text(v, name_field)),
        "Status" => items.sort_by_key(|v| text(v, "EndpointStatus")),
        "CreationTime" => items.sort_by(|a, b| time(a, "CreationTime").total_cmp(&time(b, "CreationTime")).then_with(|| text(a, name_field).cmp(&text(b, name_field)))),
        other => return Err(AwsError::validation(format!("1 validation error detected: Value '{other}' at 'sortBy' failed to satisfy constraint: Member must satisfy enum value set"))),
    }
    match input.get("SortOrder").and_then(Value::as_str).unwrap_or("Descending") {
        "Descending" => items.reverse(),
        "Ascending" => {}
        other => return Err(AwsError::validation(format!("1 validation error detected: Value '{other}' at 'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: [Ascending, Descending]"))),
    }
    let max = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 100) as usize;
    let start = match input.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(token) => token
            .strip_prefix("sagedock-page-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| AwsError::validation(format!("Invalid NextToken '{token}'.")))?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| format!("sagedock-page-{end}"));
    let page = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"ModelName": format!("m{i:02}"), "CreationTime": i as f64}))
            .collect()
    }

    #[test]
    fn lists_page_sort_and_filter() {
        let (page, next) = list_page(items(25), &json!({}), "ModelName").unwrap();
        assert_eq!(page.len(), 10);
        assert_eq!(page[0]["ModelName"], "m24", "newest first by default");
        let (page2, next2) =
            list_page(items(25), &json!({"NextToken": next.unwrap()}), "ModelName").unwrap();
        assert_eq!(page2[0]["ModelName"], "m14");
        assert!(next2.is_some());
        let (page, next) = list_page(
            items(25),
            &json!({"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 100}),
            "ModelName",
        )
        .unwrap();
        assert_eq!(
            (page.len(), page[0]["ModelName"].as_str(), next),
            (25, Some("m00"), None)
        );
        let (page, _) = list_page(items(25), &json!({"NameContains": "M1"}), "ModelName").unwrap();
        assert_eq!(page.len(), 10);
        assert!(list_page(items(2), &json!({"NextToken": "bogus"}), "ModelName").is_err());
    }
}
