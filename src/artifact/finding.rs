//! The findings vocabulary: what a layout check says about an artifact — how bad
//! ([`Severity`]), a stable code, the path concerned, a message and, where one helps, a fix.
//! The rules that produce findings are [`crate::framework`]'s.

use serde::Serialize;
/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One observation about the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier, e.g. `mxnet.missing-shapes`, for CI filters.
    pub code: &'static str,
    /// The path concerned, relative to /opt/ml/model ("." for the root).
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The artifact itself is broken (a corrupt or malformed file), whatever container
    /// serves it; other errors are what one serving stack expects.
    #[serde(skip)]
    pub broken: bool,
}

impl Finding {
    fn new(
        severity: Severity,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let path = path.into();
        Finding {
            severity,
            code,
            path: if path.is_empty() { ".".into() } else { path },
            message: message.into(),
            fix: None,
            broken: false,
        }
    }

    /// An error in the artifact itself: a file that is corrupt or malformed, which no
    /// container can load.
    pub fn broken(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            broken: true,
            ..Self::new(Severity::Error, code, path, message)
        }
    }

    pub fn error(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, path, message)
    }

    pub fn warning(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, code, path, message)
    }

    pub fn info(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, code, path, message)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}
