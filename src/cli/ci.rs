//! `sagedock ci SPEC`: stands up each endpoint of the spec in turn, runs its checks, tears
//! it down, and reports every check (on stdout, and as JUnit XML with `--junit`).
//!
//! The checks of one endpoint, in order: the artifact's layout (`validate`), a healthy
//! start of every instance (`start`), each sample request's answer (`request NAME`), and
//! the latency under load (`load`). A check that cannot run because an earlier one failed
//! is reported as skipped. Requests go through sagedock's own InvokeEndpoint, in process,
//! so the answers are the ones boto3 would get.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::artifact::check_artifact;
use super::bench::{broken_budgets, passed, print_report};
use super::runtime::{
    container_env, listen_and_connect, live_endpoint, shutdown_signal, start_instances, Start,
};
use super::CiArgs;
use crate::artifact::inspect::Severity;
use crate::artifact::Limits;
use crate::bench::{self, Load};
use crate::ci::junit::{self, Case, Outcome, Suite};
use crate::ci::{EndpointSpec, RequestSpec, Spec};
use crate::endpoint::{self, App, Router};
use crate::runtime::{instance, Engine, Instance};
use crate::{Error, Result};

const ACCOUNT: &str = "123456789012";
const VARIANT: &str = "AllTraffic";
/// How much of an answer's body a report keeps.
const BODY_SHOWN: usize = 4096;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub async fn ci(args: &CiArgs) -> Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    if let Some(junit) = &args.junit {
        check_writable(junit)?;
    }
    let (listener, engine) = listen_and_connect("127.0.0.1", 0).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = Router::new(ACCOUNT, &args.region);
    let server = tokio::spawn(endpoint::serve(listener, App::new(router.clone(), None)));
    let context = Context {
        engine,
        router,
        base,
        region: args.region.clone(),
        limits: args.limits.limits(),
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
    };
    let checks = async {
        let mut suites = Vec::new();
        for e in &spec.endpoints {
            suites.push(context.check_endpoint(e).await);
        }
        suites
    };
    let suites = tokio::select! {
        suites = checks => suites,
        () = shutdown_signal() => {
            eprintln!("interrupted: removing containers");
            server.abort();
            return Ok(ExitCode::from(130));
        }
    };
    server.abort();
    let count = |f: fn(&Suite) -> usize| suites.iter().map(f).sum::<usize>();
    let total = count(|s| s.cases.len());
    let (failed, skipped) = (count(Suite::failures), count(Suite::skipped));
    println!(
        "{total} checks: {} passed, {failed} failed, {skipped} skipped",
        total - failed - skipped
    );
    if let Some(path) = &args.junit {
        write_atomically(path, junit::render(&suites).as_bytes())?;
        println!("JUnit report: {}", path.display());
    }
    Ok(if failed == 0 && skipped == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Context {
    engine: Engine,
    router: Arc<Router>,
    base: String,
    region: String,
    limits: Limits,
    client: HttpClient,
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

/// Runs one check, prints its line and keeps it as a test case.
async fn record(
    cases: &mut Vec<Case>,
    name: String,
    check: impl std::future::Future<Output = Checked>,
) -> bool {
    let t0 = Instant::now();
    let checked = check.await;
    let time = t0.elapsed();
    let line = match &checked.outcome {
        Outcome::Passed if time < Duration::from_secs(1) => {
            format!("  PASS {name} ({:.1} ms)", time.as_secs_f64() * 1000.0)
        }
        Outcome::Passed => format!("  PASS {name} ({:.2} s)", time.as_secs_f64()),
        Outcome::Failed { message, .. } => format!("  FAIL {name}: {message}"),
        Outcome::Skipped(why) => format!("  SKIP {name}: {why}"),
    };
    println!("{line}");
    let ok = checked.outcome == Outcome::Passed;
    cases.push(Case {
        name,
        time,
        outcome: checked.outcome,
        output: checked.output,
    });
    ok
}

fn skip(cases: &mut Vec<Case>, name: String, why: &str) {
    println!("  SKIP {name}: {why}");
    cases.push(Case {
        name,
        time: Duration::ZERO,
        outcome: Outcome::Skipped(why.to_string()),
        output: String::new(),
    });
}

impl Context {
    async fn check_endpoint(&self, e: &EndpointSpec) -> Suite {
        println!("endpoint {} ({})", e.name, e.image);
        let mut cases = Vec::new();
        // Errors in the artifact do not stop the start: SageMaker would not stop either,
        // and what the container makes of the artifact is worth knowing.
        let mut model = None;
        if let Some(path) = &e.model {
            let name = format!("validate {}", file_name(path));
            record(&mut cases, name, async {
                let (checked, dir) = self.validate(path, e).await;
                model = dir;
                checked
            })
            .await;
        }
        let mut instances = Vec::new();
        let started = if e.model.is_some() && model.is_none() {
            skip(
                &mut cases,
                "start".into(),
                "the artifact could not be unpacked",
            );
            false
        } else {
            record(&mut cases, "start".into(), async {
                match self.start(e, model.as_ref()).await {
                    Ok((started, output)) => {
                        instances = started;
                        Checked::passed(output)
                    }
                    Err(err) => Checked::failed(first_line(&err.to_string()), err.to_string()),
                }
            })
            .await
        };
        if started {
            self.router
                .publish(live_endpoint(&e.name, VARIANT, &instances));
        }
        for r in &e.requests {
            let name = format!("request {}", r.name);
            if !started {
                skip(&mut cases, name, "the endpoint did not start");
                continue;
            }
            record(&mut cases, name, self.request(e, r)).await;
        }
        if let Some(load) = &e.load {
            if !started {
                skip(&mut cases, "load".into(), "the endpoint did not start");
            } else {
                record(&mut cases, "load".into(), self.load(e, load)).await;
            }
        }
        self.router.withdraw(&e.name);
        for instance in instances {
            if let Err(err) = instance.guard.remove().await {
                eprintln!("could not remove a container of {}: {err}", e.name);
            }
        }
        Suite {
            name: e.name.clone(),
            cases,
        }
    }

    /// The artifact's findings: errors fail the check, warnings are kept in its output.
    async fn validate(
        &self,
        path: &Path,
        e: &EndpointSpec,
    ) -> (Checked, Option<(std::path::PathBuf, String)>) {
        let (path, framework, limits) = (path.to_path_buf(), e.framework, self.limits);
        let checked =
            tokio::task::spawn_blocking(move || check_artifact(&path, framework, &limits))
                .await
                .expect("artifact check panicked");
        let (report, dir) = match checked {
            Ok(result) => result,
            Err(err) => return (Checked::failed(err.to_string(), err.to_string()), None),
        };
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
        let checked = match errors.first() {
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
        (checked, dir)
    }

    async fn start(
        &self,
        e: &EndpointSpec,
        model: Option<&(std::path::PathBuf, String)>,
    ) -> Result<(Vec<Instance>, String)> {
        let instance_type = instance::lookup(&e.instance_type)
            .map_err(crate::runtime::RuntimeError::InstanceType)?;
        let env = container_env(&self.region, e.environment.clone())?;
        self.engine.ensure_image(&e.image, false).await?;
        let start = Start {
            name: &e.name,
            variant: VARIANT,
            image: &e.image,
            model: model.map(|(dir, sha)| (dir.as_path(), sha.as_str())),
            instance_type,
            count: e.instance_count,
            env: &env,
            network_isolation: false,
            cpu_only: false,
            health_timeout: e.health_timeout,
        };
        let instances = start_instances(&self.engine, &start).await?;
        let slowest = instances
            .iter()
            .map(|i| i.ready_after)
            .max()
            .unwrap_or_default();
        let output = format!(
            "{} instance(s) of {} ({instance_type}) healthy; the slowest after {:.2} s",
            instances.len(),
            e.image,
            slowest.as_secs_f64()
        );
        Ok((instances, output))
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
        let mut request = hyper::Request::post(self.url(e))
            .body(Full::new(body))
            .expect("a valid request");
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

    async fn load(&self, e: &EndpointSpec, spec: &crate::ci::LoadSpec) -> Checked {
        let Some(r) = e.load_request() else {
            return Checked::failed("no request to send", String::new());
        };
        let (headers, body) = match payload(r) {
            Ok(p) => p,
            Err(err) => return Checked::failed(err.to_string(), String::new()),
        };
        let load = Load {
            url: self.url(e).parse().expect("a valid URL"),
            headers,
            body,
            connections: spec.concurrency,
            rate: spec.rate,
            duration: spec.duration,
            warmup: spec.warmup,
            timeout: Duration::from_secs(60),
        };
        let report = match bench::run(load).await {
            Ok(report) => report,
            Err(err) => return Checked::failed(err.to_string(), String::new()),
        };
        let broken = broken_budgets(spec.max_p50, spec.max_p99, &report);
        let mut text = Vec::new();
        let _ = print_report(&mut text, &report, &broken);
        let output = String::from_utf8_lossy(&text).into_owned();
        if passed(&report, &broken) {
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

/// The headers and body of a sample request.
fn payload(r: &RequestSpec) -> Result<(HeaderMap, Bytes)> {
    let mut headers = HeaderMap::new();
    let pairs = [
        (CONTENT_TYPE, Some(&r.content_type)),
        (ACCEPT, r.accept.as_ref()),
        (
            HeaderName::from_static("x-amzn-sagemaker-custom-attributes"),
            r.custom_attributes.as_ref(),
        ),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            let value = HeaderValue::from_str(value).map_err(|_| {
                Error::Usage(format!(
                    "request {}: {name} {value:?} is not a valid header value",
                    r.name
                ))
            })?;
            headers.insert(name, value);
        }
    }
    Ok((headers, r.body_bytes()?))
}

/// What InvokeEndpoint answered.
struct Answer<'a> {
    status: u16,
    error_type: Option<&'a str>,
    content_type: Option<&'a str>,
    text: &'a str,
    latency: Duration,
}

impl Answer<'_> {
    /// Every way the answer differs from what was expected, said as such.
    fn mismatches(&self, expect: &crate::ci::Expect) -> Vec<String> {
        let mut out = Vec::new();
        if self.status != expect.status {
            let error = self
                .error_type
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            out.push(format!(
                "status {}{error}, expected {}",
                self.status, expect.status
            ));
        }
        if let Some(want) = &expect.error {
            if self.error_type != Some(want.as_str()) {
                out.push(format!(
                    "error {}, expected {want}",
                    self.error_type.unwrap_or("none")
                ));
            }
        }
        if let Some(want) = &expect.content_type {
            if self.content_type != Some(want.as_str()) {
                out.push(format!(
                    "content type {}, expected {want}",
                    self.content_type.unwrap_or("none")
                ));
            }
        }
        for needle in &expect.body_contains {
            if !self.text.contains(needle.as_str()) {
                out.push(format!("the body does not contain {needle:?}"));
            }
        }
        if !expect.json.is_empty() {
            match serde_json::from_str::<serde_json::Value>(self.text) {
                Err(e) => out.push(format!("the body is not JSON ({e})")),
                Ok(body) => {
                    for (pointer, want) in &expect.json {
                        match body.pointer(pointer) {
                            Some(got) if got == want => {}
                            Some(got) => out.push(format!("{pointer} is {got}, expected {want}")),
                            None => out.push(format!("{pointer} is missing, expected {want}")),
                        }
                    }
                }
            }
        }
        if let Some(max) = expect.max_latency {
            if self.latency > max {
                out.push(format!(
                    "took {:.1} ms, more than {}",
                    self.latency.as_secs_f64() * 1000.0,
                    humantime::format_duration(max)
                ));
            }
        }
        out
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_string()
}

/// Fails before anything starts when the report could not be written.
fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--junit {}: the directory {} does not exist; create it first",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Writes beside `path` and renames into place: a reader never sees half a report.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| Error::Output(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::Expect;

    fn answer(text: &str) -> Answer<'_> {
        Answer {
            status: 424,
            error_type: Some("ModelError"),
            content_type: Some("application/json"),
            text,
            latency: Duration::from_millis(30),
        }
    }

    #[test]
    fn every_mismatch_is_said() {
        let expect: Expect = serde_json::from_value(serde_json::json!({
            "status": 200,
            "error": "ValidationError",
            "content_type": "text/csv",
            "body_contains": ["positive", "{"],
            "json": {"/score": 1, "/label": "x"},
            "max_latency": "10ms",
        }))
        .unwrap();
        let got = answer(r#"{"score": 0}"#).mismatches(&expect);
        assert_eq!(
            got,
            [
                "status 424 (ModelError), expected 200",
                "error ModelError, expected ValidationError",
                "content type application/json, expected text/csv",
                "the body does not contain \"positive\"",
                "/label is missing, expected \"x\"",
                "/score is 0, expected 1",
                "took 30.0 ms, more than 10ms",
            ]
        );
        let expect: Expect = serde_json::from_value(
            serde_json::json!({"status": 424, "error": "ModelError", "json": {"/score": 0}}),
        )
        .unwrap();
        assert!(answer(r#"{"score": 0}"#).mismatches(&expect).is_empty());
        let expect: Expect =
            serde_json::from_value(serde_json::json!({"status": 424, "json": {"/a": 1}})).unwrap();
        assert_eq!(answer("not json").mismatches(&expect).len(), 1);
    }
}
