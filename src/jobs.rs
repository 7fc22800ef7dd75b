//! What the job runners share: the jobs of one kind running in this process, and how to
//! ask each to stop (training, tuning and transform jobs each keep one [`Running`]); and
//! what becomes of a job sagedock stops under: it is marked Failed with a reason, at the
//! end of the run ([`Running::close_failing`]) or after a restart ([`fail_unfinished`]),
//! never left in progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::state::{
    now, JobStatus, Record, Store, StoreError, TrainingJob, TransformJob, TuningJob,
};
use crate::sync::locked;

/// A job's record, as the end of a run or a restart marks it.
pub trait JobRecord: Record {
    fn job_name(&self) -> &str;
    fn job_status(&self) -> JobStatus;
    /// Ends the job as Failed with `reason` (a finished job stays as it was).
    fn fail_with(&mut self, reason: &str, now: f64);
}

impl JobRecord for TrainingJob {
    fn job_name(&self) -> &str {
        &self.name
    }
    fn job_status(&self) -> JobStatus {
        self.status
    }
    fn fail_with(&mut self, reason: &str, now: f64) {
        self.fail(reason, now);
    }
}

impl JobRecord for TransformJob {
    fn job_name(&self) -> &str {
        &self.name
    }
    fn job_status(&self) -> JobStatus {
        self.status
    }
    fn fail_with(&mut self, reason: &str, now: f64) {
        self.fail(reason, now);
    }
}

impl JobRecord for TuningJob {
    fn job_name(&self) -> &str {
        &self.name
    }
    fn job_status(&self) -> JobStatus {
        self.status
    }
    fn fail_with(&mut self, reason: &str, now: f64) {
        self.finish(JobStatus::Failed, Some(reason), now);
    }
}

/// After a restart: every job of kind `T` that the store says was unfinished did not
/// survive; it is marked Failed with `reason`.
pub fn fail_unfinished<T: JobRecord>(store: &Store, reason: &str) -> Result<(), StoreError> {
    for job in store.list::<T>()? {
        if !job.job_status().is_terminal() {
            mark::<T>(store, job.job_name(), reason);
        }
    }
    Ok(())
}

fn mark<T: JobRecord>(store: &Store, name: &str, reason: &str) {
    if let Err(e) = store.update::<T>(name, |j| j.fail_with(reason, now())) {
        tracing::warn!(job = name, error = %e, "could not mark the job Failed");
    }
}

/// The running jobs of one kind, each with its stop signal.
#[derive(Debug, Default)]
pub struct Running {
    jobs: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Set once sagedock is stopping: jobs that start after it are marked at once.
    closing: AtomicBool,
}

impl Running {
    /// Registers `name` as running; its receiver turns true when it is asked to stop.
    pub fn enter(&self, name: &str) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        locked(&self.jobs).insert(name.to_string(), tx);
        rx
    }

    /// `name` has ended.
    pub fn leave(&self, name: &str) {
        locked(&self.jobs).remove(name);
    }

    /// Asks a running job to stop; false when it is not running.
    pub fn stop(&self, name: &str) -> bool {
        match locked(&self.jobs).get(name) {
            Some(tx) => {
                tx.send_replace(true);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        locked(&self.jobs).contains_key(name)
    }

    /// The end of the run: from now on [`Running::is_closing`]; the jobs still running.
    pub fn close(&self) -> Vec<String> {
        self.closing.store(true, Ordering::SeqCst);
        locked(&self.jobs).keys().cloned().collect()
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// The end of the run: every job still running is marked Failed with `reason` (and
    /// one that starts after it, seeing [`Running::is_closing`], marks itself).
    pub fn close_failing<T: JobRecord>(&self, store: &Store, reason: &str) {
        for name in self.close() {
            mark::<T>(store, &name, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_stopped_only_while_it_runs() {
        let running = Running::default();
        let rx = running.enter("a");
        assert!(running.stop("a") && *rx.borrow());
        running.leave("a");
        assert!(!running.stop("a") && !running.contains("a"));
        running.enter("b");
        assert_eq!(running.close(), ["b"]);
        assert!(running.is_closing());
    }
}
