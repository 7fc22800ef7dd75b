//! An endpoint configuration (CreateEndpointConfig): its production variants and, for
//! asynchronous endpoints, where results go.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An endpoint configuration as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub name: String,
    pub arn: String,
    pub created: f64,
    #[serde(rename = "input")]
    pub spec: EndpointConfigSpec,
}

/// CreateEndpointConfig's members (DescribeEndpointConfig answers with them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfigSpec {
    pub endpoint_config_name: String,
    pub production_variants: Vec<ProductionVariant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_inference_config: Option<AsyncInferenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_capture_config: Option<DataCaptureConfig>,
    /// Members kept and described, not acted on (KmsKeyId, …).
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl EndpointConfigSpec {
    pub fn variant(&self, name: &str) -> Option<&ProductionVariant> {
        self.production_variants
            .iter()
            .find(|v| v.variant_name == name)
    }
}

/// One production variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductionVariant {
    pub variant_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_instance_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Filled in at CreateEndpointConfig when missing, as SageMaker does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_variant_weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_startup_health_check_timeout_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless_config: Option<ServerlessConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// How a variant routes calls among its instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    /// `RANDOM` or `LEAST_OUTSTANDING_REQUESTS` (botocore's enum; checked at the edge).
    pub routing_strategy: String,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// A serverless variant's configuration. sagedock runs it as one instance of
/// [`ProductionVariant::SERVERLESS_INSTANCE_TYPE`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerlessConfig {
    #[serde(rename = "MemorySizeInMB")]
    pub memory_size_in_mb: u32,
    #[serde(rename = "MaxConcurrency")]
    pub max_concurrency: u32,
    #[serde(
        rename = "ProvisionedConcurrency",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub provisioned_concurrency: Option<u32>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl ProductionVariant {
    /// InitialVariantWeight when it is not given.
    pub const DEFAULT_WEIGHT: f64 = 1.0;
    /// The instance type a serverless variant runs on.
    pub const SERVERLESS_INSTANCE_TYPE: &'static str = "ml.m5.large";

    pub fn weight(&self) -> f64 {
        self.initial_variant_weight.unwrap_or(Self::DEFAULT_WEIGHT)
    }

    /// How many instances it starts with (a serverless variant: one).
    pub fn instance_count(&self) -> u32 {
        self.initial_instance_count.unwrap_or(1)
    }

    pub fn instance_type(&self) -> &str {
        self.instance_type
            .as_deref()
            .unwrap_or(Self::SERVERLESS_INSTANCE_TYPE)
    }

    pub fn model_name(&self) -> &str {
        self.model_name.as_deref().unwrap_or_default()
    }
}

/// DataCaptureConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCaptureConfig {
    /// Capture is on unless this says false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_capture: Option<bool>,
    pub initial_sampling_percentage: u32,
    #[serde(rename = "DestinationS3Uri")]
    pub destination_s3_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub capture_options: Vec<CaptureOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_content_type_header: Option<CaptureContentTypeHeader>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// One of DataCaptureConfig.CaptureOptions: `Input`, `Output` or `InputAndOutput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaptureOption {
    pub capture_mode: String,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// Which media types are captured as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaptureContentTypeHeader {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub csv_content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_content_types: Vec<String>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl DataCaptureConfig {
    pub fn enabled(&self) -> bool {
        self.enable_capture.unwrap_or(true)
    }

    /// Whether CaptureOptions asks for `side` (`Input` or `Output`).
    pub fn captures(&self, side: &str) -> bool {
        self.capture_options
            .iter()
            .any(|o| o.capture_mode == side || o.capture_mode == "InputAndOutput")
    }
}

/// AsyncInferenceConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncInferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_config: Option<AsyncClientConfig>,
    pub output_config: AsyncOutputConfig,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// AsyncInferenceConfig.ClientConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_invocations_per_instance: Option<u32>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

/// AsyncInferenceConfig.OutputConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncOutputConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_output_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_failure_path: Option<String>,
    #[serde(flatten)]
    pub echoed: Map<String, Value>,
}

impl AsyncInferenceConfig {
    pub fn max_concurrent_invocations_per_instance(&self) -> Option<u32> {
        self.client_config
            .as_ref()
            .and_then(|c| c.max_concurrent_invocations_per_instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_live_in_one_place() {
        let v: ProductionVariant = serde_json::from_value(json!({
            "VariantName": "v", "ModelName": "m",
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
        }))
        .unwrap();
        assert_eq!(v.weight(), 1.0);
        assert_eq!(v.instance_count(), 1);
        assert_eq!(v.instance_type(), "ml.m5.large");
        assert_eq!(
            v.serverless_config.as_ref().unwrap().memory_size_in_mb,
            2048
        );
        let back = serde_json::to_value(&v).unwrap();
        assert_eq!(back["ServerlessConfig"]["MemorySizeInMB"], 2048);
    }
}
