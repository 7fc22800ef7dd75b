"""The serving module of sagedock/xgboost: gunicorn runs `main` as its WSGI application,
behind nginx, through the SageMaker containers library's server (as AWS's image does).

Algorithm mode (no SAGEMAKER_PROGRAM): every file in /opt/ml/model not starting with `.`
is a booster (pickled, or in XGBoost's own format, as `xgboost-model` is); several are an
ensemble whose predictions are averaged.
- GET /ping: 200 once the model loads.
- GET /execution-parameters: what batch transform may send at once.
- POST /invocations: text/csv (rows without the label), text/libsvm or
  application/x-recordio-protobuf; no Content-Type means LIBSVM; anything else 415. An empty
  body answers 204. Accept (missing or */* means SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT,
  default text/csv): text/csv answers one prediction per line, application/json
  {"predictions": [{"score": p}, ...]}; another type is 406. Under batch transform
  (SAGEMAKER_BATCH) the answer is one line per record whatever the Accept.
  SAGEMAKER_INFERENCE_OUTPUT selects what each prediction carries (selectable.py).

Script mode (SAGEMAKER_PROGRAM, from XGBoost(entry_point=...)): the entry point's
model_fn (required), input_fn, predict_fn and output_fn (or transform_fn); the defaults
read CSV, LIBSVM or RecordIO-protobuf into a DMatrix, call model.predict and encode
JSON, CSV or NPY, default Accept application/json.
"""

import json
import os
import pickle

import numpy as np
import xgboost as xgb
from sagemaker_containers.beta.framework import encoders, env, transformer, worker

from . import UserError, data, selectable

SUPPORTED_ACCEPTS = ["application/json", "application/jsonlines",
                     "application/x-recordio-protobuf", "text/csv"]
MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", 6 * 1024 * 1024))
_app = None


def load_boosters(model_dir):
    boosters = []
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                booster = pickle.load(f)
        except Exception:
            booster = xgb.Booster()
            booster.load_model(path)
        booster.set_param("nthread", 1)
        boosters.append(booster)
    if not boosters:
        raise RuntimeError("no model file in {}".format(model_dir))
    return boosters


class _Response:
    def __init__(self, body, status, content_type="text/plain"):
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.content_type = content_type


STATUS = {200: "200 OK", 204: "204 No Content", 400: "400 Bad Request",
          404: "404 Not Found", 406: "406 Not Acceptable", 413: "413 Request Entity Too Large",
          415: "415 Unsupported Media Type", 500: "500 Internal Server Error"}


class AlgorithmApp:
    """The built-in algorithm's server."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.boosters = None
        self.batch = bool(os.environ.get("SAGEMAKER_BATCH"))

    def load(self):
        if self.boosters is None:
            self.boosters = load_boosters(self.model_dir)

    def ping(self):
        try:
            self.load()
        except Exception as e:
            return _Response("Unable to load model: {}".format(e), 404)
        return _Response("\n", 200)

    def execution_parameters(self):
        parameters = {"MaxConcurrentTransforms": int(os.environ.get(
            "SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1)),
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": MAX_CONTENT_LENGTH // (1024 * 1024)}
        return _Response(json.dumps(parameters), 200, "application/json")

    def invocations(self, body, content_type, accept):
        if not body:
            return _Response("", 204)
        try:
            dtest, _ = data.parse_request(body, content_type)
        except (RuntimeError, UserError) as e:
            return _Response(str(e), 415)
        try:
            self.load()
        except Exception as e:
            return _Response("Unable to load model: {}".format(e), 500)
        try:
            preds = np.mean([b.predict(dtest, validate_features=False) for b in self.boosters], axis=0)
        except Exception as e:
            return _Response("Unable to evaluate payload provided: {}".format(e), 400)
        accept = (accept or "").split(";")[0].strip().lower()
        if not accept or accept == "*/*":
            accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
        elif accept not in SUPPORTED_ACCEPTS:
            return _Response("Accept type {} is not supported. Please use supported accept "
                             "types: {}.".format(accept, SUPPORTED_ACCEPTS), 406)
        keys = selectable.selected_keys()
        if keys is not None:
            try:
                config = json.loads(self.boosters[0].save_config())["learner"]
                selected = selectable.select(preds, keys, config["objective"]["name"],
                                             config["learner_model_param"].get("num_class", ""))
                return _Response(selectable.encode(selected, keys, accept, self.batch), 200, accept)
            except Exception as e:
                return _Response(str(e), 500)
        values = preds.tolist()
        if self.batch:
            return _Response("\n".join(map(str, values)) + "\n", 200, accept)
        if accept == "application/json":
            return _Response(json.dumps({"predictions": [{"score": v} for v in values]}), 200, accept)
        try:
            return _Response(encoders.encode(values, accept), 200, accept)
        except Exception as e:
            # AWS's container answers jsonlines and recordio-protobuf Accepts with an error
            # too: its encoders know JSON, CSV and NPY only.
            return _Response("{} cannot be encoded: {}".format(accept, e), 500)

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "GET" and path == "/ping":
            response = self.ping()
        elif method == "GET" and path == "/execution-parameters":
            response = self.execution_parameters()
        elif method == "POST" and path == "/invocations":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > MAX_CONTENT_LENGTH:
                response = _Response("Request Entity Too Large", 413)
            else:
                body = environ["wsgi.input"].read(length) if length else b""
                response = self.invocations(body, environ.get("CONTENT_TYPE"),
                                            environ.get("HTTP_ACCEPT"))
        else:
            response = _Response("Not Found", 404)
        start_response(STATUS[response.status], [("Content-Type", response.content_type),
                                                 ("Content-Length", str(len(response.body)))])
        return [response.body]


def _default_input_fn(body, content_type):
    try:
        return data.parse_request(body, content_type)[0]
    except (RuntimeError, UserError) as e:
        from sagemaker_containers import _errors

        raise _errors.UnsupportedFormatError(content_type) from e


def _default_predict_fn(dmatrix, model):
    return model.predict(dmatrix, validate_features=False)


def _default_output_fn(prediction, accept):
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)


def _script_app(module_name):
    import importlib

    module = importlib.import_module(module_name)
    hooks = {name: getattr(module, name, None)
             for name in ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")}
    if hooks["model_fn"] is None:
        raise RuntimeError("{} defines no model_fn: the XGBoost container in script mode needs "
                           "one to load the model".format(module_name))
    if hooks["transform_fn"] is not None:
        # The library refuses transform_fn together with any of the three.
        hooked = transformer.Transformer(model_fn=hooks["model_fn"], transform_fn=hooks["transform_fn"],
                                         input_fn=hooks["input_fn"], predict_fn=hooks["predict_fn"],
                                         output_fn=hooks["output_fn"])
    else:
        hooked = transformer.Transformer(model_fn=hooks["model_fn"],
                                         input_fn=hooks["input_fn"] or _default_input_fn,
                                         predict_fn=hooks["predict_fn"] or _default_predict_fn,
                                         output_fn=hooks["output_fn"] or _default_output_fn)
    hooked.initialize()
    return worker.Worker(transform_fn=hooked.transform, module_name=module_name)


def main(environ, start_response):
    """The WSGI application; each gunicorn worker builds it on its first request."""
    global _app
    if _app is None:
        serving = env.ServingEnv()
        if serving.module_name:
            _app = _script_app(serving.module_name)
        else:
            _app = AlgorithmApp(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    return _app(environ, start_response)
