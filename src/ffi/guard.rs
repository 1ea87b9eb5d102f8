//! The one place a panic is stopped before it reaches C++, where it would abort the
//! whole IRC server.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, giving `None` if it panicked. Every bridge function goes through this (or
/// [`super::session::WsSession::guarded`], which also gives up on the connection).
pub(super) fn caught<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}
