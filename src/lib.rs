//! sagedock runs Amazon SageMaker hosting, training and batch transform on one machine.
//!
//! It takes what a SageMaker deployment takes — a `model.tar.gz`, a serving image, the
//! hosting API calls — and produces a real endpoint backed by real containers, so that
//! artifacts, images, request formats and latency are checked before anything reaches the
//! cloud.
//!
//! The layers, each depending only on those below it (ARCHITECTURE.md draws them):
//! - [`cli`]: arguments and printing; [`server`]: the one port, dispatching to
//!   [`control`] (the SageMaker API) and [`endpoint`] (the runtime API);
//! - [`ci`] (spec files, JUnit) and [`bench`] (load and latency); [`transform`]: a batch
//!   transform job's objects through its model's containers, one `.out` each;
//! - [`deploy`]: a plan in, healthy routed containers out — the one path `serve`, `ci`,
//!   `up` and transform jobs take; [`training`]: a training job's containers run to their
//!   end, its model out; [`jobs`]: the running jobs of a kind and their stop signals;
//! - [`state`] (typed records and their store), [`storage`] (`s3://` and `file://`
//!   locations under one confinement rule), [`botocore`] (the AWS service models and
//!   their input validation);
//! - [`framework`] (serving stacks and their layout rules), [`artifact`] (pack, unpack,
//!   cache, findings), [`runtime`] (the Docker engine).
//!
//! The binary is a thin wrapper around [`run`].

pub mod artifact;
pub mod bench;
pub mod botocore;
pub mod ci;
pub mod cli;
pub mod contract;
pub mod control;
pub mod credentials;
pub mod dashboard;
pub mod deploy;
pub mod endpoint;
mod error;
pub mod framework;
pub mod http;
pub mod jobs;
pub mod logs;
pub mod progress;
pub mod runtime;
pub mod server;
pub mod state;
pub mod storage;
mod sync;
pub mod training;
pub mod transform;
pub mod tuning;
pub mod units;
pub mod xml;

pub use cli::{run, Cli};
pub use error::{Error, Result};
