"""The SageMaker hosting lifecycle through boto3, against `sagedock up`.

Asserts on the fields and errors exactly as botocore parses them from sagedock's
answers (botocore's service-2.json / waiters-2.json are the authority). Every test
creates its own resources (see `names`) and deletes them in `finally`.
"""

import json
import re
import time

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError, WaiterError

from support import (ACCOUNT, MMS_SENTENCE, ROLE_ARN, arn, assert_recent, cleanup, error_of,
                     unique_name, variant, wait_deleted, wait_in_service)


def create_model(sm, name, image, model_data=None, env=None, **extra):
    container = {"Image": image}
    if model_data:
        container["ModelDataUrl"] = model_data
    if env is not None:
        container["Environment"] = env
    return sm.create_model(ModelName=name, PrimaryContainer=container,
                           ExecutionRoleArn=ROLE_ARN, **extra)


def three_names(names):
    return names("model"), names("config"), names("ep")


def deploy(sm, model, config, endpoint, image, model_data=None, env=None, variant_extra=None):
    """CreateModel + CreateEndpointConfig + CreateEndpoint (does not wait)."""
    create_model(sm, model, image, model_data, env)
    sm.create_endpoint_config(EndpointConfigName=config,
                              ProductionVariants=[variant(model, **(variant_extra or {}))])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)


# --------------------------------------------------------------------------- models


def test_model_lifecycle(sm, names, echo_model_url):
    name = names("Model")  # mixed case: the ARN must carry it lower-cased
    env = {"GREETING": "hello", "SAGEMAKER_PROGRAM": "inference.py"}
    try:
        resp = create_model(sm, name, "sagedock/echo:latest", echo_model_url, env)
        assert resp["ModelArn"] == arn("model", name)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200

        d = sm.describe_model(ModelName=name)
        assert d["ModelName"] == name
        assert d["ModelArn"] == arn("model", name)
        assert d["ExecutionRoleArn"] == ROLE_ARN
        assert_recent(d["CreationTime"])
        pc = d["PrimaryContainer"]
        assert pc["Image"] == "sagedock/echo:latest"
        assert pc["ModelDataUrl"] == echo_model_url
        assert pc["Environment"] == env
        assert pc.get("Mode", "SingleModel") == "SingleModel"  # AWS fills in Mode

        sm.delete_model(ModelName=name)
        with pytest.raises(ClientError) as e:
            sm.describe_model(ModelName=name)
        code, msg, status = error_of(e)
        assert code == "ValidationException"
        assert "Could not find model" in msg
        assert status == 400
        # Deleting it again: the same not-found error.
        with pytest.raises(ClientError) as e:
            sm.delete_model(ModelName=name)
        assert error_of(e)[0] == "ValidationException"
        assert "Could not find model" in error_of(e)[1]
    finally:
        cleanup(sm, models=[name])


def test_list_models_filter_sort_page(sm, names):
    # Created in the order c, a, b so that Name order and CreationTime order differ;
    # 1.1 s apart so that CreationTime order is unambiguous even at 1 s resolution.
    created = [names("c"), names("a"), names("b")]
    by_name = sorted(created)
    other = unique_name("other")  # does not contain this test's token
    try:
        for i, n in enumerate(created):
            if i:
                time.sleep(1.1)
            create_model(sm, n, "sagedock/echo:latest")
        create_model(sm, other, "sagedock/echo:latest")

        resp = sm.list_models(NameContains=names.token)
        assert [m["ModelName"] for m in resp["Models"]] == list(reversed(created)), \
            "default order is CreationTime Descending"
        for m in resp["Models"]:
            assert set(m) == {"ModelName", "ModelArn", "CreationTime"}
            assert m["ModelArn"] == arn("model", m["ModelName"])
            assert_recent(m["CreationTime"])
        assert not resp.get("NextToken")

        def names_of(**kw):
            return [m["ModelName"] for m in
                    sm.list_models(NameContains=names.token, **kw)["Models"]]

        assert names_of(SortBy="Name", SortOrder="Ascending") == by_name
        assert names_of(SortBy="Name", SortOrder="Descending") == list(reversed(by_name))
        assert names_of(SortBy="CreationTime", SortOrder="Ascending") == created
        assert names_of(SortBy="CreationTime", SortOrder="Descending") == list(reversed(created))

        # Manual paging: MaxResults=2 -> 2 + NextToken, then the last 1 and no NextToken.
        p1 = sm.list_models(NameContains=names.token, SortBy="Name", SortOrder="Ascending",
                            MaxResults=2)
        assert [m["ModelName"] for m in p1["Models"]] == by_name[:2]
        assert isinstance(p1.get("NextToken"), str) and p1["NextToken"]
        p2 = sm.list_models(NameContains=names.token, SortBy="Name", SortOrder="Ascending",
                            MaxResults=2, NextToken=p1["NextToken"])
        assert [m["ModelName"] for m in p2["Models"]] == by_name[2:]
        assert not p2.get("NextToken")

        # boto3's paginator (paginators-1.json: NextToken / MaxResults / Models).
        pages = list(sm.get_paginator("list_models").paginate(
            NameContains=names.token, SortBy="Name", SortOrder="Ascending",
            PaginationConfig={"PageSize": 1}))
        assert all(len(p["Models"]) <= 1 for p in pages)
        assert [m["ModelName"] for p in pages for m in p["Models"]] == by_name
        assert 3 <= len(pages) <= 4
        full = sm.get_paginator("list_models").paginate(
            NameContains=names.token, SortBy="Name", SortOrder="Ascending",
            PaginationConfig={"PageSize": 2}).build_full_result()
        assert [m["ModelName"] for m in full["Models"]] == by_name

        # The unrelated model is there, just not matched by NameContains.
        assert [m["ModelName"] for m in sm.list_models(NameContains=other)["Models"]] == [other]
    finally:
        cleanup(sm, models=created + [other])


def test_create_model_duplicate(sm, names):
    name = names("model")
    try:
        create_model(sm, name, "sagedock/echo:latest")
        with pytest.raises(ClientError) as e:
            create_model(sm, name, "sagedock/echo:latest")
        code, msg, status = error_of(e)
        assert code == "ValidationException"
        assert "Cannot create already existing model" in msg
        assert arn("model", name) in msg
        assert status == 400
    finally:
        cleanup(sm, models=[name])


@pytest.mark.parametrize("bad", ["bad_name!", "-leading-hyphen", "x" * 64],
                         ids=["bad_name!", "leading-hyphen", "64-chars"])
def test_create_model_bad_name(sm, bad):
    # botocore does not check patterns or max lengths, so these reach the server.
    with pytest.raises(ClientError) as e:
        create_model(sm, bad, "sagedock/echo:latest")
    code, msg, status = error_of(e)
    assert code == "ValidationException"
    assert status == 400
    # AWS: "1 validation error detected: Value 'bad_name!' at 'modelName' failed to
    # satisfy constraint: Member must ..." (CONTRACT.md 3.1)
    assert "modelName" in msg, msg
    assert "failed to satisfy constraint" in msg, msg
    # Nothing was created.
    with pytest.raises(ClientError):
        sm.describe_model(ModelName=bad)


def test_missing_required_member_is_caught_client_side(make_client):
    """botocore validates required members itself: the server never sees these calls."""
    sm = make_client("sagemaker")
    sent = []
    sm.meta.events.register("before-send.sagemaker.*",
                            lambda request, **kw: sent.append(request.url))
    with pytest.raises(botocore.exceptions.ParamValidationError) as e:
        sm.create_model(PrimaryContainer={"Image": "sagedock/echo:latest"},
                        ExecutionRoleArn=ROLE_ARN)
    assert "ModelName" in str(e.value)
    with pytest.raises(botocore.exceptions.ParamValidationError) as e:
        sm.create_endpoint_config(EndpointConfigName="x")
    assert "ProductionVariants" in str(e.value)
    with pytest.raises(botocore.exceptions.ParamValidationError):
        sm.describe_endpoint()
    assert sent == []


# --------------------------------------------------------------------------- endpoint configs


def test_endpoint_config_lifecycle(sm, names):
    model, config = names("model"), names("Config")
    try:
        create_model(sm, model, "sagedock/echo:latest")
        resp = sm.create_endpoint_config(EndpointConfigName=config,
                                         ProductionVariants=[variant(model)])
        assert resp["EndpointConfigArn"] == arn("endpoint-config", config)

        d = sm.describe_endpoint_config(EndpointConfigName=config)
        assert d["EndpointConfigName"] == config
        assert d["EndpointConfigArn"] == arn("endpoint-config", config)
        assert_recent(d["CreationTime"])
        assert len(d["ProductionVariants"]) == 1
        pv = d["ProductionVariants"][0]
        assert pv["VariantName"] == "AllTraffic"
        assert pv["ModelName"] == model
        assert pv["InitialInstanceCount"] == 1
        assert pv["InstanceType"] == "ml.m5.large"
        assert pv["InitialVariantWeight"] == 1.0

        listed = sm.list_endpoint_configs(NameContains=names.token)["EndpointConfigs"]
        assert [c["EndpointConfigName"] for c in listed] == [config]
        assert listed[0]["EndpointConfigArn"] == arn("endpoint-config", config)
        assert_recent(listed[0]["CreationTime"])

        with pytest.raises(ClientError) as e:
            sm.create_endpoint_config(EndpointConfigName=config,
                                      ProductionVariants=[variant(model)])
        code, msg, status = error_of(e)
        assert (code, status) == ("ValidationException", 400)
        assert "Cannot create already existing endpoint configuration" in msg

        sm.delete_endpoint_config(EndpointConfigName=config)
        with pytest.raises(ClientError) as e:
            sm.describe_endpoint_config(EndpointConfigName=config)
        code, msg, status = error_of(e)
        assert (code, status) == ("ValidationException", 400)
        assert "Could not find endpoint configuration" in msg
        assert sm.list_endpoint_configs(NameContains=names.token)["EndpointConfigs"] == []
    finally:
        cleanup(sm, configs=[config], models=[model])


def test_endpoint_config_unknown_model(sm, names):
    config, missing = names("config"), names("no-such-model")
    try:
        with pytest.raises(ClientError) as e:
            sm.create_endpoint_config(EndpointConfigName=config,
                                      ProductionVariants=[variant(missing)])
        code, msg, status = error_of(e)
        assert (code, status) == ("ValidationException", 400)
        assert "Could not find model" in msg
        with pytest.raises(ClientError):
            sm.describe_endpoint_config(EndpointConfigName=config)
    finally:
        cleanup(sm, configs=[config])


# --------------------------------------------------------------------------- endpoints


def test_endpoint_lifecycle_echo(sm, runtime, names, echo_image, echo_model_url):
    model, config, endpoint = names("model"), names("config"), names("Endpoint")
    try:
        create_model(sm, model, echo_image, echo_model_url)
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant(model)])
        resp = sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        assert resp["EndpointArn"] == arn("endpoint", endpoint)

        d = sm.describe_endpoint(EndpointName=endpoint)
        assert d["EndpointStatus"] == "Creating"
        assert d["EndpointName"] == endpoint
        assert d["EndpointArn"] == arn("endpoint", endpoint)
        assert d["EndpointConfigName"] == config
        assert_recent(d["CreationTime"])
        assert_recent(d["LastModifiedTime"])

        d = wait_in_service(sm, endpoint, max_attempts=120)
        assert d["EndpointStatus"] == "InService"
        assert d["EndpointName"] == endpoint
        assert d["EndpointConfigName"] == config
        assert "FailureReason" not in d
        assert len(d["ProductionVariants"]) == 1
        pv = d["ProductionVariants"][0]
        assert pv["VariantName"] == "AllTraffic"
        assert pv["CurrentInstanceCount"] == 1
        assert pv["DesiredInstanceCount"] == 1
        assert pv["CurrentWeight"] == 1.0
        assert pv.get("DesiredWeight", 1.0) == 1.0
        assert d["LastModifiedTime"] >= d["CreationTime"]

        listed = sm.list_endpoints(StatusEquals="InService", NameContains=names.token)["Endpoints"]
        assert [e["EndpointName"] for e in listed] == [endpoint]
        assert listed[0]["EndpointArn"] == arn("endpoint", endpoint)
        assert listed[0]["EndpointStatus"] == "InService"
        assert_recent(listed[0]["CreationTime"])
        assert_recent(listed[0]["LastModifiedTime"])
        assert sm.list_endpoints(StatusEquals="Creating",
                                 NameContains=names.token)["Endpoints"] == []

        # --- InvokeEndpoint (echo: the body comes back with the request's Content-Type)
        body = json.dumps({"instances": [[1, 2, 3]], "note": "caf\u00e9"}).encode()
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=body,
                                    ContentType="application/json", Accept="application/json",
                                    CustomAttributes="trace-id=abc123,c000=xyz")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert r["Body"].read() == body
        assert r["ContentType"] == "application/json"
        assert r["InvokedProductionVariant"] == "AllTraffic"
        assert r["CustomAttributes"] == "trace-id=abc123,c000=xyz"

        blob = bytes(range(256)) * 64
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=blob,
                                    ContentType="application/octet-stream")
        assert r["Body"].read() == blob
        assert r["ContentType"] == "application/octet-stream"
        assert "CustomAttributes" not in r or r["CustomAttributes"] == ""

        # --- a container error becomes ModelError (424) with the container's status/body
        with pytest.raises(runtime.exceptions.ModelError) as e:
            runtime.invoke_endpoint(EndpointName=endpoint, Body=b"{}",
                                    ContentType="application/json", CustomAttributes="status=500")
        code, msg, status = error_of(e)
        assert (code, status) == ("ModelError", 424)
        assert e.value.response.get("OriginalStatusCode") == 500
        assert "forced status 500" in e.value.response.get("OriginalMessage", "")

        # --- DeleteEndpoint -> endpoint_deleted waiter -> not found
        sm.delete_endpoint(EndpointName=endpoint)
        wait_deleted(sm, endpoint, max_attempts=60)
        with pytest.raises(ClientError) as e:
            sm.describe_endpoint(EndpointName=endpoint)
        code, msg, status = error_of(e)
        assert (code, status) == ("ValidationException", 400)
        assert "Could not find endpoint" in msg
        assert sm.list_endpoints(NameContains=names.token)["Endpoints"] == []
        with pytest.raises(runtime.exceptions.ValidationError) as e:
            runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x")
        assert error_of(e)[1] == f"Endpoint {endpoint} of account {ACCOUNT} not found."
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config], models=[model])


def test_invoke_mms_sentiment(sm, runtime, names, mms_image, mms_model_url):
    model, config, endpoint = three_names(names)
    try:
        deploy(sm, model, config, endpoint, mms_image, mms_model_url)
        # MMS is a JVM plus Python workers: allow it more than the echo container.
        wait_in_service(sm, endpoint, max_attempts=300)
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=MMS_SENTENCE,
                                    ContentType="text/plain")
        assert r["InvokedProductionVariant"] == "AllTraffic"
        assert r["ContentType"].startswith("application/json")
        out = json.loads(r["Body"].read())
        assert out["sentiment"] == "positive", out
        assert out["text"] == MMS_SENTENCE.decode()
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config], models=[model])


def test_invoke_unknown_endpoint(runtime, names):
    name = names("missing")
    with pytest.raises(runtime.exceptions.ValidationError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"hello", ContentType="text/plain")
    code, msg, status = error_of(e)
    assert code == "ValidationError"  # runtime's code: not ValidationException
    assert msg == f"Endpoint {name} of account {ACCOUNT} not found."
    assert status == 400


def test_endpoint_fails_when_container_exits(sm, names, echo_image):
    model, config, endpoint = three_names(names)
    try:
        deploy(sm, model, config, endpoint, echo_image, env={"ECHO_FAIL_AT_START": "3"})
        with pytest.raises(WaiterError) as e:
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        assert "terminal failure state" in str(e.value), str(e.value)
        assert e.value.last_response["EndpointStatus"] == "Failed"

        d = sm.describe_endpoint(EndpointName=endpoint)
        assert d["EndpointStatus"] == "Failed"
        reason = d.get("FailureReason", "")
        assert re.search(r"exit\w*\D*\b3\b", reason, re.IGNORECASE), reason
        assert len(reason) <= 1024

        # A Failed endpoint can be deleted; endpoint_deleted must not see "Failed" again
        # (that is one of its failure acceptors).
        sm.delete_endpoint(EndpointName=endpoint)
        wait_deleted(sm, endpoint, max_attempts=60)
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config], models=[model])


@pytest.mark.slow
def test_endpoint_fails_when_never_healthy(sm, names, echo_image):
    """/ping never answers 200: Failed after ContainerStartupHealthCheckTimeoutInSeconds
    (60, the smallest value the API allows)."""
    model, config, endpoint = three_names(names)
    try:
        deploy(
            sm, model, config, endpoint, echo_image, env={"ECHO_PING_STATUS": "503"},
            variant_extra={"ContainerStartupHealthCheckTimeoutInSeconds": 60})
        started = time.monotonic()
        with pytest.raises(WaiterError) as e:
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=endpoint, WaiterConfig={"Delay": 2, "MaxAttempts": 90})
        assert e.value.last_response["EndpointStatus"] == "Failed"
        assert time.monotonic() - started >= 55, "failed before the health-check timeout"
        reason = sm.describe_endpoint(EndpointName=endpoint).get("FailureReason", "")
        assert re.search(r"ping|health", reason, re.IGNORECASE), reason
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config], models=[model])


def test_update_endpoint(sm, runtime, names, echo_image):
    model, config, endpoint = three_names(names)
    config2 = names("config2")
    try:
        deploy(sm, model, config, endpoint, echo_image)
        wait_in_service(sm, endpoint)

        # --- UpdateEndpointWeightsAndCapacities: weight 1 -> 2, 1 -> 2 instances
        resp = sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2.0,
                                          "DesiredInstanceCount": 2}])
        assert resp["EndpointArn"] == arn("endpoint", endpoint)
        assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] in (
            "Updating", "InService")
        d = wait_in_service(sm, endpoint)
        assert d["EndpointConfigName"] == config
        pv = d["ProductionVariants"][0]
        assert pv["VariantName"] == "AllTraffic"
        assert pv["CurrentWeight"] == 2.0
        assert pv["CurrentInstanceCount"] == 2
        assert pv["DesiredInstanceCount"] == 2
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"after-scale")
        assert r["Body"].read() == b"after-scale"

        # Unknown variant -> ValidationException, endpoint untouched.
        with pytest.raises(ClientError) as e:
            sm.update_endpoint_weights_and_capacities(
                EndpointName=endpoint,
                DesiredWeightsAndCapacities=[{"VariantName": "NoSuchVariant",
                                              "DesiredWeight": 1.0}])
        assert error_of(e)[0] == "ValidationException"
        assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"

        # --- UpdateEndpoint to a new config with another variant name
        sm.create_endpoint_config(EndpointConfigName=config2,
                                  ProductionVariants=[variant(model, name="Blue")])
        resp = sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config2)
        assert resp["EndpointArn"] == arn("endpoint", endpoint)
        d = sm.describe_endpoint(EndpointName=endpoint)
        assert d["EndpointStatus"] in ("Updating", "InService")
        d = wait_in_service(sm, endpoint)
        assert d["EndpointConfigName"] == config2
        assert [v["VariantName"] for v in d["ProductionVariants"]] == ["Blue"]
        assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        assert "PendingDeploymentSummary" not in d
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"after-update")
        assert r["Body"].read() == b"after-update"
        assert r["InvokedProductionVariant"] == "Blue"
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config, config2], models=[model])


def test_tags_on_model(sm, names):
    name = names("model")
    try:
        model_arn = create_model(sm, name, "sagedock/echo:latest",
                                 Tags=[{"Key": "team", "Value": "ml"}])["ModelArn"]

        def tags():
            return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model_arn)["Tags"]}

        assert tags() == {"team": "ml"}
        resp = sm.add_tags(ResourceArn=model_arn,
                           Tags=[{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "ai"}])
        assert {t["Key"]: t["Value"] for t in resp["Tags"]} == {"env": "test", "team": "ai"}
        assert tags() == {"team": "ai", "env": "test"}
        sm.delete_tags(ResourceArn=model_arn, TagKeys=["team"])
        assert tags() == {"env": "test"}
        sm.delete_tags(ResourceArn=model_arn, TagKeys=["env"])
        assert tags() == {}
    finally:
        cleanup(sm, models=[name])


def test_unimplemented_operation_is_a_client_error(sm):
    with pytest.raises(ClientError) as e:
        sm.list_processing_jobs()
    code, msg, status = error_of(e)
    assert isinstance(code, str) and code.strip(), e.value.response
    assert status == 400
    content_type = e.value.response["ResponseMetadata"]["HTTPHeaders"].get("content-type", "")
    assert "html" not in content_type.lower()
    assert "json" in content_type.lower(), content_type
