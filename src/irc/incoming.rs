//! Client messages to IRC lines.

use crate::frame::OpCode;
use crate::session::MessageSink;
use crate::sink::ByteSink;

/// The IRC delivery of [`crate::session::Session::receive`]: each message becomes one
/// line. CR and LF inside it are dropped, so that it can never become two commands, and
/// "\r\n" is appended. An empty message becomes an empty line, which InspIRCd charges
/// like a command, so a flood of them meets the server's flood control.
#[derive(Debug)]
pub struct IrcLines<'a, S: ByteSink> {
    lines: &'a mut S,
}

impl<'a, S: ByteSink> IrcLines<'a, S> {
    /// Lines go to `lines` (InspIRCd's receive queue).
    pub fn new(lines: &'a mut S) -> IrcLines<'a, S> {
        IrcLines { lines }
    }
}

impl<S: ByteSink> MessageSink for IrcLines<'_, S> {
    fn begin(&mut self, _opcode: OpCode) {}

    fn payload(&mut self, bytes: &[u8]) {
        // memchr2 finds CR/LF a vector at a time; messages rarely contain either.
        let mut start = 0;
        for end in memchr::memchr2_iter(b'\r', b'\n', bytes).chain([bytes.len()]) {
            if let Some(segment) = bytes.get(start..end).filter(|s| !s.is_empty()) {
                self.lines.put(segment);
            }
            start = end + 1;
        }
    }

    fn payload_without_newlines(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.lines.put(bytes);
        }
    }

    fn end(&mut self) {
        self.lines.put(b"\r\n");
    }

    /// Every frame has at least 6 bytes of header and its line gains 2 (CR LF), so
    /// the lines never take more room than the frames: one allocation at most, as
    /// InspIRCd's own reads make, instead of growing piece by piece.
    fn expect(&mut self, frame_bytes: usize) {
        self.lines.reserve(frame_bytes);
    }
}
