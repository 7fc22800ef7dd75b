#!/usr/bin/env python3
"""ENTRYPOINT of sagedock/sklearn. `serve` starts the SageMaker containers library's
server (sagemaker_containers.beta.framework.server.start) on the serving module that
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
    if argv[1:] in ([], ["serve"]):
        from sagemaker_containers.beta.framework import env, server

        server.start(env.ServingEnv().framework_module)
        return
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv)
