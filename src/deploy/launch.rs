//! Launching: a plan's instances as containers, named, labelled and limited in one place.
//!
//! A container is named `sagedock-<endpoint>-<variant>-g<generation>-<instance>[-c<n>]-<run>`
//! and labelled with its owner, endpoint, variant, instance, position in the model and
//! generation (see [`crate::runtime::labels`]); its environment is the user's plus
//! AWS_REGION and AWS_DEFAULT_REGION, checked against SageMaker's limits. An instance's
//! containers all start together, and a failed start removes every container of the
//! launch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::future::try_join_all;

use super::plan::{ContainerPlan, EndpointPlan, ModelSource, Serves, VariantPlan};
use super::{model_data, DeployError, Deployer, Fleet};
use crate::artifact::tree::Tree;
use crate::artifact::{ModelDir, Severity};
use crate::endpoint::multimodel;
use crate::framework::inspect::{inspect, Choice, Source};
use crate::framework::Framework;
use crate::runtime::{self, labels, ContainerSpec, Instance, ReadyPolicy, RuntimeError};

/// Image labels SageMaker reads.
const ACCEPTS_BIND_TO_PORT: &str = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port";
const MULTI_MODELS: &str = "com.amazonaws.sagemaker.capabilities.multi-models";

/// One container of the plan, made ready: its model folder fetched, its environment
/// complete, its mounts known.
struct Prepared {
    image: String,
    hostname: String,
    env: BTreeMap<String, String>,
    port: u16,
    model: Option<ModelDir>,
    multi_model: bool,
    mounts: Vec<(PathBuf, String)>,
}

impl Deployer {
    /// Starts every instance of `plan` and waits until each is healthy. Nothing is
    /// published: the caller decides when the fleet takes traffic. On failure every
    /// container started for it is removed.
    pub async fn launch(&self, plan: &EndpointPlan) -> Result<Fleet, DeployError> {
        self.options
            .capacity
            .check(&plan.endpoint, plan.instances(), 0)?;
        let mut fleet = Fleet::new(plan, &self.storage, &self.cache);
        for variant in &plan.variants {
            let instances = self
                .launch_instances(plan, variant, 0, variant.instance_count)
                .await?;
            fleet.add_instances(&variant.name, instances);
        }
        Ok(fleet)
    }

    /// Starts instances `first..first + count` of one variant (each the model's containers,
    /// in order) and waits until each is healthy.
    pub async fn launch_instances(
        &self,
        plan: &EndpointPlan,
        variant: &VariantPlan,
        first: u32,
        count: u32,
    ) -> Result<Vec<Vec<Instance>>, DeployError> {
        let mut prepared = Vec::with_capacity(variant.containers.len());
        for (j, container) in variant.containers.iter().enumerate() {
            prepared.push(self.prepare(variant, container, j).await?);
        }
        let run = crate::runtime::spec::run_id();
        let mut specs = Vec::new();
        let on_swarm = self.engine.cluster.is_some();
        if on_swarm && variant.network_isolation {
            return Err(RuntimeError::Cluster(format!(
                "EnableNetworkIsolation does not run on a swarm yet (variant {}); deploy it with the default engine (no --engine swarm)",
                variant.name
            ))
            .into());
        }
        for i in first..first.saturating_add(count) {
            for (j, container) in prepared.iter().enumerate() {
                let spec = self.spec(plan, variant, container, &run, i, j)?;
                // A swarm's tasks get their addresses on their nodes.
                specs.push(if on_swarm {
                    spec
                } else {
                    spec.with_network(self.lease(variant.network_isolation).await?)
                });
            }
        }
        let policy = ReadyPolicy {
            deadline: variant.health_timeout,
            meter: self.options.meter.clone(),
            ..Default::default()
        };
        let launched = try_join_all(specs.iter().map(|s| self.launch_one(s, policy.clone())))
            .await
            .map_err(|e| explain(e, &prepared))?;
        // specs are instance-major: regroup into instances of the model's containers.
        let per_instance = prepared.len().max(1);
        let mut groups: Vec<Vec<Instance>> = Vec::new();
        for (k, instance) in launched.into_iter().enumerate() {
            if k % per_instance == 0 {
                groups.push(Vec::with_capacity(per_instance));
            }
            if let Some(group) = groups.last_mut() {
                group.push(instance);
            }
        }
        Ok(groups)
    }

    /// One instance container: on the engine, or as a service of the swarm it manages.
    async fn launch_one(
        &self,
        spec: &ContainerSpec,
        policy: ReadyPolicy,
    ) -> Result<Instance, RuntimeError> {
        match &self.engine.cluster {
            Some(cluster) => runtime::swarm::launch(&self.engine, cluster, spec, policy).await,
            None => runtime::launch(&self.engine, spec, policy).await,
        }
    }

    async fn prepare(
        &self,
        variant: &VariantPlan,
        container: &ContainerPlan,
        position: usize,
    ) -> Result<Prepared, DeployError> {
        let multi_model = matches!(container.model, ModelSource::MultiModel(_));
        let model = match &container.model {
            ModelSource::None | ModelSource::MultiModel(_) => None,
            ModelSource::Folder(dir) => Some(dir.clone()),
            ModelSource::Location {
                location,
                uncompressed,
            } => {
                Some(model_data::fetch(&self.storage, &self.cache, location, *uncompressed).await?)
            }
        };
        let image = self.options.images.resolve(&container.image).to_string();
        self.engine
            .ensure_image(&image, self.options.pull, self.options.meter.as_deref())
            .await?;
        let image_labels = self.engine.image_labels(&image).await;
        if multi_model && image_labels.get(MULTI_MODELS).is_none_or(|v| v != "true") {
            tracing::warn!(
                image,
                "the image does not declare {MULTI_MODELS}=true; SageMaker expects multi-model images to"
            );
        }
        // Pipeline containers each get their own port, for images that accept one.
        let pipeline = variant.containers.len() > 1;
        let accepts_port = image_labels
            .get(ACCEPTS_BIND_TO_PORT)
            .is_some_and(|v| v == "true");
        let port = match (accepts_port, container.bind_port) {
            (true, Some(port)) => port,
            (true, None) if pipeline => {
                let offset = u16::try_from(position).unwrap_or(0);
                runtime::spec::SERVING_PORT.saturating_add(offset)
            }
            _ => runtime::spec::SERVING_PORT,
        };
        let mut env = BTreeMap::from([
            ("AWS_REGION".to_string(), self.region.clone()),
            ("AWS_DEFAULT_REGION".to_string(), self.region.clone()),
        ]);
        env.extend(container.environment.clone());
        let mut mounts = Vec::new();
        if let Some(mount) =
            model_data::submit_directory(&self.storage, &self.cache, &mut env).await?
        {
            mounts.push(mount);
        }
        runtime::spec::validate_env(&env)?;
        Ok(Prepared {
            image,
            hostname: container.hostname.clone(),
            env,
            port,
            model,
            multi_model,
            mounts,
        })
    }

    /// The container for instance `i`, position `j`.
    fn spec(
        &self,
        plan: &EndpointPlan,
        variant: &VariantPlan,
        container: &Prepared,
        run: &str,
        i: u32,
        j: usize,
    ) -> Result<ContainerSpec, DeployError> {
        let pipeline = variant.containers.len() > 1;
        let tag = if pipeline {
            format!("{i}-c{j}")
        } else {
            i.to_string()
        };
        let (name, whose) = match plan.serves {
            Serves::Endpoint => (
                format!(
                    "sagedock-{}-{}-g{}-{tag}-{run}",
                    plan.endpoint, variant.name, plan.generation
                ),
                labels::ENDPOINT,
            ),
            Serves::TransformJob => (
                format!("sagedock-transform-{}-{tag}-{run}", plan.endpoint),
                labels::TRANSFORM_JOB,
            ),
        };
        let mut spec = ContainerSpec::new(name, &container.image, variant.instance_type)
            .with_env(container.env.clone())
            .with_bind_port(container.port)
            .with_label(labels::OWNER, &self.owner)
            .with_label(whose, &plan.endpoint)
            .with_label(labels::VARIANT, &variant.name)
            .with_label(labels::INSTANCE, i.to_string())
            .with_label(labels::CONTAINER, j.to_string())
            .with_label(labels::GENERATION, plan.generation.to_string())
            .with_label(labels::RUN, run)
            .with_cpu_only(self.options.cpu_only);
        if pipeline {
            spec = spec.with_hostname(&container.hostname);
        }
        if container.multi_model {
            let models_dir = multimodel::models_dir(&self.cache, &spec.name);
            let artifacts = multimodel::artifacts_dir(&self.cache);
            for dir in [&models_dir, &artifacts] {
                std::fs::create_dir_all(dir).map_err(|source| DeployError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
            spec = spec.with_multi_model(models_dir, artifacts);
        }
        for (host, at) in &container.mounts {
            spec = spec.with_mount(host, at.clone());
        }
        if let Some(model) = &container.model {
            spec = spec
                .with_model_dir(&model.path)
                .with_label(labels::MODEL_SHA256, &model.sha256);
        }
        Ok(spec)
    }
}

/// A failed start, with what the artifact's layout says first: a model that never gets
/// healthy is most often explained by its layout (everything wrapped in one folder, a
/// missing entry point), which the container's own traceback does not say.
fn explain(err: RuntimeError, prepared: &[Prepared]) -> DeployError {
    if !matches!(
        err,
        RuntimeError::ExitedAtStart { .. } | RuntimeError::HealthTimeout { .. }
    ) {
        return DeployError::Runtime(err);
    }
    let mut findings = Vec::new();
    for container in prepared.iter().filter(|c| !c.multi_model) {
        let Some(model) = &container.model else {
            findings.push(format!(
                "no model data was mounted at /opt/ml/model for {} (the container definition names none)",
                container.image
            ));
            continue;
        };
        let Ok(tree) = Tree::scan(&model.path) else {
            continue;
        };
        // The image says which stack's rules apply (an image of one's own: only those for
        // every artifact).
        let choice = Choice::Named(Framework::of_image(&container.image));
        let report = inspect(&tree, &Source::Directory(model.path.clone()), choice);
        findings.extend(
            report
                .findings
                .iter()
                .filter(|f| f.severity != Severity::Info)
                .map(|f| {
                    format!(
                        "the model data has {}[{}] {}: {}",
                        f.severity.as_str(),
                        f.code,
                        f.path,
                        f.message
                    )
                }),
        );
    }
    DeployError::Start {
        findings,
        source: Box::new(err),
    }
}
