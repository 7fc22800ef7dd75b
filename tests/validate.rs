//! `sagedock validate`: each framework's valid layout passes, each broken layout gives
//! the finding a user needs (code, path, fix), and exit codes follow 0 / 1 / 2.

use std::fs;

use serde_json::Value;

use crate::util::{fixture, json, Sandbox};

/// Runs `validate --json` and returns (exit code, report).
fn validate(sb: &Sandbox, artifact: &str, extra: &[&str]) -> (i32, Value) {
    let out = sb
        .cmd()
        .args(["validate", artifact, "--json"])
        .args(extra)
        .output()
        .unwrap();
    (out.status.code().unwrap(), json(&out))
}

fn codes(report: &Value, severity: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == severity)
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no finding {code} in {report:#}"))
}

fn assert_clean(sb: &Sandbox, artifact: &str, framework: &str) -> Value {
    let (code, report) = validate(sb, artifact, &[]);
    assert_eq!(report["framework"], framework, "{report:#}");
    assert!(codes(&report, "error").is_empty(), "{report:#}");
    assert!(codes(&report, "warning").is_empty(), "{report:#}");
    assert_eq!(code, 0);
    report
}

#[test]
fn the_savedmodel_signatures_are_listed() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .arg("validate")
        .arg(fixture("models/tensorflow"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("framework: tensorflow (TensorFlow Serving), detected from 1/saved_model.pb"),
        "{text}"
    );
    assert!(text.contains("model 'model' version 1 (1/)"), "{text}");
    assert!(
        text.contains("  serving_default: inputs {x: float32[-1,4]} -> outputs {y: float32[-1,4]}"),
        "{text}"
    );
    assert!(
        text.contains("  classify_ids: inputs {ids: int64[-1], names: string[-1]} -> outputs {labels: string[-1], scores: float32[-1]}"),
        "{text}"
    );
    assert!(!text.contains("__saved_model_init_op"));
}

#[test]
fn a_packed_savedmodel_reports_its_digest_and_signatures_as_json() {
    let sb = Sandbox::new();
    sb.pack("tensorflow", "model.tar.gz");
    let report = assert_clean(&sb, "model.tar.gz", "tensorflow");
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    let model = &report["tensorflow_models"][0];
    assert_eq!(model["name"], "model");
    assert_eq!(model["version"], "1");
    let sigs = model["saved_model"]["signatures"].as_array().unwrap();
    let default = sigs
        .iter()
        .find(|s| s["name"] == "serving_default")
        .unwrap();
    assert_eq!(
        default["inputs"][0],
        serde_json::json!({"name": "x", "dtype": "float32", "shape": [-1, 4]})
    );
    assert_eq!(default["method"], "tensorflow/serving/predict");
    assert_eq!(model["saved_model"]["tags"], serde_json::json!(["serve"]));
}

#[test]
fn the_legacy_estimator_export_is_explained() {
    let sb = Sandbox::new();
    crate::util::copy_tree(
        &fixture("models/tensorflow/1"),
        &sb.join("m/export/Servo/1527887769"),
    );
    let (code, report) = validate(&sb, "m", &[]);
    assert_eq!(code, 0);
    let f = finding(&report, "tf.legacy-export-servo");
    assert_eq!(f["severity"], "warning");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("model named 'Servo'"));
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("sagedock pack m/export/Servo -o model.tar.gz"),
        "{f}"
    );
    assert_eq!(report["tensorflow_models"][0]["name"], "Servo");
    assert_eq!(report["tensorflow_models"][0]["version"], "1527887769");
    // Not also "wrapped in export/", which would name the model 'export'.
    let codes: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(!codes.contains(&"layout.wrapped"), "{codes:?}");
}

#[test]
fn a_wrapping_folder_is_flagged_with_the_repack_command() {
    let sb = Sandbox::new();
    sb.model("pytorch", "m/model");
    let (code, report) = validate(&sb, "m", &["--framework", "pytorch"]);
    assert_eq!(
        code, 1,
        "code/inference.py is not where the container looks"
    );
    let f = finding(&report, "layout.wrapped");
    assert_eq!(f["path"], "model");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .ends_with("sagedock pack m/model -o model.tar.gz"),
        "{f}"
    );
    assert!(codes(&report, "error").contains(&"code.missing".to_string()));

    // Through an archive, the fix unpacks first.
    sb.cmd()
        .args(["pack", "m", "-o", "wrapped.tar.gz"])
        .assert()
        .success();
    let (_, report) = validate(&sb, "wrapped.tar.gz", &[]);
    let fix = finding(&report, "layout.wrapped")["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fix.contains("sagedock unpack wrapped.tar.gz model-dir && sagedock pack model-dir/model -o model.tar.gz"), "{fix}");
}

#[test]
fn a_savedmodel_outside_a_version_folder_is_an_error() {
    let sb = Sandbox::new();
    crate::util::copy_tree(&fixture("models/tensorflow/1"), &sb.join("m"));
    let (code, report) = validate(&sb, "m", &["--framework", "tensorflow"]);
    assert_eq!(code, 1);
    let f = finding(&report, "tf.version-not-numeric");
    assert_eq!(f["path"], "saved_model.pb");
    assert!(f["fix"].as_str().unwrap().contains("folder named 1/"));
}

#[test]
fn a_corrupt_savedmodel_is_an_error() {
    let sb = Sandbox::new();
    sb.model("tensorflow", "m");
    fs::write(sb.join("m/1/saved_model.pb"), b"\x12\xff\xff\xff\x7f").unwrap();
    let (code, report) = validate(&sb, "m", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        finding(&report, "tf.bad-savedmodel")["path"],
        "1/saved_model.pb"
    );
}

#[test]
fn tensorflow_inference_code_needs_both_handlers() {
    let sb = Sandbox::new();
    sb.model("tensorflow", "m");
    sb.write(
        "m/code/inference.py",
        "def input_handler(data, context):\n    return data\n",
    );
    let (code, report) = validate(&sb, "m", &["--framework", "tensorflow"]);
    assert_eq!(code, 1);
    assert!(finding(&report, "tf.half-handler")["message"]
        .as_str()
        .unwrap()
        .contains("without output_handler"));
    sb.write(
        "m/code/inference.py",
        "def handler(data, context):\n    return data\n",
    );
    assert_clean(&sb, "m", "tensorflow");
}

#[test]
fn mxnet_needs_its_shapes_file() {
    let sb = Sandbox::new();
    assert_clean(&sb, fixture("models/mxnet").to_str().unwrap(), "mxnet");
    sb.model("mxnet", "m");
    fs::remove_file(sb.join("m/model-shapes.json")).unwrap();
    let (code, report) = validate(&sb, "m", &["--framework", "mxnet"]);
    assert_eq!(code, 1);
    let f = finding(&report, "mxnet.missing-shapes");
    assert_eq!(f["path"], "model-shapes.json");
    assert!(f["fix"].as_str().unwrap().contains("json.dump"));
}

#[test]
fn mxnet_shapes_and_names_are_checked() {
    let sb = Sandbox::new();
    sb.model("mxnet", "m");
    fs::write(sb.join("m/model-shapes.json"), r#"{"data": [1, 4]}"#).unwrap();
    let (_, report) = validate(&sb, "m", &[]);
    assert!(
        codes(&report, "error").contains(&"mxnet.bad-shapes".into()),
        "{report:#}"
    );

    let sb = Sandbox::new();
    sb.model("mxnet", "m");
    for (from, to) in [
        ("model-symbol.json", "resnet-symbol.json"),
        ("model-0000.params", "resnet-0012.params"),
        ("model-shapes.json", "resnet-shapes.json"),
    ] {
        fs::rename(sb.join("m").join(from), sb.join("m").join(to)).unwrap();
    }
    let (code, report) = validate(&sb, "m", &["--framework", "mxnet"]);
    assert_eq!(code, 1);
    assert_eq!(
        finding(&report, "mxnet.default-names")["path"],
        "resnet-symbol.json"
    );
    sb.write(
        "m/code/inference.py",
        "def model_fn(model_dir):\n    pass\n",
    );
    assert_clean(&sb, "m", "mxnet");
}

/// An MXNet params file holding one float32 array per (name, shape), as `mx.nd.save` writes it.
fn mxnet_params(arrays: &[(&str, &[u64])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0x112u64.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((arrays.len() as u64).to_le_bytes());
    for (_, shape) in arrays {
        out.extend(0xF993_FAC9u32.to_le_bytes());
        out.extend(0u32.to_le_bytes()); // dense
        out.extend(u32::try_from(shape.len()).unwrap().to_le_bytes());
        shape.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.extend([1u32, 0].iter().flat_map(|v| v.to_le_bytes())); // cpu(0)
        out.extend(0u32.to_le_bytes()); // float32
        out.extend(vec![
            0u8;
            4 * usize::try_from(shape.iter().product::<u64>())
                .unwrap()
        ]);
    }
    out.extend((arrays.len() as u64).to_le_bytes());
    for (name, _) in arrays {
        out.extend((name.len() as u64).to_le_bytes());
        out.extend(name.as_bytes());
    }
    out
}

/// The three checkpoint files must agree on names, as the container's default model_fn
/// binds them: a shapes name the network lacks fails every invocation (seen on the real
/// MXNet container), a weight missing from the params file stays uninitialised.
#[test]
fn mxnet_checkpoint_files_must_agree_on_names() {
    let sb = Sandbox::new();
    sb.model("mxnet", "m");
    sb.write(
        "m/model-shapes.json",
        r#"[{"name": "/dense_1_input1", "shape": [1, 4]}]"#,
    );
    let (code, report) = validate(&sb, "m", &["--framework", "mxnet"]);
    assert_eq!(code, 1);
    let f = finding(&report, "mxnet.shape-name");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("['/dense_1_input1']") && message.contains("inputs are ['data']"),
        "{message}"
    );
    assert!(f["fix"].as_str().unwrap().contains(r#""name": "data""#));

    let sb = Sandbox::new();
    sb.model("mxnet", "m");
    sb.write(
        "m/model-0000.params",
        mxnet_params(&[("arg:fc1_weight", &[3, 4])]),
    );
    let (code, report) = validate(&sb, "m", &[]);
    assert_eq!(code, 0, "{report:#}");
    let f = finding(&report, "mxnet.unbound-argument");
    assert_eq!(f["severity"], "warning");
    assert!(f["message"].as_str().unwrap().starts_with("['fc1_bias']"));

    // The same file with both weights is clean: the reader follows what MXNet writes.
    sb.write(
        "m/model-0000.params",
        mxnet_params(&[("arg:fc1_weight", &[3, 4]), ("arg:fc1_bias", &[3])]),
    );
    assert_clean(&sb, "m", "mxnet");

    sb.write("m/model-0000.params", "placeholder weights");
    let (code, report) = validate(&sb, "m", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        finding(&report, "mxnet.bad-params")["path"],
        "model-0000.params"
    );
}

#[test]
fn mms_handlers_must_exist_in_the_archive() {
    let sb = Sandbox::new();
    let report = assert_clean(&sb, fixture("models/mms").to_str().unwrap(), "mms");
    assert_eq!(report["detected_from"], "MAR-INF/MANIFEST.json");
    sb.model("mms", "m");
    let manifest = fs::read_to_string(sb.join("m/MAR-INF/MANIFEST.json")).unwrap();
    fs::write(
        sb.join("m/MAR-INF/MANIFEST.json"),
        manifest.replace("sentiment_handler:handle", "missing_module:handle"),
    )
    .unwrap();
    let (code, report) = validate(&sb, "m", &["--framework", "mms"]);
    assert_eq!(code, 1);
    let f = finding(&report, "mms.handler-missing");
    assert_eq!(f["path"], "missing_module.py");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("\"missing_module:handle\""));
    fs::write(sb.join("m/MAR-INF/MANIFEST.json"), "{not json").unwrap();
    let (code, report) = validate(&sb, "m", &[]);
    assert_eq!(code, 1);
    assert!(codes(&report, "error").contains(&"mms.bad-manifest".into()));
}

#[test]
fn pytorch_needs_a_model_fn() {
    let sb = Sandbox::new();
    let report = assert_clean(&sb, fixture("models/pytorch").to_str().unwrap(), "pytorch");
    assert!(codes(&report, "info").contains(&"code.requirements".into()));
    sb.model("pytorch", "m");
    sb.write(
        "m/code/inference.py",
        "def predict_fn(data, model):\n    return model(data)\n",
    );
    let (code, report) = validate(&sb, "m", &["--framework", "pytorch"]);
    assert_eq!(code, 1);
    assert_eq!(
        finding(&report, "code.no-model-fn")["path"],
        "code/inference.py"
    );
    sb.write(
        "m/code/inference.py",
        "def model_fn(d):\n    pass\ndef transform_fn(m, data, ct, accept):\n    pass\ndef input_fn(b, ct):\n    pass\n",
    );
    let (_, report) = validate(&sb, "m", &[]);
    assert!(finding(&report, "code.transform-and-trio")["message"]
        .as_str()
        .unwrap()
        .contains("input_fn"));
    fs::remove_dir_all(sb.join("m/code")).unwrap();
    let (code, report) = validate(&sb, "m", &["--framework", "pytorch"]);
    assert_eq!(code, 1);
    assert_eq!(
        finding(&report, "code.missing")["path"],
        "code/inference.py"
    );
}

#[test]
fn sklearn_and_xgboost_layouts() {
    let sb = Sandbox::new();
    assert_clean(&sb, fixture("models/sklearn").to_str().unwrap(), "sklearn");
    assert_clean(&sb, fixture("models/xgboost").to_str().unwrap(), "xgboost");
    sb.write("x/booster.bst", "b");
    let (code, report) = validate(&sb, "x", &[]);
    assert_eq!((code, report["framework"].as_str()), (0, Some("xgboost")));
    assert_eq!(finding(&report, "model.file")["path"], "booster.bst");
    sb.write("s/model.pkl", "p");
    let (code, report) = validate(&sb, "s", &["--framework", "sklearn"]);
    assert_eq!((code, report["framework"].as_str()), (1, Some("sklearn")));
    assert!(codes(&report, "error").contains(&"code.missing".into()));
}

/// AWS's scikit_bring_your_own sample: one pickled decision tree, served by its own image.
/// Detection suggests scikit-learn, and says what SageMaker's scikit-learn container would
/// need as a warning; only naming that framework makes it an error. A broken file stays an
/// error whoever serves it.
#[test]
fn a_detected_framework_warns_where_a_named_one_fails() {
    let sb = Sandbox::new();
    sb.write("byo/decision-tree-model.pkl", "pickled tree");
    let (code, report) = validate(&sb, "byo", &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["framework"], "sklearn");
    let f = finding(&report, "code.missing");
    assert_eq!(f["severity"], "warning");
    assert!(f["message"].as_str().unwrap().contains("detected"), "{f}");
    let (code, report) = validate(&sb, "byo", &["--framework", "sklearn"]);
    assert_eq!(code, 1);
    assert_eq!(finding(&report, "code.missing")["severity"], "error");
    let (code, report) = validate(&sb, "byo", &["--framework", "custom"]);
    assert_eq!(code, 0);
    assert!(codes(&report, "warning").is_empty(), "{report:#}");

    sb.model("tensorflow", "tf");
    fs::write(sb.join("tf/1/saved_model.pb"), b"\x12\xff\xff\xff\x7f").unwrap();
    let (code, report) = validate(&sb, "tf", &[]);
    assert_eq!(
        code, 1,
        "a corrupt SavedModel is an error even when detected"
    );
    assert_eq!(finding(&report, "tf.bad-savedmodel")["severity"], "error");
}

#[test]
fn stray_files_are_flagged_and_the_suggested_repack_removes_them() {
    let sb = Sandbox::new();
    sb.model("sklearn", "m");
    sb.write("m/.DS_Store", "junk");
    sb.write("m/code/__pycache__/inference.cpython-311.pyc", "junk");
    let (code, report) = validate(&sb, "m", &[]);
    assert_eq!(code, 0, "warnings do not fail");
    let f = finding(&report, "layout.stray-files");
    assert_eq!(f["severity"], "warning");
    let fix = f["fix"].as_str().unwrap();
    assert_eq!(
        fix,
        "sagedock pack m --exclude '.DS_Store' --exclude '__pycache__' -o model.tar.gz"
    );
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            &fix.replacen(
                "sagedock",
                assert_cmd::cargo::cargo_bin("sagedock").to_str().unwrap(),
                1,
            ),
        ])
        .current_dir(sb.path())
        .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
        .status()
        .unwrap();
    assert!(status.success());
    assert_clean(&sb, "model.tar.gz", "sklearn");
}

#[test]
fn an_empty_artifact_is_flagged() {
    let sb = Sandbox::new();
    fs::create_dir(sb.join("empty")).unwrap();
    let (_, report) = validate(&sb, "empty", &[]);
    assert_eq!(finding(&report, "layout.empty")["severity"], "warning");
}

#[test]
fn a_forced_framework_applies_its_rules() {
    let sb = Sandbox::new();
    let (code, report) = validate(
        &sb,
        fixture("models/tensorflow").to_str().unwrap(),
        &["--framework", "mxnet"],
    );
    assert_eq!(code, 1);
    assert_eq!(report["framework"], "mxnet");
    assert_eq!(report["detected_from"], Value::Null);
    assert!(codes(&report, "error").contains(&"mxnet.no-symbol".into()));
}

#[test]
fn a_hostile_archive_is_an_error_finding_not_a_crash() {
    let sb = Sandbox::new();
    let archive = fixture("archives/hostile/symlink-escape.tar.gz");
    let (code, report) = validate(&sb, archive.to_str().unwrap(), &[]);
    assert_eq!(code, 1);
    let f = finding(&report, "archive.unreadable");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("entry 'sub/link' is unsafe"),
        "{f}"
    );
    let leftovers = fs::read_dir(sb.cache_dir().join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        leftovers, 0,
        "a failed unpack leaves no staging directory in the cache"
    );
}

#[test]
fn exit_status_two_when_the_command_cannot_run() {
    let sb = Sandbox::new();
    sb.cmd()
        .args(["validate", "no-such-artifact.tar.gz"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "cannot read no-such-artifact.tar.gz",
        ));
    sb.cmd()
        .args(["validate", ".", "--framework", "caffe"])
        .assert()
        .code(2);
}

/// The PyTorch toolkit's default model_fn loads `model.pt` (TorchScript) at the root and,
/// in practice, nothing else: a lone `model.pth` still needs code/inference.py.
#[test]
fn a_torchscript_model_pt_needs_no_code() {
    let sb = Sandbox::new();
    sb.write("ts/model.pt", "torchscript");
    let (code, report) = validate(&sb, "ts", &["--framework", "pytorch"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(finding(&report, "model.torchscript")["path"], "model.pt");
    sb.write("pth/model.pth", "state dict");
    let (code, report) = validate(&sb, "pth", &["--framework", "pytorch"]);
    assert_eq!(code, 1, "{report:#}");
    let message = finding(&report, "code.missing")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("loads model.pt (TorchScript) only"),
        "{message}"
    );
}
