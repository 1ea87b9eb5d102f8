//! Reading an open connection's frames: headers, unmasking, message assembly across
//! fragments, UTF-8 checks, the limits, and the replies the protocol obliges (pong, the
//! close echo, the close frame of a failure).
//!
//! [`FrameReader::read_frames`] takes every byte the caller has not yet seen consumed,
//! unmasks payloads in place, hands data to a [`MessageSink`] as it arrives, and keeps
//! a frame cut off by the end of the input for the next call, so the result does not
//! depend on how the bytes were split.

use std::rc::Rc;

use crate::compression::{InflateStop, PooledInflater, Spares};
use crate::config::Limits;
use crate::frame::{
    apply_mask, parse_close_payload, write_close_frame, write_frame, FrameHeader, OpCode,
    Utf8Validator, RSV1,
};
use crate::irc::line_scan::scan_line;
use crate::protocol_error::ProtocolError;
use crate::sink::ByteSink;

/// Where data messages go, as their payload arrives.
///
/// For each complete message the sink sees one [`MessageSink::begin`], zero or more
/// [`MessageSink::payload`] calls with the unmasked bytes in order (exactly as sent: CR,
/// LF and empty messages included; fragment boundaries are not kept), then one
/// [`MessageSink::end`]. A text message's bytes have passed the UTF-8 check so far (fail
/// fast), but the message may still fail later (UTF-8 cut off at its end, a limit): then
/// `end` is never called and the read ends with a [`ProtocolError`], so a sink that
/// buffers simply drops what it has. Output written to `out` by the same call (pongs,
/// close frames) is written at the point the frame is read, so a sink that replies
/// through the buffer behind `out` keeps the order of events.
pub trait MessageSink {
    /// A message of type `opcode` ([`OpCode::Text`] or [`OpCode::Binary`]) begins.
    fn begin(&mut self, opcode: OpCode);
    /// Unmasked payload bytes of the message in progress.
    fn payload(&mut self, bytes: &[u8]);
    /// [`MessageSink::payload`] of bytes known to hold no CR and no LF, for a sink
    /// that would look for them.
    fn payload_without_newlines(&mut self, bytes: &[u8]) {
        self.payload(bytes);
    }
    /// The message is complete (and, if text, valid UTF-8).
    fn end(&mut self);

    /// `frame_bytes` bytes of frames are about to be read: their messages may take
    /// up to that much room.
    fn expect(&mut self, _frame_bytes: usize) {}
}

/// RSV bits a client may set without permessage-deflate: none.
const NO_EXTENSION_RSV: u8 = 0;

/// How far a compressed message's own length may pass `maxmessage`: deflate data that
/// does not shrink grows by a few bytes per block. Beyond it the message could not
/// inflate to within the limit (and bytes that inflate to nothing are bounded too).
fn compressed_limit(max_message_bytes: u64) -> u64 {
    max_message_bytes
        .saturating_add(max_message_bytes / 64)
        .saturating_add(64)
}

/// The reading state of an open connection.
#[derive(Debug)]
pub(super) struct FrameReader {
    /// The frame whose payload is arriving, if any.
    frame: Option<IncomingFrame>,
    /// The data message being assembled (across fragments), if any.
    message: Option<IncomingMessage>,
    /// Payload of the control frame being received (at most
    /// [`crate::frame::MAX_CONTROL_PAYLOAD`] bytes). Allocated on the first control
    /// frame: most idle connections never see one.
    control: Vec<u8>,
    pings: PingBudget,
    /// permessage-deflate was negotiated: a message's first frame may set RSV1, and
    /// its inflater comes from these spares.
    inflaters: Option<Rc<Spares>>,
}

#[derive(Debug)]
struct IncomingFrame {
    /// The header, with the masking key.
    header: FrameHeader,
    /// Payload bytes received so far (the masking offset).
    received: u64,
}

impl IncomingFrame {
    fn remaining(&self) -> u64 {
        self.header.payload_len - self.received
    }
}

#[derive(Debug)]
struct IncomingMessage {
    /// Text messages are validated as UTF-8.
    utf8: Option<Utf8Validator>,
    /// Payload bytes so far, against `maxmessage`.
    len: u64,
    /// Frames so far, against `maxfragments`.
    fragments: usize,
    /// A compressed message: its inflater, and its compressed length so far (`len`
    /// counts the inflated bytes).
    inflater: Option<PooledInflater>,
    compressed_len: u64,
}

/// A token bucket for client pings: `ping_burst` pings at once, one more every
/// `ping_refill_ms`. A client pinging once a second is never limited with the defaults;
/// the stock module kills any client that pings twice within 10 seconds.
#[derive(Debug)]
struct PingBudget {
    tokens: u32,
    refilled_at_ms: u64,
}

impl PingBudget {
    fn new(limits: &Limits, now_ms: u64) -> PingBudget {
        PingBudget {
            tokens: limits.ping_burst,
            refilled_at_ms: now_ms,
        }
    }

    fn take(&mut self, limits: &Limits, now_ms: u64) -> bool {
        let period = limits.ping_refill_ms.max(1);
        let earned = now_ms.saturating_sub(self.refilled_at_ms) / period;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(limits.ping_burst);
            self.refilled_at_ms = now_ms;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// How a read ended the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// The client broke the protocol; the close frame has been written.
    Failed(ProtocolError),
    /// The client sent a close frame (with this code, if any); the echo has been
    /// written.
    ClientClosed(Option<u16>),
}

/// What [`FrameReader::read_frames`] did.
#[derive(Debug, Default)]
pub(super) struct FramesRead {
    /// Bytes used; without an end, a frame cut off at the end of the input is kept
    /// and its bytes are counted.
    pub consumed: usize,
    /// Complete data messages delivered.
    pub messages: usize,
    /// Something was written to the client (a pong).
    pub replied: bool,
    pub end: Option<ReadEnd>,
}

/// The outcome of a completed frame.
enum FrameDone {
    Continue,
    /// A message was completed.
    Message,
    /// A pong was written.
    Replied,
    /// The client closed; the echo has been written.
    ClientClosed(Option<u16>),
}

impl FrameReader {
    /// `inflaters` when permessage-deflate was negotiated.
    pub(super) fn new(limits: &Limits, now_ms: u64, inflaters: Option<Rc<Spares>>) -> FrameReader {
        FrameReader {
            frame: None,
            message: None,
            control: Vec::new(),
            pings: PingBudget::new(limits, now_ms),
            inflaters,
        }
    }

    /// Reads the frames in `input`, unmasking payloads in place; see the module docs.
    /// On a protocol error the close frame for it is written to `out`.
    pub(super) fn read_frames(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
    ) -> FramesRead {
        let mut read = FramesRead::default();
        if let Err(error) = self.read_loop(input, limits, now_ms, messages, out, &mut read) {
            write_close_frame(error.close_code().code(), &error.to_string(), out);
            read.end = Some(ReadEnd::Failed(error));
        }
        read
    }

    fn read_loop(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
        read: &mut FramesRead,
    ) -> Result<(), ProtocolError> {
        loop {
            let mut frame = match self.frame.take() {
                Some(frame) => frame,
                None => {
                    // `consumed` counts bytes of `input`: never past its end.
                    let (_, available) = input.split_at(read.consumed);
                    let allowed_rsv = if self.inflaters.is_some() {
                        RSV1
                    } else {
                        NO_EXTENSION_RSV
                    };
                    let Some((header, header_len)) =
                        FrameHeader::parse(available, true, allowed_rsv)?
                    else {
                        return Ok(());
                    };
                    read.consumed += header_len;
                    self.begin_frame(&header, limits, messages)?;
                    IncomingFrame {
                        header,
                        received: 0,
                    }
                }
            };
            let (_, available) = input.split_at_mut(read.consumed);
            let take = usize::try_from(frame.remaining())
                .unwrap_or(usize::MAX)
                .min(available.len());
            let (chunk, _) = available.split_at_mut(take);
            let Some(mask) = frame.header.mask else {
                unreachable!("FrameHeader::parse refuses a client frame without a mask");
            };
            let offset = (frame.received % 4) as usize;
            apply_mask(chunk, mask, offset);
            self.take_payload(&frame.header, chunk, limits, messages)?;
            read.consumed += take;
            frame.received += take as u64;
            if frame.remaining() > 0 {
                self.frame = Some(frame);
                return Ok(());
            }
            match self.end_frame(&frame.header, limits, now_ms, messages, out)? {
                FrameDone::Continue => {}
                FrameDone::Message => read.messages += 1,
                FrameDone::Replied => read.replied = true,
                FrameDone::ClientClosed(code) => {
                    read.end = Some(ReadEnd::ClientClosed(code));
                    return Ok(());
                }
            }
        }
    }

    /// Checks a new frame against the message in progress and the limits, before any
    /// of its payload is looked at.
    fn begin_frame(
        &mut self,
        header: &FrameHeader,
        limits: &Limits,
        messages: &mut impl MessageSink,
    ) -> Result<(), ProtocolError> {
        let compressed = header.rsv & RSV1 != 0;
        match header.opcode {
            _ if compressed && !header.opcode.is_data_start() => {
                return Err(ProtocolError::MisplacedCompressionBit)
            }
            OpCode::Ping | OpCode::Pong | OpCode::Close => {
                self.control.clear();
                return Ok(());
            }
            OpCode::Continuation if self.message.is_none() => {
                return Err(ProtocolError::NothingToContinue)
            }
            OpCode::Continuation => {}
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(ProtocolError::MessageUnfinished);
                }
                let inflater = match (compressed, &self.inflaters) {
                    (false, _) => None,
                    (true, Some(spares)) => {
                        Some(PooledInflater::take(spares).ok_or(ProtocolError::NoInflateMemory)?)
                    }
                    (true, None) => {
                        unreachable!("RSV1 is refused from the header unless deflate was agreed")
                    }
                };
                self.message = Some(IncomingMessage {
                    utf8: (header.opcode == OpCode::Text).then(Utf8Validator::default),
                    len: 0,
                    fragments: 0,
                    inflater,
                    compressed_len: 0,
                });
                messages.begin(header.opcode);
            }
        }
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        message.fragments += 1;
        if message.fragments as u64 > limits.max_fragments {
            return Err(ProtocolError::TooManyFragments);
        }
        // What arrives is bounded before any of it is read; a compressed message's
        // inflated length is checked as it inflates.
        if message.inflater.is_some() {
            message.compressed_len = message.compressed_len.saturating_add(header.payload_len);
            if message.compressed_len > compressed_limit(limits.max_message_bytes) {
                return Err(ProtocolError::MessageTooBig);
            }
        } else {
            message.len = message.len.saturating_add(header.payload_len);
            if message.len > limits.max_message_bytes {
                return Err(ProtocolError::MessageTooBig);
            }
        }
        Ok(())
    }

    /// Handles unmasked payload bytes as they arrive.
    fn take_payload(
        &mut self,
        header: &FrameHeader,
        chunk: &[u8],
        limits: &Limits,
        messages: &mut impl MessageSink,
    ) -> Result<(), ProtocolError> {
        if header.opcode.is_control() {
            self.control.extend_from_slice(chunk);
            return Ok(());
        }
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        let IncomingMessage {
            utf8,
            inflater,
            len,
            ..
        } = message;
        match inflater {
            Some(inflater) => inflater
                .inflate(chunk, |piece| {
                    take_inflated(piece, len, utf8, limits, messages)
                })
                .map_err(inflate_error),
            None => {
                // One pass says what the bytes need: ASCII needs no UTF-8 check (unless
                // it follows a sequence cut off by the previous piece, which the
                // validator then rejects), and bytes without CR or LF no search.
                let scan = scan_line(chunk);
                if let Some(utf8) = utf8.as_mut() {
                    if !scan.ascii || utf8.is_incomplete() {
                        utf8.feed(chunk)?;
                    }
                }
                if scan.cr_or_lf {
                    messages.payload(chunk);
                } else {
                    messages.payload_without_newlines(chunk);
                }
                Ok(())
            }
        }
    }

    /// Acts on a frame whose payload is complete.
    fn end_frame(
        &mut self,
        header: &FrameHeader,
        limits: &Limits,
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
    ) -> Result<FrameDone, ProtocolError> {
        match header.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !header.fin {
                    return Ok(FrameDone::Continue);
                }
                let Some(mut message) = self.message.take() else {
                    return Ok(FrameDone::Continue);
                };
                let IncomingMessage {
                    utf8,
                    len,
                    inflater,
                    ..
                } = &mut message;
                if let Some(inflater) = inflater.as_mut() {
                    inflater
                        .finish(|piece| take_inflated(piece, len, utf8, limits, messages))
                        .map_err(inflate_error)?;
                }
                if let Some(mut utf8) = message.utf8 {
                    utf8.finish()?;
                }
                messages.end();
                Ok(FrameDone::Message)
            }
            OpCode::Ping => {
                if !self.pings.take(limits, now_ms) {
                    return Err(ProtocolError::PingFlood);
                }
                write_frame(OpCode::Pong, &self.control, out);
                Ok(FrameDone::Replied)
            }
            OpCode::Pong => Ok(FrameDone::Continue),
            OpCode::Close => match parse_close_payload(&self.control)? {
                Some((code, _reason)) => {
                    write_close_frame(code, "", out);
                    Ok(FrameDone::ClientClosed(Some(code)))
                }
                None => {
                    write_frame(OpCode::Close, &[], out);
                    Ok(FrameDone::ClientClosed(None))
                }
            },
        }
    }
}

/// A piece of an inflated message: counted against `maxmessage`, checked as UTF-8 for
/// text, handed to the sink.
fn take_inflated(
    piece: &[u8],
    len: &mut u64,
    utf8: &mut Option<Utf8Validator>,
    limits: &Limits,
    messages: &mut impl MessageSink,
) -> Result<(), ProtocolError> {
    *len = len.saturating_add(piece.len() as u64);
    if *len > limits.max_message_bytes {
        return Err(ProtocolError::MessageTooBig);
    }
    if let Some(utf8) = utf8.as_mut() {
        utf8.feed(piece)?;
    }
    messages.payload(piece);
    Ok(())
}

fn inflate_error(stop: InflateStop<ProtocolError>) -> ProtocolError {
    match stop {
        InflateStop::Corrupt => ProtocolError::BadCompressedData,
        InflateStop::Refused(error) => error,
    }
}
