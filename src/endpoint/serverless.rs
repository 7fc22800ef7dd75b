//! Serverless variants (ProductionVariant.ServerlessConfig), as the router sees them: at
//! most MaxConcurrency calls in flight (one more is a ThrottlingException, at once), and a
//! cold start when no instance is warm — the call waits while one is launched and becomes
//! healthy, and the time it took is ModelSetupTime.
//!
//! The router only asks for an instance ([`ColdStart`]); the deployment that owns the
//! containers launches it, and scales the variant back to zero once it has been idle
//! (unless ProvisionedConcurrency keeps it warm).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::error::ApiError;

/// Launches an instance of a serverless variant when none is warm.
pub trait ColdStart: Send + Sync {
    /// Makes one instance healthy and in the router; how long that took, or `None` when
    /// one was warm already.
    fn start(&self) -> BoxFuture<'_, Result<Option<Duration>, String>>;
}

/// A serverless variant's limits and state.
pub struct Serverless {
    pub max_concurrency: u32,
    /// ProvisionedConcurrency: while above zero, the variant is never scaled to zero.
    pub provisioned: u32,
    in_flight: AtomicU32,
    /// When the last call ended (milliseconds since `epoch`).
    last_call: AtomicU64,
    epoch: Instant,
    starter: OnceLock<Arc<dyn ColdStart>>,
}

impl std::fmt::Debug for Serverless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serverless")
            .field("max_concurrency", &self.max_concurrency)
            .field("provisioned", &self.provisioned)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// A call's place among a serverless variant's MaxConcurrency: given back when dropped.
pub struct Admission {
    serverless: Arc<Serverless>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.serverless.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.serverless.touch();
    }
}

impl Serverless {
    pub fn new(max_concurrency: u32, provisioned: u32) -> Serverless {
        Serverless {
            max_concurrency,
            provisioned,
            in_flight: AtomicU32::new(0),
            last_call: AtomicU64::new(0),
            epoch: Instant::now(),
            starter: OnceLock::new(),
        }
    }

    /// Who launches instances for this variant (set once, by its deployment).
    pub fn set_starter(&self, starter: Arc<dyn ColdStart>) {
        let _ = self.starter.set(starter);
    }

    /// Admits one call, or refuses it when MaxConcurrency calls are in flight.
    pub fn admit(self: &Arc<Self>, endpoint: &str) -> Result<Admission, ApiError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let admission = Admission {
            serverless: self.clone(),
        };
        if before >= self.max_concurrency {
            drop(admission);
            return Err(ApiError::Throttling(format!(
                "Endpoint {endpoint} has {} invocations in flight, its serverless MaxConcurrency; try again (or raise MaxConcurrency).",
                self.max_concurrency
            )));
        }
        self.touch();
        Ok(admission)
    }

    /// An instance warm and in the router: launched now (a cold start, and how long it
    /// took) or already there (`None`).
    pub async fn warm_up(&self) -> Result<Option<Duration>, String> {
        match self.starter.get() {
            Some(starter) => starter.start().await,
            None => Err("the serverless variant has no deployment to start it".into()),
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// How long since the last call began or ended.
    pub fn idle_for(&self) -> Duration {
        let now = self.millis();
        Duration::from_millis(now.saturating_sub(self.last_call.load(Ordering::Acquire)))
    }

    fn touch(&self) {
        self.last_call.store(self.millis(), Ordering::Release);
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_beyond_max_concurrency_are_throttled_and_places_come_back() {
        let s = Arc::new(Serverless::new(2, 0));
        let a = s.admit("ep").unwrap();
        let b = s.admit("ep").unwrap();
        let refused = s.admit("ep").err().unwrap();
        assert_eq!(refused.code(), "ThrottlingException");
        assert_eq!(refused.status(), hyper::StatusCode::BAD_REQUEST);
        assert_eq!(s.in_flight(), 2);
        drop(a);
        let c = s.admit("ep").unwrap();
        drop((b, c));
        assert_eq!(s.in_flight(), 0);
        assert!(s.idle_for() < Duration::from_secs(1));
    }
}
