//! The SageMaker control plane for hosting (AWS JSON 1.1): models, endpoint configs,
//! endpoints and tags.
//!
//! Owns: decoding operations, validating them as SageMaker does, the records in the
//! [`store`], and answering in AWS's shapes (botocore's `sagemaker` model is the
//! authority). Endpoint operations write desired state and hand the work to the
//! [`deploy::Deployer`], which drives containers and writes status back.
//!
//! Does not: proxy invocations (see `endpoint`), or talk to Docker directly.

pub mod data;
pub mod deploy;
pub mod error;
pub mod records;
pub mod store;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use error::AwsError;
use records::{now, EndpointConfigRecord, EndpointRecord, ModelRecord};
use store::{Kind, Store};

/// Where and as whom the control plane runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    pub account: String,
    /// `s3://bucket/key` resolves to `<s3_root>/bucket/key`.
    pub s3_root: Option<PathBuf>,
    /// Or is downloaded from this S3-compatible server.
    pub s3_endpoint: Option<String>,
}

impl Settings {
    /// Where model data and asynchronous inference objects are read and written.
    pub fn storage(&self) -> data::Storage {
        data::Storage {
            s3_root: self.s3_root.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
        }
    }

    pub fn arn(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:aws:sagemaker:{}:{}:{kind}/{}",
            self.region,
            self.account,
            name.to_lowercase()
        )
    }
}

/// The control plane.
pub struct ControlPlane {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub deployer: Arc<deploy::Deployer>,
}

type OpResult = Result<Value, AwsError>;

impl ControlPlane {
    /// Opens the store in `data_dir` (taking its lock) and wires a deployer that owns that
    /// directory's containers; returns the control plane and the router it publishes
    /// endpoints to (reading and writing objects as `settings` says).
    pub fn open(
        settings: Settings,
        data_dir: &std::path::Path,
        engine: crate::runtime::Engine,
        cache: crate::artifact::Cache,
        options: deploy::DeployOptions,
    ) -> Result<(Arc<ControlPlane>, Arc<crate::endpoint::Router>), store::StoreError> {
        let store = Arc::new(Store::open(data_dir)?);
        let router = crate::endpoint::Router::with_storage(
            &settings.account,
            &settings.region,
            settings.storage(),
            options.model_load_wait,
        );
        let deployer = deploy::Deployer::new(
            settings.clone(),
            store.clone(),
            router.clone(),
            engine,
            cache,
            crate::runtime::owner::data_dir(data_dir),
            options,
        );
        let control = Arc::new(ControlPlane {
            settings,
            store,
            deployer,
        });
        Ok((control, router))
    }

    /// Runs one operation: `target` is the `X-Amz-Target` header, `body` the JSON input.
    pub async fn handle(&self, target: &str, body: &[u8]) -> OpResult {
        let op = target.strip_prefix("SageMaker.").unwrap_or("");
        let input: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                AwsError::new(
                    "SerializationException",
                    400,
                    format!("the request body is not JSON: {e}"),
                )
            })?
        };
        if !input.is_object() {
            return Err(AwsError::new(
                "SerializationException",
                400,
                "the request body must be a JSON object",
            ));
        }
        tracing::debug!(op, "control plane operation");
        match op {
            "CreateModel" => self.create_model(&input),
            "DescribeModel" => self.describe_model(&input),
            "ListModels" => self.list(Kind::Model, &input),
            "DeleteModel" => self.delete_model(&input),
            "CreateEndpointConfig" => self.create_endpoint_config(&input),
            "DescribeEndpointConfig" => self.describe_endpoint_config(&input),
            "ListEndpointConfigs" => self.list(Kind::EndpointConfig, &input),
            "DeleteEndpointConfig" => self.delete_endpoint_config(&input),
            "CreateEndpoint" => self.deployer.create_endpoint(&input).await,
            "DescribeEndpoint" => self.deployer.describe_endpoint(&input),
            "ListEndpoints" => self.list(Kind::Endpoint, &input),
            "DeleteEndpoint" => self.deployer.delete_endpoint(&input).await,
            "UpdateEndpoint" => self.deployer.update_endpoint(&input).await,
            "UpdateEndpointWeightsAndCapacities" => {
                self.deployer.update_weights_and_capacities(&input).await
            }
            "AddTags" => self.add_tags(&input),
            "ListTags" => self.list_tags(&input),
            "DeleteTags" => self.delete_tags(&input),
            _ => Err(AwsError::unknown_operation(if target.is_empty() {
                "(no X-Amz-Target)"
            } else {
                target
            })),
        }
    }

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

    fn create_model(&self, input: &Value) -> OpResult {
        let name = validate::required_str(input, "ModelName")?;
        validate::model_name(name, "modelName")?;
        let containers: Vec<&Value> = match (input.get("PrimaryContainer"), input.get("Containers"))
        {
            (Some(_), Some(_)) => {
                return Err(AwsError::validation(
                    "Specify either PrimaryContainer or Containers, not both.",
                ))
            }
            (Some(c), None) => vec![c],
            (None, Some(Value::Array(list))) if !list.is_empty() && list.len() <= 15 => {
                list.iter().collect()
            }
            _ => {
                return Err(AwsError::validation(
                    "Either PrimaryContainer or Containers (1 to 15) must be specified.",
                ))
            }
        };
        for container in &containers {
            records::check_container(container)?;
        }
        records::check_containers(&containers, input.get("InferenceExecutionConfig"))?;
        let record = ModelRecord {
            name: name.to_string(),
            arn: self.settings.arn("model", name),
            created: now(),
            input: without(input, &["Tags"]),
        };
        if !self.store.insert_new(Kind::Model, name, &record)? {
            return Err(self.exists("model", "model", name));
        }
        self.put_tags(&record.arn, input.get("Tags"))?;
        Ok(json!({ "ModelArn": record.arn }))
    }

    fn model(&self, name: &str) -> Result<ModelRecord, AwsError> {
        self.store
            .get(Kind::Model, name)?
            .ok_or_else(|| self.not_found("model", "model", name))
    }

    fn describe_model(&self, input: &Value) -> OpResult {
        let model = self.model(validate::required_str(input, "ModelName")?)?;
        let mut out = pick(
            &model.input,
            &[
                "ModelName",
                "PrimaryContainer",
                "Containers",
                "InferenceExecutionConfig",
                "ExecutionRoleArn",
                "VpcConfig",
                "EnableNetworkIsolation",
            ],
        );
        out.insert("CreationTime".into(), json!(model.created));
        out.insert("ModelArn".into(), json!(model.arn));
        Ok(Value::Object(out))
    }

    fn delete_model(&self, input: &Value) -> OpResult {
        let name = validate::required_str(input, "ModelName")?;
        let arn = self.settings.arn("model", name);
        if !self.store.delete(Kind::Model, name)? {
            return Err(self.not_found("model", "model", name));
        }
        self.store.delete(Kind::Tags, &arn)?;
        Ok(json!({}))
    }

    fn create_endpoint_config(&self, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointConfigName")?;
        validate::hyphenated_name(name, "endpointConfigName")?;
        let variants = input
            .get("ProductionVariants")
            .and_then(Value::as_array)
            .filter(|v| !v.is_empty() && v.len() <= 10)
            .ok_or_else(|| {
                AwsError::validation("ProductionVariants must hold 1 to 10 variants.")
            })?;
        let mut seen = std::collections::HashSet::new();
        for variant in variants {
            let vname = validate::required_str(variant, "VariantName")?;
            validate::hyphenated_name(vname, "productionVariants.member.variantName")?;
            if !seen.insert(vname) {
                return Err(AwsError::validation(format!(
                    "The variant name \"{vname}\" is used more than once."
                )));
            }
            let model = validate::required_str(variant, "ModelName")?;
            self.model(model)?;
            records::check_variant(variant)?;
        }
        let mut stored = without(input, &["Tags"]);
        records::default_weights(&mut stored);
        let record = EndpointConfigRecord {
            name: name.to_string(),
            arn: self.settings.arn("endpoint-config", name),
            created: now(),
            input: stored,
        };
        if !self.store.insert_new(Kind::EndpointConfig, name, &record)? {
            return Err(self.exists("endpoint configuration", "endpoint-config", name));
        }
        self.put_tags(&record.arn, input.get("Tags"))?;
        Ok(json!({ "EndpointConfigArn": record.arn }))
    }

    fn describe_endpoint_config(&self, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointConfigName")?;
        let record: EndpointConfigRecord = self
            .store
            .get(Kind::EndpointConfig, name)?
            .ok_or_else(|| self.not_found("endpoint configuration", "endpoint-config", name))?;
        let mut out = without_map(&record.input, &[]);
        out.insert("EndpointConfigArn".into(), json!(record.arn));
        out.insert("CreationTime".into(), json!(record.created));
        Ok(Value::Object(out))
    }

    fn delete_endpoint_config(&self, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointConfigName")?;
        if !self.store.delete(Kind::EndpointConfig, name)? {
            return Err(self.not_found("endpoint configuration", "endpoint-config", name));
        }
        self.store
            .delete(Kind::Tags, &self.settings.arn("endpoint-config", name))?;
        Ok(json!({}))
    }

    /// ListModels, ListEndpointConfigs and ListEndpoints: filters, sort, paging.
    fn list(&self, kind: Kind, input: &Value) -> OpResult {
        let (key, name_field, arn_field) = match kind {
            Kind::Model => ("Models", "ModelName", "ModelArn"),
            Kind::EndpointConfig => ("EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"),
            _ => ("Endpoints", "EndpointName", "EndpointArn"),
        };
        let summaries: Vec<Value> = match kind {
            Kind::Model => self
                .store
                .list::<ModelRecord>(kind)?
                .into_iter()
                .map(|r| json!({name_field: r.name, arn_field: r.arn, "CreationTime": r.created}))
                .collect(),
            Kind::EndpointConfig => self
                .store
                .list::<EndpointConfigRecord>(kind)?
                .into_iter()
                .map(|r| json!({name_field: r.name, arn_field: r.arn, "CreationTime": r.created}))
                .collect(),
            _ => self
                .store
                .list::<EndpointRecord>(kind)?
                .into_iter()
                .map(|r| r.summary())
                .collect(),
        };
        let (page, next) = records::list_page(summaries, input, name_field)?;
        let mut out = Map::new();
        out.insert(key.into(), Value::Array(page));
        if let Some(token) = next {
            out.insert("NextToken".into(), json!(token));
        }
        Ok(Value::Object(out))
    }

    fn tags_of(&self, arn: &str) -> Result<Vec<Value>, AwsError> {
        Ok(self
            .store
            .get::<Vec<Value>>(Kind::Tags, arn)?
            .unwrap_or_default())
    }

    fn put_tags(&self, arn: &str, tags: Option<&Value>) -> Result<(), AwsError> {
        let Some(Value::Array(new)) = tags else {
            return Ok(());
        };
        let mut all = self.tags_of(arn)?;
        for tag in new {
            let key = validate::required_str(tag, "Key")?;
            all.retain(|t| t.get("Key").and_then(Value::as_str) != Some(key));
            all.push(json!({"Key": key, "Value": tag.get("Value").and_then(Value::as_str).unwrap_or("")}));
        }
        if all.len() > 50 {
            return Err(AwsError::validation("A resource can have at most 50 tags."));
        }
        self.store.put(Kind::Tags, arn, &all)?;
        Ok(())
    }

    /// The resource an ARN names must exist.
    fn check_arn(&self, arn: &str) -> Result<(), AwsError> {
        let (kind, name) = arn
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split_once('/'))
            .unwrap_or(("", ""));
        let store_kind = match kind {
            "model" => Kind::Model,
            "endpoint-config" => Kind::EndpointConfig,
            "endpoint" => Kind::Endpoint,
            _ => {
                return Err(AwsError::validation(format!(
                    "Resource {arn} is not a model, endpoint-config or endpoint ARN."
                )))
            }
        };
        let found = match store_kind {
            Kind::Model => self
                .store
                .list::<ModelRecord>(store_kind)?
                .iter()
                .any(|r| r.arn == arn),
            Kind::EndpointConfig => self
                .store
                .list::<EndpointConfigRecord>(store_kind)?
                .iter()
                .any(|r| r.arn == arn),
            _ => self
                .store
                .list::<EndpointRecord>(store_kind)?
                .iter()
                .any(|r| r.arn == arn),
        };
        if found && !name.is_empty() {
            Ok(())
        } else {
            Err(AwsError::validation(format!(
                "Resource {arn} does not exist."
            )))
        }
    }

    fn add_tags(&self, input: &Value) -> OpResult {
        let arn = validate::required_str(input, "ResourceArn")?;
        self.check_arn(arn)?;
        self.put_tags(arn, input.get("Tags"))?;
        Ok(json!({ "Tags": input.get("Tags").cloned().unwrap_or(json!([])) }))
    }

    fn list_tags(&self, input: &Value) -> OpResult {
        let arn = validate::required_str(input, "ResourceArn")?;
        self.check_arn(arn)?;
        Ok(json!({ "Tags": self.tags_of(arn)? }))
    }

    fn delete_tags(&self, input: &Value) -> OpResult {
        let arn = validate::required_str(input, "ResourceArn")?;
        self.check_arn(arn)?;
        let keys: Vec<&str> = input
            .get("TagKeys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut all = self.tags_of(arn)?;
        all.retain(|t| !keys.contains(&t.get("Key").and_then(Value::as_str).unwrap_or("")));
        self.store.put(Kind::Tags, arn, &all)?;
        Ok(json!({}))
    }
}

/// `input` without the named members.
fn without(input: &Value, drop: &[&str]) -> Value {
    Value::Object(without_map(input, drop))
}

fn without_map(input: &Value, drop: &[&str]) -> Map<String, Value> {
    input
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Only the named members of `input`.
fn pick(input: &Value, keep: &[&str]) -> Map<String, Value> {
    input
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}
