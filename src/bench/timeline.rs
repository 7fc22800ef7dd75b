//! The run second by second: answers, failures and latency quantiles per second of the
//! measured window, overall and per production variant — what the report's plots of
//! "over time" show.
//!
//! Each connection keeps its answers as samples (when, how long, which variant; 12 bytes
//! each, up to [`MAX_SAMPLES`] a connection), merged once at the end: nothing shared is
//! touched per request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Samples one connection keeps at most (about 48 MB); past it the timeline stops growing
/// and says so.
pub const MAX_SAMPLES: usize = 4_000_000;

/// What one request came to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// When it ended, in milliseconds from the start of the measured window.
    pub end_ms: u32,
    pub latency_us: u32,
    /// `None`: failed; else the variant's index in its connection's list (0 when the
    /// target names none).
    pub variant: Option<u16>,
}

/// One connection's samples, and the variant names their indices stand for.
#[derive(Debug, Default)]
pub(super) struct Samples {
    pub samples: Vec<Sample>,
    pub variants: Vec<Option<String>>,
    pub truncated: bool,
}

impl Samples {
    pub fn record(&mut self, end: Duration, latency: Duration, outcome: Outcome<'_>) {
        if self.samples.len() >= MAX_SAMPLES {
            self.truncated = true;
            return;
        }
        let variant = match outcome {
            Outcome::Failed => None,
            Outcome::Ok(name) => Some(self.index_of(name)),
        };
        self.samples.push(Sample {
            end_ms: u32::try_from(end.as_millis()).unwrap_or(u32::MAX),
            latency_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
            variant,
        });
    }

    fn index_of(&mut self, name: Option<&str>) -> u16 {
        if let Some(i) = self.variants.iter().position(|v| v.as_deref() == name) {
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        self.variants.push(name.map(str::to_string));
        u16::try_from(self.variants.len() - 1).unwrap_or(u16::MAX)
    }
}

/// How a request ended, for the timeline.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome<'a> {
    /// Answered 2xx, by this variant when the answer said.
    Ok(Option<&'a str>),
    Failed,
}

/// One second of the measured window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    /// Seconds from the start of the window (this second covers `[second, second + 1)`).
    pub second: u32,
    /// 2xx answers that ended in it.
    pub ok: u64,
    pub failed: u64,
    /// Of its 2xx answers, in milliseconds; absent when there were none.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// The same per production variant, when the target names them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, VariantSecond>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VariantSecond {
    pub ok: u64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// The per-second timeline of every connection's samples over a window of `duration`.
pub(super) fn seconds(all: Vec<Samples>, duration: Duration) -> (Vec<Second>, bool) {
    let count = usize::try_from(crate::units::saturating_u64(duration.as_secs_f64().ceil()))
        .unwrap_or(usize::MAX)
        .max(1);
    let truncated = all.iter().any(|s| s.truncated);
    // Latencies per second, overall and per variant name.
    let mut overall: Vec<Vec<u32>> = vec![Vec::new(); count];
    let mut failed = vec![0u64; count];
    let mut by_variant: BTreeMap<String, Vec<Vec<u32>>> = BTreeMap::new();
    for connection in all {
        for s in connection.samples {
            // An answer that ended after the window (a slow one sent near its end) counts
            // in the last second.
            let i = (s.end_ms / 1000) as usize;
            let i = i.min(count - 1);
            let Some(v) = s.variant else {
                failed[i] += 1;
                continue;
            };
            overall[i].push(s.latency_us);
            if let Some(Some(name)) = connection.variants.get(usize::from(v)) {
                by_variant
                    .entry(name.clone())
                    .or_insert_with(|| vec![Vec::new(); count])[i]
                    .push(s.latency_us);
            }
        }
    }
    let timeline = overall
        .into_iter()
        .enumerate()
        .map(|(i, mut latencies)| {
            let (p50, p99) = quantiles(&mut latencies);
            let variants = by_variant
                .iter_mut()
                .map(|(name, per_second)| {
                    let l = &mut per_second[i];
                    let (p50, p99) = quantiles(l);
                    let ok = l.len() as u64;
                    (name.clone(), VariantSecond { ok, p50, p99 })
                })
                .collect();
            Second {
                second: u32::try_from(i).unwrap_or(u32::MAX),
                ok: latencies.len() as u64,
                failed: failed[i],
                p50,
                p99,
                variants,
            }
        })
        .collect();
    (timeline, truncated)
}

/// The median and 99th percentile of `latencies` (µs) in milliseconds, nearest-rank.
fn quantiles(latencies: &mut [u32]) -> (Option<f64>, Option<f64>) {
    if latencies.is_empty() {
        return (None, None);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let rank = usize::try_from(crate::units::saturating_u64(
            (q * latencies.len() as f64).ceil(),
        ))
        .unwrap_or(usize::MAX);
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    (Some(at(0.50)), Some(at(0.99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_into_their_seconds_with_quantiles_per_variant() {
        let mut a = Samples::default();
        for ms in 1..=100u64 {
            a.record(
                Duration::from_millis(10 * ms),
                Duration::from_micros(ms * 1000),
                Outcome::Ok(Some("A")),
            );
        }
        let mut b = Samples::default();
        b.record(
            Duration::from_millis(1500),
            Duration::from_millis(7),
            Outcome::Ok(Some("B")),
        );
        b.record(Duration::from_millis(1600), Duration::ZERO, Outcome::Failed);
        // Ended after the window: counted in its last second.
        b.record(
            Duration::from_millis(2500),
            Duration::from_millis(9),
            Outcome::Ok(Some("B")),
        );
        let (seconds, truncated) = seconds(vec![a, b], Duration::from_secs(2));
        assert!(!truncated);
        assert_eq!(seconds.len(), 2);
        // 0–999 ms: 99 of A's answers (10 … 990 ms), 1 … 99 ms long.
        assert_eq!(seconds[0].ok, 99);
        assert_eq!(seconds[0].p50, Some(50.0));
        assert_eq!(seconds[0].p99, Some(99.0));
        assert_eq!(seconds[0].variants["A"].ok, 99);
        assert_eq!(seconds[0].variants["B"].ok, 0);
        // 1000–1999 ms: A's last, B's two answers, one failure.
        assert_eq!(seconds[1].ok, 3);
        assert_eq!(seconds[1].failed, 1);
        assert_eq!(seconds[1].variants["B"].ok, 2);
        assert_eq!(seconds[1].variants["B"].p99, Some(9.0));
    }
}
