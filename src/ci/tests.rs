//! Spec parsing: defaults, paths made relative to the spec, and errors that name the
//! field or rule.

use super::*;

fn load(text: &str) -> Result<Spec> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, text).unwrap();
    Spec::load(&path).map(|mut spec| {
        // Paths point into the (now gone) temporary directory; strip it for comparisons.
        for e in &mut spec.endpoints {
            if let Some(m) = &mut e.model {
                *m = m.strip_prefix(dir.path()).unwrap().to_path_buf();
            }
        }
        spec
    })
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

#[test]
fn defaults_and_relative_paths() {
    let spec = load(
        r#"{"endpoints": [{"name": "a", "image": "sagedock/echo:latest", "model": "m.tar.gz",
        "requests": [{"name": "r", "body": "{}"}], "load": {"max_p99": "50ms"}}]}"#,
    )
    .unwrap();
    let e = &spec.endpoints[0];
    assert_eq!(e.model.as_deref(), Some(Path::new("m.tar.gz")));
    assert_eq!(
        (e.instance_type.as_str(), e.instance_count),
        ("ml.m5.large", 1)
    );
    assert_eq!(e.health_timeout, Duration::from_secs(600));
    assert_eq!(e.requests[0].content_type, "application/json");
    assert_eq!(e.requests[0].expect.status(), 200);
    let load = e.load.as_ref().unwrap();
    assert_eq!(
        (load.concurrency, load.duration),
        (1, Duration::from_secs(10))
    );
    assert_eq!(load.max_p99, Some(Duration::from_millis(50)));
    assert_eq!(e.load_request().unwrap().name, "r");
}

#[test]
fn errors_name_what_is_wrong() {
    let e = error(r#"{"endpoints": [{"name": "a", "image": "i", "instance_typo": "x"}]}"#);
    assert!(e.contains("unknown field `instance_typo`"), "{e}");
    let e = error(r#"{"endpoints": [{"name": "a", "image": "i", "health_timeout": "soon"}]}"#);
    assert!(e.contains("\"soon\" is not a duration"), "{e}");
    let e = error(r#"{"endpoints": [{"name": "a", "image": "i", "framework": "keras"}]}"#);
    assert!(e.contains("unknown variant `keras`"), "{e}");
    let e = error(r#"{"endpoints": [{"name": "a_b", "image": "i"}]}"#);
    assert!(e.contains("letters, digits and hyphens"), "{e}");
    let e = error(r#"{"endpoints": [{"name": "a", "image": "i"}, {"name": "a", "image": "j"}]}"#);
    assert!(e.contains("appears twice"), "{e}");
    let e = error(r#"{"endpoints": [{"name": "a", "image": "i", "load": {}}]}"#);
    assert!(e.contains("add one under \"requests\""), "{e}");
    let e = error(
        r#"{"endpoints": [{"name": "a", "image": "i", "requests": [{"name": "r"}], "load": {"request": "s"}}]}"#,
    );
    assert!(e.contains("no request named \"s\""), "{e}");
    let e = error(
        r#"{"endpoints": [{"name": "a", "image": "i", "requests": [{"name": "r", "body": "x", "body_file": "f"}]}]}"#,
    );
    assert!(e.contains("not both"), "{e}");
    let e = error(r#"{"endpoints": []}"#);
    assert!(e.contains("no endpoints"), "{e}");
    let e = error("{\"endpoints\": [");
    assert!(
        e.contains("spec.json") && e.contains("the spec is JSON"),
        "{e}"
    );
}

#[test]
fn the_contract_names_a_request_that_exists() {
    let spec = load(
        r#"{"endpoints": [{"name": "a", "image": "i", "requests": [{"name": "r"}, {"name": "s"}],
        "contract": {"request": "s", "stop_timeout": "5s"}}]}"#,
    )
    .unwrap();
    let e = &spec.endpoints[0];
    assert_eq!(e.contract_request().map(|r| r.name.as_str()), Some("s"));
    assert_eq!(
        e.contract.as_ref().unwrap().stop_timeout,
        Some(Duration::from_secs(5))
    );
    let err =
        error(r#"{"endpoints": [{"name": "a", "image": "i", "contract": {"request": "nope"}}]}"#);
    assert!(err.contains("contract: no request named \"nope\""), "{err}");
    let err = error(r#"{"endpoints": [{"name": "a", "image": "i", "contract": {"bogus": 1}}]}"#);
    assert!(err.contains("unknown field `bogus`"), "{err}");
}
