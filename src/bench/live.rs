//! Running totals of a load while it runs, for a progress line: answers and failures so
//! far, and the latency quantiles since the line last read them.
//!
//! Kept only when someone reads them (a terminal): every answer then takes an uncontended
//! lock, which a run measured for a report does not pay.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::sync::locked;

/// The totals, updated by every connection.
#[derive(Debug)]
pub struct Live {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Latencies since the last [`Live::read`], in µs.
    recent: Mutex<Histogram<u64>>,
}

/// What a progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveFigures {
    pub ok: u64,
    pub failed: u64,
    /// Of the answers since the last read, in milliseconds; `None` when there were none.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            recent: Mutex::new(super::histogram()),
        }
    }
}

impl Live {
    pub(super) fn answered(&self, latency: Duration) {
        self.ok.fetch_add(1, Relaxed);
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        locked(&self.recent).saturating_record(us);
    }

    pub(super) fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    /// The totals, and the quantiles since the last read (which starts a new window).
    pub fn read(&self) -> LiveFigures {
        let mut recent = locked(&self.recent);
        let ms = |q: f64| (!recent.is_empty()).then(|| recent.value_at_quantile(q) as f64 / 1000.0);
        let figures = LiveFigures {
            ok: self.ok.load(Relaxed),
            failed: self.failed.load(Relaxed),
            p50: ms(0.50),
            p99: ms(0.99),
        };
        recent.reset();
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_starts_a_new_window_but_keeps_the_totals() {
        let live = Live::default();
        for ms in 1..=100 {
            live.answered(Duration::from_millis(ms));
        }
        live.failed();
        let first = live.read();
        assert_eq!((first.ok, first.failed), (100, 1));
        let p50 = first.p50.unwrap();
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        let second = live.read();
        assert_eq!((second.ok, second.failed), (100, 1));
        assert_eq!(second.p50, None);
    }
}
