//! HTTP as a WebSocket client sees it: the response to an upgrade request (or to any
//! request a test sends by hand), and requests built from explicit lines.

use crate::deflate::{Agreement, EXTENSION};
use crate::ws::{find, SAMPLE_ACCEPT};

/// An HTTP response: status line, headers in order, the body read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server closed the connection (EOF or reset) after the response.
    pub closed: bool,
}

impl HttpResponse {
    /// Parses a response head (status line and header lines, without the blank line).
    pub fn parse_head(head: &[u8]) -> Result<HttpResponse, String> {
        let text = std::str::from_utf8(head)
            .map_err(|_| format!("a response head that is not ASCII: {head:?}"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_string();
        let mut parts = status_line.splitn(3, ' ');
        if parts.next() != Some("HTTP/1.1") {
            return Err(format!("not an HTTP/1.1 status line: {status_line:?}"));
        }
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .ok_or_else(|| format!("bad header line {l:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpResponse {
            status,
            status_line,
            headers,
            body: Vec::new(),
            closed: false,
        })
    }

    /// Takes a complete head off the front of `buf`: `Ok(None)` until its blank line
    /// has arrived.
    pub fn take_head(buf: &mut Vec<u8>) -> Result<Option<HttpResponse>, String> {
        let Some(end) = find(buf, b"\r\n\r\n") else {
            return Ok(None);
        };
        let r = HttpResponse::parse_head(buf.get(..end).unwrap_or_default());
        buf.drain(..end + 4);
        r.map(Some)
    }

    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many headers have this name.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    /// The body, lossily decoded.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Ok(())` for a 101 whose `Sec-WebSocket-Accept` answers
    /// [`crate::ws::SAMPLE_KEY`] (every request of the kit sends it).
    pub fn check_101(&self) -> Result<(), String> {
        if self.status != 101 {
            return Err(format!("handshake refused: {:?}", self.status_line));
        }
        if self.header("Sec-WebSocket-Accept") != Some(SAMPLE_ACCEPT) {
            return Err(format!(
                "101 without the right Sec-WebSocket-Accept: {self:?}"
            ));
        }
        Ok(())
    }

    /// The permessage-deflate answer of a 101, if it has one.
    pub fn deflate(&self) -> Result<Option<Agreement>, String> {
        match self.header("Sec-WebSocket-Extensions") {
            Some(v) if v.trim_start().to_ascii_lowercase().starts_with(EXTENSION) => {
                Agreement::parse(v).map(Some)
            }
            Some(v) => Err(format!("an extension the client did not offer: {v:?}")),
            None => Ok(None),
        }
    }
}

/// A request from its request line and header lines ("Name: value"), nothing added.
pub fn request(request_line: &str, headers: &[&str]) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let mut buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\nrest"
            .to_vec();
        let r = HttpResponse::take_head(&mut buf).unwrap().unwrap();
        assert_eq!(buf, b"rest");
        assert_eq!(r.status, 101);
        assert_eq!(r.header("upgrade"), Some("websocket"));
        r.check_101().unwrap();
        assert!(r.deflate().unwrap().unwrap().client_no_context_takeover);
        let mut partial = b"HTTP/1.1 403 Forbidden\r\n".to_vec();
        assert_eq!(HttpResponse::take_head(&mut partial), Ok(None));
        let mut bad = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        assert!(HttpResponse::take_head(&mut bad).is_err());
        assert_eq!(
            request("GET / HTTP/1.1", &["Host: x"]),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
    }
}
