"""The SageMaker Python SDK (v2 API: Session, Model, Predictor) against `sagedock up`.

How the SDK is kept off the network (details in README.md):
- `sagemaker.Session(boto_session=..., sagemaker_client=..., sagemaker_runtime_client=...)`
  gets clients whose endpoint_url is sagedock, plus `default_bucket=` (so nothing can
  ask STS GetCallerIdentity for the account to name `sagemaker-{region}-{account}`, nor
  S3 to create that bucket) and an explicit `sagemaker_config=` (so the Session reads no
  defaults config, local or in S3, and opts out of telemetry: SDK entry points decorated
  with `_telemetry_emitter` call STS GetCallerIdentity and GET
  https://sm-pysdk-t-<region>.s3.<region>.amazonaws.com/telemetry unless opted out;
  `Model.deploy` is not decorated in 2.257.7, the opt-out is there for safety and a
  spy asserts no telemetry request is attempted).
- `role=` is a full ARN, so `expand_role` never calls IAM.
- `deploy(wait=False)` then `session.wait_for_endpoint(name, poll=1)`: the SDK's own
  wait sleeps `poll` (30 s by default) before its first DescribeEndpoint.
- Every AWS call made through the boto3 session is recorded; the test asserts that only
  SageMaker hosting operations were called (no STS, S3, IAM, CloudWatch Logs).
Nothing is patched or stubbed: with these arguments the SDK needs nothing sagedock
does not serve. (The session-wide offline guard in conftest.py would make any stray
call fail fast and locally.)
"""

import json

import boto3
import pytest

from support import (REGION, ROLE_ARN, TENSORFLOW_FIXTURE, arn, cleanup, error_of, in_ci, pack,
                     wait_deleted)

try:
    import sagemaker
    from sagemaker.deserializers import BytesDeserializer, JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.multidatamodel import MultiDataModel
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer, JSONSerializer
    SDK_IMPORT_ERROR = None
except ImportError as e:  # not installed, or a v3 SDK without the v2 classes
    SDK_IMPORT_ERROR = e

if SDK_IMPORT_ERROR is not None:
    _why = (f"the SageMaker Python SDK v2 is not importable ({SDK_IMPORT_ERROR}); "
            f"harness/clients/run.sh installs the pinned version")
    if in_ci():
        raise ImportError(_why)  # a collection error: CI must not silently skip the suite
    pytest.skip(_why, allow_module_level=True)

# The SDK defaults config: schema version, telemetry opt-out, nothing else.
SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
DEFAULT_BUCKET = "sagedock-sdk-tests"

# What the SDK may call for Model.deploy / Predictor.predict / delete_*.
ALLOWED_CALLS = {
    ("sagemaker", "CreateModel"), ("sagemaker", "CreateEndpointConfig"),
    ("sagemaker", "CreateEndpoint"), ("sagemaker", "DescribeEndpoint"),
    ("sagemaker", "DescribeEndpointConfig"), ("sagemaker", "DescribeModel"),
    ("sagemaker", "DeleteModel"), ("sagemaker", "DeleteEndpointConfig"),
    ("sagemaker", "DeleteEndpoint"), ("sagemaker-runtime", "InvokeEndpoint"),
}


@pytest.fixture
def sdk(sagedock, aws_env, echo_image):
    """(sagemaker.Session, calls): a Session wired to sagedock; `calls` records every
    (service, operation) made by any client of its boto3 session."""
    boto_session = boto3.Session(region_name=REGION)  # dummy credentials from the env
    calls = []

    def record(model, **kwargs):
        calls.append((model.service_model.service_name, model.name))

    # Registered on the session before any client exists: every client created from it
    # (ours and the ones the SDK creates itself: s3, sts, ...) inherits the handler.
    boto_session.events.register("before-call", record)
    sm_client = boto_session.client("sagemaker", endpoint_url=sagedock.url)
    runtime_client = boto_session.client("sagemaker-runtime", endpoint_url=sagedock.url)
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=sm_client,
        sagemaker_runtime_client=runtime_client,
        default_bucket=DEFAULT_BUCKET,
        sagemaker_config=SDK_CONFIG,
    )
    assert session.boto_region_name == REGION
    return session, calls


@pytest.fixture
def telemetry_attempts(monkeypatch):
    """Records (does not block) every telemetry request the SDK would send."""
    from sagemaker.telemetry import telemetry_logging

    attempts = []
    real = telemetry_logging._send_telemetry_request

    def spy(*args, **kwargs):
        attempts.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(telemetry_logging, "_send_telemetry_request", spy)
    return attempts


def test_sdk_version_is_v2():
    assert sagemaker.__version__.startswith("2."), sagemaker.__version__


def test_sdk_deploy_predict_delete(sdk, sm, names, echo_image, echo_model_url,
                                   telemetry_attempts):
    session, calls = sdk
    model_name, endpoint = names("model"), names("ep")
    try:
        model = Model(image_uri=echo_image, model_data=echo_model_url, role=ROLE_ARN,
                      name=model_name, env={"FROM_SDK": "1"}, sagemaker_session=session)
        model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                     endpoint_name=endpoint, wait=False)
        assert model.endpoint_name == endpoint

        desc = session.wait_for_endpoint(endpoint, poll=1)
        assert desc["EndpointStatus"] == "InService"
        assert desc["EndpointArn"] == arn("endpoint", endpoint)
        # The SDK names the endpoint config after the endpoint.
        assert desc["EndpointConfigName"] == endpoint

        d = sm.describe_model(ModelName=model_name)
        assert d["PrimaryContainer"]["Image"] == echo_image
        assert d["PrimaryContainer"]["ModelDataUrl"] == echo_model_url
        assert d["PrimaryContainer"]["Environment"] == {"FROM_SDK": "1"}
        assert d["ExecutionRoleArn"] == ROLE_ARN
        pv = sm.describe_endpoint_config(EndpointConfigName=endpoint)["ProductionVariants"][0]
        assert pv["ModelName"] == model_name
        assert pv["InstanceType"] == "ml.m5.large"
        assert pv["InitialInstanceCount"] == 1

        raw = Predictor(endpoint_name=endpoint, sagemaker_session=session,
                        serializer=IdentitySerializer(content_type="application/octet-stream"),
                        deserializer=BytesDeserializer())
        payload = b"\x00\x01raw bytes from the SageMaker SDK\xff"
        assert raw.predict(payload) == payload

        as_json = Predictor(endpoint_name=endpoint, sagemaker_session=session,
                            serializer=JSONSerializer(), deserializer=JSONDeserializer())
        assert as_json.predict({"instances": [1, 2, 3]}) == {"instances": [1, 2, 3]}

        # delete_model first: it finds the model names through the endpoint config,
        # which delete_endpoint() removes.
        raw.delete_model()
        raw.delete_endpoint()  # also deletes the endpoint config
        wait_deleted(sm, endpoint)
        for call, kw in ((sm.describe_endpoint, {"EndpointName": endpoint}),
                         (sm.describe_endpoint_config, {"EndpointConfigName": endpoint}),
                         (sm.describe_model, {"ModelName": model_name})):
            with pytest.raises(sm.exceptions.ClientError) as e:
                call(**kw)
            assert error_of(e)[0] == "ValidationException"

        unexpected = sorted(set(calls) - ALLOWED_CALLS)
        assert unexpected == [], f"the SDK called operations sagedock does not serve: {unexpected}"
        assert ("sagemaker", "CreateModel") in calls
        assert ("sagemaker-runtime", "InvokeEndpoint") in calls
        assert telemetry_attempts == [], "telemetry opt-out did not take effect"
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[endpoint], models=[model_name])


def test_sdk_session_construction_is_offline(sdk):
    """Building the Session makes no AWS call at all."""
    _, calls = sdk
    assert calls == []


def test_sdk_create_model_twice_is_tolerated(sdk, sm, names, echo_image):
    """Session.create_model logs and continues on `Cannot create already existing model`
    (it matches that message text): sagedock's duplicate error must carry it."""
    session, _ = sdk
    name = names("model")
    try:
        container = {"Image": echo_image}
        assert session.create_model(name, ROLE_ARN, container) == name
        assert session.create_model(name, ROLE_ARN, container) == name
        assert sm.describe_model(ModelName=name)["ModelName"] == name
    finally:
        cleanup(sm, models=[name])


def test_sdk_multi_data_model(sdk, sagedock, sm, names, echo_image, tmp_path, telemetry_attempts):
    """MultiDataModel (a multi-model endpoint) deployed by the SDK; Predictor.predict with
    target_model loads each model on first use."""
    session, calls = sdk
    name, token = names("mme"), names.token
    for target in ("a", "b"):
        src = tmp_path / target
        src.mkdir()
        (src / f"{target}.txt").write_text(f"model {target}\n")
        pack(src, sagedock.s3_root / "sdk-mme" / token / f"{target}.tar.gz")
    try:
        mdm = MultiDataModel(name=name, model_data_prefix=f"s3://sdk-mme/{token}/",
                             image_uri=echo_image, role=ROLE_ARN, sagemaker_session=session)
        mdm.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
        assert session.wait_for_endpoint(name, poll=1)["EndpointStatus"] == "InService"
        container = sm.describe_model(ModelName=name)["PrimaryContainer"]
        assert (container["Mode"], container["ModelDataUrl"]) == ("MultiModel", f"s3://sdk-mme/{token}/")

        predictor = Predictor(endpoint_name=name, sagemaker_session=session,
                              serializer=IdentitySerializer(content_type="text/plain"),
                              deserializer=JSONDeserializer())
        for target in ("a", "b"):
            report = predictor.predict(b"x", target_model=f"{target}.tar.gz",
                                       custom_attributes="report=1")
            assert report["model_dir"]["files"] == [f"{target}.txt"], report["model_dir"]
        unexpected = sorted(set(calls) - ALLOWED_CALLS)
        assert unexpected == [], f"the SDK called operations sagedock does not serve: {unexpected}"
        assert telemetry_attempts == [], "telemetry opt-out did not take effect"
    finally:
        cleanup(sm, endpoints=[name], configs=[name], models=[name])


def test_sdk_tensorflow_model_on_real_tensorflow(sdk, sagedock, sm, names, tensorflow_image):
    """The TensorFlow walkthroughs' path: a SavedModel in model.tar.gz, `TensorFlowModel(...)
    .deploy()`, `predict({"instances": ...})`, on `sagedock/tensorflow` (real TensorFlow
    computing the fixture's y = 0.5 x + 2)."""
    from sagemaker.tensorflow import TensorFlowModel

    session, calls = sdk
    pack(TENSORFLOW_FIXTURE, sagedock.s3_root / "models" / "tf" / "model.tar.gz")
    endpoint = names("tf-ep")
    # code_location: without it, TensorFlowModel asks S3 for the session's default bucket
    # (even with no entry_point to upload), and this suite allows no S3 call.
    model = TensorFlowModel(model_data="s3://models/tf/model.tar.gz", role=ROLE_ARN,
                            image_uri=tensorflow_image, code_location="s3://models/code",
                            sagemaker_session=session)
    try:
        predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                 endpoint_name=endpoint)
        assert predictor.predict({"instances": [[6.4, 3.2, 4.5, 1.5]]}) == \
            {"predictions": [[5.2, 3.6, 4.25, 2.75]]}
        # The TensorFlow predictor's own helpers send TensorFlow Serving's formats too.
        assert predictor.predict({"inputs": {"x": [[0, 0, 0, 0]]}}) == {"outputs": [[2.0, 2.0, 2.0, 2.0]]}
        predictor.delete_model()
        predictor.delete_endpoint()
        wait_deleted(sm, endpoint)
        unexpected = sorted(set(calls) - ALLOWED_CALLS)
        assert unexpected == [], f"the SDK called operations sagedock does not serve: {unexpected}"
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[endpoint], models=[model.name] if model.name else [])
