//! A running `sagedock serve`, and calls to it.

use std::process::Command;
use std::time::Duration;

use super::docker::ready;
use super::http::{http, Reply};
use super::process::Running;
use super::Sandbox;

/// A running `sagedock serve`.
pub struct Served {
    pub process: Running,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Served {
    /// Starts `sagedock serve --port 0 ARGS` and waits until it prints where it listens;
    /// `Err((exit code, stderr))` when it exits first.
    pub fn start(sb: &Sandbox, args: &[&str]) -> Result<Served, (Option<i32>, String)> {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("sagedock"));
        command
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .env("SAGEDOCK_CACHE_DIR", sb.cache_dir())
            .current_dir(sb.path());
        let mut process = Running::spawn(command);
        let url = process.wait_for(Duration::from_secs(180), |out| {
            out.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("POST ")?
                    .strip_suffix("/invocations")
                    .map(str::to_string)
            })
        })?;
        Ok(Served { process, url })
    }

    pub fn stdout(&self) -> String {
        self.process.stdout()
    }

    /// Sends a signal and waits for sagedock to exit; its exit code.
    pub fn stop(self, signal: &str) -> Option<i32> {
        self.process.stop(signal)
    }

    /// POST /invocations with `headers`.
    pub fn invoke(&self, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http("POST", &format!("{}/invocations", self.url), headers, body)
    }
}

/// Starts `sagedock serve --port 0 ARGS` once Docker and the test images are there;
/// `None` (the test returns) when no engine answers outside CI.
pub fn serve_when_ready(sb: &Sandbox, args: &[&str]) -> Option<Served> {
    if !ready() {
        return None;
    }
    let served = Served::start(sb, args)
        .unwrap_or_else(|(code, err)| panic!("serve failed ({code:?}): {err}"));
    Some(served)
}

/// Serves `model` with `image` under the endpoint name `name`, `extra` arguments added.
pub fn serve_model(
    sb: &Sandbox,
    image: &str,
    model: &str,
    name: &str,
    extra: &[&str],
) -> Option<Served> {
    let mut args = vec!["--image", image, "--model", model, "--name", name];
    args.extend(extra);
    serve_when_ready(sb, &args)
}
