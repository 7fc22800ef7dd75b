#!/usr/bin/env python3
"""ENTRYPOINT of sagedock/xgboost, which trains and serves from one image as SageMaker's
XGBoost container does, in its two modes.

`train`: with a `sagemaker_program` hyperparameter (the SDK's XGBoost(entry_point=...),
script mode) the SageMaker training toolkit runs the entry point, as for scikit-learn;
without one the built-in algorithm trains (sagedock_xgboost.training).

`serve`: the SageMaker containers library's server (nginx in front of gunicorn) runs
sagedock_xgboost.serving:main, which serves the built-in algorithm's model or, with
SAGEMAKER_PROGRAM, the entry point's functions. OMP_NUM_THREADS defaults to 1, as in AWS's
image (each gunicorn worker predicts on one thread). Anything else is exec'd.
"""

import json
import os
import sys

HYPERPARAMETERS = "/opt/ml/input/config/hyperparameters.json"


def _script_mode():
    try:
        with open(HYPERPARAMETERS) as f:
            return "sagemaker_program" in json.load(f)
    except (OSError, ValueError):
        return False


def main(argv):
    if argv[1:] == ["train"]:
        if _script_mode():
            from sagemaker_training.cli import train

            train.main()
        else:
            from sagedock_xgboost import training

            training.main()
        return
    if argv[1:] in ([], ["serve"]):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from sagemaker_containers.beta.framework import env, server

        server.start(env.ServingEnv().framework_module)
        return
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv)
