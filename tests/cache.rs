//! The artifact cache through the CLI: reuse, listing, pruning, and concurrent users.

use std::process::Command as Std;

use crate::util::{json, Sandbox};

fn ls(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = sb.cmd().args(["cache", "ls", "--json"]).output().unwrap();
    assert!(out.status.success());
    json(&out).as_array().unwrap().clone()
}

fn packed(sb: &Sandbox) -> String {
    sb.pack("pytorch", "model.tar.gz");
    "model.tar.gz".into()
}

#[test]
fn a_second_validation_reuses_the_entry() {
    let sb = Sandbox::new();
    let archive = packed(&sb);
    sb.cmd().args(["validate", &archive]).assert().success();
    let entries = ls(&sb);
    assert_eq!(entries.len(), 1);
    let model_dir = std::path::PathBuf::from(entries[0]["path"].as_str().unwrap());
    assert!(model_dir.join("code/inference.py").is_file());
    let marker = model_dir.join("marker");
    std::fs::write(&marker, "kept").unwrap();
    sb.cmd().args(["validate", &archive]).assert().success();
    assert!(
        marker.exists(),
        "the second run unpacked again instead of reusing the entry"
    );
    assert_eq!(ls(&sb).len(), 1);
    let text = sb.cmd().args(["cache", "ls"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(&entries[0]["sha256"].as_str().unwrap()[..12]),
        "{text}"
    );
    assert!(text.contains("model.tar.gz"), "{text}");
}

#[test]
fn prune_by_age_and_all() {
    let sb = Sandbox::new();
    let archive = packed(&sb);
    sb.cmd().args(["validate", &archive]).assert().success();
    sb.cmd()
        .args(["cache", "prune"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--older-than"));
    let kept = sb
        .cmd()
        .args(["cache", "prune", "--older-than", "1h", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&kept)["removed"].as_array().unwrap().len(), 0);
    assert_eq!(ls(&sb).len(), 1);
    sb.cmd()
        .args(["cache", "prune", "--all"])
        .assert()
        .success()
        .stdout(predicates::str::contains("removed 1 entries"));
    assert!(ls(&sb).is_empty());
    sb.cmd()
        .args(["cache", "prune", "--older-than", "soon"])
        .assert()
        .code(2);
}

#[test]
fn concurrent_users_share_one_complete_entry() {
    let sb = Sandbox::new();
    let archive = packed(&sb);
    let bin = assert_cmd::cargo::cargo_bin("sagedock");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Std::new(&bin)
                .args(["validate", &archive, "--json"])
                .current_dir(sb.path())
                .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
                .output()
        })
        .collect();
    for child in children {
        let out = child.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = json(&out);
        assert_eq!(report["framework"], "pytorch");
        assert_eq!(report["files"], 3, "every user saw the complete tree");
    }
    assert_eq!(ls(&sb).len(), 1);
    let staging = std::fs::read_dir(sb.cache_dir().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(staging, 0);
}
