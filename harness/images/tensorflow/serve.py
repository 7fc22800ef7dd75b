"""sagedock/tensorflow: SageMaker's TensorFlow Serving container contract on real TensorFlow.

SageMaker's TensorFlow serving image (sagemaker-tensorflow-serving-container) runs the
TensorFlow Serving binary behind a small web service. That binary is not on PyPI and this
machine reaches no container registry, so this image serves the same HTTP contract with
TensorFlow itself (``tensorflow-cpu`` from PyPI) loading the same SavedModels:

* models are found as that container finds them: every ``saved_model.pb`` under
  /opt/ml/model whose directory is a numeric version; the model's name is the version
  directory's parent (``/opt/ml/model/1/`` -> ``model``; ``/opt/ml/model/resnet/2/`` ->
  ``resnet``; the legacy ``export/Servo/<timestamp>/`` -> ``Servo``); the highest version
  of each is loaded;
* ``GET /ping``; ``POST /invocations`` with ``application/json`` (TensorFlow Serving's REST
  predict body: ``{"instances": [...]}`` row format or ``{"inputs": ...}`` columnar, with
  ``signature_name``), ``text/csv`` (each line one instance) or ``application/jsonlines``
  (each line one instance); the custom attributes ``tfs-model-name``, ``tfs-model-version``
  and ``tfs-method`` (``predict``; this image has no ``classify`` / ``regress``);
* TensorFlow Serving's own REST API on the same port: ``GET /v1/models/NAME`` and
  ``POST /v1/models/NAME[/versions/N]:predict``;
* ``code/inference.py`` (``code/lib`` on the path, ``code/requirements.txt`` pip-installed
  at start): ``handler(data, context)``, or ``input_handler(data, context)`` and / or
  ``output_handler(response, context)``, with the container's ``Context`` fields;
  ``context.rest_uri`` is this server's predict URL, ``response`` a ``requests.Response``.

Errors answer as TensorFlow Serving does: ``{"error": "..."}`` with status 400 (or 404 for
an unknown model), which SageMaker turns into a ModelError for the caller.

Standard library and TensorFlow only (plus ``requests`` for the handler contract).
"""

import base64
import collections
import csv
import importlib.util
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL_DIR = os.environ.get("SAGEDOCK_TF_MODEL_DIR", "/opt/ml/model")
PORT = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))

logging.basicConfig(level=logging.INFO, format="[sagedock-tensorflow] %(message)s", stream=sys.stdout)
log = logging.getLogger("sagedock-tensorflow")

# The fields of the SageMaker TensorFlow container's handler context.
Context = collections.namedtuple(
    "Context",
    "model_name, model_version, method, rest_uri, grpc_uri, custom_attributes, "
    "request_content_type, accept_header, content_length",
)


class ServingError(Exception):
    """An answer TensorFlow Serving would give: a status and {"error": message}."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def find_models(root):
    """{name: (version, path)} for the highest numeric version of each SavedModel."""
    found = {}
    for directory, _subdirs, files in os.walk(root):
        if "saved_model.pb" not in files and "saved_model.pbtxt" not in files:
            continue
        version = os.path.basename(directory)
        if not version.isdigit():
            continue
        base = os.path.dirname(directory)
        name = os.path.basename(base) if os.path.abspath(base) != os.path.abspath(root) else "model"
        if name not in found or int(version) > int(found[name][0]):
            found[name] = (version, directory)
    return found


class Model:
    """One loaded SavedModel version and its signatures."""

    def __init__(self, name, version, path):
        import tensorflow as tf

        self.tf = tf
        self.name, self.version, self.path = name, version, path
        self.loaded = tf.saved_model.load(path)
        self.signatures = dict(self.loaded.signatures)

    def status(self):
        return {"model_version_status": [{"version": self.version, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def predict(self, body):
        """TensorFlow Serving's REST predict: a request dict in, a response dict out."""
        if not isinstance(body, dict):
            raise ServingError(400, "JSON Value: %s Is not an object" % json.dumps(body)[:200])
        name = body.get("signature_name", "serving_default")
        if name not in self.signatures:
            raise ServingError(400, "Serving signature name: \"%s\" not found in signature def" % name)
        function = self.signatures[name]
        specs = function.structured_input_signature[1]
        if "instances" in body and "inputs" in body:
            raise ServingError(400, "Request can have either \"inputs\" or \"instances\", not both")
        if "instances" in body:
            row = True
            instances = body["instances"]
            if not isinstance(instances, list):
                raise ServingError(400, "Expecting \"instances\" to be a list/array")
            columns = self._columns_from_rows(instances, specs)
        elif "inputs" in body:
            row = False
            inputs = body["inputs"]
            if isinstance(inputs, dict) and inputs and set(inputs) <= set(specs):
                columns = inputs
            elif len(specs) == 1:
                columns = {next(iter(specs)): inputs}
            else:
                raise ServingError(400, "\"inputs\" must name the signature's inputs: %s" % sorted(specs))
        else:
            raise ServingError(400, "Missing 'inputs' or 'instances' key")
        missing = sorted(set(specs) - set(columns))
        if missing:
            raise ServingError(400, "Missing input(s): %s" % ", ".join(missing))
        tensors = {}
        for key, spec in specs.items():
            try:
                tensor = self.tf.constant(decode_b64(columns[key]), dtype=spec.dtype)
            except (TypeError, ValueError) as e:
                raise ServingError(400, "input %s: %s" % (key, e))
            if not spec.shape.is_compatible_with(tensor.shape):
                raise ServingError(400, "input %s: shape %s is not compatible with the signature's %s"
                                   % (key, tensor.shape, spec.shape))
            tensors[key] = tensor
        try:
            outputs = function(**tensors)
        except (self.tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            raise ServingError(400, str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
        values = {key: to_json(tensor.numpy()) for key, tensor in outputs.items()}
        if row:
            if len(values) == 1:
                return {"predictions": next(iter(values.values()))}
            count = len(next(iter(values.values())))
            return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(count)]}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}

    @staticmethod
    def _columns_from_rows(instances, specs):
        if len(specs) == 1 and not (instances and isinstance(instances[0], dict)
                                    and set(instances[0]) == set(specs)):
            return {next(iter(specs)): instances}
        if not all(isinstance(i, dict) for i in instances):
            raise ServingError(400, "the signature has inputs %s: each instance must be an object naming them"
                               % sorted(specs))
        return {key: [i.get(key) for i in instances] for key in specs}


def decode_b64(value):
    """{"b64": "..."} values (binary strings in TensorFlow Serving's JSON) to bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    return value


def to_json(array):
    """A numpy value as JSON-able lists (bytes decoded as UTF-8, else {"b64": ...});
    float32 values printed at float32 precision (5.2, not 5.199999809265137), as TensorFlow
    Serving prints them."""
    if getattr(array, "dtype", None) is not None and array.dtype.name == "float32":
        import numpy
        array = numpy.vectorize(lambda v: float(str(numpy.float32(v))), otypes=[object])(array)
    if hasattr(array, "tolist"):
        array = array.tolist()
    if isinstance(array, list):
        return [to_json(v) for v in array]
    if isinstance(array, bytes):
        try:
            return array.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(array).decode("ascii")}
    return array


def parse_attributes(header):
    """`tfs-model-name=x,tfs-method=predict` -> dict."""
    attributes = {}
    for part in (header or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            attributes[key.strip()] = value.strip()
    return attributes


def number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def default_input(data, context):
    """The container's default input handler: JSON passes through; CSV and JSON lines
    become row-format instances."""
    body = data.read().decode("utf-8")
    content_type = (context.request_content_type or "application/json").split(";")[0].strip()
    if content_type == "application/json":
        return body
    if content_type == "text/csv":
        rows = [[number(v) for v in row] for row in csv.reader(io.StringIO(body)) if row]
        return json.dumps({"instances": [r[0] if len(r) == 1 else r for r in rows]})
    if content_type in ("application/jsonlines", "application/jsonl"):
        return json.dumps({"instances": [json.loads(line) for line in body.splitlines() if line.strip()]})
    raise ServingError(415, "unsupported content type %s: application/json, text/csv or "
                            "application/jsonlines (or an input_handler in code/inference.py)" % content_type)


class Service:
    def __init__(self, models, handlers):
        self.models = models
        self.handlers = handlers
        self.default_name = os.environ.get("SAGEMAKER_TFS_DEFAULT_MODEL_NAME") or (
            next(iter(models)) if len(models) == 1 else None)

    def model(self, name, version=None):
        name = name or self.default_name
        if name is None:
            raise ServingError(400, "several models are loaded (%s): choose one with the custom attribute "
                                    "tfs-model-name or SAGEMAKER_TFS_DEFAULT_MODEL_NAME" % ", ".join(sorted(self.models)))
        model = self.models.get(name)
        if model is None or (version and version != model.version):
            raise ServingError(404, "Servable not found for request: %s %s" % (
                "Specific(%s, %s)" % (name, version) if version else "Latest(%s)" % name, ""))
        return model

    def invoke(self, body, headers):
        attributes = parse_attributes(headers.get("X-Amzn-SageMaker-Custom-Attributes"))
        method = attributes.get("tfs-method", "predict")
        if method != "predict":
            raise ServingError(400, "tfs-method=%s: this image runs predict only" % method)
        model = self.model(attributes.get("tfs-model-name"), attributes.get("tfs-model-version"))
        context = Context(
            model_name=model.name, model_version=model.version, method=method,
            rest_uri="http://localhost:%d/v1/models/%s:predict" % (PORT, model.name),
            grpc_uri=None, custom_attributes=headers.get("X-Amzn-SageMaker-Custom-Attributes"),
            request_content_type=headers.get("Content-Type"), accept_header=headers.get("Accept"),
            content_length=len(body))
        handler = self.handlers.get("handler")
        if handler:
            return as_answer(handler(io.BytesIO(body), context))
        tfs_body = (self.handlers.get("input_handler") or default_input)(io.BytesIO(body), context)
        output_handler = self.handlers.get("output_handler")
        if output_handler is None:
            answer = model.predict(json.loads(tfs_body if isinstance(tfs_body, (str, bytes)) else json.dumps(tfs_body)))
            return json.dumps(answer).encode(), "application/json"
        import requests
        response = requests.post(context.rest_uri, data=tfs_body)
        return as_answer(output_handler(response, context))


def as_answer(result):
    """A handler's (body, content type) as bytes and a type."""
    body, content_type = result if isinstance(result, tuple) else (result, "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return body, content_type


PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(:predict)?$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # peer's delayed ACK (40 ms a call).
    disable_nagle_algorithm = True
    service = None

    def log_message(self, fmt, *args):
        if os.environ.get("SAGEDOCK_TF_ACCESS_LOG"):
            log.info(fmt, *args)

    def answer(self, status, body, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def guarded(self, work):
        try:
            work()
        except ServingError as e:
            self.answer(e.status, {"error": e.message})
        except Exception as e:  # a handler's own bug: the container's 500
            log.exception("invocation failed")
            self.answer(500, {"error": "%s: %s" % (type(e).__name__, e)})

    def do_GET(self):
        if self.path == "/ping":
            return self.answer(200, b"", "text/plain")
        match = PREDICT.match(self.path)
        if match and not match.group(3):
            return self.guarded(lambda: self.answer(200, self.service.model(match.group(1), match.group(2)).status()))
        self.answer(404, {"error": "not found: GET %s" % self.path})

    def do_POST(self):
        body = self.body()
        if self.path == "/invocations":
            def invoke():
                data, content_type = self.service.invoke(body, self.headers)
                self.answer(200, data, content_type)
            return self.guarded(invoke)
        match = PREDICT.match(self.path)
        if match and match.group(3):
            def predict():
                try:
                    request = json.loads(body or b"null")
                except ValueError as e:
                    raise ServingError(400, "JSON Parse error: %s" % e)
                model = self.service.model(match.group(1), match.group(2))
                self.answer(200, model.predict(request))
            return self.guarded(predict)
        self.answer(404, {"error": "not found: POST %s" % self.path})


def load_handlers():
    """code/inference.py's handler functions (code/lib on the path, requirements installed)."""
    code = os.path.join(MODEL_DIR, "code")
    script = os.path.join(code, "inference.py")
    if not os.path.isfile(script):
        return {}
    requirements = os.path.join(code, "requirements.txt")
    if os.path.isfile(requirements):
        log.info("installing %s", requirements)
        subprocess.run([sys.executable, "-m", "pip", "install", "--break-system-packages", "-q", "-r",
                        requirements], check=True)
    for path in (os.path.join(code, "lib"), code):
        if os.path.isdir(path):
            sys.path.insert(0, path)
    spec = importlib.util.spec_from_file_location("inference", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handlers = {name: getattr(module, name) for name in ("handler", "input_handler", "output_handler")
                if callable(getattr(module, name, None))}
    if "handler" in handlers and len(handlers) > 1:
        raise SystemExit("code/inference.py defines handler together with input_handler/output_handler: "
                         "define handler alone, or the other two")
    log.info("code/inference.py: %s", ", ".join(sorted(handlers)) or "no handlers")
    return handlers


def main():
    if sys.argv[1:] != ["serve"]:
        os.execvp(sys.argv[1], sys.argv[1:])
    found = find_models(MODEL_DIR)
    if not found:
        raise SystemExit("no SavedModel under %s: expected <version>/saved_model.pb or "
                         "<model>/<version>/saved_model.pb with numeric versions" % MODEL_DIR)
    models = {}
    for name, (version, path) in sorted(found.items()):
        log.info("loading model %s version %s from %s", name, version, path)
        models[name] = Model(name, version, path)
        log.info("model %s: signatures %s", name, ", ".join(sorted(models[name].signatures)))
    Handler.service = Service(models, load_handlers())
    # PID 1 ignores SIGTERM unless it handles it: `docker stop` must not wait for SIGKILL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    log.info("serving %s on port %d", ", ".join(sorted(models)), PORT)
    server.serve_forever()


if __name__ == "__main__":
    main()
