//! The MXNet walkthroughs' path on real MXNet: the checkpoint fixture (model-symbol.json,
//! model-0000.params, model-shapes.json: a 4-feature, 3-class softmax classifier) packed
//! into model.tar.gz, served by `sagedock/mxnet` (AWS's MXNet serving toolkit on Multi
//! Model Server), invoked through sagedock with the toolkit's default handlers; then
//! user hooks in code/inference.py, and the archive with no entry point at all.

use serde_json::{json, Value};

use crate::util::http::Reply;
use crate::util::serve::{serve_model, Served};
use crate::util::Sandbox;

/// The fixture's softmax for [6.4, 3.2, 4.5, 1.5] and [5.1, 3.5, 1.4, 0.2]
/// (fixtures/scripts/make_mxnet_model.py).
const VERSICOLOR: [f64; 3] = [0.033011, 0.663045, 0.303944];
const SETOSA: [f64; 3] = [0.968038, 0.031352, 0.000610];

fn serve(sb: &Sandbox, model: &str) -> Option<Served> {
    serve_model(sb, "sagedock/mxnet:latest", model, "mx", &[])
}

fn invoke(served: &Served, content_type: &str, accept: &str, body: &[u8]) -> Reply {
    served.invoke(&[("Content-Type", content_type), ("Accept", accept)], body)
}

fn assert_rows(answer: &Value, expected: &[[f64; 3]]) {
    let rows = answer.as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(rows.len(), expected.len(), "{answer}");
    for (row, want) in rows.iter().zip(expected) {
        let got: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
            "{got:?} != {want:?}"
        );
    }
}

#[test]
fn a_checkpoint_answers_with_the_default_handlers() {
    let sb = Sandbox::new();
    sb.pack("mxnet", "model.tar.gz");
    let Some(served) = serve(&sb, "model.tar.gz") else {
        return;
    };

    // JSON in and out, as MXNetPredictor sends it.
    let reply = invoke(
        &served,
        "application/json",
        "application/json",
        b"[[6.4, 3.2, 4.5, 1.5]]",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_rows(&serde_json::from_slice(&reply.body).unwrap(), &[VERSICOLOR]);

    // CSV rows: the module is bound with batch 1, the toolkit batches the rows through it.
    let reply = invoke(
        &served,
        "text/csv",
        "text/csv",
        b"6.4,3.2,4.5,1.5\n5.1,3.5,1.4,0.2",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/csv"));
    let rows: Vec<Value> = reply
        .text()
        .lines()
        .map(|line| {
            Value::Array(
                line.split(',')
                    .map(|v| json!(v.parse::<f64>().unwrap()))
                    .collect(),
            )
        })
        .collect();
    assert_rows(&Value::Array(rows), &[VERSICOLOR, SETOSA]);

    // A content type the default input_fn does not read: the toolkit's 500, which the
    // caller sees as SageMaker's ModelError.
    let reply = invoke(&served, "application/xml", "application/json", b"<x/>");
    assert_eq!(reply.status, 424, "{}", reply.text());
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["OriginalStatusCode"], 500, "{answer}");
    assert!(
        answer["OriginalMessage"]
            .as_str()
            .unwrap()
            .contains("application/xml is not supported"),
        "{answer}"
    );
}

#[test]
fn inference_py_hooks_replace_the_defaults() {
    let sb = Sandbox::new();
    let model = sb.model("mxnet", "model");
    sb.write(
        "model/code/inference.py",
        r#"import json

import mxnet as mx

CLASSES = ["setosa", "versicolor", "virginica"]

def input_fn(body, content_type):
    # {"flowers": [[...], ...]} -> the rows, as an NDArray.
    assert content_type == "application/vnd.flowers+json", content_type
    return mx.nd.array(json.loads(body)["flowers"])

def predict_fn(data, module):
    return module.predict(mx.io.NDArrayIter(data, batch_size=1))

def output_fn(prediction, accept):
    best = prediction.argmax(axis=1).asnumpy().astype(int).tolist()
    return json.dumps({"species": [CLASSES[i] for i in best]}), "application/vnd.species+json"
"#,
    );
    let Some(served) = serve(&sb, model.to_str().unwrap()) else {
        return;
    };
    let body = json!({"flowers": [[6.4, 3.2, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2]]}).to_string();
    let reply = invoke(
        &served,
        "application/vnd.flowers+json",
        "*/*",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.species+json")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&reply.body).unwrap(),
        json!({"species": ["versicolor", "setosa"]})
    );
}

/// Packed as the first walkthrough packs it (the checkpoint files alone, no code/): the
/// container answers /ping, then fails every invocation because its handler service
/// imports the entry point before loading the model. `sagedock validate` warns of it.
#[test]
fn without_an_entry_point_every_invocation_fails() {
    let sb = Sandbox::new();
    let model = sb.model("mxnet", "model");
    std::fs::remove_dir_all(model.join("code")).unwrap();
    let validate = sb
        .cmd()
        .args(["validate", "--json", "model"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&validate.stdout).unwrap();
    let warned = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "mxnet.no-entry-point" && f["severity"] == "warning");
    assert!(warned, "{report:#}");

    let Some(served) = serve(&sb, "model") else {
        return;
    };
    let reply = invoke(
        &served,
        "application/json",
        "application/json",
        b"[[6.4, 3.2, 4.5, 1.5]]",
    );
    assert_eq!(reply.status, 424, "{}", reply.text());
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["OriginalStatusCode"], 503, "{answer}");
    let logs = served.stdout();
    assert!(logs.contains("No module named 'inference'"), "{logs}");
}
