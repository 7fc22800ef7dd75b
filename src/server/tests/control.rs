//! The control plane in process: shapes, validation, lists, tags, caps, failed deployments.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::{call, config, control_plane, control_plane_on, model, ok, send, silent_engine};

#[tokio::test]
async fn models_are_created_described_listed_and_deleted_in_aws_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let mut input = model("Demo-Model");
    input["VpcConfig"] = json!({"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]});
    input["NotAMember"] = json!(true);
    let created = ok(&app, "CreateModel", input).await;
    assert_eq!(
        created["ModelArn"],
        "arn:aws:sagemaker:us-east-1:123456789012:model/demo-model"
    );
    let described = ok(&app, "DescribeModel", json!({"ModelName": "Demo-Model"})).await;
    assert_eq!(described["ModelName"], "Demo-Model");
    assert_eq!(
        described["PrimaryContainer"]["Image"],
        "sagedock/echo:latest"
    );
    assert_eq!(
        described["VpcConfig"]["Subnets"][0], "subnet-1",
        "kept and described"
    );
    assert!(
        described.get("NotAMember").is_none(),
        "unknown members are dropped"
    );
    assert!(described["CreationTime"].as_f64().unwrap() > 1.6e9);
    let again = call(&app, "CreateModel", model("Demo-Model")).await;
    assert_eq!(again.error(), "ValidationException");
    assert!(
        again
            .message()
            .starts_with("Cannot create already existing model"),
        "{}",
        again.message()
    );
    for i in 0..3 {
        ok(&app, "CreateModel", model(&format!("m{i}"))).await;
    }
    let listed = ok(
        &app,
        "ListModels",
        json!({"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 2}),
    )
    .await;
    let names: Vec<&str> = listed["Models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ModelName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Demo-Model", "m0"]);
    let rest = ok(
        &app,
        "ListModels",
        json!({"SortBy": "Name", "SortOrder": "Ascending", "NextToken": listed["NextToken"]}),
    )
    .await;
    assert_eq!(rest["Models"].as_array().unwrap().len(), 2);
    ok(&app, "DeleteModel", json!({"ModelName": "m0"})).await;
    let gone = call(&app, "DescribeModel", json!({"ModelName": "m0"})).await;
    assert_eq!(
        (gone.status, gone.error().as_str()),
        (StatusCode::BAD_REQUEST, "ValidationException")
    );
    assert_eq!(
        gone.message(),
        "Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/m0\"."
    );
}

// Long on purpose: one table of bad inputs and the exact message AWS answers for each,
// read top to bottom.
#[tokio::test]
async fn bad_input_is_refused_with_the_message_aws_gives() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let reply = call(
        &app,
        "CreateModel",
        json!({"ModelName": "bad_name!", "PrimaryContainer": {"Image": "i"}}),
    )
    .await;
    assert_eq!(reply.error(), "ValidationException");
    assert!(
        reply
            .message()
            .starts_with("1 validation error detected: Value 'bad_name!' at 'modelName'"),
        "{}",
        reply.message()
    );
    ok(&app, "CreateModel", model("m")).await;
    for (count, kind, says) in [
        (
            json!(0),
            "ValidationException",
            "greater than or equal to 1",
        ),
        (
            json!(4_294_967_296_u64),
            "ValidationException",
            "less than or equal to 2147483647",
        ),
        (
            json!(1_000_000_000_000_u64),
            "ValidationException",
            "less than or equal to 2147483647",
        ),
        (
            json!("three"),
            "SerializationException",
            "initialInstanceCount",
        ),
        (
            json!(-1),
            "ValidationException",
            "greater than or equal to 1",
        ),
    ] {
        let mut input = config("c", "m", 1);
        input["ProductionVariants"][0]["InitialInstanceCount"] = count.clone();
        let reply = call(&app, "CreateEndpointConfig", input).await;
        assert_eq!(reply.error(), kind, "{count}: {}", reply.message());
        assert!(
            reply.message().contains(says),
            "{count}: {}",
            reply.message()
        );
    }
    let mut t3 = config("c", "m", 1);
    t3["ProductionVariants"][0]["InstanceType"] = json!("ml.t3.medium");
    let reply = call(&app, "CreateEndpointConfig", t3).await;
    assert!(
        reply
            .message()
            .contains("Member must satisfy enum value set"),
        "{}",
        reply.message()
    );
    let reply = call(
        &app,
        "CreateEndpointConfig",
        config("c", "missing-model", 1),
    )
    .await;
    assert_eq!(
        reply.message(),
        "Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/missing-model\"."
    );
    let reply = call(&app, "NoSuchOperation", json!({})).await;
    assert_eq!(reply.error(), "UnknownOperationException");
    let req = Request::post("/")
        .header("x-amz-target", "SageMaker.ListModels")
        .body(Full::new(Bytes::from_static(b"{not json")))
        .unwrap();
    assert_eq!(send(&app, req).await.error(), "SerializationException");
    let req = Request::post("/")
        .header("x-amz-target", "SageMaker.ListModels")
        .body(Full::new(Bytes::from_static(b"[1]")))
        .unwrap();
    assert_eq!(send(&app, req).await.error(), "SerializationException");
}

#[tokio::test]
async fn model_data_must_be_a_location_sagedock_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    for (url, refused) in [
        ("s3://bucket//etc/", true),
        ("s3://../etc/passwd", true),
        ("s3://bucket/a/../../x", true),
        ("file:///", true),
        ("/proc/self", true),
        ("s3://models/m.tar.gz", false),
        ("file:///tmp/m.tar.gz", false),
    ] {
        let input =
            json!({"ModelName": "m", "PrimaryContainer": {"Image": "i", "ModelDataUrl": url}});
        let reply = call(&app, "CreateModel", input).await;
        assert_eq!(
            reply.status != StatusCode::OK,
            refused,
            "{url}: {}",
            reply.message()
        );
        if !refused {
            ok(&app, "DeleteModel", json!({"ModelName": "m"})).await;
        }
    }
}

#[tokio::test]
async fn asynchronous_output_must_be_writable_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    ok(&app, "CreateModel", model("m")).await;
    let with_output = |path: &str| {
        let mut c = config("c", "m", 1);
        c["AsyncInferenceConfig"] = json!({"OutputConfig": {"S3OutputPath": path}});
        c
    };
    for bad in [
        "s3://bucket/../../tmp/x",
        "s3://bucket//tmp",
        "https://example.com/x",
    ] {
        let reply = call(&app, "CreateEndpointConfig", with_output(bad)).await;
        assert_eq!(reply.error(), "ValidationException", "{bad}");
    }
    std::os::unix::fs::symlink("/tmp", dir.path().join("s3/escape")).unwrap();
    let reply = call(&app, "CreateEndpointConfig", with_output("s3://escape/out")).await;
    assert!(
        reply.message().contains("outside the S3 root"),
        "{}",
        reply.message()
    );
    ok(&app, "CreateEndpointConfig", with_output("s3://bucket/out")).await;
}

#[tokio::test]
async fn what_sagemaker_refuses_on_serverless_variants_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    ok(&app, "CreateModel", model("m")).await;
    let mut isolated = model("isolated");
    isolated["EnableNetworkIsolation"] = json!(true);
    ok(&app, "CreateModel", isolated).await;
    let serverless = |name: &str, model: &str, config: Value| {
        json!({"EndpointConfigName": name, "ProductionVariants": [
            {"VariantName": "v", "ModelName": model, "ServerlessConfig": config}]})
    };
    let good = json!({"MemorySizeInMB": 2048, "MaxConcurrency": 5});
    let cases = [
        (
            serverless(
                "a",
                "m",
                json!({"MemorySizeInMB": 1500, "MaxConcurrency": 5}),
            ),
            "MemorySizeInMB",
        ),
        (
            serverless(
                "b",
                "m",
                json!({"MemorySizeInMB": 2048, "MaxConcurrency": 2, "ProvisionedConcurrency": 3}),
            ),
            "ProvisionedConcurrency",
        ),
        (
            serverless("c", "isolated", good.clone()),
            "network isolation",
        ),
        (
            {
                let mut c = serverless("d", "m", good.clone());
                c["ProductionVariants"][0]["InstanceType"] = json!("ml.m5.large");
                c
            },
            "InstanceType",
        ),
        (
            {
                let mut c = serverless("e", "m", good.clone());
                c["ProductionVariants"].as_array_mut().unwrap().push(json!(
                {"VariantName": "w", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}));
                c
            },
            "only that one production variant",
        ),
        (
            {
                let mut c = serverless("f", "m", good.clone());
                c["DataCaptureConfig"] = json!({"InitialSamplingPercentage": 10, "DestinationS3Uri": "s3://bucket/c",
                                            "CaptureOptions": [{"CaptureMode": "Input"}]});
                c
            },
            "DataCaptureConfig",
        ),
        (
            {
                let mut c = serverless("g", "m", good.clone());
                c["AsyncInferenceConfig"] =
                    json!({"OutputConfig": {"S3OutputPath": "s3://bucket/out"}});
                c
            },
            "AsyncInferenceConfig",
        ),
    ];
    for (config, named) in cases {
        let reply = call(&app, "CreateEndpointConfig", config).await;
        assert_eq!(reply.error(), "ValidationException", "{named}");
        assert!(
            reply.message().contains(named),
            "{named}: {}",
            reply.message()
        );
    }
    ok(&app, "CreateEndpointConfig", serverless("ok", "m", good)).await;
}

#[tokio::test]
async fn instance_counts_stay_within_the_machine_caps() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane_on(dir.path(), silent_engine(dir.path()));
    ok(&app, "CreateModel", model("m")).await;
    ok(&app, "CreateEndpointConfig", config("five", "m", 5)).await;
    ok(&app, "CreateEndpointConfig", config("three", "m", 3)).await;
    ok(&app, "CreateEndpointConfig", config("one", "m", 1)).await;
    let reply = call(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e", "EndpointConfigName": "five"}),
    )
    .await;
    assert_eq!(reply.error(), "ResourceLimitExceeded");
    assert!(
        reply
            .message()
            .contains("at most 4 per endpoint (raise it with --max-instances-per-endpoint)"),
        "{}",
        reply.message()
    );
    ok(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e1", "EndpointConfigName": "three"}),
    )
    .await;
    ok(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e2", "EndpointConfigName": "three"}),
    )
    .await;
    let reply = call(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e3", "EndpointConfigName": "one"}),
    )
    .await;
    assert_eq!(reply.error(), "ResourceLimitExceeded");
    assert!(
        reply
            .message()
            .contains("to 7; it runs at most 6 in all (raise it with --max-instances)"),
        "{}",
        reply.message()
    );
    let described = ok(&app, "DescribeEndpoint", json!({"EndpointName": "e1"})).await;
    assert_eq!(described["EndpointStatus"], "Creating");
    let reply = call(&app, "UpdateEndpointWeightsAndCapacities", json!({"EndpointName": "e1",
        "DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredInstanceCount": -1}]})).await;
    assert_eq!(reply.error(), "ValidationException");
    assert!(
        reply.message().contains("desiredInstanceCount"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn a_deployment_the_engine_cannot_take_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    ok(&app, "CreateModel", model("m")).await;
    ok(&app, "CreateEndpointConfig", config("c", "m", 1)).await;
    ok(
        &app,
        "CreateEndpoint",
        json!({"EndpointName": "e", "EndpointConfigName": "c"}),
    )
    .await;
    let mut described = Value::Null;
    for _ in 0..500 {
        described = ok(&app, "DescribeEndpoint", json!({"EndpointName": "e"})).await;
        if described["EndpointStatus"] != "Creating" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(described["EndpointStatus"], "Failed", "{described}");
    assert!(
        described["FailureReason"]
            .as_str()
            .unwrap()
            .contains("Docker engine"),
        "{described}"
    );
    let listed = ok(&app, "ListEndpoints", json!({"StatusEquals": "Failed"})).await;
    assert_eq!(listed["Endpoints"][0]["EndpointName"], "e");
    // An instance-based endpoint does not become serverless (SageMaker allows only the
    // other way).
    ok(
        &app,
        "CreateEndpointConfig",
        json!({"EndpointConfigName": "s", "ProductionVariants": [{"VariantName": "v",
               "ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}}]}),
    )
    .await;
    let reply = call(
        &app,
        "UpdateEndpoint",
        json!({"EndpointName": "e", "EndpointConfigName": "s"}),
    )
    .await;
    assert_eq!(reply.error(), "ValidationException");
    assert!(
        reply
            .message()
            .contains("cannot be updated to the serverless"),
        "{}",
        reply.message()
    );
    ok(&app, "DeleteEndpoint", json!({"EndpointName": "e"})).await;
}

#[tokio::test]
async fn tags_belong_to_resources_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let app = control_plane(dir.path());
    let arn = ok(&app, "CreateModel", model("m")).await["ModelArn"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&app, "AddTags", json!({"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}]})).await;
    ok(
        &app,
        "AddTags",
        json!({"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "b"}]}),
    )
    .await;
    let tags = ok(&app, "ListTags", json!({"ResourceArn": arn})).await;
    let mut pairs: Vec<(String, String)> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().into(),
                t["Value"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("env".to_string(), "dev".to_string()),
            ("team".into(), "b".into())
        ]
    );
    ok(
        &app,
        "DeleteTags",
        json!({"ResourceArn": arn, "TagKeys": ["env"]}),
    )
    .await;
    assert_eq!(
        ok(&app, "ListTags", json!({"ResourceArn": arn})).await["Tags"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let reply = call(
        &app,
        "ListTags",
        json!({"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/nope"}),
    )
    .await;
    assert!(
        reply.message().contains("does not exist"),
        "{}",
        reply.message()
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    let reply = call(&app, "AddTags", json!({"ResourceArn": arn, "Tags": many})).await;
    assert_eq!(reply.error(), "ValidationException");
}
