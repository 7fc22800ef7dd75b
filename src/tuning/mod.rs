//! Hyperparameter tuning's search: the ranges of a tuning job as a space ([`space`]) and
//! the strategies that choose each trial's values in it ([`search`]). Pure: no I/O, no
//! clock; the control plane runs the trials (`control/tuning_jobs.rs`).

pub mod search;
pub mod space;

pub use search::{Searcher, Strategy, Values};
pub use space::{Range, RangeError, Space};
