//! InvokeEndpointWithResponseStream's body: the container's answer, chunk by chunk as it
//! produces them, in AWS event-stream framing (`application/vnd.amazon.eventstream`).
//!
//! Each chunk becomes a `PayloadPart` event whose frame payload is the chunk itself; a
//! container connection that breaks mid-answer ends the stream with a `ModelStreamError`
//! exception (`ErrorCode` `StreamBroken`), and one that stalls past the invocation time
//! limit with `ModelInvocationTimeExceeded` — clients would otherwise see a stream that
//! just stops (botocore ignores a cut frame).

use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::Body;

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
                        Ok::<_, hyper::Error>(Frame::data(payload_part(data))),
                        Some(body),
                    ));
                }
            }
        }
    });
    StreamBody::new(events).boxed()
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
