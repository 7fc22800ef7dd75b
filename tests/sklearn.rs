//! A scikit-learn model with code/inference.py on `sagedock/sklearn` (SageMaker's
//! scikit-learn serving stack: nginx, gunicorn, the SageMaker containers library): the
//! fixture's LinearRegression (y = 0.5 * sum(x) + 2) with the default input, predict and
//! output functions, then user hooks, then an entry point without model_fn.

use serde_json::{json, Value};

use crate::util::http::Reply;
use crate::util::serve::{serve_model, Served};
use crate::util::Sandbox;

/// The environment the SageMaker SDK's SKLearnModel gives the container.
const ENTRY_POINT: [&str; 4] = [
    "-e",
    "SAGEMAKER_PROGRAM=inference.py",
    "-e",
    "SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code",
];

fn serve(sb: &Sandbox, model: &str) -> Option<Served> {
    serve_model(sb, "sagedock/sklearn:latest", model, "sk", &ENTRY_POINT)
}

fn invoke(served: &Served, content_type: &str, accept: &str, body: &[u8]) -> Reply {
    served.invoke(&[("Content-Type", content_type), ("Accept", accept)], body)
}

fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    assert!(
        got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
        "{got:?} vs {want:?}"
    );
}

#[test]
fn a_joblib_model_answers_with_the_default_functions() {
    let sb = Sandbox::new();
    sb.pack("sklearn", "model.tar.gz");
    let Some(served) = serve(&sb, "model.tar.gz") else {
        return;
    };
    let reply = invoke(
        &served,
        "application/json",
        "application/json",
        b"[[6.4, 3.2, 4.5, 1.5], [0, 0, 0, 0]]",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    let values: Vec<f64> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_close(&values, &[9.8, 2.0]);

    let reply = invoke(
        &served,
        "text/csv",
        "text/csv",
        b"6.4,3.2,4.5,1.5\n1,1,1,1\n",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Flask adds the charset to text types, as in SageMaker's container.
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_close(&numbers(&reply.text()), &[9.8, 4.0]);

    // The library's default input_fn does not read XML; the container answers 500, which
    // the caller sees as SageMaker's ModelError.
    let reply = invoke(&served, "application/xml", "application/json", b"<x/>");
    assert_eq!(reply.status, 424, "{}", reply.text());
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["OriginalStatusCode"], 500, "{answer}");
}

#[test]
fn inference_py_hooks_replace_the_defaults() {
    let sb = Sandbox::new();
    let model = sb.model("sklearn", "model");
    sb.write(
        "model/code/inference.py",
        r#"import json
import os

import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    assert content_type == "application/vnd.rows+json", content_type
    return np.array(json.loads(body)["rows"], dtype=float)

def predict_fn(data, model):
    return model.predict(data).round(3)

def output_fn(prediction, accept):
    return json.dumps({"y": prediction.tolist()}), "application/vnd.y+json"
"#,
    );
    let Some(served) = serve(&sb, model.to_str().unwrap()) else {
        return;
    };
    let body = json!({"rows": [[1, 2, 3, 4]]}).to_string();
    let reply = invoke(&served, "application/vnd.rows+json", "*/*", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/vnd.y+json"));
    assert_eq!(
        serde_json::from_slice::<Value>(&reply.body).unwrap(),
        json!({"y": [7.0]})
    );
}

/// scikit-learn has no default model_fn: `sagedock validate` says so before anything
/// starts, and the container never answers /ping (the library loads the model on the
/// first request, the health check included), so the endpoint fails its health check with
/// the container's own error in the report.
#[test]
fn an_entry_point_without_model_fn_never_gets_healthy() {
    let sb = Sandbox::new();
    sb.model("sklearn", "model");
    sb.write("model/code/inference.py", "import joblib\n");
    let out = sb
        .cmd()
        .args(["validate", "model", "--json", "--framework", "sklearn"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "code.no-model-fn" && f["severity"] == "error"),
        "{report:#}"
    );
    if !crate::util::docker::require_docker() {
        return;
    }
    crate::util::docker::require_images();
    let mut args = vec![
        "--image",
        "sagedock/sklearn:latest",
        "--model",
        "model",
        "--health-timeout",
        "20s",
    ];
    args.extend(ENTRY_POINT);
    let Err((code, stderr)) = Served::start(&sb, &args) else {
        panic!("serve got ready with no model_fn");
    };
    assert_eq!(code, Some(1), "{stderr}");
    // The layout finding that explains the failure comes first, before the traceback.
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("");
    assert!(
        error.starts_with("error: the model data has error[code.no-model-fn] code/inference.py"),
        "{stderr}"
    );
    assert!(stderr.contains("500"), "{stderr}");
    assert!(
        stderr.contains("Please provide a model_fn implementation"),
        "{stderr}"
    );
}
