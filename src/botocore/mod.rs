//! botocore's service models, as far as sagedock serves them, and the input validation AWS
//! performs with them.
//!
//! AWS services check every request against the service model before an operation runs:
//! member types, required members, numeric ranges, string and list lengths, patterns and
//! enums, answering `ValidationException` (`ValidationError` on the runtime API) with
//! messages such as `1 validation error detected: Value '0' at
//! 'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: Member
//! must have value greater than or equal to 1`. sagedock does the same from the same data:
//! `sagemaker.json` and `sagemaker-runtime.json` here are the input shapes of the operations
//! sagedock serves, extracted from the pinned botocore by
//! `harness/clients/extract_shapes.py` (whose `--check` the client suites run).
//!
//! A member of the wrong JSON type is a [`Invalid::Serialization`] (AWS's
//! `SerializationException`); constraint failures are collected, all of them, into
//! [`Invalid::Constraints`]. Integers are also held to their type's range (AWS's `integer`
//! is 32 bits), so no value is ever truncated on its way in.
//!
//! Does not: know what an operation does; cross-member rules (PrimaryContainer or
//! Containers, unique variant names) are the control plane's.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// One service's model file.
#[derive(Deserialize)]
struct ModelFile {
    operations: HashMap<String, String>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
struct RawShape {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    members: BTreeMap<String, RawMember>,
    member: Option<Ref>,
    key: Option<Ref>,
    value: Option<Ref>,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawMember {
    shape: String,
    #[serde(rename = "locationName")]
    location_name: Option<String>,
}

#[derive(Deserialize)]
struct Ref {
    shape: String,
}

/// A shape's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Structure,
    List,
    Map,
    String,
    Integer,
    Long,
    Float,
    Double,
    Boolean,
    Timestamp,
    Blob,
}

/// A shape ready to check values against.
struct Shape {
    kind: Kind,
    required: Vec<String>,
    /// Member name → (shape name, location name: a header for runtime members).
    members: BTreeMap<String, (String, Option<String>)>,
    member: Option<String>,
    key: Option<String>,
    value: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    /// The pattern as botocore states it (for messages) and compiled (anchored).
    pattern: Option<(String, Regex)>,
    values: Option<Vec<String>>,
}

/// A service model: shapes by name, the input shape of each operation.
pub struct Model {
    operations: HashMap<String, String>,
    shapes: HashMap<String, Shape>,
    /// Per operation: the members bound to headers, by lower-case header name → (member,
    /// shape).
    headers: HashMap<String, HashMap<String, (String, String)>>,
}

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

/// The SageMaker control plane's model.
pub fn sagemaker() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load(include_str!("sagemaker.json")))
}

/// The sagemaker-runtime model.
pub fn runtime() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load(include_str!("sagemaker-runtime.json")))
}

/// Patterns botocore states in Java's regular-expression dialect that the `regex` crate
/// cannot compile as written (look-around, `\p{Print}`), each with an equivalent.
const TRANSLATED: [(&str, &str); 6] = [
    // "Not only white space".
    (r"(?!\s*$).+", r"[^\n]*\S[^\n]*"),
    // 1–63 characters, the first alphanumeric, the last not a hyphen.
    (
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]([a-zA-Z0-9-]){0,62})(?<!-)(\/[0-9]{1,9})?",
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]{0,61}[a-zA-Z0-9])(\/[0-9]{1,9})?",
    ),
    // The class has no ':', so the look-ahead for `s3:` / `https:` can never matter.
    (
        r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$",
        r"^[a-zA-Z0-9!_.*'()/-]+$",
    ),
    // At most one '.', not first.
    (
        r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$",
        r"^[a-zA-Z0-9][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_-]*)?$",
    ),
    // A path from '/' with no '..' in it.
    (
        r"/(?!.*\.\.)[a-zA-Z0-9/_.\-]+",
        r"/(?:(?:\.?[a-zA-Z0-9/_\-])+\.?|\.)",
    ),
    // Java's \p{Print} is ASCII's printable range.
    (r"\A\S[\p{Print}]*\z", r"\A\S[\x20-\x7E]*\z"),
];

/// Compiles a botocore pattern, anchored at both ends as AWS matches it.
fn compile(pattern: &str) -> Regex {
    let translated = TRANSLATED
        .iter()
        .find(|(from, _)| *from == pattern)
        .map_or(pattern, |(_, to)| to);
    Regex::new(&format!("^(?:{translated})$"))
        .unwrap_or_else(|e| panic!("botocore pattern {pattern:?} does not compile: {e}"))
}

impl Model {
    /// Parses an embedded model file (a build-time constant: a failure here is a bug that
    /// every test shows).
    fn load(text: &str) -> Model {
        let file: ModelFile = serde_json::from_str(text).expect("an embedded botocore model");
        let shapes: HashMap<String, Shape> = file
            .shapes
            .into_iter()
            .map(|(name, raw)| {
                let shape = Shape {
                    kind: raw.kind,
                    required: raw.required,
                    members: raw
                        .members
                        .into_iter()
                        .map(|(m, r)| (m, (r.shape, r.location_name)))
                        .collect(),
                    member: raw.member.map(|r| r.shape),
                    key: raw.key.map(|r| r.shape),
                    value: raw.value.map(|r| r.shape),
                    min: raw.min,
                    max: raw.max,
                    pattern: raw.pattern.map(|p| {
                        let compiled = compile(&p);
                        (p, compiled)
                    }),
                    values: raw.values,
                };
                (name, shape)
            })
            .collect();
        let headers = file
            .operations
            .iter()
            .map(|(op, input)| {
                let members = shapes
                    .get(input)
                    .map(|shape: &Shape| {
                        shape
                            .members
                            .iter()
                            .filter_map(|(member, (member_shape, location))| {
                                let header = location.as_ref()?.to_ascii_lowercase();
                                Some((header, (member.clone(), member_shape.clone())))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (op.clone(), members)
            })
            .collect();
        Model {
            operations: file.operations,
            shapes,
            headers,
        }
    }

    fn shape(&self, name: &str) -> &Shape {
        self.shapes
            .get(name)
            .unwrap_or_else(|| panic!("the embedded model has no shape {name}"))
    }

    /// The input shape of `operation`, if the model has the operation.
    fn input(&self, operation: &str) -> Option<&str> {
        self.operations.get(operation).map(String::as_str)
    }

    /// Checks a JSON input (a control-plane request body) against `operation`'s input.
    pub fn check_input(&self, operation: &str, input: &Value) -> Result<(), Invalid> {
        self.check_input_except(operation, input, |_, _| false)
    }

    /// Checks a JSON input, letting a string whose shape's pattern refuses it pass when
    /// `exempt(shape, value)` says so (a documented local extension).
    pub fn check_input_except(
        &self,
        operation: &str,
        input: &Value,
        exempt: fn(&str, &str) -> bool,
    ) -> Result<(), Invalid> {
        let Some(shape) = self.input(operation) else {
            return Ok(());
        };
        let mut check = Check {
            model: self,
            violations: Vec::new(),
            exempt,
        };
        check.value(shape, input, "")?;
        if check.violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid::Constraints(check.violations))
        }
    }

    /// Checks the header members of a runtime operation: `headers` yields each request
    /// header's lower-case name and value; headers that are no member of the operation's
    /// input are not looked at. Integer members are parsed as integers.
    pub fn check_headers<'a>(
        &self,
        operation: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<(), Invalid> {
        let Some(table) = self.headers.get(operation) else {
            return Ok(());
        };
        let mut check = Check {
            model: self,
            violations: Vec::new(),
            exempt: |_, _| false,
        };
        for (name, raw) in headers {
            let Some((member, shape)) = table.get(name) else {
                continue;
            };
            let text = String::from_utf8_lossy(raw);
            let at = lower_first(member);
            let value = match self.shape(shape).kind {
                Kind::Integer | Kind::Long => match text.trim().parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        check.violations.push(Violation {
                            at,
                            value: Some(text.into_owned()),
                            rule: "Member must be an integer".into(),
                        });
                        continue;
                    }
                },
                _ => Value::from(text.as_ref()),
            };
            check.value(shape, &value, &at)?;
        }
        if check.violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid::Constraints(check.violations))
        }
    }

    /// Removes the members of `input` that `operation`'s input does not have, at every
    /// depth (AWS ignores members it does not know; sagedock must not keep and describe
    /// them either).
    pub fn retain_known(&self, operation: &str, input: &mut Value) {
        if let Some(shape) = self.input(operation) {
            self.retain(shape, input);
        }
    }

    fn retain(&self, name: &str, value: &mut Value) {
        let shape = self.shape(name);
        match (shape.kind, value) {
            (Kind::Structure, Value::Object(map)) => {
                map.retain(|member, _| shape.members.contains_key(member));
                for (member, v) in map.iter_mut() {
                    if let Some((member_shape, _)) = shape.members.get(member) {
                        self.retain(member_shape, v);
                    }
                }
            }
            (Kind::List, Value::Array(items)) => {
                if let Some(member) = &shape.member {
                    for item in items {
                        self.retain(member, item);
                    }
                }
            }
            (Kind::Map, Value::Object(map)) => {
                if let Some(value_shape) = &shape.value {
                    for v in map.values_mut() {
                        self.retain(value_shape, v);
                    }
                }
            }
            _ => {}
        }
    }

    /// The maximum a member of `operation`'s input may have (`max` of its shape).
    pub fn max_of(&self, operation: &str, member: &str) -> Option<f64> {
        let input = self.shape(self.input(operation)?);
        let (shape, _) = input.members.get(member)?;
        self.shape(shape).max
    }
}

/// SageMaker names members in messages with a lower-case first letter.
pub fn lower_first(member: &str) -> String {
    let mut chars = member.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
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

struct Check<'m> {
    model: &'m Model,
    violations: Vec<Violation>,
    exempt: fn(&str, &str) -> bool,
}

impl Check<'_> {
    fn violate(&mut self, at: &str, value: &Value, rule: String) {
        self.violations.push(Violation {
            at: at.to_string(),
            value: Some(quote(value)),
            rule,
        });
    }

    fn wrong_type(at: &str, value: &Value, expected: &str) -> Invalid {
        let at = if at.is_empty() { "the request" } else { at };
        Invalid::Serialization(format!(
            "Value {} at '{at}' is {}; expected {expected}",
            quote_json(value),
            json_type(value)
        ))
    }

    /// Checks `value` against the shape `name`, at the path `at`.
    fn value(&mut self, name: &str, value: &Value, at: &str) -> Result<(), Invalid> {
        let shape = self.model.shape(name);
        match shape.kind {
            Kind::Structure => self.structure(shape, value, at),
            Kind::List => {
                let Value::Array(items) = value else {
                    return Err(Self::wrong_type(at, value, "a list"));
                };
                self.length(shape, items.len(), value, at);
                let member = shape.member.as_deref().expect("a list's member shape");
                for (i, item) in items.iter().enumerate() {
                    if item.is_null() {
                        continue;
                    }
                    self.value(member, item, &format!("{at}.{}.member", i + 1))?;
                }
                Ok(())
            }
            Kind::Map => {
                let Value::Object(entries) = value else {
                    return Err(Self::wrong_type(at, value, "a map"));
                };
                self.length(shape, entries.len(), value, at);
                let key = shape.key.as_deref().expect("a map's key shape");
                let value_shape = shape.value.as_deref().expect("a map's value shape");
                for (k, v) in entries {
                    self.nested("Map keys", key, &Value::String(k.clone()), at)?;
                    if !v.is_null() {
                        self.nested("Map value", value_shape, v, at)?;
                    }
                }
                Ok(())
            }
            Kind::String => {
                let Value::String(text) = value else {
                    return Err(Self::wrong_type(at, value, "a string"));
                };
                self.length(shape, text.chars().count(), value, at);
                if let Some((pattern, regex)) = &shape.pattern {
                    if !regex.is_match(text) && !(self.exempt)(name, text) {
                        self.violate(
                            at,
                            value,
                            format!("Member must satisfy regular expression pattern: {pattern}"),
                        );
                    }
                }
                if let Some(values) = &shape.values {
                    if !values.iter().any(|v| v == text) {
                        self.violate(
                            at,
                            value,
                            format!(
                                "Member must satisfy enum value set: [{}]",
                                values.join(", ")
                            ),
                        );
                    }
                }
                Ok(())
            }
            Kind::Integer | Kind::Long => {
                let integral = match value {
                    Value::Number(n) => {
                        n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
                    }
                    _ => false,
                };
                if !integral {
                    return Err(Self::wrong_type(at, value, "an integer"));
                }
                let (type_min, type_max) = if shape.kind == Kind::Integer {
                    (f64::from(i32::MIN), f64::from(i32::MAX))
                } else {
                    (-9.223_372_036_854_776e18, 9.223_372_036_854_776e18)
                };
                let x = value.as_f64().unwrap_or(0.0);
                self.range(shape, x, value, at, type_min, type_max);
                Ok(())
            }
            Kind::Float | Kind::Double => {
                let Some(x) = value.as_f64() else {
                    return Err(Self::wrong_type(at, value, "a number"));
                };
                let limit = if shape.kind == Kind::Float {
                    f64::from(f32::MAX)
                } else {
                    f64::MAX
                };
                self.range(shape, x, value, at, -limit, limit);
                Ok(())
            }
            Kind::Boolean => match value {
                Value::Bool(_) => Ok(()),
                _ => Err(Self::wrong_type(at, value, "a boolean")),
            },
            Kind::Timestamp => match value {
                Value::Number(_) => Ok(()),
                _ => Err(Self::wrong_type(
                    at,
                    value,
                    "a timestamp (seconds since the epoch)",
                )),
            },
            Kind::Blob => match value {
                Value::String(_) => Ok(()),
                _ => Err(Self::wrong_type(at, value, "base64 text")),
            },
        }
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

    fn structure(&mut self, shape: &Shape, value: &Value, at: &str) -> Result<(), Invalid> {
        let Value::Object(map) = value else {
            return Err(Self::wrong_type(at, value, "a structure (a JSON object)"));
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

    fn length(&mut self, shape: &Shape, len: usize, value: &Value, at: &str) {
        let len = len as f64;
        if let Some(min) = shape.min.filter(|&m| len < m) {
            self.violate(
                at,
                value,
                format!(
                    "Member must have length greater than or equal to {}",
                    bound(min)
                ),
            );
        }
        if let Some(max) = shape.max.filter(|&m| len > m) {
            self.violate(
                at,
                value,
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
    use super::*;
    use serde_json::json;

    fn message(op: &str, input: Value) -> String {
        sagemaker().check_input(op, &input).unwrap_err().message()
    }

    #[test]
    fn every_pattern_in_the_models_compiles() {
        // Loading compiles every pattern (a failure panics).
        assert!(sagemaker().shapes.len() > 100);
        assert!(runtime().shapes.len() > 10);
    }

    #[test]
    fn translated_patterns_mean_what_botocore_says() {
        let check = |pattern: &str, text: &str| compile(pattern).is_match(text);
        let not_blank = TRANSLATED[0].0;
        assert!(check(not_blank, "x") && check(not_blank, " a ") && !check(not_blank, "  "));
        let name = TRANSLATED[1].0;
        assert!(check(name, "a") && check(name, "model-1") && check(name, "m/12"));
        assert!(!check(name, "model-") && !check(name, "-m") && !check(name, &"a".repeat(64)));
        assert!(check(name, &"a".repeat(63)));
        let extension = TRANSLATED[2].0;
        assert!(check(extension, "a/b(1)") && !check(extension, "s3://x"));
        let file = TRANSLATED[3].0;
        assert!(check(file, "out.json") && check(file, "a_b-c"));
        assert!(!check(file, "a.b.c") && !check(file, ".x") && !check(file, "a/b"));
        let path = TRANSLATED[4].0;
        assert!(check(path, "/opt/ml/a.b") && check(path, "/.") && check(path, "/a."));
        assert!(!check(path, "/a/../b") && !check(path, "a") && !check(path, "/"));
        let printable = TRANSLATED[5].0;
        assert!(check(printable, "a b") && !check(printable, " a") && !check(printable, "a\u{7f}"));
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
    fn unknown_members_are_dropped_and_exemptions_pass_patterns() {
        let mut input = json!({"ModelName": "m", "Junk": 1,
            "PrimaryContainer": {"Image": "i", "Nope": true, "ModelDataUrl": "file:///tmp/m"}});
        sagemaker().retain_known("CreateModel", &mut input);
        assert_eq!(
            input,
            json!({"ModelName": "m", "PrimaryContainer": {"Image": "i", "ModelDataUrl": "file:///tmp/m"}})
        );
        assert!(sagemaker().check_input("CreateModel", &input).is_err());
        let exempt = |shape: &str, value: &str| shape == "Url" && value.starts_with("file://");
        assert_eq!(
            sagemaker().check_input_except("CreateModel", &input, exempt),
            Ok(())
        );
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

    #[test]
    fn runtime_headers_are_checked_by_their_location_names() {
        let long = "a".repeat(1025);
        let headers = [
            ("content-type", b"text/csv".as_slice()),
            ("x-amzn-sagemaker-custom-attributes", long.as_bytes()),
            (
                "x-amzn-sagemaker-target-variant",
                b"bad variant!".as_slice(),
            ),
            ("x-something-else", b"\xff".as_slice()),
        ];
        let got = runtime()
            .check_headers("InvokeEndpoint", headers)
            .unwrap_err()
            .message();
        assert!(got.starts_with("2 validation errors detected"), "{got}");
        assert!(got.contains("at 'customAttributes' failed to satisfy constraint: Member must have length less than or equal to 1024"), "{got}");
        assert!(
            got.contains("Value 'bad variant!' at 'targetVariant'"),
            "{got}"
        );
        let ttl = [("x-amzn-sagemaker-requestttlseconds", b"59".as_slice())];
        let got = runtime()
            .check_headers("InvokeEndpointAsync", ttl)
            .unwrap_err()
            .message();
        assert!(got.contains("Value '59' at 'requestTTLSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"), "{got}");
        let fine = [
            ("content-type", b"application/json".as_slice()),
            ("accept", b"*/*".as_slice()),
            ("x-amzn-sagemaker-target-variant", b"Variant-1".as_slice()),
        ];
        assert_eq!(runtime().check_headers("InvokeEndpoint", fine), Ok(()));
        let non_ascii = [("x-amzn-sagemaker-custom-attributes", "caf\u{e9}".as_bytes())];
        assert!(runtime()
            .check_headers("InvokeEndpoint", non_ascii)
            .is_err());
    }
}
