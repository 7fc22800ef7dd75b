//! Running a spec: each endpoint in turn is checked, deployed, asked, loaded and torn down,
//! and every check becomes a test case.
//!
//! The checks of one endpoint, in order: the artifact's layout (`validate`), a healthy
//! start of every instance (`start`), each sample request's answer (`request NAME`), and
//! the latency under load (`load`). A check that cannot run because an earlier one failed
//! is reported as skipped. The endpoint is deployed the way `serve` and `up` deploy it,
//! and requests go through sagedock's own InvokeEndpoint, so the answers are the ones boto3
//! would get.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::expect::Answer;
use super::junit::{Case, Outcome, Suite};
use super::{ContractSpec, EndpointSpec, LoadSpec, RequestSpec, Spec, SpecError};
use crate::artifact::{Limits, ModelDir, Severity};
use crate::bench::{self, Invocation, Load};
use crate::contract::{self, Verdict};
use crate::deploy::{
    ContainerPlan, Deployer, EndpointPlan, Fleet, LiveFleet, ModelSource, VariantPlan,
};
use crate::endpoint::Router;
use crate::framework::inspect::{self, Choice};
use crate::framework::Framework;
use crate::runtime::instance;

/// The variant every spec endpoint runs.
const VARIANT: &str = "AllTraffic";
/// How much of an answer's body a report keeps.
const BODY_SHOWN: usize = 4096;

/// What the runner tells its caller as it goes.
pub enum Progress<'a> {
    /// An endpoint's checks begin.
    Endpoint { name: &'a str, image: &'a str },
    /// A check ended.
    Case(&'a Case),
}

/// Runs the checks of a spec.
pub struct Runner {
    deployer: Arc<Deployer>,
    router: Arc<Router>,
    /// Where the router answers (`http://127.0.0.1:PORT`).
    base: String,
    limits: Limits,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A check's outcome before it is timed and named.
struct Checked {
    outcome: Outcome,
    output: String,
}

impl Checked {
    fn passed(output: impl Into<String>) -> Checked {
        Checked {
            outcome: Outcome::Passed,
            output: output.into(),
        }
    }

    fn failed(message: impl Into<String>, detail: impl Into<String>) -> Checked {
        Checked {
            outcome: Outcome::Failed {
                message: message.into(),
                detail: detail.into(),
            },
            output: String::new(),
        }
    }
}

/// The cases of one endpoint, reported as they end.
struct Cases<'p, 'q> {
    cases: Vec<Case>,
    progress: &'p mut (dyn FnMut(Progress) + 'q),
}

impl Cases<'_, '_> {
    /// Runs one check and keeps it as a case; true when it passed.
    async fn record(
        &mut self,
        name: String,
        check: impl std::future::Future<Output = Checked>,
    ) -> bool {
        let t0 = Instant::now();
        let checked = check.await;
        let ok = checked.outcome == Outcome::Passed;
        self.push(Case {
            name,
            time: t0.elapsed(),
            outcome: checked.outcome,
            output: checked.output,
        });
        ok
    }

    fn skip(&mut self, name: String, why: &str) {
        self.push(Case {
            name,
            time: Duration::ZERO,
            outcome: Outcome::Skipped(why.to_string()),
            output: String::new(),
        });
    }

    fn push(&mut self, case: Case) {
        (self.progress)(Progress::Case(&case));
        self.cases.push(case);
    }
}

impl Runner {
    /// A runner deploying with `deployer` into `router`, which answers at `base`.
    pub fn new(
        deployer: Arc<Deployer>,
        router: Arc<Router>,
        base: String,
        limits: Limits,
    ) -> Runner {
        Runner {
            deployer,
            router,
            base,
            limits,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// Checks every endpoint of `spec`, one at a time.
    pub async fn run(&self, spec: &Spec, progress: &mut dyn FnMut(Progress)) -> Vec<Suite> {
        let mut suites = Vec::new();
        for e in &spec.endpoints {
            suites.push(self.check_endpoint(e, progress).await);
        }
        suites
    }

    async fn check_endpoint(&self, e: &EndpointSpec, progress: &mut dyn FnMut(Progress)) -> Suite {
        progress(Progress::Endpoint {
            name: &e.name,
            image: &e.image,
        });
        let mut cases = Cases {
            cases: Vec::new(),
            progress,
        };
        // Errors in the artifact do not stop the start: SageMaker would not stop either,
        // and what the container makes of the artifact is worth knowing.
        let mut model = None;
        if let Some(path) = &e.model {
            let name = format!("validate {}", file_name(path));
            cases
                .record(name, async {
                    let (checked, dir) = self.validate(path, e).await;
                    model = dir;
                    checked
                })
                .await;
        }
        let mut fleet = None;
        let started = if e.model.is_some() && model.is_none() {
            cases.skip("start".into(), "the artifact could not be unpacked");
            false
        } else {
            cases
                .record("start".into(), async {
                    match self.start(e, model.clone()).await {
                        Ok((started, output)) => {
                            fleet = Some(started);
                            Checked::passed(output)
                        }
                        Err(err) => Checked::failed(first_line(&err), err),
                    }
                })
                .await
        };
        let live = fleet.map(|(plan, fleet)| {
            LiveFleet::start(self.deployer.clone(), self.router.clone(), plan, fleet)
        });
        for r in &e.requests {
            let name = format!("request {}", r.name);
            if started {
                cases.record(name, self.request(e, r)).await;
            } else {
                cases.skip(name, "the endpoint did not start");
            }
        }
        if let Some(load) = &e.load {
            if started {
                cases.record("load".into(), self.load(e, load)).await;
            } else {
                cases.skip("load".into(), "the endpoint did not start");
            }
        }
        self.router.withdraw(&e.name);
        if let Some(live) = live {
            live.remove().await;
        }
        if let Some(spec) = &e.contract {
            if e.model.is_some() && model.is_none() {
                cases.skip("contract".into(), "the artifact could not be unpacked");
            } else {
                let t0 = Instant::now();
                match self.contract(e, spec, model.clone()).await {
                    Ok(report) => {
                        for case in contract_cases(&report, t0.elapsed()) {
                            cases.push(case);
                        }
                    }
                    Err(err) => cases.push(Case {
                        name: "contract".into(),
                        time: t0.elapsed(),
                        outcome: Outcome::Failed {
                            message: first_line(&err),
                            detail: err,
                        },
                        output: String::new(),
                    }),
                }
            }
        }
        Suite {
            name: e.name.clone(),
            cases: cases.cases,
        }
    }

    /// The artifact's findings: errors fail the check, warnings are kept in its output.
    /// The rules are those of the named framework, else of the image's.
    async fn validate(&self, path: &Path, e: &EndpointSpec) -> (Checked, Option<ModelDir>) {
        let choice = match e.framework {
            Some(f) => Choice::Named(f),
            None => Choice::Named(Framework::of_image(&e.image)),
        };
        let (path, limits, cache) = (
            path.to_path_buf(),
            self.limits,
            self.deployer.cache().clone(),
        );
        let checked =
            tokio::task::spawn_blocking(move || inspect::check(&path, choice, &limits, &cache))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        let checked = match checked {
            Ok(checked) => checked,
            Err(err) => return (Checked::failed(err.clone(), err), None),
        };
        let report = &checked.report;
        let mut lines = vec![format!(
            "{} ({} files), checked as {}",
            report.artifact.display(),
            report.files,
            report.framework.name()
        )];
        for f in &report.findings {
            lines.push(format!(
                "{}[{}] {}: {}",
                f.severity.as_str(),
                f.code,
                f.path,
                f.message
            ));
            if let Some(fix) = &f.fix {
                lines.push(format!("  fix: {fix}"));
            }
        }
        let output = lines.join("\n");
        let errors: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        let outcome = match errors.first() {
            None => Checked::passed(output),
            Some(first) => Checked {
                outcome: Outcome::Failed {
                    message: format!(
                        "{} error(s), first: [{}] {}: {}",
                        errors.len(),
                        first.code,
                        first.path,
                        first.message
                    ),
                    detail: output,
                },
                output: String::new(),
            },
        };
        (outcome, checked.model)
    }

    /// The plan `e` deploys: one variant, all traffic.
    fn plan(&self, e: &EndpointSpec, model: Option<ModelDir>) -> Result<EndpointPlan, String> {
        let count = u32::try_from(e.instance_count)
            .map_err(|_| format!("instance_count {} is too many", e.instance_count))?;
        let container = ContainerPlan::new(
            &e.image,
            e.environment.clone(),
            model.map_or(ModelSource::None, ModelSource::Folder),
        );
        let variant = VariantPlan::new(VARIANT, instance::lookup(&e.instance_type)?, container)
            .with_instance_count(count)
            .with_health_timeout(e.health_timeout);
        Ok(EndpointPlan::single(&e.name, variant))
    }

    async fn start(
        &self,
        e: &EndpointSpec,
        model: Option<ModelDir>,
    ) -> Result<((EndpointPlan, Fleet), String), String> {
        let plan = self.plan(e, model)?;
        let fleet = self
            .deployer
            .launch(&plan)
            .await
            .map_err(|e| e.to_string())?;
        let slowest = fleet
            .containers()
            .map(|i| i.ready_after)
            .max()
            .unwrap_or_default();
        let output = format!(
            "{} instance(s) of {} ({}) healthy; the slowest after {:.2} s",
            fleet.instances(),
            e.image,
            plan.variants[0].instance_type,
            slowest.as_secs_f64()
        );
        Ok(((plan, fleet), output))
    }

    fn url(&self, e: &EndpointSpec) -> String {
        format!("{}/endpoints/{}/invocations", self.base, e.name)
    }

    /// One sample request against its expectations.
    async fn request(&self, e: &EndpointSpec, r: &RequestSpec) -> Checked {
        let (headers, body) = match payload(r) {
            Ok(p) => p,
            Err(err) => return Checked::failed(err.to_string(), String::new()),
        };
        let Ok(mut request) = hyper::Request::post(self.url(e)).body(Full::new(body)) else {
            return Checked::failed(format!("{} is not a URL", self.url(e)), String::new());
        };
        *request.headers_mut() = headers;
        let t0 = Instant::now();
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(err) => return Checked::failed(format!("no answer: {err}"), String::new()),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let error_type = header("x-amzn-errortype").map(|t| bench::aws_error_type(&t).to_string());
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let latency = t0.elapsed();
        let text = String::from_utf8_lossy(&body);
        let shown: String = text.chars().take(BODY_SHOWN).collect();
        let output = format!(
            "status {status}, content type {}, {} bytes in {:.2} ms\n{shown}",
            content_type.as_deref().unwrap_or("none"),
            body.len(),
            latency.as_secs_f64() * 1000.0
        );
        let answer = Answer {
            status,
            error_type: error_type.as_deref(),
            content_type: content_type.as_deref(),
            text: &text,
            latency,
        };
        let mismatches = answer.mismatches(&r.expect);
        if mismatches.is_empty() {
            Checked::passed(output)
        } else {
            Checked::failed(mismatches.join("; "), output)
        }
    }

    /// The container contract's rules, on a container of their own.
    async fn contract(
        &self,
        e: &EndpointSpec,
        spec: &ContractSpec,
        model: Option<ModelDir>,
    ) -> Result<contract::Report, String> {
        let sample = match e.contract_request() {
            Some(r) => {
                let (headers, body) = payload(r).map_err(|e| e.to_string())?;
                Some(contract::Sample { headers, body })
            }
            None => None,
        };
        let options = contract::Options {
            image: e.image.clone(),
            environment: e.environment.clone(),
            model: model.map_or(ModelSource::None, ModelSource::Folder),
            sample,
            instance_type: instance::lookup(&e.instance_type)?,
            network_isolation: spec.network_isolation,
            health_timeout: e.health_timeout,
            stop_timeout: spec.stop_timeout.unwrap_or(contract::Options::STOP_TIMEOUT),
            load: spec.load_duration.unwrap_or(contract::Options::LOAD),
        };
        contract::check(&self.deployer, &options)
            .await
            .map_err(|e| e.to_string())
    }

    async fn load(&self, e: &EndpointSpec, spec: &LoadSpec) -> Checked {
        let Some(r) = e.load_request() else {
            return Checked::failed("no request to send", String::new());
        };
        let (headers, body) = match payload(r) {
            Ok(p) => p,
            Err(err) => return Checked::failed(err.to_string(), String::new()),
        };
        let Ok(url) = self.url(e).parse() else {
            return Checked::failed(format!("{} is not a URL", self.url(e)), String::new());
        };
        let load = Load {
            url,
            headers,
            bodies: vec![body],
            connections: spec.concurrency,
            rate: spec.rate,
            duration: spec.duration,
            warmup: spec.warmup,
            timeout: Duration::from_secs(60),
            live: None,
        };
        let report = match bench::run(load).await {
            Ok(report) => report,
            Err(err) => return Checked::failed(err.to_string(), String::new()),
        };
        let broken = report.broken_budgets(spec.max_p50, spec.max_p99);
        let mut text = Vec::new();
        let _ = report.render(&mut text, &broken);
        let output = String::from_utf8_lossy(&text).into_owned();
        if report.passed(&broken) {
            return Checked::passed(output);
        }
        let mut why = Vec::new();
        if report.failed > 0 {
            why.push(format!(
                "{} of {} requests failed",
                report.failed, report.requests
            ));
        }
        if report.unsent > 0 {
            why.push(format!(
                "{} requests fell due and were never sent",
                report.unsent
            ));
        }
        if report.ok == 0 && report.failed == 0 {
            why.push("no request was answered".into());
        }
        why.extend(broken);
        Checked::failed(why.join("; "), output)
    }
}

/// The contract rules as cases named `contract CODE` (the rules with nothing to measure
/// left out); `took` is the whole check's time, given to the first case.
pub fn contract_cases(report: &contract::Report, took: Duration) -> Vec<Case> {
    report
        .rules
        .iter()
        .filter(|r| r.applies)
        .enumerate()
        .map(|(i, rule)| {
            let text = match &rule.fix {
                Some(fix) => format!("{}\nfix: {fix}", rule.measured),
                None => rule.measured.clone(),
            };
            let (outcome, output) = match rule.verdict {
                Verdict::Pass => (Outcome::Passed, text),
                Verdict::Warn => (Outcome::Passed, format!("warning: {text}")),
                Verdict::Fail => (
                    Outcome::Failed {
                        message: first_line(&rule.measured),
                        detail: text,
                    },
                    String::new(),
                ),
                Verdict::Skip => (Outcome::Skipped(rule.measured.clone()), String::new()),
            };
            Case {
                name: format!("contract {}", rule.code),
                time: if i == 0 { took } else { Duration::ZERO },
                outcome,
                output,
            }
        })
        .collect()
}

/// A `sagedock check` report as a suite of its own.
pub fn contract_suite(name: &str, report: &contract::Report) -> Suite {
    Suite {
        name: name.to_string(),
        cases: contract_cases(report, Duration::ZERO),
    }
}

/// The headers and body of a sample request.
fn payload(r: &RequestSpec) -> Result<(HeaderMap, Bytes), SpecError> {
    let headers = Invocation {
        content_type: Some(&r.content_type),
        accept: r.accept.as_deref(),
        custom_attributes: r.custom_attributes.as_deref(),
        ..Invocation::default()
    }
    .headers()
    .map_err(|e| SpecError::Header {
        request: r.name.clone(),
        header: e.header,
        value: e.value,
    })?;
    Ok((headers, r.body_bytes()?))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_string()
}
