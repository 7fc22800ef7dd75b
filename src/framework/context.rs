//! What a framework's layout rules look at: the model tree, and where it came from so
//! that a fix can name the command that repairs it.

use std::path::{Path, PathBuf};

use crate::artifact::tree::Tree;

/// Where the tree came from, so fixes can name the right command.
#[derive(Debug, Clone)]
pub enum Source {
    Directory(PathBuf),
    Archive(PathBuf),
}

/// What the rules look at.
pub struct Context<'a> {
    pub tree: &'a Tree,
    pub source: &'a Source,
}

impl Context<'_> {
    /// The command that rebuilds the archive from `sub` (a folder of the tree, "" for its
    /// root), with extra `pack` arguments.
    pub fn repack(&self, sub: &str, extra: &str) -> String {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" {extra}")
        };
        match self.source {
            Source::Directory(dir) => {
                let dir = if sub.is_empty() {
                    dir.clone()
                } else {
                    dir.join(sub)
                };
                format!("sagedock pack {}{extra} -o model.tar.gz", quote(&dir))
            }
            Source::Archive(archive) => {
                let inner = if sub.is_empty() {
                    "model-dir".to_string()
                } else {
                    format!("model-dir/{sub}")
                };
                format!(
                    "sagedock unpack {} model-dir && sagedock pack {}{extra} -o model.tar.gz",
                    quote(archive),
                    shell_word(&inner)
                )
            }
        }
    }
}

fn quote(path: &Path) -> String {
    shell_word(&path.display().to_string())
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
