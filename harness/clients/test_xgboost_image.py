"""sagedock/xgboost's algorithm mode, one level down from the SDK flows of
test_sdk_xgboost.py: the hyperparameter validation and the channel rules of SageMaker's
XGBoost container, each with the container's message, run inside the image by its own
modules, and a training run on LIBSVM channels through the image's `train`.
"""

import json
import re
import subprocess

from support import require_image

IMAGE = "sagedock/xgboost:latest"


def run_in_image(script):
    """Runs a Python script in the image; returns the JSON its last line prints."""
    require_image(IMAGE)
    p = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python3", IMAGE, "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])

CASES = r'''
import json
from sagedock_xgboost import UserError, hyperparameters, training
cases = {
    "missing": {"eta": "0.1"},
    "extraneous": {"num_round": "5", "silent": "1"},
    "unparsable": {"num_round": "50.0"},
    "out_of_range": {"num_round": "5", "max_depth": "-1"},
    "open_interval": {"num_round": "5", "subsample": "0"},
    "categorical": {"num_round": "5", "booster": "forest"},
    "metric": {"num_round": "5", "objective": "reg:squarederror", "eval_metric": "rmse,foo"},
    "auc_regression": {"num_round": "5", "objective": "reg:squarederror", "eval_metric": "auc"},
    "multi_without_classes": {"num_round": "5", "objective": "multi:softmax"},
    "alias": {"num_round": "5", "learning_rate": "0.2", "reg_alpha": "1"},
    "tuning": {"num_round": "5", "_tuning_objective_metric": "validation:rmse"},
}
out = {}
for name, raw in cases.items():
    try:
        out[name] = {"ok": {k: str(v) for k, v in hyperparameters.validate(raw).items()}}
    except UserError as e:
        out[name] = {"error": str(e)}
for name, channels in {
    "no_train": {"validation": {"ContentType": "text/csv"}},
    "extra_channel": {"train": {}, "test": {}},
    "fast_file": {"train": {"TrainingInputMode": "FastFile", "S3DistributionType": "FullyReplicated"}},
}.items():
    try:
        training.validate_channels(channels)
        out[name] = {"ok": True}
    except UserError as e:
        out[name] = {"error": str(e)}
print(json.dumps(out))
'''


def test_hyperparameters_and_channels_are_refused_with_the_containers_messages():
    got = run_in_image(CASES)
    errors = {name: result.get("error") for name, result in got.items()}
    assert errors["missing"] == "Missing required hyperparameter: num_round"
    assert errors["extraneous"] == "Extraneous hyperparameter found: silent"
    assert errors["unparsable"] == "Hyperparameter num_round: could not parse value (caused by ValueError)"
    assert errors["out_of_range"] == "Hyperparameter max_depth: -1 is not in [0, +inf)"
    assert errors["open_interval"] == "Hyperparameter subsample: 0.0 is not in (0, 1]"
    assert errors["categorical"] == "Hyperparameter booster: forest is not in ['gbtree', 'gblinear', 'dart']"
    assert errors["metric"].startswith("Hyperparameter eval_metric: value ['foo'] not in range ["), errors
    assert errors["auc_regression"] == (
        "Metric 'auc' can only be applied for classification and ranking problems.")
    assert errors["multi_without_classes"] == (
        "Require input for parameter 'num_class' for multi-classification")
    assert got["alias"]["ok"] == {"num_round": "5", "eta": "0.2", "alpha": "1.0"}
    assert got["tuning"]["ok"]["_tuning_objective_metric"] == "validation:rmse"
    assert errors["no_train"] == "Missing required channel: train"
    assert errors["extra_channel"] == "Extraneous channel found: test"
    # sagedock writes FastFile as the SDK asks for it; the stand-in reads it as File.
    assert got["fast_file"] == {"ok": True}


def test_libsvm_channels_train_and_the_log_has_the_evaluation_lines(tmp_path):
    require_image(IMAGE)
    ml = tmp_path / "ml"
    for folder in ("input/config", "input/data/train", "input/data/validation", "model", "output"):
        (ml / folder).mkdir(parents=True)
    # Label, then index:value pairs; feature 0 decides the label.
    rows = [f"{i % 2} 0:{i % 2 + 0.1 * (i % 3)} 1:{(i * 7) % 5}" for i in range(60)]
    (ml / "input/data/train/part-0.libsvm").write_text("\n".join(rows[:40]) + "\n")
    (ml / "input/data/validation/part-0.libsvm").write_text("\n".join(rows[40:]) + "\n")
    (ml / "input/data/train/_SUCCESS").write_text("")  # skipped, as Spark's markers are
    (ml / "input/config/hyperparameters.json").write_text(json.dumps(
        {"num_round": "3", "objective": "binary:logistic", "eval_metric": "error,auc"}))
    channel = {"ContentType": "text/libsvm", "TrainingInputMode": "File",
               "S3DistributionType": "FullyReplicated"}
    (ml / "input/config/inputdataconfig.json").write_text(
        json.dumps({"train": channel, "validation": channel}))
    p = subprocess.run(["docker", "run", "--rm", "-v", f"{ml}:/opt/ml", IMAGE, "train"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [line for line in (p.stdout + p.stderr).splitlines() if re.match(r"\[\d+\]\t", line)]
    assert lines[0].startswith("[0]\ttrain-error:") and "\tvalidation-auc:" in lines[0], lines
    assert len(lines) == 3 and lines[-1].startswith("[2]\t"), lines
    assert (ml / "model/xgboost-model").stat().st_size > 0
    assert (ml / "output/success").exists()

    # A CSV file in a LIBSVM channel: the container's message, in the failure file.
    (ml / "output/success").unlink()
    (ml / "input/data/train/part-0.libsvm").write_text("1,0.5,0.25\n0,0.1,0.2\n")
    p = subprocess.run(["docker", "run", "--rm", "-v", f"{ml}:/opt/ml", IMAGE, "train"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    failure = (ml / "output/failure").read_text()
    assert "First line '1,0.5,0.25...' of file 'part-0.libsvm' is not 'LIBSVM' format." in failure, failure


SERVE = r'''
import json, os, sys
import numpy as np, xgboost as xgb
os.makedirs("/tmp/model")
x = np.random.default_rng(0).uniform(size=(200, 2))
xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=(x[:, 0] > x[:, 1]).astype(float)),
          10).save_model("/tmp/model/xgboost-model")
from sagedock_xgboost.serving import AlgorithmApp
app = AlgorithmApp("/tmp/model")
def ask(body, content_type, accept):
    r = app.invocations(body, content_type, accept)
    return [r.status, r.content_type, r.body.decode("utf-8", "replace")]
out = {
    "csv": ask(b"0.9,0.1\n0.1,0.9", "text/csv", None),
    "json": ask(b"0.9,0.1", "text/csv", "application/json"),
    "libsvm_default": ask(b"0:0.9 1:0.1", None, "text/csv"),
    "json_body": ask(b"[[0.9, 0.1]]", "application/json", "text/csv"),
    "bad_accept": ask(b"0.9,0.1", "text/csv", "text/html"),
    "empty": ask(b"", "text/csv", None),
}
import io
from sagemaker_containers import _recordio
records = io.BytesIO()
_recordio._write_numpy_to_dense_tensor(records, np.array([[0.9, 0.1], [0.1, 0.9]]))
out["recordio"] = ask(records.getvalue(), "application/x-recordio-protobuf", "text/csv")
os.environ["SAGEMAKER_INFERENCE_OUTPUT"] = "predicted_label, probabilities,predicted_score"
out["selected_csv"] = ask(b"0.9,0.1\n0.1,0.9", "text/csv", "text/csv")
out["selected_jsonlines"] = ask(b"0.9,0.1", "text/csv", "application/jsonlines")
app.batch = True
del os.environ["SAGEMAKER_INFERENCE_OUTPUT"]
out["batch"] = ask(b"0.9,0.1\n0.1,0.9", "text/csv", "application/json")
print(json.dumps(out))
'''


def test_the_algorithms_server_answers_as_the_container_does():
    got = run_in_image(SERVE)
    status, content_type, body = got["csv"]
    assert (status, content_type) == (200, "text/csv")
    high, low = (float(v) for v in body.split())
    assert high > 0.5 > low, body
    status, _, body = got["json"]
    assert status == 200 and list(json.loads(body)["predictions"][0]) == ["score"], body
    assert got["libsvm_default"][0] == 200, "no Content-Type reads as LIBSVM"
    status, _, body = got["recordio"]
    assert status == 200 and body == got["csv"][2], (status, body)
    assert got["json_body"][0] == 415 and "is not an accepted ContentType" in got["json_body"][2]
    assert got["bad_accept"][0] == 406 and got["bad_accept"][2].startswith(
        "Accept type text/html is not supported.")
    assert got["empty"][0] == 204
    # Selectable output: the keys in the order asked, a list quoted, a key the objective
    # lacks answered NaN.
    rows = got["selected_csv"][2].split("\n")
    assert rows[0].startswith('1,"[0.') and rows[0].endswith(']",nan'), rows
    assert rows[1].startswith("0,"), rows
    line = json.loads(got["selected_jsonlines"][2].replace("NaN", "null"))
    assert line["predicted_label"] == 1 and len(line["probabilities"]) == 2, line
    # Under batch transform: one line per record whatever the Accept.
    status, content_type, body = got["batch"]
    assert content_type == "application/json" and len(body.splitlines()) == 2 and body.endswith("\n")
