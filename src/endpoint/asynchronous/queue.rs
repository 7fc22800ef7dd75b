//! An asynchronous endpoint's side of the live table: where its results go, and how many
//! of its requests run at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::storage::S3Location;
use crate::sync::locked;

/// MaxConcurrentInvocationsPerInstance when the endpoint config gives none (SageMaker
/// "chooses an optimal value"; sagedock takes 4).
pub const DEFAULT_PER_INSTANCE: u32 = 4;

/// Where an asynchronous endpoint's results go, and its queue.
#[derive(Debug, Clone)]
pub struct AsyncOutput {
    pub output_path: S3Location,
    pub failure_path: Option<S3Location>,
    pub queue: Arc<AsyncQueue>,
}

/// How many asynchronous requests an endpoint runs at once: per instance times instances.
#[derive(Debug)]
pub struct AsyncQueue {
    slots: Arc<Semaphore>,
    capacity: Mutex<usize>,
    per_instance: usize,
}

impl AsyncQueue {
    /// A queue with no capacity until [`AsyncQueue::resize`].
    pub fn new(per_instance: u32) -> Arc<Self> {
        Arc::new(AsyncQueue {
            slots: Arc::new(Semaphore::new(0)),
            capacity: Mutex::new(0),
            per_instance: per_instance.max(1) as usize,
        })
    }

    /// Sets the capacity for `instances` instances. Shrinking takes effect as running
    /// requests finish.
    pub fn resize(&self, instances: usize) {
        let want = self.per_instance * instances;
        let mut capacity = locked(&self.capacity);
        if want > *capacity {
            self.slots.add_permits(want - *capacity);
        } else {
            let mut surplus = *capacity - want;
            surplus -= self.slots.forget_permits(surplus);
            // Permits still in use are given back when their requests end; remove those
            // too, without blocking the caller.
            if surplus > 0 {
                let slots = self.slots.clone();
                tokio::spawn(async move {
                    if let Ok(permits) = slots
                        .acquire_many(u32::try_from(surplus).unwrap_or(u32::MAX))
                        .await
                    {
                        permits.forget();
                    }
                });
            }
        }
        *capacity = want;
    }

    /// Waits (at most `ttl`) for room to run one request; the slot is held until dropped.
    /// `None`: the request expired in the queue.
    pub(super) async fn admit(&self, ttl: Duration) -> Option<OwnedSemaphorePermit> {
        let slot = tokio::time::timeout(ttl, self.slots.clone().acquire_owned()).await;
        slot.ok()?.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_follows_the_instance_count() {
        let q = AsyncQueue::new(2);
        assert_eq!(q.slots.available_permits(), 0);
        q.resize(3);
        assert_eq!(q.slots.available_permits(), 6);
        let held = q.slots.clone().acquire_many_owned(5).await.unwrap();
        q.resize(1);
        assert_eq!(q.slots.available_permits(), 0);
        drop(held);
        tokio::task::yield_now().await;
        for _ in 0..10 {
            if q.slots.available_permits() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(q.slots.available_permits(), 2);
    }
}
