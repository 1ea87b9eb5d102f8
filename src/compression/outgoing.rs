//! Compressing the server's messages for one connection.

use std::cell::RefCell;

use super::zlib::Deflater;
use super::{Agreed, Settings};
use crate::frame::{write_frame, write_frame_with_rsv, OpCode, RSV1};
use crate::sink::ByteSink;

/// The server side of a permessage-deflate connection.
#[derive(Debug)]
pub struct Compressor {
    level: u8,
    window_bits: u8,
    mem_level: u8,
    min_size: usize,
    /// Each message compressed on its own (the client asked).
    no_context_takeover: bool,
    /// Created at the first message worth compressing (a connection that is sent
    /// nothing keeps nothing); dropped if zlib ever fails, then made anew: a fresh
    /// stream refers to nothing earlier, which the client decodes all the same.
    deflater: Option<Deflater>,
}

thread_local! {
    /// Compressed output before it is framed, shared by the thread's connections so
    /// that none keeps a buffer.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Compressor {
    pub fn new(settings: &Settings, agreed: &Agreed) -> Compressor {
        Compressor {
            level: settings.level,
            window_bits: agreed.server_window_bits,
            mem_level: settings.mem_level,
            min_size: settings.min_size,
            no_context_takeover: agreed.server_no_context_takeover,
            deflater: None,
        }
    }

    /// Writes `payload` as one message: compressed with RSV1 set, or as it is when it
    /// is shorter than the configured minimum (or zlib failed).
    pub fn write_message(&mut self, opcode: OpCode, payload: &[u8], out: &mut impl ByteSink) {
        if payload.len() >= self.min_size {
            let sent = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let compressed = self.compress(payload, &mut scratch);
                if compressed {
                    write_frame_with_rsv(opcode, RSV1, &scratch, out);
                }
                scratch.clear();
                if scratch.capacity() > SCRATCH_KEPT {
                    *scratch = Vec::new();
                }
                compressed
            });
            if sent {
                return;
            }
        }
        write_frame(opcode, payload, out);
    }

    fn compress(&mut self, payload: &[u8], scratch: &mut Vec<u8>) -> bool {
        if self.deflater.is_none() {
            self.deflater = Deflater::new(self.level, self.window_bits, self.mem_level);
        }
        let Some(deflater) = self.deflater.as_mut() else {
            return false;
        };
        if !deflater.compress_message(payload, scratch) {
            self.deflater = None;
            return false;
        }
        if self.no_context_takeover {
            deflater.reset();
        }
        true
    }
}

/// Largest scratch buffer kept between messages (an IRC line's compressed size is far
/// below; a long message's buffer is freed).
const SCRATCH_KEPT: usize = 1024;
