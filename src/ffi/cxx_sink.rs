//! The [`ByteSink`] over a C++ `std::string` owned by the shim.

use std::pin::Pin;

use cxx::CxxString;

use crate::sink::ByteSink;

/// Bytes gathered before they cross the bridge. A frame is written as a header and a
/// payload and a line as its text and CR LF, and each append to a `std::string` from
/// Rust is a call into libstdc++ (about 120 instructions under callgrind, whatever the
/// length); gathering makes it one call per few lines. Small, as it lives on the stack
/// of every call that writes.
const GATHER_BYTES: usize = 512;

/// Appends to a C++ `std::string`, gathering small writes first. What is gathered is
/// appended when the sink is dropped, so the string is complete when the bridge call
/// that made the sink returns.
pub(super) struct CxxSink<'a> {
    out: Pin<&'a mut CxxString>,
    gathered: [u8; GATHER_BYTES],
    len: usize,
}

impl<'a> CxxSink<'a> {
    pub(super) fn new(out: Pin<&'a mut CxxString>) -> CxxSink<'a> {
        CxxSink {
            out,
            gathered: [0; GATHER_BYTES],
            len: 0,
        }
    }

    /// Drops everything written so far, gathered or appended.
    pub(super) fn discard(&mut self) {
        self.len = 0;
        self.out.as_mut().clear();
    }

    fn flush(&mut self) {
        if let Some(bytes) = self.gathered.get(..self.len).filter(|b| !b.is_empty()) {
            self.out.as_mut().push_bytes(bytes);
        }
        self.len = 0;
    }
}

impl ByteSink for CxxSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.gathered.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
            return;
        }
        self.flush();
        match self.gathered.get_mut(..bytes.len()) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = bytes.len();
            }
            // Too big to gather: appended at once.
            None => self.out.as_mut().push_bytes(bytes),
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.out.as_mut().reserve(self.len + additional);
    }
}

impl Drop for CxxSink<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use cxx::let_cxx_string;

    use super::*;

    #[test]
    fn small_and_large_writes_arrive_in_order() {
        let_cxx_string!(out = "kept:");
        let pieces: Vec<Vec<u8>> = [1, 200, 311, 0, 2, GATHER_BYTES, 5, GATHER_BYTES + 1, 7]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![b'a' + i as u8; len])
            .collect();
        {
            let mut sink = CxxSink::new(out.as_mut());
            for piece in &pieces {
                sink.put(piece);
            }
        }
        let mut expected = b"kept:".to_vec();
        expected.extend(pieces.concat());
        assert_eq!(out.as_bytes(), &expected[..]);
    }

    #[test]
    fn nothing_written_leaves_the_string_alone() {
        let_cxx_string!(out = "as is");
        drop(CxxSink::new(out.as_mut()));
        assert_eq!(out.as_bytes(), b"as is");
    }
}
