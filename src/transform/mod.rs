//! Batch transform jobs: a model's serving containers started as SageMaker starts them for
//! a transform, every input object read, split into records, sent in mini-batches, and one
//! `<object>.out` written per object (CONTRACT-serving-extras A).
//!
//! A job ([`Transformer::start`]) runs its plan through the deployer — the one path that
//! starts serving containers, named and labelled as the transform job's so that no
//! endpoint takes them — and waits until each instance is healthy. The first container is
//! asked `GET /execution-parameters`; its values fill what the request leaves unset. Each
//! instance takes its share of the objects (in key order, dealt round) with at most
//! MaxConcurrentTransforms calls in flight ([`run`]). Records are split and packed by
//! [`records`], filtered and joined by [`filter`]. The containers' output goes to
//! `/aws/sagemaker/TransformJobs` (the collector follows them), and the job's own lines —
//! its parameters, each object's progress, each failure — to its `data-log` stream.
//!
//! Does not: know the SageMaker API (the control plane checks requests, stores the record
//! and makes the plan), or resume a job after sagedock stopped: such a job is marked Failed.

pub mod execution;
pub mod filter;
pub mod records;
mod run;

use std::path::PathBuf;
use std::sync::Arc;

use crate::deploy::{Deployer, EndpointPlan};
use crate::jobs::Running;
use crate::logs::LogRecord;
use crate::state::{now, Store, TransformJob};
use crate::storage::Storage;

/// The reason a job gets when sagedock stops under it.
pub const INTERRUPTED: &str = "InternalServerError: sagedock stopped while the job was running; a transform job is not resumed after a restart. Start it again under a new name.";

/// Runs transform jobs for one owner.
pub struct Transformer {
    deployer: Arc<Deployer>,
    storage: Storage,
    record: Arc<LogRecord>,
    store: Arc<Store>,
    /// Where objects fetched from an S3 server are kept while a job runs:
    /// `<data-dir>/transform`.
    work: PathBuf,
    /// The running jobs, and how to ask each to stop.
    running: Running,
}

impl Transformer {
    pub fn new(
        deployer: Arc<Deployer>,
        record: Arc<LogRecord>,
        store: Arc<Store>,
        work: PathBuf,
    ) -> Arc<Transformer> {
        Arc::new(Transformer {
            storage: deployer.storage().clone(),
            deployer,
            record,
            store,
            work,
            running: Running::default(),
        })
    }

    /// Runs `job` (already stored, `InProgress`) on the containers of `plan`, in a task of
    /// its own; the task answers with the job as it ended.
    pub fn start(
        self: &Arc<Self>,
        job: TransformJob,
        plan: EndpointPlan,
    ) -> tokio::task::JoinHandle<TransformJob> {
        let stop_rx = self.running.enter(&job.name);
        let this = self.clone();
        tokio::spawn(async move {
            let name = job.name.clone();
            if this.running.is_closing() {
                this.update(&name, |j| j.fail(INTERRUPTED, now()));
            } else {
                run::run(&this, &job, &plan, stop_rx).await;
            }
            this.running.leave(&name);
            this.store.get(&name).ok().flatten().unwrap_or(job)
        })
    }

    /// Asks a running job to stop; false when it is not running.
    pub fn stop(&self, name: &str) -> bool {
        self.running.stop(name)
    }

    /// Changes a job's record (in one store transaction); the record as written.
    pub fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut TransformJob),
    ) -> Option<TransformJob> {
        self.store.update(name, change).unwrap_or_else(|e| {
            tracing::warn!(job = name, error = %e, "could not write the transform job's record");
            None
        })
    }

    /// After a restart: a job the record says was running did not survive; it is marked
    /// Failed, never left InProgress (its containers go with the owner's other leftovers).
    pub fn restore(&self) -> Result<(), crate::state::StoreError> {
        let _ = std::fs::remove_dir_all(&self.work);
        crate::jobs::fail_unfinished::<TransformJob>(&self.store, INTERRUPTED)
    }

    /// The end of a run: every running job is marked Failed (their containers are removed
    /// with the owner's others).
    pub fn shutdown(&self) {
        self.running
            .close_failing::<TransformJob>(&self.store, INTERRUPTED);
    }

    /// Whether `s3://` locations can be read and written.
    pub fn has_s3(&self) -> bool {
        self.storage.has_s3()
    }
}
