#!/usr/bin/env python3
"""ENTRYPOINT of sagedock/mxnet, as in AWS's MXNet inference images
(docker/build_artifacts/mms-entrypoint.py): `serve` hands over to the SageMaker MXNet
serving toolkit, which writes /etc/sagemaker-mms.properties, pip-installs
/opt/ml/model/code/requirements.txt when present, starts Multi Model Server with the
model directory /opt/ml/model (handler service
sagemaker_mxnet_serving_container.handler_service: the user's code/inference.py or
SAGEMAKER_PROGRAM, with the toolkit's default model_fn / input_fn / predict_fn /
output_fn for what it does not define) and waits on it. Anything else is exec'd.

The toolkit honours SAGEMAKER_BIND_TO_PORT, SAGEMAKER_SAFE_PORT_RANGE,
SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT,
SAGEMAKER_MAX_REQUEST_SIZE, SAGEMAKER_PROGRAM, SAGEMAKER_MULTI_MODEL.
"""

import os
import sys


def main(argv):
    if argv[1:] in ([], ["serve"]):
        from sagemaker_mxnet_serving_container import serving

        serving.main()
        return
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv)
