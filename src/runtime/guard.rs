//! Ownership of a container from the instant `create` returns.
//!
//! A [`ContainerGuard`] removes its container when dropped (on error paths, panics, or a
//! cancelled future), unless it was removed explicitly with [`ContainerGuard::remove`]
//! or kept with [`ContainerGuard::keep`] (`SAGEDOCK_KEEP=1` keeps every container, for
//! debugging). Every removal runs as a task of its own, registered with
//! [`super::removal::Removals`], so that cancelling the code that asked for it does not
//! abandon it and the end of the run can wait for it. Where no async runtime is running
//! (the guard dropped outside one) the removal runs on a thread of its own with a client
//! of its own, and the drop waits for it.

use bollard::query_parameters::{RemoveContainerOptionsBuilder, StopContainerOptionsBuilder};

use super::engine::is_not_found;
use super::removal::Removals;
use super::{Engine, RuntimeError};

/// Seconds between SIGTERM and SIGKILL when stopping, as SageMaker does.
pub const STOP_GRACE_SECS: i32 = 30;

/// Whether `SAGEDOCK_KEEP` asks to keep containers.
pub fn keep_requested() -> bool {
    std::env::var("SAGEDOCK_KEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Owns one container.
pub struct ContainerGuard {
    engine: Engine,
    pub id: String,
    pub name: String,
    armed: bool,
}

impl std::fmt::Debug for ContainerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerGuard")
            .field("name", &self.name)
            .field("armed", &self.armed)
            .finish()
    }
}

impl ContainerGuard {
    pub fn new(engine: Engine, id: String, name: String) -> Self {
        ContainerGuard {
            engine,
            id,
            name,
            armed: !keep_requested(),
        }
    }

    /// Stops (SIGTERM, then SIGKILL after the grace period) and removes the container.
    /// The removal goes on if this future is dropped.
    pub async fn remove(mut self) -> Result<(), RuntimeError> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        let task = spawn_removal(&self.engine, &self.id, &self.name);
        task.await.unwrap_or_else(|e| {
            Err(RuntimeError::Removal {
                name: self.name.clone(),
                detail: e.to_string(),
            })
        })
    }

    /// Leaves the container running after the guard is gone.
    pub fn keep(mut self) {
        self.armed = false;
    }
}

/// Starts removing a container in a task of its own, registered from now until it ends.
/// Must be called within an async runtime.
pub fn spawn_removal(
    engine: &Engine,
    id: &str,
    name: &str,
) -> tokio::task::JoinHandle<Result<(), RuntimeError>> {
    let in_flight = Removals::global().begin(engine, id, name);
    let (engine, id, name) = (engine.clone(), id.to_string(), name.to_string());
    tokio::spawn(async move {
        let _in_flight = in_flight;
        remove_container(&engine, &id, &name).await
    })
}

/// Removes a container from outside any async runtime: on a thread of its own, with a
/// client of its own (the caller's may belong to a runtime that is gone); waits for it.
fn remove_blocking(id: String, name: String) {
    let done = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            match Engine::connect().await {
                Ok(engine) => {
                    let _in_flight = Removals::global().begin(&engine, &id, &name);
                    if let Err(e) = remove_container(&engine, &id, &name).await {
                        tracing::warn!(container = %name, error = %e, "could not remove container; `sagedock gc` will");
                    }
                }
                Err(e) => tracing::warn!(container = %name, error = %e, "could not remove container; `sagedock gc` will"),
            }
        });
    });
    let _ = done.join();
}

/// Stops and removes a container (on a swarm, its service); a container already gone is
/// not an error. After a forced stop ([`Removals::force`]) it is killed at once.
pub async fn remove_container(engine: &Engine, id: &str, name: &str) -> Result<(), RuntimeError> {
    if engine.cluster.is_some() {
        return remove_service(engine, id, name).await;
    }
    if !Removals::global().is_forced() {
        let stop = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE_SECS)
            .build();
        match engine.docker.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => {
                tracing::debug!(container = name, error = %e, "stop failed; removing by force")
            }
        }
        Removals::global().read_to_end(id).await;
    }
    let remove = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match engine.docker.remove_container(id, Some(remove)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // 409: another process is removing it; return once it is gone.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            wait_gone(engine, id).await;
            Ok(())
        }
        Err(e) => Err(RuntimeError::docker("remove container", name, e)),
    }
}

/// Removes a service (its task's container goes with it); one already gone is not an
/// error.
async fn remove_service(engine: &Engine, id: &str, name: &str) -> Result<(), RuntimeError> {
    match engine.docker.delete_service(id).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(RuntimeError::docker("remove service", name, e)),
    }
}

/// Waits (at most 10 s) until the engine no longer knows the container.
async fn wait_gone(engine: &Engine, id: &str) {
    for _ in 0..200 {
        match engine.docker.inspect_container(id, None).await {
            Err(e) if is_not_found(&e) => return,
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        tracing::debug!(container = %self.name, "guard dropped: removing container");
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(spawn_removal(&self.engine, &self.id, &self.name));
        } else {
            remove_blocking(self.id.clone(), self.name.clone());
        }
    }
}
