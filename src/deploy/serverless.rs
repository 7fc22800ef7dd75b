//! Serverless variants kept by their deployment: an instance launched when a call finds
//! none warm (a cold start, which the router waits for and reports as ModelSetupTime), and
//! stopped again once the variant has had no call for the deployer's idle time, unless
//! ProvisionedConcurrency keeps it warm.
//!
//! sagedock runs a serverless variant as at most one container (of MemorySizeInMB, with
//! compute in proportion), which takes up to MaxConcurrency calls at once.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::future::{join_all, BoxFuture};

use super::supervise::LiveFleet;
use super::Member;
use crate::endpoint::serverless::{ColdStart, Serverless};

/// Keeps `live`'s serverless variants: starts their instances on demand and stops them
/// when idle.
pub fn keep(live: &Arc<LiveFleet>) {
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
