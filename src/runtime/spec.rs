//! What one container is: image, command, mounts, environment, limits, labels. A serving
//! container runs `serve` and answers on its port; a job's container (training) runs
//! `train` (or the job's entrypoint and arguments), serves nothing and writes to its
//! `/opt/ml` folders.
//!
//! The environment is checked against SageMaker's own limits (CONTRACT §1.1) before
//! anything starts: at most 100 variables, keys matching `[a-zA-Z_][a-zA-Z0-9_]*`, keys and
//! values of at most 1024 characters, at most 32 KiB in all.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use std::sync::Arc;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointIpamConfig, EndpointSettings, HostConfig,
    NetworkingConfig, PortBinding,
};

use super::instance::{Accelerator, InstanceType};
use super::network::Lease;
use super::{labels, RuntimeError};

/// The port a serving container listens on.
pub const SERVING_PORT: u16 = 8080;
/// Where a multi-model container finds its models.
pub const MODELS_MOUNT: &str = "/opt/ml/models";
/// Where a multi-model container sees the artifact cache's unpacked trees (read-only).
pub const ARTIFACTS_MOUNT: &str = "/opt/ml/.sagedock/artifacts";

/// A short random id for one launch (container names and the `run` label).
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))[..6].to_string()
}

/// One container to create.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// The command: `serve`, or for a job `train` (or its ContainerArguments).
    pub cmd: Vec<String>,
    /// ContainerEntrypoint: replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Whether the container serves on `port` (exposed, and published unless isolated).
    pub serves: bool,
    /// Run the engine's init as process 1 (a job's: its program, often a toolkit that
    /// installs no signal handler, then gets the SIGTERM of a stop).
    pub init: bool,
    /// Mounted read-only at /opt/ml/model; `None` for images that need no model data.
    pub model_dir: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub instance_type: InstanceType,
    pub labels: BTreeMap<String, String>,
    /// The network and address the container gets (see [`super::network`]); an internal
    /// network (EnableNetworkIsolation) publishes no port. `None`: Docker's default bridge.
    pub network: Option<Arc<Lease>>,
    /// Run accelerator instance types without their devices.
    pub cpu_only: bool,
    /// The port the container serves on (8080, or SAGEMAKER_BIND_TO_PORT in pipelines).
    pub port: u16,
    /// ContainerDefinition.ContainerHostname.
    pub hostname: Option<String>,
    /// A multi-model container: the host directories mounted (read-only) at
    /// `/opt/ml/models` and at the artifacts path its models link into.
    pub multi_model: Option<(PathBuf, PathBuf)>,
    /// More host files or directories, each mounted read-only at its container path.
    pub mounts: Vec<(PathBuf, String)>,
    /// Host folders mounted read-write (a job's `/opt/ml` folders).
    pub writable: Vec<(PathBuf, String)>,
    /// `/etc/hosts` entries (`algo-2:10.0.0.5`): how a job's hosts find each other.
    pub extra_hosts: Vec<String>,
}

impl ContainerSpec {
    pub fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        instance_type: InstanceType,
    ) -> Self {
        let mut labels = BTreeMap::new();
        labels.insert(labels::MANAGED.to_string(), "true".to_string());
        labels.insert(labels::OWNER.to_string(), super::owner::current());
        labels.insert(
            labels::INSTANCE_TYPE.to_string(),
            instance_type.name.to_string(),
        );
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            cmd: vec!["serve".into()],
            entrypoint: None,
            serves: true,
            init: false,
            model_dir: None,
            env: BTreeMap::new(),
            instance_type,
            labels,
            network: None,
            cpu_only: false,
            port: SERVING_PORT,
            hostname: None,
            multi_model: None,
            mounts: Vec::new(),
            writable: Vec::new(),
            extra_hosts: Vec::new(),
        }
    }

    /// A job's container: runs `cmd` (with `entrypoint` in place of the image's, when
    /// given) and serves nothing.
    pub fn job(
        name: impl Into<String>,
        image: impl Into<String>,
        instance_type: InstanceType,
        entrypoint: Option<Vec<String>>,
        cmd: Vec<String>,
    ) -> Self {
        let mut spec = Self::new(name, image, instance_type);
        spec.cmd = cmd;
        spec.entrypoint = entrypoint;
        spec.serves = false;
        spec.init = true;
        spec
    }

    /// Mounts the host folder `host` read-write at `at` in the container.
    pub fn with_writable(mut self, host: impl Into<PathBuf>, at: impl Into<String>) -> Self {
        self.writable.push((host.into(), at.into()));
        self
    }

    /// Adds an `/etc/hosts` entry: `name` resolves to `address` in the container.
    pub fn with_host_entry(mut self, name: &str, address: std::net::Ipv4Addr) -> Self {
        self.extra_hosts.push(format!("{name}:{address}"));
        self
    }

    /// A multi-model container (`Mode: MultiModel`): `models_dir` is mounted at
    /// `/opt/ml/models`, `artifacts_dir` where the links in it point; both read-only.
    /// Sets SAGEMAKER_MULTI_MODEL=true.
    pub fn with_multi_model(mut self, models_dir: PathBuf, artifacts_dir: PathBuf) -> Self {
        self.env
            .insert("SAGEMAKER_MULTI_MODEL".into(), "true".into());
        self.multi_model = Some((models_dir, artifacts_dir));
        self
    }

    /// Serve on `port`, telling the container through SAGEMAKER_BIND_TO_PORT.
    pub fn with_bind_port(mut self, port: u16) -> Self {
        self.port = port;
        if port != SERVING_PORT {
            self.env
                .insert("SAGEMAKER_BIND_TO_PORT".into(), port.to_string());
        }
        self
    }

    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    pub fn with_model_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.model_dir = Some(dir.into());
        self
    }

    pub fn with_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env.extend(env);
        self
    }

    pub fn with_label(mut self, key: &str, value: impl Into<String>) -> Self {
        self.labels.insert(key.to_string(), value.into());
        self
    }

    /// Mounts the host path `host` read-only at `at` in the container.
    pub fn with_mount(mut self, host: impl Into<PathBuf>, at: impl Into<String>) -> Self {
        self.mounts.push((host.into(), at.into()));
        self
    }

    /// Joins the lease's network at its address.
    pub fn with_network(mut self, lease: Arc<Lease>) -> Self {
        self.network = Some(lease);
        self
    }

    /// Whether the container has no route outside this machine.
    pub fn isolated(&self) -> bool {
        self.network.as_ref().is_some_and(|l| l.internal())
    }

    pub fn with_cpu_only(mut self, on: bool) -> Self {
        self.cpu_only = on;
        self
    }

    fn binds(&self) -> Option<Vec<String>> {
        let mut binds = Vec::new();
        if let Some(dir) = &self.model_dir {
            binds.push(format!("{}:/opt/ml/model:ro", dir.display()));
        }
        if let Some((models, artifacts)) = &self.multi_model {
            binds.push(format!("{}:{MODELS_MOUNT}:ro", models.display()));
            binds.push(format!("{}:{ARTIFACTS_MOUNT}:ro", artifacts.display()));
        }
        for (host, at) in &self.mounts {
            binds.push(format!("{}:{at}:ro", host.display()));
        }
        for (host, at) in &self.writable {
            binds.push(format!("{}:{at}", host.display()));
        }
        (!binds.is_empty()).then_some(binds)
    }

    /// The Docker create request for this container on an engine with `host_cpus`.
    pub fn create_body(
        &self,
        host_cpus: u32,
        nvidia_runtime: bool,
    ) -> Result<ContainerCreateBody, RuntimeError> {
        validate_env(&self.env)?;
        let device_requests = self.device_requests(nvidia_runtime)?;
        let port = format!("{}/tcp", self.port);
        let mut host = HostConfig {
            binds: self.binds(),
            device_requests,
            auto_remove: Some(false),
            extra_hosts: (!self.extra_hosts.is_empty()).then(|| self.extra_hosts.clone()),
            init: self.init.then_some(true),
            ..Default::default()
        };
        if let Some(limits) = self.instance_type.limits(host_cpus) {
            host.nano_cpus = Some(limits.nano_cpus);
            host.memory = Some(limits.memory_bytes);
            host.memory_swap = Some(limits.memory_bytes);
        }
        let mut networking_config = None;
        if let Some(lease) = &self.network {
            host.network_mode = Some(lease.network().to_string());
            let endpoint = EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(lease.address.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            networking_config = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(lease.network().to_string(), endpoint)])),
            });
        }
        if self.serves && !self.isolated() {
            host.port_bindings = Some(HashMap::from([(
                port.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        }
        Ok(ContainerCreateBody {
            networking_config,
            image: Some(self.image.clone()),
            cmd: Some(self.cmd.clone()),
            entrypoint: self.entrypoint.clone(),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.labels.clone().into_iter().collect()),
            exposed_ports: self.serves.then(|| vec![port]),
            hostname: self.hostname.clone(),
            host_config: Some(host),
            ..Default::default()
        })
    }

    fn device_requests(
        &self,
        nvidia_runtime: bool,
    ) -> Result<Option<Vec<DeviceRequest>>, RuntimeError> {
        let name = self.instance_type.name;
        match self.instance_type.accelerator {
            Accelerator::None => Ok(None),
            _ if self.cpu_only => Ok(None),
            Accelerator::NvidiaGpu(n) if nvidia_runtime => Ok(Some(vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count: Some(i64::from(n)),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }])),
            Accelerator::NvidiaGpu(n) => Err(RuntimeError::InstanceType(format!(
                "{name} has {n} NVIDIA GPU(s), but the Docker engine has no NVIDIA runtime (install nvidia-container-toolkit); pass --cpu-only to run it without GPUs, or choose a CPU type such as ml.m5.xlarge"
            ))),
            Accelerator::Inferentia(_) => Err(RuntimeError::InstanceType(format!(
                "{name} has AWS Inferentia chips, which no local engine provides; pass --cpu-only to run it without them, or choose a CPU type such as ml.m5.xlarge"
            ))),
        }
    }
}

/// Checks an environment against SageMaker's limits for `ContainerDefinition.Environment`.
pub fn validate_env(env: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
    let fail = |m: String| Err(RuntimeError::Environment(m));
    if env.len() > 100 {
        return fail(format!(
            "{} environment variables; SageMaker allows at most 100",
            env.len()
        ));
    }
    let mut total = 0;
    for (key, value) in env {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return fail(format!(
                "environment variable name '{key}' must match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        if key.len() > 1024 || value.len() > 1024 {
            return fail(format!(
                "environment variable {key}: names and values are limited to 1024 characters"
            ));
        }
        total += key.len() + value.len();
    }
    if total > 32 * 1024 {
        return fail(format!(
            "environment holds {total} bytes of names and values; SageMaker allows at most 32768"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::instance::lookup;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_limits_follow_sagemaker() {
        assert!(validate_env(&env(&[("SAGEMAKER_PROGRAM", "inference.py")])).is_ok());
        assert!(validate_env(&env(&[("1BAD", "x")])).is_err());
        assert!(validate_env(&env(&[("BAD-NAME", "x")])).is_err());
        let long = "v".repeat(1025);
        assert!(validate_env(&env(&[("K", &long)])).is_err());
        let many: BTreeMap<String, String> =
            (0..101).map(|i| (format!("K{i}"), "v".into())).collect();
        assert!(validate_env(&many)
            .unwrap_err()
            .to_string()
            .contains("at most 100"));
        let big: BTreeMap<String, String> = (0..40)
            .map(|i| (format!("K{i}"), "v".repeat(1000)))
            .collect();
        assert!(validate_env(&big)
            .unwrap_err()
            .to_string()
            .contains("32768"));
    }

    #[test]
    fn limits_follow_the_instance_type_and_fit_the_host() {
        let spec =
            ContainerSpec::new("c", "img", lookup("ml.m5.xlarge").unwrap()).with_model_dir("/m");
        let body = spec.create_body(2, false).unwrap();
        let host = body.host_config.unwrap();
        assert_eq!(
            host.nano_cpus,
            Some(2_000_000_000),
            "4 vCPUs clamped to the host's 2"
        );
        assert_eq!(host.memory, Some(16 << 30));
        assert_eq!(host.binds.unwrap(), vec!["/m:/opt/ml/model:ro"]);
        assert_eq!(body.cmd.unwrap(), vec!["serve"]);
        let local = ContainerSpec::new("c", "img", lookup("local").unwrap())
            .create_body(2, false)
            .unwrap();
        assert_eq!(local.host_config.unwrap().memory, None);
    }

    #[test]
    fn a_job_container_runs_its_command_serves_nothing_and_writes_its_folders() {
        let spec = ContainerSpec::job(
            "t",
            "img",
            lookup("ml.m5.large").unwrap(),
            Some(vec!["python3".into(), "run.py".into()]),
            vec!["train".into()],
        )
        .with_writable("/w/model", "/opt/ml/model")
        .with_mount("/data", "/opt/ml/input/data/train")
        .with_host_entry("algo-2", std::net::Ipv4Addr::new(10, 0, 0, 3));
        let body = spec.create_body(2, false).unwrap();
        assert_eq!(body.cmd.unwrap(), vec!["train"]);
        assert_eq!(body.entrypoint.unwrap(), vec!["python3", "run.py"]);
        assert!(body.exposed_ports.is_none());
        let host = body.host_config.unwrap();
        assert!(host.port_bindings.is_none());
        assert_eq!(host.init, Some(true));
        assert_eq!(host.extra_hosts.unwrap(), vec!["algo-2:10.0.0.3"]);
        assert_eq!(
            host.binds.unwrap(),
            vec![
                "/data:/opt/ml/input/data/train:ro",
                "/w/model:/opt/ml/model"
            ]
        );
    }

    #[test]
    fn gpu_types_need_a_gpu_runtime_or_cpu_only() {
        let gpu = lookup("ml.g4dn.xlarge").unwrap();
        let err = ContainerSpec::new("c", "img", gpu)
            .create_body(2, false)
            .unwrap_err();
        assert!(err.to_string().contains("--cpu-only"));
        let ok = ContainerSpec::new("c", "img", gpu)
            .create_body(2, true)
            .unwrap();
        assert_eq!(
            ok.host_config.unwrap().device_requests.unwrap()[0].count,
            Some(1)
        );
        let cpu = ContainerSpec::new("c", "img", gpu)
            .with_cpu_only(true)
            .create_body(2, false)
            .unwrap();
        assert!(cpu.host_config.unwrap().device_requests.is_none());
    }
}
