//! Just enough HTTP/1.1 server for the SageMaker serving contract: keep-alive,
//! `Connection: close`, Content-Length and chunked request bodies, `Expect: 100-continue`.
//! One `Request` is reused for every request of a connection so the steady state of a
//! keep-alive connection allocates nothing.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::ops::Range;

/// Request line plus headers.
pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 128;
/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 1 << 30;

pub type Reader = BufReader<TcpStream>;
pub type Writer = BufWriter<TcpStream>;

pub struct Request {
    head: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    line: Vec<u8>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
    http10: bool,
}

/// What the response says about the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// HTTP/1.1 keep-alive: nothing to say.
    KeepAlive,
    /// `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
    KeepAlive10,
    /// `Connection: close`: the server closes after this response.
    Close,
}

pub enum ReadError {
    /// The peer closed the connection (or it failed) between requests or mid-request.
    Gone,
    /// A malformed request: answer with this status and message, then close.
    Bad(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Gone
    }
}

fn trim(s: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && matches!(s[r.start], b' ' | b'\t') {
        r.start += 1;
    }
    while r.end > r.start && matches!(s[r.end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        r.end -= 1;
    }
    r
}

/// Whether the comma-separated header value `list` contains `token` (case-insensitive).
pub fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&c| c == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

impl Request {
    pub fn new() -> Self {
        Request {
            head: Vec::with_capacity(4096),
            method: 0..0,
            target: 0..0,
            headers: Vec::with_capacity(32),
            line: Vec::with_capacity(64),
            body: Vec::with_capacity(4096),
            keep_alive: true,
            http10: false,
        }
    }

    pub fn conn(&self) -> Conn {
        match (self.keep_alive, self.http10) {
            (false, _) => Conn::Close,
            (true, false) => Conn::KeepAlive,
            (true, true) => Conn::KeepAlive10,
        }
    }

    pub fn method(&self) -> &[u8] {
        &self.head[self.method.clone()]
    }

    pub fn target(&self) -> &[u8] {
        &self.head[self.target.clone()]
    }

    /// The request target without its query string.
    pub fn path(&self) -> &[u8] {
        let t = self.target();
        match t.iter().position(|&c| c == b'?') {
            Some(i) => &t[..i],
            None => t,
        }
    }

    /// The query string (after `?`), or empty.
    pub fn query(&self) -> &[u8] {
        let t = self.target();
        match t.iter().position(|&c| c == b'?') {
            Some(i) => &t[i + 1..],
            None => b"",
        }
    }

    /// The first header of that name (case-insensitive), value trimmed.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.headers
            .iter()
            .find(|(n, _)| self.head[n.clone()].eq_ignore_ascii_case(name))
            .map(|(_, v)| &self.head[v.clone()])
    }

    /// Every header's name, in order.
    pub fn header_names(&self) -> impl Iterator<Item = &[u8]> {
        self.headers.iter().map(|(n, _)| &self.head[n.clone()])
    }

    /// Reads the next request (head and whole body) from `r`. Sends `100 Continue` on `w`
    /// when the client asks for it.
    pub fn read(&mut self, r: &mut Reader, w: &mut Writer) -> Result<(), ReadError> {
        self.head.clear();
        self.headers.clear();
        self.body.clear();
        self.keep_alive = false;

        // Request line (blank lines before it are tolerated, RFC 9112 §2.2).
        let mut http10 = false;
        loop {
            let start = self.head.len();
            let line = self.read_head_line(r)?;
            if line.is_empty() {
                self.head.truncate(start);
                continue;
            }
            let s = &self.head;
            let mut parts = line.clone().filter(|&i| s[i] == b' ');
            let (Some(sp1), Some(sp2)) = (parts.next(), parts.next()) else {
                return Err(ReadError::Bad(400, "bad request line"));
            };
            if parts.next().is_some() || sp2 == sp1 + 1 || sp1 == line.start {
                return Err(ReadError::Bad(400, "bad request line"));
            }
            let version = &s[sp2 + 1..line.end];
            match version {
                b"HTTP/1.1" => {}
                b"HTTP/1.0" => http10 = true,
                _ if version.starts_with(b"HTTP/") => {
                    return Err(ReadError::Bad(505, "HTTP version not supported"))
                }
                _ => return Err(ReadError::Bad(400, "bad request line")),
            }
            self.method = line.start..sp1;
            self.target = sp1 + 1..sp2;
            break;
        }

        // Header fields.
        loop {
            let line = self.read_head_line(r)?;
            if line.is_empty() {
                break;
            }
            if self.headers.len() >= MAX_HEADERS {
                return Err(ReadError::Bad(431, "too many header fields"));
            }
            let s = &self.head;
            let Some(colon) = s[line.clone()].iter().position(|&c| c == b':') else {
                return Err(ReadError::Bad(400, "bad header line"));
            };
            let colon = line.start + colon;
            let name = line.start..colon;
            if name.is_empty()
                || matches!(s[colon - 1], b' ' | b'\t')
                || matches!(s[line.start], b' ' | b'\t')
            {
                return Err(ReadError::Bad(400, "bad header line"));
            }
            let value = trim(s, colon + 1..line.end);
            self.headers.push((name, value));
        }

        self.http10 = http10;
        self.keep_alive = match self.header("connection") {
            Some(c) if http10 => has_token(c, b"keep-alive"),
            Some(c) => !has_token(c, b"close"),
            None => !http10,
        };

        // Body framing (RFC 9112 §6.3): Transfer-Encoding wins over Content-Length.
        enum Framing {
            None,
            Length(usize),
            Chunked,
        }
        let framing = if let Some(te) = self.header("transfer-encoding") {
            let last = te.rsplit(|&c| c == b',').next().unwrap_or(b"").trim_ascii();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(ReadError::Bad(501, "unsupported transfer-encoding"));
            }
            Framing::Chunked
        } else if let Some(cl) = self.header("content-length") {
            let n = parse_dec(cl).ok_or(ReadError::Bad(400, "bad content-length"))?;
            if n > MAX_BODY {
                return Err(ReadError::Bad(413, "request body too large"));
            }
            if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            }
        } else {
            Framing::None
        };

        if !matches!(framing, Framing::None)
            && !http10
            && self
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case(b"100-continue"))
        {
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            w.flush()?;
        }

        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                self.body.resize(n, 0);
                r.read_exact(&mut self.body)?;
            }
            Framing::Chunked => self.read_chunked(r)?,
        }
        Ok(())
    }

    /// Appends one line to `head` and returns its range without the line ending.
    fn read_head_line(&mut self, r: &mut Reader) -> Result<Range<usize>, ReadError> {
        let start = self.head.len();
        let room = (MAX_HEAD - start.min(MAX_HEAD)) as u64;
        let n = r.by_ref().take(room).read_until(b'\n', &mut self.head)?;
        if n == 0 {
            return Err(if room == 0 {
                ReadError::Bad(431, "request head too large")
            } else {
                ReadError::Gone
            });
        }
        if self.head.last() != Some(&b'\n') {
            return Err(if self.head.len() >= MAX_HEAD {
                ReadError::Bad(431, "request head too large")
            } else {
                ReadError::Gone
            });
        }
        let mut end = self.head.len() - 1;
        if end > start && self.head[end - 1] == b'\r' {
            end -= 1;
        }
        Ok(start..end)
    }

    fn read_small_line(&mut self, r: &mut Reader) -> Result<(), ReadError> {
        self.line.clear();
        let n = r.by_ref().take(4096).read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        if self.line.last() != Some(&b'\n') {
            return Err(ReadError::Bad(400, "bad chunked body"));
        }
        self.line.pop();
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(())
    }

    fn read_chunked(&mut self, r: &mut Reader) -> Result<(), ReadError> {
        loop {
            self.read_small_line(r)?;
            let size_text = match self.line.iter().position(|&c| c == b';') {
                Some(i) => &self.line[..i],
                None => &self.line[..],
            };
            let size =
                parse_hex(size_text.trim_ascii()).ok_or(ReadError::Bad(400, "bad chunk size"))?;
            if size == 0 {
                // Trailer fields, up to the empty line.
                loop {
                    self.read_small_line(r)?;
                    if self.line.is_empty() {
                        return Ok(());
                    }
                }
            }
            let old = self.body.len();
            if size > MAX_BODY - old {
                return Err(ReadError::Bad(413, "request body too large"));
            }
            self.body.resize(old + size, 0);
            r.read_exact(&mut self.body[old..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(ReadError::Bad(400, "bad chunked body"));
            }
        }
    }
}

pub fn parse_dec(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: usize = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    Some(n)
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    let mut n: usize = 0;
    for &c in s {
        let d = (c as char).to_digit(16)? as usize;
        n = n * 16 + d;
    }
    Some(n)
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        424 => "Failed Dependency",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

/// Writes the status line, and the Connection header `conn` calls for.
pub fn start(w: &mut Writer, status: u16, conn: Conn) -> io::Result<()> {
    write!(w, "HTTP/1.1 {} {}\r\n", status, reason(status))?;
    match conn {
        Conn::KeepAlive => Ok(()),
        Conn::KeepAlive10 => w.write_all(b"Connection: keep-alive\r\n"),
        Conn::Close => w.write_all(b"Connection: close\r\n"),
    }
}

pub fn header(w: &mut Writer, name: &[u8], value: &[u8]) -> io::Result<()> {
    w.write_all(name)?;
    w.write_all(b": ")?;
    w.write_all(value)?;
    w.write_all(b"\r\n")
}

/// Writes Content-Type, Content-Length, the end of the head and (unless `head_only`,
/// for HEAD requests) the body.
pub fn finish(w: &mut Writer, content_type: &[u8], body: &[u8], head_only: bool) -> io::Result<()> {
    if !content_type.is_empty() {
        header(w, b"Content-Type", content_type)?;
    }
    write!(w, "Content-Length: {}\r\n\r\n", body.len())?;
    if !head_only {
        w.write_all(body)?;
    }
    Ok(())
}

/// A whole response in one call.
pub fn simple(
    w: &mut Writer,
    status: u16,
    conn: Conn,
    content_type: &[u8],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    start(w, status, conn)?;
    finish(w, content_type, body, head_only)
}

/// Writes one chunk of a chunked response body (nothing for an empty `data`: an empty
/// chunk would end the body).
pub fn chunk(w: &mut Writer, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    write!(w, "{:x}\r\n", data.len())?;
    w.write_all(data)?;
    w.write_all(b"\r\n")
}

/// Percent-decodes `s` (and `+` → space when `plus` is set, for query strings).
pub fn percent_decode(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => {
                let hi = (s[i + 1] as char).to_digit(16);
                let lo = (s[i + 2] as char).to_digit(16);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}
