//! The search space of a tuning job: its ranges, each read as a coordinate in [0, 1] and
//! back (CONTRACT-training C.1, C.2).
//!
//! Linear ranges (and `Auto`, which SageMaker starts as linear) map evenly; Logarithmic
//! evenly in log space (every value > 0); ReverseLogarithmic evenly in the log of `1 - x`
//! (continuous ranges inside [0, 1) only), fine near 1. Integer values are rounded and
//! written as integers, continuous ones as decimals; a categorical range's values are
//! passed as they were given.

use std::collections::BTreeMap;

/// ScalingType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    Linear,
    Logarithmic,
    ReverseLogarithmic,
}

/// One tuned hyperparameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Integer {
        name: String,
        min: i64,
        max: i64,
        scaling: Scaling,
    },
    Continuous {
        name: String,
        min: f64,
        max: f64,
        scaling: Scaling,
    },
    Categorical {
        name: String,
        values: Vec<String>,
    },
}

/// A range that cannot be searched: the message says which and why.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct RangeError(pub String);

impl Range {
    /// An integer range from the API's strings.
    pub fn integer(
        name: &str,
        min: &str,
        max: &str,
        scaling: Option<&str>,
    ) -> Result<Range, RangeError> {
        let parse = |v: &str, which| {
            v.trim().parse::<i64>().map_err(|_| {
                RangeError(format!(
                    "The {which} '{v}' of integer hyperparameter '{name}' is not an integer."
                ))
            })
        };
        let (lo, hi) = (parse(min, "MinValue")?, parse(max, "MaxValue")?);
        #[allow(clippy::cast_precision_loss)]
        let scaling = checked_scaling(name, lo as f64, hi as f64, scaling, false)?;
        Ok(Range::Integer {
            name: name.to_string(),
            min: lo,
            max: hi,
            scaling,
        })
    }

    /// A continuous range from the API's strings.
    pub fn continuous(
        name: &str,
        min: &str,
        max: &str,
        scaling: Option<&str>,
    ) -> Result<Range, RangeError> {
        let parse = |v: &str, which| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    RangeError(format!(
                        "The {which} '{v}' of continuous hyperparameter '{name}' is not a number."
                    ))
                })
        };
        let (lo, hi) = (parse(min, "MinValue")?, parse(max, "MaxValue")?);
        let scaling = checked_scaling(name, lo, hi, scaling, true)?;
        Ok(Range::Continuous {
            name: name.to_string(),
            min: lo,
            max: hi,
            scaling,
        })
    }

    pub fn categorical(name: &str, values: &[String]) -> Result<Range, RangeError> {
        if values.is_empty() {
            return Err(RangeError(format!(
                "Categorical hyperparameter '{name}' has no values."
            )));
        }
        Ok(Range::Categorical {
            name: name.to_string(),
            values: values.to_vec(),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Range::Integer { name, .. }
            | Range::Continuous { name, .. }
            | Range::Categorical { name, .. } => name,
        }
    }

    /// The value at coordinate `u` in [0, 1], as the training job gets it.
    // The casts are of values already inside the range (and of u in [0, 1]).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn value_at(&self, u: f64) -> String {
        let u = u.clamp(0.0, 1.0);
        match self {
            Range::Integer {
                min, max, scaling, ..
            } => {
                let x = scale(*min as f64, *max as f64, *scaling, u).round() as i64;
                x.clamp(*min, *max).to_string()
            }
            Range::Continuous {
                min, max, scaling, ..
            } => format_float(scale(*min, *max, *scaling, u).clamp(*min, *max)),
            Range::Categorical { values, .. } => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
        }
    }

    /// The coordinate of a value this range produced (the middle of a categorical value's
    /// share of [0, 1]).
    pub fn coordinate_of(&self, value: &str) -> Option<f64> {
        match self {
            Range::Integer {
                min, max, scaling, ..
            } => unscale(
                *min as f64,
                *max as f64,
                *scaling,
                value.parse::<f64>().ok()?,
            ),
            Range::Continuous {
                min, max, scaling, ..
            } => unscale(*min, *max, *scaling, value.parse().ok()?),
            Range::Categorical { values, .. } => {
                let i = values.iter().position(|v| v == value)?;
                Some((i as f64 + 0.5) / values.len() as f64)
            }
        }
    }
}

/// The range's scaling, once its bounds are held to SageMaker's rules: MinValue not above
/// MaxValue, logarithmic ranges positive, reverse logarithmic ones continuous and inside
/// [0, 1).
fn checked_scaling(
    name: &str,
    lo: f64,
    hi: f64,
    scaling: Option<&str>,
    continuous: bool,
) -> Result<Scaling, RangeError> {
    let scaling = scaling_of(name, scaling)?;
    let refuse = |why: &str| Err(RangeError(format!("Hyperparameter '{name}': {why}")));
    if lo > hi {
        return Err(RangeError(format!(
            "The MinValue of hyperparameter '{name}' must not be greater than its MaxValue."
        )));
    }
    match scaling {
        Scaling::Logarithmic if lo <= 0.0 => {
            refuse("logarithmic scaling needs a range of positive values (MinValue > 0).")
        }
        Scaling::ReverseLogarithmic if !continuous => {
            refuse("reverse logarithmic scaling is supported only for continuous hyperparameters.")
        }
        Scaling::ReverseLogarithmic if lo < 0.0 || hi >= 1.0 => {
            refuse("reverse logarithmic scaling needs a range inside 0 <= x < 1.0.")
        }
        _ => Ok(scaling),
    }
}

fn scaling_of(name: &str, scaling: Option<&str>) -> Result<Scaling, RangeError> {
    match scaling.unwrap_or("Auto") {
        "Auto" | "Linear" => Ok(Scaling::Linear),
        "Logarithmic" => Ok(Scaling::Logarithmic),
        "ReverseLogarithmic" => Ok(Scaling::ReverseLogarithmic),
        other => Err(RangeError(format!(
            "Hyperparameter '{name}': unknown ScalingType '{other}'."
        ))),
    }
}

fn scale(min: f64, max: f64, scaling: Scaling, u: f64) -> f64 {
    if u <= 0.0 {
        return min;
    }
    if u >= 1.0 {
        return max;
    }
    match scaling {
        Scaling::Linear => min + u * (max - min),
        Scaling::Logarithmic => (min.ln() + u * (max.ln() - min.ln())).exp(),
        Scaling::ReverseLogarithmic => {
            let (a, b) = ((1.0 - min).ln(), (1.0 - max).ln());
            1.0 - (a + u * (b - a)).exp()
        }
    }
}

fn unscale(min: f64, max: f64, scaling: Scaling, x: f64) -> Option<f64> {
    if max == min {
        return Some(0.5);
    }
    let u = match scaling {
        Scaling::Linear => (x - min) / (max - min),
        Scaling::Logarithmic => (x.ln() - min.ln()) / (max.ln() - min.ln()),
        Scaling::ReverseLogarithmic => {
            let (a, b) = ((1.0 - min).ln(), (1.0 - max).ln());
            ((1.0 - x).ln() - a) / (b - a)
        }
    };
    u.is_finite().then(|| u.clamp(0.0, 1.0))
}

/// A decimal as short as it reads back exactly (Rust's shortest round-trip form).
fn format_float(x: f64) -> String {
    let text = format!("{x}");
    if text.contains(['.', 'e', 'E']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// The ranges of one tuning job.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub ranges: Vec<Range>,
}

impl Space {
    /// The values at a point of the unit cube.
    pub fn values_at(&self, point: &[f64]) -> BTreeMap<String, String> {
        self.ranges
            .iter()
            .zip(point)
            .map(|(r, u)| (r.name().to_string(), r.value_at(*u)))
            .collect()
    }

    /// The point of a set of values this space produced.
    pub fn point_of(&self, values: &BTreeMap<String, String>) -> Option<Vec<f64>> {
        self.ranges
            .iter()
            .map(|r| r.coordinate_of(values.get(r.name())?))
            .collect()
    }

    /// Every combination of the categorical values, in order (the Grid strategy); None
    /// when a range is not categorical.
    pub fn grid(&self) -> Option<Vec<BTreeMap<String, String>>> {
        let mut combos = vec![BTreeMap::new()];
        for range in &self.ranges {
            let Range::Categorical { name, values } = range else {
                return None;
            };
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut next = c.clone();
                        next.insert(name.clone(), v.clone());
                        next
                    })
                })
                .collect();
        }
        Some(combos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_their_scaling_and_read_back() {
        let log = Range::continuous("lr", "0.001", "0.1", Some("Logarithmic")).unwrap();
        assert_eq!(log.value_at(0.0), "0.001");
        assert_eq!(log.value_at(1.0), "0.1");
        let mid: f64 = log.value_at(0.5).parse().unwrap();
        assert!((mid - 0.01).abs() < 1e-9, "{mid}");
        assert!((log.coordinate_of("0.01").unwrap() - 0.5).abs() < 1e-9);
        let reverse = Range::continuous("m", "0.9", "0.999", Some("ReverseLogarithmic")).unwrap();
        let mid: f64 = reverse.value_at(0.5).parse().unwrap();
        assert!(
            (mid - (1.0 - (0.1f64 * 0.001).sqrt())).abs() < 1e-9,
            "{mid}"
        );
        let epochs = Range::integer("epochs", "20", "100", None).unwrap();
        assert_eq!(epochs.value_at(0.5), "60");
        assert_eq!(epochs.value_at(1.0), "100");
        let lin = Range::continuous("dropout", "0.2", "0.6", Some("Linear")).unwrap();
        assert_eq!(lin.value_at(0.0), "0.2");
        let whole = Range::continuous("w", "1", "3", None).unwrap();
        assert_eq!(whole.value_at(0.5), "2.0");
        let cat = Range::categorical("opt", &["\"adam\"".into(), "\"sgd\"".into()]).unwrap();
        assert_eq!(cat.value_at(0.2), "\"adam\"");
        assert_eq!(cat.value_at(0.99), "\"sgd\"");
        assert_eq!(cat.coordinate_of("\"sgd\""), Some(0.75));
    }

    #[test]
    fn ranges_sagemaker_refuses_are_refused() {
        assert!(Range::continuous("lr", "0", "1", Some("Logarithmic")).is_err());
        assert!(Range::integer("n", "1", "9", Some("ReverseLogarithmic")).is_err());
        assert!(Range::continuous("m", "0.5", "1.0", Some("ReverseLogarithmic")).is_err());
        assert!(Range::integer("n", "5", "1", None).is_err());
        assert!(Range::integer("n", "1.5", "3", None)
            .unwrap_err()
            .0
            .contains("not an integer"));
        assert!(Range::categorical("c", &[]).is_err());
    }

    #[test]
    fn the_grid_is_every_combination_of_categorical_values() {
        let space = Space {
            ranges: vec![
                Range::categorical("a", &["1".into(), "2".into()]).unwrap(),
                Range::categorical("b", &["x".into(), "y".into(), "z".into()]).unwrap(),
            ],
        };
        let grid = space.grid().unwrap();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[0]["a"], "1");
        assert_eq!(grid[5]["b"], "z");
        let mixed = Space {
            ranges: vec![Range::integer("n", "1", "2", None).unwrap()],
        };
        assert!(mixed.grid().is_none());
    }
}
