//! `--find-max`: the highest open-loop rate at which the target still meets a latency
//! objective — the figure to know before choosing an instance type or count.
//!
//! A closed-loop probe first measures what the target sustains with the load's
//! connections; the search then starts at half of that, grows by half while steps pass,
//! and bisects between the highest rate that passed and the lowest that failed until they
//! are within [`TOLERANCE`] of each other. A step passes when every request was answered
//! 2xx, on schedule (none unsent), within every objective.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::{run, BenchError, Load, Report};

/// The search stops when the highest passing and the lowest failing rate are this close
/// (relative to the failing one).
pub const TOLERANCE: f64 = 0.05;
/// Steps at most, the probe not counted.
pub const MAX_STEPS: usize = 14;

/// A latency quantile's bound, `p99=50ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// The quantile, 0 to 1 (0.99 for `p99`).
    pub quantile: f64,
    pub max: Duration,
}

/// Latency objectives, all of which a step must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub objectives: Vec<Objective>,
}

/// Why an objective could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--slo {text:?}: {why} (e.g. p99=50ms, or p50=10ms,p99=50ms)")]
pub struct SloError {
    text: String,
    why: String,
}

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(text: &str) -> Result<Slo, SloError> {
        let bad = |why: String| SloError {
            text: text.to_string(),
            why,
        };
        let objectives = text
            .split(',')
            .map(|part| {
                let (name, bound) = part
                    .trim()
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{part:?} is not QUANTILE=DURATION")))?;
                let quantile = match name.trim() {
                    "p50" => 0.50,
                    "p90" => 0.90,
                    "p99" => 0.99,
                    "p99.9" | "p999" => 0.999,
                    other => return Err(bad(format!("{other:?} is not p50, p90, p99 or p99.9"))),
                };
                let max = humantime::parse_duration(bound.trim())
                    .map_err(|e| bad(format!("{bound:?}: {e}")))?;
                if max.is_zero() {
                    return Err(bad(format!("{bound:?} is no time at all")));
                }
                Ok(Objective { quantile, max })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Slo { objectives })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .objectives
            .iter()
            .map(|o| {
                let name = match o.quantile {
                    0.999 => "p99.9".to_string(),
                    q => format!("p{}", (q * 100.0).round()),
                };
                format!("{name}={}", humantime::format_duration(o.max))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Slo {
    /// Why `report` misses the objectives; `None` when it meets them.
    pub fn missed_by(&self, report: &Report) -> Option<String> {
        if report.failed > 0 {
            return Some(format!(
                "{} of {} requests failed",
                report.failed, report.requests
            ));
        }
        if report.unsent > 0 {
            return Some(format!(
                "{} requests were never sent: every connection was busy (if the target is not saturated, raise --concurrency)",
                report.unsent
            ));
        }
        let Some(latency) = &report.latency_ms else {
            return Some("no request was answered".into());
        };
        self.objectives.iter().find_map(|o| {
            let ms = quantile_ms(latency, o.quantile);
            (ms > o.max.as_secs_f64() * 1000.0).then(|| {
                format!(
                    "p{} {ms:.2} ms is over {}",
                    (o.quantile * 1000.0).round() / 10.0,
                    humantime::format_duration(o.max)
                )
            })
        })
    }
}

/// A quantile of a report's latency, from its distribution.
fn quantile_ms(latency: &super::Latency, quantile: f64) -> f64 {
    let percentile = quantile * 100.0;
    latency
        .distribution
        .iter()
        .find(|[p, _]| *p >= percentile)
        .map_or(latency.max, |[_, ms]| *ms)
}

/// One rate tried.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Requests per second asked for.
    pub rate: f64,
    pub passed: bool,
    /// Why it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// 2xx answers per second.
    pub throughput: f64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub failed: u64,
    pub unsent: u64,
}

/// The search and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub url: String,
    pub slo: String,
    pub connections: usize,
    /// Each step's measured window.
    pub step_s: f64,
    /// What the closed-loop probe sustained, per second.
    pub probe_throughput: f64,
    /// The highest rate that met the objectives; `None` when none did.
    pub max_rate: Option<f64>,
    /// Every step, in the order tried.
    pub steps: Vec<Step>,
}

impl Step {
    fn of(rate: f64, report: &Report, slo: &Slo) -> Step {
        let why = slo.missed_by(report);
        Step {
            rate,
            passed: why.is_none(),
            why,
            throughput: report.throughput,
            p50: report.latency_ms.as_ref().map(|l| l.p50),
            p99: report.latency_ms.as_ref().map(|l| l.p99),
            failed: report.failed,
            unsent: report.unsent,
        }
    }
}

/// Searches for the highest rate meeting `slo`, each step a run of `load` at one rate;
/// `each` is told of every step as it ends.
pub async fn find_max(
    load: Load,
    slo: &Slo,
    mut each: impl FnMut(&Step),
) -> Result<Search, BenchError> {
    let probe = run(Load {
        rate: None,
        ..load.clone()
    })
    .await?;
    let mut search = Search {
        url: load.url.to_string(),
        slo: slo.to_string(),
        connections: load.connections,
        step_s: load.duration.as_secs_f64(),
        probe_throughput: probe.throughput,
        max_rate: None,
        steps: Vec::new(),
    };
    if probe.throughput <= 0.0 {
        return Ok(search);
    }
    let floor = probe.throughput / 64.0;
    let (mut passed, mut failed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = probe.throughput / 2.0;
    while search.steps.len() < MAX_STEPS {
        let report = run(Load {
            rate: Some(rate),
            ..load.clone()
        })
        .await?;
        let step = Step::of(rate, &report, slo);
        each(&step);
        if step.passed {
            passed = Some(rate);
        } else {
            failed = Some(rate);
        }
        search.steps.push(step);
        rate = match (passed, failed) {
            (Some(low), Some(high)) if (high - low) / high <= TOLERANCE => break,
            (Some(low), Some(high)) => (low + high) / 2.0,
            (Some(low), None) => low * 1.5,
            // Nothing passed yet: halve, down to a 64th of what the probe sustained.
            (None, _) if rate / 2.0 < floor => break,
            (None, _) => rate / 2.0,
        };
    }
    search.max_rate = passed;
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_are_read_and_said_back() {
        let slo: Slo = "p99=50ms".parse().unwrap();
        assert_eq!(
            slo.objectives,
            vec![Objective {
                quantile: 0.99,
                max: Duration::from_millis(50)
            }]
        );
        let two: Slo = "p50=10ms, p99.9=1s".parse().unwrap();
        assert_eq!(two.objectives.len(), 2);
        assert_eq!(two.to_string(), "p50=10ms,p99.9=1s");
        for bad in ["p99", "p42=1ms", "p99=fast", "p99=0ms", ""] {
            let err = bad.parse::<Slo>().unwrap_err();
            assert!(err.to_string().contains("e.g. p99=50ms"), "{bad}: {err}");
        }
    }
}
