//! The sagemaker-runtime API: InvokeEndpoint, and its streaming ([`stream`]), asynchronous
//! ([`asynchronous`]) and multi-model ([`multimodel`]) forms, over the table of live
//! endpoints the deployments publish into the [`Router`].
//!
//! Owns: the live table ([`live`]; replaced whole on every change, copy on write, so the
//! request path takes a read lock only long enough to clone one `Arc` and never holds a
//! lock across an await), routing ([`route`]), forwarding over pooled connections
//! ([`client`], its own HTTP/1.1 client [`http1`], [`invoke`]), the API's errors in their AWS shape ([`error`]) and the
//! CloudWatch-named metrics ([`metrics`]).
//!
//! Does not: own container lifecycles (deployments publish and withdraw), or serve a port
//! (the server layer calls in).

pub mod asynchronous;
pub mod capture;
pub mod client;
pub mod error;
pub mod http1;
mod invoke;
pub mod live;
pub mod metrics;
pub mod multimodel;
mod route;
pub mod serverless;
pub mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

pub use asynchronous::{AsyncOutput, AsyncQueue};
pub use error::ApiError;
pub use live::{Backend, LiveEndpoint, LiveInstance, LiveVariant, Mode, Routing};

pub(crate) use crate::http::{full, Body, BoxError, RequestBody};
use crate::storage::Storage;

/// An id in AWS's UUID form (version-4 layout) from a counter or random number: made on
/// every request, so written out digit by digit rather than through `format!`.
pub fn uuid_like(n: u64) -> String {
    let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // (value, hex digits) of each group; the third and fourth carry the version and
    // variant digits in front.
    let groups: [(u64, usize); 5] = [
        (h >> 32, 8),
        ((h >> 16) & 0xffff, 4),
        (0x4000 | (h & 0xfff), 4),
        (0xa000 | ((n >> 4) & 0xfff), 4),
        (n & 0xffff_ffff_ffff, 12),
    ];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, (value, digits)) in groups.into_iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for d in (0..digits).rev() {
            let digit = (value >> (4 * d)) & 0xf;
            out.push(char::from(HEX[usize::try_from(digit).unwrap_or(0)]));
        }
    }
    out
}

/// How long an invocation waits for a multi-model load before ModelNotReadyException.
pub const MODEL_LOAD_WAIT: Duration = Duration::from_secs(60);
/// InvokeEndpoint's payload limit: 6 MB.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;
/// How long a container may take to answer one invocation.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Routes invocations to live endpoints.
pub struct Router {
    endpoints: RwLock<HashMap<String, Arc<LiveEndpoint>>>,
    pub(crate) account: String,
    pub(crate) region: String,
    counter: AtomicU64,
    /// Invocation metrics, served on GET /metrics.
    pub metrics: metrics::Metrics,
    /// Where InvokeEndpointAsync reads inputs and writes results.
    pub(crate) storage: Storage,
    /// How long an invocation waits for a multi-model load.
    pub(crate) model_load_wait: Duration,
}

impl Router {
    /// A router answering as `account` in `region`, with no object storage.
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Router {
        Router {
            endpoints: RwLock::new(HashMap::new()),
            account: account.into(),
            region: region.into(),
            counter: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            metrics: metrics::Metrics::default(),
            storage: Storage::None,
            model_load_wait: MODEL_LOAD_WAIT,
        }
    }

    /// Asynchronous invocations read and write through `storage`.
    pub fn with_storage(mut self, storage: Storage) -> Router {
        self.storage = storage;
        self
    }

    /// Multi-model invocations wait `wait` for a load.
    pub fn with_model_load_wait(mut self, wait: Duration) -> Router {
        self.model_load_wait = wait;
        self
    }

    /// Makes `endpoint` live (replacing any earlier version of it).
    pub fn publish(&self, mut endpoint: LiveEndpoint) {
        for variant in &mut endpoint.variants {
            variant.series = self.metrics.series(&endpoint.name, &variant.name);
        }
        let mut table = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        table.insert(endpoint.name.clone(), Arc::new(endpoint));
    }

    /// Takes an endpoint out of service (it was deleted): its metrics go too.
    pub fn withdraw(&self, name: &str) {
        self.endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.metrics.forget(name);
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveEndpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The only live endpoint, when there is exactly one (`sagedock serve`).
    pub fn only(&self) -> Option<Arc<LiveEndpoint>> {
        let table = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        (table.len() == 1)
            .then(|| table.values().next().cloned())
            .flatten()
    }

    /// GET /metrics: the invocation metrics, and how many instances of each variant are
    /// in rotation now.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = self.metrics.render();
        out.push_str("# HELP sagedock_healthy_instances instances in rotation now; not a CloudWatch metric\n# TYPE sagedock_healthy_instances gauge\n");
        let table = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut rows: Vec<(&String, &LiveVariant)> = table
            .values()
            .flat_map(|e| e.variants.iter().map(move |v| (&e.name, v)))
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        for (endpoint, variant) in rows {
            let _ = writeln!(
                out,
                "sagedock_healthy_instances{{{}}} {}",
                metrics::labels(endpoint, &variant.name),
                variant.healthy_instances()
            );
        }
        out
    }

    pub(crate) fn not_found(&self, name: &str) -> ApiError {
        ApiError::validation(format!(
            "Endpoint {name} of account {} not found.",
            self.account
        ))
    }

    /// A fast pseudo-random number in [0, 1) for weighted choice.
    pub(crate) fn unit_random(&self) -> f64 {
        let mut x = self
            .counter
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        // The top 53 bits, exactly representable.
        #[allow(clippy::cast_precision_loss)]
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }

    /// A fresh id (InferenceId when the caller gives none).
    pub(crate) fn next_id(&self) -> String {
        uuid_like(self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Reads the request body, refusing more than [`MAX_PAYLOAD`].
    pub(crate) async fn payload<B: RequestBody>(body: B) -> Result<Bytes, ApiError> {
        match Limited::new(body, MAX_PAYLOAD).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Err(ApiError::PayloadTooLarge(format!(
                    "1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have length less than or equal to {MAX_PAYLOAD}"
                )))
            }
            Err(e) => Err(ApiError::validation(format!(
                "The request body could not be read: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_uuid_layout() {
        let old = |n: u64| {
            let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xffff,
                h & 0xfff,
                (n >> 4) & 0xfff,
                n & 0xffff_ffff_ffff
            )
        };
        for n in [0, 1, 42, u64::MAX, 0x9e37_79b9_7f4a_7c15, 1 << 48] {
            assert_eq!(uuid_like(n), old(n));
        }
        let id = uuid_like(42);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
    }
}
