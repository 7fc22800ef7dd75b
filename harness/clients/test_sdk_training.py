"""The walkthroughs' training flows, as a notebook runs them, with nothing but the
environment lines `sagedock up` prints (no endpoint URL, bucket, image URI or session in
the code):

- 004 (Keras in TensorFlow script mode): `TensorFlow(entry_point=…).fit({"training": …,
  "validation": …})` with live logs, `estimator.deploy()`, `predict()`; then
  `HyperparameterTuner` over an IntegerParameter and a logarithmic ContinuousParameter,
  the objective read from the log by `metric_definitions`, `best_training_job()`,
  `tuner.deploy()`, `predict()`.
- 003: the same job's SavedModel (TF Serving layout under SM_MODEL_DIR) deployed with
  `TensorFlowModel(model_data=estimator.model_data).deploy()`.

The SDK resolves AWS's TensorFlow images from `framework_version`; sagedock's image map
runs sagedock/tensorflow-training and sagedock/tensorflow for them. Real Keras, real
TensorFlow, real containers; every child process goes through the recording proxy, which
must see nothing.
"""


import pytest

from support import require_image
from test_env_only import proxy, run_notebook, up  # noqa: F401 (fixtures)

TRAIN_SCRIPT = r'''
import argparse, os
import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--learning-rate", type=float, default=0.01)
parser.add_argument("--batch-size", type=int, default=32)
args, _ = parser.parse_known_args()

def load(channel):
    root = os.environ["SM_CHANNEL_" + channel.upper()]
    return np.load(os.path.join(root, "x.npy")), np.load(os.path.join(root, "y.npy"))

x_train, y_train = load("training")
x_val, y_val = load("validation")
print(f"x_train shape: {x_train.shape}, epochs {args.epochs}, learning rate {args.learning_rate}")

model = tf.keras.Sequential([
    tf.keras.Input(shape=(4,)),
    tf.keras.layers.Dense(16, activation="relu"),
    tf.keras.layers.Dense(2, activation="softmax"),
])
model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])

class Report(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1} - val_loss: {logs['val_loss']:.4f} - val_acc: {logs['val_accuracy']:.4f}", flush=True)

model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
          validation_data=(x_val, y_val), verbose=0, callbacks=[Report()])
model.export(os.path.join(os.environ["SM_MODEL_DIR"], "1"))
print("saved the model in TensorFlow Serving format")
'''

NOTEBOOK = r'''
import json, os, sys, time
import boto3, numpy as np, sagemaker
from sagemaker.tensorflow import TensorFlow, TensorFlowModel
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

role = "arn:aws:iam::123456789012:role/SageMakerRole"
session = sagemaker.Session()
sm = boto3.client("sagemaker")

def in_service(name):
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})

rng = np.random.default_rng(0)
for channel, n in (("training", 512), ("validation", 128)):
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    os.makedirs(f"data/{channel}", exist_ok=True)
    np.save(f"data/{channel}/x.npy", x)
    np.save(f"data/{channel}/y.npy", y)
inputs = {c: session.upload_data(f"data/{c}", key_prefix=f"keras/{c}") for c in ("training", "validation")}
sample = [[2.0, 2.0, 0.0, 0.0], [-2.0, -2.0, 0.0, 0.0]]
metrics = [{"Name": "val_acc", "Regex": "val_acc: ([0-9\\.]+)"}]

# 004: script mode, live logs, deploy from the estimator.
estimator = TensorFlow(entry_point="keras_train.py", role=role, instance_count=1,
                       instance_type="ml.m5.large", framework_version="2.13", py_version="py310",
                       hyperparameters={"epochs": 3, "learning-rate": 0.01, "batch-size": 32},
                       metric_definitions=metrics)
job_name = "keras-script-mode-" + time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
t0 = time.time()
estimator.fit(inputs, job_name=job_name, logs=True)
fit_seconds = time.time() - t0
predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
in_service(predictor.endpoint_name)
first = predictor.predict({"instances": sample})["predictions"]

# 003: the job's model data deployed as a TensorFlowModel.
model = TensorFlowModel(model_data=estimator.model_data, role=role, framework_version="2.13")
served = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
in_service(served.endpoint_name)
second = served.predict({"instances": sample})["predictions"]
predictor.delete_endpoint()
served.delete_endpoint()

# 004: tuning, then deploying the best job.
tuner = HyperparameterTuner(
    estimator, objective_metric_name="val_acc", objective_type="Maximize",
    hyperparameter_ranges={"epochs": IntegerParameter(1, 3),
                           "learning-rate": ContinuousParameter(0.001, 0.1, scaling_type="Logarithmic")},
    metric_definitions=metrics, max_jobs=3, max_parallel_jobs=2)
tuner.fit(inputs)
best = tuner.best_training_job()
description = tuner.describe()
tuned = tuner.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
in_service(tuned.endpoint_name)
third = tuned.predict({"instances": sample})["predictions"]
tuned.delete_endpoint()
print(json.dumps({
    "job": job_name, "fit_seconds": fit_seconds, "model_data": estimator.model_data,
    "first": first, "second": second, "third": third, "best": best,
    "tuned_endpoint": tuned.endpoint_name,
    "tuning": {k: description[k] for k in ("HyperParameterTuningJobStatus", "TrainingJobStatusCounters",
                                           "ObjectiveStatusCounters", "BestTrainingJob")},
    "tuning_job": tuner.latest_tuning_job.name,
}, default=str))
'''


@pytest.fixture(scope="module")
def images():
    require_image("sagedock/tensorflow-training:latest")
    require_image("sagedock/tensorflow:latest")


@pytest.fixture(scope="module")
def notebook(up, proxy, images, tmp_path_factory):  # noqa: F811
    exports, _ = up
    work = tmp_path_factory.mktemp("keras")
    (work / "keras_train.py").write_text(TRAIN_SCRIPT)
    return run_notebook(exports, proxy, work, NOTEBOOK, timeout=1500)


def test_fit_prints_the_job_log_live_and_deploy_predicts(notebook, proxy):  # noqa: F811
    result, stdout = notebook
    # fit(logs=True) printed the container's own lines from CloudWatch Logs.
    assert "x_train shape: (512, 4), epochs 3, learning rate 0.01" in stdout
    assert "val_acc: " in stdout and "saved the model in TensorFlow Serving format" in stdout
    assert result["model_data"] == (
        f"s3://sagemaker-us-east-1-123456789012/{result['job']}/output/model.tar.gz")
    for answer in (result["first"], result["second"]):
        assert len(answer) == 2 and all(len(p) == 2 for p in answer)
        # The two points are far on either side of the boundary the data was made with.
        assert answer[0][1] > 0.5 and answer[1][0] > 0.5, answer
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"


def test_the_tuner_runs_trials_and_deploys_the_best(notebook, up):  # noqa: F811
    result, _ = notebook
    tuning = result["tuning"]
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 3
    assert tuning["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    best = tuning["BestTrainingJob"]
    assert best["TrainingJobName"] == result["best"] == result["tuned_endpoint"]
    assert best["TrainingJobName"].startswith(result["tuning_job"] + "-")
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "val_acc"
    tuned = best["TunedHyperParameters"]
    assert 1 <= int(tuned["epochs"]) <= 3
    assert 0.001 <= float(tuned["learning-rate"]) <= 0.1
    answer = result["third"]
    assert len(answer) == 2 and answer[0][1] > 0.5 and answer[1][0] > 0.5, answer


SKLEARN_SCRIPT = r'''
import argparse, os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-C", type=float, default=1.0)
    args, _ = parser.parse_known_args()
    data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    model = LogisticRegression(C=args.C).fit(data[:, 1:], data[:, 0])
    print(f"train accuracy: {model.score(data[:, 1:], data[:, 0]):.3f}", flush=True)
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
'''

SKLEARN_NOTEBOOK = r'''
import json, os
import boto3, numpy as np, sagemaker
from sagemaker.sklearn import SKLearn

session = sagemaker.Session()
rng = np.random.default_rng(1)
x = rng.normal(size=(200, 2))
y = (x[:, 0] - x[:, 1] > 0).astype(float)
os.makedirs("data", exist_ok=True)
np.savetxt("data/train.csv", np.column_stack([y, x]), delimiter=",")
uri = session.upload_data("data", key_prefix="sklearn/train")
estimator = SKLearn(entry_point="sk_train.py", framework_version="1.2-1", py_version="py3",
                    instance_type="ml.m5.large", role="arn:aws:iam::123456789012:role/SageMakerRole",
                    hyperparameters={"C": 10.0},
                    metric_definitions=[{"Name": "train:accuracy", "Regex": "train accuracy: ([0-9.]+)"}])
estimator.fit({"train": uri}, logs=False)  # the Keras flow above checks the live log
job = boto3.client("sagemaker").describe_training_job(TrainingJobName=estimator.latest_training_job.name)
log = boto3.client("logs").filter_log_events(
    logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job["TrainingJobName"] + "/")
predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
boto3.client("sagemaker").get_waiter("endpoint_in_service").wait(
    EndpointName=predictor.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
answer = predictor.predict(np.array([[3.0, -3.0], [-3.0, 3.0]]))
predictor.delete_endpoint()
print(json.dumps({"image": job["AlgorithmSpecification"]["TrainingImage"],
                  "log": [e["message"] for e in log["events"]],
                  "metrics": job["FinalMetricDataList"], "answer": np.asarray(answer).tolist()}, default=str))
'''


def test_scikit_learn_trains_and_serves_from_one_image(up, proxy, tmp_path):  # noqa: F811
    require_image("sagedock/sklearn:latest")
    exports, _ = up
    (tmp_path / "sk_train.py").write_text(SKLEARN_SCRIPT)
    result, _ = run_notebook(exports, proxy, tmp_path, SKLEARN_NOTEBOOK)
    assert result["image"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3"), result["image"]
    assert result["metrics"][0]["MetricName"] == "train:accuracy"
    assert result["metrics"][0]["Value"] > 0.9
    assert result["answer"] == [1.0, 0.0]
    assert any(line.startswith("train accuracy: ") for line in result["log"]), result["log"][-20:]
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"
