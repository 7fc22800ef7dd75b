//! What every layer that answers requests shares: the HTTP body types (response bodies,
//! the request bodies a handler accepts, and their error) and the decoding of a path
//! segment.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};

/// Response bodies.
pub type Body = BoxBody<Bytes, BoxError>;

/// A boxed error, as request bodies report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a request body may be: hyper's `Incoming` from a socket, or any body a test builds.
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}
impl<B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static> RequestBody for B {}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Decodes `%XX` escapes in a path segment; a `%` not followed by two hex digits stays as
/// it is, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes
                .get(i + 1)
                .and_then(|&h| hex(h))
                .zip(bytes.get(i + 2).and_then(|&l| hex(l)));
            if let Some((high, low)) = pair {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod decoding {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("my%2Dendpoint"), "my-endpoint");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%4"), "end%4");
        assert_eq!(percent_decode("%"), "%");
        // Raw UTF-8 after '%' (this panicked once: a slice inside a character).
        assert_eq!(percent_decode("%\u{20ac}"), "%\u{20ac}");
        assert_eq!(percent_decode("%e2%82%ac"), "\u{20ac}");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
