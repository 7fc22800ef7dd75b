//! Fleets in service: published in the router, watched, and healed.
//!
//! A [`LiveFleet`] learns that an instance is gone two ways: the engine says one of its
//! containers died (within milliseconds, from the event stream), or its `/ping` fails
//! [`PING_FAILURES`] times in a row (checked every [`PING_INTERVAL`], as SageMaker keeps
//! checking instances in service). Either way the instance leaves rotation at once — calls
//! go to the others, or fail fast when none is left — and a replacement is launched at
//! its place (same variant, same instance number, a new container); once it is healthy it
//! takes the old one's place in the router and the dead container is removed. A
//! replacement that fails is tried again, each time after a longer pause. The endpoint
//! stays in service throughout; every step is a [`Change`] its owner can follow.
//!
//! Serverless variants are also started on demand (a cold start, asked for by the router
//! through [`ColdStart`]) and stopped when idle.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use crate::sync::locked;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, BoxFuture};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::plan::EndpointPlan;
use super::{Deployer, Fleet, Member};
use crate::endpoint::serverless::{ColdStart, Serverless};
use crate::endpoint::Router;
use crate::runtime::events::Death;

/// Failed `/ping`s in a row that take an instance out of rotation.
pub const PING_FAILURES: u32 = 3;
/// The longest pause between attempts to replace an instance.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// What happened to a fleet's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An instance left rotation: which container, and why.
    Lost {
        variant: String,
        container: String,
        reason: String,
    },
    /// Its replacement is healthy and in rotation.
    Replaced {
        variant: String,
        container: String,
        replaced: String,
        took: Duration,
    },
    /// A replacement did not start; it is tried again.
    ReplacementFailed {
        variant: String,
        replaced: String,
        reason: String,
    },
}

/// A fleet published in the router and kept healthy.
pub struct LiveFleet {
    deployer: Arc<Deployer>,
    router: Arc<Router>,
    plan: Mutex<EndpointPlan>,
    fleet: Mutex<Fleet>,
    changes: broadcast::Sender<Change>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl LiveFleet {
    /// Publishes `fleet` (launched from `plan`) into `router` and starts watching it.
    pub fn start(
        deployer: Arc<Deployer>,
        router: Arc<Router>,
        plan: EndpointPlan,
        fleet: Fleet,
    ) -> Arc<LiveFleet> {
        let deaths = deployer.deaths();
        let (changes, _) = broadcast::channel(256);
        let live = Arc::new(LiveFleet {
            deployer,
            router,
            plan: Mutex::new(plan),
            fleet: Mutex::new(fleet),
            changes,
            watcher: Mutex::new(None),
        });
        live.publish();
        let interval = live.deployer.health_check_interval();
        let watcher = tokio::spawn(watch(Arc::downgrade(&live), deaths, interval));
        *locked(&live.watcher) = Some(watcher);
        keep_serverless(&live);
        live
    }

    fn deployer(&self) -> &Arc<Deployer> {
        &self.deployer
    }

    /// Puts the fleet as it is now into the router.
    pub fn publish(&self) {
        let live = locked(&self.fleet).live();
        self.router.publish(live);
    }

    /// Changes the fleet (and the plan replacements are launched from), then republishes.
    pub fn update<R>(&self, f: impl FnOnce(&mut Fleet, &mut EndpointPlan) -> R) -> R {
        let out = {
            let mut fleet = locked(&self.fleet);
            let mut plan = locked(&self.plan);
            f(&mut fleet, &mut plan)
        };
        self.publish();
        out
    }

    /// Reads the fleet.
    pub fn read<R>(&self, f: impl FnOnce(&Fleet) -> R) -> R {
        f(&locked(&self.fleet))
    }

    pub fn plan(&self) -> EndpointPlan {
        locked(&self.plan).clone()
    }

    /// Follows what happens to the instances.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Stops watching and removes every container (the caller withdraws the endpoint from
    /// the router first when it should take no more calls).
    pub async fn remove(&self) {
        if let Some(watcher) = locked(&self.watcher).take() {
            watcher.abort();
        }
        let members: Vec<Member> = {
            let mut fleet = locked(&self.fleet);
            fleet
                .variants
                .iter_mut()
                .flat_map(|v| std::mem::take(&mut v.instances))
                .flatten()
                .collect()
        };
        for result in join_all(members.into_iter().map(Member::remove)).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "removing a container failed; `sagedock gc` will retry");
            }
        }
    }

    fn tell(&self, change: Change) {
        match &change {
            Change::Lost {
                variant,
                container,
                reason,
            } => tracing::warn!(
                endpoint = %self.endpoint(), variant, container,
                "instance out of rotation: {reason}; replacing it"
            ),
            Change::Replaced {
                variant,
                container,
                replaced,
                took,
            } => tracing::warn!(
                endpoint = %self.endpoint(), variant, container,
                "replaced {replaced} in {:.2} s", took.as_secs_f64()
            ),
            Change::ReplacementFailed {
                variant,
                replaced,
                reason,
            } => tracing::warn!(
                endpoint = %self.endpoint(), variant,
                "the replacement of {replaced} failed: {reason}; trying again"
            ),
        }
        let _ = self.changes.send(change);
    }

    fn endpoint(&self) -> String {
        locked(&self.fleet).endpoint.clone()
    }

    /// Takes the instance holding container `id` out of rotation and replaces it, unless
    /// it is no longer in the fleet or already being replaced.
    fn lose(self: &Arc<Self>, id: &str, reason: String, replacing: &Arc<Mutex<HashSet<String>>>) {
        let found = {
            let fleet = locked(&self.fleet);
            fleet.locate(id).map(|(variant, members)| {
                for m in members {
                    m.backend.set_healthy(false);
                }
                let names: Vec<String> = members
                    .iter()
                    .map(|m| m.container.guard.name.clone())
                    .collect();
                let ids: Vec<String> = members
                    .iter()
                    .map(|m| m.container.guard.id.clone())
                    .collect();
                (variant.to_string(), names, ids)
            })
        };
        let Some((variant, names, ids)) = found else {
            return;
        };
        {
            let mut busy = locked(replacing);
            if ids.iter().any(|i| busy.contains(i)) {
                return;
            }
            busy.extend(ids.iter().cloned());
        }
        let series = self.router.metrics.series(&self.endpoint(), &variant);
        series.lost();
        self.tell(Change::Lost {
            variant: variant.clone(),
            container: names.join(", "),
            reason,
        });
        let this = self.clone();
        let replacing = replacing.clone();
        tokio::spawn(async move {
            this.replace(&variant, &ids[0], &names.join(", ")).await;
            let mut busy = locked(&replacing);
            for id in &ids {
                busy.remove(id);
            }
        });
    }

    /// Launches a replacement for the instance holding container `dead` until one is
    /// healthy, then swaps it in and removes the old containers.
    async fn replace(self: Arc<Self>, variant: &str, dead: &str, dead_names: &str) {
        let mut pause = Duration::from_secs(1);
        loop {
            let t0 = Instant::now();
            let plan = self.plan();
            let Some(slot) = self.read(|f| f.locate_index(dead)) else {
                return; // rescaled away meanwhile
            };
            let Some(variant_plan) = plan.variant(variant) else {
                return;
            };
            let launched = self
                .deployer
                .launch_instances(&plan, variant_plan, slot, 1)
                .await;
            match launched {
                Ok(groups) => {
                    let new_names: Vec<String> = groups
                        .iter()
                        .flatten()
                        .map(|i| i.guard.name.clone())
                        .collect();
                    let old = self.update(|fleet, _| fleet.replace(dead, groups));
                    let Some(old) = old else { return };
                    self.router
                        .metrics
                        .series(&self.endpoint(), variant)
                        .replaced();
                    self.tell(Change::Replaced {
                        variant: variant.to_string(),
                        container: new_names.join(", "),
                        replaced: dead_names.to_string(),
                        took: t0.elapsed(),
                    });
                    join_all(old.into_iter().map(Member::remove)).await;
                    return;
                }
                Err(e) => {
                    self.tell(Change::ReplacementFailed {
                        variant: variant.to_string(),
                        replaced: dead_names.to_string(),
                        reason: e.to_string(),
                    });
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }
}

/// The watcher: deaths from the engine, `/ping` every `interval`.
async fn watch(
    live: std::sync::Weak<LiveFleet>,
    mut deaths: broadcast::Receiver<Death>,
    interval: Duration,
) {
    let replacing: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut failures: HashMap<String, u32> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            death = deaths.recv() => {
                let Some(live) = live.upgrade() else { return };
                match death {
                    Ok(Death::Died { id, reason }) => live.lose(&id, reason, &replacing),
                    Ok(Death::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        for (id, reason) in live.stopped().await {
                            live.lose(&id, reason, &replacing);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            _ = tick.tick() => {
                let Some(live) = live.upgrade() else { return };
                for (id, failed) in live.ping_all().await {
                    match failed {
                        None => {
                            failures.remove(&id);
                        }
                        Some(why) => {
                            let n = failures.entry(id.clone()).or_default();
                            *n += 1;
                            if *n >= PING_FAILURES {
                                failures.remove(&id);
                                live.lose(&id, format!("it failed {PING_FAILURES} health checks in a row ({why})"), &replacing);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl LiveFleet {
    /// Every in-rotation container's `/ping`: `None` when it answered 200, else why not.
    async fn ping_all(&self) -> Vec<(String, Option<String>)> {
        let targets: Vec<(String, std::net::SocketAddr)> = self.read(|f| {
            f.members()
                .filter(|m| m.backend.is_healthy())
                .map(|m| (m.container.guard.id.clone(), m.container.addr))
                .collect()
        });
        let pings = targets.into_iter().map(|(id, addr)| async move {
            let outcome = match crate::runtime::launch::ping(addr).await {
                Ok(200) => None,
                Ok(status) => Some(format!("/ping answered {status}")),
                Err(e) => Some(e.to_string()),
            };
            (id, outcome)
        });
        join_all(pings).await
    }

    /// The containers the engine says are not running (after missed events).
    async fn stopped(&self) -> Vec<(String, String)> {
        let ids: Vec<String> =
            self.read(|f| f.members().map(|m| m.container.guard.id.clone()).collect());
        let mut out = Vec::new();
        for id in ids {
            let running = self
                .deployer
                .engine()
                .docker
                .inspect_container(&id, None)
                .await
                .ok()
                .and_then(|i| i.state)
                .and_then(|s| s.running)
                .unwrap_or(false);
            if !running {
                out.push((id, "it is no longer running".to_string()));
            }
        }
        out
    }
}

// Serverless variants, kept by their deployment: an instance launched when a call finds
// none warm (a cold start, which the router waits for and reports as ModelSetupTime), and
// stopped again once the variant has had no call for the deployer's idle time, unless
// ProvisionedConcurrency keeps it warm. sagedock runs a serverless variant as at most one
// container (of MemorySizeInMB, with compute in proportion), which takes up to
// MaxConcurrency calls at once.

/// Keeps `live`'s serverless variants: starts their instances on demand and stops them
/// when idle.
fn keep_serverless(live: &Arc<LiveFleet>) {
    let variants: Vec<(String, Arc<Serverless>)> = live.read(|f| {
        f.variants
            .iter()
            .filter_map(|v| Some((v.name.clone(), v.serverless.clone()?)))
            .collect()
    });
    for (variant, serverless) in variants {
        let keeper = Arc::new(Keeper {
            live: Arc::downgrade(live),
            variant,
            busy: tokio::sync::Mutex::new(()),
        });
        serverless.set_starter(keeper.clone());
        tokio::spawn(scale_in_when_idle(keeper, serverless));
    }
}

/// Starts and stops one serverless variant's instance, one change at a time.
struct Keeper {
    live: Weak<LiveFleet>,
    variant: String,
    busy: tokio::sync::Mutex<()>,
}

impl ColdStart for Keeper {
    fn start(&self) -> BoxFuture<'_, Result<Option<Duration>, String>> {
        Box::pin(async move {
            let _one_at_a_time = self.busy.lock().await;
            let live = self.live.upgrade().ok_or("the endpoint is being deleted")?;
            if live.read(|f| f.healthy_count(&self.variant)).unwrap_or(0) > 0 {
                return Ok(None);
            }
            let t0 = Instant::now();
            let plan = live.plan();
            let variant = plan
                .variant(&self.variant)
                .ok_or("the variant is no longer planned")?;
            let slot = live.read(|f| f.instance_count(&self.variant));
            let groups = live
                .deployer()
                .launch_instances(&plan, variant, slot, 1)
                .await
                .map_err(|e| format!("the cold start failed: {e}"))?;
            live.update(|fleet, plan| {
                fleet.add_instances(&self.variant, groups);
                plan.set_instance_count(&self.variant, 1);
            });
            tracing::info!(variant = self.variant, took = ?t0.elapsed(), "serverless cold start");
            Ok(Some(t0.elapsed()))
        })
    }
}

/// Stops the variant's instances once it has had no call for the idle time.
async fn scale_in_when_idle(keeper: Arc<Keeper>, serverless: Arc<Serverless>) {
    if serverless.provisioned > 0 {
        return;
    }
    let Some(idle) = keeper
        .live
        .upgrade()
        .map(|l| l.deployer().serverless_idle())
    else {
        return;
    };
    let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(every).await;
        let Some(live) = keeper.live.upgrade() else {
            return;
        };
        if serverless.in_flight() > 0 || serverless.idle_for() < idle {
            continue;
        }
        let _one_at_a_time = keeper.busy.lock().await;
        if serverless.in_flight() > 0 || live.read(|f| f.instance_count(&keeper.variant)) == 0 {
            continue;
        }
        let stopped: Vec<Member> = live
            .update(|fleet, plan| {
                plan.set_instance_count(&keeper.variant, 0);
                fleet.take_surplus(&keeper.variant, 0)
            })
            .into_iter()
            .flatten()
            .collect();
        tracing::info!(
            variant = keeper.variant,
            "serverless variant idle: scaled to zero"
        );
        join_all(stopped.into_iter().map(Member::remove)).await;
    }
}
