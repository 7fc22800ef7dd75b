//! Instances on a Docker Swarm (`sagedock up --engine swarm`): each instance's container
//! runs as a service of one task, placed by Swarm on any node of the cluster.
//!
//! What stays sagedock's, as on one engine: routing, health checks and the replacement of
//! an instance that fails them (SageMaker replaces unhealthy instances itself), metrics
//! and logs. So a service's restart policy is `none`: when a task dies, or its node does,
//! the instance fails its `/ping`s, leaves rotation, and sagedock launches a replacement,
//! which Swarm places on a node that is up.
//!
//! Model data reaches every node as an image: the serving image (from the cluster's
//! registry, where a user's images sit as they sit in ECR) with the unpacked model tree
//! copied to `/opt/ml/model`, built on the manager, pushed to the registry once per model
//! and serving image, and pulled by whichever node runs the task.
//!
//! Each task publishes its serving port in host mode on a port its node picks (Swarm's
//! routing mesh would balance past sagedock's routing, and needs IPVS); sagedock reaches
//! the task at its node's address and that port, found through the task and node APIs.
//!
//! Not on a swarm (each refused with a message at deploy time): network isolation
//! (refused by the deployer, which leases no bridge address here), multi-model endpoints,
//! inference code from SAGEMAKER_SUBMIT_DIRECTORY, and jobs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, Limit, NodeState, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, Task,
    TaskSpec, TaskSpecContainerSpec, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListTasksOptionsBuilder, PushImageOptionsBuilder,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::engine::Cluster;
use super::guard::ContainerGuard;
use super::launch::{wait_until_healthy, Instance, ReadyPolicy};
use super::spec::ContainerSpec;
use super::{labels, logs, Engine, RuntimeError};

/// Swarm's service names are DNS labels: at most 63 characters.
fn service_name(container_name: &str) -> String {
    if container_name.len() <= 63 {
        return container_name.to_string();
    }
    let digest = hex(&Sha256::digest(container_name.as_bytes()))[..12].to_string();
    let mut cut = 50;
    while !container_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{digest}", container_name[..cut].trim_end_matches('-'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses what a swarm cannot run, naming it.
fn check_supported(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let refuse = |what: &str| {
        Err(RuntimeError::Cluster(format!(
            "{what} does not run on a swarm yet (container {}); deploy it with the default engine (no --engine swarm)",
            spec.name
        )))
    };
    if spec.multi_model.is_some() {
        return refuse("a multi-model endpoint");
    }
    if !spec.mounts.is_empty() {
        return refuse("inference code from SAGEMAKER_SUBMIT_DIRECTORY");
    }
    if !spec.writable.is_empty() || !spec.serves {
        return refuse("a job");
    }
    Ok(())
}

/// Starts `spec` as a service of one task and waits until the task answers `/ping`.
pub async fn launch(
    engine: &Engine,
    cluster: &Cluster,
    spec: &ContainerSpec,
    policy: ReadyPolicy,
) -> Result<Instance, RuntimeError> {
    check_supported(spec)?;
    let t0 = Instant::now();
    let image = service_image(engine, cluster, spec).await?;
    let name = service_name(&spec.name);
    let created = engine
        .docker
        .create_service(service_spec(engine, spec, &name, &image), None)
        .await
        .map_err(|e| RuntimeError::docker("create service", &name, e))?;
    let id = created.id.unwrap_or_default();
    let guard = ContainerGuard::new(engine.clone(), id, name);
    let addr = wait_running(engine, &guard, spec.port, policy.deadline).await?;
    let started = Instant::now();
    let died = task_ended(engine, &guard);
    let listening = wait_until_healthy(engine, &guard, addr, policy, died).await?;
    Ok(Instance {
        guard,
        lease: None,
        addr,
        published: Some(addr),
        listening_after: Some(listening.saturating_duration_since(started)),
        ready_after: t0.elapsed(),
    })
}

fn service_spec(engine: &Engine, spec: &ContainerSpec, name: &str, image: &str) -> ServiceSpec {
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    let limits = spec.instance_type.limits(engine.cpus).map(|l| Limit {
        nano_cpus: Some(l.nano_cpus),
        memory_bytes: Some(l.memory_bytes),
        pids: None,
    });
    ServiceSpec {
        name: Some(name.to_string()),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                labels: Some(labels),
                command: spec.entrypoint.clone(),
                args: Some(spec.cmd.clone()),
                hostname: spec.hostname.clone(),
                env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                init: spec.init.then_some(true),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits,
                ..Default::default()
            }),
            // sagedock replaces an instance that dies: Swarm must not restart it too.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(spec.port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The service's task, newest first.
async fn task(engine: &Engine, service_id: &str) -> Result<Option<Task>, RuntimeError> {
    let filters = HashMap::from([("service", vec![service_id.to_string()])]);
    let options = ListTasksOptionsBuilder::default().filters(&filters).build();
    let mut tasks = engine
        .docker
        .list_tasks(Some(options))
        .await
        .map_err(|e| RuntimeError::docker("list tasks of service", service_id, e))?;
    tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Ok(tasks.into_iter().next())
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref()?.state
}

fn ended(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::SHUTDOWN
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::REMOVE
                | TaskState::ORPHANED
        )
    )
}

/// Why a task ended, as its status and its log say.
async fn task_error(engine: &Engine, guard: &ContainerGuard, task: &Task) -> RuntimeError {
    let status = task.status.clone().unwrap_or_default();
    let exit_code = status
        .container_status
        .as_ref()
        .and_then(|c| c.exit_code)
        .unwrap_or(-1);
    let why = status.err.or(status.message).unwrap_or_default();
    RuntimeError::ExitedAtStart {
        name: guard.name.clone(),
        exit_code,
        oom: "",
        logs: format!(
            "  (swarm: task {}: {why})\n{}",
            state(task).map(|s| s.to_string()).unwrap_or_default(),
            logs::tail(engine, &guard.id, 50).await
        ),
    }
}

/// Waits until the service's task runs, and returns where its port is published.
async fn wait_running(
    engine: &Engine,
    guard: &ContainerGuard,
    port: u16,
    deadline: Duration,
) -> Result<SocketAddr, RuntimeError> {
    let until = Instant::now() + deadline;
    let mut last = String::from("no task yet");
    while Instant::now() < until {
        if let Some(task) = task(engine, &guard.id).await? {
            if ended(state(&task)) {
                return Err(task_error(engine, guard, &task).await);
            }
            if state(&task) == Some(TaskState::RUNNING) {
                return published_address(engine, &task, port).await;
            }
            // Swarm may place a task on a node that has just gone, before it notices: the
            // task would wait there for good. Fail it, so the instance is tried again.
            if let Some(node) = task.node_id.as_deref() {
                if let Some(down) = node_down(engine, node).await {
                    return Err(RuntimeError::Cluster(format!(
                        "service {}'s task was placed on node {down}, which is not ready; it is tried again",
                        guard.name
                    )));
                }
            }
            last = format!(
                "task {}{}",
                state(&task).map(|s| s.to_string()).unwrap_or_default(),
                task.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(RuntimeError::HealthTimeout {
        name: guard.name.clone(),
        waited: humantime::format_duration(deadline).to_string(),
        last_ping: format!("none: the swarm task never ran ({last})"),
        logs: logs::tail(engine, &guard.id, 50).await,
    })
}

/// The node's name when it is not ready (down, disconnected or unknown).
async fn node_down(engine: &Engine, node_id: &str) -> Option<String> {
    let node = engine.docker.inspect_node(node_id).await.ok()?;
    let state = node.status.as_ref().and_then(|s| s.state);
    (state != Some(NodeState::READY)).then(|| {
        node.description
            .and_then(|d| d.hostname)
            .unwrap_or_else(|| node_id.to_string())
    })
}

/// The task's node address and the port its node published for `port`.
async fn published_address(
    engine: &Engine,
    task: &Task,
    port: u16,
) -> Result<SocketAddr, RuntimeError> {
    let name = task.name.clone().unwrap_or_default();
    let no_address = |detail: &str| RuntimeError::NoAddress {
        name: name.clone(),
        detail: detail.to_string(),
    };
    let published = task
        .status
        .as_ref()
        .and_then(|s| s.port_status.as_ref())
        .and_then(|p| p.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.target_port == Some(i64::from(port)))
                .and_then(|p| p.published_port)
        })
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| no_address("its task published no port"))?;
    let node_id = task
        .node_id
        .clone()
        .ok_or_else(|| no_address("its task has no node"))?;
    let node = engine
        .docker
        .inspect_node(&node_id)
        .await
        .map_err(|e| RuntimeError::docker("inspect node", &node_id, e))?;
    let ip: IpAddr = node
        .status
        .and_then(|s| s.addr)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| no_address("its node has no address"))?;
    Ok(SocketAddr::new(ip, published))
}

/// Resolves when the service's task has ended (polled; the manager's event stream does
/// not carry the containers of other nodes), with why.
async fn task_ended(engine: &Engine, guard: &ContainerGuard) -> RuntimeError {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match task(engine, &guard.id).await {
            Ok(Some(task)) if ended(state(&task)) => {
                return task_error(engine, guard, &task).await;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return RuntimeError::Cluster(format!("service {} has no task", guard.name))
            }
            Err(e) => return e,
        }
    }
}

/// The image a service runs: the serving image as the registry has it, with the model
/// tree at `/opt/ml/model` when the container has model data.
async fn service_image(
    engine: &Engine,
    cluster: &Cluster,
    spec: &ContainerSpec,
) -> Result<String, RuntimeError> {
    // The deployer has pulled it (Engine::ensure_image).
    let base = engine.image_name(&spec.image);
    let Some(model_dir) = &spec.model_dir else {
        return Ok(base);
    };
    let base_id = engine
        .docker
        .inspect_image(&base)
        .await
        .map_err(|e| RuntimeError::docker("inspect image", &base, e))?
        .id
        .unwrap_or_default();
    let model = spec
        .labels
        .get(labels::MODEL_SHA256)
        .cloned()
        .unwrap_or_else(|| model_dir.display().to_string());
    let digest = hex(&Sha256::digest(format!("{base_id}\n{model}").as_bytes()));
    let repository = format!("{}/sagedock-model", cluster.registry);
    let tag = digest[..16].to_string();
    let image = format!("{repository}:{tag}");
    if engine.docker.inspect_image(&image).await.is_err() {
        build_model_image(engine, &base, model_dir, &image).await?;
    }
    push(engine, &repository, &tag).await?;
    Ok(image)
}

async fn push(engine: &Engine, repository: &str, tag: &str) -> Result<(), RuntimeError> {
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    // The engine wants an X-Registry-Auth header even for a registry that asks for none.
    let mut stream = engine.docker.push_image(
        repository,
        Some(options),
        Some(DockerCredentials::default()),
    );
    while let Some(item) = stream.next().await {
        let failed = match item {
            Ok(info) => info.error_detail.and_then(|d| d.message),
            Err(e) => Some(e.to_string()),
        };
        if let Some(detail) = failed {
            return Err(RuntimeError::Pull {
                image: format!("{repository}:{tag}"),
                detail: format!("pushing it to the cluster's registry failed: {detail}"),
            });
        }
    }
    Ok(())
}

/// Builds `image` on the manager: `base` with `model_dir` copied to /opt/ml/model.
async fn build_model_image(
    engine: &Engine,
    base: &str,
    model_dir: &Path,
    image: &str,
) -> Result<(), RuntimeError> {
    let context = tempfile::tempfile().map_err(|e| RuntimeError::Cluster(e.to_string()))?;
    let (dockerfile, dir) = (
        format!("FROM {base}\nCOPY model /opt/ml/model\n"),
        model_dir.to_path_buf(),
    );
    let context = tokio::task::spawn_blocking(move || build_context(context, &dockerfile, &dir))
        .await
        .map_err(|e| RuntimeError::Cluster(e.to_string()))?
        .map_err(|e| {
            RuntimeError::Cluster(format!(
                "cannot pack the model tree for the model image: {e}"
            ))
        })?;
    let body = bollard::body_try_stream(read_chunks(tokio::fs::File::from_std(context)));
    let options = BuildImageOptionsBuilder::default()
        .t(image)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = engine.docker.build_image(options, None, Some(body));
    while let Some(item) = stream.next().await {
        let failed = match item {
            Ok(info) => info.error_detail.and_then(|d| d.message),
            Err(e) => Some(e.to_string()),
        };
        if let Some(detail) = failed {
            return Err(RuntimeError::Cluster(format!(
                "building the model image {image} from {base} failed: {detail}"
            )));
        }
    }
    Ok(())
}

/// The build context: a Dockerfile and the model tree under `model/`, as a tar file
/// rewound to its start.
fn build_context(
    file: std::fs::File,
    dockerfile: &str,
    model_dir: &Path,
) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let mut tar = tar::Builder::new(file);
    tar.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    tar.append_dir_all("model", model_dir)?;
    let mut file = tar.into_inner()?;
    file.rewind()?;
    Ok(file)
}

/// A file as a stream of chunks.
fn read_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((bytes::Bytes::from(buf), file)))
    })
}

/// The state of the service's newest task (`running`, `failed`, …), if it has one.
pub async fn task_state(engine: &Engine, service_id: &str) -> Option<String> {
    let task = task(engine, service_id).await.ok().flatten()?;
    state(&task).map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels() {
        assert_eq!(
            service_name("sagedock-e-v-g1-0-abc123"),
            "sagedock-e-v-g1-0-abc123"
        );
        let long = format!("sagedock-{}-variant-g1-0-abc123", "e".repeat(63));
        let name = service_name(&long);
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with("sagedock-eee"));
        assert_ne!(
            name,
            service_name(&format!("{long}x")),
            "distinct names stay distinct"
        );
    }

    #[test]
    fn what_a_swarm_cannot_run_is_refused_by_name() {
        let it = crate::runtime::instance::lookup("ml.m5.large").unwrap();
        let spec = ContainerSpec::new("c", "i", it).with_mount("/code", "/opt/ml/code");
        let err = check_supported(&spec).unwrap_err().to_string();
        assert!(err.contains("SAGEMAKER_SUBMIT_DIRECTORY"), "{err}");
        let job = ContainerSpec::job("j", "i", it, None, vec!["train".into()]);
        assert!(check_supported(&job)
            .unwrap_err()
            .to_string()
            .contains("a job"));
        assert!(check_supported(&ContainerSpec::new("c", "i", it)).is_ok());
    }

    #[test]
    fn the_build_context_holds_a_dockerfile_and_the_model_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/weights.bin"), b"w").unwrap();
        let file = build_context(tempfile::tempfile().unwrap(), "FROM x\n", dir.path()).unwrap();
        let mut archive = tar::Archive::new(file);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"Dockerfile".to_string()), "{names:?}");
        assert!(
            names.contains(&"model/sub/weights.bin".to_string()),
            "{names:?}"
        );
    }
}
