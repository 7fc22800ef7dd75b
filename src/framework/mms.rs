//! Multi Model Server archives (model-archiver output, CONTRACT §4.2).
//!
//! `MAR-INF/MANIFEST.json` names the model and its handler `module[:function]`; MMS
//! imports `module` from the model directory and calls `function` (default `handle`).

use serde_json::Value;

use super::context::Context;
use super::python::python_defs;
use crate::artifact::Finding;

const MANIFEST: &str = "MAR-INF/MANIFEST.json";

pub fn lint(cx: &Context) -> Vec<Finding> {
    let tree = cx.tree;
    let mut out = Vec::new();
    let Some(text) = tree.read_text(MANIFEST) else {
        out.push(
            Finding::error("mms.no-manifest", MANIFEST, "missing at the archive root: MMS cannot load the model")
                .with_fix("run model-archiver --archive-format no-archive --model-name NAME --handler module:function --model-path DIR, then pack its output folder's contents"),
        );
        return out;
    };
    let manifest: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(err) => {
            out.push(Finding::broken(
                "mms.bad-manifest",
                MANIFEST,
                format!("not valid JSON ({err})"),
            ));
            return out;
        }
    };
    for field in [
        "specificationVersion",
        "implementationVersion",
        "modelServerVersion",
    ] {
        if manifest.get(field).is_none() {
            out.push(Finding::warning(
                "mms.manifest-field",
                MANIFEST,
                format!("no \"{field}\" (model-archiver writes \"1.0\")"),
            ));
        }
    }
    match manifest.get("runtime").and_then(Value::as_str) {
        Some("python" | "python2" | "python3") => {}
        Some(other) => out.push(Finding::error(
            "mms.runtime",
            MANIFEST,
            format!("runtime \"{other}\" is not one MMS knows (python, python2, python3)"),
        )),
        None => out.push(Finding::warning(
            "mms.runtime",
            MANIFEST,
            "no \"runtime\": MMS assumes python",
        )),
    }
    let model = manifest.get("model").unwrap_or(&Value::Null);
    match model.get("modelName").and_then(Value::as_str) {
        Some(name) if valid_model_name(name) => {}
        Some(name) => out.push(Finding::error(
            "mms.model-name",
            MANIFEST,
            format!("modelName \"{name}\" must match ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$"),
        )),
        None => out.push(Finding::error(
            "mms.model-name",
            MANIFEST,
            "no model.modelName",
        )),
    }
    match model.get("handler").and_then(Value::as_str) {
        Some(handler) => check_handler(cx, handler, &mut out),
        None => out.push(
            Finding::error(
                "mms.no-handler",
                MANIFEST,
                "no model.handler: MMS does not know which code serves the model",
            )
            .with_fix("archive again with model-archiver --handler module:function"),
        ),
    }
    out
}

fn valid_model_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn check_handler(cx: &Context, handler: &str, out: &mut Vec<Finding>) {
    let (module, function) = handler.split_once(':').unwrap_or((handler, "handle"));
    let file = format!("{}.py", module.replace('.', "/"));
    let package = format!("{}/__init__.py", module.replace('.', "/"));
    let Some(source) = cx
        .tree
        .read_text(&file)
        .or_else(|| cx.tree.read_text(&package))
    else {
        out.push(
            Finding::error(
                "mms.handler-missing",
                file.clone(),
                format!("handler \"{handler}\" names module '{module}', but {file} is not in the archive"),
            )
            .with_fix(format!("add {file} at the archive root (model-archiver copies it from --model-path)")),
        );
        return;
    };
    if !python_defs(&source).contains(function) && !source.contains(&format!("def {function}(")) {
        out.push(Finding::warning(
            "mms.handler-function",
            file,
            format!("no function '{function}' defined at the top level: MMS calls {module}.{function}(data, context) for every request"),
        ));
    }
}
