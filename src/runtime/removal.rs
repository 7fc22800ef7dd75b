//! Container removals in flight, for the whole process.
//!
//! Stopping a container can take Docker's whole grace period (30 s, when its PID 1 ignores
//! SIGTERM). A removal therefore runs as a task of its own, registered here from the
//! moment it is asked for: dropping whatever asked for it (a cancelled deployment, an
//! aborted request) does not abandon it, and the end of a run waits for [`settled`] before
//! it exits, saying what it waits for. [`force`] (a second Ctrl-C) kills and removes every
//! container still stopping, at once.
//!
//! The registry is process-wide because what it tracks is: the containers this process
//! must not leave behind, whichever part of it started their removal.
//!
//! [`settled`]: Removals::settled
//! [`force`]: Removals::force

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use bollard::query_parameters::{KillContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use tokio::sync::Notify;

use super::engine::is_not_found;
use super::Engine;

use crate::sync::locked;

/// The removals in flight.
#[derive(Default)]
pub struct Removals {
    pending: Mutex<HashMap<String, Pending>>,
    changed: Notify,
    forced: AtomicBool,
}

struct Pending {
    name: String,
    engine: Engine,
}

/// One removal, registered until dropped.
pub struct InFlight {
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let removals = Removals::global();
        removals.lock().remove(&self.id);
        removals.changed.notify_waiters();
    }
}

impl Removals {
    /// This process's removals.
    pub fn global() -> &'static Removals {
        static REMOVALS: OnceLock<Removals> = OnceLock::new();
        REMOVALS.get_or_init(Removals::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        locked(&self.pending)
    }

    /// Registers the removal of container `id`.
    pub fn begin(&self, engine: &Engine, id: &str, name: &str) -> InFlight {
        self.lock().insert(
            id.to_string(),
            Pending {
                name: name.to_string(),
                engine: engine.clone(),
            },
        );
        InFlight { id: id.to_string() }
    }

    /// The names of the containers being removed now.
    pub fn pending(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().values().map(|p| p.name.clone()).collect();
        names.sort();
        names
    }

    /// Resolves once no removal is in flight.
    pub async fn settled(&self) {
        loop {
            let changed = self.changed.notified();
            if self.lock().is_empty() {
                return;
            }
            changed.await;
        }
    }

    /// Whether removals skip the grace period (after [`Removals::force`]).
    pub fn is_forced(&self) -> bool {
        self.forced.load(Ordering::Relaxed)
    }

    /// From now on removals kill at once; the containers still stopping are killed and
    /// removed now.
    pub async fn force(&self) {
        self.forced.store(true, Ordering::Relaxed);
        let pending: Vec<(String, String, Engine)> = self
            .lock()
            .iter()
            .map(|(id, p)| (id.clone(), p.name.clone(), p.engine.clone()))
            .collect();
        let kills = pending
            .iter()
            .map(|(id, name, engine)| kill_and_remove(engine, id, name));
        futures_util::future::join_all(kills).await;
    }
}

/// Kills and removes a container at once (`docker rm -f`).
async fn kill_and_remove(engine: &Engine, id: &str, name: &str) {
    let kill = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    let _ = engine.docker.kill_container(id, Some(kill)).await;
    let remove = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match engine.docker.remove_container(id, Some(remove)).await {
        Ok(()) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => tracing::warn!(container = name, error = %e, "could not remove the container"),
    }
}
