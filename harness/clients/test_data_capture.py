"""DataCaptureConfig on a real container: sampled requests and responses land under
DestinationS3Uri as SageMaker lays them out, in its JSON-lines capture format, read back
through S3 on sagedock's own port; UpdateEndpoint with EnableCapture False stops them; and
what SageMaker refuses (capture on a serverless variant) is refused.
"""

import base64
import json
import re
import time

import boto3
import pytest

from support import (REGION, ROLE_ARN, cleanup, error_of, unique_name, variant,
                     wait_in_service)

KEY_PATTERN = re.compile(
    r"^capture/(?P<endpoint>[^/]+)/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$")


@pytest.fixture(scope="module")
def s3(sagedock):
    # The pair `sagedock up` prints: S3 checks signatures.
    return boto3.client("s3", endpoint_url=sagedock.url, region_name=REGION,
                        aws_access_key_id="sagedock", aws_secret_access_key="sagedock")


def capture_config(bucket, enabled=True, percentage=100, **extra):
    config = {"EnableCapture": enabled, "InitialSamplingPercentage": percentage,
              "DestinationS3Uri": f"s3://{bucket}/capture",
              "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
              "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                           "JsonContentTypes": ["application/json"]}}
    config.update(extra)
    return config


def records(s3, bucket, endpoint, at_least, timeout=15):
    """Every capture record of `endpoint`, once there are `at_least` of them."""
    deadline = time.monotonic() + timeout
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(
            Bucket=bucket, Prefix=f"capture/{endpoint}/").get("Contents", [])]
        lines = []
        for key in keys:
            assert KEY_PATTERN.match(key), key
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            lines += [json.loads(line) for line in body.splitlines()]
        if len(lines) >= at_least or time.monotonic() > deadline:
            return keys, lines
        time.sleep(0.3)


def deploy(sm, echo_image, bucket, endpoint, capture):
    model, config = unique_name("dc-model"), unique_name("dc-config")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                    PrimaryContainer={"Image": echo_image})
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant(model)],
                              DataCaptureConfig=capture)
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    wait_in_service(sm, endpoint)
    return model, config


def test_captured_calls_read_back_in_sagemakers_format(sm, runtime, s3, echo_image):
    bucket, endpoint = unique_name("dc-bucket"), unique_name("dc-ep")
    s3.create_bucket(Bucket=bucket)
    model, config = deploy(sm, echo_image, bucket, endpoint, capture_config(bucket))
    configs = [config]
    try:
        described = sm.describe_endpoint(EndpointName=endpoint)["DataCaptureConfig"]
        assert described == {"EnableCapture": True, "CaptureStatus": "Started",
                             "CurrentSamplingPercentage": 100,
                             "DestinationS3Uri": f"s3://{bucket}/capture"}
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"69,0,153.7\n",
                                ContentType="text/csv", Accept="text/csv", InferenceId="7")
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b'{"x": [1, 2]}',
                                ContentType="application/json")
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"\x89PNG\x00\xff",
                                ContentType="image/png")
        keys, lines = records(s3, bucket, endpoint, 3)
        assert len(lines) == 3, lines
        by_type = {r["captureData"]["endpointInput"]["observedContentType"]: r for r in lines}
        csv = by_type["text/csv"]
        assert csv["captureData"]["endpointInput"] == {
            "observedContentType": "text/csv", "mode": "INPUT", "data": "69,0,153.7\n",
            "encoding": "CSV"}
        assert csv["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
        assert csv["captureData"]["endpointOutput"]["data"] == "69,0,153.7\n"
        assert csv["eventMetadata"]["inferenceId"] == "7"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z",
                            csv["eventMetadata"]["inferenceTime"])
        assert re.fullmatch(r"[0-9a-f-]{36}", csv["eventMetadata"]["eventId"])
        assert csv["eventVersion"] == "0"
        assert by_type["application/json"]["captureData"]["endpointInput"]["encoding"] == "JSON"
        png = by_type["image/png"]["captureData"]["endpointInput"]
        assert png["encoding"] == "BASE64"
        assert base64.b64decode(png["data"]) == b"\x89PNG\x00\xff"
        assert "inferenceId" not in by_type["image/png"]["eventMetadata"]

        # EnableCapture False through UpdateEndpoint (what the SDK's disable_data_capture
        # does): no new records.
        off = unique_name("dc-off")
        sm.create_endpoint_config(EndpointConfigName=off, ProductionVariants=[variant(model)],
                                  DataCaptureConfig=capture_config(bucket, enabled=False))
        configs.append(off)
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=off)
        wait_in_service(sm, endpoint)
        assert sm.describe_endpoint(EndpointName=endpoint)["DataCaptureConfig"][
            "CaptureStatus"] == "Stopped"
        for _ in range(5):
            runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1", ContentType="text/csv")
        time.sleep(2.5)  # past the writer's one-second flush
        _, after = records(s3, bucket, endpoint, 0, timeout=0)
        assert len(after) == 3, after
    finally:
        cleanup(sm, endpoints=[endpoint], configs=configs, models=[model])


def test_sampling_keeps_about_the_percentage_asked(sm, runtime, s3, echo_image):
    bucket, endpoint = unique_name("dc-bucket"), unique_name("dc-ep")
    s3.create_bucket(Bucket=bucket)
    model, config = deploy(sm, echo_image, bucket, endpoint,
                           capture_config(bucket, percentage=20,
                                          CaptureOptions=[{"CaptureMode": "Input"}]))
    try:
        for _ in range(200):
            runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1", ContentType="text/csv")
        time.sleep(2.5)
        _, lines = records(s3, bucket, endpoint, 0, timeout=0)
        # Binomial(200, 0.2): mean 40, sd 5.7; [15, 70] is beyond 4 sd either way.
        assert 15 <= len(lines) <= 70, len(lines)
        assert all("endpointOutput" not in r["captureData"] for r in lines)
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config], models=[model])


def test_capture_on_a_serverless_variant_is_refused(sm, echo_image):
    model = unique_name("dc-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                    PrimaryContainer={"Image": echo_image})
    try:
        with pytest.raises(sm.exceptions.ClientError) as e:
            sm.create_endpoint_config(
                EndpointConfigName=unique_name("dc-config"),
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model,
                                     "ServerlessConfig": {"MemorySizeInMB": 2048,
                                                          "MaxConcurrency": 5}}],
                DataCaptureConfig=capture_config("anything"))
        code, message, status = error_of(e)
        assert (code, status) == ("ValidationException", 400)
        assert "serverless" in message
    finally:
        cleanup(sm, models=[model])
