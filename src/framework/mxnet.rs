//! MXNet layout (SageMaker MXNet container, CONTRACT §4.3).
//!
//! A checkpoint is `<prefix>-symbol.json` + `<prefix>-NNNN.params`; the container also
//! needs `<prefix>-shapes.json` (`[{"name": "data", "shape": [1, 3, 224, 224]}]`). Its
//! default `model_fn` loads exactly `model-symbol.json`, `model-0000.params` and
//! `model-shapes.json`; other names need a `model_fn` in `code/inference.py`. That
//! container (sagemaker-mxnet-inference) imports the entry point before loading anything,
//! so an archive without one serves nothing (seen on the real toolkit in sagedock/mxnet).

use crate::artifact::inspect::{python_defs, Context, Finding};

pub fn lint(cx: &Context) -> Vec<Finding> {
    let tree = cx.tree;
    let mut out = Vec::new();
    let has_model_fn = tree
        .read_text("code/inference.py")
        .is_some_and(|src| python_defs(&src).contains("model_fn"));
    let symbols: Vec<&str> = tree
        .files()
        .filter(|n| n.name().ends_with("-symbol.json"))
        .map(|n| n.path.as_str())
        .collect();
    if symbols.is_empty() {
        out.push(
            Finding::error("mxnet.no-symbol", "", "no <prefix>-symbol.json: the MXNet container has no network to load")
                .with_fix("save a checkpoint with model.save_checkpoint('model', 0) (or net.export('model')) and pack its files at the archive root"),
        );
    }
    for symbol in symbols {
        let prefix = symbol.trim_end_matches("-symbol.json");
        let name = prefix.rsplit('/').next().unwrap_or(prefix);
        check_symbol(cx, symbol, &mut out);
        let params: Vec<&str> = tree
            .files()
            .filter(|n| {
                n.path
                    .strip_prefix(&format!("{prefix}-"))
                    .and_then(|rest| rest.strip_suffix(".params"))
                    .is_some_and(|epoch| {
                        epoch.len() == 4 && epoch.bytes().all(|b| b.is_ascii_digit())
                    })
            })
            .map(|n| n.path.as_str())
            .collect();
        if params.is_empty() {
            out.push(
                Finding::error(
                    "mxnet.no-params",
                    symbol,
                    format!("no {name}-NNNN.params beside it: the network has no weights"),
                )
                .with_fix(format!(
                    "add the checkpoint's {name}-0000.params (from save_checkpoint('{name}', 0))"
                )),
            );
        }
        let shapes = format!("{prefix}-shapes.json");
        if tree.is_file(&shapes) {
            check_shapes(cx, &shapes, &mut out);
        } else {
            out.push(
                Finding::error("mxnet.missing-shapes", shapes.clone(), "missing: the SageMaker MXNet container needs the input shapes to bind the module")
                    .with_fix(format!(
                        "write it beside the checkpoint: json.dump([{{\"name\": \"data\", \"shape\": [1, 3, 224, 224]}}], open('{name}-shapes.json', 'w')) with your real input name and shape, then repack"
                    )),
            );
        }
        let default_names = symbol == "model-symbol.json" && params.contains(&"model-0000.params");
        if !default_names && !has_model_fn {
            out.push(
                Finding::error(
                    "mxnet.default-names",
                    symbol,
                    "the container's default model_fn loads model-symbol.json, model-0000.params and model-shapes.json at the archive root; these files have other names and code/inference.py defines no model_fn",
                )
                .with_fix("rename the checkpoint files to model-symbol.json / model-0000.params / model-shapes.json, or define model_fn(model_dir) in code/inference.py"),
            );
        }
    }
    if !tree.children("code").any(|n| n.name().ends_with(".py")) {
        out.push(
            Finding::warning(
                "mxnet.no-entry-point",
                "code/inference.py",
                "missing: SageMaker's MXNet serving container imports the entry point (code/inference.py, or the file SAGEMAKER_PROGRAM names) before it loads the model, even to use its default handlers; without one /ping answers but every invocation fails (503 \"Prediction failed\", logged as \"No module named 'inference'\")",
            )
            .with_fix("add code/inference.py (it may define nothing), or deploy with the SageMaker SDK's MXNetModel(entry_point=...), which puts the entry point in code/"),
        );
    }
    out.extend(super::python::hook_rules(cx, false));
    out
}

fn check_symbol(cx: &Context, path: &str, out: &mut Vec<Finding>) {
    let parsed = cx
        .tree
        .read_text(path)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if !parsed.is_some_and(|v| v.get("nodes").is_some_and(|n| n.is_array())) {
        out.push(Finding::error(
            "mxnet.bad-symbol",
            path,
            "not an MXNet symbol file (JSON with a \"nodes\" list)",
        ));
    }
}

fn check_shapes(cx: &Context, path: &str, out: &mut Vec<Finding>) {
    let text = cx.tree.read_text(path).unwrap_or_default();
    let valid = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| {
            v.as_array().is_some_and(|items| {
                !items.is_empty()
                    && items.iter().all(|item| {
                        item.get("name").is_some_and(|n| n.is_string())
                            && item
                                .get("shape")
                                .and_then(|s| s.as_array())
                                .is_some_and(|dims| dims.iter().all(|d| d.as_u64().is_some()))
                    })
            })
        });
    if !valid {
        out.push(
            Finding::error("mxnet.bad-shapes", path, "must be a JSON list of {\"name\": <input name>, \"shape\": [<ints>]}")
                .with_fix("write it as json.dump([{\"name\": \"data\", \"shape\": [1, 3, 224, 224]}], f) with your real input"),
        );
    }
}
