#!/usr/bin/env python3
"""A real WebSocket client for make package-test: upgrades to WebSocket on
127.0.0.1:PORT (text.ircv3.net), registers with NICK/USER, waits for 001, then sends
QUIT and expects the server's close frame (1000), which the stock module never sends:
so a pass also says the module that answered is this one. Raw sockets, the standard
library only. Exit 0 on success, 1 with a reason otherwise."""

import base64
import hashlib
import os
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def fail(message):
    print(f"ws_register: {message}", file=sys.stderr)
    sys.exit(1)


def frame(opcode, payload):
    """A masked client frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail(f"connection closed by the server (buffered: {self.buf!r})")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail(f"connection closed before {marker!r} (got {self.buf!r})")
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def frame(self):
        b0, b1 = self.need(2)
        if b1 & 0x80:
            fail("the server sent a masked frame")
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.need(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.need(8))
        return b0 & 0x0F, self.need(n)


def main():
    port = int(sys.argv[1])
    nick = sys.argv[2] if len(sys.argv) > 2 else "pkgtest"
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: http://package-test.example\r\nSec-WebSocket-Protocol: text.ircv3.net\r\n\r\n"
    )
    reader = Reader(sock)
    response = reader.until(b"\r\n\r\n").decode("latin-1")
    status = response.split("\r\n", 1)[0]
    if not status.startswith("HTTP/1.1 101"):
        fail(f"no upgrade: {response!r}")
    headers = {
        k.strip().lower(): v.strip()
        for k, v in (line.split(":", 1) for line in response.split("\r\n")[1:] if ":" in line)
    }
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        fail(f"Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}, expected {accept!r}")
    print(f"handshake: {status}, subprotocol {headers.get('sec-websocket-protocol')}")

    sock.sendall(frame(1, f"NICK {nick}".encode()))
    sock.sendall(frame(1, f"USER {nick} 0 * :make package-test".encode()))
    deadline = time.monotonic() + 20
    while True:
        if time.monotonic() > deadline:
            fail("no 001 within 20 s")
        opcode, payload = reader.frame()
        if opcode == 9:
            sock.sendall(frame(10, payload))
            continue
        if opcode == 8:
            fail(f"close frame before 001: {payload!r}")
        for line in payload.decode("utf-8", "replace").split("\r\n"):
            if line.startswith("PING "):
                sock.sendall(frame(1, ("PONG " + line[5:]).encode()))
            parts = line.split(" ")
            if len(parts) > 1 and parts[1] == "001":
                print(f"registered: {line}")
                break
        else:
            continue
        break

    sock.sendall(frame(1, b"QUIT :package test done"))
    while True:
        opcode, payload = reader.frame()
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if code != 1000:
                fail(f"close frame with {code}, expected 1000 ({payload!r})")
            print(f"close frame after QUIT: {code} {payload[2:].decode('utf-8', 'replace')!r}")
            sock.sendall(frame(8, payload[:2]))
            break
    sock.close()


if __name__ == "__main__":
    main()
