//! The Docker engine, reached through the Docker Engine API (bollard).
//!
//! Honours `DOCKER_HOST` (`unix://…`, `tcp://…`, `http://…`), else the local socket.
//! The client pins API 1.41 (Docker 20.10, the oldest engine we support) and negotiates
//! down from there, so any newer engine accepts it too. Errors name the engine address and
//! say how to start one; a missing image names the image and how to get it.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use super::RuntimeError;

const API_1_41: &ClientVersion = &ClientVersion {
    major_version: 1,
    minor_version: 41,
};
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// The swarm an engine manages, when instances run as its services ([`super::swarm`]):
/// images come from and go to `registry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `HOST:PORT` of the registry every node pulls from.
    pub registry: String,
}

/// A connected engine and what it offers.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    /// Where the engine is, as the user would name it.
    pub host: String,
    /// True when the engine runs on this machine (a unix socket), so container bridge
    /// addresses are reachable from here on Linux.
    pub local: bool,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub nvidia_runtime: bool,
    /// Set when instances run as services of the swarm this engine manages
    /// ([`super::swarm`]); every container sagedock makes is then a service.
    pub cluster: Option<std::sync::Arc<Cluster>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .field("cpus", &self.cpus)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl Engine {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket) and checks
    /// that it answers.
    pub async fn connect() -> Result<Engine, RuntimeError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
        let unreachable = |detail: String| RuntimeError::EngineUnreachable {
            host: host.clone(),
            detail,
        };
        let docker = if host.starts_with("unix://") {
            Docker::connect_with_unix(&host, 120, API_1_41)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, 120, API_1_41)
        } else {
            return Err(unreachable(
                "only unix:// and tcp:// engine addresses are supported".into(),
            ));
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let info = docker
            .info()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let nvidia_runtime = info
            .runtimes
            .as_ref()
            .is_some_and(|r| r.keys().any(|k| k.contains("nvidia")));
        Ok(Engine {
            local: host.starts_with("unix://"),
            docker,
            host,
            cpus: u32::try_from(info.ncpu.unwrap_or(1).max(1)).unwrap_or(u32::MAX),
            memory_bytes: u64::try_from(info.mem_total.unwrap_or(0)).unwrap_or(0),
            nvidia_runtime,
            cluster: None,
        })
    }

    /// Connects as [`Engine::connect`] does; with `registry` (`sagedock up --engine swarm`)
    /// the engine must be a swarm manager, and instances run as its services, their images
    /// from and to `registry`.
    pub async fn connect_to(registry: Option<&str>) -> Result<Engine, RuntimeError> {
        let mut engine = Engine::connect().await?;
        let Some(registry) = registry else {
            return Ok(engine);
        };
        let swarm = engine
            .docker
            .info()
            .await
            .map_err(|e| RuntimeError::EngineUnreachable {
                host: engine.host.clone(),
                detail: e.to_string(),
            })?
            .swarm
            .unwrap_or_default();
        if swarm.control_available != Some(true) {
            return Err(RuntimeError::Cluster(format!(
                "the engine at {} is not a swarm manager (swarm state: {}); point DOCKER_HOST at a manager's API, or stand a swarm up on this machine with `bash harness/swarm/up.sh`",
                engine.host,
                swarm
                    .local_node_state
                    .map_or_else(|| "unknown".to_string(), |s| s.to_string())
            )));
        }
        // An instance's CPUs are capped by the largest node's, not by this machine's.
        engine.cpus = u32::try_from(
            engine
                .docker
                .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
                .await
                .map_err(|e| RuntimeError::docker("list nodes of", &engine.host, e))?
                .iter()
                .filter_map(|n| n.description.as_ref()?.resources.as_ref()?.nano_cpus)
                .max()
                .unwrap_or(1_000_000_000)
                / 1_000_000_000,
        )
        .unwrap_or(1)
        .max(1);
        engine.cluster = Some(std::sync::Arc::new(Cluster {
            registry: registry.to_string(),
        }));
        Ok(engine)
    }

    /// A container's output, or on a swarm a service's (every task's, from every node).
    pub fn logs(
        &self,
        id: &str,
        options: bollard::query_parameters::LogsOptions,
    ) -> std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = Result<bollard::container::LogOutput, DockerError>>
                + Send,
        >,
    > {
        if self.cluster.is_some() {
            Box::pin(self.docker.service_logs(id, Some(options)))
        } else {
            Box::pin(self.docker.logs(id, Some(options)))
        }
    }

    /// A client of the engine listening on the unix socket `socket` that has asked it
    /// nothing yet (for tests of what happens when an engine fails or hangs): its facts
    /// are taken as one CPU, no memory figure, no GPU runtime.
    #[cfg(test)]
    pub(crate) fn unconnected(socket: &std::path::Path) -> Engine {
        let host = format!("unix://{}", socket.display());
        let docker = Docker::connect_with_unix(&host, 120, API_1_41).expect("a unix client");
        Engine {
            docker,
            host,
            local: true,
            cpus: 1,
            memory_bytes: 0,
            nvidia_runtime: false,
            cluster: None,
        }
    }

    /// Makes sure `image` is present; pulls it only when `pull` is set, its layers' bytes
    /// told to `meter`.
    pub async fn ensure_image(
        &self,
        image: &str,
        pull: bool,
        meter: Option<&crate::progress::Meter>,
    ) -> Result<(), RuntimeError> {
        // On a swarm the registry is the images' home, as ECR is SageMaker's: always asked.
        let named = self.image_name(image);
        let image = named.as_str();
        if self.cluster.is_none() {
            match self.docker.inspect_image(image).await {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(RuntimeError::docker("inspect image", image, e)),
            }
        }
        if !pull && self.cluster.is_none() {
            return Err(RuntimeError::ImageMissing {
                image: image.to_string(),
            });
        }
        let (repo, tag) = split_image(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        if let Some(meter) = meter {
            meter.start(format!("pulling {image}"), None);
        }
        // Each layer's bytes downloaded and its size, by layer id.
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            let step = step.map_err(|e| RuntimeError::Pull {
                image: image.to_string(),
                detail: match &self.cluster {
                    Some(cluster) => format!(
                        "{e}; push the serving image to the cluster's registry first: `docker tag {short} {image} && docker push {image}` (harness/swarm/up.sh {short} does both)",
                        short = image.strip_prefix(&format!("{}/", cluster.registry)).unwrap_or(image)
                    ),
                    None => e.to_string(),
                },
            })?;
            let Some(meter) = meter else { continue };
            let detail = step.progress_detail.as_ref();
            let (current, total) = (detail.and_then(|d| d.current), detail.and_then(|d| d.total));
            if let (Some(id), Some(current), Some(total)) = (step.id.clone(), current, total) {
                let layer = layers.entry(id).or_default();
                *layer = (
                    u64::try_from(current).unwrap_or(0),
                    u64::try_from(total).unwrap_or(0),
                );
                let (done, all) = layers
                    .values()
                    .fold((0, 0), |(d, t), (c, s)| (d + c, t + s));
                meter.set(done, all);
            }
            if let Some(status) = &step.status {
                meter.note(format!("pulling {image}: {status}"));
            }
        }
        Ok(())
    }

    /// The name `image` has on this engine: on a swarm, the cluster registry's copy.
    pub fn image_name(&self, image: &str) -> String {
        match &self.cluster {
            Some(cluster) => format!("{}/{image}", cluster.registry),
            None => image.to_string(),
        }
    }

    /// Labels of an image (capabilities such as `accept-bind-to-port`).
    pub async fn image_labels(&self, image: &str) -> HashMap<String, String> {
        self.docker
            .inspect_image(&self.image_name(image))
            .await
            .ok()
            .and_then(|i| i.config)
            .and_then(|c| c.labels)
            .unwrap_or_default()
    }
}

/// `repo[:tag]` → (repo, tag), keeping registry ports (`host:5000/repo`) intact.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// True for the engine's 404 (no such container, image or network).
pub fn is_not_found(err: &DockerError) -> bool {
    matches!(
        err,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_at_the_tag_not_the_registry_port() {
        assert_eq!(
            split_image("sagedock/echo:latest"),
            ("sagedock/echo", "latest")
        );
        assert_eq!(split_image("sagedock/echo"), ("sagedock/echo", "latest"));
        assert_eq!(
            split_image("localhost:5000/echo"),
            ("localhost:5000/echo", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/echo:v2"),
            ("localhost:5000/echo", "v2")
        );
    }
}
