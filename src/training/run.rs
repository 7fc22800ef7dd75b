//! One training job from `Starting` to its end: the trees and the data (`Downloading`),
//! the containers run to their exit while their output is recorded and read for metrics
//! (`Training`), the model uploaded (`Uploading`), then `Completed`, `Failed` or
//! `Stopped`. Whatever happens, the containers and the job's folder are removed at the end
//! (`SAGEDOCK_KEEP=1` keeps both, for debugging).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use tokio::sync::watch;

use super::channels;
use super::metrics::Metrics;
use super::output;
use super::workspace::{self, HostTree};
use super::{Trainer, STOP_GRACE_SECS};
use crate::artifact::unpack::unpack;
use crate::artifact::Limits;
use crate::logs::{training_stream, TRAINING_JOBS_GROUP};
use crate::runtime::guard::keep_requested;
use crate::runtime::instance::lookup;
use crate::runtime::launch::{start, stop, wait_exit};
use crate::runtime::{labels, ContainerGuard, ContainerSpec, Exit};
use crate::state::training_job::SecondaryStatus;
use crate::state::{now, TrainingJob};
use crate::storage::{ModelLocation, S3Location};
use crate::sync::locked;

/// How the containers' run ended.
enum Ending {
    /// Every container exited; their exits in host order.
    Exited(Vec<Exit>),
    /// Asked to stop, or out of time: stopped, their model still kept.
    Stopped(SecondaryStatus),
}

/// Runs `job` to its end, writing its record as it goes.
pub async fn run(trainer: &Arc<Trainer>, job: TrainingJob, mut stop_rx: watch::Receiver<bool>) {
    let name = job.name.clone();
    let folder = trainer.work.join(&name);
    let result = execute(trainer, &job, &folder, &mut stop_rx).await;
    if let Err(reason) = result {
        trainer.update(&name, |j| j.fail(&reason, now()));
    }
    if !keep_requested() {
        let folder = folder.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(folder)).await;
    }
}

/// The job's trees with their data, ready for its containers.
struct Prepared {
    hosts: Vec<String>,
    trees: Vec<HostTree>,
    instance_type: crate::runtime::InstanceType,
    /// Per host: the read-only mounts of its FastFile channels.
    read_only: Vec<Vec<(PathBuf, String)>>,
    /// Whether `/opt/ml/code` holds the SDK's code.
    has_code: bool,
}

fn internal(e: &dyn std::fmt::Display) -> String {
    format!("InternalServerError: {e}")
}

/// Everything up to the final status; an error is the FailureReason.
async fn execute(
    trainer: &Arc<Trainer>,
    job: &TrainingJob,
    folder: &std::path::Path,
    stop_rx: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let advance = |status| {
        trainer.update(&job.name, |j| j.advance(status, now()));
    };
    let prepared = prepare(trainer, job, folder, &advance).await?;
    if *stop_rx.borrow() {
        advance(SecondaryStatus::Stopping);
        advance(SecondaryStatus::Stopped);
        return Ok(());
    }
    let isolated = job.spec.network_isolation();
    let mut leases = Vec::with_capacity(prepared.trees.len());
    for _ in &prepared.trees {
        leases.push(
            trainer
                .networks
                .lease(isolated)
                .await
                .map_err(|e| internal(&e))?,
        );
    }
    let specs = containers(trainer, job, &prepared, &leases);
    let trees = prepared.trees;
    let spec = &job.spec;
    let definitions = spec
        .algorithm_specification
        .metric_definitions
        .clone()
        .unwrap_or_default();
    let metrics = Arc::new(Mutex::new(
        Metrics::new(&definitions).map_err(|e| format!("ClientError: {e}"))?,
    ));
    trainer.publish(&job.name, metrics.clone());
    let mut guards: Vec<ContainerGuard> = Vec::with_capacity(specs.len());
    let mut copies = Vec::with_capacity(specs.len());
    advance(SecondaryStatus::Training);
    let started = SystemTime::now();
    for (container, tree) in specs.iter().zip(&trees) {
        let guard = match start(&trainer.engine, container).await {
            Ok(guard) => guard,
            Err(e) => {
                remove_all(guards).await;
                return Err(format!("ClientError: {e}"));
            }
        };
        let stream = training_stream(&job.name, &tree.host, started);
        let (engine, record, metrics, id) = (
            trainer.engine.clone(),
            trainer.record.clone(),
            metrics.clone(),
            guard.id.clone(),
        );
        copies.push(tokio::spawn(async move {
            crate::logs::collect::copy(
                &engine,
                &id,
                &record,
                TRAINING_JOBS_GROUP,
                &stream,
                |events| {
                    locked(&metrics).observe(events);
                },
            )
            .await;
        }));
        guards.push(guard);
    }

    let syncing = sync_checkpoints(trainer, job, &trees);
    let ending = wait(
        trainer,
        &guards,
        spec.stopping_condition.max_runtime(),
        stop_rx,
        &advance,
    )
    .await;
    // The output is complete once each follow has reached its end.
    for copy in copies {
        let _ = copy.await;
    }
    let finals = locked(&metrics).final_values();
    trainer.update(&job.name, |j| j.final_metrics = finals);
    if let Some(syncing) = syncing {
        syncing.abort();
    }
    // The containers are gone before the model is read (and whatever happens next).
    remove_all(guards).await;
    drop(leases);
    let end = match ending {
        Ok(Ending::Exited(exits)) => {
            if let Some((exit, tree)) = exits.iter().zip(&trees).find(|(e, _)| e.code != 0) {
                return Err(failure(trainer, job, tree, exit).await);
            }
            SecondaryStatus::Completed
        }
        Ok(Ending::Stopped(end)) => end,
        Err(e) => return Err(internal(&e)),
    };
    advance(SecondaryStatus::Uploading);
    upload(trainer, job, &trees, folder)
        .await
        .map_err(|e| e.to_string())?;
    advance(end);
    Ok(())
}

/// Starting and Downloading: the trees, their configuration files, the channels, the
/// code, the checkpoints, the image.
async fn prepare(
    trainer: &Trainer,
    job: &TrainingJob,
    folder: &std::path::Path,
    advance: &impl Fn(SecondaryStatus),
) -> Result<Prepared, String> {
    let spec = &job.spec;
    let instance_name = spec
        .resource_config
        .instance_type
        .clone()
        .unwrap_or_else(|| "ml.m5.large".to_string());
    let instance_type = lookup(&instance_name).map_err(|e| format!("ClientError: {e}"))?;
    let hosts = workspace::hosts(job.instance_count());
    let _ = std::fs::remove_dir_all(folder);
    let trees: Vec<HostTree> = hosts
        .iter()
        .map(|h| HostTree {
            host: h.clone(),
            root: folder.join(h),
        })
        .collect();
    for tree in &trees {
        tree.create(spec).map_err(|e| internal(&e))?;
        tree.write_config(spec, &hosts, &instance_name)
            .map_err(|e| internal(&e))?;
    }
    advance(SecondaryStatus::Downloading);
    let downloads = folder.join("downloads");
    let mut read_only: Vec<Vec<(PathBuf, String)>> = vec![Vec::new(); trees.len()];
    for channel in spec.channels() {
        let mounts = channels::prepare(
            &trainer.storage,
            &downloads,
            channel,
            spec.algorithm_specification.training_input_mode,
            &trees,
        )
        .await
        .map_err(|e| e.to_string())?;
        for (host, more) in read_only.iter_mut().zip(mounts) {
            host.extend(more);
        }
    }
    let has_code = bring_code(trainer, job, &trees, &downloads).await?;
    if let Some(checkpoints) = &spec.checkpoint_config {
        bring_checkpoints(trainer, &checkpoints.s3_uri, &trees, &downloads).await?;
    }
    trainer
        .engine
        .ensure_image(&job.image, trainer.options.pull, None)
        .await
        .map_err(|e| format!("ClientError: {e}"))?;
    Ok(Prepared {
        hosts,
        trees,
        instance_type,
        read_only,
        has_code,
    })
}

/// One container per host, each finding the others by name: `train` (or the job's
/// entrypoint and arguments), its `/opt/ml` folders, the job's environment.
fn containers(
    trainer: &Trainer,
    job: &TrainingJob,
    prepared: &Prepared,
    leases: &[Arc<crate::runtime::network::Lease>],
) -> Vec<ContainerSpec> {
    let spec = &job.spec;
    let run_id = crate::runtime::spec::run_id();
    let cmd = spec
        .algorithm_specification
        .container_arguments
        .clone()
        .unwrap_or_else(|| vec!["train".to_string()]);
    let mut env = spec.environment.clone().unwrap_or_default();
    env.insert("TRAINING_JOB_NAME".into(), job.name.clone());
    env.insert("TRAINING_JOB_ARN".into(), job.arn.clone());
    env.insert("AWS_REGION".into(), trainer.region.clone());
    prepared
        .trees
        .iter()
        .enumerate()
        .map(|(i, tree)| {
            let mut container = ContainerSpec::job(
                format!("sagedock-{}-{}-{run_id}", job.name, tree.host),
                &job.image,
                prepared.instance_type,
                spec.algorithm_specification.container_entrypoint.clone(),
                cmd.clone(),
            )
            .with_env(env.clone())
            .with_label(labels::OWNER, &trainer.owner)
            .with_label(labels::TRAINING_JOB, &job.name)
            .with_label(labels::HOST, &tree.host)
            .with_label(labels::RUN, &run_id)
            .with_hostname(&tree.host)
            .with_network(leases[i].clone())
            .with_cpu_only(trainer.options.cpu_only)
            .with_writable(tree.input(), "/opt/ml/input")
            .with_writable(tree.model(), "/opt/ml/model")
            .with_writable(tree.output(), "/opt/ml/output");
            if prepared.has_code {
                container = container.with_writable(tree.code(), "/opt/ml/code");
            }
            if let Some(checkpoints) = &spec.checkpoint_config {
                container = container.with_writable(tree.checkpoints(), checkpoints.local_path());
            }
            for (host_path, at) in &prepared.read_only[i] {
                container = container.with_mount(host_path, at.clone());
            }
            for (other, lease) in prepared.hosts.iter().zip(leases) {
                container = container.with_host_entry(other, lease.address);
            }
            container
        })
        .collect()
}

/// How often a running job's checkpoint folders are synced to CheckpointConfig.S3Uri.
const CHECKPOINT_SYNC: std::time::Duration = std::time::Duration::from_secs(10);

/// While the containers run, every 10 s, the checkpoint files that are new or changed go
/// to CheckpointConfig.S3Uri (SageMaker syncs them continuously; a job that is stopped or
/// lost keeps what it had saved). The final sync is the upload at the end.
fn sync_checkpoints(
    trainer: &Arc<Trainer>,
    job: &TrainingJob,
    trees: &[HostTree],
) -> Option<tokio::task::JoinHandle<()>> {
    let checkpoints = job.spec.checkpoint_config.as_ref()?;
    let target =
        S3Location::parse(&format!("{}/", checkpoints.s3_uri.trim_end_matches('/'))).ok()?;
    let dirs: Vec<PathBuf> = trees.iter().map(HostTree::checkpoints).collect();
    let trainer = trainer.clone();
    Some(tokio::spawn(async move {
        let mut synced = output::Synced::new();
        loop {
            tokio::time::sleep(CHECKPOINT_SYNC).await;
            for dir in &dirs {
                if let Err(e) = output::upload_changed(
                    &trainer.storage,
                    dir,
                    &target,
                    "the checkpoints",
                    &mut synced,
                )
                .await
                {
                    tracing::warn!(error = %e, "checkpoint sync");
                }
            }
        }
    }))
}

/// Waits for every container to exit, stopping them all when asked to or when the job's
/// MaxRuntimeInSeconds has passed (SIGTERM, SIGKILL 120 s later).
async fn wait(
    trainer: &Trainer,
    guards: &[ContainerGuard],
    max_runtime: Duration,
    stop_rx: &mut watch::Receiver<bool>,
    advance: &impl Fn(SecondaryStatus),
) -> Result<Ending, crate::runtime::RuntimeError> {
    let exits = join_all(guards.iter().map(|g| wait_exit(&trainer.engine, g)));
    tokio::pin!(exits);
    let deadline = tokio::time::sleep(max_runtime);
    tokio::pin!(deadline);
    let end = tokio::select! {
        exits = &mut exits => {
            return exits.into_iter().collect::<Result<Vec<_>, _>>().map(Ending::Exited);
        }
        _ = stop_rx.wait_for(|stop| *stop) => SecondaryStatus::Stopped,
        _ = &mut deadline => SecondaryStatus::MaxRuntimeExceeded,
    };
    advance(SecondaryStatus::Stopping);
    join_all(
        guards
            .iter()
            .map(|g| stop(&trainer.engine, g, STOP_GRACE_SECS)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()?;
    exits.await.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Ending::Stopped(end))
}

/// The FailureReason of a container that exited non-zero: what it wrote to
/// `/opt/ml/output/failure`, else an OOM kill, else the end of its log.
async fn failure(trainer: &Trainer, job: &TrainingJob, tree: &HostTree, exit: &Exit) -> String {
    if let Some(text) = output::failure_file(tree) {
        return format!("AlgorithmError: {text}, exit code: {}", exit.code);
    }
    if exit.oom_killed {
        return format!(
            "OutOfMemoryError: Please use an instance type with more memory, or reduce the size of job data processed on an instance ({} was killed for exceeding the memory of {})",
            tree.host,
            job.spec.resource_config.instance_type.as_deref().unwrap_or("its instance type")
        );
    }
    let tail: Vec<String> = trainer
        .record
        .streams(TRAINING_JOBS_GROUP)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.name.starts_with(&format!("{}/{}-", job.name, tree.host)))
        .filter_map(|s| trainer.record.read(TRAINING_JOBS_GROUP, &s.name))
        .flat_map(|events| {
            let skip = events.len().saturating_sub(10);
            events.into_iter().skip(skip).map(|e| e.message)
        })
        .collect();
    format!(
        "AlgorithmError: {}, exit code: {}",
        if tail.is_empty() {
            "(no output)".to_string()
        } else {
            tail.join("\n")
        },
        exit.code
    )
}

/// The code the SageMaker Python SDK sent (`sagemaker_submit_directory`: an `s3://`
/// sourcedir.tar.gz), unpacked into each host's `/opt/ml/code`, so that the training
/// toolkit finds it there and downloads nothing. Returns whether there was code.
async fn bring_code(
    trainer: &Trainer,
    job: &TrainingJob,
    trees: &[HostTree],
    downloads: &std::path::Path,
) -> Result<bool, String> {
    let hyperparameters = job.spec.hyperparameters();
    let Some(raw) = hyperparameters.get("sagemaker_submit_directory") else {
        return Ok(false);
    };
    let uri = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.clone());
    if !uri.starts_with("s3://") {
        return Ok(false);
    }
    let fail = |detail: String| {
        format!("ClientError: Failed to download the training code (sagemaker_submit_directory {uri}): {detail}")
    };
    let location = S3Location::parse(&uri).map_err(|e| fail(e.to_string()))?;
    let archive = trainer
        .storage
        .fetch(&ModelLocation::S3(location), downloads)
        .await
        .map_err(|e| fail(e.to_string()))?;
    for tree in trees {
        let (archive, dest) = (archive.clone(), tree.code());
        tokio::task::spawn_blocking(move || unpack(&archive, &dest, &Limits::default(), None))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(true)
}

/// What CheckpointConfig.S3Uri already holds, in each host's checkpoint folder (a job
/// taken up again starts from its checkpoints). An empty or missing prefix is a fresh start.
async fn bring_checkpoints(
    trainer: &Trainer,
    uri: &str,
    trees: &[HostTree],
    downloads: &std::path::Path,
) -> Result<(), String> {
    let location =
        S3Location::parse(uri).map_err(|e| format!("ClientError: CheckpointConfig.S3Uri: {e}"))?;
    let Ok(path) = trainer
        .storage
        .fetch(&ModelLocation::S3(location), downloads)
        .await
    else {
        return Ok(());
    };
    for tree in trees {
        output::copy_tree(&path, &tree.checkpoints())
            .map_err(|e| format!("InternalServerError: checkpoints: {e}"))?;
    }
    Ok(())
}

/// Uploads the model, the output data (when there is any) and the checkpoints.
async fn upload(
    trainer: &Trainer,
    job: &TrainingJob,
    trees: &[HostTree],
    folder: &std::path::Path,
) -> Result<(), output::UploadError> {
    let storage = &trainer.storage;
    let bad = |what: &'static str, location: &str, e: &dyn std::fmt::Display| output::UploadError {
        what,
        location: location.to_string(),
        detail: e.to_string(),
    };
    let model_location = job.model_artifacts();
    let model = output::merged(trees, HostTree::model, &folder.join("merged/model"))
        .map_err(|e| bad("the model", &model_location, &e))?;
    let target =
        S3Location::parse(&model_location).map_err(|e| bad("the model", &model_location, &e))?;
    if job.uncompressed_model() {
        output::upload_files(storage, &model, &target, "the model").await?;
    } else {
        output::upload_packed(
            storage,
            model,
            folder.join("model.tar.gz"),
            &target,
            "the model",
        )
        .await?;
    }
    let data = output::merged(trees, HostTree::output_data, &folder.join("merged/data"))
        .map_err(|e| bad("the output data", &model_location, &e))?;
    if output::has_files(&data) {
        let location = job.output_data_location();
        let target =
            S3Location::parse(&location).map_err(|e| bad("the output data", &location, &e))?;
        output::upload_packed(
            storage,
            data,
            folder.join("output.tar.gz"),
            &target,
            "the output data",
        )
        .await?;
    }
    if let Some(checkpoints) = &job.spec.checkpoint_config {
        let target = S3Location::parse(&format!("{}/", checkpoints.s3_uri.trim_end_matches('/')))
            .map_err(|e| bad("the checkpoints", &checkpoints.s3_uri, &e))?;
        for tree in trees {
            output::upload_files(storage, &tree.checkpoints(), &target, "the checkpoints").await?;
        }
    }
    Ok(())
}

async fn remove_all(guards: Vec<ContainerGuard>) {
    for guard in guards {
        if let Err(e) = guard.remove().await {
            tracing::warn!(error = %e, "could not remove a training container; `sagedock gc` will");
        }
    }
}
