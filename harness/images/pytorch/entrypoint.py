#!/usr/bin/env python3
"""ENTRYPOINT of sagedock/pytorch, as in AWS's PyTorch inference images
(docker/build_artifacts/torchserve-entrypoint.py): `serve` runs the SageMaker PyTorch
inference toolkit (sagemaker_pytorch_serving_container.serving.main), which writes
/etc/sagemaker-ts.properties, pip-installs /opt/ml/model/code/requirements.txt when
present, starts TorchServe (`torchserve --start`) on the model directory /opt/ml/model
(loaded in place through a symbolic link under /tmp; it may be read-only) with the handler
service sagemaker_pytorch_serving_container.handler_service (the user's code/inference.py,
or SAGEMAKER_PROGRAM, with the toolkit's default model_fn / input_fn / predict_fn /
output_fn for what it does not define), finds the TorchServe Java process, passes SIGTERM
to it and waits until it is gone. Anything else is exec'd.

The toolkit honours SAGEMAKER_BIND_TO_PORT (inference and management API on that port,
default 8080), SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT,
SAGEMAKER_PROGRAM, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, SAGEMAKER_MULTI_MODEL and
SAGEMAKER_TS_{BATCH_SIZE,MAX_BATCH_DELAY,MIN_WORKERS,MAX_WORKERS,RESPONSE_TIMEOUT}.

Why the toolkit runs in a child process while PID 1 only reaps and forwards signals:
`torchserve --start` exits at once, so the Java server is re-parented to PID 1. The
toolkit (not its parent) waits for it by polling until the PID is gone, which a zombie
never is; run as PID 1 it reaps nothing, so after SIGTERM the Java server stays a zombie,
the toolkit never returns and `docker stop` ends in SIGKILL (so it does in AWS's image,
whose script then runs `tail -f /dev/null` anyway). Here PID 1 reaps every orphan, passes
SIGTERM and SIGINT to the toolkit's process, and exits with its status: the toolkit
stops TorchServe, returns, and the container ends. A signal that comes before the
toolkit has found the server (its first seconds) ends the toolkit's process at once.

Differences from AWS's script: AWS sets SAGEMAKER_MODEL_SERVER_WORKERS to the CPU count
unconditionally; here only when it is not set. AWS's script keeps the container running
after the server exits; here a stopped or dead server ends the container.
"""

import multiprocessing
import os
import signal
import subprocess
import sys

SERVE = "from sagemaker_pytorch_serving_container import serving; serving.main()"


def serve():
    os.environ.setdefault("SAGEMAKER_MODEL_SERVER_WORKERS", str(multiprocessing.cpu_count()))
    child = None

    def forward(signo, frame):  # pylint: disable=unused-argument
        if child is None:
            sys.exit(128 + signo)
        try:
            os.kill(child.pid, signo)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    child = subprocess.Popen([sys.executable, "-c", SERVE])
    # Reap every child, orphans included (TorchServe's Java server is re-parented here,
    # and so is anything else whose parent has died), until the toolkit's process exits.
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def main(argv):
    if argv[1:] in ([], ["serve"]):
        sys.exit(serve())
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv)
