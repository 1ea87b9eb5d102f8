//! Free TCP ports on the loopback interface.
//!
//! A port is free when the kernel hands it out; it may be taken again before the
//! caller binds it, so whoever binds it retries on a clash (as [`crate::inspircd`]
//! does).

use std::net::TcpListener;

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// `N` different free ports on 127.0.0.1 (held all at once while they are chosen).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// A port free on both IPv4 and IPv6 (Linux binds `[::]` dual-stack by default).
pub fn free_port_dual() -> u16 {
    let l = TcpListener::bind("[::]:0").expect("bind [::]:0");
    l.local_addr().unwrap().port()
}
