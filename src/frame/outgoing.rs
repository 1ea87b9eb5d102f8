//! Server-to-client framing of IRC lines. STUB.
use crate::sink::ByteSink;

/// The frame type used for IRC lines on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageMode {
    /// Text frames; invalid UTF-8 is replaced with U+FFFD.
    Text,
    /// Binary frames; bytes pass through.
    Binary,
}

/// Turns the server's outgoing byte stream into one unmasked FIN frame per IRC line.
#[derive(Clone, Debug, Default)]
pub struct LineFramer {
    // private: the incomplete trailing line waiting for its newline
}

impl LineFramer {
    /// Frames every complete line in `input` (CR/LF removed) into `out`; an incomplete
    /// trailing line is kept until a later call completes it.
    pub fn frame_lines(&mut self, input: &[u8], mode: MessageMode, out: &mut impl ByteSink) {
        let _ = (input, mode, out);
        unimplemented!()
    }
    /// Writes one unmasked FIN frame with `opcode` and `payload` into `out`.
    pub fn write_frame(opcode: super::OpCode, payload: &[u8], out: &mut impl ByteSink) {
        let _ = (opcode, payload, out);
        unimplemented!()
    }
}
