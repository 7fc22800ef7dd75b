//! Layout checks: a model tree in, findings with fixes out.
//!
//! Owns the rules that hold for every framework (empty artifact, a folder wrapping
//! everything, stray files, special files), framework detection and the dispatch to each
//! framework's own rules; and [`check`], which does all of it for an archive (unpacked
//! through the cache) or a folder. Each finding names the path concerned and, where one
//! helps, the exact command that repairs the artifact.
//!
//! Does not: unpack by itself (the cache does) or run any model code.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use super::context::{Context, Source};
use crate::artifact::tree::{NodeKind, Tree};
use crate::artifact::{Cache, CacheError, Finding, Limits, ModelDir, Severity, UnpackErrorKind};
use crate::framework::{self, tensorflow::TfModel, Framework};

/// Counts of findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// The result of inspecting an artifact.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub artifact: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub framework: Framework,
    /// The path that decided detection; `None` when the framework was given or none matched.
    pub detected_from: Option<String>,
    pub files: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tensorflow_models: Vec<TfModel>,
    pub findings: Vec<Finding>,
    pub counts: Counts,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.counts.errors > 0
    }
}

/// Which framework's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Named by the user, or known from the serving image: its rules' errors are errors.
    Named(Framework),
    /// Detected from the layout. Detection only suggests a framework, so what its rules
    /// say a container expects is said as a warning (the model may be served by an image
    /// that expects none of it); a file that is broken whoever loads it, and the rules for
    /// every artifact, keep their errors.
    Detect,
}

/// Runs every rule on `tree`.
pub fn inspect(tree: &Tree, source: &Source, choice: Choice) -> Report {
    let cx = Context { tree, source };
    let (framework, detected_from) = match choice {
        Choice::Named(f) => (f, None),
        Choice::Detect => framework::detect(tree),
    };
    let mut findings = generic_rules(&cx, framework);
    let mut tensorflow_models = Vec::new();
    let mut own = framework::lint(framework, &cx, &mut tensorflow_models);
    if choice == Choice::Detect {
        for finding in own
            .iter_mut()
            .filter(|f| f.severity == Severity::Error && !f.broken)
        {
            finding.severity = Severity::Warning;
            finding.message = format!(
                "{} (this matters if the model is served by SageMaker's {} container, which sagedock detected from the layout; pass --framework, or name the image, to check it as such)",
                finding.message,
                framework.title()
            );
        }
    }
    findings.extend(own);
    findings.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then_with(|| a.path.cmp(&b.path))
    });
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let counts = Counts {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
    };
    let artifact = match source {
        Source::Directory(p) | Source::Archive(p) => p.clone(),
    };
    Report {
        artifact,
        sha256: None,
        framework,
        detected_from,
        files: tree.files().count() as u64,
        bytes: tree.file_bytes(),
        tensorflow_models,
        findings,
        counts,
    }
}

/// Why an artifact could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A checked artifact: its report, and the folder to mount (none when the archive could
/// not be unpacked: the report says why).
#[derive(Debug)]
pub struct Checked {
    pub report: Report,
    pub model: Option<ModelDir>,
}

/// Checks an artifact: an archive (unpacked through `cache`) or a folder.
pub fn check(
    path: &Path,
    choice: Choice,
    limits: &Limits,
    cache: &Cache,
) -> Result<Checked, CheckError> {
    let meta = std::fs::metadata(path).map_err(|source| CheckError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        let tree = scan(path)?;
        let report = inspect(&tree, &Source::Directory(path.to_path_buf()), choice);
        let dir = path.canonicalize().map_err(|source| CheckError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Checked {
            report,
            model: Some(ModelDir::folder(dir)),
        });
    }
    match cache.unpack(path, limits) {
        Ok(cached) => {
            let tree = scan(&cached.model_dir)?;
            let mut report = inspect(&tree, &Source::Archive(path.to_path_buf()), choice);
            report.sha256 = Some(cached.sha256.clone());
            Ok(Checked {
                report,
                model: Some(ModelDir {
                    path: cached.model_dir,
                    sha256: cached.sha256,
                }),
            })
        }
        Err(CacheError::Unpack(err)) if err.kind.is_artifact_fault() => Ok(Checked {
            report: unreadable_archive(path, &err.kind),
            model: None,
        }),
        Err(err) => Err(err.into()),
    }
}

fn scan(dir: &Path) -> Result<Tree, CheckError> {
    Tree::scan(dir).map_err(|source| CheckError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

/// The report for an archive that could not be unpacked: one error, the unpack's own.
fn unreadable_archive(path: &Path, kind: &UnpackErrorKind) -> Report {
    let tree = Tree {
        root: path.to_path_buf(),
        nodes: Vec::new(),
    };
    let mut report = inspect(
        &tree,
        &Source::Archive(path.to_path_buf()),
        Choice::Named(Framework::Custom),
    );
    report.findings = vec![Finding::error("archive.unreadable", "", kind.to_string())];
    report.counts = Counts {
        errors: 1,
        ..Default::default()
    };
    report
}

/// Names that never belong in a model artifact.
const STRAY: &[(&str, &str)] = &[
    (".DS_Store", "macOS Finder metadata"),
    ("__MACOSX", "macOS archive metadata"),
    ("._*", "macOS resource forks"),
    ("__pycache__", "Python bytecode caches"),
    ("*.pyc", "Python bytecode"),
    (".ipynb_checkpoints", "Jupyter checkpoints"),
    ("Thumbs.db", "Windows thumbnail cache"),
    (".git", "a git repository"),
];

fn is_stray(name: &str) -> bool {
    STRAY
        .iter()
        .any(|(p, _)| crate::artifact::pack::glob_match(p, name))
}

fn generic_rules(cx: &Context, framework: Framework) -> Vec<Finding> {
    let tree = cx.tree;
    let mut out = Vec::new();
    if tree.files().next().is_none() {
        out.push(
            Finding::warning(
                "layout.empty",
                "",
                "the artifact holds no files: the container would start with an empty /opt/ml/model",
            )
            .with_fix("pack the directory that holds the model files (its contents become /opt/ml/model)"),
        );
        return out;
    }
    if let Some(wrapper) = wrapping_folder(tree, framework) {
        let message = if framework == Framework::Tensorflow {
            format!(
                "everything is inside the folder '{wrapper}/': TensorFlow Serving will serve it as a model named \
                 '{wrapper}', and code/ would be looked for at /opt/ml/model/code, not inside '{wrapper}/'"
            )
        } else {
            format!(
                "everything is inside the folder '{wrapper}/': SageMaker extracts the archive root to \
                 /opt/ml/model, so the files land in /opt/ml/model/{wrapper}/ where the serving container \
                 does not look"
            )
        };
        out.push(
            Finding::warning("layout.wrapped", wrapper.clone(), message).with_fix(format!(
                "pack the folder's contents, not the folder: {}",
                cx.repack(&wrapper, "")
            )),
        );
    }
    out.extend(stray_files(cx));
    for node in &tree.nodes {
        if node.kind == NodeKind::Special {
            out.push(Finding::error(
                "layout.special-file",
                node.path.clone(),
                "sockets, FIFOs and device nodes cannot be packed into model.tar.gz",
            ));
        }
    }
    out
}

/// One finding for every file that does not belong in a model artifact, with the pack
/// command that leaves them out.
fn stray_files(cx: &Context) -> Option<Finding> {
    let tree = cx.tree;
    let strays: Vec<&str> = tree
        .nodes
        .iter()
        .filter(|n| {
            is_stray(n.name())
                && !tree.nodes.iter().any(|p| {
                    p.is_dir() && is_stray(p.name()) && n.path.starts_with(&format!("{}/", p.path))
                })
        })
        .map(|n| n.path.as_str())
        .collect();
    if strays.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = strays
        .iter()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .collect();
    names.sort_unstable();
    names.dedup();
    let exclude: Vec<String> = names
        .iter()
        .map(|n| {
            let pattern = STRAY
                .iter()
                .find(|(p, _)| crate::artifact::pack::glob_match(p, n))
                .map_or(*n, |(p, _)| p);
            format!("--exclude '{pattern}'")
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let shown: Vec<&str> = strays.iter().take(5).copied().collect();
    let more = if strays.len() > 5 {
        format!(" and {} more", strays.len() - 5)
    } else {
        String::new()
    };
    Some(
        Finding::warning(
            "layout.stray-files",
            strays[0],
            format!(
                "files that do not belong in a model artifact: {}{more}",
                shown.join(", ")
            ),
        )
        .with_fix(cx.repack("", &exclude.join(" "))),
    )
}

/// The single top-level folder that wraps everything, when that folder has no meaning of
/// its own to the serving container (`code/` does; so does a TensorFlow version folder).
fn wrapping_folder(tree: &Tree, framework: Framework) -> Option<String> {
    let top: Vec<_> = tree.children("").filter(|n| !is_stray(n.name())).collect();
    let [only] = top.as_slice() else { return None };
    if !only.is_dir() || only.name() == "code" {
        return None;
    }
    if framework == Framework::Tensorflow && only.name().bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The legacy estimator export (export/Servo/<timestamp>/) is served as model 'Servo';
    // its own finding (tf.legacy-export-servo) says so.
    let legacy_export = framework == Framework::Tensorflow
        && only.name() == "export"
        && tree
            .nodes
            .iter()
            .any(|n| n.path.starts_with("export/Servo/"));
    if legacy_export {
        return None;
    }
    Some(only.path.clone())
}
