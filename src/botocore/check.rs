//! Checking a value against a shape, and saying what is wrong as AWS says it.

use std::fmt::Write as _;

use serde_json::Value;

use super::{lower_first, Kind, Model, Shape};

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// A member has the wrong JSON type (AWS: `SerializationException`).
    Serialization(String),
    /// Constraint failures, in AWS's words (AWS: `ValidationException`).
    Constraints(Vec<Violation>),
}

/// One failed constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The member's path as AWS names it (`productionVariants.1.member.variantName`).
    pub at: String,
    /// The value as AWS quotes it, or `None` for a missing member (`Value null at`).
    pub value: Option<String>,
    pub rule: String,
}

impl Invalid {
    /// The message AWS answers with.
    pub fn message(&self) -> String {
        match self {
            Invalid::Serialization(message) => message.clone(),
            Invalid::Constraints(violations) => {
                let n = violations.len();
                let mut out = format!(
                    "{n} validation error{} detected: ",
                    if n == 1 { "" } else { "s" }
                );
                for (i, v) in violations.iter().enumerate() {
                    if i > 0 {
                        out.push_str("; ");
                    }
                    match &v.value {
                        Some(value) => {
                            let _ = write!(out, "Value '{value}' at '{}'", v.at);
                        }
                        None => {
                            let _ = write!(out, "Value null at '{}'", v.at);
                        }
                    }
                    let _ = write!(out, " failed to satisfy constraint: {}", v.rule);
                }
                out
            }
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// A value as AWS quotes it in a message (long ones cut).
fn quote(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 256 {
        text.chars().take(256).collect::<String>() + "…"
    } else {
        text
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Formats a bound without a trailing `.0` (`1`, not `1.0`).
fn bound(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// A member of the wrong JSON type (AWS: `SerializationException`).
fn wrong_type(at: &str, value: &Value, expected: &str) -> Invalid {
    let at = if at.is_empty() { "the request" } else { at };
    Invalid::Serialization(format!(
        "Value {} at '{at}' is {}; expected {expected}",
        quote_json(value),
        json_type(value)
    ))
}

pub(super) struct Check<'m> {
    pub(super) model: &'m Model,
    pub(super) violations: Vec<Violation>,
    pub(super) exempt: fn(&str, &str) -> bool,
}

impl Check<'_> {
    fn violate(&mut self, at: &str, value: &Value, rule: String) {
        self.violations.push(Violation {
            at: at.to_string(),
            value: Some(quote(value)),
            rule,
        });
    }

    /// Checks `value` against the shape `name`, at the path `at`.
    pub(super) fn value(&mut self, name: &str, value: &Value, at: &str) -> Result<(), Invalid> {
        let shape = self.model.shape(name);
        match shape.kind {
            Kind::Structure => self.structure(shape, value, at),
            Kind::List => self.list(shape, value, at),
            Kind::Map => self.map(shape, value, at),
            Kind::String => self.string(name, shape, value, at),
            Kind::Integer | Kind::Long => self.integer(shape, value, at),
            Kind::Float | Kind::Double => self.float(shape, value, at),
            Kind::Boolean => match value {
                Value::Bool(_) => Ok(()),
                _ => Err(wrong_type(at, value, "a boolean")),
            },
            Kind::Timestamp => match value {
                Value::Number(_) => Ok(()),
                _ => Err(wrong_type(
                    at,
                    value,
                    "a timestamp (seconds since the epoch)",
                )),
            },
            Kind::Blob => match value {
                Value::String(_) => Ok(()),
                _ => Err(wrong_type(at, value, "base64 text")),
            },
        }
    }

    fn list(&mut self, shape: &Shape, value: &Value, at: &str) -> Result<(), Invalid> {
        let Value::Array(items) = value else {
            return Err(wrong_type(at, value, "a list"));
        };
        self.length(shape, items.len(), || value.clone(), at);
        let member = shape.member.as_deref().unwrap_or_default();
        for (i, item) in items.iter().enumerate().filter(|(_, v)| !v.is_null()) {
            self.value(member, item, &format!("{at}.{}.member", i + 1))?;
        }
        Ok(())
    }

    fn map(&mut self, shape: &Shape, value: &Value, at: &str) -> Result<(), Invalid> {
        let Value::Object(entries) = value else {
            return Err(wrong_type(at, value, "a map"));
        };
        self.length(shape, entries.len(), || value.clone(), at);
        let key = shape.key.as_deref().unwrap_or_default();
        let value_shape = shape.value.as_deref().unwrap_or_default();
        for (k, v) in entries {
            self.nested("Map keys", key, &Value::String(k.clone()), at)?;
            if !v.is_null() {
                self.nested("Map value", value_shape, v, at)?;
            }
        }
        Ok(())
    }

    fn string(
        &mut self,
        name: &str,
        shape: &Shape,
        value: &Value,
        at: &str,
    ) -> Result<(), Invalid> {
        let Value::String(text) = value else {
            return Err(wrong_type(at, value, "a string"));
        };
        self.string_rules(name, shape, text, at);
        Ok(())
    }

    /// Checks `text` against the string shape `name` (a header's value).
    pub(super) fn text(&mut self, name: &str, text: &str, at: &str) {
        let shape = self.model.shape(name);
        self.string_rules(name, shape, text, at);
    }

    /// A string's length, pattern and enum rules; the value is copied only into a
    /// violation.
    fn string_rules(&mut self, name: &str, shape: &Shape, text: &str, at: &str) {
        let value = || Value::from(text);
        self.length(shape, text.chars().count(), value, at);
        if let Some((pattern, regex)) = &shape.pattern {
            if !regex.is_match(text) && !(self.exempt)(name, text) {
                let rule = format!("Member must satisfy regular expression pattern: {pattern}");
                self.violate(at, &value(), rule);
            }
        }
        if let Some(values) = shape
            .values
            .as_ref()
            .filter(|v| !v.iter().any(|v| v == text))
        {
            let rule = format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            );
            self.violate(at, &value(), rule);
        }
    }

    /// An integer, held to its type's range (AWS's `integer` is 32 bits) and its shape's.
    fn integer(&mut self, shape: &Shape, value: &Value, at: &str) -> Result<(), Invalid> {
        let integral = match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        };
        if !integral {
            return Err(wrong_type(at, value, "an integer"));
        }
        let (type_min, type_max) = if shape.kind == Kind::Integer {
            (f64::from(i32::MIN), f64::from(i32::MAX))
        } else {
            (-9.223_372_036_854_776e18, 9.223_372_036_854_776e18)
        };
        self.range(
            shape,
            value.as_f64().unwrap_or(0.0),
            value,
            at,
            type_min,
            type_max,
        );
        Ok(())
    }

    fn float(&mut self, shape: &Shape, value: &Value, at: &str) -> Result<(), Invalid> {
        let Some(x) = value.as_f64() else {
            return Err(wrong_type(at, value, "a number"));
        };
        let limit = if shape.kind == Kind::Float {
            f64::from(f32::MAX)
        } else {
            f64::MAX
        };
        self.range(shape, x, value, at, -limit, limit);
        Ok(())
    }

    /// A map's key or value: its failures are said as one rule of the map's.
    fn nested(&mut self, what: &str, shape: &str, value: &Value, at: &str) -> Result<(), Invalid> {
        let before = self.violations.len();
        self.value(shape, value, at)?;
        let inner: Vec<Violation> = self.violations.drain(before..).collect();
        if !inner.is_empty() {
            let rules: Vec<&str> = inner.iter().map(|v| v.rule.as_str()).collect();
            self.violate(
                at,
                value,
                format!("{what} must satisfy constraint: [{}]", rules.join(", ")),
            );
        }
        Ok(())
    }

    pub(super) fn structure(
        &mut self,
        shape: &Shape,
        value: &Value,
        at: &str,
    ) -> Result<(), Invalid> {
        let Value::Object(map) = value else {
            return Err(wrong_type(at, value, "a structure (a JSON object)"));
        };
        for required in &shape.required {
            if map.get(required).is_none_or(Value::is_null) {
                self.violations.push(Violation {
                    at: join(at, required),
                    value: None,
                    rule: "Member must not be null".into(),
                });
            }
        }
        for (member, (member_shape, _)) in &shape.members {
            if let Some(v) = map.get(member).filter(|v| !v.is_null()) {
                self.value(member_shape, v, &join(at, member))?;
            }
        }
        Ok(())
    }

    /// The length rules; `value` makes the value a violation quotes.
    fn length(&mut self, shape: &Shape, len: usize, value: impl Fn() -> Value, at: &str) {
        let len = len as f64;
        if let Some(min) = shape.min.filter(|&m| len < m) {
            self.violate(
                at,
                &value(),
                format!(
                    "Member must have length greater than or equal to {}",
                    bound(min)
                ),
            );
        }
        if let Some(max) = shape.max.filter(|&m| len > m) {
            self.violate(
                at,
                &value(),
                format!(
                    "Member must have length less than or equal to {}",
                    bound(max)
                ),
            );
        }
    }

    fn range(&mut self, shape: &Shape, x: f64, value: &Value, at: &str, lo: f64, hi: f64) {
        let min = shape.min.map_or(lo, |m| m.max(lo));
        let max = shape.max.map_or(hi, |m| m.min(hi));
        if x < min {
            self.violate(
                at,
                value,
                format!(
                    "Member must have value greater than or equal to {}",
                    bound(min)
                ),
            );
        }
        if x > max {
            self.violate(
                at,
                value,
                format!(
                    "Member must have value less than or equal to {}",
                    bound(max)
                ),
            );
        }
    }
}

fn quote_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 256 {
        text.chars().take(256).collect::<String>() + "…"
    } else {
        text
    }
}

/// `parent.member` in AWS's lower-camel spelling.
fn join(parent: &str, member: &str) -> String {
    if parent.is_empty() {
        lower_first(member)
    } else {
        format!("{parent}.{}", lower_first(member))
    }
}

#[cfg(test)]
mod tests {
    use super::super::sagemaker;
    use serde_json::json;
    use serde_json::Value;

    use super::Invalid;

    fn message(op: &str, input: Value) -> String {
        sagemaker().check_input(op, &input).unwrap_err().message()
    }

    #[test]
    fn constraints_are_said_in_aws_words() {
        let got = message(
            "CreateEndpointConfig",
            json!({"EndpointConfigName": "c", "ProductionVariants": [
                {"VariantName": "v", "InitialInstanceCount": 0, "InstanceType": "ml.m5.large"}]}),
        );
        assert_eq!(
            got,
            "1 validation error detected: Value '0' at 'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        let got = message("CreateModel", json!({"ModelName": "bad_name!"}));
        assert_eq!(
            got,
            "1 validation error detected: Value 'bad_name!' at 'modelName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?"
        );
        let got = message("DescribeEndpoint", json!({}));
        assert_eq!(
            got,
            "1 validation error detected: Value null at 'endpointName' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn integers_keep_to_their_type_and_range() {
        let config = |count: Value| {
            json!({"EndpointConfigName": "c", "ProductionVariants": [
                {"VariantName": "v", "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}]})
        };
        for too_big in [
            json!(4_294_967_296_u64),
            json!(1_000_000_000_000_u64),
            json!(u64::MAX),
        ] {
            let got = message("CreateEndpointConfig", config(too_big));
            assert!(
                got.contains("Member must have value less than or equal to 2147483647"),
                "{got}"
            );
        }
        for wrong in [json!("three"), json!(1.5), json!([1])] {
            let err = sagemaker()
                .check_input("CreateEndpointConfig", &config(wrong))
                .unwrap_err();
            assert!(matches!(err, Invalid::Serialization(_)), "{err:?}");
            assert!(err.message().contains("initialInstanceCount"), "{err}");
        }
        let got = message(
            "UpdateEndpointWeightsAndCapacities",
            json!({"EndpointName": "e", "DesiredWeightsAndCapacities": [
                {"VariantName": "v", "DesiredInstanceCount": -1, "DesiredWeight": -0.5}]}),
        );
        assert!(got.starts_with("2 validation errors detected: "), "{got}");
        assert!(got.contains("desiredInstanceCount' failed to satisfy constraint: Member must have value greater than or equal to 0"), "{got}");
    }

    #[test]
    fn maps_lists_and_enums_are_checked() {
        let got = message(
            "CreateModel",
            json!({"ModelName": "m", "PrimaryContainer": {"Image": "i", "Environment": {"1BAD": "v"}}}),
        );
        assert!(
            got.contains("at 'primaryContainer.environment' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern"),
            "{got}"
        );
        let got = message(
            "CreateEndpointConfig",
            json!({"EndpointConfigName": "c", "ProductionVariants": [
                {"VariantName": "v", "InstanceType": "ml.nope"}]}),
        );
        assert!(
            got.contains("Member must satisfy enum value set: [ml."),
            "{got}"
        );
        let got = message(
            "CreateEndpointConfig",
            json!({"EndpointConfigName": "c", "ProductionVariants": []}),
        );
        assert!(
            got.contains("Member must have length greater than or equal to 1"),
            "{got}"
        );
    }
}
