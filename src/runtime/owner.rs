//! Who owns a container, written into its `sagedock.owner` label at create time, so that
//! leftovers of a run that is gone (SIGKILL, power loss) can be told from containers that
//! still have an owner — even after a pid is reused.
//!
//! Two kinds of owner:
//! - `pid:<host>:<pid>:<start time>` — one process (`sagedock serve`, `sagedock ci`);
//! - `dir:<host>:<data dir>` — whichever `sagedock up` holds that data directory's lock
//!   ([`DataDirLock`]), so a restarted `up` owns (and re-adopts) the containers of the one
//!   before, and a second `up` on the same directory is refused.

use std::fs;
use std::path::{Path, PathBuf};

/// The lock file in a data directory.
pub const LOCK_FILE: &str = "sagedock.lock";

/// The lock on a data directory, held for the life of the process that owns it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: fs::File,
    /// The owner label of the containers this holder runs.
    pub owner: String,
}

/// Why a data directory could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("another sagedock is already running on the data directory {0} (it holds {LOCK_FILE}); stop it, or pass another --data-dir")]
    Held(PathBuf),
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock of `dir` (created if needed): the holder owns the directory's state and
/// the containers labelled with [`data_dir`]`(dir)`.
pub fn claim(dir: &Path) -> Result<DataDirLock, ClaimError> {
    let io = |source| ClaimError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let file = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    if file.try_lock().is_err() {
        return Err(ClaimError::Held(dir.to_path_buf()));
    }
    Ok(DataDirLock {
        _file: file,
        owner: data_dir(dir),
    })
}

/// This process as owner.
pub fn current() -> String {
    let pid = std::process::id();
    format!("pid:{}:{pid}:{}", hostname(), start_time(pid).unwrap_or(0))
}

/// The holder of a data directory's lock as owner.
pub fn data_dir(dir: &Path) -> String {
    format!("dir:{}:{}", hostname(), dir.display())
}

/// Whether the owner named by `label` is alive. Owners on other hosts are assumed alive:
/// this machine cannot tell.
pub fn is_alive(label: &str) -> bool {
    if let Some(rest) = label.strip_prefix("pid:") {
        let mut parts = rest.rsplitn(3, ':');
        let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        if host != hostname() {
            return true;
        }
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            return false;
        };
        return start_time(pid) == Some(start);
    }
    if let Some((host, dir)) = label.strip_prefix("dir:").and_then(|r| r.split_once(':')) {
        if host != hostname() {
            return true;
        }
        let Ok(lock) = fs::File::open(Path::new(dir).join(LOCK_FILE)) else {
            return false;
        };
        // Someone holds the lock exactly when we cannot take it.
        return lock.try_lock().is_err();
    }
    false
}

/// Whether the owner runs on this host.
pub fn is_local(label: &str) -> bool {
    let host = label
        .strip_prefix("pid:")
        .or_else(|| label.strip_prefix("dir:"))
        .and_then(|r| r.split(':').next());
    host == Some(hostname().as_str())
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
        let (prefix, _) = me.rsplit_once(':').unwrap();
        assert!(
            !is_alive(&format!("{prefix}:1")),
            "same pid, other start time"
        );
        assert!(is_alive("pid:some-other-host:1:1"));
        assert!(!is_alive("garbage"));
    }

    #[test]
    fn a_data_dir_owner_is_alive_while_its_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let label = data_dir(dir.path());
        assert!(!is_alive(&label), "no lock file yet");
        let lock = fs::File::create(dir.path().join(LOCK_FILE)).unwrap();
        assert!(!is_alive(&label), "lock file, not held");
        lock.lock().unwrap();
        assert!(is_alive(&label));
        drop(lock);
        assert!(!is_alive(&label));
        assert!(is_local(&label));
    }

    #[test]
    fn a_data_dir_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = claim(dir.path()).unwrap();
        assert_eq!(lock.owner, data_dir(dir.path()));
        assert!(is_alive(&lock.owner));
        assert!(matches!(claim(dir.path()), Err(ClaimError::Held(_))));
        drop(lock);
        assert!(claim(dir.path()).is_ok());
    }
}
