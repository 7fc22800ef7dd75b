//! The container commands: serve, ps, logs, gc.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::try_join_all;
use tokio::net::TcpListener;

use super::{GcArgs, LogsArgs, PsArgs, ServeArgs};
use crate::artifact::inspect::{self, Severity, Source};
use crate::artifact::tree::Tree;
use crate::artifact::Cache;
use crate::endpoint::{self, App, Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Router};
use crate::runtime::{
    self, gc, instance, labels, ContainerSpec, Engine, Instance, ReadyPolicy, RuntimeError,
};
use crate::{Error, Result};

/// Parses `K=V` pairs.
fn parse_env(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Error::Usage(format!("--env {p}: expected NAME=VALUE")))
        })
        .collect()
}

/// A short random id for this run (names and labels).
pub(super) fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))[..6].to_string()
}

/// Resolves `--model`: an archive goes through the cache, a directory is used as it is.
/// Prints the artifact's errors and warnings (they do not stop the start: SageMaker would
/// not stop either).
pub(super) async fn prepare_model(
    path: &Path,
    limits: crate::artifact::Limits,
) -> Result<(std::path::PathBuf, String)> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (dir, sha, source) = if meta.is_dir() {
            let dir = path.canonicalize().map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            (dir, String::new(), Source::Directory(path.clone()))
        } else {
            let cached = Cache::from_env()?.unpack(&path, &limits)?;
            (
                cached.model_dir,
                cached.sha256,
                Source::Archive(path.clone()),
            )
        };
        if let Ok(tree) = Tree::scan(&dir) {
            let report = inspect::inspect(&tree, &source, None);
            for f in report
                .findings
                .iter()
                .filter(|f| f.severity != Severity::Info)
            {
                eprintln!(
                    "{}[{}] {}: {}",
                    f.severity.as_str(),
                    f.code,
                    f.path,
                    f.message
                );
            }
        }
        Ok((dir, sha))
    })
    .await
    .expect("model preparation panicked")
}

/// N containers of one image and model, as `serve` and `ci` start them.
pub(super) struct Start<'a> {
    pub name: &'a str,
    pub variant: &'a str,
    pub image: &'a str,
    /// The unpacked model and its archive's sha256 (empty for a directory).
    pub model: Option<(&'a Path, &'a str)>,
    pub instance_type: crate::runtime::InstanceType,
    pub count: usize,
    pub env: &'a BTreeMap<String, String>,
    pub network_isolation: bool,
    pub cpu_only: bool,
    pub health_timeout: Duration,
}

/// The containers' environment: `AWS_REGION` and `AWS_DEFAULT_REGION`, then the user's,
/// checked against SageMaker's limits.
pub(super) fn container_env(
    region: &str,
    user: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::from([
        ("AWS_REGION".to_string(), region.to_string()),
        ("AWS_DEFAULT_REGION".to_string(), region.to_string()),
    ]);
    env.extend(user);
    runtime::spec::validate_env(&env)?;
    Ok(env)
}

/// Starts every instance and waits until each is healthy; on any failure the ones already
/// started are removed (their guards drop).
pub(super) async fn start_instances(engine: &Engine, start: &Start<'_>) -> Result<Vec<Instance>> {
    let run = run_id();
    let specs: Vec<ContainerSpec> = (0..start.count)
        .map(|i| {
            let mut spec = ContainerSpec::new(
                format!("sagedock-{}-{}-{i}-{run}", start.name, start.variant),
                start.image,
                start.instance_type,
            )
            .with_env(start.env.clone())
            .with_label(labels::ENDPOINT, start.name)
            .with_label(labels::VARIANT, start.variant)
            .with_label(labels::INSTANCE, i.to_string())
            .with_label(labels::RUN, &run)
            .with_label(labels::MODEL_SHA256, start.model.map_or("", |m| m.1))
            .with_network_isolation(start.network_isolation)
            .with_cpu_only(start.cpu_only);
            if let Some((dir, _)) = start.model {
                spec = spec.with_model_dir(dir);
            }
            spec
        })
        .collect();
    let policy = ReadyPolicy {
        deadline: start.health_timeout,
        ..Default::default()
    };
    let launching = specs
        .iter()
        .map(|spec| runtime::launch(engine, spec, policy));
    Ok(try_join_all(launching).await?)
}

/// The endpoint a set of healthy instances makes: one variant, all traffic.
pub(super) fn live_endpoint(name: &str, variant: &str, instances: &[Instance]) -> LiveEndpoint {
    LiveEndpoint {
        name: name.to_string(),
        async_output: None,
        variants: vec![LiveVariant::new(
            variant,
            1.0,
            Mode::Single,
            instances
                .iter()
                .map(|i| LiveInstance::single(Backend::new(&i.guard.name, i.addr)))
                .collect(),
            None,
        )],
    }
}

pub async fn serve(args: &ServeArgs) -> Result<ExitCode> {
    let instance_type =
        instance::lookup(&args.instance_type).map_err(RuntimeError::InstanceType)?;
    let env = container_env(&args.region, parse_env(&args.env)?)?;
    if args.instance_count == 0 {
        return Err(Error::Usage("--instance-count must be at least 1".into()));
    }
    let (listener, engine) = listen_and_connect(&args.bind, args.port).await?;
    let local = listener.local_addr()?;
    engine.ensure_image(&args.image, args.pull).await?;
    let model = match &args.model {
        Some(path) => Some(prepare_model(path, args.limits.limits()).await?),
        None => None,
    };
    let start = Start {
        name: &args.name,
        variant: &args.variant,
        image: &args.image,
        model: model
            .as_ref()
            .map(|(dir, sha)| (dir.as_path(), sha.as_str())),
        instance_type,
        count: args.instance_count as usize,
        env: &env,
        network_isolation: args.network_isolation,
        cpu_only: args.cpu_only,
        health_timeout: args.health_timeout,
    };
    let t0 = Instant::now();
    let instances: Vec<Instance> = tokio::select! {
        result = start_instances(&engine, &start) => result?,
        () = shutdown_signal() => {
            eprintln!("interrupted while starting: removing containers");
            return Ok(ExitCode::from(130));
        }
    };
    print_ready(args, &instances, instance_type, local, t0.elapsed())?;
    for (i, inst) in instances.iter().enumerate() {
        let prefix = format!("{}/{}/{i}", args.name, args.variant);
        tokio::spawn(runtime::logs::follow(
            engine.clone(),
            inst.guard.id.clone(),
            prefix,
            "all".into(),
            true,
        ));
    }
    let router = Router::new("123456789012", &args.region);
    router.publish(live_endpoint(&args.name, &args.variant, &instances));
    let server = tokio::spawn(endpoint::serve(listener, App::new(router, None)));
    let code = tokio::select! {
        () = shutdown_signal() => ExitCode::SUCCESS,
        name = first_exit(&engine, &instances) => {
            eprintln!("instance {name} stopped; shutting the endpoint down");
            ExitCode::from(1)
        }
    };
    server.abort();
    eprintln!("stopping {} container(s)", instances.len());
    let removals = instances.into_iter().map(|i| i.guard.remove());
    for result in futures_util::future::join_all(removals).await {
        result?;
    }
    Ok(code)
}

fn print_ready(
    args: &ServeArgs,
    instances: &[Instance],
    instance_type: crate::runtime::InstanceType,
    local: std::net::SocketAddr,
    took: Duration,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "endpoint {}: {} instance(s) of {} ready in {:.2} s ({instance_type})",
        args.name,
        instances.len(),
        args.image,
        took.as_secs_f64()
    )?;
    writeln!(out, "  POST http://{local}/invocations")?;
    writeln!(
        out,
        "  POST http://{local}/endpoints/{}/invocations",
        args.name
    )?;
    for inst in instances {
        let published = inst
            .published
            .map(|p| format!(", published {p}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  instance {} at {}{published}, healthy after {:.2} s",
            inst.guard.name,
            inst.addr,
            inst.ready_after.as_secs_f64()
        )?;
    }
    writeln!(out, "Ctrl-C stops and removes the containers.")?;
    out.flush()?;
    Ok(())
}

/// Resolves with the name of the first instance whose container stops.
async fn first_exit(engine: &Engine, instances: &[Instance]) -> String {
    use futures_util::StreamExt;
    let waits = instances.iter().map(|inst| {
        let options = bollard::query_parameters::WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = engine.docker.wait_container(&inst.guard.id, Some(options));
        let name = inst.guard.name.clone();
        Box::pin(async move {
            let _ = stream.next().await;
            name
        })
    });
    futures_util::future::select_all(waits).await.0
}

/// Binds the API port (failing fast when it is taken), connects to the engine and removes
/// the containers of runs that are gone: what `serve` and `up` do first.
pub async fn listen_and_connect(bind: &str, port: u16) -> Result<(TcpListener, Engine)> {
    let listener = TcpListener::bind((bind, port)).await.map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {bind}:{port} ({e}); choose another --port"
        ))
    })?;
    let engine = Engine::connect().await?;
    let orphans = gc::gc(&engine, gc::Sweep::ProcessOrphans).await?;
    if !orphans.is_empty() {
        eprintln!(
            "removed {} container(s) left by runs that are gone: {}",
            orphans.len(),
            orphans.join(", ")
        );
    }
    Ok((listener, engine))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn ps(args: &PsArgs) -> Result<ExitCode> {
    let engine = Engine::connect().await?;
    let found = gc::list(&engine).await?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &found).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<40} {:<14} {:<12} {:<24} {:<9} {:>8} {:>6}  OWNER",
        "NAME", "ENDPOINT", "VARIANT", "IMAGE", "STATE", "AGE", "PORT"
    )?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for c in &found {
        let age =
            humantime::format_duration(Duration::from_secs((now - c.created_unix).max(0) as u64))
                .to_string();
        let age = age.split_whitespace().next().unwrap_or("").to_string();
        writeln!(
            out,
            "{:<40} {:<14} {:<12} {:<24} {:<9} {:>8} {:>6}  {}",
            c.name,
            c.endpoint,
            c.variant,
            c.image,
            c.state,
            age,
            c.host_port
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            if c.owner_alive {
                "running"
            } else {
                "gone (sagedock gc removes it)"
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(args: &LogsArgs) -> Result<ExitCode> {
    let engine = Engine::connect().await?;
    let found = gc::list(&engine).await?;
    let chosen: Vec<_> = found
        .iter()
        .filter(|c| c.name == args.name || c.endpoint == args.name || c.id.starts_with(&args.name))
        .collect();
    if chosen.is_empty() {
        return Err(Error::Usage(format!(
            "no sagedock container or endpoint named '{}'; `sagedock ps` lists them",
            args.name
        )));
    }
    let tail = args
        .tail
        .map(|n| n.to_string())
        .unwrap_or_else(|| "all".into());
    let tasks = chosen.iter().map(|c| {
        let prefix = if chosen.len() > 1 {
            c.name.clone()
        } else {
            String::new()
        };
        tokio::spawn(runtime::logs::follow(
            engine.clone(),
            c.id.clone(),
            prefix,
            tail.clone(),
            args.follow,
        ))
    });
    let all = futures_util::future::join_all(tasks);
    tokio::select! {
        _ = all => {}
        () = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(args: &GcArgs) -> Result<ExitCode> {
    let engine = Engine::connect().await?;
    let sweep = if args.all {
        gc::Sweep::All
    } else {
        gc::Sweep::Orphans
    };
    let removed = gc::gc(&engine, sweep).await?;
    if args.json {
        println!("{}", serde_json::json!({ "removed": removed }));
    } else if removed.is_empty() {
        println!("nothing to remove");
    } else {
        println!(
            "removed {} container(s): {}",
            removed.len(),
            removed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
