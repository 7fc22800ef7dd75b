//! Frameworks served by the SageMaker inference toolkit (PyTorch, scikit-learn, XGBoost,
//! and MXNet's hooks): `code/inference.py` with `model_fn`, `input_fn`, `predict_fn`,
//! `output_fn` or `transform_fn` (CONTRACT §1.5 and §4.3).

use super::context::Context;
use crate::artifact::Finding;

use super::Framework;

const ENTRY: &str = "code/inference.py";
/// What the PyTorch toolkit's default model_fn loads.
const TORCHSCRIPT: &str = "model.pt";

pub fn lint(framework: Framework, cx: &Context) -> Vec<Finding> {
    let tree = cx.tree;
    let mut out = Vec::new();
    let model_files: Vec<&str> = tree
        .files()
        .filter(|n| super::signature(framework, n.name()))
        .map(|n| n.path.as_str())
        .collect();
    if model_files.is_empty() {
        out.push(Finding::warning(
            "model.no-weights",
            "",
            format!("no {} model file found", framework.title()),
        ));
    }
    for path in &model_files {
        out.push(Finding::info(
            "model.file",
            *path,
            format!("{} model file", framework.title()),
        ));
    }
    // scikit-learn has no default model_fn; the XGBoost container loads the booster files
    // itself in algorithm mode. The PyTorch toolkit's default (2.x, on TorchServe)
    // `torch.jit.load`s `model.pt` at the root: its other branch, "exactly one .pt or .pth
    // file", tests each name against the server's working directory instead of the model
    // directory and so never finds one.
    let torchscript = framework == Framework::Pytorch && tree.is_file(TORCHSCRIPT);
    let needs_model_fn = match framework {
        Framework::Sklearn => Some("this container has no default model_fn"),
        Framework::Pytorch if !torchscript => Some(
            "the container's default model_fn loads model.pt (TorchScript) only, and there is none",
        ),
        _ => None,
    };
    if torchscript && !tree.is_file(ENTRY) {
        out.push(Finding::info(
            "model.torchscript",
            TORCHSCRIPT,
            "loaded by the toolkit's default model_fn with torch.jit.load: it must be TorchScript (torch.jit.save), not a pickled model or state_dict",
        ));
    }
    out.extend(hook_rules(cx, needs_model_fn));
    out
}

/// Rules on `code/inference.py` shared by every toolkit-based framework.
/// `needs_model_fn`: why the container cannot load the model without the entry point's
/// `model_fn`, when it cannot.
pub fn hook_rules(cx: &Context, needs_model_fn: Option<&str>) -> Vec<Finding> {
    let tree = cx.tree;
    let mut out = Vec::new();
    if tree.is_file("code/requirements.txt") {
        out.push(Finding::info(
            "code.requirements",
            "code/requirements.txt",
            "pip-installed when the container starts: startup needs network access, and fails with network isolation",
        ));
    }
    let Some(source) = tree.read_text(ENTRY) else {
        let others: Vec<&str> = tree
            .children("code")
            .filter(|n| n.name().ends_with(".py"))
            .map(|n| n.name())
            .collect();
        if let Some(first) = others.first() {
            out.push(
                Finding::warning("code.no-inference-py", "code", format!("code/ has {} but no inference.py, the toolkit's default entry point", others.join(", ")))
                    .with_fix(format!("set SAGEMAKER_PROGRAM={first} in the model's Environment, or rename it to inference.py")),
            );
        } else if let Some(why) = needs_model_fn {
            out.push(
                Finding::error(
                    "code.missing",
                    ENTRY,
                    format!(
                        "missing: {why}, so it cannot load the model without code/inference.py"
                    ),
                )
                .with_fix(format!(
                    "add code/inference.py defining model_fn(model_dir), then {}",
                    cx.repack("", "")
                )),
            );
        }
        return out;
    };
    let defs = python_defs(&source);
    if needs_model_fn.is_some() && !defs.contains("model_fn") {
        out.push(
            Finding::error(
                "code.no-model-fn",
                ENTRY,
                "defines no model_fn(model_dir): the container cannot load the model",
            )
            .with_fix("define model_fn(model_dir) that loads and returns the model from model_dir"),
        );
    }
    let trio: Vec<&str> = ["input_fn", "predict_fn", "output_fn"]
        .into_iter()
        .filter(|f| defs.contains(*f))
        .collect();
    if defs.contains("transform_fn") && !trio.is_empty() {
        out.push(
            Finding::error(
                "code.transform-and-trio",
                ENTRY,
                format!(
                    "defines transform_fn and {}: the toolkit refuses both (ValueError at start)",
                    trio.join(", ")
                ),
            )
            .with_fix(
                "keep transform_fn alone, or drop it and keep input_fn / predict_fn / output_fn",
            ),
        );
    }
    out
}

/// The top-level function (and assignment) names of a Python module, from its text.
pub fn python_defs(source: &str) -> std::collections::BTreeSet<String> {
    let ident = |s: &str| -> Option<String> {
        let name: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    };
    let mut names = std::collections::BTreeSet::new();
    for line in source.lines() {
        let line = line.strip_prefix("async ").unwrap_or(line);
        if let Some(rest) = line.strip_prefix("def ") {
            names.extend(ident(rest.trim_start()));
        } else if line.starts_with(|c: char| c.is_alphabetic() || c == '_') {
            if let Some((lhs, rhs)) = line.split_once('=') {
                let lhs = lhs.trim();
                if !rhs.starts_with('=') && lhs.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    names.insert(lhs.to_string());
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_defs_finds_top_level_functions_and_aliases() {
        let src = "import os\n\ndef model_fn(model_dir):\n    def inner():\n        pass\n\nasync def predict_fn(x, m):\n    pass\ninput_fn = other\nif x == 1:\n    pass\n";
        let defs = python_defs(src);
        assert!(defs.contains("model_fn"));
        assert!(defs.contains("predict_fn"));
        assert!(defs.contains("input_fn"));
        assert!(!defs.contains("inner"));
        assert!(!defs.contains("if x"));
    }
}
