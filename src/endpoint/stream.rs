//! InvokeEndpointWithResponseStream's body: the container's answer, chunk by chunk as it
//! produces them, in AWS event-stream framing (`application/vnd.amazon.eventstream`).
//!
//! Each chunk becomes a `PayloadPart` event whose frame payload is the chunk itself; a
//! container connection that breaks mid-answer ends the stream with a `ModelStreamError`
//! exception (`ErrorCode` `StreamBroken`), and one that stalls past the invocation time
//! limit with `ModelInvocationTimeExceeded` — clients would otherwise see a stream that
//! just stops (botocore ignores a cut frame).
//!
//! Also here: [`Router::invoke_stream`], which picks the container and starts the stream.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};

use super::client;
use super::error::ApiError;
use super::http1::Answer;
use super::{Body, BoxError, RequestBody, Router, INVOCATION_TIMEOUT};

fn string(value: &'static str) -> HeaderValue {
    HeaderValue::String(value.into())
}

fn encode(message: &Message) -> Bytes {
    let mut buf = Vec::with_capacity(message.payload().len() + 128);
    write_message_to(message, &mut buf).expect("event-stream headers within limits");
    Bytes::from(buf)
}

/// One `PayloadPart` event carrying `chunk`.
pub fn payload_part(chunk: Bytes) -> Bytes {
    encode(
        &Message::new(chunk)
            .add_header(Header::new(":event-type", string("PayloadPart")))
            .add_header(Header::new(
                ":content-type",
                string("application/octet-stream"),
            ))
            .add_header(Header::new(":message-type", string("event"))),
    )
}

/// A `ModelStreamError` exception with SageMaker's members.
pub fn model_stream_error(error_code: &'static str, message: &str) -> Bytes {
    let body = serde_json::json!({ "Message": message, "ErrorCode": error_code });
    encode(
        &Message::new(Bytes::from(serde_json::to_vec(&body).expect("json")))
            .add_header(Header::new(":exception-type", string("ModelStreamError")))
            .add_header(Header::new(":content-type", string("application/json")))
            .add_header(Header::new(":message-type", string("exception"))),
    )
}

/// Re-frames a container's streamed answer as event-stream messages.
pub fn reframe(body: Incoming, chunk_timeout: Duration) -> Body {
    let events = stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        loop {
            let next = tokio::time::timeout(chunk_timeout, body.frame()).await;
            let frame = match next {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    let error = model_stream_error(
                        "StreamBroken",
                        &format!("The container's response stream broke: {e}"),
                    );
                    return Some((Ok(Frame::data(error)), None));
                }
                Err(_) => {
                    let error = model_stream_error(
                        "ModelInvocationTimeExceeded",
                        &format!(
                            "The container sent nothing for {} s.",
                            chunk_timeout.as_secs()
                        ),
                    );
                    return Some((Ok(Frame::data(error)), None));
                }
            };
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return Some((
                        Ok::<_, BoxError>(Frame::data(payload_part(data))),
                        Some(body),
                    ));
                }
            }
        }
    });
    StreamBody::new(events).boxed()
}

impl Router {
    /// Handles InvokeEndpointWithResponseStream for `name`: the container's answer is
    /// passed on chunk by chunk, in event-stream framing.
    pub async fn invoke_stream<B: RequestBody>(
        &self,
        name: &str,
        req: Request<B>,
        request_id: &str,
    ) -> Response<Body> {
        let t0 = Instant::now();
        let (parts, body) = req.into_parts();
        let target = match self.resolve(
            "InvokeEndpointWithResponseStream",
            name,
            &parts.headers,
            request_id,
        ) {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        };
        if target.chain().len() > 1 {
            return ApiError::validation(format!(
                "Endpoint {name} of account {} is an inference pipeline; response streaming needs a single container.",
                self.account
            ))
            .into_response();
        }
        let payload = match Self::payload(body).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let mut headers = parts.headers.clone();
        if let Some(accept) = parts.headers.get("x-amzn-sagemaker-accept") {
            headers.insert(hyper::header::ACCEPT, accept.clone());
        }
        let backend = &target.chain()[0];
        target.first().outstanding.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let forwarded =
            client::post_streaming(backend.addr, &headers, payload, INVOCATION_TIMEOUT).await;
        let model = started.elapsed();
        target.first().outstanding.fetch_sub(1, Ordering::Relaxed);
        let status = forwarded.as_ref().map_or(0, |r| r.status().as_u16());
        target.variant().series.record(status, model, t0.elapsed());
        let mut response = match forwarded {
            Err(failed) => self
                .model_error(name, backend, 0, failed.detail())
                .into_response(),
            Ok(answer) if !answer.status().is_success() => {
                let status = answer.status();
                let body = answer.into_body().collect().await.map(|b| b.to_bytes());
                let answer = Answer {
                    status,
                    content_type: None,
                    custom_attributes: None,
                    body: body.unwrap_or_default(),
                };
                self.answer(name, backend, answer)
            }
            Ok(answer) => {
                let (container, body) = answer.into_parts();
                let mut out = Response::new(reframe(body, INVOCATION_TIMEOUT));
                let h = out.headers_mut();
                h.insert(
                    CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/vnd.amazon.eventstream"),
                );
                if let Some(ct) = container.headers.get(CONTENT_TYPE) {
                    h.insert("x-amzn-sagemaker-content-type", ct.clone());
                }
                if let Some(attrs) = container.headers.get("x-amzn-sagemaker-custom-attributes") {
                    h.insert("x-amzn-sagemaker-custom-attributes", attrs.clone());
                }
                out
            }
        };
        target.label(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_part_matches_the_wire_format_botocore_reads() {
        // 107 bytes, decoded by botocore 1.44.5 to {'PayloadPart': {'Bytes': b'hi'}}.
        let expected = "0000006b00000059997770650b3a6576656e742d7479706507000b5061796c6f6164506172740d3a636f6e74656e742d747970650700186170706c69636174696f6e2f6f637465742d73747265616d0d3a6d6573736167652d747970650700056576656e746869f0e10a16";
        assert_eq!(
            crate::artifact::hex(&payload_part(Bytes::from_static(b"hi"))),
            expected
        );
    }

    #[test]
    fn an_exception_frame_round_trips() {
        let frame = model_stream_error("StreamBroken", "gone");
        let message = aws_smithy_eventstream::frame::read_message_from(frame).unwrap();
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok().map(|s| s.as_str().to_string()))
        };
        assert_eq!(header(":message-type").as_deref(), Some("exception"));
        assert_eq!(
            header(":exception-type").as_deref(),
            Some("ModelStreamError")
        );
        let body: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
        assert_eq!(body["ErrorCode"], "StreamBroken");
    }
}
