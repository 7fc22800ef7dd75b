#!/usr/bin/env python3
"""ENTRYPOINT of sagedock/sklearn, which trains and serves from one image as AWS's
scikit-learn image does.

`train` runs the SageMaker training toolkit (sagemaker_training.cli.train, the toolkit's
`train` console script; AWS's scikit-learn image trains with it too, and serves with the
older SageMaker containers library): it reads /opt/ml/input/config/*.json, leaves
/opt/ml/code alone when it is not empty (else fetches sagemaker_submit_directory into it),
pip-installs its requirements.txt, waits until every host in resourceconfig.json
resolves, runs the entry point (the sagemaker_program hyperparameter) as `python3 train.py
--key value ...` with the SM_* environment, and writes /opt/ml/output/success or
/opt/ml/output/failure; it exits 0 or non-zero accordingly. SAGEMAKER_TRAINING_MODULE is
not set: AWS's module (sagemaker_sklearn_container.training:main, not on PyPI) calls the
same entry_point.run that the toolkit calls without one.

`serve` starts the SageMaker containers library's server
(sagemaker_containers.beta.framework.server.start) on the serving module that
SAGEMAKER_SERVING_MODULE names (sagedock_sklearn_serving:main): it copies the entry point's
directory (SAGEMAKER_SUBMIT_DIRECTORY, default /opt/ml/code) into /opt/ml/code and
pip-installs it with its requirements.txt, writes an nginx configuration for port
SAGEMAKER_BIND_TO_PORT (default 8080), starts nginx and gunicorn
(SAGEMAKER_MODEL_SERVER_WORKERS workers, SAGEMAKER_MODEL_SERVER_TIMEOUT), and waits on
them; SIGTERM stops both. Anything else is exec'd.
"""

import os
import sys


def main(argv):
    if argv[1:] == ["train"]:
        from sagemaker_training.cli import train

        train.main()
        return
    if argv[1:] in ([], ["serve"]):
        from sagemaker_containers.beta.framework import env, server

        server.start(env.ServingEnv().framework_module)
        return
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv)
