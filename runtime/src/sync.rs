//! Locking shared state.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the state over from a holder that panicked: every guarded value in
/// this project stays consistent between statements, and a panicking handler must not
/// take the whole process's queue or store down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
