//! `sagedock serve`: one model, one image, N instances, deployed the way every endpoint is
//! (a plan run by the deployer), behind one local port until Ctrl-C.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::process::{finish, listen_and_connect, shutdown_signal};
use super::progress;
use super::{ContainerArgs, ServeArgs};
use crate::artifact::{Cache, ModelDir, Severity};
use crate::deploy::{
    Change, ContainerPlan, DeployOptions, Deployer, EndpointPlan, Fleet, LiveFleet, ModelSource,
    VariantPlan,
};
use crate::endpoint::Router;
use crate::error::{Error, Result};
use crate::framework::inspect::{self, Choice};
use crate::framework::Framework;
use crate::progress::Meter;
use crate::runtime::{self, instance, owner, Engine, InstanceType};
use crate::server::{self, App};
use crate::storage::Storage;

/// The account serve answers as.
const ACCOUNT: &str = "123456789012";

/// Parses `K=V` pairs.
pub(super) fn parse_env(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Error::Argument(format!("--env {p}: expected NAME=VALUE")))
        })
        .collect()
}

/// Checks `--model` with the rules of the image's stack (the generic ones for an image of
/// your own) and prints its errors and warnings; they do not stop the start, as SageMaker
/// would not stop either.
async fn prepare_model(
    path: &Path,
    image: &str,
    limits: crate::artifact::Limits,
    meter: Option<Arc<Meter>>,
) -> Result<ModelDir> {
    let (path, choice) = (
        path.to_path_buf(),
        Choice::Named(Framework::of_image(image)),
    );
    let line = progress::show(&meter);
    let cache = Cache::from_env()?.with_meter(meter);
    let checked =
        tokio::task::spawn_blocking(move || inspect::check(&path, choice, &limits, &cache))
            .await
            .map_err(|e| Error::Argument(format!("checking the model failed: {e}")))?;
    drop(line);
    let checked = checked?;
    for f in checked
        .report
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
    checked.model.ok_or_else(|| {
        let why = checked
            .report
            .findings
            .first()
            .map_or_else(String::new, |f| f.message.clone());
        Error::Argument(format!("the model cannot be unpacked: {why}"))
    })
}

/// The image made present (pulled with `--pull`) and `--model` checked and unpacked (see
/// [`prepare_model`]), or no model: what `serve` and `check` do before a start. The pull
/// and the unpacking are told to `meter`.
pub(super) async fn image_and_model(
    engine: &Engine,
    image: &str,
    container: &ContainerArgs,
    limits: crate::artifact::Limits,
    meter: Option<Arc<Meter>>,
) -> Result<ModelSource> {
    let line = progress::show(&meter);
    let present = engine
        .ensure_image(image, container.pull, meter.as_deref())
        .await;
    drop(line);
    present?;
    Ok(match container.model.as_deref() {
        Some(path) => ModelSource::Folder(prepare_model(path, image, limits, meter).await?),
        None => ModelSource::None,
    })
}

/// The arguments `serve` checks before anything starts: the instance type, and the
/// environment within SageMaker's limits (with the variables sagedock adds).
fn checked_arguments(args: &ServeArgs) -> Result<(InstanceType, BTreeMap<String, String>)> {
    let instance_type = instance::lookup(&args.container.instance_type).map_err(Error::Argument)?;
    let environment = parse_env(&args.container.env)?;
    let mut checked_env = environment.clone();
    checked_env.insert("AWS_REGION".into(), args.container.region.clone());
    checked_env.insert("AWS_DEFAULT_REGION".into(), args.container.region.clone());
    runtime::spec::validate_env(&checked_env)?;
    if args.instance_count == 0 {
        return Err(Error::Argument(
            "--instance-count must be at least 1".into(),
        ));
    }
    Ok((instance_type, environment))
}

/// What `serve` runs: one variant of `--instance-count` instances of the image.
fn plan(
    args: &ServeArgs,
    instance_type: InstanceType,
    environment: BTreeMap<String, String>,
    model: ModelSource,
) -> EndpointPlan {
    let variant = VariantPlan::new(
        &args.variant,
        instance_type,
        ContainerPlan::new(&args.image, environment, model),
    )
    .with_instance_count(args.instance_count)
    .with_health_timeout(args.health_timeout)
    .with_network_isolation(args.network_isolation);
    EndpointPlan::single(&args.name, variant)
}

pub async fn serve(args: &ServeArgs) -> Result<ExitCode> {
    // Arguments first: nothing starts for a bad one.
    let (instance_type, environment) = checked_arguments(args)?;
    let (listener, engine) = listen_and_connect(&args.bind, args.port, None).await?;
    let local = listener.local_addr()?;
    let meter = progress::meter();
    let model = image_and_model(
        &engine,
        &args.image,
        &args.container,
        args.limits.limits(),
        meter.clone(),
    )
    .await?;
    let plan = plan(args, instance_type, environment, model);
    let options = DeployOptions {
        pull: args.container.pull,
        cpu_only: args.container.cpu_only,
        capacity: args.capacity.capacity(engine.memory_bytes),
        health_check_interval: args.health_check_interval,
        serverless_idle: DeployOptions::SERVERLESS_IDLE,
        images: std::sync::Arc::default(),
        meter: meter.clone(),
    };
    let deployer = Arc::new(Deployer::new(
        engine.clone(),
        Cache::from_env()?,
        Storage::None,
        owner::current(),
        args.container.region.clone(),
        options,
    ));
    let t0 = Instant::now();
    let line = progress::show(&meter);
    let fleet: Fleet = tokio::select! {
        launched = deployer.launch(&plan) => {
            drop(line);
            launched?
        }
        () = shutdown_signal() => {
            drop(line);
            eprintln!("interrupted while starting: removing containers");
            finish(deployer.shut_down()).await;
            return Ok(ExitCode::from(130));
        }
    };
    print_ready(args, &fleet, instance_type, local, t0.elapsed())?;
    let prefix = format!("{}/{}", args.name, args.variant);
    for (i, inst) in fleet.containers().enumerate() {
        follow_log(&engine, &inst.guard.id, format!("{prefix}/{i}"));
    }
    let router = Arc::new(Router::new(ACCOUNT, &args.container.region));
    let live = LiveFleet::start(deployer.clone(), router.clone(), plan, fleet);
    tokio::spawn(report_changes(live.changes(), engine.clone(), prefix));
    let app = App::new(router.clone(), None);
    let server = tokio::spawn(server::serve(listener, app, server::Limits::default()));
    shutdown_signal().await;
    server.abort();
    router.withdraw(&args.name);
    eprintln!("stopping: removing the containers");
    finish(async {
        live.remove().await;
        deployer.shut_down().await;
    })
    .await;
    Ok(ExitCode::SUCCESS)
}

/// Streams a container's log to stderr, each line prefixed.
fn follow_log(engine: &Engine, container: &str, prefix: String) {
    tokio::spawn(runtime::logs::follow(
        engine.clone(),
        container.to_string(),
        prefix,
        "all".into(),
        true,
    ));
}

/// Prints what happens to the instances, and follows a replacement's log.
async fn report_changes(
    mut changes: tokio::sync::broadcast::Receiver<Change>,
    engine: Engine,
    prefix: String,
) {
    while let Ok(change) = changes.recv().await {
        match change {
            Change::Lost {
                container, reason, ..
            } => eprintln!(
                "instance {container} is out of rotation: {reason}; starting a replacement"
            ),
            Change::Replaced {
                container,
                replaced,
                took,
                ..
            } => {
                eprintln!(
                    "instance {container} replaced {replaced}, healthy after {:.2} s",
                    took.as_secs_f64()
                );
                for name in container.split(", ") {
                    follow_log(&engine, name, prefix.clone());
                }
            }
            Change::ReplacementFailed {
                replaced, reason, ..
            } => eprintln!("replacing {replaced} failed: {reason}; trying again"),
        }
    }
}

fn print_ready(
    args: &ServeArgs,
    fleet: &Fleet,
    instance_type: InstanceType,
    local: std::net::SocketAddr,
    took: Duration,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "endpoint {}: {} instance(s) of {} ready in {:.2} s ({instance_type})",
        args.name,
        fleet.instances(),
        args.image,
        took.as_secs_f64()
    )?;
    writeln!(out, "  POST http://{local}/invocations")?;
    writeln!(
        out,
        "  POST http://{local}/endpoints/{}/invocations",
        args.name
    )?;
    for inst in fleet.containers() {
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
