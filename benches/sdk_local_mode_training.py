#!/usr/bin/env python3
"""Benchmark SageMaker Python SDK local mode on one tiny BYO training job.

Run: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION=us-east-1 \
     SAGEMAKER_SUPPRESS_V2_WARNING=1 /root/.cache/sagedock/clients-venv/bin/python \
     benches/sdk_local_mode_training.py [N_RUNS]
(needs docker-compose: `apt-get install -y docker-compose`; the client venv: harness/clients/run.sh;
the image: harness/images/byo-train/build.sh). The reference for benches/training_overhead.sh.
(a) fit() wall time; (b) fit() call -> engine timestamp of container's first log line;
(c) engine timestamp of container's last log line ("done") -> fit() return.
Also (b', c') using time.time() when the lines appear on fit()'s stdout.
"""
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("AWS_ACCESS_KEY_ID", "x")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import boto3  # noqa: E402
import sagemaker  # noqa: E402
from sagemaker.local import LocalSession  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402

IMAGE = "sagedock/byo-train:latest"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5


class Tee:
    """stdout wrapper recording time.time() of the first 'byo-train on' and 'done' lines."""

    def __init__(self, real):
        self.real, self.first, self.last, self.buf = real, None, None, ""

    def write(self, s):
        now = time.time()
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if self.first is None and "byo-train on" in line:
                self.first = now
            if line.rstrip().endswith("done"):
                self.last = now
        return self.real.write(s)

    def flush(self):
        self.real.flush()

    def __getattr__(self, k):
        return getattr(self.real, k)


def ids():
    out = subprocess.check_output(["docker", "ps", "-aq", "--no-trunc", "--filter", f"ancestor={IMAGE}"])
    return set(out.decode().split())


def parse_ts(s):
    # 2024-01-01T12:34:56.123456789Z -> epoch seconds
    s = s.rstrip("Z")
    base, frac = (s.split(".") + ["0"])[:2]
    t = dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return t.timestamp() + float("0." + frac)


def one_run(session, i):
    before = ids()
    est = Estimator(
        image_uri=IMAGE,
        role="arn:aws:iam::123456789012:role/R",
        instance_count=1,
        instance_type="local",
        output_path="file:///tmp/localmode-out",
        hyperparameters={"mode": "ok", "epochs": "1"},
        sagemaker_session=session,
    )
    tee = Tee(sys.stdout)
    sys.stdout = tee
    try:
        t0 = time.time()
        est.fit(job_name=f"lmbench-{int(t0*1000)}-{i}", wait=True, logs="All")
        t1 = time.time()
    finally:
        sys.stdout = tee.real
    new = ids() - before
    eng_first = eng_last = None
    if len(new) == 1:
        cid = new.pop()
        logs = subprocess.run(["docker", "logs", "--timestamps", cid], capture_output=True, text=True)
        lines = [l for l in (logs.stdout + logs.stderr).splitlines() if l.strip()]
        stamps = [(parse_ts(l.split(" ", 1)[0]), l.split(" ", 1)[1] if " " in l else "") for l in lines]
        stamps.sort()
        firsts = [t for t, txt in stamps if "byo-train on" in txt]
        lasts = [t for t, txt in stamps if txt.strip().endswith("done")]
        eng_first = firsts[0] if firsts else stamps[0][0]
        eng_last = lasts[-1] if lasts else stamps[-1][0]
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    else:
        print(f"WARN: {len(new)} new containers", file=sys.stderr)
    r = {
        "a_fit_ms": (t1 - t0) * 1000,
        "b_engine_ms": (eng_first - t0) * 1000 if eng_first else None,
        "c_engine_ms": (t1 - eng_last) * 1000 if eng_last else None,
        "b_stdout_ms": (tee.first - t0) * 1000 if tee.first else None,
        "c_stdout_ms": (t1 - tee.last) * 1000 if tee.last else None,
        "model_data": est.model_data,
    }
    return r


def main():
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"))
    session.config = {"local": {"local_code": True}}
    if os.environ.get("LM_TELEMETRY_OPTOUT") == "1":  # optional variant: skip SDK telemetry (STS + S3 GET)
        session.sagemaker_config = {"SchemaVersion": "1.0",
                                    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    print("warm-up:", json.dumps(one_run(session, 0)), file=sys.stderr)
    results = []
    for i in range(1, N + 1):
        r = one_run(session, i)
        print(f"run {i}:", json.dumps(r), file=sys.stderr)
        results.append(r)
    print("MEDIANS (ms):", file=sys.stderr)
    for k in ["a_fit_ms", "b_engine_ms", "c_engine_ms", "b_stdout_ms", "c_stdout_ms"]:
        vals = [r[k] for r in results if r[k] is not None]
        if vals:
            print(f"  {k}: {statistics.median(vals):.0f}  (min {min(vals):.0f}, max {max(vals):.0f})", file=sys.stderr)


if __name__ == "__main__":
    main()
