//! Where the core writes bytes: a growable buffer owned by the caller.
//!
//! The core never owns the queues it fills. In tests the sink is a `Vec<u8>`; in the
//! module it is an InspIRCd `std::string` (the user's receive queue or a send buffer),
//! so bytes are written once, straight to their destination.

/// An append-only byte destination.
pub trait ByteSink {
    /// Appends `bytes` to the end of the sink.
    fn put(&mut self, bytes: &[u8]);

    /// About `additional` more bytes are coming: grow once now rather than piece by
    /// piece. A hint; a sink may ignore it.
    fn reserve(&mut self, _additional: usize) {}
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}
