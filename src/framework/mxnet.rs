//! MXNet layout (SageMaker MXNet container, CONTRACT §4.3).
//!
//! A checkpoint is `<prefix>-symbol.json` + `<prefix>-NNNN.params`; the container also
//! needs `<prefix>-shapes.json` (`[{"name": "data", "shape": [1, 3, 224, 224]}]`). Its
//! default `model_fn` loads exactly `model-symbol.json`, `model-0000.params` and
//! `model-shapes.json`; other names need a `model_fn` in `code/inference.py`. That
//! container (sagemaker-mxnet-inference) imports the entry point before loading anything,
//! so an archive without one serves nothing (seen on the real toolkit in sagedock/mxnet).

use std::collections::BTreeSet;

use super::context::Context;
use super::mxnet_params::{self, ParamsError};
use super::python::python_defs;
use crate::artifact::Finding;

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
        check_checkpoint(cx, symbol, has_model_fn, &mut out);
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
    out.extend(super::python::hook_rules(cx, None));
    out
}

/// One `<prefix>-symbol.json` and the params and shapes files that go with it.
fn check_checkpoint(cx: &Context, symbol: &str, has_model_fn: bool, out: &mut Vec<Finding>) {
    let tree = cx.tree;
    let prefix = symbol.trim_end_matches("-symbol.json");
    let name = prefix.rsplit('/').next().unwrap_or(prefix);
    check_symbol(cx, symbol, out);
    let params: Vec<&str> = tree
        .files()
        .filter(|n| {
            n.path
                .strip_prefix(&format!("{prefix}-"))
                .and_then(|rest| rest.strip_suffix(".params"))
                .is_some_and(|epoch| epoch.len() == 4 && epoch.bytes().all(|b| b.is_ascii_digit()))
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
        check_shapes(cx, &shapes, out);
    } else {
        out.push(
            Finding::error("mxnet.missing-shapes", shapes.clone(), "missing: the SageMaker MXNet container needs the input shapes to bind the module")
                .with_fix(format!(
                    "write it beside the checkpoint: json.dump([{{\"name\": \"data\", \"shape\": [1, 3, 224, 224]}}], open('{name}-shapes.json', 'w')) with your real input name and shape, then repack"
                )),
        );
    }
    let default_names = symbol == "model-symbol.json" && params.contains(&"model-0000.params");
    if default_names && !has_model_fn {
        // What the container's default model_fn binds: check the three files agree.
        check_bindings(cx, symbol, "model-0000.params", &shapes, out);
    } else if !has_model_fn {
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

fn check_symbol(cx: &Context, path: &str, out: &mut Vec<Finding>) {
    let parsed = cx
        .tree
        .read_text(path)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if !parsed.is_some_and(|v| v.get("nodes").is_some_and(|n| n.is_array())) {
        out.push(Finding::broken(
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
            Finding::broken("mxnet.bad-shapes", path, "must be a JSON list of {\"name\": <input name>, \"shape\": [<ints>]}")
                .with_fix("write it as json.dump([{\"name\": \"data\", \"shape\": [1, 3, 224, 224]}], f) with your real input"),
        );
    }
}

/// The default model_fn binds a Module with `data_names` from the shapes file, no labels,
/// and `set_params(args, aux, allow_missing=True)`. A shapes name the network lacks fails
/// every invocation (MXNet: "You created Module with Module(..., data_names=[...]) but
/// input with name ... is not found in symbol.list_arguments()"); an argument with
/// neither a saved value nor a shape stays uninitialised.
fn check_bindings(cx: &Context, symbol: &str, params: &str, shapes: &str, out: &mut Vec<Finding>) {
    let tree = cx.tree;
    let Some(arguments) = symbol_arguments(&tree.read_text(symbol).unwrap_or_default()) else {
        return; // mxnet.bad-symbol already said so
    };
    let Some(saved) = saved_names(cx, params, out) else {
        return;
    };
    let inputs: Vec<&str> = arguments
        .iter()
        .map(String::as_str)
        .filter(|a| !saved.contains(*a) && !a.ends_with("_label"))
        .collect();
    let Some(declared) = shape_names(&tree.read_text(shapes).unwrap_or_default()) else {
        return; // missing or malformed: said already
    };
    let unknown: Vec<&str> = declared
        .iter()
        .map(String::as_str)
        .filter(|n| !arguments.iter().any(|a| a == n))
        .collect();
    if !unknown.is_empty() {
        out.push(
            Finding::error(
                "mxnet.shape-name",
                shapes,
                format!(
                    "names {} that {symbol} has no input called: the container binds the module with these names and every invocation fails; the network's inputs are {}",
                    quoted(&unknown),
                    quoted(&inputs),
                ),
            )
            .with_fix(format!(
                "use the network's input name, e.g. json.dump([{{\"name\": \"{}\", \"shape\": [...]}}], f) (Keras-MXNet prefixes input names with '/')",
                inputs.first().copied().unwrap_or("data")
            )),
        );
        return;
    }
    let unbound: Vec<&str> = inputs
        .iter()
        .copied()
        .filter(|a| !declared.iter().any(|d| d == a))
        .collect();
    if !unbound.is_empty() {
        out.push(
            Finding::warning(
                "mxnet.unbound-argument",
                params,
                format!(
                    "{} of {symbol} has no value here and no shape in {shapes}: the default model_fn loads with allow_missing=True, so it is left uninitialised (or the bind fails)",
                    quoted(&unbound)
                ),
            )
            .with_fix("save the checkpoint from the trained module (all its parameters), or list the input in the shapes file"),
        );
    }
}

/// The parameter names saved in `params` (without MXNet's `arg:`/`aux:`
/// prefixes), or `None` after saying why they could not be read.
fn saved_names(cx: &Context, params: &str, out: &mut Vec<Finding>) -> Option<BTreeSet<String>> {
    let arrays = match mxnet_params::read_file(&cx.tree.root.join(params)) {
        Ok(arrays) => arrays,
        Err(ParamsError::NotParams) => {
            out.push(
                Finding::broken("mxnet.bad-params", params, "not an MXNet parameter file (it does not start with MXNet's NDArray list header)")
                    .with_fix("save the weights with module.save_checkpoint('model', 0) or net.export('model'), and pack the files they write"),
            );
            return None;
        }
        Err(ParamsError::Corrupt(why)) => {
            out.push(
                Finding::broken("mxnet.bad-params", params, format!("corrupt MXNet parameter file: {why}"))
                    .with_fix("save the checkpoint again and repack; a file cut short by an interrupted copy looks like this"),
            );
            return None;
        }
        Err(ParamsError::Unsupported(what)) => {
            out.push(Finding::info(
                "mxnet.params-unread",
                params,
                format!("holds {what}, which sagedock does not read: its names were not checked against the network"),
            ));
            return None;
        }
        Err(ParamsError::Io(e)) => {
            out.push(Finding::warning(
                "mxnet.params-unread",
                params,
                format!("could not be read ({e}): its names were not checked against the network"),
            ));
            return None;
        }
    };
    Some(
        arrays
            .iter()
            .map(|a| {
                let name = a
                    .name
                    .strip_prefix("arg:")
                    .or_else(|| a.name.strip_prefix("aux:"));
                name.unwrap_or(&a.name).to_owned()
            })
            .collect(),
    )
}

/// The names of a symbol's argument nodes (inputs, labels and parameters).
fn symbol_arguments(text: &str) -> Option<Vec<String>> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let nodes = json.get("nodes")?.as_array()?;
    let args = json.get("arg_nodes")?.as_array()?;
    args.iter()
        .map(|i| {
            let node = nodes.get(usize::try_from(i.as_u64()?).ok()?)?;
            Some(node.get("name")?.as_str()?.to_string())
        })
        .collect()
}

fn shape_names(text: &str) -> Option<Vec<String>> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    json.as_array()?
        .iter()
        .map(|item| Some(item.get("name")?.as_str()?.to_string()))
        .collect()
}

fn quoted(names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", list.join(", "))
}
