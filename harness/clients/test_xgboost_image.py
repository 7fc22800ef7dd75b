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
    require_image(IMAGE)
    p = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python3", IMAGE, "-c", CASES],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
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
