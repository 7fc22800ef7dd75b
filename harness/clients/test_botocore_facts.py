"""What the other suites rely on in botocore's own data (service-2.json, waiters-2.json,
paginators-1.json) for the pinned botocore. Needs no server: if a botocore upgrade
changes one of these, this file says which assumption broke."""

import datetime

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from support import REGION, ROLE_ARN, variant


@pytest.fixture(scope="module")
def loader():
    return botocore.session.get_session()


def test_sagemaker_protocol(loader):
    meta = loader.get_service_model("sagemaker").metadata
    assert meta["protocol"] == "json"
    assert meta["jsonVersion"] == "1.1"
    assert meta["targetPrefix"] == "SageMaker"
    assert meta["signingName"] == "sagemaker"


def test_runtime_protocol_and_invoke_shape(loader):
    rt = loader.get_service_model("sagemaker-runtime")
    assert rt.metadata["protocol"] == "rest-json"
    assert rt.metadata["signingName"] == "sagemaker"
    op = rt.operation_model("InvokeEndpoint")
    assert op.http == {"method": "POST", "requestUri": "/endpoints/{EndpointName}/invocations"}
    out = op.output_shape.members
    assert out["ContentType"].serialization == {"location": "header", "name": "Content-Type"}
    assert out["InvokedProductionVariant"].serialization["name"] == "x-Amzn-Invoked-Production-Variant"
    assert out["CustomAttributes"].serialization["name"] == "X-Amzn-SageMaker-Custom-Attributes"
    assert out["Body"].serialization == {}  # the payload


def test_runtime_error_codes(loader):
    op = loader.get_service_model("sagemaker-runtime").operation_model("InvokeEndpoint")
    codes = {e.error_code: e.metadata.get("error", {}).get("httpStatusCode") for e in op.error_shapes}
    assert codes["ValidationError"] == 400  # runtime: ValidationError, not ValidationException
    assert codes["ModelError"] == 424
    assert "ValidationException" not in codes
    members = op.service_model.shape_for("ModelError").members
    assert {"Message", "OriginalStatusCode", "OriginalMessage", "LogStreamArn"} <= set(members)


def test_control_plane_models_no_validation_exception(loader):
    sm = loader.get_service_model("sagemaker")
    # ValidationException is not a modeled shape: boto3 has no sm.exceptions class for it;
    # the suites match ClientError's Error.Code instead.
    assert "ValidationException" not in [s.name for s in sm.error_shapes]


def test_waiters(loader):
    w = loader.get_waiter_model("sagemaker")
    ins = w.get_waiter("EndpointInService")
    assert (ins.operation, ins.delay, ins.max_attempts) == ("DescribeEndpoint", 30, 120)
    assert [(a.state, a.matcher, a.expected) for a in ins.acceptors] == [
        ("success", "path", "InService"), ("failure", "path", "Failed"),
        ("failure", "error", "ValidationException")]
    deleted = w.get_waiter("EndpointDeleted")
    assert (deleted.operation, deleted.delay, deleted.max_attempts) == ("DescribeEndpoint", 30, 60)
    assert [(a.state, a.matcher, a.expected) for a in deleted.acceptors] == [
        ("success", "error", "ValidationException"), ("failure", "path", "Failed")]
    client = boto3.client("sagemaker", region_name=REGION, endpoint_url="http://127.0.0.1:1")
    assert {"endpoint_in_service", "endpoint_deleted"} <= set(client.waiter_names)


def test_paginators(loader):
    p = loader.get_component("data_loader").load_service_model(
        "sagemaker", "paginators-1")["pagination"]
    for op, key in (("ListModels", "Models"), ("ListEndpointConfigs", "EndpointConfigs"),
                    ("ListEndpoints", "Endpoints")):
        assert p[op] == {"input_token": "NextToken", "output_token": "NextToken",
                         "limit_key": "MaxResults", "result_key": key}


def test_request_shapes_validate_offline():
    """Every request the suites build passes botocore's parameter validation (Stubber
    runs the same validation a real call does, without sending anything)."""
    sm = boto3.client("sagemaker", region_name=REGION, endpoint_url="http://127.0.0.1:1")
    rt = boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url="http://127.0.0.1:1")
    a = "arn:aws:sagemaker:us-east-1:123456789012:x/y"
    now = datetime.datetime.now(datetime.timezone.utc)
    calls = [
        (sm, "create_model", {"ModelName": "m", "PrimaryContainer": {
            "Image": "sagedock/echo:latest", "ModelDataUrl": "s3://models/echo/model.tar.gz",
            "Environment": {"A": "1"}}, "ExecutionRoleArn": ROLE_ARN,
            "Tags": [{"Key": "team", "Value": "ml"}]}, {"ModelArn": a}),
        (sm, "describe_model", {"ModelName": "m"},
         {"ModelName": "m", "ModelArn": a, "CreationTime": now}),
        (sm, "list_models", {"NameContains": "abc", "SortBy": "Name", "SortOrder": "Ascending",
                             "MaxResults": 2, "NextToken": "t"}, {"Models": []}),
        (sm, "list_models", {"SortBy": "CreationTime", "SortOrder": "Descending"}, {"Models": []}),
        (sm, "delete_model", {"ModelName": "m"}, {}),
        (sm, "create_endpoint_config", {"EndpointConfigName": "c", "ProductionVariants": [
            variant("m"), variant("m", name="Blue"),
            variant("m", ContainerStartupHealthCheckTimeoutInSeconds=60)]},
         {"EndpointConfigArn": a}),
        (sm, "describe_endpoint_config", {"EndpointConfigName": "c"},
         {"EndpointConfigName": "c", "EndpointConfigArn": a, "CreationTime": now,
          "ProductionVariants": [variant("m")]}),
        (sm, "list_endpoint_configs", {"NameContains": "abc"}, {"EndpointConfigs": []}),
        (sm, "delete_endpoint_config", {"EndpointConfigName": "c"}, {}),
        (sm, "create_endpoint", {"EndpointName": "e", "EndpointConfigName": "c"},
         {"EndpointArn": a}),
        (sm, "describe_endpoint", {"EndpointName": "e"},
         {"EndpointName": "e", "EndpointArn": a, "EndpointStatus": "Creating",
          "CreationTime": now, "LastModifiedTime": now}),
        (sm, "list_endpoints", {"StatusEquals": "InService", "NameContains": "abc"},
         {"Endpoints": []}),
        (sm, "update_endpoint_weights_and_capacities", {"EndpointName": "e",
         "DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredWeight": 2.0,
                                          "DesiredInstanceCount": 2}]}, {"EndpointArn": a}),
        (sm, "update_endpoint", {"EndpointName": "e", "EndpointConfigName": "c2"},
         {"EndpointArn": a}),
        (sm, "delete_endpoint", {"EndpointName": "e"}, {}),
        (sm, "add_tags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m",
                          "Tags": [{"Key": "env", "Value": "test"}]}, {"Tags": []}),
        (sm, "list_tags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"},
         {"Tags": []}),
        (sm, "delete_tags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m",
                             "TagKeys": ["team"]}, {}),
        (sm, "list_training_jobs", {}, {"TrainingJobSummaries": []}),
        (rt, "invoke_endpoint", {"EndpointName": "e", "Body": b"x",
                                 "ContentType": "application/json", "Accept": "application/json",
                                 "CustomAttributes": "trace-id=abc123,status=500"},
         {"Body": b"x"}),
    ]
    for client, method, params, response in calls:
        with Stubber(client) as stub:
            stub.add_response(method, response, params)
            getattr(client, method)(**params)
            stub.assert_no_pending_responses()


def test_embedded_shapes_match_the_pinned_botocore():
    """sagedock validates requests with src/botocore/*.json, extracted from botocore by
    extract_shapes.py: they must be what the pinned botocore ships."""
    import extract_shapes

    assert extract_shapes.main(check=True) == 0, "run: python harness/clients/extract_shapes.py"
