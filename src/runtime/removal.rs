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
//! A container's output is read to its end before the container goes: whoever follows
//! it holds a [`Reading`], and a removal waits (a few seconds at most) between the stop
//! and the removal for the reading to end, so that the last lines (what the container
//! printed on SIGTERM) reach its log stream. An engine that deletes a container's log
//! with the container (Podman) would otherwise cut them off.
//!
//! [`settled`]: Removals::settled
//! [`force`]: Removals::force

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bollard::query_parameters::{KillContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use tokio::sync::{watch, Notify};

use super::engine::is_not_found;
use super::Engine;

use crate::sync::locked;

/// The removals in flight.
#[derive(Default)]
pub struct Removals {
    pending: Mutex<HashMap<String, Pending>>,
    changed: Notify,
    forced: AtomicBool,
    /// The containers whose output is being read, each with a receiver that sees the
    /// reading end (its sender dropped).
    readings: Mutex<HashMap<String, watch::Receiver<()>>>,
}

/// How long a removal waits, after the stop, for the container's output to be read.
const READ_TO_END: Duration = Duration::from_secs(5);

/// One container's output being read, registered until dropped.
pub struct Reading {
    id: String,
    _open: watch::Sender<()>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        locked(&Removals::global().readings).remove(&self.id);
    }
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

    /// Registers that container `id`'s output is being read, until the result is dropped.
    pub fn reading(&self, id: &str) -> Reading {
        let (open, watching) = watch::channel(());
        locked(&self.readings).insert(id.to_string(), watching);
        Reading {
            id: id.to_string(),
            _open: open,
        }
    }

    /// Resolves once nothing reads container `id`'s output (at once when nothing does),
    /// or after a few seconds.
    pub async fn read_to_end(&self, id: &str) {
        let watching = locked(&self.readings).get(id).cloned();
        if let Some(mut watching) = watching {
            let _ = tokio::time::timeout(READ_TO_END, watching.changed()).await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_removal_waits_for_the_reading_to_end_but_not_longer_than_the_bound() {
        let removals = Removals::global();
        // Nothing reads: no wait.
        let start = tokio::time::Instant::now();
        removals.read_to_end("unread").await;
        assert_eq!(start.elapsed(), Duration::ZERO);

        // The reading ends after a second: the wait ends with it.
        let reading = removals.reading("read");
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(reading);
        });
        removals.read_to_end("read").await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        ends.await.unwrap();
        assert!(!locked(&removals.readings).contains_key("read"));

        // A reading that never ends holds the removal for READ_TO_END only.
        let _stuck = removals.reading("stuck");
        removals.read_to_end("stuck").await;
        assert_eq!(start.elapsed(), Duration::from_secs(1) + READ_TO_END);
    }
}
