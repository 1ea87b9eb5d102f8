//! Trusted reverse proxies and the real client address they report. STUB.
use std::net::IpAddr;

#[derive(Clone, Debug, Default)]
pub struct ProxyRanges {}

/// Why a proxied request is refused (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no X-Real-IP or X-Forwarded-For header")]
    MissingHeader,
    #[error("malformed X-Real-IP or X-Forwarded-For header")]
    MalformedHeader,
}

impl ProxyRanges {
    /// True when no proxy is configured (proxy headers are then not looked at).
    pub fn is_empty(&self) -> bool {
        unimplemented!()
    }
    /// Whether `peer` (the address text InspIRCd shows) is a trusted proxy.
    pub fn trusts(&self, peer: &str) -> bool {
        let _ = peer;
        unimplemented!()
    }
    /// With ranges configured, every client must send a well-formed header (X-Real-IP
    /// preferred, else X-Forwarded-For). `Ok(Some(ip))` when `peer` is trusted: the real
    /// address; `Ok(None)` when it is not (the header is ignored).
    pub fn real_client_ip(
        &self,
        peer: &str,
        x_real_ip: Option<&[u8]>,
        x_forwarded_for: Option<&[u8]>,
    ) -> Result<Option<IpAddr>, ProxyError> {
        let _ = (peer, x_real_ip, x_forwarded_for);
        unimplemented!()
    }
}
