//! One pass over a line's bytes that tells what handling it needs: whether a CR or an
//! LF is inside, and whether every byte is ASCII (valid UTF-8 without a closer look).
//!
//! Both directions ask it of nearly every line: the server's lines before they are
//! framed ([`super::outgoing`]), the client's messages before they become lines
//! ([`crate::session`]'s frame reader). Most IRC lines are ASCII without a CR or LF
//! inside, and for them this pass is all the checking there is.

/// Bytes per step of [`scan_line`], which is written by hand because no crate answers
/// its question (is there a CR or an LF, and is every byte ASCII) in one pass; for IRC
/// lines (mostly ASCII, under 200 bytes) it beat `memchr` for the CR then `simdutf8` or
/// `is_ascii` (`benches/codec.rs`). The search for the newline in longer input uses
/// `memchr`, which is as fast or faster there.
///
/// A loop over a fixed-size block without an early exit becomes vector compares (SSE2
/// on any x86-64); input shorter than a block is read eight bytes at a time. The last,
/// partial block (or word) is read as the full block (word) that ends with the input:
/// it overlaps bytes already seen, which does not change "is there a CR".
///
/// With the LF asked too, the usual send-queue element (one line) takes one pass
/// instead of a `memchr` then this scan. CR and LF are asked together: either sends
/// the line the slow way, which tells them apart.
const BLOCK: usize = 32;

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` equal to `b`, exactly (no false positives).
#[expect(clippy::inline_always, reason = "per word of every line sent")]
#[inline(always)]
fn bytes_equal(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    // The high bit of ((y & 7f) + 7f) | y is clear exactly for a zero byte of y.
    !(((y & LOW7).wrapping_add(LOW7)) | y | LOW7)
}

/// The little-endian word at the start of `bytes` (at least 8 long: callers check).
#[expect(clippy::inline_always, reason = "per word of every line sent")]
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes.split_at(8).0);
    u64::from_le_bytes(w)
}

/// What [`scan_line`] found.
#[derive(Clone, Copy, Debug)]
pub struct LineScan {
    /// A CR or an LF is in the line (the CR LF that ends it already stripped): a CR to
    /// remove, or more than one line.
    pub cr_or_lf: bool,
    /// Every byte is below 0x80.
    pub ascii: bool,
}

/// The multiversion crate compiles this a second time for AVX2, picked at run time
/// where the CPU has it: a block is then one 32-byte vector instead of two (the scan of
/// a 100-byte line takes less than half the instructions).
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn scan_line(line: &[u8]) -> LineScan {
    let len = line.len();
    if len >= BLOCK {
        // Per byte lane, over all blocks: the bytes ORed together (bit 7: non-ASCII),
        // and 0xff where a CR or an LF was seen. Combined once at the end.
        let (mut high, mut special) = ([0u8; BLOCK], [0u8; BLOCK]);
        let mut add = |block: &[u8]| {
            let lanes = high.iter_mut().zip(&mut special).zip(block);
            for ((high, special), &byte) in lanes {
                *high |= byte;
                *special |= 0u8.wrapping_sub(u8::from(byte == b'\r' || byte == b'\n'));
            }
        };
        for block in line.chunks_exact(BLOCK) {
            add(block);
        }
        add(line.split_at(len - BLOCK).1);
        let any = |lanes: &[u8; BLOCK]| lanes.iter().fold(0u8, |acc, &lane| acc | lane);
        return LineScan {
            cr_or_lf: any(&special) != 0,
            ascii: any(&high) & 0x80 == 0,
        };
    }
    if len >= 8 {
        let (mut special, mut all) = (0u64, 0u64);
        let mut at = 0;
        while at + 8 <= len {
            let x = word(line.split_at(at).1);
            special |= bytes_equal(x, b'\r') | bytes_equal(x, b'\n');
            all |= x;
            at += 8;
        }
        let x = word(line.split_at(len - 8).1);
        special |= bytes_equal(x, b'\r') | bytes_equal(x, b'\n');
        all |= x;
        return LineScan {
            cr_or_lf: special != 0,
            ascii: all & HIGH == 0,
        };
    }
    LineScan {
        cr_or_lf: line.iter().any(|&b| b == b'\r' || b == b'\n'),
        ascii: line.is_ascii(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_line_flags_cr_lf_and_non_ascii() {
        let flags = |s: LineScan| (s.cr_or_lf, s.ascii);
        for len in 1..80 {
            for at in 0..len {
                let mut line = vec![b'x'; len];
                line[at] = b'\r';
                assert_eq!(flags(scan_line(&line)), (true, true), "{len} {at}");
                line[at] = b'\n';
                assert_eq!(flags(scan_line(&line)), (true, true), "{len} {at}");
                line[at] = 0x80;
                assert_eq!(flags(scan_line(&line)), (false, false), "{len} {at}");
                line[at] = 0x8d;
                assert_eq!(flags(scan_line(&line)), (false, false), "{len} {at}");
                line[at] = 0x8a;
                assert_eq!(flags(scan_line(&line)), (false, false), "{len} {at}");
                line[at] = 0x0c;
                assert_eq!(flags(scan_line(&line)), (false, true), "{len} {at}");
                line[at] = 0x0b;
                assert_eq!(flags(scan_line(&line)), (false, true), "{len} {at}");
            }
        }
        assert_eq!(flags(scan_line(b"")), (false, true));
    }
}
