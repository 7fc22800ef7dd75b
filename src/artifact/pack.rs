//! Deterministic packing of a model directory into `model.tar.gz`.
//!
//! The archive root is the directory's root (it becomes `/opt/ml/model`). Entries are
//! sorted by path, directories before their contents; owners are 0/root, mtimes fixed,
//! modes normalised to 0755 (directories and executables) or 0644, and the gzip header
//! carries no name or time — so the same tree always gives the same bytes and sha256
//! (for one version of the compressor, on any number of cores: see `pgzip`). Long names
//! use GNU long-name records.
//!
//! Refuses what a safe unpacker would refuse: symlinks leaving the directory and special
//! files. The output is written to a temporary file beside it and renamed at the end.

use std::sync::Arc;

use crate::progress::{Meter, MeteredRead};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::pgzip::ParallelGzWriter;
use super::tree::{NodeKind, Tree};

/// mtime written for every entry: 2020-09-13T12:26:40Z, a fixed, plausible date
/// (GNU tar warns about entries dated 1970).
const FIXED_MTIME: u64 = 1_600_000_000;

/// How to pack.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Names (or `*`/`?` patterns) of files and directories to leave out, matched against
    /// each entry's own name, e.g. `.DS_Store`, `__pycache__`, `*.pyc`.
    pub exclude: Vec<String>,
    /// gzip level 0–9; 6 is gzip's own default.
    pub level: u32,
    /// Moved by the bytes of the files packed, for a progress line.
    pub meter: Option<Arc<Meter>>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            exclude: Vec::new(),
            level: 6,
            meter: None,
        }
    }
}

impl PackOptions {
    pub fn with_exclude(mut self, pattern: impl Into<String>) -> Self {
        self.exclude.push(pattern.into());
        self
    }

    pub fn with_level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }
}

/// What a pack produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Packed {
    pub output: PathBuf,
    /// sha256 of the archive, lowercase hex.
    pub sha256: String,
    pub entries: u64,
    /// Bytes of file data packed.
    pub bytes: u64,
    /// Size of the archive.
    pub compressed_bytes: u64,
}

/// Why a pack failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read model directory {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not a directory; `sagedock pack` takes the directory whose contents become /opt/ml/model")]
    NotADirectory(PathBuf),
    #[error("{path}: symlink to '{target}' leaves the model directory, and SageMaker would refuse it; replace the link with the file it points to")]
    EscapingSymlink { path: String, target: String },
    #[error("{0}: sockets, FIFOs and device nodes cannot go into a model archive; remove it or add --exclude")]
    SpecialFile(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("gzip level {0} is out of range (0-9)")]
    Level(u32),
}

/// Packs the contents of `dir` into `output`.
pub fn pack(dir: &Path, output: &Path, options: &PackOptions) -> Result<Packed, PackError> {
    if options.level > 9 {
        return Err(PackError::Level(options.level));
    }
    if !dir.is_dir() {
        return Err(PackError::NotADirectory(dir.to_path_buf()));
    }
    let read_err = |source| PackError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let tree = Tree::scan(dir).map_err(read_err)?;
    if let Some(meter) = &options.meter {
        let total = tree
            .nodes
            .iter()
            .map(|n| match n.kind {
                NodeKind::File { size, .. } => size,
                _ => 0,
            })
            .sum();
        meter.start(format!("packing {}", dir.display()), Some(total));
    }
    let temp = temp_beside(output)?;
    let write_err = |path: &Path, source| PackError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Never pack the archive being written (or the final output) into itself.
    let skip: Vec<PathBuf> = [temp.path(), output]
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();

    let file = temp.reopen().map_err(|e| write_err(temp.path(), e))?;
    let sink = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        written: 0,
    };
    let gz = ParallelGzWriter::new(sink, options.level).map_err(|e| write_err(output, e))?;
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);

    let mut entries = 0u64;
    let mut bytes = 0u64;
    let mut excluded_dirs: Vec<String> = Vec::new();
    for node in &tree.nodes {
        if excluded_dirs
            .iter()
            .any(|d| node.path.starts_with(&format!("{d}/")))
        {
            continue;
        }
        if options.exclude.iter().any(|p| glob_match(p, node.name())) {
            if node.is_dir() {
                excluded_dirs.push(node.path.clone());
            }
            continue;
        }
        let full = dir.join(&node.path);
        if full.canonicalize().is_ok_and(|c| skip.contains(&c)) {
            continue;
        }
        bytes += append(&mut builder, &full, node, output, options.meter.as_ref())?;
        entries += 1;
    }
    let gz = builder.into_inner().map_err(|e| write_err(output, e))?;
    let mut sink = gz.finish().map_err(|e| write_err(output, e))?;
    sink.inner.flush().map_err(|e| write_err(output, e))?;
    sink.inner
        .get_ref()
        .sync_all()
        .map_err(|e| write_err(output, e))?;
    let compressed_bytes = sink.written;
    let sha256 = super::hex(&sink.hasher.finalize());
    temp.persist(output)
        .map_err(|e| write_err(output, e.error))?;
    Ok(Packed {
        output: output.to_path_buf(),
        sha256,
        entries,
        bytes,
        compressed_bytes,
    })
}

/// A temporary file in `output`'s directory, renamed onto `output` once complete.
fn temp_beside(output: &Path) -> Result<tempfile::NamedTempFile, PackError> {
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let write_err = |source| PackError::Write {
        path: out_dir.clone(),
        source,
    };
    if !out_dir.is_dir() {
        return Err(write_err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the output directory does not exist; create it first",
        )));
    }
    // Created 0666 less the umask, as any file a command writes (tempfile's own 0600 would
    // stay on the archive once renamed).
    tempfile::Builder::new()
        .prefix(".sagedock-pack-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&out_dir)
        .map_err(write_err)
}

/// Appends one node of the tree (its header normalised: owner 0/0, the fixed mtime, 0755 or
/// 0644); returns the file bytes it added.
fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    full: &Path,
    node: &super::tree::Node,
    output: &Path,
    meter: Option<&Arc<Meter>>,
) -> Result<u64, PackError> {
    let write_err = |source| PackError::Write {
        path: output.to_path_buf(),
        source,
    };
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(FIXED_MTIME);
    let mut bytes = 0;
    let appended = match &node.kind {
        NodeKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, format!("{}/", node.path), io::empty())
        }
        NodeKind::File { size, executable } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if *executable { 0o755 } else { 0o644 });
            header.set_size(*size);
            let data = File::open(full).map_err(|source| PackError::Read {
                path: full.to_path_buf(),
                source,
            })?;
            bytes = *size;
            let data = MeteredRead {
                inner: data,
                meter: meter.cloned(),
            };
            builder.append_data(&mut header, &node.path, data)
        }
        NodeKind::Symlink { target } => {
            if escapes(&node.path, target) {
                return Err(PackError::EscapingSymlink {
                    path: node.path.clone(),
                    target: target.display().to_string(),
                });
            }
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder.append_link(&mut header, &node.path, target)
        }
        NodeKind::Special => return Err(PackError::SpecialFile(node.path.clone())),
    };
    appended.map_err(write_err)?;
    Ok(bytes)
}

/// Whether a symlink at `path` with `target` leaves the tree.
fn escapes(path: &str, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth = i64::try_from(path.matches('/').count()).unwrap_or(i64::MAX);
    for part in target.components() {
        match part {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Matches `name` against a pattern where `*` is any run of characters and `?` one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Hashes and counts every byte written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_names() {
        assert!(glob_match(".DS_Store", ".DS_Store"));
        assert!(glob_match("*.pyc", "x.pyc"));
        assert!(glob_match("._*", "._model.pth"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("*.pyc", "x.py"));
        assert!(!glob_match("model", "model.pth"));
    }

    #[test]
    fn symlink_escape_is_judged_from_the_link_location() {
        assert!(!escapes("latest", Path::new("data/w.bin")));
        assert!(!escapes("sub/up", Path::new("../data")));
        assert!(escapes("up", Path::new("../x")));
        assert!(escapes("x", Path::new("/etc")));
    }
}
