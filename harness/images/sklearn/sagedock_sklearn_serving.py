"""The serving module of sagedock/sklearn: the SageMaker scikit-learn container's hosting
contract, on the SageMaker containers library (gunicorn runs `main` as its WSGI app).

The user's entry point (SAGEMAKER_PROGRAM, as the SageMaker SDK sets it; installed from
SAGEMAKER_SUBMIT_DIRECTORY by the server before gunicorn starts) may define:

- model_fn(model_dir) -> model: required; scikit-learn has no default loader.
- input_fn(body, content_type) -> data: default decodes JSON, CSV or NPY into a NumPy
  array (float32 for the text formats).
- predict_fn(data, model) -> prediction: default model.predict(data).
- output_fn(prediction, accept) -> body or (body, content_type): default encodes into the
  Accept type (JSON, CSV or NPY).
- transform_fn(model, body, content_type, accept) instead of the three above (defining
  both is an error at start).

Each gunicorn worker loads the module and the model on its first request. Errors in user
code answer 500 with the error; an unreadable content type 415, an unwritable Accept 406.
"""

import importlib

import numpy as np
from sagemaker_containers.beta.framework import (content_types, encoders, env, transformer,
                                                 worker)

TEXT_TYPES = (content_types.JSON, content_types.CSV)
_app = None


def _decode(body, content_type):
    array = encoders.decode(body, content_type)
    return array.astype(np.float32) if content_type in TEXT_TYPES else array


def _predict(data, model):
    return model.predict(data)


def _encode(prediction, accept):
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)


def _transformer(module):
    hooks = {name: getattr(module, name, None)
             for name in ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")}
    model_fn = hooks["model_fn"] or transformer.default_model_fn
    if hooks["transform_fn"] is not None:
        # The library refuses transform_fn together with any of the three.
        return transformer.Transformer(model_fn=model_fn, transform_fn=hooks["transform_fn"],
                                       input_fn=hooks["input_fn"], predict_fn=hooks["predict_fn"],
                                       output_fn=hooks["output_fn"])
    return transformer.Transformer(model_fn=model_fn,
                                   input_fn=hooks["input_fn"] or _decode,
                                   predict_fn=hooks["predict_fn"] or _predict,
                                   output_fn=hooks["output_fn"] or _encode)


def main(environ, start_response):
    """The WSGI application: the first request of each worker loads the model."""
    global _app
    if _app is None:
        serving = env.ServingEnv()
        if not serving.module_name:
            raise RuntimeError("SAGEMAKER_PROGRAM is not set: the scikit-learn container needs "
                               "the name of the entry point that defines model_fn")
        hooks = _transformer(importlib.import_module(serving.module_name))
        hooks.initialize()
        _app = worker.Worker(transform_fn=hooks.transform, module_name=serving.module_name)
    return _app(environ, start_response)
