"""Algorithm-mode training: `train` when the job has no entry point (no sagemaker_program
hyperparameter), as SageMaker's XGBoost container runs the built-in algorithm.

It reads /opt/ml/input/config/{hyperparameters,inputdataconfig}.json, validates the
hyperparameters and the channels (`train` required, `validation` optional), reads the
channels' CSV or LIBSVM files, trains, prints one evaluation line per round
(`[3]\ttrain-rmse:1.52\tvalidation-rmse:2.25`, which CloudWatch and sagedock show with the
tab as `#011`, and which the algorithm's metric definitions read) and saves the booster as
/opt/ml/model/xgboost-model in XGBoost's own format. A mistake in the job is written to
/opt/ml/output/failure and the process exits 1; success writes /opt/ml/output/success.
"""

import json
import logging
import os
import sys
import traceback

import numpy as np
import xgboost as xgb

from . import UserError, data, hyperparameters as hp

PREFIX = "/opt/ml"
CONFIG = os.path.join(PREFIX, "input", "config")
CHANNELS = ("train", "validation", "code")
MODES = ("File", "FastFile", "Pipe")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
# Hyperparameters the container reads itself; the rest go to XGBoost.
CONTAINER_ONLY = ("num_round", "early_stopping_rounds", "csv_weights", "_tuning_objective_metric",
                  "_kfold", "_num_cv_round", "save_model_on_termination")
NATIVE_METRICS = {"rmse", "rmsle", "mae", "mape", "mphe", "logloss", "error", "merror",
                  "mlogloss", "auc", "aucpr", "ndcg", "map", "poisson-nloglik", "gamma-nloglik",
                  "cox-nloglik", "gamma-deviance", "tweedie-nloglik", "aft-nloglik",
                  "interval-regression-accuracy"}


def _read_json(name, default=None):
    path = os.path.join(CONFIG, name)
    if default is not None and not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def validate_channels(config):
    if "train" not in config:
        raise UserError("Missing required channel: train")
    for name, channel in config.items():
        if name not in CHANNELS:
            raise UserError("Extraneous channel found: {}".format(name))
        supported = (channel.get("TrainingInputMode", "File") in MODES
                     and channel.get("S3DistributionType", "FullyReplicated") in DISTRIBUTIONS)
        if not supported:
            raise UserError("Channel configuration for '{}' channel is not supported: {}"
                            .format(name, channel))


def _labels(preds, objective):
    if preds.ndim == 2:
        return np.argmax(preds, axis=1)
    if objective and objective.startswith("binary:"):
        return (preds > (0.0 if objective == "binary:logitraw" else 0.5)).astype(int)
    return np.rint(preds)


def custom_metric(names, objective):
    """The metrics XGBoost does not compute itself, through scikit-learn, as the container
    computes them (`accuracy`, `f1`, `mse`, `r2`, …); None when there are none."""
    if not names:
        return None
    from sklearn import metrics as m

    def scores(preds, dmatrix):
        y = dmatrix.get_label()
        label = _labels(preds, objective)
        table = {
            "accuracy": lambda: m.accuracy_score(y, label),
            "balanced_accuracy": lambda: m.balanced_accuracy_score(y, label),
            "f1": lambda: m.f1_score(y, label, average="weighted"),
            "f1_binary": lambda: m.f1_score(y, label, average="binary"),
            "f1_macro": lambda: m.f1_score(y, label, average="macro"),
            "mse": lambda: m.mean_squared_error(y, preds),
            "r2": lambda: m.r2_score(y, preds),
            "precision": lambda: m.precision_score(y, label, average="binary"),
            "precision_macro": lambda: m.precision_score(y, label, average="macro"),
            "precision_micro": lambda: m.precision_score(y, label, average="micro"),
            "recall": lambda: m.recall_score(y, label, average="binary"),
            "recall_macro": lambda: m.recall_score(y, label, average="macro"),
            "recall_micro": lambda: m.recall_score(y, label, average="micro"),
        }
        return [(name, float(table[name]())) for name in names]

    return scores


def _xgboost_params(values, native):
    params = {}
    for name, value in values.items():
        if name in CONTAINER_ONLY or name == "eval_metric":
            continue
        if name == "updater":
            value = ",".join(value)
        elif name == "monotone_constraints":
            value = "(" + ",".join(str(v) for v in value) + ")"
        elif name == "interaction_constraints":
            value = str(value)
        params[name] = value
    if native:
        params["eval_metric"] = native
    params.setdefault("nthread", os.cpu_count() or 1)
    return params


def train(values, channels, train_path, validation_path, model_dir):
    """Trains with validated hyperparameters `values`; saves the model in `model_dir`."""
    kind = data.content_type(channels["train"].get("ContentType"))
    weights = values.get("csv_weights") == 1
    dtrain = data.read_channel(train_path, kind, weights)
    if dtrain is None:
        raise UserError("No data in training channel path {}".format(train_path))
    dval = data.read_channel(validation_path, kind, weights) if validation_path else None
    if "_kfold" in values:
        raise UserError("Hyperparameter _kfold: cross-validation is not run by sagedock's XGBoost image")

    tuning = values.get("_tuning_objective_metric")
    tuning_metric = tuning.split(":", 1)[1] if tuning else None
    wanted = list(values.get("eval_metric", []))
    if tuning_metric:
        wanted = sorted(set(wanted) | {tuning_metric})
    native = [name for name in wanted if name.split("@")[0] in NATIVE_METRICS]
    custom = [name for name in wanted if name.split("@")[0] not in NATIVE_METRICS]
    params = _xgboost_params(values, native)

    evals = [(dtrain, "train")] + ([(dval, "validation")] if dval is not None else [])
    callbacks = [xgb.callback.EvaluationMonitor()]
    rounds = values.get("early_stopping_rounds")
    if rounds and dval is not None:
        metric = tuning_metric or (wanted[-1] if wanted else None)
        callbacks.append(xgb.callback.EarlyStopping(
            rounds=rounds, metric_name=metric, data_name="validation",
            maximize=metric in hp.MAXIMIZE_METRICS if metric else None, save_best=False))
    logging.info("XGBoost parameters: %s", params)
    try:
        booster = xgb.train(params, dtrain, num_boost_round=values["num_round"], evals=evals,
                            custom_metric=custom_metric(custom, values.get("objective")),
                            callbacks=callbacks, verbose_eval=False)
    except xgb.core.XGBoostError as e:
        raise UserError("XGB train call failed with exception:\n {}".format(e))
    os.makedirs(model_dir, exist_ok=True)
    booster.save_model(os.path.join(model_dir, "xgboost-model"))


def run_algorithm_mode():
    raw = _read_json("hyperparameters.json", {})
    channels = _read_json("inputdataconfig.json", {})
    resources = _read_json("resourceconfig.json", {"hosts": ["algo-1"], "current_host": "algo-1"})
    values = hp.validate(raw)
    validate_channels(channels)
    data_dir = os.path.join(PREFIX, "input", "data")
    validation = os.path.join(data_dir, "validation") if "validation" in channels else None
    model_dir = os.environ.get("SM_MODEL_DIR", os.path.join(PREFIX, "model"))
    hosts = resources.get("hosts", [])
    if len(hosts) > 1 and resources.get("current_host") != hosts[0]:
        # Without the distributed (Rabit) ring, each host trains on its own data; the first
        # host's model is the job's.
        logging.warning("Distributed training is not run by sagedock's XGBoost image: %s "
                        "trains on its own data and does not save a model",
                        resources.get("current_host"))
        model_dir = os.path.join("/tmp", "unsaved-model")
    train(values, channels, os.path.join(data_dir, "train"), validation, model_dir)


def main():
    logging.basicConfig(format="[%(asctime)s:%(levelname)s] %(message)s", level=logging.INFO)
    output = os.path.join(PREFIX, "output")
    os.makedirs(output, exist_ok=True)
    try:
        run_algorithm_mode()
    except Exception as e:
        user = isinstance(e, UserError)
        detail = str(e) if user else traceback.format_exc()
        logging.error("Reporting training FAILURE: %s", detail)
        with open(os.path.join(output, "failure"), "w") as f:
            f.write(("UserError: " if user else "framework error: \n") + detail)
        sys.exit(1)
    with open(os.path.join(output, "success"), "w"):
        pass
    logging.info("Reporting training SUCCESS")
