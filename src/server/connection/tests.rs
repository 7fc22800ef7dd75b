use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::endpoint::{Backend, Router};

#[test]
fn only_invocations_with_a_plain_body_take_the_loop() {
    let taken = |raw: &str| takes(raw.as_bytes()).is_some();
    assert!(taken(
        "POST /invocations HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"
    ));
    assert!(taken(
        "POST /endpoints/my%20ep/invocations HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    let raw = b"POST /endpoints/ep/invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 5\r\nConnection: close\r\n\r\n1,2,3";
    let (request, length, body, keep_alive) = takes(raw).unwrap();
    assert_eq!(request.uri().path(), "/endpoints/ep/invocations");
    assert_eq!(request.headers()["content-type"], "text/csv");
    assert_eq!((length, body, keep_alive), (raw.len() - 5, 5, false));
    for other in [
        "GET /ping HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\n\r\n",
        "POST /endpoints/ep/async-invocations HTTP/1.1\r\n\r\n",
        "POST /endpoints/a/b/invocations HTTP/1.1\r\n\r\n",
        "POST /endpoints//invocations HTTP/1.1\r\n\r\n",
        "POST /invocations?x=1 HTTP/1.1\r\n\r\n",
        "POST /invocations HTTP/1.0\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nContent-Length: 6291457\r\n\r\n",
        "POST  /invocations HTTP/1.1\r\n\r\n",
    ] {
        assert!(!taken(other), "{other:?}");
        assert!(
            matches!(parse(other.as_bytes()), Parsed::Other),
            "{other:?}"
        );
    }
    assert!(matches!(
        parse(b"POST /invocations HTTP/1.1\r\nHost"),
        Parsed::Partial
    ));
    let huge = format!("POST /invocations HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
    assert!(matches!(parse(huge.as_bytes()), Parsed::Other));
}

/// A port served by the loop, for an app whose endpoint `ep` is a wiremock container
/// answering `[6]` to every invocation.
async fn port(header_timeout: Duration) -> (std::net::SocketAddr, MockServer) {
    let container = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/invocations"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("[6]", "application/json"))
        .mount(&container)
        .await;
    let router = Arc::new(Router::new("123456789012", "us-east-1"));
    router.publish(crate::server::tests::single(
        "ep",
        vec![Backend::new("c0", *container.address())],
    ));
    let app = App::new(router, None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, app.clone(), header_timeout));
        }
    });
    (addr, container)
}

/// One answer: its status, its headers (names in lower case) and its body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer (1xx heads skipped) from `stream`, `buf` holding what came before.
async fn answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Answer> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(length)) = parsed.parse(buf) {
            let status = parsed.code.unwrap();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_ascii_lowercase(), value)
                })
                .collect();
            let body_length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            if status < 200 {
                buf.drain(..length);
                continue;
            }
            while buf.len() < length + body_length {
                let mut more = [0u8; 4096];
                let n = stream.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[length..length + body_length].to_vec();
            buf.drain(..length + body_length);
            return Some(Answer {
                status,
                headers,
                body,
            });
        }
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

/// Whether the server closes `stream` (reads end-of-file) within `limit`.
async fn closes(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await,
        Ok(Ok(_))
    )
}

const INVOKE: &[u8] = b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ncontent-type: text/csv\r\ncontent-length: 5\r\n\r\n1,2,3";

#[tokio::test]
async fn invocations_are_answered_call_after_call_pipelined_too() {
    let (addr, _container) = port(Duration::from_secs(30)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        stream.write_all(INVOKE).await.unwrap();
        let answer = answer(&mut stream, &mut buf).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"[6]");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.header("content-length"), Some("3"));
        assert!(answer.header("x-amzn-requestid").is_some());
        assert_eq!(
            answer.header("x-amzn-invoked-production-variant"),
            Some("AllTraffic")
        );
        let date = answer.header("date").unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }
    // Three at once, then a half-close: three answers in order, then the end.
    let three = [INVOKE, INVOKE, INVOKE].concat();
    stream.write_all(&three).await.unwrap();
    stream.shutdown().await.unwrap();
    for _ in 0..3 {
        assert_eq!(answer(&mut stream, &mut buf).await.unwrap().status, 200);
    }
    assert!(closes(&mut stream, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn what_the_loop_does_not_take_hyper_answers_on_the_same_connection() {
    let (addr, _container) = port(Duration::from_secs(30)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    stream.write_all(INVOKE).await.unwrap();
    assert_eq!(answer(&mut stream, &mut buf).await.unwrap().status, 200);
    // A chunked body, an Expect: 100-continue and a GET: hyper's from here on.
    stream
        .write_all(b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\n1,2\r\n0\r\n\r\n")
        .await
        .unwrap();
    let chunked = answer(&mut stream, &mut buf).await.unwrap();
    assert_eq!(
        (chunked.status, chunked.body.as_slice()),
        (200, &b"[6]"[..])
    );
    stream
        .write_all(b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n1")
        .await
        .unwrap();
    assert_eq!(answer(&mut stream, &mut buf).await.unwrap().status, 200);
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let ping = answer(&mut stream, &mut buf).await.unwrap();
    assert_eq!((ping.status, ping.body.as_slice()), (200, &b"ok\n"[..]));
    // A body over InvokeEndpoint's 6 MB is refused in the API's shape (a ValidationError,
    // 400, as SageMaker answers it).
    let mut big = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        MAX_PAYLOAD + 1
    );
    big.write_all(head.as_bytes()).await.unwrap();
    let _ = big.write_all(&vec![b'x'; MAX_PAYLOAD + 1]).await;
    let refused = answer(&mut big, &mut Vec::new()).await.unwrap();
    let text = String::from_utf8_lossy(&refused.body);
    assert_eq!(refused.status, 400, "{text}");
    assert!(text.contains("less than or equal to 6291456"), "{text}");
}

#[tokio::test]
async fn connection_close_and_the_header_timeout_end_the_connection() {
    let (addr, _container) = port(Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let close = b"POST /invocations HTTP/1.1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    stream.write_all(close).await.unwrap();
    let answer = answer(&mut stream, &mut Vec::new()).await.unwrap();
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(closes(&mut stream, Duration::from_secs(5)).await);

    // Nothing sent, or a head that never ends: closed once the header timeout passes.
    for sent in [&b""[..], b"POST /invocations HTTP/1.1\r\nhost: x\r\n"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let t = Instant::now();
        assert!(closes(&mut stream, Duration::from_secs(5)).await);
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
    }
}
