//! An endpoint: its configuration, status, variants and deployment generation.

use serde::{Deserialize, Serialize};

/// EndpointStatus, botocore's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointStatus {
    OutOfService,
    Creating,
    Updating,
    SystemUpdating,
    RollingBack,
    InService,
    Deleting,
    Failed,
    UpdateRollbackFailed,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::OutOfService => "OutOfService",
            EndpointStatus::Creating => "Creating",
            EndpointStatus::Updating => "Updating",
            EndpointStatus::SystemUpdating => "SystemUpdating",
            EndpointStatus::RollingBack => "RollingBack",
            EndpointStatus::InService => "InService",
            EndpointStatus::Deleting => "Deleting",
            EndpointStatus::Failed => "Failed",
            EndpointStatus::UpdateRollbackFailed => "UpdateRollbackFailed",
        }
    }
}

/// The state of one production variant of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantState {
    pub name: String,
    pub image: String,
    pub current_weight: f64,
    pub desired_weight: f64,
    pub current_count: u32,
    pub desired_count: u32,
}

/// An endpoint as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub arn: String,
    pub config_name: String,
    pub status: EndpointStatus,
    pub failure_reason: Option<String>,
    pub created: f64,
    pub last_modified: f64,
    pub variants: Vec<VariantState>,
    /// Bumped by every deployment; containers carry it in a label.
    pub generation: u64,
}

impl Endpoint {
    /// Whether an update may start (SageMaker refuses one while another runs).
    pub fn is_settled(&self) -> bool {
        self.status == EndpointStatus::InService
    }

    pub fn variant_mut(&mut self, name: &str) -> Option<&mut VariantState> {
        self.variants.iter_mut().find(|v| v.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_earlier_versions_still_read() {
        let stored = r#"{"name":"e","arn":"arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
            "config_name":"c","status":"InService","failure_reason":null,"created":1.5,
            "last_modified":2.5,"variants":[{"name":"AllTraffic","image":"i","current_weight":1.0,
            "desired_weight":1.0,"current_count":1,"desired_count":1}],"generation":3}"#;
        let e: Endpoint = serde_json::from_str(stored).unwrap();
        assert_eq!(e.status, EndpointStatus::InService);
        assert_eq!(e.status.as_str(), "InService");
        assert!(e.is_settled());
    }
}
