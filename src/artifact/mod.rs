//! Model artifacts: `model.tar.gz` packed, unpacked, cached and inspected.
//!
//! Owns everything between a `ModelDataUrl` that names a local archive and a directory
//! that can be bind-mounted at `/opt/ml/model`: deterministic packing ([`pack`]), safe and
//! atomic unpacking ([`unpack`]), the sha256-keyed cache of unpacked trees ([`cache`]) and
//! the findings vocabulary the layout checks speak ([`finding`]).
//!
//! Does not: talk to Docker, or know how a framework's container behaves (the layout rules
//! are [`crate::framework`]'s).

pub mod cache;
pub mod finding;
pub mod gzip;
pub mod pack;
mod paths;
mod pgzip;
mod pipe;
pub mod savedmodel;
pub mod tree;
pub mod unpack;

pub use cache::{Cache, CacheEntry, CacheError, CachedArtifact};
pub use finding::{Finding, Severity};
pub use pack::{pack, PackError, PackOptions, Packed};
pub use unpack::{unpack, UnpackError, UnpackErrorKind, Unpacked};

/// Bounds on what one archive may unpack to. The defaults fit real multi-GB models
/// (large language models included) while stopping a gzip bomb or an inode flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of file data written, counted while streaming.
    pub max_unpacked_bytes: u64,
    /// Entries of any kind (files, directories, links).
    pub max_entries: u64,
}

impl Limits {
    /// 100 GiB: above the largest single-archive models SageMaker hosting is used with.
    pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 100 << 30;
    /// 100,000 entries: model trees hold tens to thousands of files.
    pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: Self::DEFAULT_MAX_UNPACKED_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// A folder that can be mounted at `/opt/ml/model`, with the sha256 of the archive it was
/// unpacked from (empty for a folder used as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    pub path: std::path::PathBuf,
    pub sha256: String,
}

impl ModelDir {
    /// A folder used as it is.
    pub fn folder(path: std::path::PathBuf) -> ModelDir {
        ModelDir {
            path,
            sha256: String::new(),
        }
    }
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
