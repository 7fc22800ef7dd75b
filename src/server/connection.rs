//! One connection on the port: invocations on sagedock's own HTTP/1.1 loop, everything
//! else on hyper.
//!
//! InvokeEndpoint is the call a port carries by the thousand, and hyper's general server
//! (its dispatcher, a boxed timer per request, a header map grown entry by entry) was most
//! of what sagedock spent per call beyond the kernel. A request qualifies for the loop
//! here when it is `POST /invocations` or `POST /endpoints/NAME/invocations`, HTTP/1.1,
//! with a body framed by one Content-Length of at most InvokeEndpoint's 6 MB (or none),
//! no `Expect`, `Upgrade` or `Transfer-Encoding`, and headers that fit
//! [`MAX_HEAD`] and [`MAX_HEADERS`]. It is parsed with `httparse`, answered by the same
//! [`App::handle`] hyper would call, and written with its body in one write; pipelined
//! requests are answered in order. The first request that does not qualify hands the
//! connection, with every byte read so far, to hyper for the rest of its life: chunked
//! bodies, `Expect: 100-continue`, HTTP/1.0, other paths and malformed requests get
//! hyper's handling unchanged.
//!
//! The same bound as hyper's: a request's head must arrive within the header timeout
//! (`Limits::header_timeout`), which also closes a connection idle that long between
//! requests.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::App;
use crate::endpoint::http1::decimal;
use crate::endpoint::MAX_PAYLOAD;
use crate::http::Body;

/// The largest request head the loop reads; a larger one goes to hyper.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers a request on the loop may have.
pub const MAX_HEADERS: usize = 64;
/// Answers up to this size go out in the same write as their head.
const WRITE_WITH_HEAD: usize = 64 * 1024;

/// Serves one connection until it closes, idles past the header timeout, or is handed to
/// hyper.
pub async fn serve(stream: TcpStream, app: Arc<App>, header_timeout: Duration) {
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
    };
    let deadline = tokio::time::sleep(header_timeout);
    tokio::pin!(deadline);
    loop {
        deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + header_timeout);
        let head = loop {
            match parse(&conn.buf) {
                Parsed::Request(head) => break head,
                Parsed::Partial => {}
                Parsed::Other => return with_hyper(conn, app, header_timeout).await,
            }
            tokio::select! {
                read = conn.stream.read_buf(&mut conn.buf) => match read {
                    Ok(0) if conn.buf.is_empty() => return,
                    // A head cut off by the connection's end: hyper says what it says.
                    Ok(0) => return with_hyper(conn, app, header_timeout).await,
                    Ok(_) => {}
                    Err(_) => return,
                },
                () = &mut deadline => return,
            }
        };
        conn.buf.advance(head.length);
        while conn.buf.len() < head.body {
            conn.buf.reserve(head.body - conn.buf.len());
            match conn.stream.read_buf(&mut conn.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body = conn.buf.split_to(head.body).freeze();
        let keep_alive = head.keep_alive;
        let request = head.request.map(|()| Full::new(body));
        let Ok(response) = app.clone().handle(request).await;
        if conn.answer(response, keep_alive).await.is_err() || !keep_alive {
            let _ = conn.stream.shutdown().await;
            return;
        }
    }
}

/// Hands the connection, and what has been read from it, to hyper.
async fn with_hyper(conn: Conn, app: Arc<App>, header_timeout: Duration) {
    let io = Rewind {
        read: conn.buf.freeze(),
        inner: conn.stream,
    };
    let service = hyper::service::service_fn(move |req| app.clone().handle(req));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Writes `response`: its head (with Date and Content-Length), then its body.
    async fn answer(&mut self, response: Response<Body>, keep_alive: bool) -> io::Result<()> {
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
            .to_bytes();
        let mut out = Vec::with_capacity(256 + body.len().min(WRITE_WITH_HEAD));
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(parts.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            parts
                .status
                .canonical_reason()
                .unwrap_or_default()
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        for (name, value) in &parts.headers {
            if is_framing(name) {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\ndate: ");
        date(&mut out);
        out.extend_from_slice(b"\r\n\r\n");
        if body.len() <= WRITE_WITH_HEAD {
            out.extend_from_slice(&body);
            return self.stream.write_all(&out).await;
        }
        self.stream.write_all(&out).await?;
        self.stream.write_all(&body).await
    }
}

/// Headers the loop writes itself.
fn is_framing(name: &HeaderName) -> bool {
    name == hyper::header::CONTENT_LENGTH
        || name == hyper::header::TRANSFER_ENCODING
        || name == hyper::header::CONNECTION
        || name == hyper::header::DATE
}

/// Appends the current time as an HTTP date, made once a second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

/// A request head the loop answers: the request without its body, the head's length, the
/// body's length and whether the connection stays open after the answer.
#[derive(Debug)]
struct Head {
    request: Request<()>,
    length: usize,
    body: usize,
    keep_alive: bool,
}

/// What the front of a connection's buffer holds.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made and matched once per request, never stored
enum Parsed {
    Request(Head),
    /// Not all of a head yet.
    Partial,
    /// A request the loop does not take (or not HTTP/1.1 as it reads it): hyper's.
    Other,
}

/// Reads a request head from the front of `buf`.
fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD => length,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::Other,
    };
    let (Some("POST"), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::Other;
    };
    if !is_invocation(path) {
        return Parsed::Other;
    }
    let Ok(uri) = Uri::try_from(path) else {
        return Parsed::Other;
    };
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    let mut body = None;
    let mut keep_alive = true;
    for header in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Parsed::Other;
        };
        if name == hyper::header::CONTENT_LENGTH {
            match (body, decimal(header.value)) {
                (None, Some(n)) if n <= MAX_PAYLOAD => body = Some(n),
                _ => return Parsed::Other,
            }
        } else if name == hyper::header::TRANSFER_ENCODING
            || name == hyper::header::EXPECT
            || name == hyper::header::UPGRADE
        {
            return Parsed::Other;
        } else if name == hyper::header::CONNECTION {
            keep_alive &= !header
                .value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        map.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = map;
    Parsed::Request(Head {
        request,
        length,
        body: body.unwrap_or(0),
        keep_alive,
    })
}

/// `/invocations`, or `/endpoints/NAME/invocations` with NAME one path segment.
fn is_invocation(path: &str) -> bool {
    path == "/invocations"
        || path
            .strip_prefix("/endpoints/")
            .and_then(|rest| rest.strip_suffix("/invocations"))
            .is_some_and(|name| !name.is_empty() && !name.contains(['/', '?', '#']))
}

/// A stream that reads `read` first: the bytes the loop read before handing over.
struct Rewind {
    read: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether the loop takes the request at the front of `raw`; for the fuzzer.
#[cfg(test)]
pub(crate) fn takes(raw: &[u8]) -> Option<(Request<()>, usize, usize, bool)> {
    match parse(raw) {
        Parsed::Request(head) => Some((head.request, head.length, head.body, head.keep_alive)),
        Parsed::Partial | Parsed::Other => None,
    }
}

#[cfg(test)]
mod tests;
