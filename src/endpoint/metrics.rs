//! Invocation metrics per endpoint and variant, named after SageMaker's CloudWatch metrics
//! (namespace AWS/SageMaker, dimensions EndpointName and VariantName) and served as
//! Prometheus text on `GET /metrics`.
//!
//! Invocations; Invocation4XXErrors and Invocation5XXErrors (by the model's status code,
//! a timeout or unreachable container counting as 5XX); InvocationModelErrors (every
//! answer that was not 2XX); ModelLatency (time in the containers) and OverheadLatency
//! (the rest of sagedock's time) as histograms in microseconds, as CloudWatch reports them.
//! Multi-model endpoints add ModelCacheHit (invocations whose model was loaded already)
//! and ModelLoadingWaitTime (how long the others waited for the load). Serverless variants
//! add ModelSetupTime (each cold start: an instance launched and healthy for a call).
//! Recording is atomic additions on a series the router resolved when the endpoint was
//! published: no lock, no allocation per invocation.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::locked;

/// Histogram bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 10_000_000, 60_000_000,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_us.load(Relaxed));
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// A counter's or gauge's Prometheus name, type, help text, and value.
type Scalar = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Series) -> &AtomicU64,
);

/// The counters and gauges, by Prometheus name.
const SCALARS: [Scalar; 8] = [
    (
        "sagemaker_invocations_total",
        "counter",
        "Invocations",
        |s| &s.invocations,
    ),
    (
        "sagemaker_invocation_4xx_errors_total",
        "counter",
        "Invocation4XXErrors",
        |s| &s.errors_4xx,
    ),
    (
        "sagemaker_invocation_5xx_errors_total",
        "counter",
        "Invocation5XXErrors",
        |s| &s.errors_5xx,
    ),
    (
        "sagemaker_invocation_model_errors_total",
        "counter",
        "InvocationModelErrors",
        |s| &s.model_errors,
    ),
    (
        "sagemaker_model_cache_hit_total",
        "counter",
        "ModelCacheHit",
        |s| &s.model_cache_hits,
    ),
    (
        "sagedock_instances_lost_total",
        "counter",
        "instances taken out of rotation (dead, or failing /ping); not a CloudWatch metric",
        |s| &s.lost,
    ),
    (
        "sagedock_instance_replacements_total",
        "counter",
        "instances replaced by new ones; not a CloudWatch metric",
        |s| &s.replacements,
    ),
    (
        "sagemaker_approximate_backlog_size",
        "gauge",
        "ApproximateBacklogSize (asynchronous requests queued or running)",
        |s| &s.backlog,
    ),
];

/// Picks a histogram of a series.
type Pick = fn(&Series) -> &Histogram;

/// The histograms, by Prometheus name and CloudWatch name.
const HISTOGRAMS: [(&str, &str, Pick); 4] = [
    (
        "sagemaker_model_latency_microseconds",
        "ModelLatency",
        |s| &s.model_latency,
    ),
    (
        "sagemaker_overhead_latency_microseconds",
        "OverheadLatency",
        |s| &s.overhead_latency,
    ),
    (
        "sagemaker_model_loading_wait_time_microseconds",
        "ModelLoadingWaitTime",
        |s| &s.model_loading_wait,
    ),
    (
        "sagemaker_model_setup_time_microseconds",
        "ModelSetupTime",
        |s| &s.model_setup,
    ),
];

/// The metrics of one endpoint variant. Recording is a few atomic additions: no lock,
/// no allocation.
#[derive(Debug, Default)]
pub struct Series {
    invocations: AtomicU64,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
    model_errors: AtomicU64,
    model_latency: Histogram,
    overhead_latency: Histogram,
    model_cache_hits: AtomicU64,
    model_loading_wait: Histogram,
    model_setup: Histogram,
    /// Asynchronous requests queued or running (a gauge).
    backlog: AtomicU64,
    /// Instances taken out of rotation (dead or failing health checks).
    lost: AtomicU64,
    /// Instances replaced by new ones.
    replacements: AtomicU64,
}

impl Series {
    /// Records one invocation: the model's final status (0 when it never answered), the
    /// time spent in the containers and the total time.
    pub fn record(&self, model_status: u16, model: Duration, total: Duration) {
        self.invocations.fetch_add(1, Relaxed);
        if !(200..300).contains(&model_status) {
            self.model_errors.fetch_add(1, Relaxed);
            if (400..500).contains(&model_status) {
                self.errors_4xx.fetch_add(1, Relaxed);
            } else {
                self.errors_5xx.fetch_add(1, Relaxed);
            }
        }
        self.model_latency.observe(model);
        self.overhead_latency.observe(total.saturating_sub(model));
    }

    /// An instance left rotation.
    pub fn lost(&self) {
        self.lost.fetch_add(1, Relaxed);
    }

    /// An instance was replaced.
    pub fn replaced(&self) {
        self.replacements.fetch_add(1, Relaxed);
    }

    /// An asynchronous request joined the backlog (`true`) or left it (`false`).
    pub fn backlog(&self, joined: bool) {
        if joined {
            self.backlog.fetch_add(1, Relaxed);
        } else {
            self.backlog.fetch_sub(1, Relaxed);
        }
    }

    /// A serverless cold start: how long the instance took to launch and become healthy.
    pub fn record_setup(&self, took: Duration) {
        self.model_setup.observe(took);
    }

    /// Records a multi-model invocation's model lookup: `None` when the model was loaded
    /// already, else how long the invocation waited for the load.
    pub fn record_model_load(&self, waited: Option<Duration>) {
        match waited {
            None => {
                self.model_cache_hits.fetch_add(1, Relaxed);
            }
            Some(wait) => self.model_loading_wait.observe(wait),
        }
    }
}

/// The metrics of every endpoint and variant.
#[derive(Debug, Default)]
pub struct Metrics {
    table: Mutex<BTreeMap<(String, String), Arc<Series>>>,
}

impl Metrics {
    /// The series of one variant (created on first use; kept while the endpoint lives,
    /// so a republished endpoint keeps counting).
    pub fn series(&self, endpoint: &str, variant: &str) -> Arc<Series> {
        locked(&self.table)
            .entry((endpoint.to_string(), variant.to_string()))
            .or_default()
            .clone()
    }

    /// Drops an endpoint's series (it was deleted).
    pub fn forget(&self, endpoint: &str) {
        locked(&self.table).retain(|(e, _), _| e != endpoint);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let table = locked(&self.table).clone();
        let mut out = String::new();
        for (name, kind, help, get) in SCALARS {
            if name.starts_with("sagedock_") {
                let _ = writeln!(out, "# HELP {name} {help}");
            } else {
                let _ = writeln!(out, "# HELP {name} CloudWatch AWS/SageMaker {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((endpoint, variant), series) in &table {
                let _ = writeln!(
                    out,
                    "{name}{{{}}} {}",
                    labels(endpoint, variant),
                    get(series).load(Relaxed)
                );
            }
        }
        for (name, cloudwatch, pick) in HISTOGRAMS {
            let _ = writeln!(
                out,
                "# HELP {name} CloudWatch AWS/SageMaker {cloudwatch} (microseconds)"
            );
            let _ = writeln!(out, "# TYPE {name} histogram");
            for ((endpoint, variant), series) in &table {
                pick(series).render(&mut out, name, &labels(endpoint, variant));
            }
        }
        out
    }
}

pub(crate) fn labels(endpoint: &str, variant: &str) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "EndpointName=\"{}\",VariantName=\"{}\"",
        escape(endpoint),
        escape(variant)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms_render_as_prometheus_text() {
        let m = Metrics::default();
        let series = m.series("ep", "AllTraffic");
        series.record(200, Duration::from_micros(400), Duration::from_micros(450));
        series.record(404, Duration::from_micros(300), Duration::from_micros(320));
        m.series("ep", "AllTraffic")
            .record(0, Duration::from_secs(60), Duration::from_secs(60));
        let text = m.render();
        let labels = "EndpointName=\"ep\",VariantName=\"AllTraffic\"";
        assert!(
            text.contains(&format!("sagemaker_invocations_total{{{labels}}} 3")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "sagemaker_invocation_4xx_errors_total{{{labels}}} 1"
        )));
        assert!(text.contains(&format!(
            "sagemaker_invocation_5xx_errors_total{{{labels}}} 1"
        )));
        assert!(text.contains(&format!(
            "sagemaker_invocation_model_errors_total{{{labels}}} 2"
        )));
        assert!(text.contains(&format!(
            "sagemaker_model_latency_microseconds_bucket{{{labels},le=\"500\"}} 2"
        )));
        assert!(text.contains(&format!(
            "sagemaker_model_latency_microseconds_count{{{labels}}} 3"
        )));
        assert!(text.contains(&format!(
            "sagemaker_overhead_latency_microseconds_bucket{{{labels},le=\"50\"}} 3"
        )));
        m.forget("ep");
        assert!(!m.render().contains("AllTraffic"));
    }
}
