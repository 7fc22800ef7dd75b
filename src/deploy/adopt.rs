//! After a restart: a fleet rebuilt from the running containers of a plan, and the
//! removal of containers a plan no longer needs, found by their labels.

use std::time::Duration;

use super::plan::EndpointPlan;
use super::{Deployer, Fleet};
use crate::runtime::{self, gc, labels, ContainerGuard, Instance};

impl Deployer {
    /// Removes every container of this deployer's owner still there (at the end of a run:
    /// containers whose creation was under way when their deployment was cancelled have no
    /// guard, only the owner's label).
    pub async fn remove_all(&self) {
        let Ok(found) = self.containers().await else {
            return;
        };
        let removals = found
            .iter()
            .map(|c| runtime::guard::spawn_removal(&self.engine, &c.id, &c.name));
        futures_util::future::join_all(removals).await;
    }

    /// This deployer's containers (running or not), from the engine.
    pub async fn containers(&self) -> Result<Vec<gc::Managed>, runtime::RuntimeError> {
        let all = gc::list(&self.engine).await?;
        Ok(all
            .into_iter()
            .filter(|c| c.labels.get(labels::OWNER) == Some(&self.owner))
            .collect())
    }

    /// Removes this deployer's containers of `endpoint`: all of them, or all but those of
    /// generation `keep`.
    pub async fn remove_labelled(&self, endpoint: &str, keep: Option<u64>) {
        let Ok(found) = self.containers().await else {
            return;
        };
        for c in found.iter().filter(|c| c.endpoint == endpoint) {
            if keep.is_none() || c.generation() != keep {
                let _ = runtime::guard::spawn_removal(&self.engine, &c.id, &c.name).await;
            }
        }
    }

    /// Builds a fleet from running containers of `plan` (`found`: this deployer's), if every
    /// variant has all its instances — each with all its model's containers — and each
    /// container answers `/ping`.
    pub async fn adopt(&self, plan: &EndpointPlan, found: &[gc::Managed]) -> Option<Fleet> {
        let mine: Vec<&gc::Managed> = found
            .iter()
            .filter(|c| {
                c.endpoint == plan.endpoint
                    && c.generation() == Some(plan.generation)
                    && c.state == "running"
            })
            .collect();
        let mut fleet = Fleet::new(plan, &self.storage, &self.cache);
        for variant in &plan.variants {
            let per_instance = variant.containers.len();
            let mut groups: Vec<Vec<Instance>> = Vec::new();
            for i in 0..variant.instance_count {
                let mut members: Vec<&&gc::Managed> = mine
                    .iter()
                    .filter(|c| c.variant == variant.name && c.instance == i.to_string())
                    .collect();
                members.sort_by_key(|c| c.position());
                if members.len() != per_instance {
                    return None;
                }
                let mut group = Vec::new();
                for c in members {
                    group.push(self.reattach(c, variant.network_isolation).await?);
                }
                groups.push(group);
            }
            if groups.is_empty() {
                return None;
            }
            fleet.add_instances(&variant.name, groups);
        }
        Some(fleet)
    }

    /// A running container as an instance again, if it answers `/ping`; its address is
    /// leased again on the owner's network.
    async fn reattach(&self, c: &gc::Managed, isolated: bool) -> Option<Instance> {
        let info = self
            .engine
            .docker
            .inspect_container(&c.id, None)
            .await
            .ok()?;
        let ours = crate::runtime::network::name_for(&self.owner, isolated);
        let address = info
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|m| m.get(&ours))
            .and_then(|e| e.ip_address.as_deref()?.parse().ok())?;
        let lease = self.claim(isolated, address).await.ok()?;
        let port = info
            .config
            .as_ref()
            .and_then(|cfg| cfg.exposed_ports.as_ref())
            .and_then(|ports| ports.first())
            .and_then(|p| p.split('/').next()?.parse().ok())
            .unwrap_or(runtime::spec::SERVING_PORT);
        let (addr, published) =
            runtime::launch::address(&self.engine, &info, isolated, &c.name, port).ok()?;
        if runtime::launch::ping(addr).await != Ok(200) {
            return None;
        }
        Some(Instance {
            guard: ContainerGuard::new(self.engine.clone(), c.id.clone(), c.name.clone()),
            lease: Some(lease),
            addr,
            published,
            listening_after: None,
            ready_after: Duration::ZERO,
        })
    }
}
