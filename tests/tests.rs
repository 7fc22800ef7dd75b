//! sagedock's integration tests: one binary, one module per subsystem.
//! Helpers live in `util`: a sandbox directory per test, fixtures by name, the CLI.

mod util;

#[cfg(feature = "aws-sdk-tests")]
mod aws_sdk;
mod bench;
mod cache;
mod check;
mod ci;
mod connections;
mod dashboard;
mod faults;
mod multimodel;
mod mxnet;
mod pack;
mod serve;
mod serverless;
mod shutdown;
mod sklearn;
mod swarm;
mod tensorflow;
mod training;
mod transform;
mod unpack;
mod up;
mod validate;
