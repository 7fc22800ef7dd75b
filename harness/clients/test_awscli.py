"""The hosting lifecycle through the real AWS CLI (v1, from the suite's venv), against
`sagedock up`: `--endpoint-url`, `--region us-east-1`, `--output json`, dummy
credentials from the environment. Asserts on exit codes, parsed stdout and stderr.

AWS CLI v1 facts relied on (awscli/clidriver.py): a service error exits 255 and prints
`An error occurred (CODE) when calling the OP operation: MESSAGE` to stderr; a missing
required argument is an argparse error, exit 2. Timestamps are printed as they came on
the wire (`cli_timestamp_format` defaults to `wire`), so sagedock's epoch-seconds
numbers show up as JSON numbers.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import ACCOUNT, REGION, ROLE_ARN, arn, cleanup, client_env, describe_cmd, variant


def aws_bin():
    venv_aws = Path(sys.executable).parent / "aws"
    if venv_aws.is_file():
        return str(venv_aws)
    found = shutil.which("aws")
    if found is None:
        pytest.fail(f"the AWS CLI is not installed next to {sys.executable} (run "
                    f"harness/clients/run.sh, which installs it)", pytrace=False)
    return found


class Aws:
    """Runs `aws ... --endpoint-url URL --region us-east-1 --output json`."""

    def __init__(self, url):
        self.url = url
        self.bin = aws_bin()

    def run(self, *args, timeout=120):
        cmd = [self.bin, *args, "--endpoint-url", self.url, "--region", REGION,
               "--output", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=client_env(),
                           timeout=timeout, stdin=subprocess.DEVNULL)
        p.cmdline = describe_cmd(cmd)
        return p

    def ok(self, *args, timeout=120):
        """Runs; exit status must be 0; returns the parsed JSON output (None if empty)."""
        p = self.run(*args, timeout=timeout)
        assert p.returncode == 0, (f"`{p.cmdline}` exited {p.returncode}\n"
                                   f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return json.loads(p.stdout) if p.stdout.strip() else None

    def fails(self, *args, code, operation, timeout=120):
        """Runs; must exit 255 with `An error occurred (CODE) when calling the OP operation`;
        returns the message after it."""
        p = self.run(*args, timeout=timeout)
        assert p.returncode == 255, (f"`{p.cmdline}` exited {p.returncode}, expected 255\n"
                                     f"stdout: {p.stdout}\nstderr: {p.stderr}")
        prefix = f"An error occurred ({code}) when calling the {operation} operation: "
        assert prefix in p.stderr, p.stderr
        return p.stderr.split(prefix, 1)[1].strip()


@pytest.fixture
def aws(sagedock):
    return Aws(sagedock.url)


def poll_until(aws, endpoint, want, timeout_s=120):
    """describe-endpoint every second until EndpointStatus == want (the CLI's own waiter
    sleeps 30 s between polls). Fails at once on an unexpected Failed."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = aws.ok("sagemaker", "describe-endpoint", "--endpoint-name", endpoint)
        if last["EndpointStatus"] == want:
            return last
        assert last["EndpointStatus"] != "Failed", last
        time.sleep(1)
    pytest.fail(f"endpoint {endpoint} not {want} after {timeout_s} s; last: {last}")


def poll_gone(aws, endpoint, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        p = aws.run("sagemaker", "describe-endpoint", "--endpoint-name", endpoint)
        if p.returncode != 0:
            assert "(ValidationException)" in p.stderr, p.stderr
            return p
        time.sleep(1)
    pytest.fail(f"endpoint {endpoint} still described {timeout_s} s after delete-endpoint")


def test_cli_lifecycle(aws, sm, names, echo_image, echo_model_url, tmp_path):
    model, config, endpoint = names("model"), names("config"), names("ep")
    try:
        out = aws.ok("sagemaker", "create-model", "--model-name", model,
                     "--primary-container", json.dumps({
                         "Image": echo_image, "ModelDataUrl": echo_model_url,
                         "Environment": {"FROM_CLI": "1"}}),
                     "--execution-role-arn", ROLE_ARN)
        assert out == {"ModelArn": arn("model", model)}

        d = aws.ok("sagemaker", "describe-model", "--model-name", model)
        assert d["ModelName"] == model
        assert d["ModelArn"] == arn("model", model)
        assert d["ExecutionRoleArn"] == ROLE_ARN
        assert d["PrimaryContainer"]["Image"] == echo_image
        assert d["PrimaryContainer"]["ModelDataUrl"] == echo_model_url
        assert d["PrimaryContainer"]["Environment"] == {"FROM_CLI": "1"}
        # On the wire, timestamps are epoch seconds (JSON numbers), CONTRACT.md 3.1.
        assert isinstance(d["CreationTime"], (int, float)), d["CreationTime"]
        assert abs(d["CreationTime"] - time.time()) < 600

        out = aws.ok("sagemaker", "create-endpoint-config", "--endpoint-config-name", config,
                     "--production-variants", json.dumps([variant(model)]))
        assert out == {"EndpointConfigArn": arn("endpoint-config", config)}

        out = aws.ok("sagemaker", "create-endpoint", "--endpoint-name", endpoint,
                     "--endpoint-config-name", config)
        assert out == {"EndpointArn": arn("endpoint", endpoint)}

        d = poll_until(aws, endpoint, "InService", timeout_s=120)
        assert d["EndpointConfigName"] == config
        assert d["ProductionVariants"][0]["VariantName"] == "AllTraffic"
        assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        assert isinstance(d["LastModifiedTime"], (int, float))

        # The CLI waiter polls once before its first 30 s sleep: already InService -> quick.
        started = time.monotonic()
        assert aws.ok("sagemaker", "wait", "endpoint-in-service",
                      "--endpoint-name", endpoint) is None
        assert time.monotonic() - started < 25

        listed = aws.ok("sagemaker", "list-endpoints", "--status-equals", "InService",
                        "--name-contains", names.token)
        assert [e["EndpointName"] for e in listed["Endpoints"]] == [endpoint]
        assert listed["Endpoints"][0]["EndpointStatus"] == "InService"

        body = json.dumps({"instances": [1, 2, 3]}).encode()
        infile, outfile = tmp_path / "in.json", tmp_path / "out.json"
        infile.write_bytes(body)
        out = aws.ok("sagemaker-runtime", "invoke-endpoint", "--endpoint-name", endpoint,
                     "--body", f"fileb://{infile}", "--content-type", "application/json",
                     "--accept", "application/json", "--custom-attributes", "trace-id=cli",
                     str(outfile))
        assert out["ContentType"] == "application/json"
        assert out["InvokedProductionVariant"] == "AllTraffic"
        assert out["CustomAttributes"] == "trace-id=cli"
        assert outfile.read_bytes() == body

        assert aws.ok("sagemaker", "delete-endpoint", "--endpoint-name", endpoint) is None
        poll_gone(aws, endpoint)
        started = time.monotonic()
        assert aws.ok("sagemaker", "wait", "endpoint-deleted", "--endpoint-name", endpoint) is None
        assert time.monotonic() - started < 25
        msg = aws.fails("sagemaker", "describe-endpoint", "--endpoint-name", endpoint,
                        code="ValidationException", operation="DescribeEndpoint")
        assert "Could not find endpoint" in msg

        assert aws.ok("sagemaker", "delete-endpoint-config",
                      "--endpoint-config-name", config) is None
        assert aws.ok("sagemaker", "delete-model", "--model-name", model) is None
        msg = aws.fails("sagemaker", "describe-model", "--model-name", model,
                        code="ValidationException", operation="DescribeModel")
        assert "Could not find model" in msg
    finally:
        cleanup(sm, endpoints=[endpoint], configs=[config], models=[model])


def test_cli_invoke_unknown_endpoint(aws, names, tmp_path):
    name = names("missing")
    (tmp_path / "in.txt").write_text("hello")
    msg = aws.fails("sagemaker-runtime", "invoke-endpoint", "--endpoint-name", name,
                    "--body", f"fileb://{tmp_path / 'in.txt'}", str(tmp_path / "out.bin"),
                    code="ValidationError", operation="InvokeEndpoint")
    assert msg == f"Endpoint {name} of account {ACCOUNT} not found."
    assert not (tmp_path / "out.bin").exists()


def test_cli_duplicate_model(aws, sm, names):
    model = names("model")
    container = json.dumps({"Image": "sagedock/echo:latest"})
    try:
        aws.ok("sagemaker", "create-model", "--model-name", model,
               "--primary-container", container, "--execution-role-arn", ROLE_ARN)
        msg = aws.fails("sagemaker", "create-model", "--model-name", model,
                        "--primary-container", container, "--execution-role-arn", ROLE_ARN,
                        code="ValidationException", operation="CreateModel")
        assert "Cannot create already existing model" in msg
    finally:
        cleanup(sm, models=[model])


def test_cli_list_models_pagination(aws, sm, names):
    created = [names("a"), names("b"), names("c")]
    container = json.dumps({"Image": "sagedock/echo:latest"})
    try:
        for m in created:
            aws.ok("sagemaker", "create-model", "--model-name", m,
                   "--primary-container", container, "--execution-role-arn", ROLE_ARN)
        common = ["sagemaker", "list-models", "--name-contains", names.token,
                  "--sort-by", "Name", "--sort-order", "Ascending"]
        # --page-size 1: the CLI follows NextToken itself (MaxResults=1 per call).
        out = aws.ok(*common, "--page-size", "1")
        assert [m["ModelName"] for m in out["Models"]] == created
        assert all(isinstance(m["CreationTime"], (int, float)) for m in out["Models"])
        # --max-items 2: the CLI stops after 2 and hands out a token to resume from.
        first = aws.ok(*common, "--page-size", "1", "--max-items", "2")
        assert [m["ModelName"] for m in first["Models"]] == created[:2]
        assert first.get("NextToken")
        rest = aws.ok(*common, "--page-size", "1", "--starting-token", first["NextToken"])
        assert [m["ModelName"] for m in rest["Models"]] == created[2:]
    finally:
        cleanup(sm, models=created)


def test_cli_missing_required_argument():
    """Caught by the CLI's argument parser: exit 2, no request (needs no server)."""
    p = Aws("http://127.0.0.1:1").run("sagemaker", "create-model",
                "--primary-container", json.dumps({"Image": "sagedock/echo:latest"}))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "the following arguments are required: --model-name" in p.stderr
