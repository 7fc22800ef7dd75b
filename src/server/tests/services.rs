//! S3, STS, CloudWatch Logs and services sagedock does not serve, on the one port: each
//! request goes where its signature says, and answers in that service's shape.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::{send, ACCOUNT, REGION};
use crate::credentials::Credentials;
use crate::endpoint::Router;
use crate::logs::{Event, LogRecord};
use crate::server::{App, Services, S3};
use crate::storage::api::S3Api;

fn scope(service: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=sagedock/20261130/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000")
}

fn app_with(services: Services) -> Arc<App> {
    App::with_services(Arc::new(Router::new(ACCOUNT, REGION)), None, services)
}

fn text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test]
async fn a_request_signed_for_s3_is_s3s_even_on_sagedocks_own_paths() {
    let dir = tempfile::tempdir().unwrap();
    let api = S3Api::new(dir.path(), Credentials::with(None)).unwrap();
    let app = app_with(Services {
        s3: S3::Served(api),
        logs: None,
        dashboard: None,
    });
    // Signed for S3 (with a signature that does not match): S3 checks it and refuses, in
    // S3's XML shape; the health check never sees it.
    let req = Request::get("/ping")
        .header("host", "127.0.0.1:9474")
        .header("x-amz-date", "20261130T000000Z")
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header("authorization", scope("s3"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", text(&reply.body));
    assert!(
        text(&reply.body).contains("<Code>"),
        "{}",
        text(&reply.body)
    );
    // Unsigned, /ping is sagedock's.
    let reply = send(
        &app,
        Request::get("/ping").body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(
        (reply.status, text(&reply.body).as_str()),
        (StatusCode::OK, "ok\n")
    );
}

#[tokio::test]
async fn s3_requests_a_run_cannot_serve_say_where_s3_is() {
    let app = app_with(Services {
        s3: S3::Elsewhere("http://127.0.0.1:5000".into()),
        logs: None,
        dashboard: None,
    });
    let req = Request::get("/bucket/key")
        .header("authorization", scope("s3"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
    assert!(text(&reply.body).contains("AWS_ENDPOINT_URL_S3=http://127.0.0.1:5000"));
}

#[tokio::test]
async fn sts_says_who_the_caller_is_in_the_query_protocol() {
    let app = app_with(Services::default());
    let req = Request::post("/")
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("authorization", scope("sts"))
        .body(Full::new(Bytes::from_static(
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = text(&reply.body);
    assert!(
        body.contains(&format!("<Account>{ACCOUNT}</Account>")),
        "{body}"
    );
    assert!(body.contains("<UserId>sagedock</UserId>"), "{body}");
    let req = Request::post("/")
        .header("authorization", scope("sts"))
        .body(Full::new(Bytes::from_static(
            b"Action=AssumeRole&RoleArn=x",
        )))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(text(&reply.body).contains("<Code>InvalidAction</Code>"));
}

#[tokio::test]
async fn logs_answer_signed_or_not_in_the_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let record = Arc::new(LogRecord::open(dir.path()).unwrap());
    record
        .append(
            "/aws/sagemaker/Endpoints/ep",
            "AllTraffic/c0",
            &[Event {
                timestamp: 5,
                message: "ready".into(),
            }],
        )
        .unwrap();
    let app = app_with(Services {
        s3: S3::None,
        logs: Some(record),
        dashboard: None,
    });
    for signed in [true, false] {
        let mut req = Request::post("/")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "Logs_20140328.GetLogEvents");
        if signed {
            req = req.header("authorization", scope("logs"));
        }
        let body = json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "logStreamName": "AllTraffic/c0"});
        let reply = send(
            &app,
            req.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["events"][0]["message"], "ready");
    }
    let req = Request::post("/")
        .header("x-amz-target", "Logs_20140328.GetLogEvents")
        .header("authorization", scope("logs"))
        .body(Full::new(Bytes::from(
            json!({"logGroupName": "/nope", "logStreamName": "s"}).to_string(),
        )))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "ResourceNotFoundException");
    assert_eq!(reply.message(), "The specified log group does not exist.");
}

#[tokio::test]
async fn other_services_are_named_in_their_protocols_error_shape() {
    let app = app_with(Services::default());
    let req = Request::post("/")
        .header("x-amz-target", "DynamoDB_20120810.ListTables")
        .header("content-type", "application/x-amz-json-1.0")
        .header("authorization", scope("dynamodb"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "UnknownOperationException");
    assert!(reply.message().contains("not the dynamodb service"));
    let req = Request::post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", scope("iam"))
        .body(Full::new(Bytes::from_static(b"Action=GetRole&RoleName=r")))
        .unwrap();
    let reply = send(&app, req).await;
    assert!(text(&reply.body).contains("<Code>InvalidAction</Code>"));
    assert!(text(&reply.body).contains("not the iam service"));
}
