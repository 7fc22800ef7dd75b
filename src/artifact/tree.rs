//! A scanned model directory: every path under the root, sorted, without following links.
//!
//! Both `pack` (what to archive, in which order) and `inspect` (which layout rules apply)
//! work from this one listing, so they agree on what the tree holds.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    File {
        size: u64,
        executable: bool,
    },
    Dir,
    Symlink {
        target: PathBuf,
    },
    /// A socket, FIFO or device node: never valid in a model.
    Special,
}

/// One path under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Relative to the root, `/`-separated, no leading `./`.
    pub path: String,
    pub kind: NodeKind,
}

impl Node {
    pub fn is_file(&self) -> bool {
        matches!(self.kind, NodeKind::File { .. })
    }

    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }

    /// The last path component.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The parent directory's relative path ("" for top-level entries).
    pub fn parent(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(parent, _)| parent)
    }
}

/// A directory tree, listed depth-first with each directory's entries sorted by name.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Lists `root`. Paths that are not valid UTF-8 are listed lossily.
    pub fn scan(root: &Path) -> io::Result<Tree> {
        let mut nodes = Vec::new();
        walk(root, "", &mut nodes)?;
        Ok(Tree {
            root: root.to_path_buf(),
            nodes,
        })
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.path == path)
    }

    pub fn is_file(&self, path: &str) -> bool {
        self.get(path).is_some_and(Node::is_file)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.get(path).is_some_and(Node::is_dir)
    }

    pub fn files(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_file())
    }

    /// Entries directly inside the directory `dir` ("" for the root).
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.parent() == dir)
    }

    /// Reads a file of the tree as text (lossy), if it is a regular file.
    pub fn read_text(&self, path: &str) -> Option<String> {
        if !self.is_file(path) {
            return None;
        }
        fs::read(self.root.join(path))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Total bytes of regular files.
    pub fn file_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match n.kind {
                NodeKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

fn walk(dir: &Path, prefix: &str, nodes: &mut Vec<Node>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(entry.path())?;
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            NodeKind::Dir
        } else if file_type.is_file() {
            use std::os::unix::fs::PermissionsExt;
            NodeKind::File {
                size: meta.len(),
                executable: meta.permissions().mode() & 0o111 != 0,
            }
        } else if file_type.is_symlink() {
            NodeKind::Symlink {
                target: fs::read_link(entry.path())?,
            }
        } else {
            NodeKind::Special
        };
        let is_dir = kind == NodeKind::Dir;
        nodes.push(Node {
            path: path.clone(),
            kind,
        });
        if is_dir {
            walk(&entry.path(), &path, nodes)?;
        }
    }
    Ok(())
}
