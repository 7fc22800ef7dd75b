//! Which process owns a container: `host/pid/start-time`, written into a label at create
//! time, so that leftovers of a run that was killed (SIGKILL, power loss) can be told from
//! containers of a run that is still alive, even after the pid is reused.

use std::fs;

/// This process's owner string.
pub fn current() -> String {
    let pid = std::process::id();
    format!("{}/{pid}/{}", hostname(), start_time(pid).unwrap_or(0))
}

/// Whether the owner named by `label` is alive. Owners on other hosts are assumed alive:
/// this machine cannot tell.
pub fn is_alive(label: &str) -> bool {
    let mut parts = label.rsplitn(3, '/');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return true;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

/// Whether the owner runs on this host.
pub fn is_local(label: &str) -> bool {
    label.rsplitn(3, '/').nth(2) == Some(hostname().as_str())
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The process start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_not() {
        let me = current();
        assert!(is_alive(&me), "{me}");
        assert!(is_local(&me));
        let (prefix, _) = me.rsplit_once('/').unwrap();
        assert!(!is_alive(&format!("{prefix}/1")), "same pid, other start time");
        assert!(is_alive("some-other-host/1/1"));
        assert!(!is_alive("garbage"));
    }
}
