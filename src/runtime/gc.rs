//! Finding sagedock's containers by label, and removing those whose run is gone.
//!
//! A container's owner label names the process (or the `up` data directory) that owns it
//! (`runtime::owner`); when that owner is gone (killed, or the machine restarted) the
//! container is an orphan. Every start of sagedock removes the orphans of `serve` runs;
//! `sagedock gc` also removes those of an `up` that is not running (which would otherwise
//! re-adopt them when it starts again); `gc --all` removes every sagedock container.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListServicesOptionsBuilder,
};

use super::{labels, network, owner, Engine, RuntimeError};

/// A container carrying sagedock's labels.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Managed {
    pub id: String,
    pub name: String,
    pub image: String,
    pub endpoint: String,
    pub variant: String,
    pub instance: String,
    pub state: String,
    pub status: String,
    pub created_unix: i64,
    pub host_port: Option<u16>,
    pub owner_alive: bool,
    pub labels: HashMap<String, String>,
}

impl Managed {
    /// The deployment generation it belongs to.
    pub fn generation(&self) -> Option<u64> {
        self.labels.get(labels::GENERATION)?.parse().ok()
    }

    /// Its position among its instance's containers.
    pub fn position(&self) -> Option<usize> {
        self.labels.get(labels::CONTAINER)?.parse().ok()
    }
}

/// Every container labelled `sagedock.managed=true` (on a swarm, every such service),
/// oldest first.
pub async fn list(engine: &Engine) -> Result<Vec<Managed>, RuntimeError> {
    if engine.cluster.is_some() {
        let mut services = list_services(engine).await?;
        services.sort_by(|a, b| {
            a.created_unix
                .cmp(&b.created_unix)
                .then(a.name.cmp(&b.name))
        });
        return Ok(services);
    }
    let filters: HashMap<&str, Vec<String>> =
        HashMap::from([("label", vec![format!("{}=true", labels::MANAGED)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = engine
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| RuntimeError::docker("list containers", "labelled sagedock.managed", e))?;
    let mut out: Vec<Managed> = found
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let owner_label = get(labels::OWNER);
            Managed {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                endpoint: get(labels::ENDPOINT),
                variant: get(labels::VARIANT),
                instance: get(labels::INSTANCE),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                created_unix: c.created.unwrap_or(0),
                host_port: c
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .find_map(|p| p.public_port),
                owner_alive: owner::is_alive(&owner_label),
                labels,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.created_unix
            .cmp(&b.created_unix)
            .then(a.name.cmp(&b.name))
    });
    Ok(out)
}

/// The services sagedock labelled (on a swarm, where its containers are services).
async fn list_services(engine: &Engine) -> Result<Vec<Managed>, RuntimeError> {
    let filters: HashMap<&str, Vec<String>> =
        HashMap::from([("label", vec![format!("{}=true", labels::MANAGED)])]);
    let options = ListServicesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let services = engine
        .docker
        .list_services(Some(options))
        .await
        .map_err(|e| RuntimeError::docker("list services", "labelled sagedock.managed", e))?;
    let mut out = Vec::new();
    for service in services {
        let spec = service.spec.unwrap_or_default();
        let labels = spec.labels.unwrap_or_default();
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let id = service.id.unwrap_or_default();
        let state = super::swarm::task_state(engine, &id)
            .await
            .unwrap_or_default();
        out.push(Managed {
            name: spec.name.unwrap_or_default(),
            image: spec
                .task_template
                .and_then(|t| t.container_spec)
                .and_then(|c| c.image)
                .unwrap_or_default(),
            endpoint: get(labels::ENDPOINT),
            variant: get(labels::VARIANT),
            instance: get(labels::INSTANCE),
            status: format!("swarm task {state}"),
            state: if state == "running" {
                state
            } else {
                "exited".into()
            },
            created_unix: service
                .created_at
                .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .unwrap_or(0),
            host_port: None,
            owner_alive: owner::is_alive(&get(labels::OWNER)),
            labels,
            id,
        });
    }
    Ok(out)
}

/// Which containers to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// What every start of sagedock removes: the orphans of `serve` and `ci` runs, and the
    /// orphans of an `up` that are not running (a running one is kept for that `up` to
    /// re-adopt when it starts again; an exited one never can be).
    AtStart,
    /// Every orphan, `up`'s included (`sagedock gc`).
    Orphans,
    /// Every sagedock container (`sagedock gc --all`).
    All,
}

/// Whether an owner label names an owner that is gone (on this machine).
fn orphaned(owner_label: &str) -> bool {
    (owner::is_local(owner_label) || owner_label.is_empty()) && !owner::is_alive(owner_label)
}

/// Removes containers as `sweep` says, then the networks of owners that are gone and left
/// no container on them; returns the containers' names.
pub async fn gc(engine: &Engine, sweep: Sweep) -> Result<Vec<String>, RuntimeError> {
    let mut removed = Vec::new();
    for c in list(engine).await? {
        let owner_label = c.labels.get(labels::OWNER).cloned().unwrap_or_default();
        let orphan = !c.owner_alive && (owner::is_local(&owner_label) || owner_label.is_empty());
        let wanted = match sweep {
            Sweep::All => true,
            Sweep::Orphans => orphan,
            Sweep::AtStart => orphan && (!owner_label.starts_with("dir:") || c.state != "running"),
        };
        if wanted {
            super::guard::remove_container(engine, &c.id, &c.name).await?;
            removed.push(c.name);
        }
    }
    remove_networks(engine, sweep).await;
    Ok(removed)
}

/// Removes sagedock's networks that have no container on them and whose owner is gone
/// (every such network with [`Sweep::All`]).
async fn remove_networks(engine: &Engine, sweep: Sweep) {
    let filters: HashMap<&str, Vec<String>> =
        HashMap::from([("label", vec![format!("{}=true", labels::MANAGED)])]);
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let Ok(networks) = engine.docker.list_networks(Some(options)).await else {
        return;
    };
    for network in networks {
        let Some(name) = network.name else { continue };
        let owner_label = network
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::OWNER))
            .cloned()
            .unwrap_or_default();
        if sweep != Sweep::All && !orphaned(&owner_label) {
            continue;
        }
        network::remove_named_if_empty(engine, &name).await;
    }
}
