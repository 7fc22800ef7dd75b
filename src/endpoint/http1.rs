//! The invocation path's own HTTP/1.1 client: one request to a container, its whole answer.
//!
//! hyper-util's pooled client drives every connection from a task of its own, so each call
//! crossed a channel to that task and a oneshot back, waking two tasks and taking the
//! pool's lock twice. Here the calling task owns the connection for the exchange: the
//! request head (and a small body with it) goes out in one write, the answer is read into
//! the connection's own buffer and parsed with `httparse`, and the connection goes back to
//! this thread's pool. Streamed answers (InvokeEndpointWithResponseStream) and the calls
//! that are not invocations use hyper's client ([`super::client::client`]).
//!
//! What a container may answer: a body framed by Content-Length, chunked (extensions and
//! trailers skipped), or ended by closing the connection; informational (1xx) heads before
//! the answer; `Connection: close`, and HTTP/1.0's keep-alive. Refused as a broken answer:
//! a head over [`MAX_HEAD`] or with more than [`MAX_HEADERS`] headers, a body over the
//! reader's limit, Content-Length and Transfer-Encoding together, Content-Lengths that
//! disagree, a malformed chunk, a protocol switch.
//!
//! A pooled connection the container closed while it sat idle is noticed before it is
//! used (its socket reads end-of-file); one that closes as the request goes out, before
//! any byte of an answer, is tried once more on a new connection, as a container closing
//! idle connections (gunicorn after 2 s, MMS, nginx) does not read what arrives as it
//! closes.
//!
//! Does not: send `Expect: 100-continue`, pipeline, or keep a connection whose answer
//! left bytes unread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer head read.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer head may have.
pub const MAX_HEADERS: usize = 100;
/// The largest answer body read: a bound on memory, far above InvokeEndpoint's 6 MB and a
/// transform batch's 100 MB.
pub const MAX_BODY: usize = 1 << 30;
/// A chunk-size line (with its extensions) longer than this is malformed.
const MAX_CHUNK_LINE: usize = 4096;
/// Bodies up to this size are copied out of the connection's buffer (which is then kept
/// for the next call); larger ones are split off it without a copy.
const COPY_BELOW: usize = 16 * 1024;
/// Request bodies up to this size go out in the same write as the head.
const WRITE_WITH_HEAD: usize = 64 * 1024;
/// Idle connections kept per container address, per thread.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed instead of used.
const IDLE_FOR: Duration = Duration::from_secs(90);
/// How long connecting may take: containers are on this machine or its cluster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A container's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    /// `X-Amzn-SageMaker-Custom-Attributes`.
    pub custom_attributes: Option<HeaderValue>,
    pub body: Bytes,
}

/// Why an exchange gave no answer.
#[derive(Debug)]
pub enum Failed {
    /// No connection could be made: nothing was sent.
    Connect(io::Error),
    /// The request may have been delivered, and no whole answer came.
    Lost(String),
}

/// Where requests go: a container's address and path, with the start of every request
/// head to them (request line and Host) encoded once.
#[derive(Debug, Clone)]
pub struct Destination {
    addr: SocketAddr,
    start: Box<[u8]>,
}

impl Destination {
    pub fn new(addr: SocketAddr, path: &PathAndQuery) -> Destination {
        Destination {
            addr,
            start: format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\n")
                .into_bytes()
                .into_boxed_slice(),
        }
    }
}

/// Sends a POST of `body` to `to` with `headers`, and reads the whole answer.
pub async fn post<'a>(
    to: &Destination,
    headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    body: &Bytes,
) -> Result<Answer, Failed> {
    let addr = to.addr;
    let request = encode(to, headers, body);
    let (mut conn, reused) = match checkout(addr) {
        Some(conn) => (conn, true),
        None => (Conn::connect(addr).await.map_err(Failed::Connect)?, false),
    };
    let answered = match conn.exchange(&request, body).await {
        Err(Fault::Io {
            error,
            received: false,
        }) if reused => {
            tracing::debug!(%addr, %error, "a pooled connection closed under the request; once more on a new one");
            conn = Conn::connect(addr).await.map_err(|e| {
                Failed::Lost(format!(
                    "reconnecting after the container closed the connection: {e}"
                ))
            })?;
            conn.exchange(&request, body).await
        }
        other => other,
    };
    match answered {
        Ok((answer, reusable)) => {
            if reusable {
                checkin(addr, conn);
            }
            Ok(answer)
        }
        Err(fault) => Err(Failed::Lost(fault.to_string())),
    }
}

/// The request head, with the body too when it is small.
fn encode<'a>(
    to: &Destination,
    headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    body: &Bytes,
) -> Vec<u8> {
    let inline = body.len() <= WRITE_WITH_HEAD;
    let mut out = Vec::with_capacity(256 + if inline { body.len() } else { 0 });
    out.extend_from_slice(&to.start);
    out.extend_from_slice(b"content-length: ");
    push_decimal(&mut out, body.len());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // Header values never hold CR or LF (HeaderValue refuses them).
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if inline {
        out.extend_from_slice(body);
    }
    out
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// What went wrong in an exchange.
#[derive(Debug)]
enum Fault {
    /// Reading or writing failed, or the connection ended; `received` when some of the
    /// answer had arrived.
    Io { error: io::Error, received: bool },
    /// The answer was not HTTP/1.1 as sagedock reads it.
    Broken(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Io { error, .. } => write!(f, "{error}"),
            Fault::Broken(why) => write!(f, "the container's answer is not valid HTTP/1.1: {why}"),
        }
    }
}

/// A connection to a container and what has been read from it.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    idle_since: Instant,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} took over {CONNECT_TIMEOUT:?}"),
                )
            })??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            idle_since: Instant::now(),
        })
    }

    /// Sends `request` (and `body` when it was not sent with the head) and reads the
    /// answer; also says whether the connection can be used again.
    async fn exchange(&mut self, request: &[u8], body: &Bytes) -> Result<(Answer, bool), Fault> {
        let io = |error| Fault::Io {
            error,
            received: false,
        };
        self.stream.write_all(request).await.map_err(io)?;
        if body.len() > WRITE_WITH_HEAD {
            self.stream.write_all(body).await.map_err(io)?;
        }
        let mut reader = AnswerReader::new(MAX_BODY);
        let mut received = false;
        loop {
            if let Step::Done { answer, reusable } = reader.feed(&mut self.buf)? {
                return Ok((answer, reusable));
            }
            self.buf.reserve(reader.wants(self.buf.len()));
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|error| Fault::Io { error, received })?;
            if n == 0 {
                if !received {
                    return Err(Fault::Io {
                        error: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the container closed the connection without answering",
                        ),
                        received,
                    });
                }
                return reader.end(&mut self.buf).map(|answer| (answer, false));
            }
            received = true;
        }
    }

    /// Whether the container still holds the connection open: its socket has nothing to
    /// read (an idle connection the container closed reads end-of-file).
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// This thread's idle connections, by container address. A connection belongs to the
/// runtime that made it, and each connection thread runs one runtime.
struct Pool {
    idle: HashMap<SocketAddr, Vec<Conn>>,
    swept: Instant,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool { idle: HashMap::new(), swept: Instant::now() });
}

/// An idle connection to `addr` that is still open.
fn checkout(addr: SocketAddr) -> Option<Conn> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.idle.get_mut(&addr)?;
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() < IDLE_FOR && conn.is_open() {
                return Some(conn);
            }
        }
        None
    })
}

/// Keeps `conn` for the next call to `addr`; closes connections idle too long.
fn checkin(addr: SocketAddr, mut conn: Conn) {
    let now = Instant::now();
    conn.idle_since = now;
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if now.duration_since(pool.swept) > IDLE_FOR / 3 {
            pool.swept = now;
            for conns in pool.idle.values_mut() {
                conns.retain(|c| now.duration_since(c.idle_since) < IDLE_FOR);
            }
            pool.idle.retain(|_, conns| !conns.is_empty());
        }
        let idle = pool.idle.entry(addr).or_default();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    });
}

/// The parts of an answer head sagedock keeps, and how its body is framed.
#[derive(Debug)]
struct Head {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    custom_attributes: Option<HeaderValue>,
    keep_alive: bool,
    framing: Framing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Where the reader is in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Length(usize),
    ChunkSize,
    ChunkData(usize),
    ChunkEnd,
    Trailers,
    UntilClose,
}

/// What [`AnswerReader::feed`] got to.
#[derive(Debug)]
enum Step {
    /// More bytes are needed.
    More,
    /// The answer is complete; `reusable` when the connection can carry another call.
    Done { answer: Answer, reusable: bool },
}

/// Reads one answer from bytes as they arrive: each [`feed`](AnswerReader::feed) takes
/// what it can use from the front of the buffer.
#[derive(Debug)]
struct AnswerReader {
    stage: Stage,
    head: Option<Head>,
    /// A chunked body as it is put together.
    chunks: BytesMut,
    max_body: usize,
    trailer_bytes: usize,
}

impl AnswerReader {
    fn new(max_body: usize) -> AnswerReader {
        AnswerReader {
            stage: Stage::Head,
            head: None,
            chunks: BytesMut::new(),
            max_body,
            trailer_bytes: 0,
        }
    }

    /// How much room to make in a buffer holding `buffered` bytes before the next read.
    fn wants(&self, buffered: usize) -> usize {
        match self.stage {
            Stage::Length(n) => n.saturating_sub(buffered).clamp(4096, 1 << 20),
            Stage::ChunkData(n) => n.clamp(4096, 1 << 20),
            _ => 8 * 1024,
        }
    }

    fn feed(&mut self, buf: &mut BytesMut) -> Result<Step, Fault> {
        loop {
            match self.stage {
                Stage::Head => {
                    let Some(head) = parse_head(buf)? else {
                        return Ok(Step::More);
                    };
                    self.stage = match head.framing {
                        Framing::Empty => Stage::Length(0),
                        Framing::Length(n) if n > self.max_body => {
                            return Err(self.too_large());
                        }
                        Framing::Length(n) => Stage::Length(n),
                        Framing::Chunked => Stage::ChunkSize,
                        Framing::UntilClose => Stage::UntilClose,
                    };
                    if head.status.is_informational() {
                        if head.status == StatusCode::SWITCHING_PROTOCOLS {
                            return Err(Fault::Broken("it switched protocols".into()));
                        }
                        // 100 Continue and the like come before the answer.
                        self.stage = Stage::Head;
                        continue;
                    }
                    self.head = Some(head);
                }
                Stage::Length(n) => {
                    if buf.len() < n {
                        return Ok(Step::More);
                    }
                    let body = take(buf, n);
                    return self.done(body, buf.is_empty());
                }
                Stage::ChunkSize => {
                    let Some(line) = line(buf, MAX_CHUNK_LINE, "a chunk size")? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&line)?;
                    if self.chunks.len().saturating_add(size) > self.max_body {
                        return Err(self.too_large());
                    }
                    self.stage = if size == 0 {
                        Stage::Trailers
                    } else {
                        Stage::ChunkData(size)
                    };
                }
                Stage::ChunkData(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let part = n.min(buf.len());
                    self.chunks.extend_from_slice(&buf[..part]);
                    buf.advance(part);
                    self.stage = if part == n {
                        Stage::ChunkEnd
                    } else {
                        Stage::ChunkData(n - part)
                    };
                }
                Stage::ChunkEnd => {
                    let end = match buf.as_ref() {
                        [b'\r', b'\n', ..] => 2,
                        [b'\n', ..] => 1,
                        [] | [b'\r'] => return Ok(Step::More),
                        _ => {
                            return Err(Fault::Broken(
                                "a chunk is longer than its size says".into(),
                            ))
                        }
                    };
                    buf.advance(end);
                    self.stage = Stage::ChunkSize;
                }
                Stage::Trailers => {
                    let Some(line) = line(buf, MAX_HEAD, "a trailer")? else {
                        return Ok(Step::More);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_HEAD {
                        return Err(Fault::Broken(format!(
                            "its trailers are over {MAX_HEAD} bytes"
                        )));
                    }
                    if line.is_empty() {
                        let body = std::mem::take(&mut self.chunks).freeze();
                        return self.done(body, buf.is_empty());
                    }
                }
                Stage::UntilClose => {
                    if buf.len() > self.max_body {
                        return Err(self.too_large());
                    }
                    return Ok(Step::More);
                }
            }
        }
    }

    /// The answer at end-of-file: only a body framed by the connection's end is whole.
    fn end(&mut self, buf: &mut BytesMut) -> Result<Answer, Fault> {
        if let Step::Done { answer, .. } = self.feed(buf)? {
            return Ok(answer);
        }
        if self.stage != Stage::UntilClose {
            return Err(Fault::Io {
                error: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the container closed the connection in the middle of its answer",
                ),
                received: true,
            });
        }
        let body = take(buf, buf.len());
        match self.done(body, false)? {
            Step::Done { answer, .. } => Ok(answer),
            Step::More => Err(Fault::Broken("it ended before its head".into())),
        }
    }

    /// The answer, its head with `body`.
    fn done(&mut self, body: Bytes, nothing_after: bool) -> Result<Step, Fault> {
        // A body stage is only reached after a head.
        let head = self
            .head
            .take()
            .ok_or_else(|| Fault::Broken("it has a body before its head".into()))?;
        Ok(Step::Done {
            reusable: head.keep_alive && nothing_after && head.framing != Framing::UntilClose,
            answer: Answer {
                status: head.status,
                content_type: head.content_type,
                custom_attributes: head.custom_attributes,
                body,
            },
        })
    }

    fn too_large(&self) -> Fault {
        Fault::Broken(format!("its body is over {} MiB", self.max_body >> 20))
    }
}

/// The first `n` bytes of `buf`: copied when small (the buffer's memory is then kept for
/// the next answer), split off otherwise.
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_BELOW {
        let body = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        body
    } else {
        buf.split_to(n).freeze()
    }
}

/// A head at the front of `buf`, consumed; `None` until it has all arrived.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Fault> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Fault::Broken(format!("its head is over {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Fault::Broken(format!("it has over {MAX_HEADERS} headers")))
        }
        Err(e) => return Err(Fault::Broken(e.to_string())),
    };
    if length > MAX_HEAD {
        return Err(Fault::Broken(format!("its head is over {MAX_HEAD} bytes")));
    }
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| Fault::Broken(format!("its status {code} is not an HTTP status")))?;
    let http11 = parsed.version == Some(1);
    let mut head = Head {
        status,
        content_type: None,
        custom_attributes: None,
        keep_alive: http11,
        framing: Framing::UntilClose,
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = None;
    for header in parsed.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-type") {
            head.content_type = HeaderValue::from_bytes(header.value).ok();
        } else if name.eq_ignore_ascii_case("x-amzn-sagemaker-custom-attributes") {
            head.custom_attributes = HeaderValue::from_bytes(header.value).ok();
        } else if name.eq_ignore_ascii_case("content-length") {
            for value in header.value.split(|&b| b == b',') {
                let n = decimal(value.trim_ascii()).ok_or_else(|| {
                    Fault::Broken(format!(
                        "Content-Length {:?} is not a length",
                        String::from_utf8_lossy(header.value)
                    ))
                })?;
                if content_length.is_some_and(|earlier| earlier != n) {
                    return Err(Fault::Broken("its Content-Lengths disagree".into()));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides: chunked last frames the body, anything else
            // runs to the connection's end.
            let last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    head.keep_alive = true;
                }
            }
        }
    }
    head.framing = match (content_length, chunked) {
        (Some(_), Some(_)) => {
            return Err(Fault::Broken(
                "it has both Content-Length and Transfer-Encoding".into(),
            ))
        }
        _ if status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status.is_informational() =>
        {
            Framing::Empty
        }
        (Some(n), None) => Framing::Length(n),
        (None, Some(true)) => Framing::Chunked,
        (None, Some(false) | None) => Framing::UntilClose,
    };
    buf.advance(length);
    Ok(Some(head))
}

/// A decimal length (digits only, not past what a usize holds): a Content-Length, read
/// the same way in answers and in the port's requests.
pub fn decimal(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 15 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

/// A chunk's size from its size line (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<usize, Fault> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let broken = || {
        Fault::Broken(format!(
            "chunk size {:?} is not hexadecimal",
            String::from_utf8_lossy(line)
        ))
    };
    if digits.is_empty() || digits.len() > 15 {
        return Err(broken());
    }
    digits.iter().try_fold(0usize, |n, &d| {
        let v = char::from(d).to_digit(16).ok_or_else(broken)?;
        Ok(n * 16 + v as usize)
    })
}

/// A line at the front of `buf` (ended by CRLF, or a bare LF), consumed and returned
/// without its end; `None` until it has arrived. A line over `max` bytes is malformed.
fn line(buf: &mut BytesMut, max: usize, what: &str) -> Result<Option<Bytes>, Fault> {
    let Some(end) = buf.iter().take(max + 2).position(|&b| b == b'\n') else {
        if buf.len() > max + 1 {
            return Err(Fault::Broken(format!("{what} line is over {max} bytes")));
        }
        return Ok(None);
    };
    let mut text = buf.split_to(end + 1).freeze();
    text.truncate(end);
    if text.last() == Some(&b'\r') {
        text.truncate(end - 1);
    }
    Ok(Some(text))
}

/// Reads one answer from `bytes` delivered in pieces ending at `splits` (then the
/// connection's end): the answer and whether the connection could be used again (not when
/// bytes follow the answer, in its read or later), or why not. For the tests and the
/// fuzzer.
#[cfg(test)]
pub(crate) fn read_in_pieces(
    bytes: &[u8],
    splits: &[usize],
    max_body: usize,
) -> Result<(Answer, bool), String> {
    let mut reader = AnswerReader::new(max_body);
    let mut buf = BytesMut::new();
    let mut from = 0;
    let mut ends: Vec<usize> = splits.iter().map(|&s| s.min(bytes.len())).collect();
    ends.sort_unstable();
    ends.push(bytes.len());
    for end in ends {
        buf.extend_from_slice(&bytes[from.min(end)..end]);
        from = from.max(end);
        match reader.feed(&mut buf).map_err(|f| f.to_string())? {
            // Bytes still to come after the answer would be found at the next checkout.
            Step::Done { answer, reusable } => {
                return Ok((answer, reusable && from == bytes.len()))
            }
            Step::More => {}
        }
    }
    reader
        .end(&mut buf)
        .map(|answer| (answer, false))
        .map_err(|f| f.to_string())
}

#[cfg(test)]
mod tests;
