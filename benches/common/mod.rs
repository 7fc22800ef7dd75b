//! What the in-process benches share: a control plane over a temporary data directory,
//! and the median of a round's timings.

use std::sync::Arc;
use std::time::Duration;

use sagedock::artifact::Cache;
use sagedock::control::{ControlPlane, Options, Settings};
use sagedock::deploy::{Capacity, DeployOptions};
use sagedock::runtime::{owner, Engine};
use sagedock::storage::Storage;

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The control plane `sagedock up` runs, over `dir` and `storage`; keep the lock while it
/// is used.
pub fn control_plane(
    engine: &Engine,
    dir: &std::path::Path,
    storage: Storage,
) -> (Arc<ControlPlane>, owner::DataDirLock) {
    let settings = Settings {
        region: "us-east-1".into(),
        account: "123456789012".into(),
    };
    let options = Options {
        health_timeout: Duration::from_secs(60),
        model_load_wait: sagedock::endpoint::MODEL_LOAD_WAIT,
        deploy: DeployOptions::with_capacity(Capacity::for_memory(engine.memory_bytes)),
    };
    let data = dir.join("data");
    let lock = owner::claim(&data).unwrap();
    let (control, _) = ControlPlane::open(
        settings,
        &data,
        lock.owner.clone(),
        engine.clone(),
        Cache::at(dir.join("cache")),
        storage,
        Arc::new(sagedock::logs::LogRecord::open(&data.join("logs")).unwrap()),
        options,
    )
    .unwrap();
    (control, lock)
}
