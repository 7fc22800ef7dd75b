//! The path rules of a safe unpack: entry names become relative paths or are refused,
//! and symbolic links are checked against the root both as written and as the kernel
//! would follow them through the finished tree.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Turns an entry name into a relative path, refusing absolute paths and `..`.
pub(super) fn sanitize(name: &[u8]) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for part in Path::new(OsStr::from_bytes(name)).components() {
        match part {
            Component::Prefix(_) | Component::RootDir => {
                return Err(
                    "absolute path; entries must be relative to the archive root (/opt/ml/model)",
                )
            }
            Component::ParentDir => return Err("'..' in the path would escape the archive root"),
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
        }
    }
    Ok(out)
}

/// Whether an entry name is the archive root itself: `/`, `./`, `.` or empty.
pub(super) fn names_the_root(name: &[u8]) -> bool {
    Path::new(OsStr::from_bytes(name))
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir))
}

/// Whether `target`, read relative to the directory `base` (relative to the root),
/// climbs above the root when `..` is applied lexically.
pub(super) fn lexically_escapes(base: &Path, target: &Path) -> bool {
    let mut depth = base.components().count();
    for part in target.components() {
        match part {
            Component::ParentDir if depth == 0 => return true,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::Prefix(_) | Component::RootDir => return true,
        }
    }
    false
}

/// Whether the symlink at `link` (relative to `root`) resolves outside `root` when every
/// symlink on the way is followed the way the kernel would follow it.
pub(super) fn resolves_outside(root: &Path, link: &Path) -> io::Result<bool> {
    const MAX_HOPS: usize = 40;
    let mut stack: Vec<PathBuf> = link
        .parent()
        .map(|p| {
            p.components()
                .map(|c| PathBuf::from(c.as_os_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut pending: Vec<PathBuf> = components_rev(&fs::read_link(root.join(link))?);
    let mut hops = 1;
    while let Some(part) = pending.pop() {
        match part.to_str() {
            Some(".") => continue,
            Some("..") => {
                if stack.pop().is_none() {
                    return Ok(true);
                }
                continue;
            }
            Some("/") => return Ok(true),
            _ => {}
        }
        stack.push(part);
        let here: PathBuf = stack.iter().collect();
        let full = root.join(&here);
        if fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
            hops += 1;
            if hops > MAX_HOPS {
                return Ok(false); // a loop: the kernel answers ELOOP, nothing escapes
            }
            stack.pop();
            pending.extend(components_rev(&fs::read_link(&full)?));
        }
    }
    Ok(false)
}

/// A path's components in reverse order, so that `pop` yields them first to last.
fn components_rev(path: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = path
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    parts.reverse();
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_relative_paths_and_refuses_escapes() {
        assert_eq!(
            sanitize(b"./code/inference.py").unwrap(),
            PathBuf::from("code/inference.py")
        );
        assert_eq!(sanitize(b"./").unwrap(), PathBuf::new());
        assert!(sanitize(b"/etc/passwd").is_err());
        assert!(sanitize(b"a/../../b").is_err());
        assert!(sanitize(b"a/../b").is_err());
    }

    #[test]
    fn only_slashes_and_dots_name_the_root() {
        for root in [&b"/"[..], b"./", b".", b"//", b"/./"] {
            assert!(names_the_root(root), "{root:?}");
        }
        for other in [&b"/etc"[..], b"./code", b"..", b"/.."] {
            assert!(!names_the_root(other), "{other:?}");
        }
    }

    #[test]
    fn lexical_escape_is_measured_from_the_link_directory() {
        assert!(!lexically_escapes(Path::new("sub"), Path::new("../data")));
        assert!(lexically_escapes(Path::new("sub"), Path::new("../../x")));
        assert!(lexically_escapes(Path::new(""), Path::new("..")));
        assert!(!lexically_escapes(Path::new("a/b"), Path::new("../..")));
    }
}
