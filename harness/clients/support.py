"""Constants and helpers shared by the client suites (fixtures live in conftest.py)."""

import contextlib
import datetime
import os
import re
import secrets
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
ECHO_IMAGE = "sagedock/echo:latest"
MMS_IMAGE = "sagedock/mms:latest"
MMS_FIXTURE = REPO / "fixtures" / "models" / "mms"
TENSORFLOW_IMAGE = "sagedock/tensorflow:latest"
TENSORFLOW_FIXTURE = REPO / "fixtures" / "models" / "tensorflow"
MXNET_IMAGE = "sagedock/mxnet:latest"
MXNET_FIXTURE = REPO / "fixtures" / "models" / "mxnet"
SKLEARN_IMAGE = "sagedock/sklearn:latest"
SKLEARN_FIXTURE = REPO / "fixtures" / "models" / "sklearn"
MMS_SENTENCE = b"This is an amazing movie."

# The environment pytest was started with, before the fixtures below changed it.
ORIGINAL_ENV = dict(os.environ)

# Dummy credentials: sagedock does not check signatures, botocore only needs something
# to sign with. Never real ones.
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIASAGEDOCKTEST0000",
    "AWS_SECRET_ACCESS_KEY": "sagedock-dummy-secret-access-key-000000000",
    "AWS_SESSION_TOKEN": "sagedock-dummy-session-token",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # Nothing from the developer's ~/.aws may leak in (profiles, SSO, credential_process).
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    # Any AWS client created WITHOUT an explicit endpoint_url (by a test, the SDK or the
    # CLI) lands here: a local port nobody listens on, so it fails fast and offline.
    "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
    # Anything else that tries the internet over HTTP(S) (e.g. SageMaker SDK telemetry
    # through `requests`) goes to a dead local proxy; loopback (sagedock) bypasses it.
    "HTTP_PROXY": "http://127.0.0.1:1",
    "HTTPS_PROXY": "http://127.0.0.1:1",
    "http_proxy": "http://127.0.0.1:1",
    "https_proxy": "http://127.0.0.1:1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
UNSET_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
             "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
             "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_S3", "ALL_PROXY", "all_proxy",
             # SageMaker SDK defaults-config overrides (may point at S3): not in tests.
             "SAGEMAKER_ADMIN_CONFIG_OVERRIDE", "SAGEMAKER_USER_CONFIG_OVERRIDE")


def in_ci():
    return os.environ.get("CI", "").strip().lower() == "true"


def sagedock_bin():
    return Path(os.environ.get("SAGEDOCK_BIN") or REPO / "target" / "debug" / "sagedock")


def describe_cmd(cmd):
    return " ".join(str(c) for c in cmd)


def client_env(**extra):
    """Env for child processes that act as AWS clients (the aws CLI): dummy credentials,
    no user config, the offline guard."""
    env = {k: v for k, v in ORIGINAL_ENV.items() if k not in UNSET_ENV}
    env.update(DUMMY_ENV)
    env.update(extra)
    return env


def arn(kind, name):
    """The ARN sagedock must return: region, account, kind, lower-cased name."""
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def error_of(excinfo_or_exc):
    """(code, message, http_status) of a botocore ClientError (or pytest ExceptionInfo)."""
    exc = getattr(excinfo_or_exc, "value", excinfo_or_exc)
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return err.get("Code"), err.get("Message"), status


# --------------------------------------------------------------------------- Docker

_docker_cache = {}


def docker_problem(image):
    """None when the Docker engine answers and has `image`, else what is wrong."""
    if "engine" not in _docker_cache:
        docker = shutil.which("docker", path=ORIGINAL_ENV.get("PATH"))
        if docker is None:
            _docker_cache["engine"] = "the `docker` client is not on PATH"
        else:
            try:
                p = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                                   capture_output=True, text=True, timeout=30, env=ORIGINAL_ENV)
                _docker_cache["engine"] = None if p.returncode == 0 else (
                    f"no Docker engine answers (`docker info` exit {p.returncode}: "
                    f"{p.stderr.strip()[-300:]}); start one with harness/ci/docker.sh")
            except subprocess.TimeoutExpired:
                _docker_cache["engine"] = "`docker info` did not answer within 30 s"
    if _docker_cache["engine"]:
        return _docker_cache["engine"]
    if image not in _docker_cache:
        p = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                           capture_output=True, text=True, timeout=30, env=ORIGINAL_ENV)
        _docker_cache[image] = None if p.returncode == 0 else (
            f"image {image} is not in the local Docker engine; build it with "
            f"harness/images/build-all.sh")
    return _docker_cache[image]


def require_image(image):
    """Returns `image`; skips the test when Docker or the image is missing, FAILS under CI=true."""
    problem = docker_problem(image)
    if problem:
        if in_ci():
            pytest.fail(f"{problem} (CI=true: tests that need Docker fail, they are not skipped)",
                        pytrace=False)
        pytest.skip(problem)
    return image


# --------------------------------------------------------------------------- model data


def pack(model_dir, output):
    """`$SAGEDOCK_BIN pack MODEL_DIR -o OUTPUT`; fails the test with its stderr if it fails."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(sagedock_bin()), "pack", str(model_dir), "-o", str(output)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ORIGINAL_ENV)
    if p.returncode != 0 or not output.is_file():
        pytest.fail(f"`{describe_cmd(cmd)}` failed with status {p.returncode}\n"
                    f"--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}", pytrace=False)
    return output


# --------------------------------------------------------------------------- names


def _sanitize(text, limit):
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")
    return text[:limit].strip("-") or "t"


class Names:
    """Unique resource names for one test: `<test>-<kind>-<token>`.

    `token` is random per test (8 hex digits) and shared by every name of the test, so
    `NameContains=names.token` finds exactly this test's resources. Names satisfy the
    SageMaker name regexes and stay within 63 characters; `kind` keeps its case.
    """

    def __init__(self, label):
        self.label = _sanitize(label, 28)
        self.token = secrets.token_hex(4)

    def __call__(self, kind="r"):
        name = f"{self.label}-{_sanitize(kind, 20)}-{self.token}"
        assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name), name
        return name


def unique_name(kind="r"):
    """A one-off unique name (outside a test)."""
    return Names("sdt")(kind)


# --------------------------------------------------------------------------- waiting, cleanup


def wait_in_service(sm, name, max_attempts=120, delay=1):
    """boto3's `endpoint_in_service` waiter with Delay=1; a WaiterError fails the test
    with the last DescribeEndpoint (status, FailureReason) in the message. Returns a
    fresh DescribeEndpoint."""
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts})
    except WaiterError as e:
        pytest.fail(f"endpoint {name} did not reach InService: {e}\n"
                    f"last response: {e.last_response}")
    return sm.describe_endpoint(EndpointName=name)


def wait_deleted(sm, name, max_attempts=60, delay=1):
    """boto3's `endpoint_deleted` waiter with Delay=1 (raises WaiterError)."""
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts})


def _quietly(what, fn, **kwargs):
    try:
        fn(**kwargs)
    except ClientError as e:
        code, msg, _ = error_of(e)
        if code == "ValidationException" and "Could not find" in (msg or ""):
            return  # already gone
        warnings.warn(f"cleanup: {what} {kwargs}: {code}: {msg}")
    except Exception as e:  # noqa: BLE001 - cleanup must not mask the test's own failure
        warnings.warn(f"cleanup: {what} {kwargs}: {e!r}")


def cleanup(sm, endpoints=(), configs=(), models=(), wait=True):
    """Deletes what a test created (endpoints first), ignoring what is already gone.

    For `finally:` blocks: never raises, so the test's own failure stays visible; a
    cleanup that fails for another reason becomes a warning."""
    for name in endpoints:
        if not name:
            continue
        _quietly("DeleteEndpoint", sm.delete_endpoint, EndpointName=name)
        if wait:
            with contextlib.suppress(Exception):
                wait_deleted(sm, name, max_attempts=60)
    for name in configs:
        if name:
            _quietly("DeleteEndpointConfig", sm.delete_endpoint_config, EndpointConfigName=name)
    for name in models:
        if name:
            _quietly("DeleteModel", sm.delete_model, ModelName=name)


def assert_recent(ts, slack_s=600):
    """A botocore-parsed timestamp: a timezone-aware datetime close to now."""
    assert isinstance(ts, datetime.datetime), f"{ts!r} is not a datetime"
    assert ts.tzinfo is not None, f"{ts!r} has no timezone"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - ts).total_seconds()) < slack_s, f"{ts} is not close to now ({now})"


def variant(model_name, name="AllTraffic", count=1, weight=1.0, **extra):
    """A ProductionVariant as the suites create them (ml.m5.large)."""
    v = {"VariantName": name, "ModelName": model_name, "InitialInstanceCount": count,
         "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}
    v.update(extra)
    return v
