use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Reads `raw` whole, then split in two at every byte (every 1/256th of a long input):
/// each must read the same.
fn read(raw: &[u8]) -> Result<(Answer, bool), String> {
    let whole = read_in_pieces(raw, &[], MAX_BODY);
    for at in (0..raw.len()).step_by(raw.len() / 256 + 1) {
        assert_eq!(
            read_in_pieces(raw, &[at], MAX_BODY),
            whole,
            "split at {at} of {:?}",
            String::from_utf8_lossy(raw)
        );
    }
    whole
}

fn ok(raw: &str) -> (Answer, bool) {
    read(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
}

fn broken(raw: &str) -> String {
    read(raw.as_bytes()).expect_err(raw)
}

#[test]
fn bodies_framed_each_way_are_read_whole() {
    let (answer, reusable) = ok("HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nX-Amzn-SageMaker-Custom-Attributes: a=1\r\nContent-Length: 5\r\n\r\n1,2,3");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type.unwrap(), "text/csv");
    assert_eq!(answer.custom_attributes.unwrap(), "a=1");
    assert_eq!(answer.body, "1,2,3");
    assert!(reusable);

    let (answer, reusable) = ok("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n");
    assert_eq!(answer.body, "wikipedia in\r\n\r\nchunks.");
    assert!(reusable);

    // Bare LF line ends are read too.
    let (answer, _) = ok("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n");
    assert_eq!(answer.body, "abc");

    let (answer, reusable) = ok("HTTP/1.1 200 OK\r\n\r\nuntil the end");
    assert_eq!(answer.body, "until the end");
    assert!(!reusable);

    let (answer, reusable) = ok("HTTP/1.1 204 No Content\r\n\r\n");
    assert!(answer.body.is_empty());
    assert!(reusable);
}

#[test]
fn informational_heads_come_before_the_answer() {
    let (answer, reusable) =
        ok("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.body, "ok");
    assert!(reusable);
    assert!(
        broken("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
            .contains("switched protocols")
    );
}

#[test]
fn whether_the_connection_can_carry_another_call() {
    let reusable = |raw: &str| ok(raw).1;
    assert!(!reusable(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable(
        "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(reusable(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    ));
    // Bytes after the answer: the connection is out of step, not kept.
    assert!(!reusable(
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1"
    ));
    // An error status is an answer like any other.
    let (answer, reusable) =
        ok("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy");
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_ref(), reusable),
        (503, &b"busy"[..], true)
    );
}

#[test]
fn malformed_answers_are_refused_with_the_reason() {
    let cases = [
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "disagree",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab",
            "disagree",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "is not a length",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "is not a length",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "not hexadecimal",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            "not hexadecimal",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n",
            "longer than its size",
        ),
        (
            "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
            "not valid HTTP/1.1",
        ),
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "not valid HTTP/1.1"),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "in the middle of its answer",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "in the middle of its answer",
        ),
    ];
    for (raw, why) in cases {
        let error = broken(raw);
        assert!(error.contains(why), "{raw:?}: {error}");
    }
    let long_head = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n",
        "a".repeat(MAX_HEAD)
    );
    assert!(broken(&long_head).contains("head is over"));
    let many = format!(
        "HTTP/1.1 200 OK\r\n{}\r\n",
        "A: b\r\n".repeat(MAX_HEADERS + 1)
    );
    assert!(broken(&many).contains("over 100 headers"));
    let long_chunk_line = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
        "x".repeat(MAX_CHUNK_LINE)
    );
    assert!(broken(&long_chunk_line).contains("chunk size line is over"));
}

#[test]
fn bodies_over_the_limit_are_refused_before_they_are_read() {
    let small = 1 << 20;
    let too_long = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", small + 1);
    assert!(read_in_pieces(too_long.as_bytes(), &[], small)
        .unwrap_err()
        .contains("over 1 MiB"));
    let chunk = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        small + 1
    );
    assert!(read_in_pieces(chunk.as_bytes(), &[], small)
        .unwrap_err()
        .contains("over 1 MiB"));
    let mut until_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    until_close.resize(until_close.len() + small + 1, b'x');
    assert!(read_in_pieces(&until_close, &[40], small)
        .unwrap_err()
        .contains("over 1 MiB"));
}

/// A container stand-in: accepts connections and hands each to `answer`, counting them.
async fn container<F, Fut>(answer: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, n));
        }
    });
    (addr, count)
}

/// Reads one request (head and Content-Length body) from `stream`; `None` at its end.
async fn request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.parse().unwrap());
            while buf.len() < end + 4 + length {
                let mut more = [0u8; 65536];
                let n = stream.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some((head, body));
        }
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

/// Answers every request on the connection with its own body, echoing the head's
/// content-type line in a header of the answer.
async fn echo(mut stream: TcpStream, _n: usize) {
    let mut buf = Vec::new();
    while let Some((head, body)) = request(&mut stream, &mut buf).await {
        let kind = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or("none")
            .to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
    }
}

fn to(addr: SocketAddr) -> Destination {
    Destination::new(addr, &PathAndQuery::from_static("/invocations"))
}

/// A call with no headers and no body.
async fn call(addr: SocketAddr) -> Result<Answer, Failed> {
    post(&to(addr), std::iter::empty(), &Bytes::new()).await
}

#[tokio::test]
async fn a_connection_carries_call_after_call_with_the_headers_given() {
    let (addr, connections) = container(echo).await;
    let content_type = HeaderValue::from_static("text/csv");
    let name = hyper::header::CONTENT_TYPE;
    for i in 0..3 {
        let body = Bytes::from(format!("call {i}"));
        let answer = post(&to(addr), [(&name, &content_type)].into_iter(), &body)
            .await
            .unwrap();
        assert_eq!(answer.body, body);
        assert_eq!(answer.content_type.unwrap(), "text/csv");
    }
    // A body too large to go out with the head, and an answer too large to be copied.
    let big = Bytes::from(vec![7u8; 3 << 20]);
    let answer = post(&to(addr), std::iter::empty(), &big).await.unwrap();
    assert_eq!(answer.body, big);
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_container_closes_is_not_used_again() {
    // Each connection answers once; the first says so, the second closes without a word.
    let (addr, connections) = container(|mut stream, n| async move {
        let mut buf = Vec::new();
        request(&mut stream, &mut buf).await.unwrap();
        let close = if n == 0 { "Connection: close\r\n" } else { "" };
        let answer = format!("HTTP/1.1 200 OK\r\n{close}Content-Length: 2\r\n\r\nok");
        stream.write_all(answer.as_bytes()).await.unwrap();
    })
    .await;
    for _ in 0..3 {
        assert_eq!(call(addr).await.unwrap().body, "ok");
        // Let the close arrive before the next call.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_call_on_a_connection_closing_under_it_goes_once_more_on_a_new_one() {
    // The first connection answers one call, then reads the next request and closes
    // without answering, as a container closing an idle connection does.
    let (addr, connections) = container(|mut stream, n| async move {
        let mut buf = Vec::new();
        let mut answered = 0;
        while request(&mut stream, &mut buf).await.is_some() {
            if n == 0 && answered == 1 {
                return;
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            answered += 1;
        }
    })
    .await;
    for _ in 0..2 {
        assert_eq!(call(addr).await.unwrap().body, "ok");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_answer_and_no_connection_are_told_apart() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failed = call(refused).await.unwrap_err();
    assert!(matches!(failed, Failed::Connect(_)), "{failed:?}");

    let (addr, _) = container(|mut stream, _| async move {
        let mut buf = Vec::new();
        request(&mut stream, &mut buf).await;
    })
    .await;
    let failed = call(addr).await.unwrap_err();
    let Failed::Lost(why) = failed else {
        panic!("{failed:?}")
    };
    assert!(
        why.contains("closed the connection without answering"),
        "{why}"
    );

    let (addr, _) = container(|mut stream, _| async move {
        let mut buf = Vec::new();
        request(&mut stream, &mut buf).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 3\r\n\r\nabc")
            .await
            .unwrap();
    })
    .await;
    let failed = call(addr).await.unwrap_err();
    let Failed::Lost(why) = failed else {
        panic!("{failed:?}")
    };
    assert!(why.contains("Content-Lengths disagree"), "{why}");
}

#[test]
fn lengths_are_written_in_decimal() {
    for n in [0, 7, 10, 1234, usize::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
    }
}
