//! `sagedock pack`: deterministic bytes, a round trip that gives the tree back, and
//! refusal of what an unpacker would refuse. GNU tar and gzip check our output.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command as Std;

use crate::util::{json, snapshot, Sandbox};

fn pack(sb: &Sandbox, dir: &str, out: &str, extra: &[&str]) -> serde_json::Value {
    let output = sb
        .cmd()
        .args(["pack", dir, "-o", out, "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pack failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&output)
}

/// A small model tree with an executable, a nested folder, an empty folder and a link.
fn model_tree(sb: &Sandbox, name: &str) {
    sb.model("pytorch", name);
    sb.write(&format!("{name}/code/run.sh"), "#!/bin/sh\n");
    let run = sb.join(&format!("{name}/code/run.sh"));
    fs::set_permissions(&run, fs::Permissions::from_mode(0o750)).unwrap();
    fs::create_dir_all(sb.join(&format!("{name}/empty"))).unwrap();
    std::os::unix::fs::symlink("model.pth", sb.join(&format!("{name}/latest.pth"))).unwrap();
    let long = "d".repeat(120);
    sb.write(
        &format!("{name}/{long}/weights-with-a-long-path-name.bin"),
        [0u8, 1, 2, 3],
    );
}

#[test]
fn the_same_tree_always_gives_the_same_bytes() {
    let sb = Sandbox::new();
    model_tree(&sb, "a");
    let first = pack(&sb, "a", "one.tar.gz", &[]);
    // A copy made later: other inodes, other mtimes, other umask effects.
    crate::util::copy_tree(&sb.join("a"), &sb.join("b"));
    fs::set_permissions(sb.join("b/code/run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    let second = pack(&sb, "b", "two.tar.gz", &[]);
    assert_eq!(first["sha256"], second["sha256"]);
    assert_eq!(
        fs::read(sb.join("one.tar.gz")).unwrap(),
        fs::read(sb.join("two.tar.gz")).unwrap()
    );
    let again = pack(&sb, "a", "three.tar.gz", &[]);
    assert_eq!(first["sha256"], again["sha256"]);
}

/// The archive gets the mode any new file gets (0666 less the umask), not a temporary
/// file's 0600: a CI job's next step, run as another user, must read it.
#[test]
fn the_archive_has_the_umasks_mode() {
    let sb = Sandbox::new();
    model_tree(&sb, "src");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec '{}' pack src -o out.tar.gz",
            assert_cmd::cargo::cargo_bin("sagedock").display()
        ))
        .current_dir(sb.path())
        .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
        .status()
        .unwrap();
    assert!(status.success());
    let mode = fs::metadata(sb.join("out.tar.gz"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644, "{mode:o}");
}

#[test]
fn pack_then_unpack_gives_the_tree_back() {
    let sb = Sandbox::new();
    model_tree(&sb, "src");
    pack(&sb, "src", "model.tar.gz", &[]);
    sb.cmd()
        .args(["unpack", "model.tar.gz", "back"])
        .assert()
        .success();
    assert_eq!(snapshot(&sb.join("src")), snapshot(&sb.join("back")));
}

#[test]
fn gnu_tar_reads_sorted_root_owned_entries() {
    let sb = Sandbox::new();
    model_tree(&sb, "src");
    pack(&sb, "src", "model.tar.gz", &[]);
    let gzip = Std::new("gzip")
        .args(["-t", "model.tar.gz"])
        .current_dir(sb.path())
        .status()
        .unwrap();
    assert!(gzip.success(), "gzip -t rejects the archive");
    let listing = Std::new("tar")
        .args(["-tvzf", "model.tar.gz"])
        .current_dir(sb.path())
        .output()
        .unwrap();
    assert!(listing.status.success());
    let text = String::from_utf8(listing.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert!(
        text.lines().all(|l| l.contains(" 0/0 ")),
        "owners are not 0/0:\n{text}"
    );
    assert!(names.contains(&"code/run.sh"));
    assert!(text.contains("latest.pth -> model.pth"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("code/run.sh")),
        "{text}"
    );
    let plain: Vec<&str> = text
        .lines()
        .map(|l| l.split(" -> ").next().unwrap().rsplit(' ').next().unwrap())
        .collect();
    let mut sorted_plain = plain.clone();
    sorted_plain.sort();
    assert_eq!(plain, sorted_plain, "entries are not sorted");
    drop(sorted);
}

#[test]
fn excluded_names_stay_out() {
    let sb = Sandbox::new();
    sb.model("sklearn", "src");
    sb.write("src/.DS_Store", "junk");
    sb.write("src/code/__pycache__/inference.cpython-311.pyc", "junk");
    let v = pack(
        &sb,
        "src",
        "model.tar.gz",
        &["--exclude", ".DS_Store", "--exclude", "__pycache__"],
    );
    assert_eq!(
        v["entries"], 3,
        "model.joblib, code/, code/inference.py and nothing else: {v}"
    );
    sb.cmd()
        .args(["unpack", "model.tar.gz", "back"])
        .assert()
        .success();
    assert!(!sb.join("back/.DS_Store").exists());
    assert!(!sb.join("back/code/__pycache__").exists());
}

#[test]
fn the_output_is_never_packed_into_itself() {
    let sb = Sandbox::new();
    sb.model("sklearn", "src");
    pack(&sb, "src", "src/model.tar.gz", &[]);
    let again = pack(&sb, "src", "src/model.tar.gz", &[]);
    assert_eq!(again["entries"], 3);
    let leftovers: Vec<_> = fs::read_dir(sb.join("src"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".sagedock-pack-")
        })
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_symlink_leaving_the_directory_is_refused() {
    let sb = Sandbox::new();
    sb.model("sklearn", "src");
    std::os::unix::fs::symlink("/etc/passwd", sb.join("src/passwd")).unwrap();
    sb.cmd()
        .args(["pack", "src", "-o", "model.tar.gz"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "passwd: symlink to '/etc/passwd' leaves the model directory",
        ));
    assert!(!sb.join("model.tar.gz").exists());
}

#[test]
fn a_missing_directory_is_a_usage_error() {
    let sb = Sandbox::new();
    sb.cmd()
        .args(["pack", "nothing-here", "-o", "model.tar.gz"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nothing-here is not a directory"));
}

/// On a terminal (here `script`'s pseudo-terminal) a pack draws its progress in bytes on
/// stderr; with `--quiet`, or when stderr is not a terminal, nothing is drawn.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let sb = Sandbox::new();
    // 6 MiB that gzip cannot shrink (a 64 KiB block of noise, over gzip's 32 KiB window,
    // repeated): a debug build takes seconds, drawn many times.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let block: Vec<u8> = (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    let noise = block.repeat(96);
    sb.write("big/weights.bin", noise);
    let bin = assert_cmd::cargo::cargo_bin("sagedock");
    let on_terminal = |extra: &str, out: &str| {
        let command = format!("{} pack big -o {out} {extra}", bin.display());
        let done = Std::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(sb.path())
            .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
            .output()
            .expect("script (util-linux) runs the command on a pseudo-terminal");
        assert!(done.status.success(), "{done:?}");
        String::from_utf8_lossy(&done.stdout).into_owned()
    };
    let drawn = on_terminal("", "a.tar.gz");
    assert!(
        drawn.contains("packing big") && drawn.contains("MiB"),
        "{drawn}"
    );
    assert!(drawn.contains("packed 1 entries"), "{drawn}");
    let quiet = on_terminal("--quiet", "b.tar.gz");
    assert!(!quiet.contains("packing big"), "{quiet}");
    assert!(quiet.contains("packed 1 entries"), "{quiet}");
    let piped = sb
        .cmd()
        .args(["pack", "big", "-o", "c.tar.gz"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}
