//! Load generation for `sagedock bench`: requests sent over and over on keep-alive
//! connections (one body, or several in turn), closed or open loop, with latency
//! histograms, a second-by-second timeline and a report; the search for the highest rate
//! that meets a latency objective ([`find_max`]); the report as a page with plots
//! ([`html`]).
//!
//! Owns: connections (plain HTTP/1.1, one task each, reconnecting after errors), the two
//! schedules, the histogram (HdrHistogram, 3 significant digits, 1 µs to 1 h), the
//! timeline ([`timeline`]), the running totals a progress line reads ([`Live`]) and the
//! report. Does not: know SageMaker — the caller supplies the URL, headers and bodies.
//!
//! Closed loop (no rate): each connection sends its next request when the last one is
//! answered, so the load adapts to the target and latency is measured from each send.
//!
//! Open loop (`rate`): request *k* is due at `start + k / rate` whatever the answers do.
//! A connection takes the next due request when it is free; when every connection was
//! busy at a request's due time, its latency is measured from the due time, not from the
//! late send, so a stall shows in the percentiles as the waiting its callers would have
//! seen (the "coordinated omission" that closed-loop tools hide). A request sent late
//! only because the timer woke late (tokio's timer ticks are 1 ms) is measured from its
//! send: that lag is the generator's, not the target's. Requests due in the measured
//! window that no connection could send before it ended are reported as `unsent`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;

pub mod find_max;
pub mod html;
mod invocation;
mod live;
mod render;
mod svg;
pub mod timeline;

pub use find_max::{find_max, Objective, Search, Slo};
pub use invocation::{InvalidHeader, Invocation};
pub use live::{Live, LiveFigures};
use timeline::{Outcome, Samples};

/// Why a load could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench URL {url}: {why}")]
    Url { url: String, why: String },
}

type Result<T, E = BenchError> = std::result::Result<T, E>;

/// What to send, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Load {
    /// An `http://` URL; every request is a POST to it.
    pub url: Uri,
    pub headers: HeaderMap,
    /// The request bodies, sent in turn (at least one).
    pub bodies: Vec<Bytes>,
    /// Keep-alive connections (at most this many requests in flight).
    pub connections: usize,
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// The measured window, after the warm-up.
    pub duration: Duration,
    /// Load sent before the measured window, not counted.
    pub warmup: Duration,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
    /// Running totals to update as answers come (for a progress line); `None`: none kept.
    pub live: Option<Arc<Live>>,
}

/// The outcome of a run. Latencies are in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub connections: usize,
    /// Open loop: the requests per second asked for.
    pub rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Requests sent in the measured window and answered or failed.
    pub requests: u64,
    /// Answered with a 2xx status.
    pub ok: u64,
    pub failed: u64,
    /// Failures by kind: `STATUS ErrorType` (the `x-amzn-ErrorType` header when there is
    /// one), `timeout`, or `connection: …`.
    pub failures: BTreeMap<String, u64>,
    /// Open loop: requests due in the window that no connection was free to send.
    pub unsent: u64,
    /// 2xx answers per second over the window.
    pub throughput: f64,
    /// Of the 2xx answers; absent when there were none.
    pub latency_ms: Option<Latency>,
    /// The 2xx answers by the production variant that served them
    /// (`x-amzn-Invoked-Production-Variant`); empty when the target does not say.
    pub variants: BTreeMap<String, VariantStats>,
    /// How many different bodies were sent in turn.
    pub bodies: usize,
    /// The measured window second by second.
    pub timeline: Vec<timeline::Second>,
    /// The timeline stopped short: a connection kept [`timeline::MAX_SAMPLES`] answers.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timeline_truncated: bool,
    /// The same load sent straight to one of the endpoint's containers in the same run
    /// (`--compare-direct`): what sagedock and the endpoint add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct: Option<Box<Report>>,
}

/// The answers one production variant served.
#[derive(Debug, Clone, Serialize)]
pub struct VariantStats {
    pub ok: u64,
    /// Its fraction of all 2xx answers.
    pub share: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Every percentile the histogram can tell apart, for plotting: `[percentile, ms]`.
    pub distribution: Vec<[f64; 2]>,
}

/// Runs the load and reports. Fails only when the load cannot start (a bad URL); errors
/// of individual requests are counted in the report.
pub async fn run(load: Load) -> Result<Report> {
    let target = Target::parse(&load.url)?;
    let connections = load.connections.max(1);
    let start = Instant::now();
    if load.bodies.is_empty() {
        return Err(BenchError::Url {
            url: load.url.to_string(),
            why: "no request body to send".into(),
        });
    }
    let shared = Arc::new(Shared {
        target,
        headers: load.headers.clone(),
        bodies: load.bodies.clone(),
        next_body: AtomicU64::new(0),
        live: load.live.clone(),
        interval: load
            .rate
            .map(|r| Duration::from_secs_f64(1.0 / r.max(1e-3))),
        start,
        measure_from: start + load.warmup,
        end: start + load.warmup + load.duration,
        timeout: load.timeout,
        next_slot: AtomicU64::new(0),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    let mut tally = Tally::new();
    let mut samples = Vec::with_capacity(connections);
    for task in tasks {
        match task.await {
            Ok(mut t) => {
                samples.push(std::mem::take(&mut t.samples));
                tally.merge(t);
            }
            Err(e) => *tally.failures.entry(format!("internal: {e}")).or_default() += 1,
        }
    }
    let unsent = match shared.interval {
        Some(interval) => {
            let due = shared.slots_due_in_window(interval);
            due.saturating_sub(tally.sent_in_window)
        }
        None => 0,
    };
    let (seconds, truncated) = timeline::seconds(samples, load.duration);
    let mut report = tally.report(&load, connections, unsent);
    report.timeline = seconds;
    report.timeline_truncated = truncated;
    Ok(report)
}

/// Where requests go.
#[derive(Debug)]
struct Target {
    host: String,
    port: u16,
    authority: HeaderValue,
    path: Uri,
}

impl Target {
    fn parse(url: &Uri) -> Result<Target> {
        let bad = |why: &str| BenchError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        match url.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported: bench sends plain HTTP to a local endpoint (sagedock serve or up, or a container's own address)")),
            _ => return Err(bad("it must start with http://")),
        }
        let authority = url.authority().ok_or_else(|| bad("it has no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let path = url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|e| bad(&e.to_string()))?,
            path,
        })
    }
}

struct Shared {
    target: Target,
    headers: HeaderMap,
    bodies: Vec<Bytes>,
    /// Which body the next request sends.
    next_body: AtomicU64,
    live: Option<Arc<Live>>,
    interval: Option<Duration>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    timeout: Duration,
    next_slot: AtomicU64,
}

impl Shared {
    /// The due time of the next request, or `None` when the run is over.
    fn next_due(&self) -> Option<Instant> {
        match self.interval {
            None => Some(Instant::now()).filter(|now| *now < self.end),
            Some(interval) => {
                let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
                let due = self.start + interval.mul_f64(slot as f64);
                Some(due).filter(|due| *due < self.end)
            }
        }
    }

    /// Open loop: how many requests fall due in the measured window.
    fn slots_due_in_window(&self, interval: Duration) -> u64 {
        let slots_before = |t: Instant| {
            let elapsed = t.duration_since(self.start).as_secs_f64();
            crate::units::saturating_u64((elapsed / interval.as_secs_f64()).ceil())
        };
        slots_before(self.end) - slots_before(self.measure_from)
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let body = match self.bodies.as_slice() {
            [only] => only.clone(),
            many => {
                let n = self.next_body.fetch_add(1, Ordering::Relaxed);
                many[usize::try_from(n % many.len() as u64).unwrap_or(0)].clone()
            }
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
            .headers_mut()
            .insert(HOST, self.target.authority.clone());
        request
    }
}

/// What one connection saw.
struct Tally {
    latency_us: Histogram<u64>,
    /// The same latencies by production variant.
    variants: BTreeMap<String, Histogram<u64>>,
    ok: u64,
    failures: BTreeMap<String, u64>,
    sent_in_window: u64,
    samples: Samples,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: histogram(),
            variants: BTreeMap::new(),
            ok: 0,
            failures: BTreeMap::new(),
            sent_in_window: 0,
            samples: Samples::default(),
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (name, h) in other.variants {
            let _ = self.variants.entry(name).or_insert_with(histogram).add(&h);
        }
        self.ok += other.ok;
        self.sent_in_window += other.sent_in_window;
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
    }

    /// A request of the measured window, sent at `from`, failed now.
    fn failed(&mut self, shared: &Shared, kind: String, from: Instant) {
        let now = Instant::now();
        self.samples.record(
            now.saturating_duration_since(shared.measure_from),
            now.saturating_duration_since(from),
            Outcome::Failed,
        );
        if let Some(live) = &shared.live {
            live.failed();
        }
        *self.failures.entry(kind).or_default() += 1;
    }

    /// A request of the measured window, timed from `from`, was answered 2xx at `done`.
    fn succeeded(
        &mut self,
        shared: &Shared,
        from: Instant,
        done: Instant,
        variant: Option<String>,
    ) {
        let latency = done.saturating_duration_since(from);
        self.samples.record(
            done.saturating_duration_since(shared.measure_from),
            latency,
            Outcome::Ok(variant.as_deref()),
        );
        if let Some(live) = &shared.live {
            live.answered(latency);
        }
        self.ok += 1;
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(us);
        if let Some(name) = variant {
            self.variants
                .entry(name)
                .or_insert_with(histogram)
                .saturating_record(us);
        }
    }

    fn report(self, load: &Load, connections: usize, unsent: u64) -> Report {
        let failed: u64 = self.failures.values().sum();
        let ms = |us: u64| us as f64 / 1000.0;
        let h = &self.latency_us;
        let latency_ms = (!h.is_empty()).then(|| Latency {
            min: ms(h.min()),
            mean: h.mean().round() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            distribution: h
                .iter_quantiles(1)
                .map(|v| {
                    [
                        (v.quantile_iterated_to() * 100_000.0).round() / 1000.0,
                        ms(h.highest_equivalent(v.value_iterated_to())),
                    ]
                })
                .collect(),
        });
        let variants = self
            .variants
            .iter()
            .map(|(name, h)| {
                let stats = VariantStats {
                    ok: h.len(),
                    share: h.len() as f64 / self.ok.max(1) as f64,
                    p50: ms(h.value_at_quantile(0.50)),
                    p90: ms(h.value_at_quantile(0.90)),
                    p99: ms(h.value_at_quantile(0.99)),
                    max: ms(h.max()),
                };
                (name.clone(), stats)
            })
            .collect();
        Report {
            url: load.url.to_string(),
            mode: if load.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            connections,
            rate: load.rate,
            warmup_s: load.warmup.as_secs_f64(),
            duration_s: load.duration.as_secs_f64(),
            requests: self.ok + failed,
            ok: self.ok,
            failed,
            failures: self.failures,
            unsent,
            throughput: self.ok as f64 / load.duration.as_secs_f64().max(1e-9),
            latency_ms,
            variants,
            bodies: load.bodies.len(),
            timeline: Vec::new(),
            timeline_truncated: false,
            direct: None,
        }
    }
}

/// 1 µs to 1 h at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// One connection's loop: take the next due request, send it, record the answer.
async fn connection(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::new();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while let Some(due) = shared.next_due() {
        let free_at = Instant::now();
        if due > free_at {
            tokio::time::sleep_until(due.into()).await;
        } else if free_at >= shared.end {
            // Behind schedule when the window closed: what is left is unsent.
            break;
        }
        let counted = due >= shared.measure_from;
        if let Some(s) = sender.as_mut() {
            if s.ready().await.is_err() {
                sender = None;
            }
        }
        if sender.is_none() {
            match connect(&shared.target, shared.timeout).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    if counted {
                        // Sent as far as the schedule goes: it failed, it is not unsent.
                        tally.sent_in_window += 1;
                        tally.failed(&shared, format!("connection: {e}"), free_at);
                    }
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let sent = Instant::now();
        // Open loop, behind schedule because every connection was busy: count from the
        // due time. Otherwise from the send.
        let behind = shared.interval.is_some() && free_at > due;
        let from = if behind { due } else { sent };
        let outcome = tokio::time::timeout(shared.timeout, exchange(s, shared.request())).await;
        let done = Instant::now();
        if counted {
            tally.sent_in_window += 1;
        }
        let failure = match outcome {
            Ok(Ok(Ok(variant))) => {
                if counted {
                    tally.succeeded(&shared, from, done, variant);
                }
                None
            }
            Ok(Ok(Err(kind))) => Some(kind),
            Ok(Err(e)) => {
                sender = None;
                Some(format!("connection: {e}"))
            }
            Err(_) => {
                // The answer may still come; this connection cannot be reused for the next.
                sender = None;
                Some(format!("timeout ({}s)", shared.timeout.as_secs_f64()))
            }
        };
        if let (Some(kind), true) = (failure, counted) {
            tally.failed(&shared, kind, from);
        }
    }
    tally
}

/// Sends one request and reads the whole answer: for a 2xx, the variant that served it
/// when the answer says; else the failure's kind.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> std::result::Result<std::result::Result<Option<String>, String>, hyper::Error> {
    let response = sender.send_request(request).await?;
    let status = response.status();
    let variant = response
        .headers()
        .get("x-amzn-invoked-production-variant")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|t| aws_error_type(t).to_string());
    let body = response.into_body().collect().await?.to_bytes();
    if status.is_success() {
        return Ok(Ok(variant));
    }
    Ok(Err(failure_kind(
        status.as_u16(),
        error_type.as_deref(),
        &body,
    )))
}

/// How a failed answer is counted: `STATUS ErrorType`, and for a ModelError the model's
/// own status (`424 ModelError (415)`), which is what tells one model failure from another.
fn failure_kind(status: u16, error_type: Option<&str>, body: &[u8]) -> String {
    match error_type {
        Some("ModelError") => {
            let original = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("OriginalStatusCode")
                        .and_then(serde_json::Value::as_u64)
                });
            match original {
                Some(code) => format!("{status} ModelError ({code})"),
                None => format!("{status} ModelError"),
            }
        }
        Some(t) => format!("{status} {t}"),
        None => status.to_string(),
    }
}

/// The error type in an `x-amzn-ErrorType` header, which some services send as
/// `Type:URL`.
pub fn aws_error_type(header: &str) -> &str {
    header.split(':').next().unwrap_or(header)
}

async fn connect(
    target: &Target,
    timeout: Duration,
) -> std::result::Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests;
