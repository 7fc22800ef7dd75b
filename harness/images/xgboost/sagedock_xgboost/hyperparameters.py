"""The XGBoost algorithm's hyperparameters, validated as SageMaker's XGBoost container
(1.7-1) validates them, in its order: aliases are replaced, `num_round` must be present,
unknown names are refused, every value is parsed to its type and checked against its range,
and then the dependencies between them are checked. Each message is the container's own.
"""

import ast

from . import UserError

INF = float("inf")

# Evaluation metrics the container accepts (and `_tuning_objective_metric` names).
MAXIMIZE_METRICS = ["accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary",
                    "f1_macro", "map", "ndcg", "precision", "r2", "recall", "precision_macro",
                    "precision_micro", "recall_macro", "recall_micro"]
MINIMIZE_METRICS = ["aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
                    "interval-regression-accuracy", "logloss", "mae", "mape", "merror",
                    "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle",
                    "tweedie-nloglik"]
METRICS = MAXIMIZE_METRICS + MINIMIZE_METRICS

OBJECTIVES = ["aft_loss_distribution", "binary:logistic", "binary:logitraw", "binary:hinge",
              "count:poisson", "multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg",
              "rank:map", "reg:linear", "reg:squarederror", "reg:logistic", "reg:gamma",
              "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror",
              "reg:tweedie", "survival:aft", "survival:cox"]

ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda",
           "reg_alpha": "alpha"}


class Interval:
    """A numeric range, printed as the container prints it: `[0, 1]`, `(0, 1]`, `[1, +inf)`."""

    def __init__(self, low=-INF, high=INF, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __contains__(self, value):
        if value < self.low or (self.low_open and value == self.low):
            return False
        return not (value > self.high or (self.high_open and value == self.high))

    def __str__(self):
        low = "(-inf" if self.low == -INF else ("(" if self.low_open else "[") + str(self.low)
        high = "+inf)" if self.high == INF else str(self.high) + (")" if self.high_open else "]")
        return low + ", " + high


def at_least(low, open_=False):
    return Interval(low, INF, low_open=open_)


UNIT = Interval(0, 1)
UNIT_OPEN_LOW = Interval(0, 1, low_open=True)
BOOLEAN = ["true", "false"]


class Parameter:
    """One hyperparameter: how its text parses (int, float, str or a list) and its range."""

    def __init__(self, name, parse, range_=None, required=False):
        self.name, self.parse, self.range, self.required = name, parse, range_, required

    def value(self, text):
        try:
            value = self.parse(text)
        except Exception as e:
            raise UserError("Hyperparameter {}: could not parse value (caused by {})"
                            .format(self.name, type(e).__name__)) from e
        if isinstance(value, list):
            bad = [v for v in value if not self._in_range(v)]
            if bad:
                raise UserError("Hyperparameter {}: value {} not in range {}"
                                .format(self.name, bad, self.range))
        elif not self._in_range(value):
            raise UserError("Hyperparameter {}: {} is not in {}".format(self.name, value, self.range))
        return value

    def _in_range(self, value):
        if self.range is None:
            return True
        if callable(self.range):
            return self.range(value)
        return value in self.range


def _comma_list(text):
    return [item.strip() for item in text.split(",")]


def _eval_metric_ok(metric):
    if "<function" in metric:
        raise UserError("User defined evaluation metric {} is not supported yet.".format(metric))
    if "@" in metric:
        name, threshold = (part.strip() for part in metric.split("@", 1))
        if name not in ("error", "ndcg", "map"):
            raise UserError("Metric '{}' is not supported. Parameter 'eval_metric' with customized "
                            "threshold should be one of these options: 'error', 'ndcg', 'map'."
                            .format(metric))
        try:
            float(threshold)
        except ValueError:
            raise UserError("Threshold value 't' in '{}@t' expects float input.".format(name))
        return True
    return metric in METRICS


class _MetricRange:
    """The printed range of eval_metric: the metric names."""

    def __call__(self, metric):
        return _eval_metric_ok(metric)

    def __str__(self):
        return str(METRICS)


def _tuple_of_signs(text):
    value = ast.literal_eval(text)
    return list(value) if isinstance(value, (tuple, list)) else [value]


PARAMETERS = {p.name: p for p in [
    Parameter("num_round", int, at_least(1), required=True),
    Parameter("csv_weights", int, UNIT),
    Parameter("early_stopping_rounds", int, at_least(1)),
    Parameter("verbosity", int, Interval(0, 3)),
    Parameter("nthread", int, at_least(1)),
    Parameter("max_depth", int, at_least(0)),
    Parameter("refresh_leaf", int, UNIT),
    Parameter("max_leaves", int, at_least(0)),
    Parameter("max_bin", int, at_least(0)),
    Parameter("one_drop", int, UNIT),
    Parameter("num_class", int, at_least(2)),
    Parameter("_kfold", int, at_least(2)),
    Parameter("_num_cv_round", int, at_least(1)),
    Parameter("seed", int, Interval(-2**31, 2**31 - 1, low_open=True, high_open=True)),
    Parameter("num_parallel_tree", int, at_least(1)),
    Parameter("prob_buffer_row", float, at_least(1, open_=True)),
    Parameter("eta", float, UNIT),
    Parameter("gamma", float, at_least(0)),
    Parameter("min_child_weight", float, at_least(0)),
    Parameter("max_delta_step", float, at_least(0)),
    Parameter("subsample", float, UNIT_OPEN_LOW),
    Parameter("colsample_bytree", float, UNIT_OPEN_LOW),
    Parameter("colsample_bylevel", float, UNIT_OPEN_LOW),
    Parameter("colsample_bynode", float, UNIT_OPEN_LOW),
    Parameter("lambda", float, at_least(0)),
    Parameter("alpha", float, at_least(0)),
    Parameter("sketch_eps", float, Interval(0, 1, low_open=True, high_open=True)),
    Parameter("scale_pos_weight", float, at_least(0, open_=True)),
    Parameter("rate_drop", float, UNIT),
    Parameter("skip_drop", float, UNIT),
    Parameter("lambda_bias", float, UNIT),
    Parameter("tweedie_variance_power", float, Interval(1, 2, low_open=True, high_open=True)),
    Parameter("base_score", float, at_least(0)),
    Parameter("aft_loss_distribution_scale", float, at_least(0)),
    Parameter("booster", str, ["gbtree", "gblinear", "dart"]),
    Parameter("tree_method", str, ["auto", "exact", "approx", "hist", "gpu_hist"]),
    Parameter("dsplit", str, ["row", "col"]),
    Parameter("process_type", str, ["default", "update"]),
    Parameter("grow_policy", str, ["depthwise", "lossguide"]),
    Parameter("predictor", str, ["auto", "cpu_predictor", "gpu_predictor"]),
    Parameter("sample_type", str, ["uniform", "weighted"]),
    Parameter("normalize_type", str, ["tree", "forest"]),
    Parameter("save_model_on_termination", str, BOOLEAN),
    Parameter("deterministic_histogram", str, BOOLEAN),
    Parameter("sampling_method", str, ["uniform", "gradient_based"]),
    Parameter("aft_loss_distribution", str, ["normal", "logistic", "extreme"]),
    Parameter("objective", str, OBJECTIVES),
    Parameter("eval_metric", _comma_list, _MetricRange()),
    Parameter("updater", _comma_list),
    Parameter("monotone_constraints", _tuple_of_signs, [-1, 0, 1]),
    Parameter("interaction_constraints", ast.literal_eval),
    Parameter("_tuning_objective_metric", str,
              ["{}:{}".format(channel, m) for channel in ("validation", "train") for m in METRICS]),
]}


def validate(raw):
    """The job's hyperparameters (strings, as hyperparameters.json holds them) parsed and
    checked; returns {name: value} under the canonical names. Raises UserError."""
    named = {ALIASES.get(name, name): text for name, text in raw.items()}
    for parameter in PARAMETERS.values():
        if parameter.required and parameter.name not in named:
            raise UserError("Missing required hyperparameter: {}".format(parameter.name))
    for name in named:
        if name not in PARAMETERS:
            raise UserError("Extraneous hyperparameter found: {}".format(name))
    values = {name: PARAMETERS[name].value(text) for name, text in named.items()}
    _check_dependencies(values)
    return values


def _check_dependencies(values):
    objective = values.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in values:
        raise UserError("Require input for parameter 'num_class' for multi-classification")
    if "eval_metric" in values:
        if objective is None:
            # AWS's container indexes the objective here and fails with KeyError: 'objective'.
            raise UserError("Hyperparameter eval_metric needs objective: SageMaker's XGBoost "
                            "container fails with KeyError: 'objective' without it")
        metrics = values["eval_metric"]
        if "auc" in metrics and not objective.startswith(("binary:", "rank:")):
            raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
        if "aft-nloglik" in metrics and objective != "survival:aft":
            raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")
    tree_method = values.get("tree_method")
    if "monotone_constraints" in values and tree_method not in ("exact", "hist"):
        raise UserError("monotone_constraints can be used only when the tree_method parameter "
                        "is set to either 'exact' or 'hist'.")
    if "interaction_constraints" in values and tree_method not in ("exact", "hist", "approx"):
        raise UserError("interaction_constraints can be used only when the tree_method parameter "
                        "is set to either 'exact', 'hist' or 'approx'.")
