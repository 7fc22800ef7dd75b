//! `GET /_sagedock/events`: server-sent events, one `metrics` event a second, with each
//! variant's invocations, errors and latency over that second — the difference between two
//! readings of the counters `/metrics` serves, so the charts and a Prometheus scrape agree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use serde_json::{json, Value};

use crate::endpoint::metrics::{HistogramCounts, SeriesCounts};
use crate::endpoint::Router;
use crate::http::{Body, BoxError};

/// How often an event is sent.
const EVERY: Duration = Duration::from_secs(1);

type Counts = BTreeMap<(String, String), SeriesCounts>;

/// The event stream; it ends when the client goes.
pub fn stream(router: Arc<Router>) -> Response<Body> {
    // The first frame makes the browser's EventSource open at once, and asks it to come
    // back within two seconds if the connection drops.
    let hello = Frame::data(Bytes::from_static(b"retry: 2000\n: sagedock metrics\n\n"));
    let start = (router.metrics.counts(), Instant::now());
    let ticks = stream::unfold((router, start), |(router, (before, then))| async move {
        tokio::time::sleep(EVERY).await;
        let (now, at) = (router.metrics.counts(), Instant::now());
        let event = event(&before, &now, at.duration_since(then));
        let frame = Frame::data(Bytes::from(format!("event: metrics\ndata: {event}\n\n")));
        Some((Ok::<_, BoxError>(frame), (router, (now, at))))
    });
    let frames = stream::once(async move { Ok(hello) }).chain(ticks);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One event: what each variant did between two readings `elapsed` apart.
fn event(before: &Counts, now: &Counts, elapsed: Duration) -> Value {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let series: Vec<Value> = now
        .iter()
        .map(|((endpoint, variant), counts)| {
            let window = before
                .get(&(endpoint.clone(), variant.clone()))
                .map_or(*counts, |earlier| counts.since(earlier));
            let rate = |n: u64| n as f64 / seconds;
            json!({
                "endpoint": endpoint,
                "variant": variant,
                "invocations_per_s": rate(window.invocations),
                "errors_4xx_per_s": rate(window.errors_4xx),
                "errors_5xx_per_s": rate(window.errors_5xx),
                "model_errors_per_s": rate(window.model_errors),
                "model_latency_ms": latency(&window.model_latency),
                "overhead_latency_ms": latency(&window.overhead_latency),
            })
        })
        .collect();
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    json!({"time_ms": time_ms, "interval_s": seconds, "series": series})
}

/// A window's p50, p99 and mean in milliseconds; null when nothing was answered.
fn latency(h: &HistogramCounts) -> Value {
    // Whole microseconds, said in milliseconds.
    let ms = |us: f64| us.round() / 1000.0;
    match (h.quantile_us(0.5), h.quantile_us(0.99), h.mean_us()) {
        (Some(p50), Some(p99), Some(mean)) => json!({
            "p50": ms(p50),
            "p99": ms(p99),
            "mean": ms(mean),
        }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::metrics::Metrics;

    #[test]
    fn an_event_says_what_each_variant_did_in_the_window() {
        let metrics = Metrics::default();
        let series = metrics.series("ep", "AllTraffic");
        series.record(200, Duration::from_micros(800), Duration::from_micros(850));
        let before = metrics.counts();
        for _ in 0..10 {
            series.record(200, Duration::from_micros(800), Duration::from_micros(850));
        }
        series.record(404, Duration::from_micros(800), Duration::from_micros(850));
        metrics.series("ep", "Idle");
        let event = event(&before, &metrics.counts(), Duration::from_millis(500));
        let all = &event["series"][0];
        assert_eq!(all["variant"], "AllTraffic");
        assert_eq!(all["invocations_per_s"], 22.0);
        assert_eq!(all["errors_4xx_per_s"], 2.0);
        let p50 = all["model_latency_ms"]["p50"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&p50), "{p50}");
        // A variant that appeared in the window with nothing answered: no latency.
        let idle = &event["series"][1];
        assert_eq!(idle["invocations_per_s"], 0.0);
        assert!(idle["model_latency_ms"].is_null());
    }
}
