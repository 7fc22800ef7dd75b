//! The sample request: its answer, its content type, the same request with headers the
//! server does not know, its cold and warm latency, and the load the limits are measured
//! under (with `/ping` asked all along).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};

use super::ping::{ping, PingSample};
use super::{millis, Options, Rule, Sample};
use crate::bench::{self, Load};
use crate::endpoint::client;

/// `/ping` while the load runs, this often.
const LOAD_PING_INTERVAL: Duration = Duration::from_millis(200);
/// Sequential invocations for the warm-up rule: at most this many, within this time.
const WARM_REQUESTS: usize = 20;
const WARM_BUDGET: Duration = Duration::from_secs(5);
/// SageMaker's limit on an invocation.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

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
            .map_err(|e| format!("no answer: {}", causes(&e)))?;
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

/// An error with its causes: hyper's own message alone ("client error (SendRequest)")
/// does not say that the connection was closed.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
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
            bodies: vec![sample.body.clone()],
            connections,
            rate: None,
            duration: options.load,
            warmup: Duration::ZERO,
            timeout: INVOKE_TIMEOUT,
            live: None,
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

/// What the sample request showed, and the load it was sent under.
pub(super) struct Invoked {
    /// `invoke.*`, in report order.
    pub(super) rules: Vec<Rule>,
    /// `/ping` while the load ran.
    pub(super) pings: Vec<PingSample>,
    /// The load's report, when one was sent.
    pub(super) load: Option<Result<bench::Report, String>>,
}

/// The invocation rules, then the load, for the container at `addr`.
pub(super) async fn run(addr: SocketAddr, options: &Options) -> Invoked {
    let codes = [
        "invoke.answer",
        "invoke.content-type",
        "invoke.unknown-headers",
        "invoke.warm-up",
    ];
    let Some(sample) = &options.sample else {
        let why = "no sample request: give one with --request FILE --content-type TYPE";
        return Invoked {
            rules: codes.map(|c| Rule::not_applicable(c, why)).to_vec(),
            pings: Vec::new(),
            load: None,
        };
    };
    let first = invoke(addr, sample, &[]).await;
    let mut rules = vec![answer_rule(&first)];
    let Some(a) = first.ok().filter(|a| (200..300).contains(&a.status)) else {
        let why = "the sample request was not answered with 2xx";
        rules.extend(codes[1..].iter().map(|c| Rule::skip(c, why)));
        return Invoked {
            rules,
            pings: Vec::new(),
            load: None,
        };
    };
    rules.push(content_type_rule(&a));
    rules.push(unknown_headers_rule(
        &a,
        invoke(addr, sample, UNKNOWN_HEADERS).await,
    ));
    rules.push(warm_up_rule(a.latency, warm_up(addr, sample).await));
    let (report, pings) = load(addr, sample, options).await;
    Invoked {
        rules,
        pings,
        load: Some(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Verdict;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
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
}
