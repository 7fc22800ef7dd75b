#!/usr/bin/env bash
# What sagedock adds to a training job, against the same container run by hand with
# `docker run`, side by side in the same run (alternating, medians of N rounds):
#
#   start:  CreateTrainingJob returns  ->  the container's first log line
#           (by hand: `docker run` invoked -> its first line)
#   finish: the container's last line (printed just before it exits)  ->  DescribeTrainingJob
#           says Completed, the model packed and in S3
#           (by hand: the last line -> `docker run` returns)
#
# Line times are the engine's own timestamps (sagedock's log record keeps them; by hand,
# `docker logs --timestamps`), so both sides read the same clock.
#
# Usage: benches/training_overhead.sh [ROUNDS] [IMAGE]
#   ROUNDS  default 5; IMAGE default sagedock/byo-train:latest (a `train` program, no
#   toolkit; sagedock/tensorflow-training:latest runs the Keras script below through AWS's
#   training toolkit instead). Needs a Docker engine, the image, a built sagedock
#   (target/debug/sagedock unless SAGEDOCK_BIN says otherwise) and the client venv
#   (harness/clients/run.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
IMAGE="${2:-sagedock/byo-train:latest}"
BIN="${SAGEDOCK_BIN:-$PWD/target/debug/sagedock}"
PY="${SAGEDOCK_CLIENTS_VENV:-$HOME/.cache/sagedock/clients-venv}/bin/python"
exec "$PY" - "$ROUNDS" "$IMAGE" "$BIN" <<'PYTHON'
import json, os, re, shutil, statistics, subprocess, sys, tarfile, tempfile, time
import boto3

rounds, image, binary = int(sys.argv[1]), sys.argv[2], sys.argv[3]
work = tempfile.mkdtemp(prefix="sagedock-train-bench-")
toolkit = "tensorflow-training" in image
script = """
import os, tensorflow as tf
print("user script started", flush=True)
m = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
m.export(os.path.join(os.environ["SM_MODEL_DIR"], "1"))
print("done", flush=True)
"""
hyperparameters = {"mode": "ok", "epochs": "1"}
if toolkit:
    hyperparameters = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://bench-bucket/code/sourcedir.tar.gz"'}

os.makedirs(f"{work}/s3")
up = subprocess.Popen([binary, "up", "--port", "0", "--data-dir", f"{work}/data", "--s3-root", f"{work}/s3"],
                      stdout=subprocess.PIPE, stderr=open(f"{work}/up.log", "wb"), text=True)
url = None
for line in up.stdout:
    m = re.search(r"listening on (http://\S+)", line)
    if m:
        url = m.group(1)
        break
os.makedirs(f"{work}/s3/bench-bucket/code", exist_ok=True)
if toolkit:
    with open(f"{work}/train.py", "w") as f:
        f.write(script)
    with tarfile.open(f"{work}/s3/bench-bucket/code/sourcedir.tar.gz", "w:gz") as tar:
        tar.add(f"{work}/train.py", arcname="train.py")
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="sagedock", aws_secret_access_key="sagedock")
sm, logs = boto3.client("sagemaker", **kw), boto3.client("logs", **kw)

def via_sagedock(n):
    name = f"bench-{n}-{int(time.time() * 1000)}"
    t0 = time.time()
    sm.create_training_job(
        TrainingJobName=name, RoleArn="arn:aws:iam::123456789012:role/R",
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        OutputDataConfig={"S3OutputPath": "s3://bench-bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    while True:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.05)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                       logStreamNamePrefix=name + "/")["logStreams"][0]["logStreamName"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                                 startFromHead=True)["events"]
    first, last = events[0]["timestamp"] / 1000, events[-1]["timestamp"] / 1000
    return first - t0, job["TrainingEndTime"].timestamp() - last

def by_hand(n):
    ml = f"{work}/hand-{n}"
    os.makedirs(f"{ml}/input/config"); os.makedirs(f"{ml}/input/data"); os.makedirs(f"{ml}/model"); os.makedirs(f"{ml}/output/data")
    json.dump(hyperparameters, open(f"{ml}/input/config/hyperparameters.json", "w"))
    json.dump({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"},
              open(f"{ml}/input/config/resourceconfig.json", "w"))
    json.dump({}, open(f"{ml}/input/config/inputdataconfig.json", "w"))
    volumes = ["-v", f"{ml}:/opt/ml"]
    if toolkit:
        os.makedirs(f"{ml}/code"); shutil.copy(f"{work}/train.py", f"{ml}/code/train.py")
    name = f"bench-hand-{n}-{os.getpid()}"
    t0 = time.time()
    subprocess.run(["docker", "run", "--name", name, "--init", "--hostname", "algo-1", *volumes, image, "train"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t1 = time.time()
    out = subprocess.run(["docker", "logs", "--timestamps", name], capture_output=True, text=True).stdout
    out += subprocess.run(["docker", "logs", "--timestamps", name], capture_output=True, text=True).stderr
    stamps = sorted(l.split(" ", 1)[0] for l in out.splitlines() if l.strip())
    subprocess.run(["docker", "rm", "-f", name], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["docker", "run", "--rm", "-v", f"{ml}:/opt/ml", "--entrypoint", "rm", image, "-rf", "/opt/ml/model", "/opt/ml/output"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def parse(stamp):
        from datetime import datetime
        stamp = re.sub(r"(\.\d{6})\d*Z$", r"\1+00:00", stamp)
        return datetime.fromisoformat(stamp).timestamp()
    return parse(stamps[0]) - t0, t1 - parse(stamps[-1])

rows = {"sagedock": [], "docker run": []}
try:
    via_sagedock(0); by_hand(0)  # warm both paths
    for n in range(1, rounds + 1):
        rows["sagedock"].append(via_sagedock(n))
        rows["docker run"].append(by_hand(n))
finally:
    up.terminate(); up.wait(60)
print(f"image {image}, {rounds} rounds, medians (ms):")
print(f"{'':12} {'start':>8} {'finish':>8}")
med = {}
for who, values in rows.items():
    med[who] = (statistics.median(v[0] for v in values) * 1000, statistics.median(v[1] for v in values) * 1000)
    print(f"{who:12} {med[who][0]:8.0f} {med[who][1]:8.0f}")
print(f"{'added':12} {med['sagedock'][0] - med['docker run'][0]:+8.0f} {med['sagedock'][1] - med['docker run'][1]:+8.0f}")
shutil.rmtree(work, ignore_errors=True)
PYTHON
