//! Fleets: the running containers of an endpoint, grouped by variant and instance (an
//! instance is its model's containers, in order), and how they are started.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, try_join_all};
use serde_json::Value;

use super::{Deployer, CONTAINER, GENERATION};
use crate::control::data;
use crate::control::records::{now, EndpointConfigRecord, ModelRecord};
use crate::endpoint::asynchronous::DEFAULT_PER_INSTANCE;
use crate::endpoint::multimodel::{self, ModelRepository};
use crate::endpoint::{
    AsyncOutput, AsyncQueue, Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode as InvokeMode,
};
use crate::runtime::{self, instance, labels, ContainerSpec, Instance, ReadyPolicy};

/// Where the SageMaker SDK's frameworks look for the inference code.
const SUBMIT_DIRECTORY: &str = "SAGEMAKER_SUBMIT_DIRECTORY";
/// Where a fetched `s3://` submit directory is mounted (read-only) in the container.
const SUBMIT_MOUNT: &str = "/opt/ml/.sagedock/submit";

/// One running container and how the router reaches it (kept for the container's life,
/// so its outstanding-request count and loaded models survive a republish).
pub(super) struct Member {
    pub(super) container: Instance,
    pub(super) backend: Arc<Backend>,
    /// A multi-model container's host directory of model links.
    models_dir: Option<std::path::PathBuf>,
}

impl Member {
    pub(super) async fn remove(self) -> Result<(), crate::runtime::RuntimeError> {
        let removed = self.container.guard.remove().await;
        if let Some(dir) = self.models_dir {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        removed
    }
}

/// The running instances of one variant; each instance is the model's containers.
pub(super) struct FleetVariant {
    pub(super) name: String,
    pub(super) weight: f64,
    pub(super) mode: InvokeMode,
    pub(super) hostnames: Vec<String>,
    pub(super) instances: Vec<Vec<Member>>,
    /// Multi-model variants: where TargetModel is fetched from.
    pub(super) models: Option<Arc<ModelRepository>>,
}

impl FleetVariant {
    pub(super) fn new(
        name: String,
        weight: f64,
        model: &ModelRecord,
        models: Option<Arc<ModelRepository>>,
    ) -> Self {
        FleetVariant {
            name,
            weight,
            mode: invoke_mode(model),
            hostnames: hostnames(&model.containers()),
            instances: Vec::new(),
            models,
        }
    }

    /// Adds running instances (each the model's containers, in order).
    pub(super) fn add_instances(&mut self, groups: Vec<Vec<Instance>>) {
        for group in groups {
            let members = group
                .into_iter()
                .zip(&self.hostnames)
                .map(|(container, host)| {
                    let (name, addr) = (&container.guard.name, container.addr);
                    let (backend, models_dir) = match &self.models {
                        Some(repository) => (
                            Backend::multi_model(name, host, addr),
                            Some(repository.models_dir(name)),
                        ),
                        None => (Backend::with_hostname(name, host, addr), None),
                    };
                    Member {
                        container,
                        backend,
                        models_dir,
                    }
                })
                .collect();
            self.instances.push(members);
        }
    }
}

/// The running instances of one endpoint.
pub(super) struct Fleet {
    pub(super) variants: Vec<FleetVariant>,
    /// The endpoint config's AsyncInferenceConfig output locations.
    pub(super) async_output: Option<AsyncOutput>,
}

/// The AsyncInferenceConfig output locations of an endpoint config.
pub(super) fn async_output(config: &EndpointConfigRecord) -> Option<AsyncOutput> {
    let out = config.input.pointer("/AsyncInferenceConfig/OutputConfig")?;
    let per_instance = config
        .input
        .pointer("/AsyncInferenceConfig/ClientConfig/MaxConcurrentInvocationsPerInstance")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_PER_INSTANCE, |n| n as u32);
    Some(AsyncOutput {
        output_path: out.get("S3OutputPath")?.as_str()?.to_string(),
        failure_path: out
            .get("S3FailurePath")
            .and_then(Value::as_str)
            .map(str::to_string),
        queue: AsyncQueue::new(per_instance),
    })
}

impl Fleet {
    /// Sizes the asynchronous queue for the instances running now.
    pub(super) fn size_queue(&self) {
        if let Some(output) = &self.async_output {
            let instances = self.variants.iter().map(|v| v.instances.len()).sum();
            output.queue.resize(instances);
        }
    }

    pub(super) fn live(&self, name: &str) -> LiveEndpoint {
        LiveEndpoint {
            name: name.to_string(),
            async_output: self.async_output.clone(),
            variants: self
                .variants
                .iter()
                .map(|v| {
                    let instances = v
                        .instances
                        .iter()
                        .map(|group| LiveInstance {
                            containers: group.iter().map(|m| m.backend.clone()).collect(),
                        })
                        .collect();
                    LiveVariant::new(&v.name, v.weight, v.mode, instances, v.models.clone())
                })
                .collect(),
        }
    }

    pub(super) async fn remove(self) {
        let all = self
            .variants
            .into_iter()
            .flat_map(|v| v.instances)
            .flatten()
            .map(Member::remove);
        for result in join_all(all).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "removing a container failed; `sagedock gc` will retry");
            }
        }
    }
}

/// ContainerHostname of each container: the given ones, else `container-<n>` by position
/// (none for a single container, which SageMaker calls `primary` in messages).
pub(super) fn hostnames(containers: &[Value]) -> Vec<String> {
    containers
        .iter()
        .enumerate()
        .map(
            |(j, c)| match c.get("ContainerHostname").and_then(Value::as_str) {
                Some(name) => name.to_string(),
                None if containers.len() == 1 => String::new(),
                None => format!("container-{}", j + 1),
            },
        )
        .collect()
}

/// Whether a container definition is a multi-model one (`Mode: MultiModel`).
pub(super) fn is_multi_model(container: &Value) -> bool {
    container.get("Mode").and_then(Value::as_str) == Some("MultiModel")
}

/// How a model's containers are invoked.
pub(super) fn invoke_mode(model: &ModelRecord) -> InvokeMode {
    if model.containers().len() < 2 {
        return InvokeMode::Single;
    }
    match model
        .input
        .pointer("/InferenceExecutionConfig/Mode")
        .and_then(Value::as_str)
    {
        Some("Direct") => InvokeMode::Direct,
        _ => InvokeMode::Serial,
    }
}

impl Deployer {
    /// Starts every variant of `config` at `generation`.
    pub(super) async fn build_fleet(
        &self,
        name: &str,
        config: &EndpointConfigRecord,
        generation: u64,
    ) -> Result<Fleet, String> {
        let mut variants = Vec::new();
        for variant in config.variants() {
            let count = variant
                .get("InitialInstanceCount")
                .and_then(Value::as_u64)
                .unwrap_or(1) as u32;
            let instances = self
                .launch_variant(name, &variant, generation, 0, count)
                .await?;
            let model = self.model_of(&variant)?;
            let mut fleet_variant = FleetVariant::new(
                variant["VariantName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                variant
                    .get("InitialVariantWeight")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0),
                &model,
                self.model_repository(&model),
            );
            fleet_variant.add_instances(instances);
            variants.push(fleet_variant);
        }
        let fleet = Fleet {
            variants,
            async_output: async_output(config),
        };
        fleet.size_queue();
        Ok(fleet)
    }

    /// Starts instances `first..first+count` of one variant; each instance is the model's
    /// containers, in order.
    pub(super) async fn launch_variant(
        &self,
        endpoint: &str,
        variant: &Value,
        generation: u64,
        first: u32,
        count: u32,
    ) -> Result<Vec<Vec<Instance>>, String> {
        let vname = variant["VariantName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let model = self.model_of(variant)?;
        let containers = model.containers();
        let itype = instance::lookup(variant["InstanceType"].as_str().unwrap_or("ml.m5.large"))?;
        let timeout = variant
            .get("ContainerStartupHealthCheckTimeoutInSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or(self.options.health_timeout);
        let isolation = model
            .input
            .get("EnableNetworkIsolation")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let hostnames = hostnames(&containers);
        let suffix = format!("{:04x}", (now() * 1000.0) as u64 & 0xffff);
        let mut specs: Vec<ContainerSpec> = Vec::new();
        for (j, container) in containers.iter().enumerate() {
            let image = container["Image"].as_str().unwrap_or_default().to_string();
            let multi_model = is_multi_model(container);
            // A multi-model container gets its models on demand, not at start.
            let model_data = if multi_model {
                None
            } else {
                self.model_data(container)
                    .await
                    .map_err(|e| format!("Failed to download model data: {e}"))?
            };
            self.engine
                .ensure_image(&image, self.options.pull)
                .await
                .map_err(|e| e.to_string())?;
            // Pipeline containers each get their own port, for images that accept one.
            let image_labels = self.engine.image_labels(&image).await;
            let accepts_port = image_labels
                .get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port")
                .is_some_and(|v| v == "true");
            if multi_model
                && image_labels
                    .get("com.amazonaws.sagemaker.capabilities.multi-models")
                    .is_none_or(|v| v != "true")
            {
                tracing::warn!(
                    image,
                    "the image does not declare com.amazonaws.sagemaker.capabilities.multi-models=true; SageMaker expects multi-model images to"
                );
            }
            let port = if containers.len() > 1 && accepts_port {
                8080 + j as u16
            } else {
                8080
            };
            let mut env: std::collections::BTreeMap<String, String> = [
                ("AWS_REGION".to_string(), self.settings.region.clone()),
                (
                    "AWS_DEFAULT_REGION".to_string(),
                    self.settings.region.clone(),
                ),
            ]
            .into();
            if let Some(map) = container.get("Environment").and_then(Value::as_object) {
                env.extend(
                    map.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
                );
            }
            let submit_dir = self.submit_directory(&mut env).await?;
            for i in first..first + count {
                let tag = if containers.len() > 1 {
                    format!("{i}-c{j}")
                } else {
                    i.to_string()
                };
                let mut spec = ContainerSpec::new(
                    format!("sagedock-{endpoint}-{vname}-g{generation}-{tag}-{suffix}"),
                    &image,
                    itype,
                )
                .with_env(env.clone())
                .with_bind_port(port)
                .with_label(labels::OWNER, &self.owner)
                .with_label(labels::ENDPOINT, endpoint)
                .with_label(labels::VARIANT, &vname)
                .with_label(labels::INSTANCE, i.to_string())
                .with_label(CONTAINER, j.to_string())
                .with_label(GENERATION, generation.to_string())
                .with_network_isolation(isolation)
                .with_cpu_only(self.options.cpu_only);
                if containers.len() > 1 {
                    spec = spec.with_hostname(&hostnames[j]);
                }
                if multi_model {
                    let models_dir = multimodel::models_dir(&self.cache, &spec.name);
                    std::fs::create_dir_all(&models_dir)
                        .map_err(|e| format!("{}: {e}", models_dir.display()))?;
                    let artifacts = multimodel::artifacts_dir(&self.cache);
                    std::fs::create_dir_all(&artifacts)
                        .map_err(|e| format!("{}: {e}", artifacts.display()))?;
                    spec = spec.with_multi_model(models_dir, artifacts);
                }
                if let Some((host, at)) = &submit_dir {
                    spec = spec.with_mount(host, at.clone());
                }
                if let Some((dir, sha)) = &model_data {
                    spec = spec
                        .with_model_dir(dir)
                        .with_label(labels::MODEL_SHA256, sha);
                }
                specs.push(spec);
            }
        }
        let policy = ReadyPolicy {
            deadline: timeout,
            ..Default::default()
        };
        let launched = try_join_all(
            specs
                .iter()
                .map(|s| runtime::launch(&self.engine, s, policy)),
        )
        .await
        .map_err(|e| e.to_string())?;
        // specs are container-major: regroup into instances of `containers.len()`.
        let mut groups: Vec<Vec<Instance>> = (0..count).map(|_| Vec::new()).collect();
        for (k, instance) in launched.into_iter().enumerate() {
            groups[k % count as usize].push(instance);
        }
        Ok(groups)
    }

    /// Where a multi-model variant's TargetModels come from (`None` for other models).
    pub(super) fn model_repository(&self, model: &ModelRecord) -> Option<Arc<ModelRepository>> {
        let container = model.containers().into_iter().find(is_multi_model)?;
        let prefix = data::url_of(&container)?;
        Some(Arc::new(ModelRepository::new(
            prefix,
            self.settings.storage(),
            self.cache.clone(),
        )))
    }

    /// SAGEMAKER_SUBMIT_DIRECTORY as an `s3://` URL (the SageMaker SDK's sourcedir.tar.gz
    /// for SKLearnModel, XGBoostModel and other frameworks it does not repack): containers
    /// here have no AWS credentials, so sagedock fetches the object from the same storage
    /// as model data and the variable names a read-only local copy instead. Returns that
    /// (host file, container path) to mount.
    async fn submit_directory(
        &self,
        env: &mut std::collections::BTreeMap<String, String>,
    ) -> Result<Option<(std::path::PathBuf, String)>, String> {
        let Some(url) = env
            .get(SUBMIT_DIRECTORY)
            .filter(|u| u.starts_with("s3://"))
            .cloned()
        else {
            return Ok(None);
        };
        let host = self
            .settings
            .storage()
            .fetch(&url, &self.cache.root().join("downloads"))
            .await
            .map_err(|e| {
                format!("Failed to download the inference code ({SUBMIT_DIRECTORY} {url}): {e}")
            })?;
        // Docker would make a directory of a missing bind source: check it is a file.
        match std::fs::metadata(&host) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(format!(
                    "{SUBMIT_DIRECTORY} {url} is not an object (a sourcedir.tar.gz)"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "Failed to download the inference code ({SUBMIT_DIRECTORY} {url}): {}: {e}",
                    host.display()
                ))
            }
        }
        let name = url
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("sourcedir.tar.gz");
        let at = format!("{SUBMIT_MOUNT}/{name}");
        tracing::info!(url, local = at, "{SUBMIT_DIRECTORY} fetched by sagedock");
        env.insert(SUBMIT_DIRECTORY.to_string(), at.clone());
        Ok(Some((host, at)))
    }

    /// The container's model data as a directory to mount (and its archive's sha256).
    async fn model_data(
        &self,
        container: &Value,
    ) -> Result<Option<(std::path::PathBuf, String)>, String> {
        let Some(url) = data::url_of(container) else {
            return Ok(None);
        };
        let path = self
            .settings
            .storage()
            .fetch(&url, &self.cache.root().join("downloads"))
            .await?;
        let (cache, c) = (self.cache.clone(), container.clone());
        tokio::task::spawn_blocking(move || data::model_dir_at(&path, &url, &c, &cache).map(Some))
            .await
            .map_err(|e| e.to_string())?
    }
}
