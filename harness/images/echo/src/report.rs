//! `GET /report` (or attribute `report=1`): what the container sees of itself, as JSON, so
//! tests can check how sagedock started it (args, environment, /opt/ml/model mount, cgroup
//! limits, user).

use crate::json;
use std::fs;
use std::path::Path;

pub const MODEL_DIR: &str = "/opt/ml/model";
/// At most this many files are listed (`files_truncated` says when there were more).
const MAX_FILES: usize = 10_000;

/// The report, listing the files of `model_dir` (`/opt/ml/model`, or a multi-model
/// endpoint's loaded model directory).
pub fn build(hostname: &str, model_dir: &str) -> String {
    let mut o = String::with_capacity(8192);

    o.push_str("{\"args\":[");
    for (i, a) in std::env::args_os().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json::push_str(&mut o, &a.to_string_lossy());
    }

    o.push_str("],\"env\":{");
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    for (i, (k, v)) in vars.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json::push_str(&mut o, k);
        o.push(':');
        json::push_str(&mut o, v);
    }

    o.push_str("},\"hostname\":");
    json::push_str(&mut o, hostname);
    o.push_str(",\"pid\":");
    o.push_str(&std::process::id().to_string());

    let dir = Path::new(model_dir);
    let exists = dir.is_dir();
    let mut files = Vec::new();
    if exists {
        walk(dir, "", &mut files, 0);
    }
    files.sort();
    let truncated = files.len() > MAX_FILES;
    files.truncate(MAX_FILES);
    o.push_str(",\"model_dir\":{\"path\":");
    json::push_str(&mut o, model_dir);
    o.push_str(",\"exists\":");
    o.push_str(if exists { "true" } else { "false" });
    o.push_str(",\"files\":[");
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json::push_str(&mut o, f);
    }
    o.push_str("],\"files_truncated\":");
    o.push_str(if truncated { "true" } else { "false" });
    o.push_str(",\"writable\":");
    o.push_str(if exists && writable(dir) {
        "true"
    } else {
        "false"
    });
    o.push('}');

    // Mounts under /opt/ml
    o.push_str(",\"mounts\":[");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut first = true;
    for line in mountinfo.lines().filter(|l| l.contains("/opt/ml")) {
        if !first {
            o.push(',');
        }
        first = false;
        json::push_str(&mut o, line);
    }
    o.push(']');

    // cgroup limits: v2 files first, then v1.
    o.push_str(",\"cgroup\":{\"memory_max\":");
    let memory_max = read_trimmed("/sys/fs/cgroup/memory.max")
        .or_else(|| read_trimmed("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    push_opt(&mut o, memory_max.as_deref());
    o.push_str(",\"cpu_max\":");
    let cpu_max = read_trimmed("/sys/fs/cgroup/cpu.max").or_else(|| {
        ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
            .iter()
            .find_map(|d| {
                let quota = read_trimmed(&format!("{d}/cpu.cfs_quota_us"))?;
                let period = read_trimmed(&format!("{d}/cpu.cfs_period_us"))?;
                Some(format!("{quota} {period}"))
            })
    });
    push_opt(&mut o, cpu_max.as_deref());
    o.push('}');

    o.push_str(",\"nproc\":");
    match std::thread::available_parallelism() {
        Ok(n) => o.push_str(&n.get().to_string()),
        Err(_) => o.push_str("null"),
    }

    o.push_str(",\"uid\":");
    let uid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok())
    });
    match uid {
        Some(u) => o.push_str(&u.to_string()),
        None => o.push_str("null"),
    }
    o.push('}');
    o
}

fn push_opt(o: &mut String, v: Option<&str>) {
    match v {
        Some(s) => json::push_str(o, s),
        None => o.push_str("null"),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Relative paths of every non-directory entry under `dir` (symlinks are listed, not
/// followed).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 64 || out.len() > MAX_FILES {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), &rel, out, depth + 1),
            _ => out.push(rel),
        }
    }
}

/// Tries to create (and then removes) a file in `dir`.
fn writable(dir: &Path) -> bool {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let probe = dir.join(format!(
        ".sagedock-echo-write-probe-{}-{}",
        std::process::id(),
        nanos
    ));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}
