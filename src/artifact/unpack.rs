//! Safe extraction of `model.tar.gz` into the `/opt/ml/model` tree.
//!
//! Owns: turning an archive into a directory that holds exactly the archive's tree and
//! nothing outside it. Every entry path is checked before anything is written: no
//! absolute paths, no `..` components (PAX `path` records and GNU long names included,
//! since the tar reader resolves them first), no device nodes or FIFOs, no write through a
//! symlink, and every symlink must resolve inside the root, checked again once the whole
//! tree exists (a chain of in-root links can still climb out). setuid, setgid and sticky
//! bits are dropped. Owners and mtimes are not restored (the tree is served, not archived).
//!
//! Limits (`max_entries`, `max_unpacked_bytes`) are enforced on a running count of bytes
//! actually written, never on header sizes.
//!
//! [`unpack`] is atomic: it extracts into a hidden staging directory beside the
//! destination and renames it into place; on any failure the destination does not exist
//! and the staging directory is gone.
//!
//! Does not: fetch archives, cache them (see `cache`), or judge the layout (see `inspect`).

use std::sync::Arc;

use crate::progress::{Meter, MeteredRead};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::gzip::GzipError;
use super::paths::{lexically_escapes, names_the_root, resolves_outside, sanitize};
use super::pipe;
use super::Limits;

/// What an unpack produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unpacked {
    /// sha256 of the archive file, lowercase hex.
    pub sha256: String,
    /// Entries read from the archive (files, directories and links).
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// An unpack that failed, with the archive it was reading.
#[derive(Debug, thiserror::Error)]
#[error("{archive}: {kind}")]
pub struct UnpackError {
    pub archive: PathBuf,
    pub kind: UnpackErrorKind,
}

/// Why an unpack failed. Each message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum UnpackErrorKind {
    #[error("cannot read the archive: {0}")]
    Open(#[source] io::Error),
    #[error("not a gzip file{hint}; SageMaker needs a gzip-compressed tar (create one with `sagedock pack DIR -o model.tar.gz`)")]
    NotGzip { hint: &'static str },
    #[error("the archive is truncated (the gzip data ends early{after}); upload or copy it again")]
    Truncated { after: String },
    #[error("the gzip data is corrupt ({detail}{after}); upload or copy it again")]
    CorruptGzip { detail: String, after: String },
    #[error("the gzip data holds no tar archive ({detail}); compress a tar: `sagedock pack DIR -o model.tar.gz`")]
    NotTar { detail: String },
    #[error("the tar data is corrupt after entry '{after}': {detail}")]
    CorruptTar { after: String, detail: String },
    #[error("entry '{entry}' is unsafe: {reason}; rebuild the archive from the model directory with `sagedock pack DIR -o model.tar.gz`")]
    Unsafe { entry: String, reason: String },
    #[error("entry '{entry}' conflicts with an earlier entry: {reason}")]
    Conflict { entry: String, reason: String },
    #[error("entry '{entry}' is cut short: the header says {expected} bytes, the archive holds {actual}")]
    ShortEntry {
        entry: String,
        expected: u64,
        actual: u64,
    },
    #[error("more than {limit} entries (reached at '{entry}'); raise --max-entries if this archive is expected")]
    TooManyEntries { limit: u64, entry: String },
    #[error("more than {limit} bytes unpacked (reached in '{entry}'); raise --max-unpacked-bytes if this archive is expected")]
    TooLarge { limit: u64, entry: String },
    #[error("destination {0} already exists and is not empty; remove it or choose another")]
    DestinationExists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UnpackErrorKind {
    /// True when the archive itself is at fault (as opposed to the machine or arguments).
    pub fn is_artifact_fault(&self) -> bool {
        !matches!(
            self,
            UnpackErrorKind::Open(_)
                | UnpackErrorKind::DestinationExists(_)
                | UnpackErrorKind::Write { .. }
        )
    }
}

/// Unpacks `archive` into `dest`, atomically. `dest` must not exist (or be an empty
/// directory); its parent is created if needed.
/// The archive's bytes read move `meter`.
pub fn unpack(
    archive: &Path,
    dest: &Path,
    limits: &Limits,
    meter: Option<Arc<Meter>>,
) -> Result<Unpacked, UnpackError> {
    let fail = |kind| UnpackError {
        archive: archive.to_path_buf(),
        kind,
    };
    if let Ok(mut entries) = fs::read_dir(dest) {
        if entries.next().is_some() {
            return Err(fail(UnpackErrorKind::DestinationExists(dest.to_path_buf())));
        }
    } else if fs::symlink_metadata(dest).is_ok() {
        return Err(fail(UnpackErrorKind::DestinationExists(dest.to_path_buf())));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let write_err = |path: &Path, source| {
        fail(UnpackErrorKind::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".sagedock-unpack-")
        .tempdir_in(parent)
        .map_err(|e| write_err(parent, e))?;
    let unpacked = unpack_into(archive, staging.path(), limits, meter)?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| write_err(staging.path(), e))?;
    if let Err(e) = fs::rename(staging.path(), dest) {
        return Err(write_err(dest, e)); // staging is removed on drop
    }
    let _ = staging.keep();
    Ok(unpacked)
}

/// Extracts `archive` into `root`, an existing empty directory. On error, `root` holds a
/// partial tree that the caller must discard. The archive's bytes read move `meter`.
pub fn unpack_into(
    archive: &Path,
    root: &Path,
    limits: &Limits,
    meter: Option<Arc<Meter>>,
) -> Result<Unpacked, UnpackError> {
    let fail = |kind| UnpackError {
        archive: archive.to_path_buf(),
        kind,
    };
    let file = File::open(archive).map_err(|e| fail(UnpackErrorKind::Open(e)))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(fail(UnpackErrorKind::Open(io::Error::other(
            "is a directory, not an archive",
        ))));
    }
    if let Some(meter) = &meter {
        let size = file.metadata().map(|m| m.len()).ok();
        meter.start(format!("unpacking {}", archive.display()), size);
    }
    let (mut reader, producer) = pipe::spawn_gunzip(MeteredRead { inner: file, meter });
    let mut extractor = Extractor::new(root, limits);
    let outcome = extractor.extract_all(&mut reader);
    // Drain what follows the tar end marker so the gzip trailer is checked too.
    let drained = outcome.and_then(|()| {
        io::copy(&mut reader, &mut io::sink())
            .map(drop)
            .map_err(|e| extractor.read_error(e))
    });
    drop(reader);
    let produced = producer.join().expect("gunzip thread panicked");
    let after = extractor.after_suffix();
    match (drained, produced) {
        (Ok(()), Ok(sha256)) => {
            extractor.check_symlinks().map_err(fail)?;
            Ok(Unpacked {
                sha256,
                entries: extractor.entries,
                bytes: extractor.bytes,
            })
        }
        // The producer's error is the root cause whenever it has one.
        (_, Err(err)) if GzipError::from_io(&err).is_some() => Err(fail(gzip_kind(
            archive,
            GzipError::from_io(&err).unwrap(),
            after,
        ))),
        (Err(kind), _) => Err(fail(kind)),
        (Ok(()), Err(err)) => Err(fail(UnpackErrorKind::Open(err))),
    }
}

fn gzip_kind(archive: &Path, err: &GzipError, after: String) -> UnpackErrorKind {
    match err {
        GzipError::NotGzip => UnpackErrorKind::NotGzip {
            hint: if looks_like_plain_tar(archive) {
                " (it is an uncompressed tar: compress it with `gzip`)"
            } else {
                ""
            },
        },
        GzipError::Truncated => UnpackErrorKind::Truncated { after },
        GzipError::Corrupt(detail) => UnpackErrorKind::CorruptGzip {
            detail: detail.clone(),
            after,
        },
    }
}

fn looks_like_plain_tar(path: &Path) -> bool {
    let mut block = [0u8; 512];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut block))
        .map(|()| &block[257..262] == b"ustar")
        .unwrap_or(false)
}

/// Extraction state for one archive.
struct Extractor<'a> {
    root: &'a Path,
    limits: &'a Limits,
    /// Relative paths known to be real directories we created (never symlinks).
    dirs: HashSet<PathBuf>,
    /// Symlinks created, as (relative path, entry name), checked again at the end.
    symlinks: Vec<(PathBuf, String)>,
    entries: u64,
    bytes: u64,
    last_entry: Option<String>,
    /// The entry being extracted, until it is complete.
    current_entry: Option<String>,
    buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    fn new(root: &'a Path, limits: &'a Limits) -> Self {
        Extractor {
            root,
            limits,
            dirs: HashSet::new(),
            symlinks: Vec::new(),
            entries: 0,
            bytes: 0,
            last_entry: None,
            current_entry: None,
            buf: vec![0; 256 * 1024],
        }
    }

    fn after_suffix(&self) -> String {
        match (&self.current_entry, &self.last_entry) {
            (Some(name), _) => format!(", in entry '{name}'"),
            (None, Some(name)) => format!(", after entry '{name}'"),
            (None, None) => String::new(),
        }
    }

    /// Classifies an I/O error met while reading the tar stream.
    fn read_error(&self, err: io::Error) -> UnpackErrorKind {
        match &self.last_entry {
            None => UnpackErrorKind::NotTar {
                detail: if err.kind() == io::ErrorKind::UnexpectedEof {
                    "it ends inside the first 512-byte header".into()
                } else {
                    "the first 512-byte block is not a tar header".into()
                },
            },
            Some(after) => UnpackErrorKind::CorruptTar {
                after: after.clone(),
                detail: root_message(&err),
            },
        }
    }

    fn extract_all(&mut self, reader: &mut impl Read) -> Result<(), UnpackErrorKind> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.read_error(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.read_error(e))?;
            self.extract(&mut entry)?;
        }
        Ok(())
    }

    fn extract(&mut self, entry: &mut tar::Entry<impl Read>) -> Result<(), UnpackErrorKind> {
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        self.current_entry = Some(name.clone());
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            self.current_entry = None;
            return Ok(());
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackErrorKind::TooManyEntries {
                limit: self.limits.max_entries,
                entry: name,
            });
        }
        let unsafe_entry = |reason: String| UnpackErrorKind::Unsafe {
            entry: name.clone(),
            reason,
        };
        let path = entry.path_bytes();
        let rel = if kind == EntryType::Directory && names_the_root(&path) {
            // `/` as a directory is the root too, not an absolute path: the SageMaker SDK's
            // repack writes it so.
            PathBuf::new()
        } else {
            sanitize(&path).map_err(|r| unsafe_entry(r.to_string()))?
        };
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        if rel.as_os_str().is_empty() {
            // The root itself (`./`, `/`): nothing to create.
            self.current_entry = None;
            self.last_entry = Some(name);
            return Ok(());
        }
        match kind {
            EntryType::Directory => self.directory(&rel, mode, &name)?,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &rel, mode, &name)?
            }
            EntryType::Symlink => self.symlink(entry, &rel, &name)?,
            EntryType::Link => self.hardlink(entry, &rel, &name)?,
            EntryType::Char | EntryType::Block => {
                return Err(unsafe_entry(
                    "device nodes are not allowed in a model archive".into(),
                ))
            }
            EntryType::Fifo => {
                return Err(unsafe_entry(
                    "FIFOs are not allowed in a model archive".into(),
                ))
            }
            other => {
                return Err(unsafe_entry(format!(
                    "unsupported entry type {:?} (only files, directories and links are allowed)",
                    other.as_byte() as char
                )))
            }
        }
        self.current_entry = None;
        self.last_entry = Some(name);
        Ok(())
    }

    fn write_err(&self, rel: &Path, source: io::Error) -> UnpackErrorKind {
        UnpackErrorKind::Write {
            path: self.root.join(rel),
            source,
        }
    }

    /// Makes sure every parent of `rel` is a real directory, creating missing ones.
    fn ensure_parents(&mut self, rel: &Path, name: &str) -> Result<(), UnpackErrorKind> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.dirs.contains(parent) {
            return Ok(());
        }
        let mut cur = PathBuf::new();
        for part in parent.components() {
            cur.push(part);
            if self.dirs.contains(&cur) {
                continue;
            }
            let full = self.root.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(UnpackErrorKind::Unsafe {
                        entry: name.to_string(),
                        reason: format!(
                            "it would be written through the symlink '{}'",
                            cur.display()
                        ),
                    })
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackErrorKind::Conflict {
                        entry: name.to_string(),
                        reason: format!("'{}' is a file, not a directory", cur.display()),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
                    .mode(0o755)
                    .create(&full)
                    .map_err(|e| self.write_err(&cur, e))?,
                Err(e) => return Err(self.write_err(&cur, e)),
            }
            self.dirs.insert(cur.clone());
        }
        Ok(())
    }

    fn directory(&mut self, rel: &Path, mode: u32, name: &str) -> Result<(), UnpackErrorKind> {
        self.ensure_parents(rel, name)?;
        if self.dirs.contains(rel) {
            return Ok(());
        }
        let full = self.root.join(rel);
        match DirBuilder::new().mode(mode | 0o700).create(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&full).map_err(|e| self.write_err(rel, e))?;
                if meta.file_type().is_symlink() {
                    return Err(UnpackErrorKind::Unsafe {
                        entry: name.to_string(),
                        reason: format!(
                            "'{}' is a symlink, so the directory would be reached through it",
                            rel.display()
                        ),
                    });
                }
                if !meta.is_dir() {
                    return Err(UnpackErrorKind::Conflict {
                        entry: name.to_string(),
                        reason: "a file of that name was extracted before".into(),
                    });
                }
            }
            Err(e) => return Err(self.write_err(rel, e)),
        }
        self.dirs.insert(rel.to_path_buf());
        Ok(())
    }

    /// Frees the slot at `rel` for a new file or link (later entries win, as in GNU tar),
    /// refusing to replace a directory.
    fn clear_slot(&self, rel: &Path, name: &str, what: &str) -> Result<(), UnpackErrorKind> {
        let full = self.root.join(rel);
        let meta = fs::symlink_metadata(&full).map_err(|e| self.write_err(rel, e))?;
        if meta.is_dir() {
            let reason = format!(
                "it would replace the directory '{}' with a {what}",
                rel.display()
            );
            return Err(if what == "symlink" {
                UnpackErrorKind::Unsafe {
                    entry: name.to_string(),
                    reason,
                }
            } else {
                UnpackErrorKind::Conflict {
                    entry: name.to_string(),
                    reason,
                }
            });
        }
        fs::remove_file(&full).map_err(|e| self.write_err(rel, e))
    }

    /// Runs `create` and, if the slot is taken by an earlier file or link, frees it and
    /// runs it once more.
    fn create_slot<T>(
        &self,
        rel: &Path,
        name: &str,
        what: &str,
        create: impl Fn() -> io::Result<T>,
    ) -> Result<T, UnpackErrorKind> {
        if self.dirs.contains(rel) {
            self.clear_slot(rel, name, what)?;
        }
        match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear_slot(rel, name, what)?;
                create().map_err(|e| self.write_err(rel, e))
            }
            other => other.map_err(|e| self.write_err(rel, e)),
        }
    }

    fn file(
        &mut self,
        entry: &mut tar::Entry<impl Read>,
        rel: &Path,
        mode: u32,
        name: &str,
    ) -> Result<(), UnpackErrorKind> {
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        let mut out = self.create_slot(rel, name, "file", || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&full)
        })?;
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(UnpackErrorKind::CorruptTar {
                        after: name.to_string(),
                        detail: root_message(&e),
                    })
                }
            };
            self.bytes += n as u64;
            if self.bytes > self.limits.max_unpacked_bytes {
                return Err(UnpackErrorKind::TooLarge {
                    limit: self.limits.max_unpacked_bytes,
                    entry: name.to_string(),
                });
            }
            out.write_all(&self.buf[..n])
                .map_err(|e| self.write_err(rel, e))?;
            written += n as u64;
        }
        let expected = entry.header().entry_size().unwrap_or(written);
        if entry.header().entry_type() != EntryType::GNUSparse && written < expected {
            return Err(UnpackErrorKind::ShortEntry {
                entry: name.to_string(),
                expected,
                actual: written,
            });
        }
        Ok(())
    }

    fn symlink(
        &mut self,
        entry: &tar::Entry<impl Read>,
        rel: &Path,
        name: &str,
    ) -> Result<(), UnpackErrorKind> {
        let target_bytes = entry.link_name_bytes().unwrap_or_default();
        let target = Path::new(OsStr::from_bytes(&target_bytes)).to_path_buf();
        let unsafe_link = |reason: String| UnpackErrorKind::Unsafe {
            entry: name.to_string(),
            reason,
        };
        if target.as_os_str().is_empty() {
            return Err(unsafe_link("symlink with an empty target".into()));
        }
        if target.is_absolute() {
            return Err(unsafe_link(format!(
                "symlink to the absolute path '{}' points outside the model directory (use a relative target)",
                target.display()
            )));
        }
        if lexically_escapes(rel.parent().unwrap_or(Path::new("")), &target) {
            return Err(unsafe_link(format!(
                "symlink target '{}' resolves outside the model directory",
                target.display()
            )));
        }
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        self.create_slot(rel, name, "symlink", || {
            std::os::unix::fs::symlink(&target, &full)
        })?;
        self.symlinks.push((rel.to_path_buf(), name.to_string()));
        Ok(())
    }

    fn hardlink(
        &mut self,
        entry: &tar::Entry<impl Read>,
        rel: &Path,
        name: &str,
    ) -> Result<(), UnpackErrorKind> {
        let target_bytes = entry.link_name_bytes().unwrap_or_default();
        let unsafe_link = |reason: String| UnpackErrorKind::Unsafe {
            entry: name.to_string(),
            reason,
        };
        let target = sanitize(&target_bytes).map_err(|r| {
            unsafe_link(format!(
                "hardlink target '{}': {r}",
                String::from_utf8_lossy(&target_bytes)
            ))
        })?;
        // The target's directories must be real directories we made: no detour through a symlink.
        let through_dirs = target
            .parent()
            .is_none_or(|p| p.as_os_str().is_empty() || self.dirs.contains(p));
        let target_full = self.root.join(&target);
        let is_file = fs::symlink_metadata(&target_full)
            .map(|m| m.is_file())
            .unwrap_or(false);
        if !through_dirs || !is_file {
            return Err(unsafe_link(format!(
                "hardlink target '{}' is not a regular file extracted earlier from this archive",
                target.display()
            )));
        }
        self.ensure_parents(rel, name)?;
        let full = self.root.join(rel);
        self.create_slot(rel, name, "hardlink", || fs::hard_link(&target_full, &full))
    }

    /// Resolves every symlink against the finished tree: a chain of links that each look
    /// harmless can still climb out of the root.
    fn check_symlinks(&self) -> Result<(), UnpackErrorKind> {
        for (rel, name) in &self.symlinks {
            let escapes = resolves_outside(self.root, rel).map_err(|e| self.write_err(rel, e))?;
            if escapes {
                return Err(UnpackErrorKind::Unsafe {
                    entry: name.clone(),
                    reason: "following its chain of symlinks leads outside the model directory"
                        .into(),
                });
            }
        }
        Ok(())
    }
}

/// The innermost message of an error chain (the tar reader wraps the interesting part).
fn root_message(err: &io::Error) -> String {
    let mut current: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
