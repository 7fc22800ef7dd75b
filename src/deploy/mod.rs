//! Deployments: a plan in, a fleet of healthy, routed containers out — the one path that
//! `serve`, `ci`, `up` and batch transform jobs all take.
//!
//! plan ([`plan`]: what to run, made by the caller) → launch ([`Deployer::launch`]: model
//! data fetched and unpacked, images checked, one container per instance and model
//! container, named, labelled and limited the same way whoever asked, each healthy on
//! `/ping`) → publish (the [`Fleet`] becomes a [`crate::endpoint::LiveEndpoint`] in the
//! router) → reconcile (the caller's: `up`'s endpoint lifecycle, `serve`'s foreground).
//!
//! Every container carries the labels that let a later run find it: owner, endpoint,
//! variant, instance, container position, generation. After a restart,
//! [`Deployer::adopt`] rebuilds a fleet from the running containers of a plan.
//!
//! Does not: know the SageMaker API or its records (the control plane makes plans from
//! them) or route invocations.

mod adopt;
mod capacity;
mod fleet;
mod launch;
mod model_data;
pub mod plan;
pub mod supervise;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use capacity::{Capacity, CapacityError};
pub use fleet::{Fleet, Member};
pub use plan::{
    AsyncPlan, ContainerPlan, EndpointPlan, ModelSource, ServerlessPlan, Serves, VariantPlan,
};
pub use supervise::{Change, LiveFleet};

use crate::artifact::{Cache, CacheError};
use crate::runtime::events::Death;
use crate::runtime::network::{self, Lease, OwnerNetworks};
use crate::runtime::{Engine, RuntimeError};
use crate::storage::{Storage, StorageError};

/// Why a deployment failed. The message is what a user reads in FailureReason or on
/// stderr: it says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("Failed to download model data ({location}): {source}")]
    ModelData {
        location: String,
        #[source]
        source: StorageError,
    },
    #[error("The model data {location} cannot be used: {source}")]
    Artifact {
        location: String,
        #[source]
        source: CacheError,
    },
    #[error(
        "Failed to download the inference code (SAGEMAKER_SUBMIT_DIRECTORY {location}): {source}"
    )]
    SubmitDirectory {
        location: String,
        #[source]
        source: StorageError,
    },
    #[error("SAGEMAKER_SUBMIT_DIRECTORY {location} is not an object (a sourcedir.tar.gz)")]
    SubmitDirectoryNotObject { location: String },
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A container did not start; `findings` are what the artifact's layout checks say
    /// (errors and warnings, said first: they often explain the failure).
    #[error("{}{source}", findings.iter().map(|f| format!("{f}; ")).collect::<String>())]
    Start {
        findings: Vec<String>,
        #[source]
        source: Box<RuntimeError>,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sagedock failed: {0}")]
    Internal(String),
}

impl DeployError {
    /// True when the container exited while starting (rather than never getting healthy).
    pub fn exited_at_start(&self) -> bool {
        match self {
            DeployError::Runtime(e) => matches!(e, RuntimeError::ExitedAtStart { .. }),
            DeployError::Start { source, .. } => {
                matches!(**source, RuntimeError::ExitedAtStart { .. })
            }
            _ => false,
        }
    }

    /// True when the model or image is at fault (it did not start), not the machine.
    pub fn is_start_failure(&self) -> bool {
        matches!(
            self,
            DeployError::Start { .. }
                | DeployError::Runtime(
                    RuntimeError::ExitedAtStart { .. } | RuntimeError::HealthTimeout { .. }
                )
        )
    }
}

/// How deployments run.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Pull images the engine does not have.
    pub pull: bool,
    /// Run accelerator instance types without their devices.
    pub cpu_only: bool,
    pub capacity: Capacity,
    /// How often instances in service are asked `/ping`.
    pub health_check_interval: Duration,
    /// How long a serverless variant stays warm without a call before it is scaled to
    /// zero (unless ProvisionedConcurrency keeps it).
    pub serverless_idle: Duration,
    /// Which local image runs for one of AWS's image URIs.
    pub images: Arc<crate::runtime::ImageMap>,
    /// Told how pulls and health waits go, for a progress line (`serve`, `demo`).
    pub meter: Option<Arc<crate::progress::Meter>>,
}

impl DeployOptions {
    /// `/ping` every 5 s while in service.
    pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
    /// Serverless instances idle this long are stopped (SageMaker does not publish its
    /// figure).
    pub const SERVERLESS_IDLE: Duration = Duration::from_secs(300);

    /// Options with the defaults but for the caps.
    pub fn with_capacity(capacity: Capacity) -> DeployOptions {
        DeployOptions {
            pull: false,
            cpu_only: false,
            capacity,
            health_check_interval: Self::HEALTH_CHECK_INTERVAL,
            serverless_idle: Self::SERVERLESS_IDLE,
            images: Arc::default(),
            meter: None,
        }
    }
}

/// Runs plans on one engine, as one owner.
pub struct Deployer {
    engine: Engine,
    cache: Cache,
    storage: Storage,
    /// The owner label of every container this deployer starts.
    owner: String,
    /// The region containers see in AWS_REGION.
    region: String,
    options: DeployOptions,
    /// The owner's networks, shared with whatever else starts the owner's containers.
    networks: Arc<OwnerNetworks>,
    /// The deaths of the owner's containers, followed from the first fleet watched.
    deaths: std::sync::OnceLock<tokio::sync::broadcast::Sender<Death>>,
}

impl Deployer {
    pub fn new(
        engine: Engine,
        cache: Cache,
        storage: Storage,
        owner: String,
        region: String,
        options: DeployOptions,
    ) -> Deployer {
        Deployer {
            networks: Arc::new(OwnerNetworks::new(engine.clone(), owner.clone())),
            engine,
            cache,
            storage,
            owner,
            region,
            options,
            deaths: std::sync::OnceLock::new(),
        }
    }

    /// The deaths of this owner's containers, as the engine reports them.
    pub(crate) fn deaths(&self) -> tokio::sync::broadcast::Receiver<Death> {
        self.deaths
            .get_or_init(|| crate::runtime::events::follow(self.engine.clone(), self.owner.clone()))
            .subscribe()
    }

    /// An address on the owner's network (its internal one when `isolated`).
    pub async fn lease(&self, isolated: bool) -> Result<Arc<Lease>, RuntimeError> {
        self.networks.lease(isolated).await
    }

    /// The lease of an address a running container of the owner already has.
    pub async fn claim(
        &self,
        isolated: bool,
        address: std::net::Ipv4Addr,
    ) -> Result<Arc<Lease>, RuntimeError> {
        self.networks.claim(isolated, address).await
    }

    /// The owner's networks.
    pub fn networks(&self) -> &Arc<OwnerNetworks> {
        &self.networks
    }

    /// The end of a run: every container of the owner removed (those whose removal is
    /// under way included, and those created by a deployment cancelled before it could
    /// guard them), then the owner's networks.
    pub async fn shut_down(&self) {
        self.remove_all().await;
        crate::runtime::removal::Removals::global().settled().await;
        network::remove_if_empty(&self.engine, &self.owner).await;
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn capacity(&self) -> Capacity {
        self.options.capacity
    }

    /// Whether images the engine lacks are pulled.
    pub fn pulls(&self) -> bool {
        self.options.pull
    }

    pub fn health_check_interval(&self) -> Duration {
        self.options.health_check_interval
    }

    pub fn serverless_idle(&self) -> Duration {
        self.options.serverless_idle
    }

    /// How long a health check waits by default (SageMaker: the variant's
    /// ContainerStartupHealthCheckTimeoutInSeconds, else its own default).
    pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(600);
}
