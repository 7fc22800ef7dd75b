//! A training job's metrics, read from its log as it streams: each MetricDefinition's
//! regex is tried on every line, and the first capture group, read as a number, is the
//! metric's value at the line's time (CONTRACT §5, CONTRACT-training C.4).
//!
//! SageMaker applies the regexes to log text in which a tab reads `#011` (the syslog
//! escape), which is why AWS's own definitions (XGBoost's `#011validation-rmse:`) say so:
//! a line with tabs is tried both as it is and with its tabs written that way.
//! The value that counts as final is the last one emitted.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};

use crate::logs::Event;
use crate::state::training_job::{MetricDatum, MetricDefinition};

/// A compiled set of metric definitions and what they have read so far.
#[derive(Debug, Default)]
pub struct Metrics {
    definitions: Vec<(String, Regex)>,
    /// Every value read, per metric, in log order: (epoch milliseconds, value).
    series: BTreeMap<String, Vec<(i64, f64)>>,
}

/// A definition whose regex cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("MetricDefinitions: the regex of metric '{name}' is not valid: {detail}")]
pub struct BadDefinition {
    pub name: String,
    pub detail: String,
}

impl Metrics {
    /// Compiles the definitions (each regex at most 500 characters, botocore's limit, and
    /// held to a size a log line cannot make expensive).
    pub fn new(definitions: &[MetricDefinition]) -> Result<Metrics, BadDefinition> {
        let definitions = definitions
            .iter()
            .map(|d| {
                RegexBuilder::new(&d.regex)
                    .size_limit(1 << 20)
                    .build()
                    .map(|r| (d.name.clone(), r))
                    .map_err(|e| BadDefinition {
                        name: d.name.clone(),
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Metrics {
            definitions,
            series: BTreeMap::new(),
        })
    }

    /// Reads the values in a batch of lines.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            let escaped = event
                .message
                .contains('\t')
                .then(|| event.message.replace('\t', "#011"));
            for (name, regex) in &self.definitions {
                let value = [Some(event.message.as_str()), escaped.as_deref()]
                    .into_iter()
                    .flatten()
                    .find_map(|text| first_number(regex, text));
                if let Some(value) = value {
                    self.series
                        .entry(name.clone())
                        .or_default()
                        .push((event.timestamp, value));
                }
            }
        }
    }

    /// FinalMetricDataList: each metric's last value, with its time (seconds).
    pub fn final_values(&self) -> Vec<MetricDatum> {
        self.series
            .iter()
            .filter_map(|(name, values)| {
                let (at, value) = values.last()?;
                Some(MetricDatum {
                    metric_name: name.clone(),
                    value: *value,
                    timestamp: *at as f64 / 1000.0,
                })
            })
            .collect()
    }

    /// Every value read of one metric.
    pub fn series(&self, name: &str) -> &[(i64, f64)] {
        self.series.get(name).map_or(&[], Vec::as_slice)
    }

    /// The latest value of each metric as Prometheus samples of `sagedock_training_metric`,
    /// stamped with the time of the log line it was read from (successive scrapes make the
    /// series).
    pub fn render(&self, job: &str, out: &mut String) {
        use std::fmt::Write;
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        for (name, values) in &self.series {
            if let Some((at, value)) = values.last() {
                let _ = writeln!(
                    out,
                    "{RENDERED}{{TrainingJobName=\"{}\",MetricName=\"{}\"}} {value} {at}",
                    escape(job),
                    escape(name)
                );
            }
        }
    }
}

/// The Prometheus metric the training metrics are exposed as.
pub const RENDERED: &str = "sagedock_training_metric";

/// The first capture group (else the whole match) as a finite number: the number it
/// starts with. A capture like `(\S+)` runs on into what follows when fields are joined
/// by tabs read as `#011` (XGBoost's `[3]#011train-rmse:1.5#011validation-rmse:2.25`);
/// the metric is still the leading number, as SageMaker reports `train:rmse` for it.
fn first_number(regex: &Regex, text: &str) -> Option<f64> {
    let captures = regex.captures(text)?;
    let text = captures.get(1).or_else(|| captures.get(0))?.as_str().trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(text.len());
    // The longest prefix that is a number ("1.5e" is "1.5").
    (1..=end)
        .rev()
        .find_map(|n| text[..n].parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, regex: &str) -> MetricDefinition {
        MetricDefinition {
            name: name.into(),
            regex: regex.into(),
        }
    }

    fn line(at: i64, text: &str) -> Event {
        Event {
            timestamp: at,
            message: text.into(),
        }
    }

    #[test]
    fn the_last_value_of_each_metric_is_final() {
        let mut m = Metrics::new(&[
            def("val_acc", r"val_acc: ([0-9\.]+)"),
            def("loss", r"loss=(\S+);"),
        ])
        .unwrap();
        m.observe(&[
            line(1000, "epoch 1 - loss=0.9; val_acc: 0.61"),
            line(2000, "nothing here"),
            line(3000, "epoch 2 - loss=0.5; val_acc: 0.87"),
            line(4000, "val_acc: not-a-number"),
        ]);
        let finals = m.final_values();
        assert_eq!(finals.len(), 2);
        assert_eq!(finals[1].metric_name, "val_acc");
        assert_eq!(finals[1].value, 0.87);
        assert_eq!(finals[1].timestamp, 3.0);
        assert_eq!(m.series("loss"), &[(1000, 0.9), (3000, 0.5)]);
    }

    #[test]
    fn tabs_read_as_syslog_escapes_as_sagemaker_sees_them() {
        let mut m = Metrics::new(&[def(
            "validation:rmse",
            r".*\[[0-9]+\].*#011validation-rmse:(\S+)",
        )])
        .unwrap();
        m.observe(&[line(5, "[3]\ttrain-rmse:1.5\tvalidation-rmse:2.25")]);
        assert_eq!(m.final_values()[0].value, 2.25);
    }

    #[test]
    fn a_capture_that_runs_into_the_next_field_keeps_its_leading_number() {
        let mut m = Metrics::new(&[
            def("train:rmse", r".*\[[0-9]+\]#011train-rmse:(\S+)"),
            def("loss", r"loss=(\S+)"),
        ])
        .unwrap();
        m.observe(&[
            line(5, "[3]\ttrain-rmse:1.5\tvalidation-rmse:2.25"),
            line(6, "loss=2.5e-3;"),
        ]);
        let finals = m.final_values();
        assert_eq!(finals[0].value, 0.0025);
        assert_eq!(finals[1].value, 1.5);
    }

    #[test]
    fn the_latest_values_render_as_prometheus_samples_with_their_time() {
        let mut m = Metrics::new(&[def("val_acc", r"val_acc: ([0-9\.]+)")]).unwrap();
        m.observe(&[line(1000, "val_acc: 0.5"), line(2000, "val_acc: 0.75")]);
        let mut out = String::new();
        m.render("job-1", &mut out);
        assert_eq!(
            out,
            "sagedock_training_metric{TrainingJobName=\"job-1\",MetricName=\"val_acc\"} 0.75 2000\n"
        );
    }

    #[test]
    fn a_bad_regex_names_its_metric() {
        let err = Metrics::new(&[def("acc", "acc: ([0-9")]).unwrap_err();
        assert!(err.to_string().contains("'acc'"), "{err}");
    }
}
