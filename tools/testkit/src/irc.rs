//! IRC lines as a client reads them.

/// Takes the first whole line off the front of `buf`, without its LF or CR LF; `None`
/// until a line is complete.
pub fn take_line(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let pos = buf.iter().position(|&b| b == b'\n')?;
    let mut line: Vec<u8> = buf.drain(..=pos).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(line)
}

/// The command or numeric of a server line (`:prefix CMD ...` or `CMD ...`).
pub fn command(line: &[u8]) -> &[u8] {
    let mut it = line.split(|&b| b == b' ');
    let first = it.next().unwrap_or_default();
    if first.starts_with(b":") {
        it.next().unwrap_or_default()
    } else {
        first
    }
}

/// A server numeric: `:server NNN ...` with `num` as its command.
pub fn is_numeric(line: &[u8], num: &str) -> bool {
    line.starts_with(b":") && command(line) == num.as_bytes()
}

/// The command of a line as text (lossily decoded).
pub fn command_str(line: &str) -> &str {
    let mut it = line.split(' ');
    let first = it.next().unwrap_or_default();
    if first.starts_with(':') {
        it.next().unwrap_or_default()
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_commands() {
        let mut buf = b":irc.example 001 nick :Welcome\r\nPING :x\npartial".to_vec();
        let first = take_line(&mut buf).unwrap();
        assert_eq!(first, b":irc.example 001 nick :Welcome");
        assert_eq!(command(&first), b"001");
        assert_eq!(command(&take_line(&mut buf).unwrap()), b"PING");
        assert_eq!(take_line(&mut buf), None);
        assert_eq!(buf, b"partial");
        assert!(is_numeric(&first, "001"));
        assert!(!is_numeric(b"001 x", "001"));
        assert_eq!(command_str(":a PONG a :t"), "PONG");
    }
}
