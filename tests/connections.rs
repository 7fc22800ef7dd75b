//! What a client cannot do to the port: hold connections forever, run it out of file
//! descriptors, or make it spin. A real `sagedock up` in a child with `ulimit -n 256`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::process::Running;
use crate::util::up::setup;

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// One GET with `Connection: close`: the status line and headers, or why there was none.
fn get(addr: &str, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn idle_connections_are_closed_capped_and_never_make_the_port_spin() {
    let Some(sb) = setup() else { return };
    let bin = assert_cmd::cargo::cargo_bin("sagedock");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' up --port 0 --data-dir '{}'",
            bin.display(),
            sb.join("data").display()
        ))
        .env("SAGEDOCK_CACHE_DIR", sb.cache_dir());
    let mut up = Running::spawn(command);
    let addr = up
        .wait_for(Duration::from_secs(30), |out| {
            out.lines()
                .find_map(|l| l.strip_prefix("listening on http://"))
                .map(|a| a.trim().to_string())
        })
        .unwrap_or_else(|(code, err)| panic!("up exited ({code:?}): {err}"));
    assert!(get(&addr, "/ping").unwrap().starts_with("HTTP/1.1 200"));

    // 300 connections that send nothing: more than the cap (96 for 256 descriptors) and
    // more than the descriptors the process has.
    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let cpu = cpu_seconds(up.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(up.pid()) - cpu;
    assert!(used < 0.5, "the port spun: {used:.2} s of CPU in 2 s");

    // A new caller is answered, politely, while the cap is full.
    let answer = get(&addr, "/ping").unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 503")
            && answer
                .to_ascii_lowercase()
                .contains("x-amzn-errortype: serviceunavailable"),
        "{answer}"
    );

    // Idle connections are closed by the server once the header timeout (30 s) passes.
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let mut buf = [0u8; 512];
        if s.read(&mut buf).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 300,
        "every idle connection was closed by the server"
    );
    assert!(
        opened.elapsed() < Duration::from_secs(45),
        "{:?}",
        opened.elapsed()
    );
    // And it answers again.
    assert!(get(&addr, "/ping").unwrap().starts_with("HTTP/1.1 200"));
}
