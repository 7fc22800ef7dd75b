//! The TensorFlow walkthroughs' path on real TensorFlow: a SavedModel (the fixture
//! `half_plus_two`: y = 0.5 x + 2) packed into model.tar.gz, served by
//! `sagedock/tensorflow` (SageMaker's TensorFlow Serving container contract), invoked
//! through sagedock with TensorFlow Serving's request formats; then a code/inference.py
//! with input and output handlers.

use serde_json::{json, Value};

use crate::util::serve::{serve_model, Served};
use crate::util::Sandbox;

fn serve(sb: &Sandbox, model: &str) -> Option<Served> {
    serve_model(sb, "sagedock/tensorflow:latest", model, "tf", &[])
}

fn invoke(served: &Served, content_type: &str, attributes: &str, body: &[u8]) -> (u16, Value) {
    let mut headers = vec![("Content-Type", content_type)];
    if !attributes.is_empty() {
        headers.push(("X-Amzn-SageMaker-Custom-Attributes", attributes));
    }
    let reply = served.invoke(&headers, body);
    let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, value)
}

#[test]
fn a_savedmodel_answers_tensorflow_serving_requests() {
    let sb = Sandbox::new();
    sb.pack("tensorflow", "model.tar.gz");
    let Some(served) = serve(&sb, "model.tar.gz") else {
        return;
    };

    // Row format, as the SageMaker SDK's TensorFlowPredictor sends it.
    let body = json!({"instances": [[6.4, 3.2, 4.5, 1.5]]}).to_string();
    let (status, answer) = invoke(&served, "application/json", "", body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"predictions": [[5.2, 3.6, 4.25, 2.75]]}));

    // CSV: one instance per line.
    let (status, answer) = invoke(&served, "text/csv", "", b"1,2,3,4\n0,0,0,0\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"predictions": [[2.5, 3.0, 3.5, 4.0], [2.0, 2.0, 2.0, 2.0]]})
    );

    // Columnar format; another signature with named int64 and string inputs.
    let body = json!({"inputs": {"x": [[2, 2, 2, 2]]}}).to_string();
    let (_, answer) = invoke(&served, "application/json", "", body.as_bytes());
    assert_eq!(answer, json!({"outputs": [[3.0, 3.0, 3.0, 3.0]]}));
    let body = json!({"signature_name": "classify_ids", "instances": [{"ids": 3, "names": "a"}]})
        .to_string();
    let (_, answer) = invoke(
        &served,
        "application/json",
        "tfs-model-name=model",
        body.as_bytes(),
    );
    assert_eq!(
        answer,
        json!({"predictions": [{"labels": "a:3", "scores": 3.5}]})
    );

    // A wrong shape is the model's 400, which the caller sees as SageMaker's ModelError.
    let body = json!({"instances": [[1, 2, 3]]}).to_string();
    let (status, answer) = invoke(&served, "application/json", "", body.as_bytes());
    assert_eq!(status, 424, "{answer}");
    assert_eq!(answer["OriginalStatusCode"], 400, "{answer}");
    let message = answer["OriginalMessage"].as_str().unwrap();
    assert!(
        message.contains("not compatible with the signature's"),
        "{message}"
    );
    // An unknown model is TensorFlow Serving's 404.
    let (status, answer) = invoke(&served, "application/json", "tfs-model-name=nope", b"{}");
    assert_eq!(
        (status, answer["OriginalStatusCode"].as_u64()),
        (424, Some(404)),
        "{answer}"
    );
}

#[test]
fn inference_py_handlers_shape_requests_and_answers() {
    let sb = Sandbox::new();
    let model = sb.model("tensorflow", "model");
    sb.write(
        "model/code/inference.py",
        r#"import json

def input_handler(data, context):
    # "1 2 3 4" -> one instance; the context says what SageMaker's container says.
    assert context.request_content_type == "text/plain", context
    assert context.model_name == "model" and context.rest_uri.endswith("/v1/models/model:predict")
    values = [float(v) for v in data.read().decode().split()]
    return json.dumps({"instances": [values]})

def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode())
    y = response.json()["predictions"][0]
    return json.dumps({"sum": sum(y)}), "application/vnd.sum+json"
"#,
    );
    let Some(served) = serve(&sb, model.to_str().unwrap()) else {
        return;
    };
    let reply = served.invoke(&[("Content-Type", "text/plain")], b"1 2 3 4");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.sum+json")
    );
    // 0.5 * (1 + 2 + 3 + 4) + 4 * 2
    assert_eq!(
        serde_json::from_slice::<Value>(&reply.body).unwrap(),
        json!({"sum": 13.0})
    );
}

/// The legacy estimator export of the first walkthrough (export/Servo/<timestamp>/) is
/// served as model 'Servo', as `sagedock validate` explains it.
#[test]
fn the_legacy_estimator_export_is_served_as_servo() {
    let sb = Sandbox::new();
    crate::util::copy_tree(
        &crate::util::fixture("models/tensorflow/1"),
        &sb.join("m/export/Servo/1527887769"),
    );
    let Some(served) = serve(&sb, "m") else {
        return;
    };
    let body = json!({"instances": [[0, 0, 0, 0]]}).to_string();
    let (status, answer) = invoke(
        &served,
        "application/json",
        "tfs-model-name=Servo",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"predictions": [[2.0, 2.0, 2.0, 2.0]]}));
}
