//! sagedock runs Amazon SageMaker hosting on one machine.
//!
//! It takes what a SageMaker deployment takes — a `model.tar.gz`, a serving image, the
//! hosting API calls — and produces a real endpoint backed by real containers, so that
//! artifacts, images, request formats and latency are checked before anything reaches the
//! cloud.
//!
//! Modules: [`artifact`] (pack, safe unpack, cache, layout checks), [`framework`] (what
//! each serving stack expects of `/opt/ml/model`), [`runtime`] (serving containers through
//! the Docker Engine API), [`endpoint`] (the local port in front of an endpoint's
//! instances), [`cli`] (argument parsing and output).
//! The binary is a thin wrapper around [`run`].

pub mod artifact;
pub mod bench;
pub mod ci;
pub mod cli;
pub mod control;
pub mod endpoint;
mod error;
pub mod framework;
pub mod runtime;
pub mod units;

pub use cli::{run, Cli};
pub use error::{Error, Result};
