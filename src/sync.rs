//! Locks that outlive a panic.
//!
//! A panic while a lock is held (caught by the server's `catch_unwind`) poisons it; the
//! tables behind sagedock's locks stay consistent between statements, so the next caller
//! takes the lock as it is instead of panicking in turn.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
