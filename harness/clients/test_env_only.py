"""Unmodified SageMaker code, with nothing but the environment lines `sagedock up` prints.

The notebook below names no endpoint URL, bucket, session or credentials: it runs the
SageMaker Python SDK's Session(), default_bucket(), upload_data(), Model(...).deploy(),
predict() and delete_endpoint() exactly as it would against AWS. The AWS CLI then uses
S3 and CloudWatch Logs with the same environment. Every child process runs with an HTTP(S)
proxy that records whatever tries to leave the machine (loopback bypasses it), and the
tests assert that it saw nothing.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.config
import pytest

from conftest import _stop
from support import ACCOUNT, ORIGINAL_ENV, REGION, UNSET_ENV, sagedock_bin

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
VENV_BIN = Path(sys.executable).parent

NOTEBOOK = r'''
import json, sys, time
import boto3, sagemaker
from sagemaker.predictor import Predictor

session = sagemaker.Session()
bucket = session.default_bucket()
uri = session.upload_data(sys.argv[1], key_prefix="notebook/model")
model = sagemaker.model.Model(
    image_uri="sagedock/echo:latest",
    model_data=uri,
    role="arn:aws:iam::123456789012:role/SageMakerRole",
    predictor_cls=Predictor,
)
# deploy(wait=True) sleeps 30 s before its first poll; boto3's waiter with Delay=1 is the
# fast path.
predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                         endpoint_name="notebook-endpoint", wait=False)
boto3.client("sagemaker").get_waiter("endpoint_in_service").wait(
    EndpointName="notebook-endpoint", WaiterConfig={"Delay": 1, "MaxAttempts": 300})
answer = predictor.predict(b"hello from the notebook")
predictor.delete_endpoint()
print(json.dumps({"bucket": bucket, "uri": uri, "answer": answer.decode()}))
'''


class RecordingProxy:
    """An HTTP proxy that records each request line it gets and answers 502."""

    def __init__(self):
        self.seen = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0]
                    self.seen.append(first.decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def up(tmp_path_factory, echo_image):
    """`sagedock up` with a data directory and nothing else; yields (exports, data dir)."""
    root = tmp_path_factory.mktemp("env-only")
    cmd = [str(sagedock_bin()), "up", "--port", "0", "--data-dir", str(root / "data")]
    env = {k: v for k, v in ORIGINAL_ENV.items() if k not in UNSET_ENV and k not in CREDENTIAL_KEYS}
    env["SAGEDOCK_CACHE_DIR"] = str(root / "cache")
    stderr = open(root / "stderr.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=env,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    exports, banner = {}, []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip())
        if line.strip().startswith("export "):
            for pair in line.split()[1:]:
                key, _, value = pair.partition("=")
                exports[key] = value
        if line.startswith("Ctrl-C stops it."):
            break
    if "AWS_ENDPOINT_URL" not in exports:
        _stop(proc, 10)
        pytest.fail(f"`{' '.join(cmd)}` printed no export lines:\n" + "\n".join(banner)
                    + "\n" + (root / "stderr.log").read_text())
    drain = threading.Thread(target=proc.stdout.read, daemon=True)
    drain.start()
    try:
        yield exports, root / "data"
    finally:
        rc = _stop(proc, 60)
        drain.join(5)
        proc.stdout.close()
        stderr.close()
        assert rc == 0, (root / "stderr.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def proxy():
    p = RecordingProxy()
    yield p
    p.close()


def offline_env(exports, proxy, home):
    """The printed lines and nothing else AWS-related; anything leaving the machine over
    HTTP(S) goes to the recording proxy."""
    env = {"PATH": f"{VENV_BIN}:{ORIGINAL_ENV.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
           "LANG": "C.UTF-8", "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[key] = proxy.url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(exports)
    return env


def run_notebook(exports, proxy, work, text, *args, timeout=900):  # noqa: F811
    """Runs `text` as work/notebook.py (with `args`) under offline_env; returns the JSON
    object its last line prints, and its whole stdout."""
    (work / "notebook.py").write_text(text)
    p = subprocess.run([sys.executable, str(work / "notebook.py"), *args], capture_output=True,
                       text=True, timeout=timeout, cwd=work, env=offline_env(exports, proxy, work))
    assert p.returncode == 0, f"stdout:\n{p.stdout[-5000:]}\nstderr:\n{p.stderr[-8000:]}"
    last = p.stdout.strip().splitlines()[-1]
    # deploy() prints its progress ("-----!") without a newline.
    return json.loads(last[last.index("{"):]), p.stdout


@pytest.fixture(scope="module")
def notebook(up, proxy, tmp_path_factory):
    """Runs the notebook once; returns its printed result."""
    exports, _ = up
    work = tmp_path_factory.mktemp("notebook")
    (work / "model").mkdir()
    (work / "model" / "model.txt").write_text("a model\n")
    subprocess.run(["tar", "czf", str(work / "model.tar.gz"), "-C", str(work / "model"), "."],
                   check=True)
    result, _ = run_notebook(exports, proxy, work, NOTEBOOK, str(work / "model.tar.gz"), timeout=600)
    return result, work


def test_the_banner_prints_one_endpoint_for_every_service_and_an_sdk_config(up):
    exports, data = up
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["AWS_ENDPOINT_URL"])
    assert exports["AWS_DEFAULT_REGION"] == REGION
    assert exports["AWS_ACCESS_KEY_ID"] and exports["AWS_SECRET_ACCESS_KEY"]
    config = Path(exports["SAGEMAKER_USER_CONFIG_OVERRIDE"])
    assert config.parent == data
    text = config.read_text()
    assert f"DefaultS3Bucket: sagemaker-{REGION}-{ACCOUNT}" in text
    assert "TelemetryOptOut: true" in text


def test_the_sagemaker_sdk_runs_a_notebook_with_only_the_printed_environment(up, notebook, proxy):
    result, work = notebook
    _, data = up
    assert result["bucket"] == f"sagemaker-{REGION}-{ACCOUNT}"
    assert result["uri"] == f"s3://{result['bucket']}/notebook/model/model.tar.gz"
    assert result["answer"] == "hello from the notebook"
    # What the SDK uploaded is the file the control plane read.
    stored = data / "s3" / result["bucket"] / "notebook" / "model" / "model.tar.gz"
    assert stored.read_bytes() == (work / "model.tar.gz").read_bytes()
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"


def aws(env, *args, check=True):
    p = subprocess.run([str(VENV_BIN / "aws"), *args], capture_output=True, text=True,
                       timeout=120, env=env)
    if check:
        assert p.returncode == 0, f"aws {' '.join(args)}: {p.stderr[-2000:]}"
    return p


def test_the_aws_cli_copies_lists_and_reads_logs_with_the_printed_environment(
        up, notebook, proxy, tmp_path):
    exports, data = up
    env = offline_env(exports, proxy, tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 << 20))  # over the CLI's 8 MiB: a multipart upload
    aws(env, "s3", "mb", "s3://cli-bucket")
    aws(env, "s3", "cp", str(big), "s3://cli-bucket/data/big.bin")
    listing = aws(env, "s3", "ls", "s3://cli-bucket/data/").stdout
    assert re.search(r"\s9437184 big\.bin", listing), listing
    aws(env, "s3", "cp", "s3://cli-bucket/data/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    aws(env, "s3", "sync", str(tree), "s3://cli-bucket/synced/")
    listing = aws(env, "s3", "ls", "--recursive", "s3://cli-bucket/synced/").stdout
    assert "synced/a.txt" in listing and "synced/sub/b.txt" in listing, listing
    # A second sync has nothing to send.
    assert aws(env, "s3", "sync", str(tree), "s3://cli-bucket/synced/").stdout.strip() == ""
    assert (data / "s3" / "cli-bucket" / "data" / "big.bin").read_bytes() == big.read_bytes()

    # The notebook's endpoint is gone; its container's output stays in its log stream.
    group = "/aws/sagemaker/Endpoints/notebook-endpoint"
    streams = json.loads(aws(env, "logs", "describe-log-streams", "--log-group-name", group).stdout)
    names = [s["logStreamName"] for s in streams["logStreams"]]
    assert len(names) == 1 and names[0].startswith("AllTraffic/"), names
    events = json.loads(aws(env, "logs", "get-log-events", "--log-group-name", group,
                            "--log-stream-name", names[0], "--start-from-head").stdout)
    messages = [e["message"] for e in events["events"]]
    assert any("echo: listening on" in m for m in messages), messages
    assert any("POST /invocations 200" in m for m in messages), messages
    assert all(e["timestamp"] > 1_700_000_000_000 for e in events["events"])
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"


def test_services_are_told_apart_by_signature_not_by_path(up, tmp_path):
    """A bucket named like one of sagedock's paths is S3's when the request is signed for
    S3; unsigned, the path is sagedock's. Virtual-host style names the bucket in Host."""
    exports, _ = up
    url = exports["AWS_ENDPOINT_URL"]
    port = int(url.rsplit(":", 1)[1])
    keys = dict(aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    s3 = boto3.client("s3", endpoint_url=url, **keys)
    for bucket in ("endpoints", "ping", "metrics"):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="invocations", Body=bucket.encode())
        assert s3.get_object(Bucket=bucket, Key="invocations")["Body"].read() == bucket.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/ping")
    assert conn.getresponse().read() == b"ok\n"
    conn.close()

    # Virtual-host style: the bucket in the Host header (presigned, fetched by hand, since
    # BUCKET.localhost need not resolve on this machine).
    virtual = boto3.client("s3", endpoint_url=f"http://localhost:{port}",
                           config=botocore.config.Config(s3={"addressing_style": "virtual"}),
                           **keys)
    signed = virtual.generate_presigned_url("get_object",
                                            Params={"Bucket": "ping", "Key": "invocations"})
    assert signed.startswith(f"http://ping.localhost:{port}/invocations?"), signed
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", signed.split(f":{port}", 1)[1], headers={"Host": f"ping.localhost:{port}"})
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"ping")
    conn.close()

    # A key sagedock does not know is refused in S3's shape, naming the keys it knows.
    stranger = boto3.client("s3", endpoint_url=url, aws_access_key_id="AKIASTRANGER",
                            aws_secret_access_key="x", region_name=REGION)
    with pytest.raises(Exception) as refused:
        stranger.list_buckets()
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidAccessKeyId"
    assert exports["AWS_ACCESS_KEY_ID"] in error["Message"]

    sts = boto3.client("sts", endpoint_url=url, **keys)
    assert sts.get_caller_identity()["Account"] == ACCOUNT
