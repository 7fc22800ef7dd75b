//! What to run for one endpoint: the single input of every deployment. `serve` and `ci`
//! make a plan from their arguments, `sagedock up` from the stored endpoint config and
//! models; [`super::Deployer`] runs any plan the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::artifact::ModelDir;
use crate::endpoint::capture::CaptureSettings;
use crate::endpoint::{Mode, Routing};
use crate::runtime::InstanceType;
use crate::storage::{ModelLocation, S3Location};

/// One endpoint.
#[derive(Debug, Clone)]
pub struct EndpointPlan {
    pub endpoint: String,
    /// Which deployment of the endpoint this is (bumped by every update; in container names
    /// and labels, so a restart tells the current fleet from an older one).
    pub generation: u64,
    pub variants: Vec<VariantPlan>,
    /// Asynchronous inference, when the endpoint takes it.
    pub asynchronous: Option<AsyncPlan>,
    /// Data capture, when the configuration asks for it.
    pub capture: Option<CaptureSettings>,
    /// What the containers serve: `endpoint` is an endpoint's name, or a transform job's.
    pub serves: Serves,
}

/// Whose containers a plan's are (their names and labels say it, so that an endpoint and
/// a transform job of the same name never take each other's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Serves {
    #[default]
    Endpoint,
    TransformJob,
}

/// One production variant.
#[derive(Debug, Clone)]
pub struct VariantPlan {
    pub name: String,
    pub weight: f64,
    pub instance_count: u32,
    pub instance_type: InstanceType,
    /// An instance's containers, in order (one, or an inference pipeline).
    pub containers: Vec<ContainerPlan>,
    /// How an invocation passes through them.
    pub mode: Mode,
    /// How a call picks an instance.
    pub routing: Routing,
    /// ServerlessConfig: calls in flight at most, and instances kept warm.
    pub serverless: Option<ServerlessPlan>,
    /// EnableNetworkIsolation: no route outside this machine.
    pub network_isolation: bool,
    /// How long an instance may take to answer `/ping` with 200.
    pub health_timeout: Duration,
}

/// One container of an instance.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    pub image: String,
    /// ContainerHostname (multi-container models; empty for one container, which
    /// SageMaker calls `primary`).
    pub hostname: String,
    /// The user's environment (the deployer adds AWS_REGION and what the contract sets).
    pub environment: BTreeMap<String, String>,
    pub model: ModelSource,
    /// The port the container is told in SAGEMAKER_BIND_TO_PORT, when its image accepts
    /// one (default: 8080, or 8080 plus its position in a pipeline).
    pub bind_port: Option<u16>,
}

impl ContainerPlan {
    /// `image` with the user's `environment` and its model from `model`.
    pub fn new(
        image: impl Into<String>,
        environment: BTreeMap<String, String>,
        model: ModelSource,
    ) -> ContainerPlan {
        ContainerPlan {
            image: image.into(),
            hostname: String::new(),
            environment,
            model,
            bind_port: None,
        }
    }

    /// Tells the container to serve on `port` (when its image accepts one).
    pub fn with_bind_port(mut self, port: u16) -> ContainerPlan {
        self.bind_port = Some(port);
        self
    }
}

/// Where a container's `/opt/ml/model` comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// No model data (bring-your-own images may need none).
    None,
    /// A folder ready to mount (`serve` and `ci` check and unpack the artifact first).
    Folder(ModelDir),
    /// Model data to fetch: a model.tar.gz (unpacked through the cache), or with
    /// `uncompressed` one object or a prefix mounted as it is.
    Location {
        location: ModelLocation,
        uncompressed: bool,
    },
    /// A multi-model container: models are loaded on demand from this prefix.
    MultiModel(ModelLocation),
}

/// A serverless variant's concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerlessPlan {
    /// MaxConcurrency.
    pub max_concurrency: u32,
    /// ProvisionedConcurrency (0: none, the variant scales to zero when idle).
    pub provisioned: u32,
}

/// An asynchronous endpoint's output locations and concurrency.
#[derive(Debug, Clone)]
pub struct AsyncPlan {
    pub output: S3Location,
    pub failure: Option<S3Location>,
    /// MaxConcurrentInvocationsPerInstance.
    pub per_instance: u32,
}

impl EndpointPlan {
    /// A plan of one variant: what `serve` and `ci` run.
    pub fn single(endpoint: impl Into<String>, variant: VariantPlan) -> EndpointPlan {
        EndpointPlan {
            endpoint: endpoint.into(),
            generation: 1,
            variants: vec![variant],
            asynchronous: None,
            capture: None,
            serves: Serves::Endpoint,
        }
    }

    pub fn variant(&self, name: &str) -> Option<&VariantPlan> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// Sets how many instances a variant runs (replacements and restarts go by it).
    pub fn set_instance_count(&mut self, variant: &str, count: u32) {
        if let Some(v) = self.variants.iter_mut().find(|v| v.name == variant) {
            v.instance_count = count;
        }
    }

    /// Instances in all.
    pub fn instances(&self) -> u64 {
        self.variants
            .iter()
            .map(|v| u64::from(v.instance_count))
            .sum()
    }
}

impl VariantPlan {
    /// One instance of one container, all the traffic, on `instance_type`; the rest as the
    /// `with_*` methods say (what `serve` and `ci` run).
    pub fn new(
        name: impl Into<String>,
        instance_type: InstanceType,
        container: ContainerPlan,
    ) -> VariantPlan {
        VariantPlan {
            name: name.into(),
            weight: 1.0,
            instance_count: 1,
            instance_type,
            containers: vec![container],
            mode: Mode::Single,
            routing: Routing::default(),
            serverless: None,
            network_isolation: false,
            health_timeout: crate::deploy::Deployer::DEFAULT_HEALTH_TIMEOUT,
        }
    }

    pub fn with_instance_count(mut self, count: u32) -> Self {
        self.instance_count = count;
        self
    }

    pub fn with_health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    pub fn with_network_isolation(mut self, on: bool) -> Self {
        self.network_isolation = on;
        self
    }

    /// The first container's image (what DescribeEndpoint reports as deployed).
    pub fn image(&self) -> &str {
        self.containers.first().map_or("", |c| c.image.as_str())
    }
}
