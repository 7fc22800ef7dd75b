//! What the job runners share: the jobs of one kind running in this process, and how to
//! ask each to stop. Training, tuning and transform jobs each keep one [`Running`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::sync::locked;

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
