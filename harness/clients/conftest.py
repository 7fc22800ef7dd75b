"""Fixtures for the client suites: one `sagedock up` per test session, boto3 clients
pointed at it, model archives in its S3 root, unique names, and an offline guard so
that no test can reach AWS (or anything else off this machine).

Environment:
  SAGEDOCK_BIN   the sagedock binary (default: <repo>/target/debug/sagedock)
  CI=true        a missing Docker engine or test image FAILS the tests that need it
                 (otherwise they are skipped)
"""

import os
import queue
import re
import signal
import subprocess
import threading
import time

import boto3
import botocore.config
import pytest

from support import (ACCOUNT, DUMMY_ENV, ECHO_IMAGE, MMS_FIXTURE, MMS_IMAGE, ORIGINAL_ENV,
                     MXNET_IMAGE, SKLEARN_IMAGE, TENSORFLOW_IMAGE,
                     REGION, UNSET_ENV, Names, describe_cmd, pack, require_image, sagedock_bin)

STARTUP_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 60


def _apply_aws_env():
    for key in UNSET_ENV:
        os.environ.pop(key, None)
    os.environ.update(DUMMY_ENV)
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


def pytest_configure(config):
    # Already here, before the test modules are imported (test_sdk imports the SDK).
    _apply_aws_env()


def pytest_unconfigure(config):
    os.environ.clear()
    os.environ.update(ORIGINAL_ENV)


@pytest.fixture(scope="session", autouse=True)
def aws_env():
    """Dummy credentials, no user AWS config, and the offline guard, for the whole session
    (in os.environ, so boto3, the SageMaker SDK and child processes all see them; also
    applied at pytest_configure time, before test modules are imported)."""
    _apply_aws_env()
    yield dict(DUMMY_ENV)


# --------------------------------------------------------------------------- Docker


@pytest.fixture(scope="session")
def echo_image():
    """`sagedock/echo:latest`; skips (fails under CI=true) when Docker or the image is missing."""
    return require_image(ECHO_IMAGE)


@pytest.fixture(scope="session")
def mms_image():
    """`sagedock/mms:latest`; skips (fails under CI=true) when Docker or the image is missing."""
    return require_image(MMS_IMAGE)


@pytest.fixture(scope="session")
def tensorflow_image():
    """`sagedock/tensorflow:latest`; skips (fails under CI=true) when Docker or the image is missing."""
    return require_image(TENSORFLOW_IMAGE)


@pytest.fixture(scope="session")
def mxnet_image():
    """`sagedock/mxnet:latest`; skips (fails under CI=true) when Docker or the image is missing."""
    return require_image(MXNET_IMAGE)


@pytest.fixture(scope="session")
def sklearn_image():
    """`sagedock/sklearn:latest`; skips (fails under CI=true) when Docker or the image is missing."""
    return require_image(SKLEARN_IMAGE)


# --------------------------------------------------------------------------- sagedock up


class Sagedock:
    """A running `sagedock up`: its URL, directories and log files."""

    def __init__(self, url, proc, cmd, root, stdout_log, stderr_log):
        self.url = url
        self.proc = proc
        self.cmd = cmd
        self.root = root
        self.data_dir = root / "data"
        self.s3_root = root / "s3"
        self.cache_dir = root / "cache"
        self.stdout_log = stdout_log
        self.stderr_log = stderr_log

    def stderr_tail(self, start=0, lines=80):
        try:
            with open(self.stderr_log, "rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(cannot read {self.stderr_log}: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def stderr_size(self):
        try:
            return self.stderr_log.stat().st_size
        except OSError:
            return 0


_server = None  # the session's Sagedock, for the failure-report hook below


def _stop(proc, timeout):
    """SIGTERM, wait; returns the exit status, or None if it had to be killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@pytest.fixture(scope="session")
def sagedock(tmp_path_factory, aws_env):
    """Starts `sagedock up --port 0` with temp data, S3 and cache dirs; yields a Sagedock.

    Waits up to 60 s for the stdout line `listening on http://127.0.0.1:PORT`. When the
    server cannot start, every test using it ERRORs with the command, why, and its
    stderr. Teardown: SIGTERM, wait up to 60 s; anything but exit status 0 is an error.
    """
    global _server
    binary = sagedock_bin()
    root = tmp_path_factory.mktemp("sagedock")
    for sub in ("data", "s3", "cache"):
        (root / sub).mkdir()
    cmd = [str(binary), "up", "--port", "0", "--data-dir", str(root / "data"),
           "--s3-root", str(root / "s3"), "--region", REGION, "--account", ACCOUNT]
    if not binary.is_file():
        pytest.fail(f"sagedock binary not found: {binary}\n(set SAGEDOCK_BIN or run "
                    f"`cargo build`); would have run: {describe_cmd(cmd)}", pytrace=False)

    # The server gets the environment pytest was started with (not the clients' dummy
    # AWS settings and proxy guard), plus its own cache dir.
    env = dict(ORIGINAL_ENV)
    env["SAGEDOCK_CACHE_DIR"] = str(root / "cache")
    stdout_log = root / "sagedock.stdout.log"
    stderr_log = root / "sagedock.stderr.log"
    with open(stderr_log, "wb") as stderr_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr_file, env=env, cwd=str(root),
                                start_new_session=True)

    lines = queue.Queue()

    def pump():  # keeps draining stdout (into a log) so the server never blocks on it
        with open(stdout_log, "wb") as copy:
            for raw in iter(proc.stdout.readline, b""):
                copy.write(raw)
                copy.flush()
                lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    pumper = threading.Thread(target=pump, name="sagedock-stdout", daemon=True)
    pumper.start()

    def close_stdout():
        pumper.join(5)
        if not pumper.is_alive():
            proc.stdout.close()

    url = None
    seen = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while url is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:  # stdout closed: the process is exiting
            break
        seen.append(line.rstrip("\n"))
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1).rstrip("/")

    server = Sagedock(url, proc, cmd, root, stdout_log, stderr_log)
    if url is None:
        if proc.poll() is None:
            _stop(proc, 10)
            why = f"no `listening on http://…` line on stdout within {STARTUP_TIMEOUT_S} s"
        else:
            why = f"it exited with status {proc.wait()} before printing `listening on`"
        close_stdout()
        pytest.fail(
            f"`sagedock up` did not start: {why}\n"
            f"command: {describe_cmd(cmd)}\n"
            f"SAGEDOCK_CACHE_DIR={env['SAGEDOCK_CACHE_DIR']}\n"
            "--- stdout ---\n" + "\n".join(seen[-40:]) + "\n"
            f"--- stderr (tail, {stderr_log}) ---\n{server.stderr_tail()}",
            pytrace=False)

    _server = server
    try:
        yield server
    finally:
        _server = None
        if proc.poll() is not None:
            close_stdout()
            pytest.fail(f"`sagedock up` died during the session with status {proc.returncode}"
                        f"\n--- stderr (tail) ---\n{server.stderr_tail()}", pytrace=False)
        rc = _stop(proc, SHUTDOWN_TIMEOUT_S)
        close_stdout()
        if rc is None:
            pytest.fail(f"`sagedock up` did not stop within {SHUTDOWN_TIMEOUT_S} s of SIGTERM "
                        f"(killed)\n--- stderr (tail) ---\n{server.stderr_tail()}",
                        pytrace=False)
        if rc != 0:
            pytest.fail(f"`sagedock up` exited with status {rc} after SIGTERM (expected 0)"
                        f"\n--- stderr (tail) ---\n{server.stderr_tail()}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._sagedock_stderr_start = _server.stderr_size() if _server else 0
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach what `sagedock up` wrote to stderr during the test."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _server is not None and "sagedock" in getattr(item, "fixturenames", ()):
        start = getattr(item, "_sagedock_stderr_start", 0)
        report.sections.append((
            "sagedock up stderr during this test (tail)",
            f"log: {_server.stderr_log}\n{_server.stderr_tail(start=start)}"))


# --------------------------------------------------------------------------- clients


def client_config(**overrides):
    # No retries: the suites must see exactly what sagedock answers, the first time.
    kw = dict(retries={"mode": "standard", "total_max_attempts": 1},
              connect_timeout=10, read_timeout=70)
    kw.update(overrides)
    return botocore.config.Config(**kw)


@pytest.fixture(scope="session")
def boto_session(aws_env):
    return boto3.session.Session(
        aws_access_key_id=DUMMY_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_ENV["AWS_SESSION_TOKEN"],
        region_name=REGION)


@pytest.fixture(scope="session")
def make_client(boto_session, sagedock):
    """make_client("sagemaker" | "sagemaker-runtime", **Config overrides) -> a new client
    with endpoint_url = sagedock, region us-east-1, dummy credentials."""

    def make(service, **config):
        return boto_session.client(service, endpoint_url=sagedock.url, region_name=REGION,
                                   config=client_config(**config))

    return make


@pytest.fixture(scope="session")
def sm(make_client):
    """boto3 `sagemaker` client against sagedock."""
    return make_client("sagemaker")


@pytest.fixture(scope="session")
def runtime(make_client):
    """boto3 `sagemaker-runtime` client against sagedock."""
    return make_client("sagemaker-runtime")


# --------------------------------------------------------------------------- model data


@pytest.fixture(scope="session")
def mms_model_url(sagedock):
    """fixtures/models/mms packed into S3ROOT/models/mms/model.tar.gz -> its s3:// URL."""
    pack(MMS_FIXTURE, sagedock.s3_root / "models" / "mms" / "model.tar.gz")
    return "s3://models/mms/model.tar.gz"


@pytest.fixture(scope="session")
def echo_model_url(sagedock, tmp_path_factory):
    """A small model dir packed into S3ROOT/models/echo/model.tar.gz -> its s3:// URL.

    The echo image needs no model data; this gives echo models a real artifact so that
    the ModelDataUrl path (s3:// -> S3ROOT/BUCKET/KEY) is exercised as well."""
    src = tmp_path_factory.mktemp("echo-model")
    (src / "model.txt").write_text("sagedock echo test model\n")
    (src / "code").mkdir()
    (src / "code" / "README").write_text("nothing to run\n")
    pack(src, sagedock.s3_root / "models" / "echo" / "model.tar.gz")
    return "s3://models/echo/model.tar.gz"


# --------------------------------------------------------------------------- names


@pytest.fixture
def names(request):
    """Names for this test's resources: names("model") -> `<test>-model-<token>`;
    names.token is shared by all of them (for NameContains)."""
    return Names(request.node.name.replace("test_", "", 1))
