//! Fleets: the running containers of an endpoint, grouped by variant and instance (an
//! instance is its model's containers, in order), and the live endpoint they make.
//!
//! A container's [`Backend`] (how the router reaches it) is made once, when it joins the
//! fleet, and kept for its life, so its outstanding-request count and loaded models
//! survive every republish.

use std::sync::Arc;

use futures_util::future::join_all;

use super::plan::{EndpointPlan, ModelSource};
use crate::artifact::Cache;
use crate::endpoint::capture::Capture;
use crate::endpoint::multimodel::ModelRepository;
use crate::endpoint::serverless::Serverless;
use crate::endpoint::{
    AsyncOutput, AsyncQueue, Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Routing,
};
use crate::runtime::{Instance, RuntimeError};
use crate::storage::Storage;

/// One running container and how the router reaches it.
pub struct Member {
    pub container: Instance,
    pub backend: Arc<Backend>,
    /// A multi-model container's host folder of model links.
    models_dir: Option<std::path::PathBuf>,
}

impl Member {
    /// Stops and removes the container (and its model links).
    pub async fn remove(self) -> Result<(), RuntimeError> {
        let removed = self.container.guard.remove().await;
        if let Some(dir) = self.models_dir {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        removed
    }
}

/// The running instances of one variant.
pub struct FleetVariant {
    pub name: String,
    pub weight: f64,
    pub mode: Mode,
    routing: Routing,
    /// Serverless variants: concurrency and warmth, shared with the router.
    pub serverless: Option<Arc<Serverless>>,
    hostnames: Vec<String>,
    pub instances: Vec<Vec<Member>>,
    /// Multi-model variants: where TargetModel is fetched from.
    models: Option<Arc<ModelRepository>>,
}

impl FleetVariant {
    /// One instance's containers as members: each with the backend the router reaches it
    /// by, which holds the container's address lease.
    fn members_of(&self, group: Vec<Instance>) -> Vec<Member> {
        group
            .into_iter()
            .zip(&self.hostnames)
            .map(|(container, host)| {
                let (name, addr) = (&container.guard.name, container.addr);
                let reservation = container
                    .lease
                    .clone()
                    .map(|l| l as Arc<dyn std::any::Any + Send + Sync>);
                let backend = Backend::reserved(
                    name,
                    host,
                    addr,
                    self.models.is_some(),
                    crate::logs::endpoint_stream(&self.name, name),
                    reservation,
                );
                let models_dir = self.models.as_ref().map(|r| r.models_dir(name));
                Member {
                    container,
                    backend,
                    models_dir,
                }
            })
            .collect()
    }
}

/// The running instances of one endpoint.
pub struct Fleet {
    pub endpoint: String,
    pub generation: u64,
    pub variants: Vec<FleetVariant>,
    /// Asynchronous endpoints: where results go, and the queue.
    pub async_output: Option<AsyncOutput>,
    /// Data capture, when on: its writer lives as long as this deployment.
    capture: Option<Arc<Capture>>,
}

impl Fleet {
    /// An empty fleet for `plan`.
    pub fn new(plan: &EndpointPlan, storage: &Storage, cache: &Cache) -> Fleet {
        let variants = plan
            .variants
            .iter()
            .map(|v| FleetVariant {
                name: v.name.clone(),
                weight: v.weight,
                mode: v.mode,
                routing: v.routing,
                serverless: v
                    .serverless
                    .map(|s| Arc::new(Serverless::new(s.max_concurrency, s.provisioned))),
                hostnames: v.containers.iter().map(|c| c.hostname.clone()).collect(),
                instances: Vec::new(),
                models: v.containers.iter().find_map(|c| match &c.model {
                    ModelSource::MultiModel(prefix) => Some(Arc::new(ModelRepository::new(
                        prefix.clone(),
                        storage.clone(),
                        cache.clone(),
                    ))),
                    _ => None,
                }),
            })
            .collect();
        Fleet {
            endpoint: plan.endpoint.clone(),
            generation: plan.generation,
            variants,
            async_output: plan.asynchronous.as_ref().map(|a| AsyncOutput {
                output_path: a.output.clone(),
                failure_path: a.failure.clone(),
                queue: AsyncQueue::new(a.per_instance),
            }),
            capture: plan
                .capture
                .clone()
                .filter(|c| c.enabled)
                .map(|c| Arc::new(Capture::start(c, &plan.endpoint, storage.clone()))),
        }
    }

    pub fn variant_mut(&mut self, name: &str) -> Option<&mut FleetVariant> {
        self.variants.iter_mut().find(|v| v.name == name)
    }

    /// Running instances of a variant.
    pub fn instance_count(&self, variant: &str) -> u32 {
        self.variants
            .iter()
            .find(|v| v.name == variant)
            .map_or(0, |v| u32::try_from(v.instances.len()).unwrap_or(u32::MAX))
    }

    /// Instances in all.
    pub fn instances(&self) -> usize {
        self.variants.iter().map(|v| v.instances.len()).sum()
    }

    /// Adds running instances to a variant (each the model's containers, in order).
    pub fn add_instances(&mut self, variant: &str, groups: Vec<Vec<Instance>>) {
        let Some(v) = self.variant_mut(variant) else {
            return;
        };
        for group in groups {
            let members = v.members_of(group);
            v.instances.push(members);
        }
        self.size_queue();
    }

    /// The variant and instance holding container `id`.
    pub fn locate(&self, id: &str) -> Option<(&str, &[Member])> {
        self.variants.iter().find_map(|v| {
            v.instances
                .iter()
                .find(|group| group.iter().any(|m| m.container.guard.id == id))
                .map(|group| (v.name.as_str(), group.as_slice()))
        })
    }

    /// The instance number of the instance holding container `id`.
    pub fn locate_index(&self, id: &str) -> Option<u32> {
        self.variants.iter().find_map(|v| {
            v.instances
                .iter()
                .position(|group| group.iter().any(|m| m.container.guard.id == id))
                .and_then(|k| u32::try_from(k).ok())
        })
    }

    /// Puts `groups` (one new instance) in the place of the instance holding container
    /// `dead`; returns the old instance's members, or `None` (and nothing changes) when no
    /// instance holds it any more.
    pub fn replace(&mut self, dead: &str, groups: Vec<Vec<Instance>>) -> Option<Vec<Member>> {
        let group = groups.into_iter().next()?;
        let v = self.variants.iter_mut().find(|v| {
            v.instances
                .iter()
                .any(|g| g.iter().any(|m| m.container.guard.id == dead))
        })?;
        let k = v
            .instances
            .iter()
            .position(|g| g.iter().any(|m| m.container.guard.id == dead))?;
        let members = v.members_of(group);
        Some(std::mem::replace(&mut v.instances[k], members))
    }

    /// Every container of the fleet.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.variants.iter().flat_map(|v| &v.instances).flatten()
    }

    /// Instances of a variant in rotation now; `None` when the fleet has no such variant.
    pub fn healthy_count(&self, variant: &str) -> Option<u32> {
        let v = self.variants.iter().find(|v| v.name == variant)?;
        let n = v
            .instances
            .iter()
            .filter(|g| g.iter().all(|m| m.backend.is_healthy()))
            .count();
        Some(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Takes a variant's instances beyond the first `keep` out of the fleet.
    pub fn take_surplus(&mut self, variant: &str, keep: u32) -> Vec<Vec<Member>> {
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let surplus = self
            .variant_mut(variant)
            .filter(|v| v.instances.len() > keep)
            .map(|v| v.instances.split_off(keep))
            .unwrap_or_default();
        self.size_queue();
        surplus
    }

    /// Sizes the asynchronous queue for the instances running now.
    fn size_queue(&self) {
        if let Some(output) = &self.async_output {
            output.queue.resize(self.instances());
        }
    }

    /// The endpoint these instances make, for the router.
    pub fn live(&self) -> LiveEndpoint {
        LiveEndpoint {
            name: self.endpoint.clone(),
            async_output: self.async_output.clone(),
            capture: self.capture.clone(),
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
                        .with_routing(v.routing)
                        .with_serverless(v.serverless.clone())
                })
                .collect(),
        }
    }

    /// Stops and removes every container.
    pub async fn remove(self) {
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

    /// Every container's name (for printing).
    pub fn containers(&self) -> impl Iterator<Item = &Instance> {
        self.variants
            .iter()
            .flat_map(|v| &v.instances)
            .flatten()
            .map(|m| &m.container)
    }
}
