"""Selectable inference output: SAGEMAKER_INFERENCE_OUTPUT names what each prediction
carries (`predicted_label,probability`, …), as SageMaker's XGBoost container answers it.

The keys a model's objective gives are below; any other key asked for is answered NaN (and
logged). Encodings: JSON `{"predictions": [{key: value, ...}]}`, JSON Lines one object per
line, CSV one row per prediction in the order asked (lists quoted), RecordIO-protobuf one
record per prediction with each key a float32 tensor of its `label` map.
"""

import io
import json
import logging
import os

import numpy as np

KEYS_BY_OBJECTIVE = {
    "reg:squarederror": ["predicted_score"],
    "reg:logistic": ["predicted_score"],
    "reg:gamma": ["predicted_score"],
    "reg:absoluteerror": ["predicted_score"],
    "reg:tweedie": ["predicted_score"],
    "binary:logistic": ["predicted_label", "labels", "probability", "probabilities",
                        "raw_score", "raw_scores"],
    "binary:logitraw": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "binary:hinge": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "multi:softmax": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "multi:softprob": ["predicted_label", "labels", "probability", "probabilities",
                       "raw_score", "raw_scores"],
}


def selected_keys():
    """The keys SAGEMAKER_INFERENCE_OUTPUT asks for, None when it is not set."""
    value = os.environ.get("SAGEMAKER_INFERENCE_OUTPUT")
    return None if value is None else value.replace(" ", "").lower().split(",")


def _labels(objective, num_class):
    if objective.startswith("binary:"):
        return [0, 1]
    if objective.startswith("multi:") and num_class:
        return list(range(int(num_class)))
    return np.nan


def _value(key, objective, p, num_class):
    softprob = objective == "multi:softprob"
    if key == "predicted_score":
        return p.item()
    if key == "labels":
        return _labels(objective, num_class)
    if key == "predicted_label":
        if softprob:
            return int(np.argmax(p))
        if objective == "binary:logistic":
            return int(p > 0.5)
        if objective == "binary:logitraw":
            return int(p > 0)
        return p.item()
    if key in ("probability", "raw_score") and softprob:
        return max(p).item()
    if key in ("probabilities", "raw_scores") and softprob:
        return p.tolist()
    if key in ("probability", "raw_score"):
        return p.item()
    # probabilities / raw_scores of a binary or softmax model: [1 - p, p]
    return [1.0 - p.item(), p.item()]


def select(predictions, keys, objective, num_class):
    """One {key: value} per prediction."""
    if objective not in KEYS_BY_OBJECTIVE:
        raise ValueError("Objective `{}` unsupported for selectable inference predictions."
                         .format(objective))
    valid = KEYS_BY_OBJECTIVE[objective]
    invalid = [k for k in keys if k not in valid]
    if invalid:
        logging.warning("Selected key(s) %s incompatible for objective '%s'. Please use list of "
                        "compatible selectable inference predictions: %s", invalid, objective, valid)
    return [{k: (_value(k, objective, np.asarray(p), num_class) if k in valid else np.nan)
             for k in keys} for p in predictions]


def encode(selected, keys, accept, batch):
    if accept == "application/json":
        return json.dumps({"predictions": selected})
    if accept == "application/jsonlines":
        return "\n".join(json.dumps(p) for p in selected)
    if accept == "text/csv":
        rows = [",".join('"{}"'.format(p[k]) if isinstance(p[k], list) else str(p[k]) for k in keys)
                for p in selected]
        return "\n".join(rows) + ("\n" if batch else "")
    if accept == "application/x-recordio-protobuf":
        from sagemaker_containers import _recordio, record_pb2

        out = io.BytesIO()
        for p in selected:
            record = record_pb2.Record()
            for key, value in p.items():
                record.label[key].float32_tensor.values.extend(value if isinstance(value, list) else [value])
            _recordio._write_recordio(out, record.SerializeToString())
        return out.getvalue()
    raise RuntimeError("Cannot encode selected predictions into accept type '{}'.".format(accept))
