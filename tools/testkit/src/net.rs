//! TCP sockets as the clients need them: connected from a chosen loopback source
//! address (a proxy sees each address as another user), with a capped receive buffer,
//! or closed with a reset.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

/// A blocking connection to 127.0.0.1:`port` from `src`.
pub fn connect_from(src: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    socket
        .bind(&SocketAddrV4::new(src, 0).into())
        .map_err(|e| context(&format!("bind to {src}"), e))?;
    let dst = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    socket
        .connect(&dst.into())
        .map_err(|e| context(&format!("connect from {src} to {dst}"), e))?;
    Ok(socket.into())
}

/// A reset or aborted connection: for a client, the end of the connection like EOF.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Caps a socket's receive buffer (which disables its autotuning), so that a client
/// that stops reading pushes back on the server quickly.
pub fn set_rcvbuf(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    SockRef::from(stream).set_recv_buffer_size(bytes)
}

/// Makes the coming close(2) of `stream` send a reset (RST) instead of a FIN.
pub fn set_linger_zero(stream: &impl std::os::fd::AsFd) -> io::Result<()> {
    SockRef::from(stream).set_linger(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn connects_from_a_chosen_source() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let src = Ipv4Addr::new(127, 0, 0, 9);
        let c = connect_from(src, port).unwrap();
        let (accepted, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(src));
        set_rcvbuf(&c, 4096).unwrap();
        set_linger_zero(&accepted).unwrap();
        drop(l);
        assert!(connect_from(src, port).is_err());
    }
}
