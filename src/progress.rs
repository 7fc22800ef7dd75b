//! How far long work has got, for whoever shows it: the work holds a [`Meter`] and moves
//! it (an atomic add per step, a note when what it does changes); the command line draws
//! it on a terminal, and nothing else reads it. A meter nobody reads costs an atomic add.
//!
//! Unpacking and packing archives count bytes, an image pull counts its layers' bytes, the
//! health wait notes the last `/ping` answer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::sync::locked;

/// Work done out of a total, and what the work is doing.
#[derive(Debug, Default)]
pub struct Meter {
    done: AtomicU64,
    /// 0: not known.
    total: AtomicU64,
    note: Mutex<String>,
}

/// A meter as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub done: u64,
    /// `None` when the work does not know how much there is.
    pub total: Option<u64>,
    pub note: String,
}

impl Meter {
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    /// Starts a piece of work: what it is, and how much of it there is when known (the
    /// count starts again from 0).
    pub fn start(&self, note: impl Into<String>, total: Option<u64>) {
        *locked(&self.note) = note.into();
        self.done.store(0, Relaxed);
        self.total.store(total.unwrap_or(0), Relaxed);
    }

    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
    }

    /// The work's own count of what is done and of the total (an image pull's layers).
    pub fn set(&self, done: u64, total: u64) {
        self.done.store(done, Relaxed);
        self.total.store(total, Relaxed);
    }

    /// Says what the work is doing now, without touching the count.
    pub fn note(&self, note: impl Into<String>) {
        *locked(&self.note) = note.into();
    }

    pub fn read(&self) -> Reading {
        let total = self.total.load(Relaxed);
        Reading {
            done: self.done.load(Relaxed),
            total: (total > 0).then_some(total),
            note: locked(&self.note).clone(),
        }
    }
}

/// A reader that moves a meter by the bytes read through it.
#[derive(Debug)]
pub struct MeteredRead<R> {
    pub inner: R,
    pub meter: Option<Arc<Meter>>,
}

impl<R: std::io::Read> std::io::Read for MeteredRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(meter) = &self.meter {
            meter.advance(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_start_resets_the_count_and_reads_move_it() {
        let meter = Meter::new();
        meter.start("unpacking m.tar.gz", Some(10));
        let mut reader = MeteredRead {
            inner: &b"0123456789"[..],
            meter: Some(meter.clone()),
        };
        let mut buf = [0u8; 4];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(
            meter.read(),
            Reading {
                done: 4,
                total: Some(10),
                note: "unpacking m.tar.gz".into()
            }
        );
        meter.start("waiting for /ping", None);
        meter.note("waiting for /ping: HTTP 503");
        let r = meter.read();
        assert_eq!(
            (r.done, r.total, r.note.as_str()),
            (0, None, "waiting for /ping: HTTP 503")
        );
    }
}
