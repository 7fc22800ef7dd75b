//! The run: the image started the way `serve` starts it (first with no route outside this
//! machine, again with one only when that start exited), then measured — `/ping` at rest
//! and while the sample request is sent under load, the sample's answers, the engine's
//! memory and CPU figures, the exit after SIGTERM — and, when the image declares it, a
//! second start on another `SAGEMAKER_BIND_TO_PORT`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};

use super::image::ImageFacts;
use super::{CheckError, Options, Rule, Sample};
use crate::bench::{self, Load};
use crate::deploy::{
    ContainerPlan, DeployError, Deployer, EndpointPlan, Fleet, ModelSource, VariantPlan,
};
use crate::endpoint::client;
use crate::runtime::launch::{self, PingFailure, PING_TIMEOUT};
use crate::runtime::{logs, Engine, Instance};
use crate::sync::locked;
use crate::transform::execution::{self, Asked};

/// The endpoint and variant names the check's containers carry.
const ENDPOINT: &str = "check";
const VARIANT: &str = "AllTraffic";
/// The port the bind-to-port rule asks for.
const OTHER_PORT: u16 = 8081;
/// `/ping` after the first 200, this many times, this far apart.
const STABLE_PINGS: usize = 10;
const STABLE_INTERVAL: Duration = Duration::from_millis(100);
/// `/ping` while the load runs, this often.
const LOAD_PING_INTERVAL: Duration = Duration::from_millis(200);
/// Sequential invocations for the warm-up rule: at most this many, within this time.
const WARM_REQUESTS: usize = 20;
const WARM_BUDGET: Duration = Duration::from_secs(5);
/// SageMaker's limit on an invocation.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// What a log says when something writes to a read-only mount.
const READ_ONLY: &str = "Read-only file system";

/// The plan one start runs: one instance of the image, as `serve` would run it.
fn plan(options: &Options, isolated: bool, port: Option<u16>, health: Duration) -> EndpointPlan {
    let mut container = ContainerPlan::new(
        &options.image,
        options.environment.clone(),
        options.model.clone(),
    );
    if let Some(port) = port {
        container = container.with_bind_port(port);
    }
    let variant = VariantPlan::new(VARIANT, options.instance_type, container)
        .with_health_timeout(health)
        .with_network_isolation(isolated);
    EndpointPlan::single(ENDPOINT, variant)
}

/// How the start went.
enum Start {
    Up {
        fleet: Fleet,
        /// Why it exited under network isolation, when it then started with a network.
        needed_network: Option<String>,
    },
    Down {
        error: String,
        /// Whether it was tried again with a network.
        retried: bool,
    },
}

/// A failed start said as the user needs it: with what the model's layout explains,
/// when a model was given (without one, the only finding is that none was mounted).
fn said(e: &DeployError, options: &Options) -> String {
    match e {
        DeployError::Start { source, .. } if matches!(options.model, ModelSource::None) => {
            source.to_string()
        }
        _ => e.to_string(),
    }
}

async fn start(deployer: &Deployer, options: &Options) -> Result<Start, CheckError> {
    let isolated = plan(options, true, None, options.health_timeout);
    let first = match deployer.launch(&isolated).await {
        Ok(fleet) => {
            return Ok(Start::Up {
                fleet,
                needed_network: None,
            })
        }
        Err(e) if e.is_start_failure() => e,
        Err(e) => return Err(e.into()),
    };
    // A container that exits at once without a network may be downloading or installing:
    // try once more with one. One that never got healthy is not tried again (it would
    // wait out the health timeout twice).
    if !first.exited_at_start() {
        return Ok(Start::Down {
            error: said(&first, options),
            retried: false,
        });
    }
    let open = plan(options, false, None, options.health_timeout);
    match deployer.launch(&open).await {
        Ok(fleet) => Ok(Start::Up {
            fleet,
            needed_network: Some(said(&first, options)),
        }),
        Err(e) if e.is_start_failure() => Ok(Start::Down {
            error: said(&e, options),
            retried: true,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Every rule the run measures, in report order.
pub(super) async fn run(
    deployer: &Deployer,
    options: &Options,
    facts: &ImageFacts,
) -> Result<Vec<Rule>, CheckError> {
    let has_model = !matches!(options.model, ModelSource::None);
    let (fleet, needed_network) = match start(deployer, options).await? {
        Start::Up {
            fleet,
            needed_network,
        } => (fleet, needed_network),
        Start::Down { error, retried } => return Ok(not_started(&error, retried, has_model)),
    };
    let Some(instance) = fleet.containers().next() else {
        fleet.remove().await;
        return Err(DeployError::Internal("the check's instance did not start".into()).into());
    };
    let mut rules = vec![bind_placeholder()];
    rules.push(listen_rule(instance));
    rules.push(health_rule(instance, options.health_timeout));
    let measured = measure(deployer.engine(), instance, options).await;
    rules.extend(measured.rules);
    let log = logs::tail(deployer.engine(), &instance.guard.id, 200).await;
    rules.push(read_only_rule(has_model, Some(&log)));
    rules.push(isolation_rule(options, needed_network.as_deref()));
    rules.push(measured.stop);
    rules.push(measured.batch);
    let ready_after = instance.ready_after;
    discard(deployer.engine(), fleet).await;
    rules[0] = bind_rule(
        deployer,
        options,
        facts,
        needed_network.is_none(),
        ready_after,
    )
    .await?;
    Ok(rules)
}

/// Stands in for the bind-to-port rule, which runs last but reports first.
fn bind_placeholder() -> Rule {
    Rule::skip("image.bind-to-port", "")
}

/// The rules when the container never got healthy.
fn not_started(error: &str, retried: bool, has_model: bool) -> Vec<Rule> {
    let why = "the container did not start";
    let mut rules = vec![
        Rule::skip("image.bind-to-port", why),
        Rule::skip("start.listen", why),
        Rule::fail(
            "start.health",
            error,
            "the container's last log lines above say why; `sagedock serve --image IMAGE` shows its whole log",
        ),
    ];
    for code in [
        "ping.stable",
        "ping.connect",
        "ping.latency",
        "invoke.answer",
        "invoke.content-type",
        "invoke.unknown-headers",
        "invoke.warm-up",
        "limits.memory",
        "limits.cpu",
        "limits.survives",
    ] {
        rules.push(Rule::skip(code, why));
    }
    rules.push(read_only_rule(has_model, Some(error)));
    rules.push(if retried {
        Rule::skip(
            "env.network-isolation",
            "the container did not start with a network either",
        )
    } else {
        Rule::skip("env.network-isolation", why)
    });
    rules.push(Rule::skip("stop.sigterm", why));
    rules.push(Rule::skip("batch.execution-parameters", why));
    rules
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// When the port first accepted a connection. Informational: SageMaker refuses nothing
/// for a late listener as long as `/ping` turns 200 within the startup limit (a
/// connection not accepted within 250 ms once serving is `ping.connect`'s).
fn listen_rule(instance: &Instance) -> Rule {
    const CODE: &str = "start.listen";
    let Some(after) = instance.listening_after else {
        return Rule::skip(CODE, "the time to the first connection was not measured");
    };
    let mut measured = format!(
        "port {} accepted the first connection {} after the container started",
        instance.addr.port(),
        secs(after)
    );
    if after > launch::CONNECT_TIMEOUT {
        measured.push_str(": SageMaker's health checks are refused until then, which it tolerates within the startup limit");
    }
    Rule::pass(CODE, measured)
}

fn health_rule(instance: &Instance, timeout: Duration) -> Rule {
    const CODE: &str = "start.health";
    let measured = format!(
        "/ping answered 200 {} after the container was created (the limit: {})",
        secs(instance.ready_after),
        humantime::format_duration(timeout)
    );
    if instance.ready_after > timeout / 2 {
        return Rule::warn(
            CODE,
            format!("{measured}: more than half the time allowed, on this machine"),
            "start faster (load less at start, or in parallel), or set ContainerStartupHealthCheckTimeoutInSeconds on the production variant",
        );
    }
    Rule::pass(CODE, measured)
}

fn read_only_rule(has_model: bool, log: Option<&str>) -> Rule {
    const CODE: &str = "env.model-read-only";
    if !has_model {
        return Rule::not_applicable(CODE, "no model given: nothing was mounted at /opt/ml/model");
    }
    if let Some(line) = log.and_then(|l| l.lines().find(|line| line.contains(READ_ONLY))) {
        return Rule::fail(
            CODE,
            format!("the container wrote into a read-only place: {}", line.trim()),
            "SageMaker mounts /opt/ml/model read-only: write to /tmp (or another folder of your own) instead",
        );
    }
    Rule::pass(
        CODE,
        "served with /opt/ml/model mounted read-only, and its log shows no write refused",
    )
}

fn isolation_rule(options: &Options, needed_network: Option<&str>) -> Rule {
    const CODE: &str = "env.network-isolation";
    let Some(why) = needed_network else {
        return Rule::pass(
            CODE,
            "started and served with no route outside this machine (as under EnableNetworkIsolation)",
        );
    };
    let first = why.lines().take(6).collect::<Vec<_>>().join("\n");
    let measured = format!(
        "without a network the container exited at start, with one it started: it fetches something at start (a `code/requirements.txt` install, a download).\n{first}"
    );
    let fix = "put what it fetches into the image or the model artifact (pip wheels in the image, files under /opt/ml/model)";
    if options.network_isolation {
        Rule::fail(CODE, measured, fix)
    } else {
        Rule::warn(
            CODE,
            format!("{measured}\nWith EnableNetworkIsolation, or in a VPC without internet access, it cannot start."),
            fix,
        )
    }
}

/// One `/ping` and how long it took.
#[derive(Debug, Clone)]
struct PingSample {
    took: Duration,
    answer: Result<u16, PingFailure>,
}

async fn ping(addr: SocketAddr) -> PingSample {
    let t0 = Instant::now();
    let answer = launch::ping(addr).await;
    PingSample {
        took: t0.elapsed(),
        answer,
    }
}

/// The engine's memory and CPU figures for the container, their peaks.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    samples: u32,
    peak_memory: u64,
    /// In CPUs.
    peak_cpus: f64,
}

/// Follows the engine's figures until aborted.
fn follow_usage(engine: &Engine, id: &str) -> (Arc<Mutex<Usage>>, tokio::task::JoinHandle<()>) {
    let usage = Arc::new(Mutex::new(Usage::default()));
    let (docker, id, shared) = (engine.docker.clone(), id.to_string(), usage.clone());
    let task = tokio::spawn(async move {
        let options = StatsOptionsBuilder::default().stream(true).build();
        let mut stream = docker.stats(&id, Some(options));
        let mut last: Option<(u64, Instant)> = None;
        while let Some(Ok(stats)) = stream.next().await {
            let now = Instant::now();
            let memory = stats.memory_stats.as_ref().and_then(|m| {
                let usage = m.usage?;
                let inactive = m.stats.as_ref().and_then(|s| {
                    s.get("inactive_file")
                        .or_else(|| s.get("total_inactive_file"))
                        .copied()
                });
                Some(usage.saturating_sub(inactive.unwrap_or(0)))
            });
            let cpu = stats
                .cpu_stats
                .as_ref()
                .and_then(|c| c.cpu_usage.as_ref()?.total_usage);
            let mut u = locked(&shared);
            if let Some(memory) = memory {
                u.samples += 1;
                u.peak_memory = u.peak_memory.max(memory);
            }
            if let Some(total) = cpu {
                if let Some((before, then)) = last {
                    let wall = now.duration_since(then).as_nanos() as f64;
                    if wall > 0.0 {
                        let cpus = total.saturating_sub(before) as f64 / wall;
                        u.peak_cpus = u.peak_cpus.max(cpus);
                    }
                }
                last = Some((total, now));
            }
        }
    });
    (usage, task)
}

/// An answer to the sample request.
struct Answer {
    status: u16,
    content_type: Option<String>,
    latency: Duration,
    body: bytes::Bytes,
}

/// POSTs the sample to the container's `/invocations`, with `extra` headers.
async fn invoke(
    addr: SocketAddr,
    sample: &Sample,
    extra: &[(&'static str, &str)],
) -> Result<Answer, String> {
    let uri: hyper::Uri = format!("http://{addr}/invocations")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut request = hyper::Request::post(uri)
        .body(Full::new(sample.body.clone()))
        .map_err(|e| e.to_string())?;
    *request.headers_mut() = sample.headers.clone();
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(value) {
            request
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    let t0 = Instant::now();
    let exchange = async {
        let response = client::client()
            .request(request)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the body broke off: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, content_type, body))
    };
    let (status, content_type, body) = tokio::time::timeout(INVOKE_TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer within 60 s".to_string())??;
    Ok(Answer {
        status,
        content_type,
        latency: t0.elapsed(),
        body,
    })
}

fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// What the run measured while the container served.
struct Measured {
    rules: Vec<Rule>,
    stop: Rule,
    batch: Rule,
}

async fn measure(engine: &Engine, instance: &Instance, options: &Options) -> Measured {
    let addr = instance.addr;
    let (usage, follower) = follow_usage(engine, &instance.guard.id);
    let mut at_rest = Vec::with_capacity(STABLE_PINGS);
    for _ in 0..STABLE_PINGS {
        at_rest.push(ping(addr).await);
        tokio::time::sleep(STABLE_INTERVAL).await;
    }
    let batch = batch_rule(execution::ask(addr).await);
    let mut invoke_rules = Vec::new();
    let mut under_load = Vec::new();
    let mut load_report = None;
    match &options.sample {
        None => {
            for code in [
                "invoke.answer",
                "invoke.content-type",
                "invoke.unknown-headers",
                "invoke.warm-up",
            ] {
                invoke_rules.push(Rule::not_applicable(
                    code,
                    "no sample request: give one with --request FILE --content-type TYPE",
                ));
            }
        }
        Some(sample) => {
            let first = invoke(addr, sample, &[]).await;
            invoke_rules.push(answer_rule(&first));
            if let Some(a) = first
                .as_ref()
                .ok()
                .filter(|a| (200..300).contains(&a.status))
            {
                invoke_rules.push(content_type_rule(a));
                invoke_rules.push(unknown_headers_rule(
                    a,
                    invoke(addr, sample, UNKNOWN_HEADERS).await,
                ));
                invoke_rules.push(warm_up_rule(a.latency, warm_up(addr, sample).await));
                let (report, pings) = load(addr, sample, options).await;
                under_load = pings;
                load_report = Some(report);
            } else {
                let why = "the sample request was not answered with 2xx";
                for code in [
                    "invoke.content-type",
                    "invoke.unknown-headers",
                    "invoke.warm-up",
                ] {
                    invoke_rules.push(Rule::skip(code, why));
                }
            }
        }
    }
    let after = ping(addr).await;
    let state = engine
        .docker
        .inspect_container(&instance.guard.id, None)
        .await
        .ok()
        .and_then(|i| i.state);
    let running = state.as_ref().and_then(|s| s.running).unwrap_or(false);
    let oom = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
    let exit_code = state.as_ref().and_then(|s| s.exit_code).unwrap_or(-1);
    // One more figure from the engine after the load, then stop following.
    if running {
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    follower.abort();
    let usage = *locked(&usage);

    let mut rules = vec![
        stable_rule(&at_rest, &under_load),
        connect_rule(&at_rest, &under_load),
        latency_rule(&at_rest, &under_load),
    ];
    rules.extend(invoke_rules);
    rules.push(memory_rule(usage, options, oom));
    rules.push(cpu_rule(usage, options));
    rules.push(survives_rule(
        running,
        oom,
        exit_code,
        &after,
        load_report.as_ref(),
    ));
    let stop = if running {
        stop_rule(engine, instance, options.stop_timeout).await
    } else {
        Rule::skip(
            "stop.sigterm",
            format!("the container had already exited (code {exit_code})"),
        )
    };
    Measured { rules, stop, batch }
}

/// Headers a SageMaker front end or a tracing proxy may add, which a container must ignore.
const UNKNOWN_HEADERS: &[(&str, &str)] = &[
    ("x-amzn-sagemaker-inference-id", "sagedock-check-1"),
    (
        "x-amzn-trace-id",
        "Root=1-00000000-000000000000000000000000",
    ),
    ("x-forwarded-for", "10.0.0.1"),
    ("x-sagedock-check", "an unknown header"),
];

fn answer_rule(first: &Result<Answer, String>) -> Rule {
    const CODE: &str = "invoke.answer";
    match first {
        Ok(a) if (200..300).contains(&a.status) => Rule::pass(
            CODE,
            format!(
                "{} with {} bytes in {}",
                a.status,
                a.body.len(),
                millis(a.latency)
            ),
        ),
        Ok(a) => Rule::fail(
            CODE,
            format!("answered {} in {}: {}", a.status, millis(a.latency), shown(&a.body)),
            "make the sample what the model's input handler accepts (--content-type, the body), and read the container's log for the error",
        ),
        Err(why) => Rule::fail(
            CODE,
            why.clone(),
            "SageMaker gives up on an invocation after 60 s (InvokeEndpoint answers ModelError): answer within it",
        ),
    }
}

fn content_type_rule(a: &Answer) -> Rule {
    const CODE: &str = "invoke.content-type";
    match &a.content_type {
        Some(t) => Rule::pass(CODE, format!("Content-Type: {t}")),
        None => Rule::warn(
            CODE,
            "the answer has no Content-Type: InvokeEndpoint's ContentType then does not say how to read the body",
            "set Content-Type on every answer (the format the request's Accept asked for)",
        ),
    }
}

fn unknown_headers_rule(plain: &Answer, with: Result<Answer, String>) -> Rule {
    const CODE: &str = "invoke.unknown-headers";
    let names: Vec<&str> = UNKNOWN_HEADERS.iter().map(|(n, _)| *n).collect();
    match with {
        Ok(a) if a.status / 100 == plain.status / 100 => Rule::pass(
            CODE,
            format!("answered {} with {} added", a.status, names.join(", ")),
        ),
        Ok(a) => Rule::fail(
            CODE,
            format!(
                "answered {} without them and {} with {} added: {}",
                plain.status,
                a.status,
                names.join(", "),
                shown(&a.body)
            ),
            "ignore request headers the server does not know: SageMaker and the proxies in front of it add their own",
        ),
        Err(why) => Rule::fail(
            CODE,
            format!("with {} added: {why}", names.join(", ")),
            "ignore request headers the server does not know",
        ),
    }
}

/// Sequential answers after the first, each request sent when the last is answered.
async fn warm_up(addr: SocketAddr, sample: &Sample) -> Vec<Duration> {
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    while latencies.len() + 1 < WARM_REQUESTS && (latencies.len() < 2 || t0.elapsed() < WARM_BUDGET)
    {
        match invoke(addr, sample, &[]).await {
            Ok(a) if (200..300).contains(&a.status) => latencies.push(a.latency),
            _ => break,
        }
    }
    latencies
}

/// How many requests it took to reach the steady latency (the median of the last half).
fn warm_up_rule(first: Duration, rest: Vec<Duration>) -> Rule {
    const CODE: &str = "invoke.warm-up";
    if rest.len() < 2 {
        return Rule::skip(CODE, "fewer than 3 requests were answered");
    }
    let all: Vec<Duration> = std::iter::once(first).chain(rest).collect();
    let mut tail: Vec<Duration> = all[all.len() / 2..].to_vec();
    tail.sort();
    let steady = tail[tail.len() / 2];
    let bound = steady * 2 + Duration::from_millis(5);
    let steady_from = (0..all.len())
        .find(|&i| all[i..].iter().all(|l| *l <= bound))
        .unwrap_or(all.len());
    let measured = format!(
        "first request {}, steady {} (the median of the last {}); steady from request {} of {}",
        millis(first),
        millis(steady),
        tail.len(),
        steady_from + 1,
        all.len()
    );
    let slowest_cold = all[..steady_from].iter().max().copied().unwrap_or(first);
    if slowest_cold > steady * 5 + Duration::from_millis(100) {
        return Rule::warn(
            CODE,
            format!("{measured}: the first requests after every deployment, scale-out or replacement pay {}", millis(slowest_cold)),
            "load the model at start, before /ping answers 200 (with several workers, in each worker or before they fork), and warm it with one inference",
        );
    }
    Rule::pass(CODE, measured)
}

/// The sample under load, with `/ping` asked all along.
async fn load(
    addr: SocketAddr,
    sample: &Sample,
    options: &Options,
) -> (Result<bench::Report, String>, Vec<PingSample>) {
    let connections = (options.instance_type.vcpus as usize * 2).clamp(2, 16);
    let load = async {
        let url = format!("http://{addr}/invocations")
            .parse()
            .map_err(|e| format!("{e}"))?;
        bench::run(Load {
            url,
            headers: sample.headers.clone(),
            body: sample.body.clone(),
            connections,
            rate: None,
            duration: options.load,
            warmup: Duration::ZERO,
            timeout: INVOKE_TIMEOUT,
        })
        .await
        .map_err(|e| e.to_string())
    };
    tokio::pin!(load);
    let mut pings = Vec::new();
    let report = loop {
        tokio::select! {
            report = &mut load => break report,
            sample = async {
                tokio::time::sleep(LOAD_PING_INTERVAL).await;
                ping(addr).await
            } => pings.push(sample),
        }
    };
    (report, pings)
}

fn stable_rule(at_rest: &[PingSample], under_load: &[PingSample]) -> Rule {
    const CODE: &str = "ping.stable";
    let ok = |s: &[PingSample]| s.iter().filter(|p| p.answer == Ok(200)).count();
    let measured = format!(
        "{} of {} at rest and {} of {} under load answered 200",
        ok(at_rest),
        at_rest.len(),
        ok(under_load),
        under_load.len()
    );
    let bad: Vec<String> = at_rest
        .iter()
        .chain(under_load)
        .filter(|p| p.answer != Ok(200))
        .map(|p| match &p.answer {
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e.to_string(),
        })
        .take(3)
        .collect();
    if bad.is_empty() {
        return Rule::pass(CODE, measured);
    }
    Rule::fail(
        CODE,
        format!("{measured}; first failures: {}", bad.join("; ")),
        "once healthy, keep /ping 200 while the server can answer: SageMaker replaces an instance whose health checks fail",
    )
}

fn connect_rule(at_rest: &[PingSample], under_load: &[PingSample]) -> Rule {
    const CODE: &str = "ping.connect";
    let all: Vec<&PingSample> = at_rest.iter().chain(under_load).collect();
    let refused = all
        .iter()
        .filter(|p| matches!(p.answer, Err(PingFailure::Connect(_))))
        .count();
    if refused == 0 {
        return Rule::pass(
            CODE,
            format!(
                "all {} health-check connections accepted within 250 ms",
                all.len()
            ),
        );
    }
    Rule::fail(
        CODE,
        format!("{refused} of {} health-check connections were not accepted within 250 ms", all.len()),
        "accept connections promptly even when busy: a larger listen backlog, or an acceptor that does not wait on the workers",
    )
}

fn latency_rule(at_rest: &[PingSample], under_load: &[PingSample]) -> Rule {
    const CODE: &str = "ping.latency";
    let slowest = |s: &[PingSample]| s.iter().map(|p| p.took).max().unwrap_or_default();
    let too_slow =
        |p: &&PingSample| matches!(p.answer, Err(PingFailure::Answer(_))) || p.took >= PING_TIMEOUT;
    let slow = at_rest.iter().chain(under_load).filter(too_slow).count();
    let measured = format!(
        "slowest /ping {} at rest, {} under load ({} asked)",
        millis(slowest(at_rest)),
        if under_load.is_empty() {
            "none sent".to_string()
        } else {
            millis(slowest(under_load))
        },
        at_rest.len() + under_load.len()
    );
    let fix = "answer /ping from a thread or event loop the invocations do not hold (a separate worker, or the server's own health route), in well under 2 s";
    if slow > 0 {
        return Rule::fail(
            CODE,
            format!("{measured}; {slow} got no answer within 2 s, SageMaker's limit: the instance would be marked unhealthy and replaced"),
            fix,
        );
    }
    if slowest(at_rest).max(slowest(under_load)) > PING_TIMEOUT / 2 {
        return Rule::warn(
            CODE,
            format!("{measured}: over half of SageMaker's 2 s limit"),
            fix,
        );
    }
    Rule::pass(CODE, measured)
}

const MIB: f64 = 1024.0 * 1024.0;

fn memory_rule(usage: Usage, options: &Options, oom: bool) -> Rule {
    const CODE: &str = "limits.memory";
    let it = &options.instance_type;
    let limit = it.memory_mib as f64 * MIB;
    if oom {
        return Rule::fail(
            CODE,
            format!("the container was OOM-killed: it went over the {} MiB of {}", it.memory_mib, it.name),
            "choose an instance type with more memory, or use less (fewer workers: each loads its own copy of the model)",
        );
    }
    if usage.samples == 0 {
        return Rule::skip(CODE, "the engine gave no memory figures");
    }
    let peak = usage.peak_memory as f64;
    if it.is_local() {
        return Rule::pass(
            CODE,
            format!("peak {:.0} MiB (local: no limit)", peak / MIB),
        );
    }
    let measured = format!(
        "peak {:.0} MiB of {} MiB ({:.0} %), in {} figures from the engine",
        peak / MIB,
        it.memory_mib,
        peak / limit * 100.0,
        usage.samples
    );
    if peak > limit * 0.9 {
        return Rule::warn(
            CODE,
            format!("{measured}: little room for bigger requests or more workers"),
            "choose an instance type with more memory, or use less",
        );
    }
    Rule::pass(CODE, measured)
}

fn cpu_rule(usage: Usage, options: &Options) -> Rule {
    const CODE: &str = "limits.cpu";
    if usage.samples < 2 {
        return Rule::skip(CODE, "the engine gave too few CPU figures");
    }
    let it = &options.instance_type;
    if it.is_local() {
        return Rule::pass(
            CODE,
            format!("peak {:.2} CPUs (local: no limit)", usage.peak_cpus),
        );
    }
    Rule::pass(
        CODE,
        format!("peak {:.2} of {} vCPUs", usage.peak_cpus, it.vcpus),
    )
}

fn survives_rule(
    running: bool,
    oom: bool,
    exit_code: i64,
    after: &PingSample,
    report: Option<&Result<bench::Report, String>>,
) -> Rule {
    const CODE: &str = "limits.survives";
    let load = match report {
        None => "no load was sent (no sample request answered)".to_string(),
        Some(Err(why)) => format!("the load could not run: {why}"),
        Some(Ok(r)) => {
            let latency = r
                .latency_ms
                .as_ref()
                .map(|l| format!("; p50 {:.1} ms, p99 {:.1} ms", l.p50, l.p99))
                .unwrap_or_default();
            format!(
                "{} of {} requests answered 2xx under load ({} connections, {:.1} s{latency})",
                r.ok, r.requests, r.connections, r.duration_s
            )
        }
    };
    if !running {
        return Rule::fail(
            CODE,
            format!(
                "{load}; the container exited with code {exit_code}{}",
                if oom { " (OOM-killed)" } else { "" }
            ),
            "a container that dies under load is replaced by SageMaker, and its requests fail: see its log",
        );
    }
    if after.answer != Ok(200) {
        return Rule::fail(
            CODE,
            format!(
                "{load}; /ping after the load: {}",
                match &after.answer {
                    Ok(s) => format!("HTTP {s}"),
                    Err(e) => e.to_string(),
                }
            ),
            "keep /ping 200 after load: SageMaker replaces an instance whose health checks fail",
        );
    }
    if let Some(Ok(r)) = report {
        if r.failed > 0 {
            let kinds: Vec<String> = r
                .failures
                .iter()
                .map(|(k, n)| format!("{n} × {k}"))
                .collect();
            return Rule::fail(
                CODE,
                format!("{load}; failures: {}", kinds.join(", ")),
                "answer every request the instance is sent at this concurrency, or choose a bigger instance type",
            );
        }
    }
    Rule::pass(CODE, format!("{load}; still running, /ping 200 after"))
}

async fn stop_rule(engine: &Engine, instance: &Instance, timeout: Duration) -> Rule {
    const CODE: &str = "stop.sigterm";
    let grace_secs = timeout.as_secs().max(1);
    let grace = i32::try_from(grace_secs).unwrap_or(i32::MAX);
    let t0 = Instant::now();
    if let Err(e) = launch::stop(engine, &instance.guard, grace).await {
        return Rule::skip(CODE, format!("the container could not be stopped: {e}"));
    }
    let took = t0.elapsed();
    let exit = match launch::wait_exit(engine, &instance.guard).await {
        Ok(exit) => exit,
        Err(e) => return Rule::skip(CODE, format!("its exit was not seen: {e}")),
    };
    let measured = format!(
        "exited with code {}, {} after SIGTERM",
        exit.code,
        secs(took)
    );
    if exit.code == 137 && took + Duration::from_millis(500) >= Duration::from_secs(grace_secs) {
        return Rule::fail(
            CODE,
            format!("did not exit within {grace} s of SIGTERM and was killed (code 137): every scale-in, update and delete waits that long for this instance"),
            "exit on SIGTERM: as PID 1 a process gets no default signal action, so install a handler (or run the server with exec-form ENTRYPOINT so it receives the signal)",
        );
    }
    if took > Duration::from_secs(10) {
        return Rule::warn(
            CODE,
            format!("{measured}: every scale-in and update waits this long"),
            "finish in-flight requests and exit promptly on SIGTERM",
        );
    }
    Rule::pass(CODE, measured)
}

fn batch_rule(asked: Asked) -> Rule {
    const CODE: &str = "batch.execution-parameters";
    match asked {
        Asked::Absent(status) => Rule::pass(
            CODE,
            format!("absent (HTTP {status}): transform jobs go by the request's values and SageMaker's defaults"),
        ),
        Asked::Offered { offered, problems } if problems.is_empty() => Rule::pass(
            CODE,
            format!(
                "MaxConcurrentTransforms {}, BatchStrategy {}, MaxPayloadInMB {}",
                offered.concurrency.map_or("unset".into(), |n| n.to_string()),
                offered.strategy.map_or("unset", |s| s.env_value()),
                offered.max_payload_mb.map_or("unset".into(), |n| n.to_string()),
            ),
        ),
        Asked::Offered { problems, .. } => Rule::warn(
            CODE,
            format!("answered 200, but: {}; transform jobs ignore those values", problems.join("; ")),
            "answer {\"MaxConcurrentTransforms\": N, \"BatchStrategy\": \"MULTI_RECORD\" or \"SINGLE_RECORD\", \"MaxPayloadInMB\": N}",
        ),
        Asked::NotJson(why) => Rule::warn(
            CODE,
            format!("answered 200, but {why}; transform jobs ignore it"),
            "answer a JSON object, or 404 when there is nothing to offer",
        ),
        Asked::NoAnswer(why) => Rule::warn(
            CODE,
            format!("no answer: {why}"),
            "answer GET /execution-parameters at once (404 when there is nothing to offer)",
        ),
    }
}

/// `; last /ping: …` from a health-timeout message, when it has one.
fn last_ping(error: &str) -> String {
    error
        .split("; ")
        .find(|part| part.starts_with("last /ping:"))
        .map(|part| format!("; {part}"))
        .unwrap_or_default()
}

/// Removes a fleet whose rules are measured: killed, not asked to stop (that was measured,
/// or does not matter).
async fn discard(engine: &Engine, fleet: Fleet) {
    for instance in fleet.containers() {
        let _ = launch::stop(engine, &instance.guard, 0).await;
    }
    fleet.remove().await;
}

/// The bind-to-port rule: a second start on another port, when the image declares it.
async fn bind_rule(
    deployer: &Deployer,
    options: &Options,
    facts: &ImageFacts,
    isolated: bool,
    ready_after: Duration,
) -> Result<Rule, CheckError> {
    const CODE: &str = "image.bind-to-port";
    if !facts.accepts_bind_to_port() {
        return Ok(Rule::pass(
            CODE,
            "does not declare accept-bind-to-port: SageMaker serves it on 8080, and not in an inference pipeline with another such container",
        ));
    }
    let wait = Duration::from_secs((ready_after * 3).as_secs() + 10).min(options.health_timeout);
    let plan = plan(options, isolated, Some(OTHER_PORT), wait);
    match deployer.launch(&plan).await {
        Ok(fleet) => {
            discard(deployer.engine(), fleet).await;
            Ok(Rule::pass(
                CODE,
                format!("declares accept-bind-to-port and served /ping on {OTHER_PORT} with SAGEMAKER_BIND_TO_PORT={OTHER_PORT}"),
            ))
        }
        Err(e) if e.is_start_failure() => Ok(Rule::fail(
            CODE,
            format!(
                "declares accept-bind-to-port, but with SAGEMAKER_BIND_TO_PORT={OTHER_PORT} it did not answer /ping there within {}{}",
                secs(wait),
                last_ping(&e.to_string())
            ),
            "listen on $SAGEMAKER_BIND_TO_PORT when it is set (an inference pipeline gives each container its own port), or remove the label",
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Verdict;
    use crate::state::transform_job::BatchStrategy;
    use crate::transform::execution::Offered;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pinged(took: u64, answer: Result<u16, PingFailure>) -> PingSample {
        PingSample {
            took: ms(took),
            answer,
        }
    }

    #[test]
    fn a_cold_first_request_warns_and_says_when_latency_settles() {
        let rule = warm_up_rule(ms(1500), vec![ms(900), ms(2), ms(2), ms(3), ms(2), ms(2)]);
        assert_eq!(rule.verdict, Verdict::Warn, "{}", rule.measured);
        assert!(
            rule.measured.contains("steady from request 3 of 7"),
            "{}",
            rule.measured
        );
        let flat = warm_up_rule(ms(3), vec![ms(2); 10]);
        assert_eq!(flat.verdict, Verdict::Pass, "{}", flat.measured);
        assert_eq!(warm_up_rule(ms(3), vec![ms(2)]).verdict, Verdict::Skip);
    }

    #[test]
    fn pings_are_judged_by_sagemakers_limits() {
        let fine = [pinged(3, Ok(200)), pinged(5, Ok(200))];
        assert_eq!(latency_rule(&fine, &[]).verdict, Verdict::Pass);
        assert_eq!(stable_rule(&fine, &fine).verdict, Verdict::Pass);
        assert_eq!(connect_rule(&fine, &[]).verdict, Verdict::Pass);
        let slow = [pinged(1200, Ok(200))];
        assert_eq!(latency_rule(&fine, &slow).verdict, Verdict::Warn);
        let timed_out = [pinged(
            2000,
            Err(PingFailure::Answer(
                "GET /ping: no answer within 2 s".into(),
            )),
        )];
        let rule = latency_rule(&fine, &timed_out);
        assert_eq!(rule.verdict, Verdict::Fail);
        assert!(
            rule.measured.contains("1 got no answer within 2 s"),
            "{}",
            rule.measured
        );
        assert_eq!(stable_rule(&fine, &timed_out).verdict, Verdict::Fail);
        let sick = [pinged(1, Ok(503))];
        let rule = stable_rule(&sick, &[]);
        assert_eq!(rule.verdict, Verdict::Fail);
        assert!(rule.measured.contains("HTTP 503"), "{}", rule.measured);
        let refused = [pinged(
            250,
            Err(PingFailure::Connect(
                "connect: no answer within 250 ms".into(),
            )),
        )];
        assert_eq!(connect_rule(&fine, &refused).verdict, Verdict::Fail);
    }

    #[test]
    fn execution_parameters_absent_offered_or_wrong() {
        assert_eq!(batch_rule(Asked::Absent(404)).verdict, Verdict::Pass);
        let offered = batch_rule(Asked::Offered {
            offered: Offered {
                concurrency: Some(2),
                max_payload_mb: Some(6),
                strategy: Some(BatchStrategy::SingleRecord),
            },
            problems: vec![],
        });
        assert_eq!(offered.verdict, Verdict::Pass);
        assert!(
            offered.measured.contains("BatchStrategy SINGLE_RECORD"),
            "{}",
            offered.measured
        );
        let wrong = batch_rule(Asked::Offered {
            offered: Offered::default(),
            problems: vec!["BatchStrategy \"Lines\" is not MultiRecord or SingleRecord".into()],
        });
        assert_eq!(wrong.verdict, Verdict::Warn);
        assert_eq!(
            batch_rule(Asked::NotJson("not JSON".into())).verdict,
            Verdict::Warn
        );
    }

    #[test]
    fn the_last_ping_is_taken_from_a_health_timeout() {
        let text = "container c did not answer GET /ping with 200 within 10s; last /ping: connect 1.2.3.4:8081: Connection refused; last log lines:\n  x";
        assert_eq!(
            last_ping(text),
            "; last /ping: connect 1.2.3.4:8081: Connection refused"
        );
        assert_eq!(last_ping("exited"), "");
    }
}
