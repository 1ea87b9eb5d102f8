//! TCP sockets as the clients need them: connected from a chosen loopback source
//! address (each address has its own ~28,000 ephemeral ports towards one server port,
//! so many addresses give many connections, and a proxy sees each as another user),
//! blocking or not, with a capped receive buffer, or closed with a reset.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

/// `count` loopback source addresses, 127.0.0.1 and up.
pub fn loopback_sources(count: u8) -> Vec<Ipv4Addr> {
    (1..=count.max(1))
        .map(|i| Ipv4Addr::new(127, 0, 0, i))
        .collect()
}

/// A socket bound to `src` (port chosen at connect time), or unbound for `None`.
fn socket_from(src: Option<Ipv4Addr>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if let Some(src) = src {
        // Take the source port at connect time, not at bind time: then a port is only
        // unique per destination, and one address serves ~28,000 connections to one
        // server port. By hand: socket2 has no setter for this option.
        let on: libc::c_int = 1;
        // SAFETY: setsockopt(2) on the socket `socket` owns, with a c_int and its size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        socket
            .bind(&SocketAddrV4::new(src, 0).into())
            .map_err(|e| io::Error::new(e.kind(), format!("bind to {src}: {e}")))?;
    }
    Ok(socket)
}

fn connect_error(src: Option<Ipv4Addr>, dst: SocketAddrV4, e: &io::Error) -> io::Error {
    let from = src.map(|s| format!("from {s} ")).unwrap_or_default();
    io::Error::new(e.kind(), format!("connect {from}to {dst}: {e}"))
}

/// A blocking connection to 127.0.0.1:`port` from `src`.
pub fn connect_from(src: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    let socket = socket_from(Some(src))?;
    let dst = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    (socket.connect(&dst.into())).map_err(|e| connect_error(Some(src), dst, &e))?;
    Ok(socket.into())
}

/// A non-blocking connection to `dst` from `src` (`None`: the kernel's choice), Nagle
/// off, whose connect may still be in progress: it has ended once the socket is
/// writable, and `take_error` says how.
pub fn start_connect(src: Option<Ipv4Addr>, dst: SocketAddrV4) -> io::Result<TcpStream> {
    let socket = socket_from(src)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&dst.into()) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => Err(connect_error(src, dst, &e)),
        _ => Ok(socket.into()),
    }
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
