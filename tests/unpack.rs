//! `sagedock unpack`: every hostile archive is refused with an error naming the entry,
//! nothing is written outside DEST, DEST is absent after a failure and no staging
//! directory remains; valid archives unpack to exactly their tree.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::util::{all_paths, fixture, Sandbox};

/// Runs `sagedock unpack` on a hostile fixture and checks the failure contract.
fn refuse(archive: &str, extra: &[&str], expected: &[&str]) {
    let sb = Sandbox::new();
    let dest = sb.join("out/model");
    let output = sb
        .cmd()
        .arg("unpack")
        .arg(fixture(&format!("archives/hostile/{archive}")))
        .arg(&dest)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{archive}: exit code; stderr: {stderr}"
    );
    for text in expected {
        assert!(
            stderr.contains(text),
            "{archive}: stderr lacks {text:?}: {stderr}"
        );
    }
    assert!(!dest.exists(), "{archive}: DEST exists after a failure");
    let left: Vec<String> = all_paths(sb.path())
        .into_iter()
        .filter(|p| p != "out" && !p.starts_with("cache"))
        .collect();
    assert!(left.is_empty(), "{archive}: left behind {left:?}");
    assert!(!std::path::Path::new("/tmp/sagedock-evil.txt").exists());
}

#[test]
fn absolute_paths_are_refused() {
    refuse(
        "abs-path.tar.gz",
        &[],
        &["'/tmp/sagedock-evil.txt'", "absolute path"],
    );
}

#[test]
fn dotdot_escapes_are_refused() {
    refuse("dotdot.tar.gz", &[], &["'../sagedock-evil.txt'", "'..'"]);
    refuse(
        "dotdot-nested.tar.gz",
        &[],
        &["'ok/../../sagedock-evil.txt'", "'..'"],
    );
}

#[test]
fn escapes_hidden_in_pax_headers_and_gnu_long_names_are_refused() {
    refuse("pax-path.tar.gz", &[], &["'../sagedock-pax-evil.txt'"]);
    refuse(
        "gnu-longname.tar.gz",
        &[],
        &["/../../sagedock-gnu-evil.txt'", "'..'"],
    );
}

#[test]
fn symlinks_leading_outside_are_refused() {
    refuse(
        "symlink-abs.tar.gz",
        &[],
        &["'etc-link'", "absolute path '/etc'"],
    );
    refuse(
        "symlink-escape.tar.gz",
        &[],
        &["'sub/link'", "'../../outside'"],
    );
    refuse(
        "symlink-chain-escape.tar.gz",
        &[],
        &["'a/b/t'", "chain of symlinks"],
    );
}

#[test]
fn writes_through_symlinks_are_refused() {
    refuse(
        "symlink-write-through.tar.gz",
        &[],
        &["'link/evil.txt'", "through the symlink 'link'"],
    );
    refuse(
        "dir-then-symlink.tar.gz",
        &[],
        &["'d'", "replace the directory 'd' with a symlink"],
    );
}

#[test]
fn hardlinks_leading_outside_are_refused() {
    refuse("hardlink-escape.tar.gz", &[], &["'h'", "'../etc/passwd'"]);
    refuse("hardlink-abs.tar.gz", &[], &["'h'", "'/etc/passwd'"]);
}

#[test]
fn device_nodes_and_fifos_are_refused() {
    refuse("chardev.tar.gz", &[], &["'null'", "device nodes"]);
    refuse("blockdev.tar.gz", &[], &["'sda'", "device nodes"]);
    refuse("fifo.tar.gz", &[], &["'pipe'", "FIFOs"]);
}

#[test]
fn broken_input_says_what_is_wrong() {
    refuse("truncated.tar.gz", &[], &["truncated", "'noise.bin'"]);
    refuse("not-gzip.tar.gz", &[], &["not a gzip file"]);
    refuse("plain.tar", &[], &["not a gzip file", "uncompressed tar"]);
    refuse("not-tar.tar.gz", &[], &["holds no tar archive"]);
}

#[test]
fn limits_stop_bombs_while_streaming() {
    refuse(
        "bomb.tar.gz",
        &["--max-unpacked-bytes", "1M"],
        &[
            "more than 1048576 bytes",
            "'zeros.bin'",
            "--max-unpacked-bytes",
        ],
    );
    refuse(
        "many-entries.tar.gz",
        &["--max-entries", "1000"],
        &["more than 1000 entries", "--max-entries"],
    );
}

#[test]
fn the_bomb_unpacks_when_the_limit_allows_it() {
    let sb = Sandbox::new();
    let dest = sb.join("model");
    sb.cmd()
        .args([
            "unpack",
            fixture("archives/hostile/bomb.tar.gz").to_str().unwrap(),
            "model",
        ])
        .assert()
        .success();
    assert_eq!(
        fs::metadata(dest.join("zeros.bin")).unwrap().len(),
        64 << 20
    );
}

fn unpack_valid(name: &str) -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::new();
    let dest = sb.join("model");
    sb.cmd()
        .arg("unpack")
        .arg(fixture(&format!("archives/valid/{name}")))
        .arg(&dest)
        .assert()
        .success()
        .stdout(predicates::str::contains("sha256 "));
    (sb, dest)
}

#[test]
fn a_leading_dot_slash_is_accepted() {
    let (_sb, dest) = unpack_valid("dot-slash.tar.gz");
    assert_eq!(all_paths(&dest), ["code", "code/inference.py", "model.pth"]);
    assert_eq!(
        fs::read_to_string(dest.join("model.pth")).unwrap(),
        "weights"
    );
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

/// The SageMaker SDK repacks an archive with its entry point as `tar.add(model_dir,
/// arcname="/")`: the root directory is an entry named `/`, which names the root, not an
/// absolute path; an absolute file name stays refused (abs-path.tar.gz).
#[test]
fn the_sdk_repack_root_entry_is_accepted() {
    let (_sb, dest) = unpack_valid("sdk-repack.tar.gz");
    assert_eq!(all_paths(&dest), ["code", "code/inference.py", "model.pth"]);
    assert_eq!(
        fs::read_to_string(dest.join("model.pth")).unwrap(),
        "weights"
    );
}

#[test]
fn symlinks_inside_the_root_are_kept() {
    let (_sb, dest) = unpack_valid("symlink-inside.tar.gz");
    assert_eq!(
        fs::read_link(dest.join("latest")).unwrap().to_str(),
        Some("data/weights.bin")
    );
    assert_eq!(
        fs::read_link(dest.join("sub/up")).unwrap().to_str(),
        Some("../data")
    );
    assert_eq!(
        fs::read_to_string(dest.join("sub/up/weights.bin")).unwrap(),
        "w"
    );
}

#[test]
fn hardlinks_inside_the_root_are_kept() {
    let (_sb, dest) = unpack_valid("hardlink-inside.tar.gz");
    let (a, b) = (
        fs::metadata(dest.join("a.bin")).unwrap(),
        fs::metadata(dest.join("b.bin")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(fs::read_to_string(dest.join("b.bin")).unwrap(), "same");
}

#[test]
fn setuid_setgid_and_sticky_bits_are_stripped() {
    let (_sb, dest) = unpack_valid("setuid.tar.gz");
    for (path, special) in [
        ("bin/tool", 0o4000),
        ("bin/group", 0o2000),
        ("shared", 0o1000),
    ] {
        let mode = fs::metadata(dest.join(path)).unwrap().permissions().mode();
        assert_eq!(mode & special, 0, "{path} kept mode {mode:o}");
    }
    let tool = fs::metadata(dest.join("bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tool & 0o100, 0o100, "the owner execute bit stays");
}

#[test]
fn later_duplicate_entries_win_like_gnu_tar() {
    let (_sb, dest) = unpack_valid("duplicate-entry.tar.gz");
    assert_eq!(
        fs::read_to_string(dest.join("config.json")).unwrap(),
        "{\"v\": 2}"
    );
}

#[test]
fn an_existing_non_empty_destination_is_left_alone() {
    let sb = Sandbox::new();
    sb.write("model/keep.txt", "mine");
    sb.cmd()
        .args([
            "unpack",
            fixture("archives/valid/dot-slash.tar.gz").to_str().unwrap(),
            "model",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("already exists and is not empty"));
    assert_eq!(all_paths(&sb.join("model")), ["keep.txt"]);
}

#[test]
fn a_missing_archive_is_a_usage_error() {
    let sb = Sandbox::new();
    sb.cmd()
        .args(["unpack", "nope.tar.gz", "model"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "nope.tar.gz: cannot read the archive",
        ));
    assert!(!sb.join("model").exists());
}

#[test]
fn json_output_reports_digest_and_counts() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args([
            "unpack",
            fixture("archives/valid/dot-slash.tar.gz").to_str().unwrap(),
            "model",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = crate::util::json(&out);
    assert_eq!(v["entries"], 4);
    assert_eq!(v["bytes"], 7 + 41);
    assert_eq!(
        v["sha256"], "73d542365e5548d97d6e52d90524ddd754915b29b55b34d939ac245656faee3a",
        "the digest of the archive file"
    );
}
