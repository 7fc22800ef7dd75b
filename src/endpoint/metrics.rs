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

    fn counts(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            count: self.count.load(Relaxed),
            sum_us: self.sum_us.load(Relaxed),
        }
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

/// A histogram's counts at one moment: what `/metrics` shows of it, as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramCounts {
    /// Observations per bucket (not cumulative), by [`BUCKETS_US`].
    buckets: [u64; BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
}

impl HistogramCounts {
    /// What was observed after `earlier` (counts of the same histogram, taken before).
    pub fn since(&self, earlier: &HistogramCounts) -> HistogramCounts {
        HistogramCounts {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            count: self.count.saturating_sub(earlier.count),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean_us(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us as f64 / self.count as f64)
    }

    /// The `q` quantile (0 to 1) in microseconds, interpolated linearly inside the bucket
    /// it falls in, as Prometheus's `histogram_quantile` does: an estimate as coarse as the
    /// buckets. Past the last bucket it is the last bound.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        let mut lower = 0u64;
        for (&upper, &n) in BUCKETS_US.iter().zip(&self.buckets) {
            if n > 0 && (below + n) as f64 >= rank {
                let within = (rank - below as f64) / n as f64;
                return Some(lower as f64 + (upper - lower) as f64 * within);
            }
            below += n;
            lower = upper;
        }
        Some(lower as f64)
    }
}

/// One variant's counters and latency histograms at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesCounts {
    pub invocations: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub model_errors: u64,
    pub model_latency: HistogramCounts,
    pub overhead_latency: HistogramCounts,
}

impl SeriesCounts {
    /// What happened after `earlier` (the same series' counts, taken before).
    pub fn since(&self, earlier: &SeriesCounts) -> SeriesCounts {
        SeriesCounts {
            invocations: self.invocations.saturating_sub(earlier.invocations),
            errors_4xx: self.errors_4xx.saturating_sub(earlier.errors_4xx),
            errors_5xx: self.errors_5xx.saturating_sub(earlier.errors_5xx),
            model_errors: self.model_errors.saturating_sub(earlier.model_errors),
            model_latency: self.model_latency.since(&earlier.model_latency),
            overhead_latency: self.overhead_latency.since(&earlier.overhead_latency),
        }
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

    /// Every variant's counts now, by endpoint and variant name.
    pub fn counts(&self) -> BTreeMap<(String, String), SeriesCounts> {
        let table = locked(&self.table).clone();
        table
            .into_iter()
            .map(|(key, s)| {
                let counts = SeriesCounts {
                    invocations: s.invocations.load(Relaxed),
                    errors_4xx: s.errors_4xx.load(Relaxed),
                    errors_5xx: s.errors_5xx.load(Relaxed),
                    model_errors: s.model_errors.load(Relaxed),
                    model_latency: s.model_latency.counts(),
                    overhead_latency: s.overhead_latency.counts(),
                };
                (key, counts)
            })
            .collect()
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

    #[test]
    fn counts_give_rates_and_bucket_quantiles_between_two_moments() {
        let m = Metrics::default();
        let series = m.series("ep", "AllTraffic");
        series.record(200, Duration::from_micros(40), Duration::from_micros(45));
        let before = m.counts()[&("ep".to_string(), "AllTraffic".to_string())];
        // 98 answers in (500, 1000] µs, 2 in (5, 10] ms.
        for _ in 0..98 {
            series.record(200, Duration::from_micros(800), Duration::from_micros(820));
        }
        for _ in 0..2 {
            series.record(500, Duration::from_millis(7), Duration::from_millis(7));
        }
        let after = m.counts()[&("ep".to_string(), "AllTraffic".to_string())];
        let window = after.since(&before);
        assert_eq!(window.invocations, 100);
        assert_eq!(window.errors_5xx, 2);
        assert_eq!(window.model_latency.count(), 100);
        // The median falls in the (500, 1000] bucket: 500 + 500 * 50/98.
        let p50 = window.model_latency.quantile_us(0.5).unwrap();
        assert!((p50 - (500.0 + 500.0 * 50.0 / 98.0)).abs() < 1e-6, "{p50}");
        // The 99th in (5000, 10000]: one of its two observations in.
        let p99 = window.model_latency.quantile_us(0.99).unwrap();
        assert!((p99 - 7_500.0).abs() < 1e-6, "{p99}");
        let mean = window.model_latency.mean_us().unwrap();
        assert!((mean - (98.0 * 800.0 + 2.0 * 7000.0) / 100.0).abs() < 1e-6);
        // Nothing in a window: no latency.
        assert_eq!(after.since(&after).model_latency.quantile_us(0.5), None);
        // Past the last bucket: its bound.
        series.record(200, Duration::from_secs(120), Duration::from_secs(120));
        let slow = m.counts()[&("ep".to_string(), "AllTraffic".to_string())].since(&after);
        assert_eq!(slow.model_latency.quantile_us(0.5), Some(60_000_000.0));
    }
}
