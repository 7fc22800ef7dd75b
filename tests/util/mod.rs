//! Test helpers, once: a sandbox per test, fixtures by name, the sagedock CLI; a Docker
//! engine and the test images ([`docker`]); a plain HTTP client ([`http`]); sagedock child
//! processes ([`process`]) running `serve` ([`serve`]) and `up` ([`up`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

pub mod docker;
pub mod http;
pub mod process;
pub mod serve;
pub mod up;

/// Waits until `cond` holds (at most `limit`, else fails naming `what`); returns how long
/// it took.
pub fn until(
    limit: std::time::Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    t0.elapsed()
}

/// A file or folder under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// A temporary directory for one test, with its own artifact cache.
pub struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("sagedock-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.join("cache")
    }

    /// `sagedock` with this sandbox's cache and the sandbox as working directory.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("sagedock").unwrap();
        cmd.env("SAGEDOCK_CACHE_DIR", self.cache_dir())
            .env_remove("RUST_LOG")
            .current_dir(self.path());
        cmd
    }

    /// What `sagedock logs NAME --data-dir <sandbox>/data` prints (an `up` of this
    /// sandbox's endpoint or job, read from its log record); fails the test when it fails.
    pub fn logs(&self, name: &str) -> String {
        let out = self
            .cmd()
            .args(["logs", name, "--data-dir"])
            .arg(self.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sagedock logs {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies a fixture model folder into the sandbox and returns the copy's path.
    pub fn model(&self, fixture_name: &str, as_name: &str) -> PathBuf {
        let dest = self.join(as_name);
        copy_tree(&fixture(&format!("models/{fixture_name}")), &dest);
        dest
    }

    /// Packs a fixture model (`fixtures/models/NAME`) into `out` with `sagedock pack`.
    pub fn pack(&self, fixture_model: &str, out: &str) {
        self.cmd()
            .arg("pack")
            .arg(fixture(&format!("models/{fixture_model}")))
            .args(["-o", out])
            .assert()
            .success();
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }
}

pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What a tree holds, for comparisons: path → file bytes (with the executable bit),
/// link target, or directory marker.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &path, out);
        } else if meta.file_type().is_symlink() {
            out.insert(
                rel,
                format!("link -> {}", fs::read_link(&path).unwrap().display()),
            );
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            let bytes = fs::read(&path).unwrap();
            out.insert(
                rel,
                format!("file exec={exec} {}", String::from_utf8_lossy(&bytes)),
            );
        }
    }
}

/// Every path under `root`, relative, recursively.
pub fn all_paths(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().collect()
}

/// Parses a command's stdout as JSON.
pub fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// (tests, failures, skipped) of a JUnit file, read by Python's XML parser.
pub fn junit_counts(path: &Path) -> (u64, u64, u64) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as ET; r = ET.parse(sys.argv[1]).getroot(); \
              cases = r.findall('./testsuite/testcase'); \
              print(len(cases), sum(c.find('failure') is not None for c in cases), \
                    sum(c.find('skipped') is not None for c in cases), \
                    r.get('tests'), r.get('failures'), r.get('skipped'))",
        )
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    // The totals on <testsuites> agree with the cases.
    assert_eq!(n[..3], n[3..], "{n:?}");
    (n[0], n[1], n[2])
}
