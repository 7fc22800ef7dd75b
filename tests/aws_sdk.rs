//! `sagedock up` driven by the AWS SDK for Rust (`aws-sdk-sagemaker`,
//! `aws-sdk-sagemakerruntime`): the hosting lifecycle, error shapes as the SDK parses them
//! (unmodelled `ValidationException` codes, the modelled runtime `ValidationError` and
//! `ModelError`), the SDK's paginator, and a multi-model endpoint (`TargetModel`). Behind the `aws-sdk-tests` feature because the
//! SDK crates are slow to compile; see tests/AWS_SDK.md.

use std::error::Error;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use aws_sdk_sagemaker::config::http::HttpResponse;
use aws_sdk_sagemaker::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sagemaker::error::{DisplayErrorContext, SdkError};
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::{
    ContainerDefinition, ContainerMode, EndpointStatus, ProductionVariant,
    ProductionVariantInstanceType,
};
// For `.meta()` on the runtime's modelled error structs (the operation error enums have an
// inherent `meta()`).
use aws_sdk_sagemakerruntime::error::ProvideErrorMetadata as _;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;

use crate::util::{self, Sandbox};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/R";
const ECHO: &str = "sagedock/echo:latest";
/// Packed from fixtures/models/sklearn into the sandbox's S3 root by [`Up::start`].
const MODEL_DATA: &str = "s3://bucket/model.tar.gz";

/// A `sagedock up` on a fresh sandbox (data directory, S3 root, artifact cache) and SDK
/// clients pointed at it. Dropping it stops `up` with SIGTERM, which removes its
/// containers, then removes the sandbox.
struct Up {
    up: util::up::Up,
    sm: aws_sdk_sagemaker::Client,
    rt: aws_sdk_sagemakerruntime::Client,
    // Declared last: dropped after `up` has stopped.
    sandbox: Sandbox,
}

impl Up {
    /// Starts `sagedock up --port 0`, or returns `None` (the test is skipped) when no Docker
    /// engine answers.
    async fn start() -> Option<Up> {
        // Blocking work (docker info, building the test images, `sagedock pack`, starting
        // up): tell the runtime so it moves other tasks off this worker.
        let (sandbox, up) = tokio::task::block_in_place(|| {
            let sb = util::up::setup()?;
            let up = util::up::Up::start(&sb).unwrap_or_else(|e| panic!("sagedock up: {e}"));
            Some((sb, up))
        })?;
        let url = up.url.clone();

        // What a user of sagedock writes: the real clients, only the endpoint URL changed.
        // sagedock does not check signatures; any static credentials do.
        let credentials =
            Credentials::new("AKIDSAGEDOCK", "sagedock", None, None, "sagedock-tests");
        let sm = aws_sdk_sagemaker::Client::from_conf(
            aws_sdk_sagemaker::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .endpoint_url(url.as_str())
                .region(Region::new(REGION))
                .credentials_provider(credentials.clone())
                .build(),
        );
        let rt = aws_sdk_sagemakerruntime::Client::from_conf(
            aws_sdk_sagemakerruntime::Config::builder()
                .behavior_version(aws_sdk_sagemakerruntime::config::BehaviorVersion::latest())
                .endpoint_url(url.as_str())
                .region(aws_sdk_sagemakerruntime::config::Region::new(REGION))
                .credentials_provider(credentials)
                .build(),
        );
        Some(Up {
            up,
            sm,
            rt,
            sandbox,
        })
    }

    /// CreateModel on the echo image with the packed model data.
    async fn create_model(&self, name: &str) {
        self.sm
            .create_model()
            .model_name(name)
            .execution_role_arn(ROLE)
            .primary_container(
                ContainerDefinition::builder()
                    .image(ECHO)
                    .model_data_url(MODEL_DATA)
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateModel {name}: {}", DisplayErrorContext(&e)));
    }

    /// Model, endpoint config (one `AllTraffic` variant, one instance) and endpoint, all
    /// named `name`; waits until the endpoint is InService.
    async fn deploy(&self, name: &str) -> DescribeEndpointOutput {
        self.create_model(name).await;
        self.serve_model(name).await
    }

    /// Endpoint config and endpoint for the model `name`, both named `name`; waits until
    /// the endpoint is InService.
    async fn serve_model(&self, name: &str) -> DescribeEndpointOutput {
        self.sm
            .create_endpoint_config()
            .endpoint_config_name(name)
            .production_variants(
                ProductionVariant::builder()
                    .variant_name("AllTraffic")
                    .model_name(name)
                    .initial_instance_count(1)
                    .instance_type(ProductionVariantInstanceType::MlM5Large)
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateEndpointConfig {name}: {}", DisplayErrorContext(&e)));
        let created = self
            .sm
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateEndpoint {name}: {}", DisplayErrorContext(&e)));
        assert_eq!(created.endpoint_arn(), Some(&*arn("endpoint", name)));
        self.wait_in_service(name).await
    }

    /// Polls DescribeEndpoint every 100 ms until InService (at most 120 s); panics on Failed.
    async fn wait_in_service(&self, name: &str) -> DescribeEndpointOutput {
        let t0 = Instant::now();
        loop {
            let described = self
                .sm
                .describe_endpoint()
                .endpoint_name(name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeEndpoint {name}: {}", DisplayErrorContext(&e)));
            match described.endpoint_status() {
                Some(EndpointStatus::InService) => return described,
                Some(EndpointStatus::Failed) => panic!(
                    "{name} failed: {:?}\n{}",
                    described.failure_reason(),
                    self.up.stderr()
                ),
                _ => {}
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{name} not InService after 120 s: {described:?}\n{}",
                self.up.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The ARN sagedock gives a resource (it lower-cases names, as SageMaker does).
fn arn(kind: &str, name: &str) -> String {
    format!(
        "arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{}",
        name.to_lowercase()
    )
}

/// The error of a call that must fail with an error response — a service error, not a
/// transport, timeout or parse failure — and that response's HTTP status.
fn service_error<T: Debug, E: Error + 'static>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> (E, u16) {
    match result {
        Ok(output) => panic!("expected an error response, got {output:?}"),
        Err(SdkError::ServiceError(context)) => {
            let status = context.raw().status().as_u16();
            (context.into_err(), status)
        }
        Err(other) => panic!(
            "expected an error response, got {}",
            DisplayErrorContext(&other)
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_deploys_invokes_lists_and_deletes() {
    let Some(up) = Up::start().await else { return };
    let name = "sdk-lifecycle";
    let described = up.deploy(name).await;
    assert_eq!(described.endpoint_name(), Some(name));
    assert_eq!(described.endpoint_config_name(), Some(name));
    let variants = described.production_variants();
    assert_eq!(variants.len(), 1, "{described:?}");
    assert_eq!(variants[0].variant_name(), Some("AllTraffic"));
    assert_eq!(variants[0].current_instance_count(), Some(1));

    let body = "5.1,3.5,1.4,0.2\n6.4,3.2,4.5,1.5\n";
    let out = up
        .rt
        .invoke_endpoint()
        .endpoint_name(name)
        .content_type("text/csv")
        .custom_attributes("trace=sdk-123")
        .body(Blob::new(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("InvokeEndpoint: {}", DisplayErrorContext(&e)));
    assert_eq!(
        out.body().map(|b| b.clone().into_inner()),
        Some(body.as_bytes().to_vec())
    );
    assert_eq!(out.content_type(), Some("text/csv"));
    assert_eq!(out.invoked_production_variant(), Some("AllTraffic"));
    assert_eq!(out.custom_attributes(), Some("trace=sdk-123"));

    let listed = up
        .sm
        .list_endpoints()
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListEndpoints: {}", DisplayErrorContext(&e)));
    let summary = listed
        .endpoints()
        .iter()
        .find(|e| e.endpoint_name() == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed: {listed:?}"));
    assert_eq!(summary.endpoint_status(), Some(&EndpointStatus::InService));

    up.sm
        .delete_endpoint()
        .endpoint_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteEndpoint: {}", DisplayErrorContext(&e)));
    // Deleting is asynchronous (status Deleting); the endpoint is gone when DescribeEndpoint
    // fails.
    let t0 = Instant::now();
    let (err, status) = loop {
        let result = up.sm.describe_endpoint().endpoint_name(name).send().await;
        if result.is_err() {
            break service_error(result);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name} still described 60 s after DeleteEndpoint: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 400);
    assert_eq!(err.meta().code(), Some("ValidationException"), "{err:?}");
    let expected = format!("Could not find endpoint \"{}\".", arn("endpoint", name));
    assert_eq!(err.meta().message(), Some(&*expected));

    up.sm
        .delete_endpoint_config()
        .endpoint_config_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteEndpointConfig: {}", DisplayErrorContext(&e)));
    up.sm
        .delete_model()
        .model_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteModel: {}", DisplayErrorContext(&e)));
    let models = up
        .sm
        .list_models()
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListModels: {}", DisplayErrorContext(&e)));
    assert!(models.models().is_empty(), "{models:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_parses_sagedock_errors() {
    let Some(up) = Up::start().await else { return };

    // Control plane (awsJson1_1): DescribeModel models no errors, so the SDK gives
    // `Unhandled` and the code is read from the metadata.
    let (err, status) = service_error(up.sm.describe_model().model_name("nope").send().await);
    assert_eq!(status, 400);
    assert_eq!(err.meta().code(), Some("ValidationException"), "{err:?}");
    let expected = format!("Could not find model \"{}\".", arn("model", "nope"));
    assert_eq!(err.meta().message(), Some(&*expected));

    up.create_model("sdk-twice").await;
    let (err, status) = service_error(
        up.sm
            .create_model()
            .model_name("sdk-twice")
            .execution_role_arn(ROLE)
            .primary_container(
                ContainerDefinition::builder()
                    .image(ECHO)
                    .model_data_url(MODEL_DATA)
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(status, 400);
    assert!(!err.is_resource_limit_exceeded(), "{err:?}");
    assert_eq!(err.meta().code(), Some("ValidationException"), "{err:?}");
    let expected = format!(
        "Cannot create already existing model \"{}\".",
        arn("model", "sdk-twice")
    );
    assert_eq!(err.meta().message(), Some(&*expected));

    // Runtime (restJson1): an unknown endpoint is the modelled ValidationError.
    let (err, status) = service_error(
        up.rt
            .invoke_endpoint()
            .endpoint_name("nope")
            .content_type("text/plain")
            .body(Blob::new("hello"))
            .send()
            .await,
    );
    assert_eq!(status, 400);
    match err {
        InvokeEndpointError::ValidationError(e) => {
            let expected = format!("Endpoint nope of account {ACCOUNT} not found.");
            assert_eq!(e.message(), Some(&*expected));
        }
        other => panic!("expected InvokeEndpointError::ValidationError, got {other:?}"),
    }

    // A container answering 500 is the modelled ModelError (HTTP 424) with the original
    // status and body.
    let name = "sdk-model-error";
    up.deploy(name).await;
    let (err, status) = service_error(
        up.rt
            .invoke_endpoint()
            .endpoint_name(name)
            .content_type("text/plain")
            .custom_attributes("status=500")
            .body(Blob::new("boom"))
            .send()
            .await,
    );
    assert_eq!(status, 424);
    let e = match err {
        InvokeEndpointError::ModelError(e) => e,
        other => panic!("expected InvokeEndpointError::ModelError, got {other:?}"),
    };
    assert_eq!(e.original_status_code(), Some(500), "{e:?}");
    assert_eq!(
        e.original_message(),
        Some(r#"{"error":"forced status 500"}"#)
    );
    assert!(
        e.message()
            .is_some_and(|m| m.starts_with("Received server error (500) from primary")),
        "{e:?}"
    );
    // The container's own stream in the endpoint's group.
    let stream = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}:log-stream:AllTraffic/sagedock-{name}-AllTraffic-");
    assert!(
        e.log_stream_arn().is_some_and(|a| a.starts_with(&stream)),
        "{e:?}"
    );
    assert_eq!(e.meta().code(), Some("ModelError"));

    // The endpoint still serves after the model's error.
    let out = up
        .rt
        .invoke_endpoint()
        .endpoint_name(name)
        .body(Blob::new("fine"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("InvokeEndpoint: {}", DisplayErrorContext(&e)));
    assert_eq!(
        out.body().map(|b| b.clone().into_inner()),
        Some(b"fine".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_paginator_walks_every_page() {
    let Some(up) = Up::start().await else { return };
    let names: Vec<String> = (1..=5).map(|i| format!("sdk-page-{i}")).collect();
    for name in &names {
        up.create_model(name).await;
    }

    let pages = up
        .sm
        .list_models()
        .max_results(2)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("ListModels pages: {}", DisplayErrorContext(&e)));
    let sizes: Vec<usize> = pages.iter().map(|p| p.models().len()).collect();
    assert_eq!(sizes, [2, 2, 1], "{pages:?}");
    assert!(pages[..2].iter().all(|p| p.next_token().is_some()));
    assert_eq!(pages[2].next_token(), None);
    let mut listed: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.models())
        .filter_map(|m| m.model_name())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, names);

    // The same through the item paginator.
    let items = up
        .sm
        .list_models()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("ListModels items: {}", DisplayErrorContext(&e)));
    let mut listed: Vec<&str> = items.iter().filter_map(|m| m.model_name()).collect();
    listed.sort_unstable();
    assert_eq!(listed, names);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_invokes_a_multi_model_endpoint() {
    let Some(up) = Up::start().await else { return };
    tokio::task::block_in_place(|| {
        std::fs::create_dir_all(up.sandbox.join("s3/mme")).unwrap();
        for target in ["a", "b"] {
            let src = up.sandbox.join(&format!("src-{target}"));
            std::fs::create_dir_all(&src).unwrap();
            std::fs::write(src.join(format!("{target}.txt")), target).unwrap();
            up.sandbox
                .cmd()
                .arg("pack")
                .arg(&src)
                .args(["-o", &format!("s3/mme/{target}.tar.gz")])
                .assert()
                .success();
        }
    });
    let name = "sdk-mme";
    up.sm
        .create_model()
        .model_name(name)
        .execution_role_arn(ROLE)
        .primary_container(
            ContainerDefinition::builder()
                .image(ECHO)
                .mode(ContainerMode::MultiModel)
                .model_data_url("s3://mme/")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateModel {name}: {}", DisplayErrorContext(&e)));
    up.serve_model(name).await;
    for target in ["a", "b"] {
        let out = up
            .rt
            .invoke_endpoint()
            .endpoint_name(name)
            .target_model(format!("{target}.tar.gz"))
            .custom_attributes("report=1")
            .body(Blob::new("x"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("InvokeEndpoint {target}: {}", DisplayErrorContext(&e)));
        let report: serde_json::Value =
            serde_json::from_slice(out.body().expect("a body").as_ref()).unwrap();
        assert_eq!(
            report["model_dir"]["files"],
            serde_json::json!([format!("{target}.txt")])
        );
    }
    let (err, status) = service_error(
        up.rt
            .invoke_endpoint()
            .endpoint_name(name)
            .target_model("missing.tar.gz")
            .body(Blob::new("x"))
            .send()
            .await,
    );
    assert_eq!(status, 400);
    assert!(
        matches!(&err, InvokeEndpointError::ValidationError(e) if e.message().is_some_and(|m| m.contains("missing.tar.gz"))),
        "{err:?}"
    );
}
