//! A sagedock child process: its output captured as it comes, signals sent to it, and
//! stopped with SIGTERM (which removes its containers) when the test lets go of it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running sagedock (or a shell around it).
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
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

impl Running {
    /// Spawns `command` with its output captured.
    pub fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        pump(child.stdout.take().unwrap(), stdout.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `find` finds something in stdout; `Err((exit code, stderr))` when the
    /// process exits first. Stops it and fails the test after `limit`.
    pub fn wait_for<T>(
        &mut self,
        limit: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> Result<T, (Option<i32>, String)> {
        let t0 = Instant::now();
        loop {
            if let Some(found) = find(&self.stdout()) {
                return Ok(found);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the pumps catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Err((status.code(), self.stderr()));
            }
            if t0.elapsed() > limit {
                self.send("TERM");
                let _ = self.child.wait();
                panic!("not ready within {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) and goes on.
    pub fn send(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
    }

    /// Waits (at most `limit`) for the process to exit; its exit code.
    pub fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(t0.elapsed() < limit, "did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` and waits for the exit (a minute at most); the exit code.
    pub fn stop(mut self, signal: &str) -> Option<i32> {
        self.send(signal);
        self.exit_within(Duration::from_secs(60))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM, not Child::kill's SIGKILL: sagedock removes its containers on SIGTERM.
            self.send("TERM");
            let _ = self.child.wait();
        }
    }
}
