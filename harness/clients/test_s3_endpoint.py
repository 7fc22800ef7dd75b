"""`sagedock up --s3-endpoint URL`: model data downloaded from a real S3-compatible server
on loopback (moto's server mode), as a gzip'd tarball (ModelDataUrl) and as an
uncompressed prefix (ModelDataSource.S3DataSource S3Prefix / CompressionType None); and
the SageMaker SDK's MXNetModel and SKLearnModel, which need S3 themselves (they repack the
archive with the entry point).

sagedock signs its S3 requests with a dummy key here (no AWS credentials in its
environment); moto accepts any key. Nothing leaves this machine.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time

import boto3
import pytest
from moto.server import ThreadedMotoServer

from conftest import _stop
from support import (MMS_FIXTURE, MMS_SENTENCE, MXNET_FIXTURE, ORIGINAL_ENV, REGION, ROLE_ARN,
                     SKLEARN_FIXTURE, UNSET_ENV, cleanup, pack, sagedock_bin, wait_deleted)

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bucket(s3_server, tmp_path_factory, mms_image):
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name=REGION)
    s3.create_bucket(Bucket="models")
    archive = pack(MMS_FIXTURE, tmp_path_factory.mktemp("s3") / "model.tar.gz")
    s3.upload_file(str(archive), "models", "sentiment/model.tar.gz")
    for path in sorted(p for p in MMS_FIXTURE.rglob("*") if p.is_file()):
        s3.upload_file(str(path), "models", "sentiment-dir/" + path.relative_to(MMS_FIXTURE).as_posix())
    return s3_server


@pytest.fixture(scope="module")
def sagedock_s3(bucket, tmp_path_factory):
    root = tmp_path_factory.mktemp("sagedock-s3")
    cmd = [str(sagedock_bin()), "up", "--port", "0", "--data-dir", str(root / "data"),
           "--s3-endpoint", bucket]
    env = {k: v for k, v in ORIGINAL_ENV.items() if k not in UNSET_ENV and k not in CREDENTIAL_KEYS}
    env["SAGEDOCK_CACHE_DIR"] = str(root / "cache")
    stderr = open(root / "stderr.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=env,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on (http://\S+)", line)
        url = m.group(1) if m else None
    if url is None:
        _stop(proc, 10)
        pytest.fail(f"`{' '.join(cmd)}` did not start:\n{(root / 'stderr.log').read_text()}")
    try:
        yield url
    finally:
        status = _stop(proc, 60)
        proc.stdout.close()
        stderr.close()
        assert status == 0, (root / "stderr.log").read_text()


@pytest.mark.parametrize("container", [
    {"ModelDataUrl": "s3://models/sentiment/model.tar.gz"},
    {"ModelDataSource": {"S3DataSource": {"S3Uri": "s3://models/sentiment-dir/", "S3DataType": "S3Prefix",
                                          "CompressionType": "None"}}},
], ids=["tarball", "uncompressed-prefix"])
def test_model_data_comes_from_the_s3_endpoint(sagedock_s3, container, names):
    kw = dict(endpoint_url=sagedock_s3, region_name=REGION)
    sm, runtime = boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw)
    name = names("s3")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "sagedock/mms:latest", **container})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        reply = runtime.invoke_endpoint(EndpointName=name, Body=MMS_SENTENCE, ContentType="text/plain")
        assert b'"sentiment": "positive"' in reply["Body"].read()
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_a_missing_object_fails_the_endpoint_with_the_s3_error(sagedock_s3, names):
    kw = dict(endpoint_url=sagedock_s3, region_name=REGION)
    sm = boto3.client("sagemaker", **kw)
    name = names("s3-missing")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "sagedock/mms:latest",
                                                      "ModelDataUrl": "s3://models/nope/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    deadline = time.monotonic() + 60
    while True:
        described = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] != "Creating" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert described["EndpointStatus"] == "Failed"
    assert "s3://models/nope/model.tar.gz" in described["FailureReason"]
    sm.delete_endpoint(EndpointName=name)


def sdk_session(sagedock_url, s3_url, monkeypatch):
    """(sagemaker.Session, boto3.Session, calls): SageMaker clients on sagedock, every S3
    client (the SDK's own included) on moto through AWS_ENDPOINT_URL_S3, no telemetry;
    `calls` records each (service, operation) made."""
    import sagemaker

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
    boto_session = boto3.Session(region_name=REGION)
    calls = []
    boto_session.events.register(
        "before-call", lambda model, **_: calls.append((model.service_model.service_name, model.name)))
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker", endpoint_url=sagedock_url),
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=sagedock_url),
        default_bucket="models",
        sagemaker_config={"SchemaVersion": "1.0",
                          "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}},
    )
    return session, boto_session, calls


def test_the_mxnet_walkthrough_through_the_sdk(sagedock_s3, bucket, mxnet_image, names, tmp_path,
                                              monkeypatch):
    """The first walkthrough's MXNet half, step by step: the checkpoint saved with
    save_checkpoint + model-shapes.json, tarred flat (its `flatten` filter), uploaded to S3,
    `MXNetModel(model_data, role, entry_point='classifier.py').deploy()`, `predict(sample)`.
    The SDK downloads the archive, adds classifier.py under code/ and uploads the result
    (through moto here); sagedock fetches that from S3 and serves it on sagedock/mxnet (AWS's
    MXNet serving toolkit on real MXNet)."""
    from sagemaker.mxnet import MXNetModel

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("model-symbol.json", "model-0000.params", "model-shapes.json"):
        shutil.copy(MXNET_FIXTURE / name, model_dir / name)

    def flatten(tarinfo):
        tarinfo.name = os.path.basename(tarinfo.name)
        return tarinfo

    monkeypatch.chdir(tmp_path)
    with tarfile.open("model.tar.gz", "w:gz") as tar:
        tar.add("model", filter=flatten)
    (tmp_path / "classifier.py").write_text('"""The entry point: the default handlers serve."""\n')

    session, boto_session, calls = sdk_session(sagedock_s3, bucket, monkeypatch)
    boto_session.client("s3").upload_file("model.tar.gz", "models", "byom/model/model.tar.gz")
    endpoint = names("mxnet-sdk")
    model = MXNetModel(model_data="s3://models/byom/model/model.tar.gz", role=ROLE_ARN,
                       entry_point="classifier.py", framework_version="1.9.0", py_version="py38",
                       image_uri=mxnet_image, code_location="s3://models/byom/code",
                       sagemaker_session=session)
    sm = session.sagemaker_client
    try:
        # wait=False and boto3's waiter: deploy(wait=True) sleeps 30 s before its first poll.
        predictor = model.deploy(initial_instance_count=1, instance_type="ml.m4.xlarge",
                                 endpoint_name=endpoint, wait=False)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        probabilities = predictor.predict([[6.4, 3.2, 4.5, 1.5]])
        assert [round(p, 4) for p in probabilities[0]] == [0.033, 0.663, 0.3039], probabilities

        # What sagedock served is the SDK's repacked archive, with the entry point in code/.
        container = sm.describe_model(ModelName=model.name)["PrimaryContainer"]
        assert container["Environment"]["SAGEMAKER_PROGRAM"] == "classifier.py"
        repacked = container["ModelDataUrl"]
        assert repacked.startswith("s3://models/byom/code/") and repacked != model.model_data
        bucket_name, key = repacked[len("s3://"):].split("/", 1)
        boto_session.client("s3").download_file(bucket_name, key, str(tmp_path / "repacked.tar.gz"))
        with tarfile.open(tmp_path / "repacked.tar.gz") as tar:
            assert "code/classifier.py" in tar.getnames(), tar.getnames()

        session.delete_endpoint(predictor.endpoint_name)
        wait_deleted(sm, endpoint)
        services = sorted({service for service, _ in calls})
        assert services == ["s3", "sagemaker", "sagemaker-runtime"], calls
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[endpoint],
                models=[model.name] if model.name else [])


def test_a_scikit_learn_model_through_the_sdk(sagedock_s3, bucket, sklearn_image, names, tmp_path,
                                             monkeypatch):
    """A training job's model.tar.gz (model.joblib alone) deployed with
    `SKLearnModel(model_data, role, entry_point="inference.py").deploy()`: the SDK does not
    repack; it uploads the entry point as sourcedir.tar.gz and points
    SAGEMAKER_SUBMIT_DIRECTORY at its s3:// URL, which the container downloads at start in
    SageMaker. Containers here have no AWS credentials: sagedock fetches it (from moto here)
    and mounts it. sagedock/sklearn (nginx, gunicorn, the SageMaker containers library)
    installs it and serves the fixture's LinearRegression."""
    from sagemaker.sklearn import SKLearnModel

    monkeypatch.chdir(tmp_path)
    with tarfile.open("model.tar.gz", "w:gz") as tar:
        tar.add(SKLEARN_FIXTURE / "model.joblib", arcname="model.joblib")
    shutil.copy(SKLEARN_FIXTURE / "code" / "inference.py", tmp_path / "inference.py")
    session, boto_session, calls = sdk_session(sagedock_s3, bucket, monkeypatch)
    boto_session.client("s3").upload_file("model.tar.gz", "models", "sk/model.tar.gz")
    endpoint = names("sklearn-sdk")
    model = SKLearnModel(model_data="s3://models/sk/model.tar.gz", role=ROLE_ARN,
                         entry_point="inference.py", framework_version="1.2-1",
                         image_uri=sklearn_image, code_location="s3://models/sk/code",
                         sagemaker_session=session)
    sm = session.sagemaker_client
    try:
        # wait=False and boto3's waiter: deploy(wait=True) sleeps 30 s before its first poll.
        predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                 endpoint_name=endpoint, wait=False)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        # SKLearnPredictor speaks NPY both ways.
        prediction = predictor.predict([[6.4, 3.2, 4.5, 1.5], [0, 0, 0, 0]])
        assert [round(float(v), 4) for v in prediction] == [9.8, 2.0], prediction
        environment = sm.describe_model(ModelName=model.name)["PrimaryContainer"]["Environment"]
        assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
        assert re.fullmatch(r"s3://models/sk/code/[^/]+/sourcedir\.tar\.gz",
                            environment["SAGEMAKER_SUBMIT_DIRECTORY"]), environment
        session.delete_endpoint(predictor.endpoint_name)
        wait_deleted(sm, endpoint)
        assert sorted({service for service, _ in calls}) == ["s3", "sagemaker", "sagemaker-runtime"]
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[endpoint],
                models=[model.name] if model.name else [])
