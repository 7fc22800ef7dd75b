//! After a restart: re-adopting the containers of each endpoint's current generation,
//! redeploying what is missing, and removing what this data directory no longer needs.

use std::sync::Arc;
use std::time::Duration;

use super::fleet::{async_output, Fleet, FleetVariant};
use super::{Deployer, Mode, CONTAINER, GENERATION};
use crate::control::error::AwsError;
use crate::control::records::EndpointRecord;
use crate::control::store::Kind;
use crate::runtime::{self, gc, labels, ContainerGuard, Instance};

impl Deployer {
    /// Removes the containers labelled for `endpoint` (all, or all but `keep`'s generation).
    pub(super) async fn remove_labelled(&self, endpoint: &str, keep_generation: Option<u64>) {
        let Ok(found) = gc::list(&self.engine).await else {
            return;
        };
        for c in found {
            let ours = c.labels.get(labels::OWNER) == Some(&self.owner);
            let generation = c.labels.get(GENERATION).and_then(|g| g.parse::<u64>().ok());
            if ours
                && c.endpoint == endpoint
                && (keep_generation.is_none() || generation != keep_generation)
            {
                let _ = runtime::guard::remove_container(&self.engine, &c.id, &c.name).await;
            }
        }
    }

    /// After a restart: re-adopt healthy containers of each endpoint's current generation,
    /// redeploy endpoints whose containers are gone, finish interrupted deletions, and
    /// remove every other container this data directory owns.
    pub async fn restore(self: &Arc<Self>) -> Result<(), AwsError> {
        let found = gc::list(&self.engine)
            .await
            .map_err(|e| AwsError::internal(e.to_string()))?;
        let mut adopted = std::collections::HashSet::new();
        for mut record in self.store.list::<EndpointRecord>(Kind::Endpoint)? {
            match record.status.as_str() {
                "Deleting" => {
                    let _ = self.store.delete(Kind::Endpoint, &record.name);
                    continue;
                }
                "Failed" => continue,
                _ => {}
            }
            let mine: Vec<&gc::Managed> = found
                .iter()
                .filter(|c| {
                    c.endpoint == record.name
                        && c.labels.get(labels::OWNER) == Some(&self.owner)
                        && c.labels.get(GENERATION).and_then(|g| g.parse().ok())
                            == Some(record.generation)
                        && c.state == "running"
                })
                .collect();
            if let Some(fleet) = self.adopt(&record, &mine).await {
                adopted.extend(mine.iter().map(|c| c.id.clone()));
                self.router.publish(fleet.live(&record.name));
                self.fleets
                    .lock()
                    .expect("fleets")
                    .insert(record.name.clone(), fleet);
                if record.status != "InService" {
                    record.status = "InService".into();
                    record.failure_reason = Some("An update was interrupted by a restart of sagedock; the previous configuration serves. Call UpdateEndpoint again.".into());
                    self.store.put(Kind::Endpoint, &record.name, &record)?;
                }
                tracing::info!(endpoint = %record.name, "re-adopted running containers");
                continue;
            }
            let config = match self.config(&record.config_name) {
                Ok(c) => c,
                Err(e) => {
                    record.status = "Failed".into();
                    record.failure_reason = Some(e.message);
                    self.store.put(Kind::Endpoint, &record.name, &record)?;
                    continue;
                }
            };
            record.status = "Creating".into();
            record.generation += 1;
            self.store.put(Kind::Endpoint, &record.name, &record)?;
            self.spawn(&record.name, config, record.generation, Mode::Create);
        }
        let mut alive = std::collections::HashSet::new();
        for c in &found {
            if c.labels.get(labels::OWNER) == Some(&self.owner) && !adopted.contains(&c.id) {
                let _ = runtime::guard::remove_container(&self.engine, &c.id, &c.name).await;
            } else {
                alive.insert(c.name.clone());
            }
        }
        self.sweep_model_links(&alive);
        Ok(())
    }

    /// Removes the model-link directories of multi-model containers that are gone (left by
    /// a killed run). Only directories untouched for an hour: another sagedock may be
    /// creating a container for a new one right now.
    fn sweep_model_links(&self, alive: &std::collections::HashSet<String>) {
        let root = crate::endpoint::multimodel::models_dir(&self.cache, "");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let idle = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if idle && !alive.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Builds a fleet from running containers, if every variant has all its instances
    /// (each with all its model's containers) and each container answers `/ping`.
    async fn adopt(&self, record: &EndpointRecord, containers: &[&gc::Managed]) -> Option<Fleet> {
        let config = self.config(&record.config_name).ok()?;
        let mut variants = Vec::new();
        for v in &record.variants {
            let spec = config
                .variants()
                .into_iter()
                .find(|c| c["VariantName"] == v.name.as_str())?;
            let model = self.model_of(&spec).ok()?;
            let per_instance = model.containers().len();
            let mut groups: Vec<Vec<Instance>> = Vec::new();
            for i in 0..v.current_count {
                let mut members: Vec<&&gc::Managed> = containers
                    .iter()
                    .filter(|c| c.variant == v.name && c.instance == i.to_string())
                    .collect();
                members.sort_by_key(|c| {
                    c.labels
                        .get(CONTAINER)
                        .and_then(|n| n.parse::<usize>().ok())
                });
                if members.len() != per_instance {
                    return None;
                }
                let mut group = Vec::new();
                for c in members {
                    let info = self
                        .engine
                        .docker
                        .inspect_container(&c.id, None)
                        .await
                        .ok()?;
                    let port = info
                        .config
                        .as_ref()
                        .and_then(|cfg| cfg.exposed_ports.as_ref())
                        .and_then(|ports| ports.first())
                        .and_then(|p| p.split('/').next()?.parse().ok())
                        .unwrap_or(8080);
                    let (addr, published) =
                        runtime::launch::address(&self.engine, &info, false, &c.name, port).ok()?;
                    if runtime::launch::ping(addr).await != Ok(200) {
                        return None;
                    }
                    group.push(Instance {
                        guard: ContainerGuard::new(
                            self.engine.clone(),
                            c.id.clone(),
                            c.name.clone(),
                        ),
                        addr,
                        published,
                        ready_after: Duration::ZERO,
                    });
                }
                groups.push(group);
            }
            if groups.is_empty() {
                return None;
            }
            let mut variant = FleetVariant::new(
                v.name.clone(),
                v.current_weight,
                &model,
                self.model_repository(&model),
            );
            variant.add_instances(groups);
            variants.push(variant);
        }
        let fleet = Fleet {
            variants,
            async_output: async_output(&config),
        };
        fleet.size_queue();
        Some(fleet)
    }
}
