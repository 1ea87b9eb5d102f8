//! What the module has done since it was loaded, for opers (`/STATS`).
//!
//! InspIRCd runs modules on one thread, so plain `Cell`s are enough; the counters are
//! shared by the module and its sessions through an `Rc` held by the bridge.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::handshake::{RejectReason, Subprotocol};
use crate::proxy_protocol::Refusal;
use crate::session::Ending;

/// The `/STATS` letter of [`Counters::report`]: no stock InspIRCd 3 or 4 module uses it.
pub const STATS_LETTER: u8 = b'W';

/// Handshakes accepted, refused and connections closed, by kind.
#[derive(Debug, Default)]
pub struct Counters {
    /// Accepted handshakes by subprotocol (`None`: no subprotocol, defaultmode used).
    accepted: RefCell<BTreeMap<Option<&'static str>, u64>>,
    /// Refused handshakes by reason (in the order the reasons are declared).
    refused: RefCell<BTreeMap<RejectReason, u64>>,
    /// Refused PROXY headers by reason.
    proxy_refused: RefCell<BTreeMap<Refusal, u64>>,
    /// Health checks answered.
    health_checks: Cell<u64>,
    /// Close frames the module sent because the client broke the protocol, by code.
    protocol_closes: RefCell<BTreeMap<u16, u64>>,
    /// Close frames clients sent, by code (`None`: no code).
    client_closes: RefCell<BTreeMap<Option<u16>, u64>>,
    /// Connections closed after a bug in the module (1011).
    internal_errors: Cell<u64>,
    /// Upgrades that negotiated permessage-deflate.
    compressed: Cell<u64>,
    /// Connections upgraded and not yet gone.
    open: Cell<u64>,
    /// Sockets waiting for the client's close frame now ([`crate::linger`]).
    lingering: Cell<u64>,
    /// Sockets that stopped waiting for a close reply at the timeout.
    linger_timeouts: Cell<u64>,
    /// Sockets closed at once because [`crate::linger::MAX_LINGERING_CLOSES`] were
    /// already waiting.
    linger_refusals: Cell<u64>,
}

fn increment(cell: &Cell<u64>) {
    cell.set(cell.get().saturating_add(1));
}

fn bump<K: Ord>(map: &RefCell<BTreeMap<K, u64>>, key: K) {
    *map.borrow_mut().entry(key).or_insert(0) += 1;
}

impl Counters {
    /// A connection completed its handshake.
    pub fn upgraded(&self, subprotocol: Option<Subprotocol>, compressed: bool) {
        bump(&self.accepted, subprotocol.map(Subprotocol::name));
        if compressed {
            increment(&self.compressed);
        }
        self.open.set(self.open.get() + 1);
    }

    /// An upgraded connection is gone.
    pub fn gone(&self) {
        self.open.set(self.open.get().saturating_sub(1));
    }

    /// A connection ended as the core decided.
    pub fn ended(&self, ending: &Ending) {
        match ending {
            Ending::Rejected(reason) => bump(&self.refused, *reason),
            Ending::ProxyRefused(refusal) => bump(&self.proxy_refused, *refusal),
            Ending::HealthChecked { .. } => increment(&self.health_checks),
            Ending::Failed(error) => bump(&self.protocol_closes, error.close_code().code()),
            Ending::ClientClosed { code } => bump(&self.client_closes, *code),
            Ending::InternalError => increment(&self.internal_errors),
        }
    }

    /// Open WebSocket connections.
    pub fn open(&self) -> u64 {
        self.open.get()
    }

    /// Sockets waiting for a close reply.
    pub fn lingering(&self) -> u64 {
        self.lingering.get()
    }

    /// A socket began waiting for its client's close frame.
    pub fn linger_started(&self) {
        increment(&self.lingering);
    }

    /// A socket stopped waiting (whatever the reason).
    pub fn linger_ended(&self) {
        self.lingering.set(self.lingering.get().saturating_sub(1));
    }

    /// A socket's wait reached the timeout.
    pub fn linger_timed_out(&self) {
        increment(&self.linger_timeouts);
    }

    /// A socket closed at once: too many were waiting.
    pub fn linger_refused(&self) {
        increment(&self.linger_refusals);
    }

    /// The `/STATS` lines: one per non-zero counter, then the number of open
    /// connections, each starting "WebSocket ".
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (protocol, count) in self.accepted.borrow().iter() {
            let name = protocol.unwrap_or("none (defaultmode)");
            lines.push(format!("accepted {name}: {count}"));
        }
        if self.compressed.get() > 0 {
            lines.push(format!(
                "accepted with permessage-deflate: {}",
                self.compressed.get()
            ));
        }
        for (reason, count) in self.refused.borrow().iter() {
            lines.push(format!(
                "refused {} ({}): {count}",
                reason.status(),
                reason.text()
            ));
        }
        for (refusal, count) in self.proxy_refused.borrow().iter() {
            lines.push(format!(
                "refused PROXY header ({}): {count}",
                refusal.text()
            ));
        }
        for (code, count) in self.protocol_closes.borrow().iter() {
            lines.push(format!("closed by server with {code}: {count}"));
        }
        for (code, count) in self.client_closes.borrow().iter() {
            match code {
                Some(code) => lines.push(format!("closed by client with {code}: {count}")),
                None => lines.push(format!("closed by client without a code: {count}")),
            }
        }
        let events = [
            ("health checks answered", self.health_checks.get()),
            (
                "closed by server after an internal error",
                self.internal_errors.get(),
            ),
            ("close replies awaited now", self.lingering.get()),
            ("close replies timed out", self.linger_timeouts.get()),
            (
                "close replies not awaited (too many waiting)",
                self.linger_refusals.get(),
            ),
        ];
        for (what, count) in events.into_iter().filter(|(_, count)| *count > 0) {
            lines.push(format!("{what}: {count}"));
        }
        lines.push(format!("open connections: {}", self.open()));
        lines
            .into_iter()
            .map(|line| format!("WebSocket {line}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol_error::ProtocolError;

    #[test]
    fn fresh_counters_report_only_open_connections() {
        assert_eq!(
            Counters::default().report(),
            vec!["WebSocket open connections: 0"]
        );
    }

    #[test]
    fn report_counts_each_kind_of_event() {
        let counters = Counters::default();
        counters.upgraded(Some(Subprotocol::TextIrcv3), true);
        counters.upgraded(Some(Subprotocol::TextIrcv3), false);
        counters.upgraded(None, false);
        counters.gone();
        counters.ended(&Ending::Rejected(RejectReason::OriginNotAllowed));
        counters.ended(&Ending::Failed(ProtocolError::Unmasked));
        counters.ended(&Ending::ClientClosed { code: Some(1000) });
        counters.ended(&Ending::ClientClosed { code: None });
        counters.ended(&Ending::ProxyRefused(Refusal::UntrustedPeer));
        counters.ended(&Ending::HealthChecked {
            from_trusted_proxy: true,
        });
        assert_eq!(
            counters.report(),
            vec![
                "WebSocket accepted none (defaultmode): 1",
                "WebSocket accepted text.ircv3.net: 2",
                "WebSocket accepted with permessage-deflate: 1",
                "WebSocket refused 403 (HTTP request from a non-whitelisted origin): 1",
                "WebSocket refused PROXY header (a PROXY header from a peer outside proxyranges): 1",
                "WebSocket closed by server with 1002: 1",
                "WebSocket closed by client without a code: 1",
                "WebSocket closed by client with 1000: 1",
                "WebSocket health checks answered: 1",
                "WebSocket open connections: 2",
            ]
        );
    }

    #[test]
    fn gone_never_underflows() {
        let counters = Counters::default();
        counters.gone();
        assert_eq!(counters.open(), 0);
    }
}
