//! Serving stacks and what each expects of `/opt/ml/model`.
//!
//! One profile per stack SageMaker hosting is used with: TensorFlow Serving, MXNet, Multi
//! Model Server archives, PyTorch, scikit-learn, XGBoost, and custom (bring-your-own)
//! images. Each profile knows how to recognise its layout and which rules its serving
//! container imposes (see CONTRACT §1.2 and §4); the rules return findings with fixes.
//!
//! Does not: run anything, or read archives (it works on an unpacked [`Tree`]).

pub mod mms;
pub mod mxnet;
mod mxnet_params;
pub mod python;
pub mod tensorflow;

use serde::{Deserialize, Serialize};

use crate::artifact::inspect::{Context, Finding};
use crate::artifact::tree::Tree;

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
