//! SageMaker's built-in algorithms, known by their training image: today XGBoost
//! (`…/sagemaker-xgboost:1.7-1`, which the image map runs as `sagedock/xgboost`).
//!
//! SageMaker attaches a built-in algorithm's metric definitions to a job that names its
//! image without any of its own, so a tuning job can optimise `validation:rmse` with no
//! `metric_definitions` in the SDK, and DescribeTrainingJob lists them. The regexes are the
//! ones the XGBoost container publishes for each of its evaluation metrics, on its lines
//! `[12]#011train-rmse:0.38#011validation-rmse:0.41`.

use crate::runtime::image_map;
use crate::state::training_job::{AlgorithmSpecification, MetricDefinition};

/// XGBoost's evaluation metrics, as the container names them.
const XGBOOST_METRICS: [&str; 33] = [
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
];

/// A built-in algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltIn {
    Xgboost,
}

impl BuiltIn {
    /// The algorithm whose image `image` is: AWS's repository by its ECR URI, whatever the
    /// account, region and tag, or the local image that stands in for it.
    pub fn of_image(image: &str) -> Option<BuiltIn> {
        let repository = match image_map::ecr_repository(image) {
            Some((repository, _)) => repository,
            None => image.rsplit_once(':').map_or(image, |(name, _)| name),
        };
        matches!(repository, "sagemaker-xgboost" | "sagedock/xgboost").then_some(BuiltIn::Xgboost)
    }

    /// Its metric definitions: `train:M` and `validation:M` for each metric M.
    pub fn metric_definitions(self) -> Vec<MetricDefinition> {
        match self {
            BuiltIn::Xgboost => ["train", "validation"]
                .iter()
                .flat_map(|channel| {
                    XGBOOST_METRICS.iter().map(move |metric| MetricDefinition {
                        name: format!("{channel}:{metric}"),
                        regex: format!(r".*\[[0-9]+\].*#011{channel}-{metric}:(\S+)"),
                    })
                })
                .collect(),
        }
    }
}

/// Gives a job that names a built-in algorithm's image and no MetricDefinitions the
/// algorithm's, as SageMaker does.
pub fn add_metric_definitions(algorithm: &mut AlgorithmSpecification) {
    if algorithm.metric_definitions.is_some() {
        return;
    }
    if let Some(builtin) = algorithm
        .training_image
        .as_deref()
        .and_then(BuiltIn::of_image)
    {
        algorithm.metric_definitions = Some(builtin.metric_definitions());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Event;
    use crate::training::metrics::Metrics;

    #[test]
    fn xgboost_is_known_by_its_aws_repository_and_its_local_image() {
        for image in [
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "sagedock/xgboost:latest",
            "sagedock/xgboost",
        ] {
            assert_eq!(BuiltIn::of_image(image), Some(BuiltIn::Xgboost), "{image}");
        }
        for image in [
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
            "mine/sagemaker-xgboost:1",
            "sagedock/sklearn:latest",
        ] {
            assert_eq!(BuiltIn::of_image(image), None, "{image}");
        }
    }

    #[test]
    fn a_job_without_definitions_gets_the_algorithms_and_one_with_its_own_keeps_them() {
        let mut algorithm = AlgorithmSpecification {
            training_image: Some(
                "1.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1".into(),
            ),
            ..Default::default()
        };
        add_metric_definitions(&mut algorithm);
        let names: Vec<_> = algorithm
            .metric_definitions
            .iter()
            .flatten()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names.len(), 66);
        assert!(
            names.contains(&"validation:rmse") && names.contains(&"train:auc"),
            "{names:?}"
        );

        let own = vec![MetricDefinition {
            name: "mine".into(),
            regex: "m=(\\S+)".into(),
        }];
        algorithm.metric_definitions = Some(own.clone());
        add_metric_definitions(&mut algorithm);
        assert_eq!(algorithm.metric_definitions, Some(own));

        let mut custom = AlgorithmSpecification {
            training_image: Some("sagedock/sklearn:latest".into()),
            ..Default::default()
        };
        add_metric_definitions(&mut custom);
        assert_eq!(custom.metric_definitions, None);
    }

    #[test]
    fn the_definitions_read_the_containers_evaluation_lines() {
        let mut metrics = Metrics::new(&BuiltIn::Xgboost.metric_definitions()).unwrap();
        metrics.observe(&[Event {
            timestamp: 1_000,
            message: "[19]\ttrain-rmse:0.07648\tvalidation-rmse:0.14701".into(),
        }]);
        let last = |name: &str| metrics.series(name).last().map(|(_, value)| *value);
        assert_eq!(last("train:rmse"), Some(0.07648));
        assert_eq!(last("validation:rmse"), Some(0.14701));
        assert_eq!(last("validation:mae"), None);
    }
}
