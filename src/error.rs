//! The crate's error: one variant per subsystem, and the exit code each maps to.

use crate::artifact::{CacheError, PackError, UnpackError};

/// Anything a sagedock command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// 1 when the artifact is at fault (the user must change it), 2 when the command could
    /// not run (arguments, unreadable files, the machine).
    pub fn exit_code(&self) -> u8 {
        let artifact_fault = match self {
            Error::Unpack(e) => e.kind.is_artifact_fault(),
            Error::Cache(CacheError::Unpack(e)) => e.kind.is_artifact_fault(),
            Error::Pack(PackError::EscapingSymlink { .. } | PackError::SpecialFile(_)) => true,
            // The deployment itself failed: the image or model does not come up.
            Error::Runtime(
                crate::runtime::RuntimeError::ExitedAtStart { .. }
                | crate::runtime::RuntimeError::HealthTimeout { .. },
            ) => true,
            _ => false,
        };
        if artifact_fault {
            1
        } else {
            2
        }
    }

    /// Writing to a closed pipe (`sagedock … | head`) is not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
