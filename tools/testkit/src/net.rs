//! TCP sockets as the clients need them: connected from a chosen loopback source
//! address (each address has its own ~28,000 ephemeral ports, so many addresses give
//! many connections, and a proxy sees each as another user), blocking or not, with a
//! capped receive buffer, or closed with a reset.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sets an integer socket option.
fn set_int_option(stream: &TcpStream, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: setsockopt on a socket `stream` owns, with a pointer to a c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP connection to `dst` from `src` (`None`: the kernel's choice), non-blocking
/// when `nonblocking` (then the connect may still be in progress: wait for the socket
/// to become writable and read `take_error`). Nagle is off.
pub fn connect(
    src: Option<Ipv4Addr>,
    dst: SocketAddrV4,
    nonblocking: bool,
) -> io::Result<TcpStream> {
    let flags =
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket(2); on success the descriptor is owned by `stream` at once, which
    // closes it on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, flags, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    if let Some(src) = src {
        // Take the source port at connect time, not at bind time: then ports are only
        // unique per destination, and one address serves many connections.
        set_int_option(&stream, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
        let local = sockaddr_in(SocketAddrV4::new(src, 0));
        // SAFETY: bind(2) with a valid sockaddr_in and its size.
        let r = unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("bind to {src}: {e}")));
        }
    }
    let remote = sockaddr_in(dst);
    // SAFETY: connect(2) with a valid sockaddr_in and its size.
    let r = unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if !(nonblocking && e.raw_os_error() == Some(libc::EINPROGRESS)) {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "connect {}to {dst}: {e}",
                    src.map(|s| format!("from {s} ")).unwrap_or_default()
                ),
            ));
        }
    }
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A blocking connection to 127.0.0.1:`port` from `src`, checked to have that source.
pub fn connect_from(src: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    let stream = connect(
        Some(src),
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        false,
    )?;
    let local = stream.local_addr()?;
    if local.ip() != std::net::IpAddr::V4(src) {
        return Err(io::Error::other(format!(
            "bound to {src} but connected from {local}"
        )));
    }
    Ok(stream)
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
pub fn set_rcvbuf(stream: &TcpStream, bytes: i32) -> io::Result<()> {
    set_int_option(stream, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)
}

/// Makes the coming close(2) of `stream` send a reset (RST) instead of a FIN:
/// SO_LINGER on with a timeout of 0.
pub fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid linger struct and its size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
        let nb = connect(None, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), true).unwrap();
        drop(nb);
        assert!(connect_from(src, free_closed_port()).is_err());
    }

    fn free_closed_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
