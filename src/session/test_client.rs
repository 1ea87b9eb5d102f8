//! A test client's bytes, written by hand (independently of the crate's encoder): the
//! upgrade request and masked client frames. Shared by the session and bridge tests.

/// A browser-like upgrade request that the default and `with_origins` configurations
/// accept (Origin https://chat.example.com).
pub(crate) const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: irc.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\r\n";

/// The masking key of every frame [`frame_with`] masks.
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `first_byte` (FIN, RSV, opcode) as given, the minimal length
/// encoding, masked with [`MASK`] if `masked`.
pub(crate) fn frame_with(first_byte: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}
