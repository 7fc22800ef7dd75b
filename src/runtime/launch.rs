//! Starting one container; for a serving container, waiting until it is healthy; for a
//! job's, waiting for its exit or stopping it.
//!
//! Readiness is one explicit condition — `GET /ping` answers 200 — polled every 10 ms at
//! first, backing off to 500 ms, under one deadline. While it polls, it also waits on the
//! container: an exit (or OOM kill) during start-up is reported at once with the exit code,
//! the OOM flag and the last 50 log lines; a timeout reports the last `/ping` answer and
//! the log tail.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{CreateContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::guard::ContainerGuard;
use super::spec::ContainerSpec;
use super::{logs, Engine, RuntimeError};

/// How long and how often to wait for health, and where to tell how the wait goes.
#[derive(Debug, Clone)]
pub struct ReadyPolicy {
    pub deadline: Duration,
    pub first_interval: Duration,
    pub max_interval: Duration,
    /// Told the last `/ping` answer while the wait lasts.
    pub meter: Option<std::sync::Arc<crate::progress::Meter>>,
}

impl Default for ReadyPolicy {
    fn default() -> Self {
        ReadyPolicy {
            deadline: Duration::from_secs(600),
            first_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(500),
            meter: None,
        }
    }
}

/// A running, healthy serving container.
#[derive(Debug)]
pub struct Instance {
    pub guard: ContainerGuard,
    /// Its address on its network, reserved while anyone may still send to it.
    pub lease: Option<std::sync::Arc<super::network::Lease>>,
    /// Where sagedock sends requests.
    pub addr: SocketAddr,
    /// The port published on 127.0.0.1, when there is one.
    pub published: Option<SocketAddr>,
    /// Time from the container's start (its process running) to the first accepted TCP
    /// connection on the serving port, as closely as the health polling saw it.
    pub listening_after: Option<Duration>,
    /// Time from create to the first healthy `/ping`.
    pub ready_after: Duration,
}

/// Creates, starts and waits for one container. On any failure the container is removed
/// before the error returns (a failed endpoint leaves nothing running behind it).
/// (On a swarm, [`super::swarm::launch`] does the same with a service.)
pub async fn launch(
    engine: &Engine,
    spec: &ContainerSpec,
    policy: ReadyPolicy,
) -> Result<Instance, RuntimeError> {
    let t0 = Instant::now();
    let guard = start(engine, spec).await?;
    match until_healthy(engine, spec, policy, &guard).await {
        Ok((addr, published, listening_after)) => Ok(Instance {
            guard,
            lease: spec.network.clone(),
            addr,
            published,
            listening_after: Some(listening_after),
            ready_after: t0.elapsed(),
        }),
        Err(e) => {
            if let Err(removal) = guard.remove().await {
                tracing::warn!(error = %removal, "could not remove a container that failed to start; `sagedock gc` will");
            }
            Err(e)
        }
    }
}

/// Waits for a started container to answer `/ping`: its address, its published port and
/// how long after its start it first accepted a connection.
async fn until_healthy(
    engine: &Engine,
    spec: &ContainerSpec,
    policy: ReadyPolicy,
    guard: &ContainerGuard,
) -> Result<(SocketAddr, Option<SocketAddr>, Duration), RuntimeError> {
    let started = Instant::now();
    let info = match engine.docker.inspect_container(&guard.id, None).await {
        Ok(info) if info.state.as_ref().and_then(|s| s.running).unwrap_or(false) => info,
        Ok(_) => return Err(exited(engine, guard).await),
        // A state the API's schema does not have (Podman's `stopped`): not running.
        Err(
            bollard::errors::Error::JsonDataError { .. }
            | bollard::errors::Error::JsonSerdeError { .. },
        ) => return Err(exited(engine, guard).await),
        Err(e) => return Err(RuntimeError::docker("inspect container", &guard.name, e)),
    };
    let (addr, published) = address(engine, &info, spec.isolated(), &spec.name, spec.port)?;
    let listening = wait_until_healthy(engine, guard, addr, policy, exited(engine, guard)).await?;
    Ok((
        addr,
        published,
        listening.saturating_duration_since(started),
    ))
}

/// Creates and starts one container, owned by the guard from the moment it exists. Not on
/// a swarm, whose instances are services (a job's containers would be neither listed nor
/// removed there).
pub async fn start(engine: &Engine, spec: &ContainerSpec) -> Result<ContainerGuard, RuntimeError> {
    if engine.cluster.is_some() {
        return Err(RuntimeError::Cluster(format!(
            "{} would run as a lone container, which a swarm does not run yet (training jobs are such); run it with the default engine (no --engine swarm)",
            spec.name
        )));
    }
    let body = spec.create_body(engine.cpus, engine.nvidia_runtime)?;
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| RuntimeError::docker("create container for image", &spec.image, e))?;
    let guard = ContainerGuard::new(engine.clone(), created.id, spec.name.clone());
    if let Err(e) = engine.docker.start_container(&guard.id, None).await {
        let _ = guard.remove().await;
        return Err(RuntimeError::docker("start container", &spec.name, e));
    }
    Ok(guard)
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    /// Killed for going over its memory limit.
    pub oom_killed: bool,
}

/// Waits until the container is no longer running, and says how it ended: as its state
/// says, or, where the engine's state cannot be read (Podman reports a state, `stopped`,
/// that Docker's API does not have), as the wait's answer says.
pub async fn wait_exit(engine: &Engine, guard: &ContainerGuard) -> Result<Exit, RuntimeError> {
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut waiting = engine.docker.wait_container(&guard.id, Some(options));
    // The engine reports a non-zero exit as an error item.
    let waited = match waiting.next().await {
        Some(Ok(answer)) => Some(answer.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
        _ => None,
    };
    match inspect(engine, guard).await {
        Ok(info) => {
            let state = info.state;
            Ok(Exit {
                code: state
                    .as_ref()
                    .and_then(|s| s.exit_code)
                    .or(waited)
                    .unwrap_or(-1),
                oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            })
        }
        Err(e) => waited
            .map(|code| Exit {
                code,
                oom_killed: false,
            })
            .ok_or(e),
    }
}

/// Asks a container to stop: SIGTERM, then SIGKILL after `grace` seconds.
pub async fn stop(engine: &Engine, guard: &ContainerGuard, grace: i32) -> Result<(), RuntimeError> {
    let options = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(grace)
        .build();
    match engine.docker.stop_container(&guard.id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if super::engine::is_not_found(&e) => Ok(()),
        // 304: it had stopped already.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        Err(e) => Err(RuntimeError::docker("stop container", &guard.name, e)),
    }
}

async fn inspect(
    engine: &Engine,
    guard: &ContainerGuard,
) -> Result<ContainerInspectResponse, RuntimeError> {
    engine
        .docker
        .inspect_container(&guard.id, None)
        .await
        .map_err(|e| RuntimeError::docker("inspect container", &guard.name, e))
}

/// The address to use (the bridge address when the engine is local and the platform
/// routes to it, else the published port) and the published port.
pub fn address(
    engine: &Engine,
    info: &ContainerInspectResponse,
    isolated: bool,
    name: &str,
    port: u16,
) -> Result<(SocketAddr, Option<SocketAddr>), RuntimeError> {
    let net = info.network_settings.as_ref();
    let published: Option<SocketAddr> = net
        .and_then(|n| n.ports.as_ref())
        .and_then(|p| p.get(&format!("{port}/tcp")))
        .and_then(|b| b.as_ref())
        .and_then(|v| {
            v.iter()
                .find_map(|b| b.host_port.as_deref()?.parse::<u16>().ok())
        })
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let bridge: Option<SocketAddr> = net
        .and_then(|n| n.networks.as_ref())
        .and_then(|m| {
            m.values()
                .find_map(|e| e.ip_address.as_deref()?.parse().ok())
        })
        .map(|ip: std::net::IpAddr| SocketAddr::new(ip, port));
    let direct = engine.local && cfg!(target_os = "linux");
    let chosen = match (direct || isolated, bridge, published) {
        (true, Some(b), _) => Some(b),
        (_, _, Some(p)) => Some(p),
        (false, Some(b), None) => Some(b),
        _ => None,
    };
    let detail = if isolated && !direct {
        "network isolation needs a local engine on Linux, where container addresses are reachable"
    } else {
        "no published port and no network address"
    };
    chosen
        .map(|a| (a, published))
        .ok_or_else(|| RuntimeError::NoAddress {
            name: name.to_string(),
            detail: detail.into(),
        })
}

/// Resolves when the container is no longer running, with the error that says how it
/// ended.
async fn exited(engine: &Engine, guard: &ContainerGuard) -> RuntimeError {
    let exit = wait_exit(engine, guard).await.ok();
    RuntimeError::ExitedAtStart {
        name: guard.name.clone(),
        exit_code: exit.map_or(-1, |e| e.code),
        oom: if exit.is_some_and(|e| e.oom_killed) {
            " (OOM-killed: the instance type has too little memory)"
        } else {
            ""
        },
        logs: logs::tail(engine, &guard.id, 50).await,
    }
}

/// Polls `/ping` until it answers 200, `died` resolves (the container, or on a swarm its
/// task, ended), or the deadline passes. Returns when the port first accepted a connection.
pub async fn wait_until_healthy(
    engine: &Engine,
    guard: &ContainerGuard,
    addr: SocketAddr,
    policy: ReadyPolicy,
    died: impl std::future::Future<Output = RuntimeError>,
) -> Result<Instant, RuntimeError> {
    tokio::pin!(died);
    let mut last_ping: String;
    let mut interval = policy.first_interval;
    let deadline = tokio::time::Instant::now() + policy.deadline;
    let mut listening = None;
    let waiting_since = Instant::now();
    if let Some(meter) = &policy.meter {
        meter.start(format!("waiting for {} to answer /ping", guard.name), None);
    }
    loop {
        let asked = Instant::now();
        let answer = ping(addr).await;
        if answer
            .as_ref()
            .map_or_else(PingFailure::connected, |_| true)
        {
            listening.get_or_insert(asked);
        }
        match answer {
            Ok(200) => return Ok(listening.unwrap_or(asked)),
            Ok(status) => last_ping = format!("HTTP {status}"),
            Err(e) => last_ping = e.to_string(),
        }
        if let Some(meter) = &policy.meter {
            meter.note(format!(
                "waiting for {} to answer /ping: {last_ping} after {:.0} s",
                guard.name,
                waiting_since.elapsed().as_secs_f64()
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            error = &mut died => return Err(error),
            _ = tokio::time::sleep_until(deadline) => {
                return Err(RuntimeError::HealthTimeout {
                    name: guard.name.clone(),
                    waited: humantime::format_duration(policy.deadline).to_string(),
                    last_ping,
                    logs: logs::tail(engine, &guard.id, 50).await,
                });
            }
        }
        interval = (interval * 3 / 2).min(policy.max_interval);
    }
}

/// Why a `GET /ping` got no status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingFailure {
    /// No TCP connection within [`CONNECT_TIMEOUT`].
    Connect(String),
    /// Connected, but no HTTP answer within [`PING_TIMEOUT`].
    Answer(String),
}

impl PingFailure {
    /// True when the port accepted the connection.
    pub fn connected(&self) -> bool {
        matches!(self, PingFailure::Answer(_))
    }
}

impl std::fmt::Display for PingFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PingFailure::Connect(why) | PingFailure::Answer(why) => f.write_str(why),
        }
    }
}

/// SageMaker's limits on a health check: a connection accepted within 250 ms, an answer
/// within 2 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// One `GET /ping`: the status code, or why there was none, under SageMaker's limits.
pub async fn ping(addr: SocketAddr) -> Result<u16, PingFailure> {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr));
    let mut stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(PingFailure::Connect(format!("connect {addr}: {e}"))),
        Err(_) => {
            return Err(PingFailure::Connect(format!(
                "connect {addr}: no answer within 250 ms"
            )))
        }
    };
    let exchange = async {
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() > 4096 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(head)
    };
    let head = match tokio::time::timeout(PING_TIMEOUT, exchange).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(PingFailure::Answer(format!("GET /ping: {e}"))),
        Err(_) => {
            return Err(PingFailure::Answer(
                "GET /ping: no answer within 2 s".into(),
            ))
        }
    };
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            PingFailure::Answer(if head.is_empty() {
                "GET /ping: connection closed without an answer".to_string()
            } else {
                format!("GET /ping: not HTTP: {}", line.lines().next().unwrap_or(""))
            })
        })
}
