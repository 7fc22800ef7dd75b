//! Containers through the Docker Engine API, under the SageMaker container contracts:
//! serving (CONTRACT §1: the image runs with the single argument `serve`, the model is
//! bind-mounted read-only at `/opt/ml/model`, port 8080 answers `GET /ping` and
//! `POST /invocations`) and training (§5: `train`, the `/opt/ml` folders mounted, run to
//! its exit); the instance type sets CPU and memory limits.
//!
//! Owns: connecting to the engine ([`engine`]), turning a request into a container
//! ([`spec`]), owning each container from the instant it exists ([`guard`]), starting
//! and waiting for health ([`launch`]), logs ([`logs`]) and finding and removing the
//! leftovers of runs that are gone ([`gc`]); on a Docker Swarm, the same as services of
//! one task each ([`swarm`]).
//!
//! Does not: know the SageMaker APIs, route requests, or unpack artifacts.

pub mod engine;
pub mod events;
pub mod gc;
pub mod guard;
pub mod image_map;
pub mod instance;
pub mod launch;
pub mod logs;
pub mod network;
pub mod owner;
pub mod removal;
pub mod spec;
pub mod stats;
pub mod swarm;

pub use engine::Engine;
pub use guard::ContainerGuard;
pub use image_map::ImageMap;
pub use instance::{Accelerator, InstanceType};
pub use launch::{launch, Exit, Instance, ReadyPolicy};
pub use spec::ContainerSpec;

/// Label keys every sagedock container carries.
pub mod labels {
    pub const MANAGED: &str = "sagedock.managed";
    pub const ENDPOINT: &str = "sagedock.endpoint";
    pub const VARIANT: &str = "sagedock.variant";
    pub const INSTANCE: &str = "sagedock.instance";
    /// A container's position in its model (0 for the first of a pipeline).
    pub const CONTAINER: &str = "sagedock.container";
    /// Which deployment of the endpoint started the container.
    pub const GENERATION: &str = "sagedock.generation";
    pub const RUN: &str = "sagedock.run";
    pub const OWNER: &str = "sagedock.owner";
    pub const MODEL_SHA256: &str = "sagedock.model-sha256";
    pub const INSTANCE_TYPE: &str = "sagedock.instance-type";
    /// The training job a container runs, and which of its hosts it is.
    pub const TRAINING_JOB: &str = "sagedock.training-job";
    pub const HOST: &str = "sagedock.host";
    /// The transform job a container serves.
    pub const TRANSFORM_JOB: &str = "sagedock.transform-job";
}

/// Why a runtime operation failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach the Docker engine at {host} ({detail}); start one (`bash harness/ci/docker.sh` installs and starts dockerd on Debian) or point DOCKER_HOST at a running engine")]
    EngineUnreachable { host: String, detail: String },
    #[error("image {image} is not in the local Docker engine; build it (this repository's test images: `bash harness/images/build-all.sh`) or pass --pull to fetch it from its registry")]
    ImageMissing { image: String },
    #[error("cannot pull image {image}: {detail}")]
    Pull { image: String, detail: String },
    #[error("Docker engine refused to {op} {target}: {source}")]
    Docker {
        op: &'static str,
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{0}")]
    InstanceType(String),
    #[error("{0}")]
    Environment(String),
    #[error("container {name} exited with code {exit_code} while starting{oom}; last log lines:\n{logs}")]
    ExitedAtStart {
        name: String,
        exit_code: i64,
        oom: &'static str,
        logs: String,
    },
    #[error("container {name} did not answer GET /ping with 200 within {waited}; last /ping: {last_ping}; last log lines:\n{logs}")]
    HealthTimeout {
        name: String,
        waited: String,
        last_ping: String,
        logs: String,
    },
    #[error("container {name} has no address sagedock can reach ({detail})")]
    NoAddress { name: String, detail: String },
    #[error("network {name}: {detail}")]
    Network { name: String, detail: String },
    #[error("removing container {name} stopped: {detail}")]
    Removal { name: String, detail: String },
    #[error("{0}")]
    Cluster(String),
}

impl RuntimeError {
    pub fn docker(
        op: &'static str,
        target: impl Into<String>,
        source: bollard::errors::Error,
    ) -> Self {
        RuntimeError::Docker {
            op,
            target: target.into(),
            source,
        }
    }
}
