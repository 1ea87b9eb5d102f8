//! Compressing the server's messages for one connection.

use std::rc::Rc;

use super::lz77::MessageDeflater;
use super::spares::Spares;
use super::{Agreed, Settings};
use crate::frame::{write_frame, write_frame_with_rsv, OpCode, RSV1};
use crate::sink::ByteSink;

/// The server side of a permessage-deflate connection.
#[derive(Debug)]
pub struct Compressor {
    window_bits: u8,
    hash_bits: u8,
    min_size: usize,
    /// Each message compressed on its own (the client asked).
    no_context_takeover: bool,
    /// Created at the first message worth compressing: a connection that is sent
    /// nothing keeps nothing.
    deflater: Option<MessageDeflater>,
    /// Where compressed output waits to be framed (shared: no connection keeps one).
    spares: Rc<Spares>,
}

impl Compressor {
    pub fn new(settings: &Settings, agreed: &Agreed, spares: Rc<Spares>) -> Compressor {
        Compressor {
            window_bits: agreed.server_window_bits,
            hash_bits: settings.hash_bits,
            min_size: settings.min_size,
            no_context_takeover: agreed.server_no_context_takeover,
            deflater: None,
            spares,
        }
    }

    /// Writes `payload` as one message: compressed with RSV1 set, or as it is when it
    /// is shorter than the configured minimum.
    pub fn write_message(&mut self, opcode: OpCode, payload: &[u8], out: &mut impl ByteSink) {
        if payload.len() < self.min_size {
            write_frame(opcode, payload, out);
            return;
        }
        let deflater = self
            .deflater
            .get_or_insert_with(|| MessageDeflater::new(self.window_bits, self.hash_bits));
        self.spares.with_scratch(|scratch| {
            deflater.compress(payload, scratch);
            write_frame_with_rsv(opcode, RSV1, scratch, out);
        });
        if self.no_context_takeover {
            deflater.forget();
        }
    }
}
