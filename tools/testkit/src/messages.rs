//! Server frames into messages, as a client must take them (RFC 6455 5.4-5.6, RFC 7692
//! 6): fragments joined, compressed messages (RSV1) inflated within the agreed window,
//! control frames passed on as they are, and anything a client must fail the
//! connection for reported as an error. The one decoder of what a server sends, for
//! the blocking clients, the client pool, the fuzz harness and the unit tests.

use crate::deflate::Inflater;
use crate::ws::{Frame, OP_BINARY, OP_CONT, OP_TEXT};

/// One data message from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// [`OP_TEXT`] or [`OP_BINARY`].
    pub opcode: u8,
    /// Its payload, inflated if it came compressed.
    pub payload: Vec<u8>,
    /// It came compressed (RSV1 on its first frame).
    pub compressed: bool,
    /// Frames it came in (1 unless fragmented).
    pub frames: usize,
    /// Payload bytes on the wire (compressed, if it was).
    pub wire_len: usize,
}

impl Message {
    /// The payload, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// What one frame completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A whole data message.
    Message(Message),
    /// A ping, pong or close frame.
    Control(Frame),
}

/// The client's decoder of one connection's server frames.
#[derive(Default)]
pub struct Decoder {
    /// Present when permessage-deflate was agreed.
    inflater: Option<Inflater>,
    /// A fragmented message so far (payloads as on the wire).
    partial: Option<Message>,
}

impl Decoder {
    /// A decoder for a connection without an extension.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder for a connection that agreed to permessage-deflate.
    pub fn with_inflater(inflater: Inflater) -> Decoder {
        Decoder {
            inflater: Some(inflater),
            partial: None,
        }
    }

    /// permessage-deflate was agreed.
    pub fn deflate(&self) -> bool {
        self.inflater.is_some()
    }

    /// Takes one server frame; `Ok(Some)` when it is a control frame or ends a
    /// message. An error says why a client must fail the connection.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Received>, String> {
        if frame.masked {
            return Err(format!("a masked server frame: {}", frame.describe()));
        }
        let rsv1_allowed = self.deflate() && frame.is_data();
        if frame.rsv & !(if rsv1_allowed { 0b100 } else { 0 }) != 0 {
            return Err(format!(
                "RSV bits {:03b} the connection did not agree to: {}",
                frame.rsv,
                frame.describe()
            ));
        }
        match frame.opcode {
            op if op >= 8 => {
                if op > 0xa {
                    return Err(format!("a reserved control opcode: {}", frame.describe()));
                }
                if !frame.fin || frame.payload.len() > 125 {
                    return Err(format!(
                        "a fragmented or long control frame: {}",
                        frame.describe()
                    ));
                }
                Ok(Some(Received::Control(frame)))
            }
            OP_CONT => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err("a continuation frame outside a message".into());
                };
                partial.payload.extend_from_slice(&frame.payload);
                partial.frames += 1;
                if frame.fin {
                    return self.finish().map(|m| Some(Received::Message(m)));
                }
                Ok(None)
            }
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(format!(
                        "a new message inside a fragmented one: {}",
                        frame.describe()
                    ));
                }
                self.partial = Some(Message {
                    opcode: frame.opcode,
                    compressed: frame.rsv1(),
                    payload: frame.payload,
                    frames: 1,
                    wire_len: 0,
                });
                if frame.fin {
                    return self.finish().map(|m| Some(Received::Message(m)));
                }
                Ok(None)
            }
            op => Err(format!("a reserved data opcode {op}")),
        }
    }

    /// The message in `partial`, inflated if compressed.
    fn finish(&mut self) -> Result<Message, String> {
        let mut m = self
            .partial
            .take()
            .ok_or("no message to finish (a decoder bug)")?;
        m.wire_len = m.payload.len();
        if m.compressed {
            let inflater = self
                .inflater
                .as_mut()
                .ok_or("a compressed message without permessage-deflate")?;
            let mut out = Vec::with_capacity(m.payload.len() * 4 + 64);
            inflater.inflate_message(&m.payload, &mut out)?;
            m.payload = out;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::deflate_message;
    use crate::ws::{decode_frames, encode_frame, encode_frame_byte, OP_CLOSE, OP_PING};

    fn push_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Received>, String> {
        let mut out = Vec::new();
        for f in decode_frames(bytes)? {
            out.extend(d.push(f)?);
        }
        Ok(out)
    }

    #[test]
    fn fragments_controls_and_compressed_messages() {
        let mut bytes = encode_frame(false, OP_TEXT, b"PRIVMSG #a :one ", None);
        bytes.extend(encode_frame(true, OP_PING, b"p", None));
        bytes.extend(encode_frame(true, OP_CONT, b"two", None));
        bytes.extend(encode_frame_byte(0xc1, &deflate_message(b"zipped"), None));
        bytes.extend(encode_frame(true, OP_CLOSE, &1000u16.to_be_bytes(), None));
        let got = push_all(&mut Decoder::with_inflater(Inflater::new()), &bytes).unwrap();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(matches!(&got[0], Received::Control(f) if f.opcode == OP_PING));
        match &got[1] {
            Received::Message(m) => {
                assert_eq!(
                    (m.payload.as_slice(), m.frames),
                    (&b"PRIVMSG #a :one two"[..], 2)
                )
            }
            other => panic!("{other:?}"),
        }
        match &got[2] {
            Received::Message(m) => {
                assert!(m.compressed);
                assert_eq!(m.text(), "zipped");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&got[3], Received::Control(f) if f.close_code() == Some(1000)));
    }

    #[test]
    fn what_a_client_must_refuse() {
        let bad: [Vec<u8>; 7] = [
            encode_frame(true, OP_TEXT, b"masked", Some([1, 2, 3, 4])),
            encode_frame_byte(0xc1, b"x", None),
            encode_frame_byte(0xa1, b"x", None),
            encode_frame(true, OP_CONT, b"x", None),
            [
                encode_frame(false, OP_TEXT, b"a", None),
                encode_frame(true, OP_TEXT, b"b", None),
            ]
            .concat(),
            encode_frame(false, OP_PING, b"x", None),
            encode_frame_byte(0xc9, b"x", None),
        ];
        for b in &bad {
            assert!(push_all(&mut Decoder::new(), b).is_err(), "{b:?}");
        }
        // RSV1 on a control frame, with deflate agreed.
        let ping = encode_frame_byte(0xc9, b"x", None);
        assert!(push_all(&mut Decoder::with_inflater(Inflater::new()), &ping).is_err());
    }
}
