//! The only `unsafe` in the core: a raw-deflate decompressor (and, for the tests, a
//! compressor playing the client) over C zlib (`libz-sys`, zlib built from its bundled
//! source and linked in statically).
//!
//! Why C zlib: what clients send is hostile, and inflating it is zlib's best-tested
//! path; through its C API an inflater stops wherever its output is refused, so a
//! limit holds whatever the data expands to. (The server's own compressor is
//! [`super::lz77`]; zlib here is only for inflating, and for the tests' client.)
//!
//! Each stream lives in a `Box` because zlib keeps a pointer back to it; its input
//! and output pointers are set for one call and point into slices that outlive it.
//! zlib allocates through [`alloc`] and [`free`], that is through Rust's allocator, so
//! that the memory tests count it.

use std::alloc::Layout;
use std::ffi::c_int;
use std::os::raw::c_uint;

use libz_sys as z;

/// The 4 bytes a sync flush ends with; permessage-deflate leaves them off the wire
/// (RFC 7692 7.2.1) and the receiver puts them back (7.2.2).
pub const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Bytes in front of each zlib allocation holding its size, which `free` needs; 16 keeps
/// the block aligned for anything zlib stores.
const SIZE_PREFIX: usize = 16;

extern "C" fn alloc(_opaque: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    let Some(bytes) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|b| b.checked_add(SIZE_PREFIX))
    else {
        return std::ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(bytes, SIZE_PREFIX) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size; the block starts with room for its size.
    unsafe {
        let block = std::alloc::alloc(layout);
        if block.is_null() {
            return std::ptr::null_mut();
        }
        #[expect(
            clippy::cast_ptr_alignment,
            reason = "the block is SIZE_PREFIX-aligned"
        )]
        block.cast::<usize>().write(bytes);
        block.add(SIZE_PREFIX).cast()
    }
}

extern "C" fn free(_opaque: z::voidpf, address: z::voidpf) {
    if address.is_null() {
        return;
    }
    // SAFETY: `address` came from `alloc`, which wrote the block's size before it.
    unsafe {
        let block = address.cast::<u8>().sub(SIZE_PREFIX);
        #[expect(
            clippy::cast_ptr_alignment,
            reason = "the block is SIZE_PREFIX-aligned"
        )]
        let bytes = block.cast::<usize>().read();
        std::alloc::dealloc(block, Layout::from_size_align_unchecked(bytes, SIZE_PREFIX));
    }
}

#[expect(
    clippy::unnecessary_box_returns,
    reason = "zlib keeps a pointer to the stream"
)]
fn new_stream() -> Box<z::z_stream> {
    Box::new(z::z_stream {
        next_in: std::ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc: alloc,
        zfree: free,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    })
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "~100 bytes"
)]
const STREAM_SIZE: c_int = std::mem::size_of::<z::z_stream>() as c_int;

/// Output room added per step while compressing.
#[cfg(test)]
const OUTPUT_STEP: usize = 256;

/// A raw deflate compressor whose output continues from message to message (context
/// takeover): the unit tests' client.
#[cfg(test)]
pub struct Deflater {
    stream: Box<z::z_stream>,
}

#[cfg(test)]
impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflater")
    }
}

#[cfg(test)]
impl Deflater {
    /// `level` 1-9, `window_bits` 9-15, `mem_level` 1-9 (checked by the configuration);
    /// `None` if zlib refuses them or is out of memory.
    pub fn new(level: u8, window_bits: u8, mem_level: u8) -> Option<Deflater> {
        let mut stream = new_stream();
        // SAFETY: a fresh stream with our allocator; negative bits: raw deflate.
        let status = unsafe {
            z::deflateInit2_(
                &raw mut *stream,
                c_int::from(level),
                z::Z_DEFLATED,
                -c_int::from(window_bits),
                c_int::from(mem_level),
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                STREAM_SIZE,
            )
        };
        (status == z::Z_OK).then_some(Deflater { stream })
    }

    /// Appends `input` compressed and sync-flushed to `out`, without the
    /// [`SYNC_TAIL`]: one permessage-deflate message. False if zlib failed (then the
    /// stream must not be used again).
    pub fn compress_message(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let Ok(avail_in) = c_uint::try_from(input.len()) else {
            return false;
        };
        self.stream.next_in = input.as_ptr().cast_mut();
        self.stream.avail_in = avail_in;
        let ok = loop {
            let used = out.len();
            out.resize(used + input.len() / 2 + OUTPUT_STEP, 0);
            let room = out.len() - used;
            self.stream.next_out = out[used..].as_mut_ptr();
            self.stream.avail_out = room as c_uint;
            // SAFETY: next_in/avail_in describe `input`, next_out/avail_out the end
            // of `out`; both outlive the call. zlib never writes through next_in.
            let status = unsafe { z::deflate(&raw mut *self.stream, z::Z_SYNC_FLUSH) };
            let written = room - self.stream.avail_out as usize;
            out.truncate(used + written);
            if status != z::Z_OK && status != z::Z_BUF_ERROR {
                break false;
            }
            // Done when all input is taken and the flush did not fill the output.
            if self.stream.avail_in == 0 && self.stream.avail_out != 0 {
                break true;
            }
        };
        self.stream.next_in = std::ptr::null_mut();
        self.stream.next_out = std::ptr::null_mut();
        if !ok || !out[start..].ends_with(&SYNC_TAIL) {
            out.truncate(start);
            return false;
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        true
    }
}

#[cfg(test)]
impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: an initialised stream, ended once.
        unsafe { z::deflateEnd(&raw mut *self.stream) };
    }
}

/// Why inflating stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateStop<E> {
    /// The input is not raw deflate data.
    Corrupt,
    /// The output callback refused more (a limit).
    Refused(E),
}

/// Decompressed bytes are handed on in pieces of at most this many bytes: the stack
/// buffer inflating writes into.
const INFLATE_PIECE: usize = 4096;
#[expect(clippy::cast_possible_truncation, reason = "4096 fits")]
const INFLATE_PIECE_UINT: c_uint = INFLATE_PIECE as c_uint;

/// A raw deflate decompressor with zlib's largest window (15 bits), so that it reads
/// what any client compresses.
pub struct Inflater {
    stream: Box<z::z_stream>,
    /// The deflate stream ended (a final block): nothing may follow in this message.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

/// zlib's largest window, which decodes data compressed with any smaller one.
const MAX_WINDOW_BITS: c_int = 15;

impl Inflater {
    pub fn new() -> Option<Inflater> {
        Inflater::with_window_bits(MAX_WINDOW_BITS)
    }

    /// An inflater that refuses references farther back than 2^`window_bits` bytes
    /// (8-15); the tests use it to check a compressor keeps to its window.
    pub fn with_window_bits(window_bits: c_int) -> Option<Inflater> {
        let mut stream = new_stream();
        // SAFETY: a fresh stream with our allocator; negative bits: raw deflate.
        let status = unsafe {
            z::inflateInit2_(
                &raw mut *stream,
                -window_bits,
                z::zlibVersion(),
                STREAM_SIZE,
            )
        };
        (status == z::Z_OK).then_some(Inflater {
            stream,
            ended: false,
        })
    }

    /// Ready for a message compressed on its own (no context takeover).
    pub fn reset(&mut self) {
        // SAFETY: an initialised stream.
        unsafe { z::inflateReset(&raw mut *self.stream) };
        self.ended = false;
    }

    /// Inflates all of `input`, handing the output to `emit` piece by piece; stops at
    /// the first piece `emit` refuses, so a limit holds however far the data would
    /// expand.
    pub fn inflate<E>(
        &mut self,
        input: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), InflateStop<E>> {
        let Ok(avail_in) = c_uint::try_from(input.len()) else {
            return Err(InflateStop::Corrupt);
        };
        if input.is_empty() {
            return Ok(());
        }
        if self.ended {
            return Err(InflateStop::Corrupt);
        }
        let mut piece = [0u8; INFLATE_PIECE];
        self.stream.next_in = input.as_ptr().cast_mut();
        self.stream.avail_in = avail_in;
        let result = loop {
            self.stream.next_out = piece.as_mut_ptr();
            self.stream.avail_out = INFLATE_PIECE_UINT;
            // SAFETY: next_in/avail_in describe `input`, next_out/avail_out `piece`;
            // both outlive the call. zlib never writes through next_in.
            let status = unsafe { z::inflate(&raw mut *self.stream, z::Z_SYNC_FLUSH) };
            let written = INFLATE_PIECE - self.stream.avail_out as usize;
            if written > 0 {
                // zlib wrote at most the room it was given.
                if let Err(e) = emit(piece.split_at(written).0) {
                    break Err(InflateStop::Refused(e));
                }
            }
            match status {
                z::Z_STREAM_END => {
                    self.ended = true;
                    break if self.stream.avail_in == 0 {
                        Ok(())
                    } else {
                        Err(InflateStop::Corrupt)
                    };
                }
                // Room left: all input taken, or no progress although there is input.
                z::Z_OK | z::Z_BUF_ERROR if self.stream.avail_out != 0 => {
                    if self.stream.avail_in == 0 {
                        break Ok(());
                    }
                    if written == 0 {
                        break Err(InflateStop::Corrupt);
                    }
                }
                // The piece is full: there may be more output.
                z::Z_OK | z::Z_BUF_ERROR => {}
                _ => break Err(InflateStop::Corrupt),
            }
        };
        self.stream.next_in = std::ptr::null_mut();
        self.stream.next_out = std::ptr::null_mut();
        result
    }

    /// Ends a message: feeds the [`SYNC_TAIL`] the sender left off.
    pub fn finish_message<E>(
        &mut self,
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), InflateStop<E>> {
        if self.ended {
            return Ok(());
        }
        self.inflate(&SYNC_TAIL, emit)
    }

    /// One whole message inflated (its sync tail put back), as the tests' client reads
    /// what a compressor sent.
    #[cfg(test)]
    pub fn inflate_message(&mut self, data: &[u8]) -> Result<Vec<u8>, InflateStop<()>> {
        let mut out = Vec::new();
        let mut collect = |piece: &[u8]| {
            out.extend_from_slice(piece);
            Ok::<(), ()>(())
        };
        self.inflate(data, &mut collect)?;
        self.finish_message(&mut collect)?;
        Ok(out)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: an initialised stream, ended once.
        unsafe { z::inflateEnd(&raw mut *self.stream) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_context_takeover() {
        let mut d = Deflater::new(6, 11, 2).expect("deflater");
        let mut i = Inflater::new().expect("inflater");
        let line = b":nick!user@host PRIVMSG #chan :hello there, hello there";
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let mut wire = Vec::new();
            assert!(d.compress_message(line, &mut wire));
            assert!(!wire.ends_with(&SYNC_TAIL));
            sizes.push(wire.len());
            assert_eq!(i.inflate_message(&wire).expect("inflates"), line);
        }
        // The second message refers back to the first.
        assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
    }

    #[test]
    fn the_rfc_7692_example_inflates() {
        // RFC 7692 7.2.3.1: "Hello" compressed in one message.
        let mut i = Inflater::new().expect("inflater");
        let out = i.inflate_message(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(out.expect("inflates"), b"Hello");
    }

    #[test]
    fn corrupt_data_is_reported() {
        let mut i = Inflater::new().expect("inflater");
        assert_eq!(
            i.inflate_message(&[0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(InflateStop::Corrupt)
        );
    }

    #[test]
    fn a_refusing_callback_stops_a_bomb_early() {
        let mut d = Deflater::new(9, 15, 9).expect("deflater");
        let mut wire = Vec::new();
        assert!(d.compress_message(&vec![b'a'; 10 << 20], &mut wire));
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut i = Inflater::new().expect("inflater");
        let mut seen = 0;
        let r = i.inflate(&wire, |p| {
            seen += p.len();
            if seen > 16 * 1024 {
                Err("too big")
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(InflateStop::Refused("too big")));
        assert!(seen <= 16 * 1024 + INFLATE_PIECE, "{seen}");
    }
}
