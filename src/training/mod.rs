//! Training jobs: a job's record in, containers run to their end, its model out — as
//! SageMaker runs them (CONTRACT §5).
//!
//! A job ([`Trainer::start`]) gets a tree of `/opt/ml` folders per host ([`workspace`]),
//! its channels brought in ([`channels`]), then one container per instance, named
//! `algo-1 … algo-N` on the owner's network (each host finds the others by name), run with
//! `train`. Their output goes to the log record (`/aws/sagemaker/TrainingJobs`) as it
//! streams, and the MetricDefinitions read it ([`metrics`]). At the end `/opt/ml/model` is
//! packed and uploaded ([`output`]), and the record says Completed, Failed (with the
//! container's `/opt/ml/output/failure`) or Stopped. The record moves through the
//! secondary statuses as the job does ([`run`]). A job that names a built-in algorithm's
//! image gets its metric definitions ([`algorithm`]).
//!
//! Does not: know the SageMaker API (the control plane checks requests and makes the
//! record), or resume a job after sagedock stopped: such a job is marked Failed.

pub mod algorithm;
pub mod channels;
pub mod metrics;
pub mod output;
mod run;
pub mod workspace;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::jobs::Running;
use crate::logs::LogRecord;
use crate::runtime::network::OwnerNetworks;
use crate::runtime::Engine;
use crate::state::{now, Store, TrainingJob};
use crate::storage::Storage;
use crate::sync::locked;

/// How jobs run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Pull missing images from their registry.
    pub pull: bool,
    /// Run accelerator instance types without their devices.
    pub cpu_only: bool,
    /// Which local image runs for one of AWS's image URIs.
    pub images: Arc<crate::runtime::ImageMap>,
}

/// Seconds between SIGTERM and SIGKILL when a job is stopped, as SageMaker gives.
pub const STOP_GRACE_SECS: i32 = 120;

/// Runs training jobs for one owner.
pub struct Trainer {
    engine: Engine,
    storage: Storage,
    networks: Arc<OwnerNetworks>,
    record: Arc<LogRecord>,
    store: Arc<Store>,
    owner: String,
    region: String,
    /// Where the jobs' `/opt/ml` trees are made: `<data-dir>/training`.
    work: PathBuf,
    options: TrainOptions,
    /// The running jobs, and how to ask each to stop (StopTrainingJob, or the tuning job
    /// stopping its trials).
    running: Running,
    /// What each job of this run has read from its log (for `/metrics`).
    metrics: Mutex<std::collections::BTreeMap<String, Arc<Mutex<metrics::Metrics>>>>,
}

/// What is needed to run jobs.
pub struct TrainerParts {
    pub engine: Engine,
    pub storage: Storage,
    pub networks: Arc<OwnerNetworks>,
    pub record: Arc<LogRecord>,
    pub store: Arc<Store>,
    pub owner: String,
    pub region: String,
    pub work: PathBuf,
    pub options: TrainOptions,
}

/// The reason a job gets when sagedock stops under it.
pub const INTERRUPTED: &str = "InternalServerError: sagedock stopped while the job was running; a training job is not resumed after a restart. Start it again under a new name.";

impl Trainer {
    pub fn new(parts: TrainerParts) -> Arc<Trainer> {
        Arc::new(Trainer {
            engine: parts.engine,
            storage: parts.storage,
            networks: parts.networks,
            record: parts.record,
            store: parts.store,
            owner: parts.owner,
            region: parts.region,
            work: parts.work,
            options: parts.options,
            running: Running::default(),
            metrics: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// Runs `job` (already stored, `InProgress`) in a task of its own; the task answers
    /// with the job as it ended.
    pub fn start(self: &Arc<Self>, job: TrainingJob) -> tokio::task::JoinHandle<TrainingJob> {
        let stop_rx = self.running.enter(&job.name);
        let trainer = self.clone();
        tokio::spawn(async move {
            let name = job.name.clone();
            let last = if trainer.running.is_closing() {
                trainer.update(&name, |j| j.fail(INTERRUPTED, now()))
            } else {
                run::run(&trainer, job.clone(), stop_rx).await;
                trainer.store.get::<TrainingJob>(&name).ok().flatten()
            };
            trainer.running.leave(&name);
            last.unwrap_or(job)
        })
    }

    /// Asks a running job to stop; false when it is not running.
    pub fn stop(&self, name: &str) -> bool {
        self.running.stop(name)
    }

    /// Changes a job's record (in one store transaction); the record as written.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut TrainingJob)) -> Option<TrainingJob> {
        self.store.update(name, change).unwrap_or_else(|e| {
            tracing::warn!(job = name, error = %e, "could not write the training job's record");
            None
        })
    }

    /// After a restart: a job the record says was running did not survive; it is marked
    /// Failed with the reason, never left InProgress, and the folders of the run that
    /// ended are removed (its containers go with the owner's other leftovers).
    pub fn restore(&self) -> Result<(), crate::state::StoreError> {
        if !crate::runtime::guard::keep_requested() {
            let _ = std::fs::remove_dir_all(&self.work);
        }
        crate::jobs::fail_unfinished::<TrainingJob>(&self.store, INTERRUPTED)
    }

    /// The end of a run: every running job is marked Failed (their containers are
    /// removed with the owner's others).
    pub fn shutdown(&self) {
        self.running
            .close_failing::<TrainingJob>(&self.store, INTERRUPTED);
    }

    /// Keeps a job's metrics for `/metrics`.
    fn publish(&self, job: &str, metrics: Arc<Mutex<metrics::Metrics>>) {
        locked(&self.metrics).insert(job.to_string(), metrics);
    }

    /// The training jobs' metrics of this run, as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let jobs = locked(&self.metrics).clone();
        let mut out = String::new();
        if jobs.is_empty() {
            return out;
        }
        out.push_str(&format!(
            "# HELP {0} A training job's MetricDefinitions value, read from its log (the latest, at the time of its line)\n# TYPE {0} gauge\n",
            metrics::RENDERED
        ));
        for (job, metrics) in jobs {
            locked(&metrics).render(&job, &mut out);
        }
        out
    }

    /// Whether the job is running here.
    pub fn is_running(&self, name: &str) -> bool {
        self.running.contains(name)
    }

    /// The image that runs for the requested `image`.
    pub fn image_for(&self, image: &str) -> String {
        self.options.images.resolve(image).to_string()
    }

    /// Whether `s3://` locations can be read and written.
    pub fn has_s3(&self) -> bool {
        self.storage.has_s3()
    }
}
