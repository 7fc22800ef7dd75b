//! Endpoint lifecycles, reconciled into containers.
//!
//! The endpoint operations write desired state to the store and return at once; a task per
//! deployment drives it and writes the outcome back: `Creating` → `InService` when every
//! instance answers `/ping`, or `Failed` with a FailureReason a user can act on. An update
//! brings a new fleet up beside the old one and shifts traffic only when it is healthy; a
//! failed update leaves the old fleet serving (InService with FailureReason). Deletion takes
//! the endpoint out of the router, removes its containers, then its record.
//!
//! After a restart, [`Lifecycle::restore`] re-adopts the healthy containers of each
//! endpoint's current generation, redeploys what is missing, and removes every other
//! container the data directory owns. An endpoint that cannot be deployed is `Failed`,
//! never a reason for sagedock not to start.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::sync::locked;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::task::JoinHandle;

use super::plan::endpoint_plan;
use super::Settings;
use crate::deploy::{Deployer, EndpointPlan, LiveFleet, Member};
use crate::endpoint::Router;
use crate::state::{now, Endpoint, EndpointConfig, EndpointStatus, Store, TagSet, VariantState};

/// FailureReason is at most 1024 characters in SageMaker.
const MAX_REASON: usize = 1024;

/// What a deployment does to the endpoint's status when it fails.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// CreateEndpoint (or a redeploy after restart): `Failed`.
    Create,
    /// UpdateEndpoint: the old fleet keeps serving (`InService` with a FailureReason).
    Update,
}

/// Drives endpoints toward their desired state.
pub struct Lifecycle {
    settings: Settings,
    store: Arc<Store>,
    deployer: Arc<Deployer>,
    router: Arc<Router>,
    /// ContainerStartupHealthCheckTimeoutInSeconds when a variant does not set it.
    health_timeout: Duration,
    fleets: Mutex<HashMap<String, Arc<LiveFleet>>>,
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Lifecycle {
    pub fn new(
        settings: Settings,
        store: Arc<Store>,
        deployer: Arc<Deployer>,
        router: Arc<Router>,
        health_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Lifecycle {
            settings,
            store,
            deployer,
            router,
            health_timeout,
            fleets: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
        })
    }

    pub fn deployer(&self) -> &Deployer {
        &self.deployer
    }

    /// The variants' state when `config` is first deployed.
    pub fn variant_states(config: &EndpointConfig) -> Vec<VariantState> {
        config
            .spec
            .production_variants
            .iter()
            .map(|v| VariantState {
                name: v.variant_name.clone(),
                image: String::new(),
                current_weight: v.weight(),
                desired_weight: v.weight(),
                current_count: 0,
                desired_count: v.instance_count(),
            })
            .collect()
    }

    /// Starts deploying `config` to endpoint `name` at `generation` (replacing any
    /// deployment of it still running).
    pub fn start(
        self: &Arc<Self>,
        name: &str,
        config: EndpointConfig,
        generation: u64,
        kind: Kind,
    ) {
        let this = self.clone();
        let owned = name.to_string();
        let task = tokio::spawn(async move { this.deploy(&owned, config, generation, kind).await });
        if let Some(old) = locked(&self.tasks).insert(name.to_string(), task) {
            old.abort();
        }
    }

    /// Whether the endpoint still exists at `generation` (not deleted, not redeployed).
    fn is_current(&self, name: &str, generation: u64) -> bool {
        matches!(
            self.store.get::<Endpoint>(name),
            Ok(Some(r)) if r.generation == generation && r.status != EndpointStatus::Deleting
        )
    }

    /// Applies `f` to the endpoint's record if it is still at `generation`.
    fn finish(&self, name: &str, generation: u64, f: impl FnOnce(&mut Endpoint)) -> bool {
        let Ok(Some(mut record)) = self.store.get::<Endpoint>(name) else {
            return false;
        };
        if record.generation != generation || record.status == EndpointStatus::Deleting {
            return false;
        }
        f(&mut record);
        record.last_modified = now();
        self.store.put(name, &record).is_ok()
    }

    fn plan(
        &self,
        name: &str,
        config: &EndpointConfig,
        generation: u64,
        counts: Option<&[VariantState]>,
    ) -> Result<EndpointPlan, String> {
        endpoint_plan(
            &self.store,
            name,
            config,
            generation,
            counts,
            self.health_timeout,
        )
    }

    async fn deploy(
        self: Arc<Self>,
        name: &str,
        config: EndpointConfig,
        generation: u64,
        kind: Kind,
    ) {
        let launched = match self.plan(name, &config, generation, None) {
            Ok(plan) => self
                .deployer
                .launch(&plan)
                .await
                .map(|fleet| (plan, fleet))
                .map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        match launched {
            Ok((plan, fleet)) => {
                // Traffic moves to the new fleet before the record says InService, so a
                // client that sees InService reaches the new fleet. No await from the check
                // to the record update: a DeleteEndpoint cannot slip in between.
                if !self.is_current(name, generation) {
                    fleet.remove().await;
                    return;
                }
                let live = LiveFleet::start(
                    self.deployer.clone(),
                    self.router.clone(),
                    plan.clone(),
                    fleet,
                );
                self.follow(name, generation, &live);
                let old = locked(&self.fleets).insert(name.to_string(), live);
                self.finish(name, generation, |r| {
                    r.status = EndpointStatus::InService;
                    r.failure_reason = None;
                    r.config_name = config.name.clone();
                    r.variants = Self::variant_states(&config);
                    for v in &mut r.variants {
                        v.current_count = v.desired_count;
                        v.image = plan
                            .variant(&v.name)
                            .map(|p| p.image().to_string())
                            .unwrap_or_default();
                    }
                });
                if let Some(old) = old {
                    old.remove().await;
                }
                tracing::info!(endpoint = name, generation, "endpoint in service");
            }
            Err(reason) => {
                let reason: String = reason.chars().take(MAX_REASON).collect();
                tracing::warn!(endpoint = name, %reason, "deployment failed");
                self.finish(name, generation, |r| {
                    r.failure_reason = Some(reason.clone());
                    if kind == Kind::Create {
                        r.status = EndpointStatus::Failed;
                    } else {
                        // The old fleet keeps serving.
                        r.status = EndpointStatus::InService;
                    }
                });
            }
        }
    }

    /// UpdateEndpointWeightsAndCapacities: weights in place, instances added or removed.
    pub fn rescale(self: &Arc<Self>, name: &str, record: Endpoint) {
        let this = self.clone();
        let owned = name.to_string();
        let task = tokio::spawn(async move { this.resize(&owned, record).await });
        if let Some(old) = locked(&self.tasks).insert(name.to_string(), task) {
            old.abort();
        }
    }

    async fn resize(self: Arc<Self>, name: &str, record: Endpoint) {
        let plan = self
            .store
            .get::<EndpointConfig>(&record.config_name)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.ok_or_else(|| {
                    format!(
                        "The endpoint configuration {} no longer exists.",
                        record.config_name
                    )
                })
            })
            .and_then(|config| self.plan(name, &config, record.generation, None));
        let plan = match plan {
            Ok(plan) => plan,
            Err(reason) => {
                self.finish(name, record.generation, |r| {
                    r.status = EndpointStatus::InService;
                    r.failure_reason = Some(reason);
                });
                return;
            }
        };
        let Some(live) = locked(&self.fleets).get(name).cloned() else {
            return;
        };
        let mut failure = None;
        for want in &record.variants {
            let have = live.read(|f| f.instance_count(&want.name));
            let Some(variant) = plan.variant(&want.name) else {
                continue;
            };
            if want.desired_count > have {
                let extra = self
                    .deployer
                    .launch_instances(&plan, variant, have, want.desired_count - have)
                    .await;
                match extra {
                    Ok(extra) => live.update(|f, _| f.add_instances(&want.name, extra)),
                    Err(e) => failure = Some(e.to_string()),
                }
            } else if want.desired_count < have {
                let surplus = live.update(|f, _| f.take_surplus(&want.name, want.desired_count));
                join_all(surplus.into_iter().flatten().map(Member::remove)).await;
            }
            live.update(|f, plan| {
                if let Some(v) = f.variant_mut(&want.name) {
                    v.weight = want.desired_weight;
                }
                if let Some(v) = plan.variants.iter_mut().find(|v| v.name == want.name) {
                    v.weight = want.desired_weight;
                    v.instance_count = want.desired_count;
                }
            });
        }
        let counts: HashMap<String, u32> = record
            .variants
            .iter()
            .map(|v| (v.name.clone(), live.read(|f| f.instance_count(&v.name))))
            .collect();
        self.finish(name, record.generation, |r| {
            r.status = EndpointStatus::InService;
            r.failure_reason = failure.map(|f| f.chars().take(MAX_REASON).collect());
            for v in &mut r.variants {
                v.current_weight = v.desired_weight;
                v.current_count = counts.get(&v.name).copied().unwrap_or(0);
            }
        });
    }

    /// Keeps the record's CurrentInstanceCount to the instances in rotation while the
    /// fleet's instances are lost and replaced.
    fn follow(self: &Arc<Self>, name: &str, generation: u64, live: &Arc<LiveFleet>) {
        let mut changes = live.changes();
        let (this, name, weak) = (self.clone(), name.to_string(), Arc::downgrade(live));
        tokio::spawn(async move {
            while let Ok(change) = changes.recv().await {
                let variant = match &change {
                    crate::deploy::Change::Lost { variant, .. }
                    | crate::deploy::Change::Replaced { variant, .. } => variant.clone(),
                    crate::deploy::Change::ReplacementFailed { .. } => continue,
                };
                let Some(live) = weak.upgrade() else { return };
                let Some(healthy) = live.read(|f| f.healthy_count(&variant)) else {
                    continue;
                };
                this.finish(&name, generation, |r| {
                    if let Some(v) = r.variant_mut(&variant) {
                        v.current_count = healthy;
                    }
                });
            }
        });
    }

    /// The instances of `endpoint`'s `variant` in rotation now, when it serves: what
    /// DescribeEndpoint shows as CurrentInstanceCount. The record follows the fleet a
    /// moment later (for restarts); this is never behind the router.
    pub fn current_count(&self, endpoint: &str, variant: &str) -> Option<u32> {
        let live = locked(&self.fleets).get(endpoint).cloned()?;
        live.read(|f| f.healthy_count(variant))
    }

    /// DeleteEndpoint's work: out of the router at once, then the containers, then the
    /// record (the record says `Deleting` meanwhile).
    pub fn delete(self: &Arc<Self>, mut record: Endpoint) -> Result<(), crate::state::StoreError> {
        let name = record.name.clone();
        if let Some(task) = locked(&self.tasks).remove(&name) {
            task.abort();
        }
        self.router.withdraw(&name);
        let fleet = locked(&self.fleets).remove(&name);
        record.status = EndpointStatus::Deleting;
        record.last_modified = now();
        self.store.put(&name, &record)?;
        let this = self.clone();
        tokio::spawn(async move {
            if let Some(live) = fleet {
                live.remove().await;
            }
            this.deployer.remove_labelled(&name, None).await;
            let _ = this.store.delete::<Endpoint>(&name);
            let _ = this
                .store
                .delete::<TagSet>(&this.settings.arn("endpoint", &name));
        });
        Ok(())
    }

    /// After a restart: re-adopt healthy containers of each endpoint's current generation,
    /// redeploy endpoints whose containers are gone, finish interrupted deletions, and
    /// remove every other container this data directory owns.
    pub async fn restore(self: &Arc<Self>) -> Result<(), crate::runtime::RuntimeError> {
        let found = self.deployer.containers().await?;
        let mut adopted = HashSet::new();
        for record in self.store.list::<Endpoint>().unwrap_or_default() {
            if let Some(ids) = self.restore_one(record, &found).await {
                adopted.extend(ids);
            }
        }
        let mut alive = HashSet::new();
        for c in &found {
            if adopted.contains(&c.id) {
                alive.insert(c.name.clone());
            } else {
                let _ =
                    crate::runtime::guard::spawn_removal(self.deployer.engine(), &c.id, &c.name)
                        .await;
            }
        }
        crate::endpoint::multimodel::sweep_links(self.deployer.cache(), &alive);
        Ok(())
    }

    /// Restores one endpoint; returns the ids of the containers it adopted.
    async fn restore_one(
        self: &Arc<Self>,
        mut record: Endpoint,
        found: &[crate::runtime::gc::Managed],
    ) -> Option<Vec<String>> {
        match record.status {
            EndpointStatus::Deleting => {
                let _ = self.store.delete::<Endpoint>(&record.name);
                return None;
            }
            EndpointStatus::Failed => return None,
            _ => {}
        }
        let fail = |record: &mut Endpoint, reason: String| {
            record.status = EndpointStatus::Failed;
            record.failure_reason = Some(reason.chars().take(MAX_REASON).collect());
            let _ = self.store.put(&record.name.clone(), record);
        };
        let config = match self.store.get::<EndpointConfig>(&record.config_name) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let reason = format!(
                    "Could not find endpoint configuration \"{}\".",
                    self.settings.arn("endpoint-config", &record.config_name)
                );
                fail(&mut record, reason);
                return None;
            }
            Err(e) => {
                fail(&mut record, e.to_string());
                return None;
            }
        };
        let counts = record.variants.clone();
        if let Ok(plan) = self.plan(&record.name, &config, record.generation, Some(&counts)) {
            if let Some(fleet) = self.deployer.adopt(&plan, found).await {
                let ids: Vec<String> = found
                    .iter()
                    .filter(|c| fleet.containers().any(|i| i.guard.id == c.id))
                    .map(|c| c.id.clone())
                    .collect();
                let live =
                    LiveFleet::start(self.deployer.clone(), self.router.clone(), plan, fleet);
                self.follow(&record.name, record.generation, &live);
                locked(&self.fleets).insert(record.name.clone(), live);
                if record.status != EndpointStatus::InService {
                    record.status = EndpointStatus::InService;
                    record.failure_reason = Some("An update was interrupted by a restart of sagedock; the previous configuration serves. Call UpdateEndpoint again.".into());
                    let _ = self.store.put(&record.name.clone(), &record);
                }
                tracing::info!(endpoint = %record.name, "re-adopted running containers");
                return Some(ids);
            }
        }
        // Redeployed from scratch; one beyond this machine's caps fails instead.
        let instances: u64 = config
            .spec
            .production_variants
            .iter()
            .map(|v| u64::from(v.instance_count()))
            .sum();
        if let Err(e) = self.deployer.capacity().check(&record.name, instances, 0) {
            fail(&mut record, e.to_string());
            return None;
        }
        record.status = EndpointStatus::Creating;
        record.generation += 1;
        if self.store.put(&record.name.clone(), &record).is_ok() {
            self.start(&record.name, config, record.generation, Kind::Create);
        }
        None
    }

    /// Stops every deployment and removes every container of the data directory, waiting
    /// for removals under way (graceful shutdown).
    pub async fn shutdown(&self) {
        for (_, task) in locked(&self.tasks).drain() {
            task.abort();
        }
        let fleets: Vec<Arc<LiveFleet>> = locked(&self.fleets).drain().map(|(_, f)| f).collect();
        join_all(fleets.iter().map(|f| f.remove())).await;
        self.deployer.shut_down().await;
    }
}
