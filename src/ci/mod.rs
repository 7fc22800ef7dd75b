//! `sagedock ci`: a spec file says which endpoints to stand up and what to check against
//! each (the artifact's layout, a healthy start, answers to sample requests, latency under
//! load); the run reports every check as a test case, in JUnit XML for CI systems.
//!
//! Owns: the spec (parsed strictly: an unknown field is an error naming it), the
//! [`runner`] (each endpoint deployed the way `serve` and `up` deploy, its answers checked
//! against [`expect`]ations, its load measured by [`crate::bench`]), and the checks'
//! outcomes with their JUnit rendering ([`junit`]). Printing is the CLI's.

pub mod expect;
pub mod junit;
pub mod runner;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a spec cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail} (the spec is JSON; see README, `sagedock ci`)")]
    Parse { path: PathBuf, detail: String },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("request {request}: {header} {value:?} is not a valid header value")]
    Header {
        request: String,
        header: String,
        value: String,
    },
}

type Result<T, E = SpecError> = std::result::Result<T, E>;

/// The whole spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub endpoints: Vec<EndpointSpec>,
}

/// One endpoint: what to run and what to check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// The endpoint's name (containers, log prefixes, the test suite's name).
    pub name: String,
    pub image: String,
    /// A model.tar.gz or a directory, relative to the spec file.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// The serving stack the artifact is checked against (default: detected).
    #[serde(default)]
    pub framework: Option<crate::framework::Framework>,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    #[serde(default = "one")]
    pub instance_count: usize,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How long the containers may take to answer GET /ping.
    #[serde(default = "default_health_timeout", with = "humantime_serde_compat")]
    pub health_timeout: Duration,
    #[serde(default)]
    pub requests: Vec<RequestSpec>,
    #[serde(default)]
    pub load: Option<LoadSpec>,
    /// The container contract's rules (`sagedock check`), run on a container of their own
    /// after the other checks.
    #[serde(default)]
    pub contract: Option<ContractSpec>,
}

/// How the contract rules run; `{}` takes SageMaker's figures.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    /// The sample request the invocation rules send (its name; default: the first).
    #[serde(default)]
    pub request: Option<String>,
    /// The endpoint will run with EnableNetworkIsolation.
    #[serde(default)]
    pub network_isolation: bool,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub stop_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub load_duration: Option<Duration>,
}

/// One sample request and what its answer must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub name: String,
    /// The body, inline.
    #[serde(default)]
    pub body: Option<String>,
    /// The body, from a file relative to the spec file.
    #[serde(default)]
    pub body_file: Option<PathBuf>,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub accept: Option<String>,
    #[serde(default)]
    pub custom_attributes: Option<String>,
    #[serde(default)]
    pub expect: Expect,
}

/// What an answer must be; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The HTTP status InvokeEndpoint answers (default: 200, or the status of `error`).
    #[serde(default)]
    pub status: Option<u16>,
    /// The AWS error type (`ModelError`, `ValidationError`, …) of an error answer.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Texts the body must contain.
    #[serde(default)]
    pub body_contains: Vec<String>,
    /// JSON pointers (RFC 6901) into the body and the value each must have.
    #[serde(default)]
    pub json: BTreeMap<String, serde_json::Value>,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub max_latency: Option<Duration>,
}

/// Load on the endpoint (`sagedock bench`'s options) and its budgets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// The sample request to send (its name; default: the first).
    #[serde(default)]
    pub request: Option<String>,
    #[serde(default = "one")]
    pub concurrency: usize,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default = "default_load_duration", with = "humantime_serde_compat")]
    pub duration: Duration,
    #[serde(default = "default_warmup", with = "humantime_serde_compat")]
    pub warmup: Duration,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub max_p50: Option<Duration>,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub max_p99: Option<Duration>,
}

fn default_instance_type() -> String {
    "ml.m5.large".into()
}
fn one() -> usize {
    1
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_load_duration() -> Duration {
    Duration::from_secs(10)
}
fn default_warmup() -> Duration {
    Duration::from_secs(1)
}

impl Spec {
    /// Reads and checks a spec file; paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec: Spec = serde_json::from_str(&text).map_err(|e| SpecError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        spec.resolve(base);
        spec.check().map_err(|why| SpecError::Invalid {
            path: path.to_path_buf(),
            why,
        })?;
        Ok(spec)
    }

    fn resolve(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for e in &mut self.endpoints {
            if let Some(model) = &mut e.model {
                rebase(model);
            }
            for r in &mut e.requests {
                if let Some(file) = &mut r.body_file {
                    rebase(file);
                }
            }
        }
    }

    /// The rules serde cannot say: names, counts, one body at most.
    fn check(&self) -> std::result::Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("no endpoints: give at least one under \"endpoints\"".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.endpoints {
            let valid = !e.name.is_empty()
                && e.name.len() <= 63
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !e.name.starts_with('-')
                && !e.name.ends_with('-');
            if !valid {
                return Err(format!("endpoint name {:?}: SageMaker allows 1-63 letters, digits and hyphens, with no hyphen first or last", e.name));
            }
            if !seen.insert(&e.name) {
                return Err(format!("endpoint name {:?} appears twice", e.name));
            }
            if e.instance_count == 0 {
                return Err(format!(
                    "endpoint {}: instance_count must be at least 1",
                    e.name
                ));
            }
            let mut names = std::collections::BTreeSet::new();
            for r in &e.requests {
                if !names.insert(&r.name) {
                    return Err(format!(
                        "endpoint {}: request name {:?} appears twice",
                        e.name, r.name
                    ));
                }
                if r.body.is_some() && r.body_file.is_some() {
                    return Err(format!(
                        "endpoint {}, request {}: give body or body_file, not both",
                        e.name, r.name
                    ));
                }
            }
            if let Some(name) = e.contract.as_ref().and_then(|c| c.request.as_ref()) {
                if e.contract_request().is_none() {
                    return Err(format!(
                        "endpoint {}, contract: no request named {name:?} under \"requests\"",
                        e.name
                    ));
                }
            }
            if let Some(load) = &e.load {
                if e.load_request().is_none() {
                    return Err(match &load.request {
                        Some(name) => format!("endpoint {}, load: no request named {name:?} under \"requests\"", e.name),
                        None => format!("endpoint {}, load: it sends one of the endpoint's requests; add one under \"requests\"", e.name),
                    });
                }
                if load.concurrency == 0 {
                    return Err(format!(
                        "endpoint {}, load: concurrency must be at least 1",
                        e.name
                    ));
                }
                if load.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(format!("endpoint {}, load: rate must be above 0", e.name));
                }
                if load.duration.is_zero() {
                    return Err(format!(
                        "endpoint {}, load: duration must be longer than 0",
                        e.name
                    ));
                }
            }
        }
        Ok(())
    }
}

impl EndpointSpec {
    /// The sample request the contract rules send.
    pub fn contract_request(&self) -> Option<&RequestSpec> {
        let contract = self.contract.as_ref()?;
        match &contract.request {
            Some(name) => self.requests.iter().find(|r| &r.name == name),
            None => self.requests.first(),
        }
    }

    /// The sample request the load sends.
    pub fn load_request(&self) -> Option<&RequestSpec> {
        let load = self.load.as_ref()?;
        match &load.request {
            Some(name) => self.requests.iter().find(|r| &r.name == name),
            None => self.requests.first(),
        }
    }
}

impl RequestSpec {
    /// The body's bytes.
    pub fn body_bytes(&self) -> Result<bytes::Bytes> {
        match (&self.body, &self.body_file) {
            (_, Some(file)) => std::fs::read(file)
                .map(bytes::Bytes::from)
                .map_err(|source| SpecError::Read {
                    path: file.clone(),
                    source,
                }),
            (Some(text), None) => Ok(bytes::Bytes::from(text.clone())),
            (None, None) => Ok(bytes::Bytes::new()),
        }
    }
}

/// Durations in the spec are written as humantime strings ("10s", "1m 30s", "250ms").
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration like \"10s\" or \"250ms\": {e}"
            ))
        })
    }

    pub mod option {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests;
