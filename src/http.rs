//! The HTTP body types every layer that answers requests shares: response bodies, the
//! request bodies a handler accepts, and their error.

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
