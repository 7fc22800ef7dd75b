//! The crate's error: one variant per subsystem, each carrying its own typed error, and the
//! exit code each maps to (in one place, [`Error::exit_code`]).

use std::path::PathBuf;

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
    Check(#[from] crate::framework::inspect::CheckError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Deploy(Box<crate::deploy::DeployError>),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Store(#[from] crate::state::StoreError),
    #[error(transparent)]
    Claim(#[from] crate::runtime::owner::ClaimError),
    #[error(transparent)]
    Spec(#[from] crate::ci::SpecError),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    #[error("cannot listen on {addr} ({source}); choose another --port")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A command-line value the argument parser could not judge alone.
    #[error("{0}")]
    Argument(String),
    /// The demo's own steps (a call that failed, an image that would not build).
    #[error("demo: {0}")]
    Demo(String),
    #[error("cannot start sagedock's async runtime: {0}")]
    AsyncRuntime(#[source] std::io::Error),
    /// Writing the command's output (stdout) failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::deploy::DeployError> for Error {
    fn from(e: crate::deploy::DeployError) -> Self {
        Error::Deploy(Box::new(e))
    }
}

impl Error {
    /// 1 when the artifact or the model is at fault (the user must change it), 2 when the
    /// command could not run (arguments, unreadable files, the machine).
    pub fn exit_code(&self) -> u8 {
        use crate::runtime::RuntimeError;
        let at_fault = match self {
            Error::Unpack(e) => e.kind.is_artifact_fault(),
            Error::Cache(CacheError::Unpack(e)) => e.kind.is_artifact_fault(),
            Error::Pack(PackError::EscapingSymlink { .. } | PackError::SpecialFile(_)) => true,
            // The deployment itself failed: the image or model does not come up.
            Error::Runtime(
                RuntimeError::ExitedAtStart { .. } | RuntimeError::HealthTimeout { .. },
            ) => true,
            Error::Deploy(e) => e.is_start_failure(),
            _ => false,
        };
        if at_fault {
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
