"""Batch transform as a notebook runs it with the SageMaker Python SDK, with nothing but the
environment lines `sagedock up` prints:

- scikit-learn: `SKLearn(…).fit()`, then `SKLearnModel(…).transformer(…).transform(
  "s3://…/input/", content_type="text/csv", split_type="Line", join_source="Input")`
  with `wait(logs=True)`; every joined line's prediction is checked against the same
  model deployed and called directly on the same records.
- TensorFlow: `TensorFlowModel(model_data=…).transformer(…).transform(…,
  content_type="application/jsonlines", split_type="Line")` on sagedock/tensorflow, one
  record per call and a JSON join, checked against `predict()` on the same records.

Real scikit-learn and TensorFlow in real containers; the recording proxy must see nothing.
"""


import pytest

from support import TENSORFLOW_FIXTURE, pack, require_image
from test_env_only import proxy, run_notebook, up  # noqa: F401 (fixtures)

SKLEARN_SCRIPT = r'''
import argparse, os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

if __name__ == "__main__":
    data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    model = LogisticRegression().fit(data[:, 1:], data[:, 0])
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
'''

SKLEARN_NOTEBOOK = r'''
import json, os
import boto3, numpy as np, sagemaker
from sagemaker.sklearn import SKLearn, SKLearnModel

role = "arn:aws:iam::123456789012:role/SageMakerRole"
session = sagemaker.Session()
def deploy(model):
    """deploy(wait=True) sleeps 30 s before its first poll: boto3's waiter instead."""
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
    boto3.client("sagemaker").get_waiter("endpoint_in_service").wait(
        EndpointName=predictor.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return predictor

rng = np.random.default_rng(7)
x = rng.normal(size=(200, 2))
y = (x[:, 0] - x[:, 1] > 0).astype(float)
os.makedirs("data", exist_ok=True)
np.savetxt("data/train.csv", np.column_stack([y, x]), delimiter=",")
estimator = SKLearn(entry_point="sk_train.py", framework_version="1.2-1", py_version="py3",
                    instance_type="ml.m5.large", role=role)
estimator.fit({"train": session.upload_data("data", key_prefix="sk-transform/train")}, logs=False)

# Two input files of records to score.
os.makedirs("batch", exist_ok=True)
records = {"a.csv": rng.normal(size=(7, 2)).round(3), "b.csv": rng.normal(size=(5, 2)).round(3)}
for name, rows in records.items():
    np.savetxt(f"batch/{name}", rows, delimiter=",", fmt="%.3f")
input_uri = session.upload_data("batch", key_prefix="sk-transform/input")
output_uri = f"s3://{session.default_bucket()}/sk-transform/output"

model = SKLearnModel(model_data=estimator.model_data, role=role, entry_point="sk_train.py",
                     framework_version="1.2-1", py_version="py3")
transformer = model.transformer(instance_count=1, instance_type="ml.m5.large",
                                output_path=output_uri, accept="text/csv", assemble_with="Line",
                                strategy="MultiRecord")
transformer.transform(input_uri, content_type="text/csv", split_type="Line",
                      join_source="Input", wait=True, logs=True)
job = boto3.client("sagemaker").describe_transform_job(
    TransformJobName=transformer.latest_transform_job.name)

s3 = boto3.client("s3")
outputs = {}
for name in records:
    body = s3.get_object(Bucket=session.default_bucket(),
                         Key=f"sk-transform/output/{name}.out")["Body"].read().decode()
    outputs[name] = [line.split(",") for line in body.splitlines()]

predictor = deploy(model)
direct = {name: np.asarray(predictor.predict(rows)).tolist() for name, rows in records.items()}
predictor.delete_endpoint()
print(json.dumps({"status": job["TransformJobStatus"], "reason": job.get("FailureReason"),
                  "records": {k: v.tolist() for k, v in records.items()},
                  "outputs": outputs, "direct": direct}))
'''

TF_NOTEBOOK = r'''
import json, sys
import boto3, sagemaker
from sagemaker.tensorflow import TensorFlowModel

role = "arn:aws:iam::123456789012:role/SageMakerRole"
session = sagemaker.Session()
def deploy(model):
    """deploy(wait=True) sleeps 30 s before its first poll: boto3's waiter instead."""
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
    boto3.client("sagemaker").get_waiter("endpoint_in_service").wait(
        EndpointName=predictor.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return predictor

model_data = session.upload_data(sys.argv[1], key_prefix="tf-transform/model")
rows = [[6.4, 3.2, 4.5, 1.5], [0, 0, 0, 0], [1, 2, 3, 4]]
with open("records.jsonl", "w") as f:
    for row in rows:
        f.write(json.dumps(row) + "\n")
input_uri = session.upload_data("records.jsonl", key_prefix="tf-transform/input")
output_uri = f"s3://{session.default_bucket()}/tf-transform/output"

model = TensorFlowModel(model_data=model_data, role=role, framework_version="2.13")
transformer = model.transformer(instance_count=1, instance_type="ml.m5.large",
                                output_path=output_uri, accept="application/json",
                                assemble_with="Line", strategy="SingleRecord")
transformer.transform(input_uri, content_type="application/jsonlines", split_type="Line",
                      join_source="Input", wait=True, logs=False)
job = boto3.client("sagemaker").describe_transform_job(
    TransformJobName=transformer.latest_transform_job.name)
body = boto3.client("s3").get_object(Bucket=session.default_bucket(),
                                     Key="tf-transform/output/records.jsonl.out")["Body"].read()

predictor = deploy(model)
direct = [predictor.predict({"instances": [row]}) for row in rows]
predictor.delete_endpoint()
print(json.dumps({"status": job["TransformJobStatus"], "reason": job.get("FailureReason"),
                  "rows": rows, "lines": [json.loads(l) for l in body.decode().splitlines()],
                  "direct": direct}))
'''


def test_scikit_learn_transform_joins_each_record_with_its_prediction(up, proxy, tmp_path):  # noqa: F811
    require_image("sagedock/sklearn:latest")
    exports, _ = up
    (tmp_path / "sk_train.py").write_text(SKLEARN_SCRIPT)
    result, stdout = run_notebook(exports, proxy, tmp_path, SKLEARN_NOTEBOOK)
    assert result["status"] == "Completed", result["reason"]
    for name, rows in result["records"].items():
        lines = result["outputs"][name]
        assert len(lines) == len(rows), (name, lines)
        for row, line, expected in zip(rows, lines, result["direct"][name]):
            # JoinSource Input: the record's columns, then the model's.
            assert [float(v) for v in line[:2]] == pytest.approx(row), (row, line)
            assert float(line[2]) == expected, (row, line, expected)
    # transform(wait=True, logs=True) printed the job's log as it ran.
    assert "MaxConcurrentTransforms=1, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD" in stdout
    assert "a.csv: 7 record(s) in 1 call(s)" in stdout
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"


def test_tensorflow_transform_of_json_lines(up, proxy, tmp_path):  # noqa: F811
    require_image("sagedock/tensorflow:latest")
    exports, _ = up
    pack(TENSORFLOW_FIXTURE, tmp_path / "model.tar.gz")
    result, _ = run_notebook(exports, proxy, tmp_path, TF_NOTEBOOK, str(tmp_path / "model.tar.gz"))
    assert result["status"] == "Completed", result["reason"]
    assert len(result["lines"]) == len(result["rows"])
    for row, line, direct in zip(result["rows"], result["lines"], result["direct"]):
        # A record that is not a JSON object is joined as SageMakerInput.
        assert line == {"SageMakerInput": row, "SageMakerOutput": direct}, line
    assert result["direct"][0] == {"predictions": [[5.2, 3.6, 4.25, 2.75]]}
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"
