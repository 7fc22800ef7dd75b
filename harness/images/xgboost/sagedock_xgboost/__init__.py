"""sagedock's stand-in for SageMaker's XGBoost container (the built-in algorithm, 1.7-1).

AWS's own modules (sagemaker-xgboost-container) are not published on PyPI; this package
implements the behaviour they document and show, written here:

- hyperparameters: the algorithm's hyperparameters, validated as the container validates
  them (names, aliases, types, ranges, dependencies) with the container's messages;
- data: the channels' content types and the CSV / LIBSVM files they hold, and the
  request bodies the server reads;
- training: algorithm-mode training (`train` without an entry point);
- serving: the algorithm-mode server and the script-mode one (SAGEMAKER_PROGRAM).
"""


class UserError(Exception):
    """A mistake in the job's configuration or data, said as the container says it."""
