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

mod check;
mod pattern;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use check::Check;
pub use check::{Invalid, Violation};

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
    /// Per operation: the members bound to headers, by lower-case header name → (the
    /// member as error messages name it, shape).
    headers: HashMap<String, HashMap<String, (String, String)>>,
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
                        let compiled = pattern::compile(&p);
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
                                Some((header, (lower_first(member), member_shape.clone())))
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
            let Some((at, shape)) = table.get(name) else {
                continue;
            };
            let text = String::from_utf8_lossy(raw);
            match self.shape(shape).kind {
                Kind::Integer | Kind::Long => match text.trim().parse::<i64>() {
                    Ok(n) => check.value(shape, &Value::from(n), at)?,
                    Err(_) => check.violations.push(Violation {
                        at: at.clone(),
                        value: Some(text.into_owned()),
                        rule: "Member must be an integer".into(),
                    }),
                },
                // Most headers are strings: checked without a copy.
                Kind::String => check.text(shape, &text, at),
                _ => check.value(shape, &Value::from(text.as_ref()), at)?,
            }
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
}

/// SageMaker names members in messages with a lower-case first letter.
pub fn lower_first(member: &str) -> String {
    let mut chars = member.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_pattern_in_the_models_compiles() {
        // Loading compiles every pattern (a failure panics).
        assert!(sagemaker().shapes.len() > 100);
        assert!(runtime().shapes.len() > 10);
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
