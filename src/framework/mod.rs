//! Serving stacks and what each expects of `/opt/ml/model`.
//!
//! One profile per stack SageMaker hosting is used with: TensorFlow Serving, MXNet, Multi
//! Model Server archives, PyTorch, scikit-learn, XGBoost, and custom (bring-your-own)
//! images. Each profile knows how to recognise its layout and which rules its serving
//! container imposes (see CONTRACT §1.2 and §4); the rules return findings with fixes.
//!
//! Does not: run anything, or read archives (it works on an unpacked [`Tree`]).

mod context;
pub mod inspect;
pub mod mms;
pub mod mxnet;
mod mxnet_params;
pub mod python;
pub mod tensorflow;

use serde::{Deserialize, Serialize};

use crate::artifact::tree::Tree;
use crate::artifact::Finding;
use context::Context;

/// A serving stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// TensorFlow Serving (sagemaker-tensorflow-serving-container).
    Tensorflow,
    /// Apache MXNet (symbol + params + shapes).
    Mxnet,
    /// Multi Model Server archive with MAR-INF/MANIFEST.json and a custom handler.
    Mms,
    /// PyTorch with code/inference.py.
    Pytorch,
    /// scikit-learn with code/inference.py.
    Sklearn,
    /// XGBoost booster.
    Xgboost,
    /// A bring-your-own image: only generic rules apply.
    Custom,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Tensorflow => "tensorflow",
            Framework::Mxnet => "mxnet",
            Framework::Mms => "mms",
            Framework::Pytorch => "pytorch",
            Framework::Sklearn => "sklearn",
            Framework::Xgboost => "xgboost",
            Framework::Custom => "custom",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Framework::Tensorflow => "TensorFlow Serving",
            Framework::Mxnet => "MXNet",
            Framework::Mms => "Multi Model Server archive",
            Framework::Pytorch => "PyTorch",
            Framework::Sklearn => "scikit-learn",
            Framework::Xgboost => "XGBoost",
            Framework::Custom => "custom image (no known framework layout)",
        }
    }
}

impl Framework {
    /// The stack a serving image runs, from its repository name: SageMaker's framework
    /// images (`…/tensorflow-inference`, `…/sagemaker-scikit-learn`, …) and the images
    /// built here (`sagedock/tensorflow`, …); any other image is a bring-your-own one.
    pub fn of_image(image: &str) -> Framework {
        let without_digest = image.split('@').next().unwrap_or(image);
        let repository = match without_digest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => without_digest,
        };
        let name = repository.rsplit('/').next().unwrap_or(repository);
        let sagedock = repository.starts_with("sagedock/");
        match name {
            "tensorflow-inference" | "sagemaker-tensorflow-serving" => Framework::Tensorflow,
            "tensorflow" if sagedock => Framework::Tensorflow,
            "mxnet-inference" | "sagemaker-mxnet-serving" => Framework::Mxnet,
            "mxnet" if sagedock => Framework::Mxnet,
            "pytorch-inference" | "sagemaker-pytorch" => Framework::Pytorch,
            "sagemaker-scikit-learn" => Framework::Sklearn,
            "sklearn" if sagedock => Framework::Sklearn,
            "pytorch" if sagedock => Framework::Pytorch,
            "sagemaker-xgboost" | "xgboost" => Framework::Xgboost,
            "mms" if sagedock => Framework::Mms,
            _ => Framework::Custom,
        }
    }
}

/// Files that identify a stack, in the order they are tried.
fn signature(framework: Framework, name: &str) -> bool {
    let ext = |e: &str| name.ends_with(e);
    match framework {
        Framework::Mms => name == "MANIFEST.json",
        Framework::Tensorflow => name == "saved_model.pb" || name == "saved_model.pbtxt",
        Framework::Mxnet => ext("-symbol.json"),
        Framework::Pytorch => ext(".pth") || ext(".pt"),
        Framework::Xgboost => name == "xgboost-model" || ext(".bst") || ext(".ubj") || ext(".xgb"),
        Framework::Sklearn => ext(".joblib") || ext(".pkl") || ext(".pickle"),
        Framework::Custom => false,
    }
}

const DETECTION_ORDER: [Framework; 6] = [
    Framework::Mms,
    Framework::Tensorflow,
    Framework::Mxnet,
    Framework::Pytorch,
    Framework::Xgboost,
    Framework::Sklearn,
];

/// Recognises the stack from the files present; returns the path that decided it.
pub fn detect(tree: &Tree) -> (Framework, Option<String>) {
    for framework in DETECTION_ORDER {
        let hit = tree.files().find(|n| {
            signature(framework, n.name())
                && (framework != Framework::Mms || n.parent().ends_with("MAR-INF"))
        });
        if let Some(node) = hit {
            return (framework, Some(node.path.clone()));
        }
    }
    (Framework::Custom, None)
}

/// Runs the framework's own rules. TensorFlow models found are added to `tf_models`.
pub fn lint(
    framework: Framework,
    cx: &Context,
    tf_models: &mut Vec<tensorflow::TfModel>,
) -> Vec<Finding> {
    match framework {
        Framework::Tensorflow => tensorflow::lint(cx, tf_models),
        Framework::Mxnet => mxnet::lint(cx),
        Framework::Mms => mms::lint(cx),
        Framework::Pytorch | Framework::Sklearn | Framework::Xgboost => python::lint(framework, cx),
        Framework::Custom => vec![Finding::info(
            "custom.no-framework",
            "",
            "no known framework layout found: a bring-your-own image defines its own layout, so only the \
             generic rules were checked (pass --framework to check one)",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_name_their_stack() {
        let cases = [
            ("sagedock/tensorflow:latest", Framework::Tensorflow),
            (
                "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.11-cpu",
                Framework::Tensorflow,
            ),
            (
                "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
                Framework::Sklearn,
            ),
            ("sagedock/sklearn", Framework::Sklearn),
            ("sagedock/mxnet@sha256:0123", Framework::Mxnet),
            ("localhost:5000/pytorch-inference:2.1", Framework::Pytorch),
            ("sagedock/pytorch:latest", Framework::Pytorch),
            ("sagedock/xgboost:latest", Framework::Xgboost),
            (
                "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                Framework::Xgboost,
            ),
            ("sagedock/mms:latest", Framework::Mms),
            ("my-team/decision-trees:1", Framework::Custom),
            ("tensorflow", Framework::Custom),
            ("sagedock/echo:latest", Framework::Custom),
        ];
        for (image, want) in cases {
            assert_eq!(Framework::of_image(image), want, "{image}");
        }
    }
}
