//! Helpers for tests that need a Docker engine and the test images.
//!
//! A test that needs Docker calls [`require_docker`]: it runs whenever an engine answers;
//! when none does it is skipped locally, but under `CI=true` it fails, so CI cannot pass
//! by skipping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Sandbox;

/// True when a Docker engine answers; panics under CI=true when none does.
pub fn require_docker() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and no Docker engine answers: run harness/ci/docker.sh");
        }
        eprintln!("SKIPPED: no Docker engine answers (run harness/ci/docker.sh)");
    }
    ok
}

/// Builds the test images if they are missing or stale (idempotent, serialised by a lock).
pub fn require_images() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("flock")
        .arg("/tmp/sagedock-test-images.lock")
        .arg("bash")
        .arg(root.join("harness/images/build-all.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("running harness/images/build-all.sh");
    assert!(status.success(), "building the test images failed");
}

/// Containers sagedock labels, as `docker ps` sees them (name → labels JSON).
pub fn labelled_containers(filter: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=sagedock.managed=true",
            "--filter",
            filter,
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `docker inspect` of one container, parsed.
pub fn inspect(name: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["inspect", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker inspect {name}");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

/// A running `sagedock serve`.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

fn pump(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

/// Starts `sagedock serve --port 0 ARGS` once Docker and the test images are there;
/// `None` (the test returns) when no engine answers outside CI.
pub fn serve_when_ready(sb: &Sandbox, args: &[&str]) -> Option<Served> {
    if !require_docker() {
        return None;
    }
    require_images();
    let served = Served::start(sb, args)
        .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    Some(served)
}

impl Served {
    /// Starts `sagedock serve --port 0 ARGS` and waits until it prints where it listens
    /// (or exits).
    pub fn start(sb: &Sandbox, args: &[&str]) -> Result<Served, (Option<i32>, String)> {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("sagedock"))
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
            .current_dir(sb.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        pump(child.stdout.take().unwrap(), stdout.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        let t0 = Instant::now();
        loop {
            let url = stdout.lock().unwrap().lines().find_map(|l| {
                l.trim()
                    .strip_prefix("POST ")?
                    .strip_suffix("/invocations")
                    .map(str::to_string)
            });
            if let Some(url) = url {
                return Ok(Served {
                    child,
                    url,
                    stdout,
                    stderr,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return Err((status.code(), stderr.lock().unwrap().clone()));
            }
            if t0.elapsed() > Duration::from_secs(180) {
                // Stop it (and so its containers) before failing the test.
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
                panic!("serve did not get ready: {}", stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to sagedock and waits for it to exit; returns its exit code.
    pub fn stop(mut self, signal: &str) -> Option<i32> {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "sagedock did not exit after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close` (a plain client, independent of sagedock).
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}
