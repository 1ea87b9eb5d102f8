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

/// Empties `out` for this call and writes through a [`CxxSink`].
pub(super) fn fresh(mut out: Pin<&mut CxxString>) -> CxxSink<'_> {
    out.as_mut().clear();
    CxxSink::new(out)
}
