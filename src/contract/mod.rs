//! Will this container pass SageMaker's rules? `sagedock check IMAGE`: the image's
//! configuration read from the engine, then the image run the way `serve` runs it (the
//! one deployment path: `/opt/ml/model` read-only, the instance type's limits, no route
//! outside this machine first) and measured against the container contract (CONTRACT §1):
//! its start, its `/ping` at rest and under load, its answers to a sample request, its
//! memory and CPU, its stop on SIGTERM, its `/execution-parameters`.
//!
//! Each rule has a stable code (`start.health`, `stop.sigterm`, …), a [`Verdict`], what
//! was measured and, when it did not pass, how to fix it. A permissive local run hides
//! these: a PID 1 that ignores SIGTERM, a `/ping` slower than 2 s under load, a model
//! loaded on the first request, a start that downloads what an isolated network refuses.
//!
//! Owns: the rules ([`image`] for the configuration, [`probe`] for the run). Does not:
//! print (the CLI's) or turn a report into JUnit cases (`ci`'s).

pub mod image;
mod invoke;
mod lifecycle;
mod limits;
mod ping;
mod probe;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::HeaderMap;
use serde::Serialize;

use crate::deploy::{DeployError, Deployer, ModelSource};
use crate::runtime::{InstanceType, RuntimeError};

/// How a rule came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// SageMaker would run it, but something will hurt (slow stops, cold starts, …).
    Warn,
    /// SageMaker would refuse it, or its instances would fail.
    Fail,
    /// Could not be measured (no sample request, the container did not start, …).
    Skip,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Stable, for CI filters: `area.rule`.
    pub code: &'static str,
    pub verdict: Verdict,
    /// What was measured (or why nothing could be).
    pub measured: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// False when the rule has nothing to measure in this run (no model was given, no
    /// sample request): a skip that says nothing about the image.
    #[serde(skip)]
    pub applies: bool,
}

impl Rule {
    pub fn pass(code: &'static str, measured: impl Into<String>) -> Rule {
        Rule {
            code,
            verdict: Verdict::Pass,
            measured: measured.into(),
            fix: None,
            applies: true,
        }
    }

    pub fn warn(code: &'static str, measured: impl Into<String>, fix: impl Into<String>) -> Rule {
        Rule {
            code,
            verdict: Verdict::Warn,
            measured: measured.into(),
            fix: Some(fix.into()),
            applies: true,
        }
    }

    pub fn fail(code: &'static str, measured: impl Into<String>, fix: impl Into<String>) -> Rule {
        Rule {
            code,
            verdict: Verdict::Fail,
            measured: measured.into(),
            fix: Some(fix.into()),
            applies: true,
        }
    }

    /// Not measured because something else failed first.
    pub fn skip(code: &'static str, why: impl Into<String>) -> Rule {
        Rule {
            code,
            verdict: Verdict::Skip,
            measured: why.into(),
            fix: None,
            applies: true,
        }
    }

    /// Nothing to measure in this run (no model, no sample request).
    pub fn not_applicable(code: &'static str, why: impl Into<String>) -> Rule {
        Rule {
            applies: false,
            ..Rule::skip(code, why)
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub instance_type: String,
    pub rules: Vec<Rule>,
}

impl Report {
    /// True when no rule failed.
    pub fn passed(&self) -> bool {
        self.count(Verdict::Fail) == 0
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.rules.iter().filter(|r| r.verdict == verdict).count()
    }

    pub fn rule(&self, code: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.code == code)
    }
}

/// A sample request: what the invocation rules send.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Content-Type, Accept, custom attributes: as InvokeEndpoint would pass them.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub image: String,
    pub environment: BTreeMap<String, String>,
    pub model: ModelSource,
    pub sample: Option<Sample>,
    pub instance_type: InstanceType,
    /// The deployment will set EnableNetworkIsolation: a container that needs the network
    /// at start fails (without it, that only warns).
    pub network_isolation: bool,
    /// How long `/ping` may take to turn 200 (SageMaker: 4 minutes unless the variant's
    /// ContainerStartupHealthCheckTimeoutInSeconds says otherwise).
    pub health_timeout: Duration,
    /// How long after SIGTERM the container may take to exit (SageMaker: 30 s, then SIGKILL).
    pub stop_timeout: Duration,
    /// How long the sample request is sent under load.
    pub load: Duration,
}

impl Options {
    /// SageMaker's startup health-check window when the variant sets none.
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(240);
    /// SageMaker's grace between SIGTERM and SIGKILL.
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
    pub const LOAD: Duration = Duration::from_secs(5);
}

/// Why a check could not run (the image or the machine, not a rule).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Checks `options.image` with `deployer` (which removes what it started).
pub async fn check(deployer: &Deployer, options: &Options) -> Result<Report, CheckError> {
    let engine = deployer.engine();
    engine
        .ensure_image(&options.image, deployer.pulls(), None)
        .await?;
    let inspected = engine
        .docker
        .inspect_image(&options.image)
        .await
        .map_err(|e| RuntimeError::docker("inspect image", &options.image, e))?;
    let facts = image::ImageFacts::from_inspect(&inspected);
    let mut rules = image::rules(&facts, &options.instance_type);
    rules.extend(probe::run(deployer, options, &facts).await?);
    Ok(Report {
        image: options.image.clone(),
        instance_type: options.instance_type.to_string(),
        rules,
    })
}

pub(super) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub(super) fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
