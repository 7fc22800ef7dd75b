//! A model (CreateModel): its containers, how they are invoked, its network isolation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A model as stored: what CreateModel was given (without its tags), its ARN and time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub arn: String,
    pub created: f64,
    #[serde(rename = "input")]
    pub spec: ModelSpec,
}

/// CreateModel's members (DescribeModel answers with them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelSpec {
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container: Option<ContainerDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<ContainerDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_execution_config: Option<InferenceExecutionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_network_isolation: Option<bool>,
    /// Members kept and described, not acted on (VpcConfig, …).
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl ModelSpec {
    /// The containers that serve, in order: the primary, or `Containers`.
    pub fn containers(&self) -> &[ContainerDefinition] {
        match (&self.primary_container, &self.containers) {
            (Some(primary), _) => std::slice::from_ref(primary),
            (None, Some(list)) => list,
            (None, None) => &[],
        }
    }

    /// How an invocation passes through the containers.
    pub fn execution_mode(&self) -> ExecutionMode {
        if self.containers().len() < 2 {
            return ExecutionMode::Single;
        }
        match self.inference_execution_config.as_ref().map(|c| c.mode) {
            Some(InferenceExecutionMode::Direct) => ExecutionMode::Direct,
            _ => ExecutionMode::Serial,
        }
    }

    pub fn network_isolation(&self) -> bool {
        self.enable_network_isolation.unwrap_or(false)
    }
}

/// How a model's containers are invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMode {
    /// One container.
    Single,
    /// An inference pipeline: each container's answer is the next one's request.
    Serial,
    /// The caller names one container with TargetContainerHostname.
    Direct,
}

/// InferenceExecutionConfig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InferenceExecutionConfig {
    pub mode: InferenceExecutionMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InferenceExecutionMode {
    Serial,
    Direct,
}

/// ContainerDefinition.Mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerMode {
    SingleModel,
    MultiModel,
}

/// One container of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ContainerMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_data_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_data_source: Option<ModelDataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_package_name: Option<String>,
    /// Members kept and described, not acted on (ImageConfig, MultiModelConfig, …).
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// ModelDataSource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelDataSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_data_source: Option<S3ModelDataSource>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// ModelDataSource.S3DataSource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3ModelDataSource {
    pub s3_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_type: Option<String>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl ContainerDefinition {
    /// Where the container's model data is (`ModelDataUrl`, else the S3 data source's
    /// URI), if it has any (bring-your-own images may need none).
    pub fn model_data(&self) -> Option<&str> {
        self.model_data_url.as_deref().or_else(|| {
            self.model_data_source
                .as_ref()?
                .s3_data_source
                .as_ref()
                .map(|s| s.s3_uri.as_str())
        })
    }

    /// Whether the model data is one uncompressed object or prefix
    /// (`S3DataSource.CompressionType: None`) rather than a model.tar.gz.
    pub fn uncompressed(&self) -> bool {
        self.model_data_source
            .as_ref()
            .and_then(|s| s.s3_data_source.as_ref())
            .and_then(|s| s.compression_type.as_deref())
            == Some("None")
    }

    pub fn is_multi_model(&self) -> bool {
        self.mode == Some(ContainerMode::MultiModel)
    }

    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or_default()
    }

    pub fn environment(&self) -> impl Iterator<Item = (&String, &String)> {
        self.environment.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_api_shape_round_trips_with_what_sagedock_does_not_act_on() {
        let input = json!({
            "ModelName": "m",
            "PrimaryContainer": {
                "Image": "sagedock/echo:latest",
                "ModelDataUrl": "s3://models/m.tar.gz",
                "Environment": {"A": "1"},
                "ImageConfig": {"RepositoryAccessMode": "Platform"}
            },
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
            "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["s-1"]}
        });
        let spec: ModelSpec = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(spec.containers().len(), 1);
        assert_eq!(
            spec.containers()[0].model_data(),
            Some("s3://models/m.tar.gz")
        );
        assert_eq!(spec.execution_mode(), ExecutionMode::Single);
        assert!(spec.echoed.contains_key("VpcConfig"));
        assert_eq!(serde_json::to_value(&spec).unwrap(), input);
    }

    #[test]
    fn pipelines_are_serial_unless_direct() {
        let two = |mode: Option<&str>| {
            let mut v = json!({"ModelName": "m", "Containers": [{"Image": "a"}, {"Image": "b"}]});
            if let Some(mode) = mode {
                v["InferenceExecutionConfig"] = json!({"Mode": mode});
            }
            serde_json::from_value::<ModelSpec>(v)
                .unwrap()
                .execution_mode()
        };
        assert_eq!(two(None), ExecutionMode::Serial);
        assert_eq!(two(Some("Serial")), ExecutionMode::Serial);
        assert_eq!(two(Some("Direct")), ExecutionMode::Direct);
    }
}
