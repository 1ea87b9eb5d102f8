//! The client side of RFC 6455's framing, written by hand (independently of the
//! module's own codec, which the tests check against it): masked client frames out,
//! server frames in ([`parse_frame`], [`decode_frames`]; [`crate::messages`] turns them
//! into messages), and the test's upgrade requests.

/// Opcodes (RFC 6455 5.2).
pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xa;

/// The masking key of the clients that do not choose one per frame.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The key from RFC 6455 section 1.3 and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A browser-like upgrade request (Origin `https://chat.example.com`, Host
/// `irc.example.com`, [`SAMPLE_KEY`]), as the core's unit tests and the counting
/// allocator test feed it to a connection.
pub const CHAT_EXAMPLE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: irc.example.com\r\n\
Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\r\n";

/// Appends a client frame to `out`: `first_byte` (FIN, RSV and opcode) as given, the
/// shortest length encoding, the payload masked with `mask`, or unmasked with `None`
/// (a protocol violation a test may want).
pub fn encode_frame_into(out: &mut Vec<u8>, first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(payload.len() + 14);
    out.push(first_byte);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n <= 125 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// A client frame from its first byte (FIN, RSV and opcode as given); see
/// [`encode_frame_into`].
pub fn encode_frame_byte(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame_into(&mut out, first_byte, payload, mask);
    out
}

/// A client frame: FIN if `fin`, no RSV bits, `opcode`; see [`encode_frame_into`].
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    encode_frame_byte(first_byte(fin, opcode), payload, mask)
}

/// The first byte of a frame without RSV bits.
pub fn first_byte(fin: bool, opcode: u8) -> u8 {
    (if fin { 0x80 } else { 0 }) | (opcode & 0x0f)
}

/// A close frame's payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// One frame as the server sent it (a masked one unmasked, `masked` telling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The code of a close frame (`None` without one, or for any other frame).
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (OP_CLOSE, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// The reason of a close frame, lossily decoded.
    pub fn close_reason(&self) -> String {
        String::from_utf8_lossy(self.payload.get(2..).unwrap_or_default()).into_owned()
    }

    /// A text or binary frame.
    pub fn is_data(&self) -> bool {
        self.opcode == OP_TEXT || self.opcode == OP_BINARY
    }

    /// RSV1: a compressed message's first frame (RFC 7692).
    pub fn rsv1(&self) -> bool {
        self.rsv & crate::deflate::RSV1_LOW != 0
    }

    /// The payload, lossily decoded: for messages and failure output.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// A short description for failure messages: opcode, flags and payload.
    pub fn describe(&self) -> String {
        match self.opcode {
            OP_CLOSE => format!("<close {:?} {:?}>", self.close_code(), self.close_reason()),
            OP_TEXT | OP_BINARY if self.fin && self.rsv == 0 => self.text(),
            op => format!(
                "<opcode {op}{}{} {:?}>",
                if self.fin { "" } else { " no FIN" },
                if self.rsv != 0 { " RSV" } else { "" },
                self.text()
            ),
        }
    }
}

/// Decodes one frame from the front of `b`: `Some((frame, bytes used))`, `None` while
/// it is incomplete (or its length overflows `usize`).
pub fn parse_frame(b: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    let (payload_len, mut start) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask: Option<[u8; 4]> = if b1 & 0x80 == 0 {
        None
    } else {
        start += 4;
        Some(b.get(start - 4..start)?.try_into().ok()?)
    };
    let end = start.checked_add(usize::try_from(payload_len).ok()?)?;
    let mut payload = b.get(start..end)?.to_vec();
    if let Some(key) = mask {
        for (x, k) in payload.iter_mut().zip(key.iter().cycle()) {
            *x ^= k;
        }
    }
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        masked: mask.is_some(),
        payload,
    };
    Some((frame, end))
}

/// Decodes a whole byte string of frames (a server's output, say): every byte belongs to
/// one complete frame. An error names the byte where the trouble starts.
pub fn decode_frames(mut bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    while !bytes.is_empty() {
        let (frame, used) = parse_frame(bytes).ok_or_else(|| {
            format!(
                "an incomplete frame at byte {at}: {} bytes left",
                bytes.len()
            )
        })?;
        frames.push(frame);
        bytes = bytes.get(used..).unwrap_or_default();
        at += used;
    }
    Ok(frames)
}

/// The permessage-deflate offer Chromium and Firefox send, as a header line for
/// [`upgrade_request`]'s `extra`.
pub const BROWSER_DEFLATE_OFFER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";

/// An upgrade request for `/`: Host, Upgrade, Connection, [`SAMPLE_KEY`], version 13,
/// Origin, then the `extra` header lines ("Name: value") in order.
pub fn upgrade_request(host: &str, origin: &str, extra: &[&str]) -> Vec<u8> {
    let mut s = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Where `needle` first stands in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_at_every_length_encoding() {
        for len in [0, 1, 125, 126, 0xffff, 0x10000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some(MASK)] {
                let bytes = encode_frame(len % 2 == 0, OP_BINARY, &payload, mask);
                let (f, used) = parse_frame(&bytes).expect("a whole frame");
                assert_eq!(used, bytes.len());
                assert_eq!(f.payload, payload);
                assert_eq!((f.fin, f.rsv, f.opcode), (len % 2 == 0, 0, OP_BINARY));
                assert_eq!(f.masked, mask.is_some());
                assert!(parse_frame(&bytes[..bytes.len() - 1]).is_none());
            }
        }
    }

    #[test]
    fn the_rfc_examples() {
        // RFC 6455 5.7: a masked "Hello" from a client, an unmasked one from a server.
        let masked = encode_frame(true, OP_TEXT, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(
            masked,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let (f, _) = parse_frame(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap();
        assert_eq!(f.payload, b"Hello");
        assert_eq!(encode_frame_byte(0xc1, b"", None), [0xc1, 0x00]);
    }

    #[test]
    fn whole_byte_strings_of_frames() {
        let mut bytes = encode_frame(true, OP_TEXT, b"one", None);
        bytes.extend(encode_frame_byte(0xc1, b"two", None));
        bytes.extend(encode_frame(
            true,
            OP_CLOSE,
            &close_payload(1000, "bye"),
            None,
        ));
        let frames = decode_frames(&bytes).unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames[1].rsv1() && !frames[0].rsv1());
        assert_eq!(frames[2].close_code(), Some(1000));
        assert_eq!(frames[2].close_reason(), "bye");
        assert_eq!(frames[0].close_code(), None);
        let e = decode_frames(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.contains("byte 10"), "{e}");
    }
}
