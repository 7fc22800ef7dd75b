//! Serving [`App`] on a port.
//!
//! Connections are dealt round-robin to one thread per core, each running a
//! single-threaded runtime: a request, the connection to its container (pooled per
//! thread) and the answer stay on one thread, so an invocation costs no wake-up of another
//! thread. On a small machine that wake-up was a third of sagedock's added latency.
//!
//! What a client cannot do to it: hold a connection forever (a request's headers must
//! arrive within [`Limits::header_timeout`], which also closes a keep-alive connection idle
//! that long between requests); open more connections than the process has file
//! descriptors for (past [`Limits::max_connections`] a connection is answered 503
//! ServiceUnavailable and closed); make the accept loop spin when descriptors run out (it
//! backs off, and answers again as soon as some are free).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::App;
use crate::control::AwsError;
use crate::endpoint::ApiError;
use crate::http::Body;

/// Bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a request's headers may take to arrive, and how long a keep-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            max_connections: max_connections(open_files_limit()),
        }
    }
}

/// Descriptors kept back for the engine, containers' pooled connections and files.
const RESERVED_FILES: usize = 64;

/// Connections to serve at once with `files` descriptors: each may need one more for its
/// container connection.
fn max_connections(files: usize) -> usize {
    (files.saturating_sub(RESERVED_FILES) / 2).max(16)
}

/// The process's soft limit on open files (`ulimit -n`), from /proc (1024 when unknown).
pub fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// Counts live connections; a [`Slot`] is one of them.
#[derive(Default)]
struct Gauge(AtomicUsize);

struct Slot(Arc<Gauge>);

impl Drop for Slot {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gauge {
    /// A slot, unless `max` are taken.
    fn take(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let mut now = self.0.load(Ordering::Relaxed);
        loop {
            if now >= max {
                return None;
            }
            match self
                .0
                .compare_exchange_weak(now, now + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(Slot(self.clone())),
                Err(seen) => now = seen,
            }
        }
    }
}

/// A connection handed to a connection thread, with its slot (or none: it is refused).
struct Accepted {
    stream: std::net::TcpStream,
    slot: Option<Slot>,
}

/// Serves `app` on `listener` until the task is cancelled (then the connection threads
/// end too).
pub async fn serve(listener: TcpListener, app: Arc<App>, limits: Limits) {
    static PANIC_HOOK: std::sync::Once = std::sync::Once::new();
    PANIC_HOOK.call_once(super::log_panics_in_one_line);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut lanes = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        let app = app.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sagedock-http-{i}"))
            .spawn(move || connection_thread(rx, app, limits));
        match spawned {
            Ok(_) => lanes.push(tx),
            Err(e) => tracing::warn!(error = %e, "could not start a connection thread"),
        }
    }
    let gauge = Arc::new(Gauge::default());
    let mut next = 0usize;
    let mut backoff = Duration::from_millis(5);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(5);
                stream
            }
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                // accepted: wait a little instead of spinning, then accept again.
                tracing::warn!(error = %e, "accepting a connection failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let accepted = Accepted {
            stream,
            slot: gauge.take(limits.max_connections),
        };
        if lanes.is_empty() {
            // No connection thread could start: serve on this runtime.
            if let Ok(stream) = tokio::net::TcpStream::from_std(accepted.stream) {
                tokio::spawn(serve_connection(stream, app.clone(), limits, accepted.slot));
            }
            continue;
        }
        next = (next + 1) % lanes.len();
        let _ = lanes[next].send(accepted);
    }
}

/// One connection thread: serves the connections it is dealt until the sender is gone.
fn connection_thread(
    mut connections: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    app: Arc<App>,
    limits: Limits,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "could not start a connection thread's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        tokio::spawn(keep_timer_armed());
        while let Some(accepted) = connections.recv().await {
            if let Ok(stream) = tokio::net::TcpStream::from_std(accepted.stream) {
                tokio::spawn(serve_connection(stream, app.clone(), limits, accepted.slot));
            }
        }
    });
}

/// Keeps a timer pending on the connection thread, due sooner than any invocation's
/// deadline (60 s at the least) and any header timeout.
///
/// Tokio's timer wakes its driver (a write to an eventfd and one more pass through
/// `epoll_wait`) whenever a timer is registered that is due before every pending one. With
/// no timer pending, that was every invocation: its deadline was the only timer. A timer
/// that fires every 10 s keeps the deadlines from ever being the earliest, at the cost of
/// one wake-up per thread per 10 s.
async fn keep_timer_armed() {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// One connection: refused when it has no slot, else served ([`super::connection`]).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Arc<App>,
    limits: Limits,
    slot: Option<Slot>,
) {
    let Some(_slot) = slot else {
        // Over the cap: answer this one request 503 in its API's shape, then close; a
        // client that sends nothing is not waited for long.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(false)
            .header_read_timeout(Duration::from_secs(1));
        let refuse = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| {
            std::future::ready(Ok::<_, std::convert::Infallible>(refusal(&req)))
        });
        let _ = builder.serve_connection(TokioIo::new(stream), refuse).await;
        return;
    };
    super::connection::serve(stream, app, limits.header_timeout).await;
}

/// ServiceUnavailable for a connection over the cap.
fn refusal<B>(req: &hyper::Request<B>) -> hyper::Response<Body> {
    let message = "sagedock is serving as many connections as it can; retry shortly, or close idle connections";
    let mut response = if req.headers().contains_key("x-amz-target") {
        AwsError::new("ServiceUnavailable", 503, message).into_response()
    } else {
        ApiError::Unavailable(message.into()).into_response()
    };
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_follows_the_descriptor_limit() {
        assert_eq!(max_connections(1024), 480);
        assert_eq!(max_connections(100), 18);
        assert_eq!(max_connections(10), 16);
        assert!(open_files_limit() > 0);
        let gauge = Arc::new(Gauge::default());
        let a = gauge.take(2).unwrap();
        let _b = gauge.take(2).unwrap();
        assert!(gauge.take(2).is_none());
        drop(a);
        assert!(gauge.take(2).is_some());
    }
}
