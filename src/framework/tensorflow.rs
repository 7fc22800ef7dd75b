//! TensorFlow Serving layout (sagemaker-tensorflow-serving-container, CONTRACT §4.1).
//!
//! Any `saved_model.pb` whose parent folder is all digits is a version; the grandparent
//! is the model base path and its name the model name (`model` when it is the root).
//! `code/inference.py` may define `handler`, or `input_handler` and `output_handler`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::context::Context;
use super::python::python_defs;
use crate::artifact::savedmodel::{self, SavedModelSummary};
use crate::artifact::tree::Tree;
use crate::artifact::Finding;

/// One SavedModel version found in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TfModel {
    /// The name TensorFlow Serving gives the model.
    pub name: String,
    pub version: String,
    /// The version folder, relative to /opt/ml/model.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_model: Option<SavedModelSummary>,
}

fn is_version(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

pub fn lint(cx: &Context, models: &mut Vec<TfModel>) -> Vec<Finding> {
    let tree = cx.tree;
    let mut out = Vec::new();
    let saved: Vec<&str> = tree
        .files()
        .filter(|n| n.name() == "saved_model.pb" || n.name() == "saved_model.pbtxt")
        .map(|n| n.path.as_str())
        .collect();
    if saved.is_empty() {
        out.push(
            Finding::error("tf.no-savedmodel", "", "no saved_model.pb: TensorFlow Serving has nothing to load and the container fails at start")
                .with_fix("export with tf.saved_model.save(model, 'export/1') and pack the export folder's contents"),
        );
    }
    for pb in saved {
        let (version_dir, file) = split(pb);
        let (base, version) = split(version_dir);
        if !is_version(version) {
            out.push(not_versioned(cx, pb, version_dir));
            continue;
        }
        let name = if base.is_empty() {
            "model"
        } else {
            split(base).1
        };
        if base.ends_with("export/Servo") || base == "Servo" {
            out.push(legacy_servo(cx, pb, base));
        }
        check_variables(tree, version_dir, &mut out);
        let saved_model = if file == "saved_model.pb" {
            read_signatures(tree, pb, name, strip_zeros(version), &mut out)
        } else {
            out.push(Finding::info(
                "tf.text-savedmodel",
                pb,
                "text SavedModel (saved_model.pbtxt): signatures are not listed",
            ));
            None
        };
        models.push(TfModel {
            name: name.to_string(),
            version: strip_zeros(version).to_string(),
            path: version_dir.to_string(),
            saved_model,
        });
    }
    check_names(models, &mut out);
    check_code(tree, &mut out);
    out
}

/// `0001` → `1`, `0` → `0`: TensorFlow Serving reads versions as numbers.
fn strip_zeros(version: &str) -> &str {
    match version.trim_start_matches('0') {
        "" => "0",
        v => v,
    }
}

fn not_versioned(cx: &Context, pb: &str, dir: &str) -> Finding {
    let shown = if dir.is_empty() {
        "the root".to_string()
    } else {
        format!("'{dir}/'")
    };
    let fix = if dir.is_empty() {
        format!(
            "move saved_model.pb and variables/ into a folder named 1/, then {}",
            cx.repack("", "")
        )
    } else {
        format!("put the SavedModel in a numeric version folder, e.g. {dir}/1/, then repack")
    };
    Finding::error(
        "tf.version-not-numeric",
        pb,
        format!("saved_model.pb sits in {shown}, not in a numeric version folder: TensorFlow Serving only loads <model>/<version>/saved_model.pb with an all-digit <version>"),
    )
    .with_fix(fix)
}

fn legacy_servo(cx: &Context, pb: &str, base: &str) -> Finding {
    let (_, version) = split(split(pb).0);
    Finding::warning(
        "tf.legacy-export-servo",
        pb,
        format!(
            "legacy TensorFlow estimator export ({base}/<timestamp>/): the old TensorFlow containers required it; \
             the TensorFlow Serving container serves it as a model named 'Servo' (version {version}), so requests \
             that name a model must say 'Servo'"
        ),
    )
    .with_fix(format!("to serve it as the default layout, pack the version folder's parent: {}", cx.repack(base, "")))
}

fn check_variables(tree: &Tree, version_dir: &str, out: &mut Vec<Finding>) {
    let vars = if version_dir.is_empty() {
        "variables".to_string()
    } else {
        format!("{version_dir}/variables")
    };
    if !tree.is_dir(&vars) {
        out.push(Finding::warning(
            "tf.no-variables",
            vars,
            "no variables/ folder beside saved_model.pb: only a graph without variables loads this way",
        ));
        return;
    }
    let index = tree.is_file(&format!("{vars}/variables.index"));
    let data = tree
        .children(&vars)
        .any(|n| n.name().starts_with("variables.data-"));
    if index != data {
        let missing = if index {
            "variables.data-* shards"
        } else {
            "variables.index"
        };
        out.push(
            Finding::broken(
                "tf.incomplete-variables",
                vars,
                format!("{missing} missing: TensorFlow Serving cannot restore the variables"),
            )
            .with_fix("export the SavedModel again and pack the whole version folder"),
        );
    }
}

fn read_signatures(
    tree: &Tree,
    pb: &str,
    name: &str,
    version: &str,
    out: &mut Vec<Finding>,
) -> Option<SavedModelSummary> {
    let bytes = std::fs::read(tree.root.join(pb)).ok()?;
    match savedmodel::summarize(&bytes) {
        Ok(summary) => {
            for sig in &summary.signatures {
                out.push(Finding::info(
                    "tf.signature",
                    pb,
                    format!("model '{name}' v{version}: {sig}"),
                ));
            }
            if !summary
                .signatures
                .iter()
                .any(|s| s.name == "serving_default")
            {
                out.push(Finding::warning(
                    "tf.no-serving-default",
                    pb,
                    "no 'serving_default' signature: every request must name one with \"signature_name\" in its JSON body",
                ));
            }
            Some(summary)
        }
        Err(err) => {
            out.push(
                Finding::broken(
                    "tf.bad-savedmodel",
                    pb,
                    format!("not a valid SavedModel protobuf ({err})"),
                )
                .with_fix("export it again with tf.saved_model.save; the file may be truncated"),
            );
            None
        }
    }
}

fn check_names(models: &[TfModel], out: &mut Vec<Finding>) {
    let mut bases: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in models {
        let base = split(&m.path).0;
        bases.entry(m.name.as_str()).or_default().push(base);
    }
    for (name, mut paths) in bases {
        paths.sort_unstable();
        paths.dedup();
        if paths.len() > 1 {
            out.push(Finding::error(
                "tf.duplicate-model-name",
                paths[1],
                format!("two model folders are both named '{name}' ({}): TensorFlow Serving cannot load both", paths.join(", ")),
            ));
        }
    }
    let names: std::collections::BTreeSet<&str> = models.iter().map(|m| m.name.as_str()).collect();
    if names.len() > 1 {
        out.push(Finding::info(
            "tf.multiple-models",
            "",
            format!(
                "{} models ({}): requests without a tfs-model-name custom attribute go to the first one the container finds; set SAGEMAKER_TFS_DEFAULT_MODEL_NAME to choose",
                names.len(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
}

fn check_code(tree: &Tree, out: &mut Vec<Finding>) {
    if tree.is_dir("code/lib") && tree.is_file("code/requirements.txt") {
        out.push(Finding::info("tf.requirements-ignored", "code/requirements.txt", "ignored: the container adds code/lib/ to the path instead of installing requirements.txt when both exist"));
    }
    let Some(source) = tree.read_text("code/inference.py") else {
        if tree.is_dir("code") && tree.children("code").any(|n| n.name().ends_with(".py")) {
            out.push(Finding::warning("tf.no-inference-py", "code", "code/ has Python files but no inference.py: the TensorFlow Serving container only loads code/inference.py"));
        }
        return;
    };
    let defs = python_defs(&source);
    let has = |n: &str| defs.contains(n);
    if has("handler") {
        return;
    }
    match (has("input_handler"), has("output_handler")) {
        (true, true) => {}
        (false, false) => out.push(
            Finding::error("tf.no-handler", "code/inference.py", "defines neither handler(data, context) nor input_handler and output_handler: the container fails at start")
                .with_fix("define handler(data, context), or both input_handler(data, context) and output_handler(response, context)"),
        ),
        (input, _) => out.push(
            Finding::error(
                "tf.half-handler",
                "code/inference.py",
                format!("defines {} without {}: the container needs both", if input { "input_handler" } else { "output_handler" }, if input { "output_handler" } else { "input_handler" }),
            )
            .with_fix("define the missing function, or a single handler(data, context)"),
        ),
    }
}
