//! The buffer the shim hands every call that writes to a client.
//!
//! One `std::string`, kept by the shim for the whole module and reused by every
//! connection (InspIRCd runs on one thread): a write round then costs no allocation for
//! its frames, only the one copy InspIRCd's send queue makes of them (its `push_back`
//! takes a `const std::string&`). After a burst the shim frees it rather than keep it
//! at its largest.

use std::pin::Pin;

use cxx::CxxString;

use super::cxx_sink::CxxSink;

/// Most capacity the buffer keeps between calls; the shim frees a larger one.
pub(super) const KEEP_BYTES: usize = 64 * 1024;

/// Longest string the shim adds to a send queue at once; longer output goes in pieces
/// of this size. Each string of the queue is a heap block of its length plus one, and
/// glibc's malloc serves blocks below 1 KiB from per-size free lists, while a larger
/// one goes through its sorted bins at many times the cost: a write round of a busy
/// channel (a kilobyte or two) costs less as two small blocks than as one
/// (docs/PERFORMANCE.md).
pub(super) const PIECE_BYTES: usize = 1000;

/// Empties `out` for this call and writes through a [`CxxSink`].
pub(super) fn fresh(mut out: Pin<&mut CxxString>) -> CxxSink<'_> {
    out.as_mut().clear();
    CxxSink::new(out)
}
