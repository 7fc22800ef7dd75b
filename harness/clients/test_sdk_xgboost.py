"""XGBoost, SageMaker's built-in algorithm, as a notebook runs it with nothing but the lines
`sagedock up` prints: the image from `sagemaker.image_uris.retrieve("xgboost", region,
"1.7-1")` (the image map runs sagedock/xgboost for it), a generic `Estimator` with CSV
channels, a `HyperparameterTuner` over `eta` and `max_depth` on the algorithm's own
`validation:rmse` (no metric_definitions: SageMaker knows the algorithm's),
`best_training_job()`, `tuner.deploy()`, `predict()` in CSV, a batch transform with
SplitType=Line, and a job whose hyperparameter is out of range failing with the
container's message. Script mode: `XGBoost(entry_point=..., framework_version="1.7-1")`
trains through the training toolkit and serves the entry point's model_fn.
"""


import pytest

from support import require_image
from test_env_only import proxy, run_notebook, up  # noqa: F401 (fixtures)

NOTEBOOK = r'''
import json, time
import boto3, numpy as np, sagemaker
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer
from sagemaker.deserializers import CSVDeserializer
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

role = "arn:aws:iam::123456789012:role/SageMakerRole"
session = sagemaker.Session()
sm = boto3.client("sagemaker")
image = sagemaker.image_uris.retrieve("xgboost", session.boto_region_name, "1.7-1")

# y = 3 a + 2 b - c, with a little noise; the label first, no header, as the algorithm reads CSV.
rng = np.random.default_rng(0)
def rows(n):
    x = rng.uniform(size=(n, 3))
    y = x @ [3.0, 2.0, -1.0] + rng.normal(scale=0.05, size=n)
    return np.column_stack([y, x])
inputs = {}
for channel, n in (("train", 400), ("validation", 100)):
    np.savetxt(f"{channel}.csv", rows(n), delimiter=",", fmt="%.6f")
    uri = session.upload_data(f"{channel}.csv", key_prefix=f"xgboost/{channel}")
    inputs[channel] = TrainingInput(uri, content_type="text/csv")

estimator = Estimator(image_uri=image, role=role, instance_count=1, instance_type="ml.m5.large")
estimator.set_hyperparameters(objective="reg:squarederror", num_round=40)
tuner = HyperparameterTuner(
    estimator, objective_metric_name="validation:rmse", objective_type="Minimize",
    hyperparameter_ranges={"eta": ContinuousParameter(0.1, 0.5), "max_depth": IntegerParameter(2, 5)},
    max_jobs=4, max_parallel_jobs=2)
tuner.fit(inputs)
best = tuner.best_training_job()
description = tuner.describe()
best_job = sm.describe_training_job(TrainingJobName=best)

# Points inside the training data: trees are worst at its corners (a tuned model with
# shallow trees and a small eta predicted 2.47 for 3 at (1, 0, 0)).
sample = "0.5,0.5,0.5\n0.8,0.3,0.2\n0.3,0.6,0.7"
predictor = tuner.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False,
                         serializer=CSVSerializer(), deserializer=CSVDeserializer())
sm.get_waiter("endpoint_in_service").wait(
    EndpointName=predictor.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
answer = predictor.predict(sample)
predictor.delete_endpoint()

# Batch transform, one record per line.
np.savetxt("batch.csv", rng.uniform(size=(25, 3)), delimiter=",", fmt="%.6f")
batch_in = session.upload_data("batch.csv", key_prefix="xgboost/batch")
transformer = Estimator.attach(best).transformer(
    instance_count=1, instance_type="ml.m5.large", strategy="MultiRecord",
    assemble_with="Line", accept="text/csv")
transformer.transform(batch_in, content_type="text/csv", split_type="Line", wait=True, logs=False)
out = transformer.output_path.rstrip("/") + "/batch.csv.out"
bucket, key = out[len("s3://"):].split("/", 1)
lines = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()

# The container's own validation, as a failed job's reason.
bad = Estimator(image_uri=image, role=role, instance_count=1, instance_type="ml.m5.large")
bad.set_hyperparameters(objective="reg:squarederror", num_round=10, eta=1.5)
try:
    bad.fit(inputs, logs=False)
    failure = None
except Exception as e:
    failure = sm.describe_training_job(TrainingJobName=bad.latest_training_job.name)["FailureReason"]

print(json.dumps({
    "image": image, "best": best, "answer": answer, "batch": lines, "failure": failure,
    "tuning": {k: description[k] for k in ("HyperParameterTuningJobStatus", "TrainingJobStatusCounters",
                                           "ObjectiveStatusCounters", "BestTrainingJob")},
    "definitions": [d["Name"] for d in best_job["AlgorithmSpecification"].get("MetricDefinitions", [])],
    "final_metrics": {m["MetricName"]: m["Value"] for m in best_job["FinalMetricDataList"]},
    "model_data": best_job["ModelArtifacts"]["S3ModelArtifacts"],
}, default=str))
'''


@pytest.fixture(scope="module")
def notebook(up, proxy, tmp_path_factory):  # noqa: F811
    require_image("sagedock/xgboost:latest")
    exports, _ = up
    work = tmp_path_factory.mktemp("xgboost")
    return run_notebook(exports, proxy, work, NOTEBOOK, timeout=1200)[0]


def test_the_tuner_optimises_the_algorithms_own_metric(notebook):
    assert notebook["image"].endswith("/sagemaker-xgboost:1.7-1"), notebook["image"]
    tuning = notebook["tuning"]
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 4
    assert tuning["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    best = tuning["BestTrainingJob"]
    assert best["TrainingJobName"] == notebook["best"]
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    assert objective["MetricName"] == "validation:rmse"
    tuned = best["TunedHyperParameters"]
    assert 0.1 <= float(tuned["eta"]) <= 0.5 and 2 <= int(tuned["max_depth"]) <= 5
    # SageMaker attached the algorithm's metric definitions to a job that gave none.
    assert "validation:rmse" in notebook["definitions"] and "train:rmse" in notebook["definitions"]
    metrics = notebook["final_metrics"]
    assert metrics["validation:rmse"] == objective["Value"]
    # train-rmse comes first on each evaluation line, validation-rmse after it.
    assert 0 < metrics["train:rmse"] < 0.3 and 0 < metrics["validation:rmse"] < 0.3, metrics
    assert notebook["model_data"].endswith("/output/model.tar.gz")


def test_the_best_model_predicts_csv_and_transforms_line_by_line(notebook):
    # One prediction per line, each near 3 a + 2 b - c.
    predictions = [float(row[0]) for row in notebook["answer"]]
    assert len(predictions) == 3, notebook["answer"]
    for got, want in zip(predictions, (2.0, 2.8, 1.4)):
        assert abs(got - want) < 0.4, predictions
    batch = notebook["batch"]
    assert len(batch) == 25 and all(-1.5 < float(line) < 5.5 for line in batch), batch


def test_an_out_of_range_hyperparameter_fails_with_the_containers_message(notebook):
    assert notebook["failure"] is not None, "the job with eta=1.5 completed"
    assert "Hyperparameter eta: 1.5 is not in [0, 1]" in notebook["failure"], notebook["failure"]


SCRIPT = r'''
import argparse, os
import numpy as np
import xgboost as xgb

def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "model.json"))
    return booster

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_round", type=int, default=10)
    parser.add_argument("--max_depth", type=int, default=3)
    args, _ = parser.parse_known_args()
    data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    dtrain = xgb.DMatrix(data[:, 1:], label=data[:, 0])
    booster = xgb.train({"max_depth": args.max_depth, "objective": "reg:squarederror"}, dtrain,
                        num_boost_round=args.num_round, evals=[(dtrain, "train")])
    print(f"script mode trained {args.num_round} rounds with xgboost {xgb.__version__}", flush=True)
    booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"))
'''

SCRIPT_NOTEBOOK = r'''
import json
import boto3, numpy as np, sagemaker
from sagemaker.xgboost import XGBoost
from sagemaker.serializers import CSVSerializer

session = sagemaker.Session()
rng = np.random.default_rng(2)
x = rng.uniform(size=(300, 2))
np.savetxt("train.csv", np.column_stack([x @ [2.0, -1.0], x]), delimiter=",", fmt="%.6f")
uri = session.upload_data("train.csv", key_prefix="xgboost-script/train")
estimator = XGBoost(entry_point="xgb_train.py", framework_version="1.7-1", py_version="py3",
                    instance_type="ml.m5.large", instance_count=1,
                    role="arn:aws:iam::123456789012:role/SageMakerRole",
                    hyperparameters={"num_round": 30, "max_depth": 4})
estimator.fit({"train": uri}, logs=False)
job = estimator.latest_training_job.name
log = boto3.client("logs").filter_log_events(
    logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job + "/")
predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False,
                             serializer=CSVSerializer())
boto3.client("sagemaker").get_waiter("endpoint_in_service").wait(
    EndpointName=predictor.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
answer = predictor.predict("1.0,0.0\n0.0,1.0")
predictor.delete_endpoint()
print(json.dumps({"answer": answer, "log": [e["message"] for e in log["events"]]}, default=str))
'''


def test_script_mode_trains_the_entry_point_and_serves_its_model_fn(up, proxy, tmp_path):  # noqa: F811
    require_image("sagedock/xgboost:latest")
    exports, _ = up
    (tmp_path / "xgb_train.py").write_text(SCRIPT)
    result, _ = run_notebook(exports, proxy, tmp_path, SCRIPT_NOTEBOOK)
    assert "script mode trained 30 rounds with xgboost 1.7.4" in result["log"], result["log"][-20:]
    answer = result["answer"]
    # XGBoostPredictor asks for text/csv: the default output_fn's one value per line.
    assert len(answer) == 2 and all(len(row) == 1 for row in answer), answer
    first, second = (float(row[0]) for row in answer)
    assert abs(first - 2.0) < 0.3 and abs(second + 1.0) < 0.3, answer
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"
