//! Compressing the server's messages for one connection.

use std::cell::RefCell;

use super::lz77::MessageDeflater;
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
}

thread_local! {
    /// Compressed output before it is framed, shared by the thread's connections so
    /// that none keeps a buffer.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Compressor {
    pub fn new(settings: &Settings, agreed: &Agreed) -> Compressor {
        Compressor {
            window_bits: agreed.server_window_bits,
            hash_bits: settings.hash_bits,
            min_size: settings.min_size,
            no_context_takeover: agreed.server_no_context_takeover,
            deflater: None,
        }
    }

    /// Writes `payload` as one message: compressed with RSV1 set, or as it is when it
    /// is shorter than the configured minimum.
    pub fn write_message(&mut self, opcode: OpCode, payload: &[u8], out: &mut impl ByteSink) {
        if payload.len() < self.min_size {
            write_frame(opcode, payload, out);
            return;
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            self.compress(payload, &mut scratch);
            write_frame_with_rsv(opcode, RSV1, &scratch, out);
            scratch.clear();
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
        });
    }

    fn compress(&mut self, payload: &[u8], scratch: &mut Vec<u8>) {
        let deflater = self
            .deflater
            .get_or_insert_with(|| MessageDeflater::new(self.window_bits, self.hash_bits));
        deflater.compress(payload, scratch);
        if self.no_context_takeover {
            deflater.forget();
        }
    }
}

/// Largest scratch buffer kept between messages (an IRC line's compressed size is far
/// below; a long message's buffer is freed).
const SCRATCH_KEPT: usize = 1024;
