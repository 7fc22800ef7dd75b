//! The load generator against small in-process HTTP servers whose behaviour each test
//! chooses (a fast answer, a stall, an error, a slow model).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::*;

/// What the test server does with the request it receives `n`-th (from 0), `after` the
/// server started.
type Behaviour = dyn Fn(u64, Duration) -> (Duration, StatusCode) + Send + Sync;

/// Serves on a free loopback port; returns its `/invocations` URL and a request counter.
async fn server(behaviour: Arc<Behaviour>) -> (Uri, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let behaviour = behaviour.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let (delay, status) = behaviour(n, started.elapsed());
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *response.status_mut() = status;
                        if status == StatusCode::FAILED_DEPENDENCY {
                            response.headers_mut().insert(
                                "x-amzn-ErrorType",
                                "ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/"
                                    .parse()
                                    .unwrap(),
                            );
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("http://127.0.0.1:{port}/invocations")
        .parse()
        .unwrap();
    (url, count)
}

fn load(url: Uri, connections: usize, rate: Option<f64>, duration_ms: u64) -> Load {
    Load {
        url,
        headers: HeaderMap::new(),
        bodies: vec![Bytes::from_static(b"{\"x\": 1}")],
        connections,
        rate,
        duration: Duration::from_millis(duration_ms),
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        live: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_every_answer() {
    let (url, count) = server(Arc::new(|_, _| (Duration::ZERO, StatusCode::OK))).await;
    let report = run(load(url, 4, None, 500)).await.unwrap();
    assert_eq!(report.mode, "closed");
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert!(report.ok > 50, "{report:?}");
    // The warm-up's requests reached the server but are not counted.
    assert!(count.load(Ordering::SeqCst) > report.ok);
    let l = report.latency_ms.unwrap();
    assert!(
        l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max,
        "{l:?}"
    );
    assert_eq!(l.distribution.last().unwrap()[0], 100.0);
    assert!((report.throughput - report.ok as f64 / 0.5).abs() < 1e-6);
}

/// A 300 ms stall in the middle of the window: an open-loop run measures the requests that
/// fell due during it from their due time, so its p99 shows the stall; a closed-loop run
/// over the same server sees one slow request and hides the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_measures_a_stall_from_due_times() {
    // The first request to arrive 500 ms after the server started takes 300 ms; every
    // other one is answered at once, so the backlog drains within milliseconds even on a
    // busy machine and the run ends on schedule.
    let stall = || {
        let stalled = std::sync::atomic::AtomicBool::new(false);
        move |_n: u64, after: Duration| {
            let stall_now =
                after >= Duration::from_millis(500) && !stalled.swap(true, Ordering::SeqCst);
            let delay = if stall_now { 300 } else { 0 };
            (Duration::from_millis(delay), StatusCode::OK)
        }
    };
    let (url, _) = server(Arc::new(stall())).await;
    let open = run(load(url.clone(), 1, Some(200.0), 1200)).await.unwrap();
    let l = open.latency_ms.clone().unwrap();
    assert!(l.max >= 290.0, "{l:?}");
    // 300 ms at 200/s: about 60 requests fell due during the stall and waited for it,
    // 25% of the run's 240, so p99 is well into the stall.
    assert!(l.p99 >= 100.0, "open loop p99 {l:?}");
    assert_eq!(open.unsent, 0, "{open:?}");

    let (url, _) = server(Arc::new(stall())).await;
    let closed = run(load(url, 1, None, 1200)).await.unwrap();
    let c = closed.latency_ms.unwrap();
    assert!(c.max >= 290.0, "{c:?}");
    assert!(c.p99 < 100.0, "closed loop p99 {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_reports_what_it_could_not_send() {
    // 20 ms per answer on one connection is at most 50/s; 200/s are asked.
    let (url, _) = server(Arc::new(|_, _| (Duration::from_millis(20), StatusCode::OK))).await;
    let report = run(load(url, 1, Some(200.0), 600)).await.unwrap();
    assert!(report.unsent > 60, "{report:?}");
    assert!(report.ok > 0 && report.ok < 40, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_counted_by_status_and_aws_error_type() {
    let (url, _) = server(Arc::new(|n, _| {
        let status = if n % 2 == 0 {
            StatusCode::FAILED_DEPENDENCY
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (Duration::ZERO, status)
    }))
    .await;
    let report = run(load(url, 1, None, 300)).await.unwrap();
    assert_eq!(report.ok, 0);
    assert!(report.latency_ms.is_none());
    assert!(
        report.failures["424 ModelError"] > 0,
        "{:?}",
        report.failures
    );
    assert!(report.failures["503"] > 0, "{:?}", report.failures);
    assert_eq!(report.failed, report.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_counted_failure_not_a_spin() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url: Uri = format!("http://127.0.0.1:{port}/invocations")
        .parse()
        .unwrap();
    let report = run(load(url, 2, None, 300)).await.unwrap();
    assert_eq!(report.ok, 0);
    let refused: u64 = report
        .failures
        .iter()
        .filter(|(k, _)| k.starts_with("connection: "))
        .map(|(_, n)| n)
        .sum();
    assert!(refused > 0, "{:?}", report.failures);
    // One attempt per 10 ms per connection at most.
    assert!(refused <= 2 * 300 / 10 + 4, "{refused}");
}

#[tokio::test]
async fn only_plain_http_urls_are_taken() {
    let err = run(load("https://example.com/x".parse().unwrap(), 1, None, 10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https is not supported"), "{err}");
    let err = run(load("/relative".parse().unwrap(), 1, None, 10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
}

#[test]
fn model_errors_are_told_apart_by_the_models_status() {
    let body = br#"{"ErrorCode":"CLIENT_ERROR_FROM_MODEL","OriginalStatusCode":415,"Message":"m"}"#;
    assert_eq!(
        super::failure_kind(424, Some("ModelError"), body),
        "424 ModelError (415)"
    );
    assert_eq!(
        super::failure_kind(424, Some("ModelError"), b"not json"),
        "424 ModelError"
    );
    assert_eq!(
        super::failure_kind(400, Some("ValidationError"), b"{}"),
        "400 ValidationError"
    );
    assert_eq!(super::failure_kind(502, None, b""), "502");
}
