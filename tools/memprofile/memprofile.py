#!/usr/bin/env python3
"""Where an idle connection's memory goes, by allocation site, for this module, the
stock one and plain TCP clients, in the same InspIRCd binary.

For each kind the server runs under valgrind's massif. A detailed heap snapshot is
taken with no clients, then again with N registered, idle clients; the difference at
each top-level allocation site, divided by N, is that site's cost per connection.
RSS-based figures (tools/loadbench) include allocator slack; this says who allocated.

Usage: memprofile.py [--module PATH] [--connections N] [--inspircd PATH]
                     [--stock-dir DIR] [--kinds ours,stock,plain]

Build the module unstripped for readable names (`make memprofile` does). Needs valgrind
(massif, vgdb). Servers bind 127.0.0.1 on free ports and are stopped by their PID.
"""

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# How long a server under valgrind may take to start, and clients to register.
START_TIMEOUT_S = 60
REGISTER_TIMEOUT_S = 120
# A site whose per-connection cost rounds below this is left out of the table.
MIN_BYTES_PER_CONNECTION = 1.0
# Clients opened and closed before the first snapshot, so that one-time costs (caches
# filled on first use, such as the origin matcher's) are not counted per connection.
WARM_UP_CONNECTIONS = 20
# Origin the WebSocket clients send (allowed by the configuration below).
ORIGIN = "https://chat.example.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(kind, directory, port, module, stock_dir):
    modules = os.path.join(directory, "modules")
    os.makedirs(modules)
    for name in os.listdir(stock_dir):
        if name != "m_websocket.so":
            os.symlink(os.path.join(stock_dir, name), os.path.join(modules, name))
    websocket = module if kind == "ours" else os.path.join(stock_dir, "m_websocket.so")
    os.symlink(websocket, os.path.join(modules, "m_websocket.so"))
    hook = "" if kind == "plain" else ' hook="websocket"'
    conf = f"""<path configdir="{directory}" datadir="{directory}" logdir="{directory}" moduledir="{modules}" runtimedir="{directory}">
<server name="mem.local" description="memprofile" network="Mem">
<admin name="Admin" nick="admin" email="admin@mem.local">
<pid file="{directory}/inspircd.pid">
<bind address="127.0.0.1" port="{port}" type="clients"{hook}>
<connect name="main" allow="*" resolvehostnames="no" useident="no" timeout="120" pingfreq="600"
         threshold="1000000" commandrate="1000000000" fakelag="no" localmax="100000" globalmax="100000" limit="100000">
<performance somaxconn="1024">
"""
    if kind == "stock":
        conf += '<module name="sha1">\n'
    if kind != "plain":
        conf += f'<module name="websocket">\n<wsorigin allow="{ORIGIN}">\n'
    path = os.path.join(directory, "inspircd.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def ws_frame(payload):
    """A masked client text frame (payload under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def open_clients(port, count, websocket, nick_prefix):
    """Opens and registers `count` clients; returns their sockets."""
    clients = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        nick, user = f"{nick_prefix}{i}".encode(), b"u 0 * :memprofile"
        if websocket:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(
                (
                    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\n"
                    "Sec-WebSocket-Version: 13\r\nOrigin: " + ORIGIN + "\r\n\r\n"
                ).encode()
            )
            s.sendall(ws_frame(b"NICK " + nick) + ws_frame(b"USER " + user))
        else:
            s.sendall(b"NICK " + nick + b"\r\nUSER " + user + b"\r\n")
        clients.append(s)
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    for s in clients:
        s.settimeout(max(1.0, deadline - time.monotonic()))
        seen = b""
        # The end of the MOTD (376) or its absence (422) ends registration.
        while b" 376 " not in seen and b" 422 " not in seen:
            data = s.recv(65536)
            if not data:
                raise RuntimeError("a client was disconnected while registering")
            seen = seen[-64:] + data
    return clients


# A node of a massif detailed snapshot: "<depth spaces>n<children>: <bytes> <addr>: <frame>".
NODE = re.compile(r"^( *)n(\d+): (\d+) (?:0x[0-9A-Fa-f]+: )?(.*)$")
# Frames that say nothing about who wanted the memory (allocators, string growth):
# such a node is attributed through its callers.
GENERIC_FRAME = re.compile(r"libstdc\+\+\.so|libc\.so|rtld-malloc|alloc\.rs|raw_vec|\(heap allocation")
# Call frames followed below a generic frame.
MAX_DEPTH = 8


def parse_snapshot(path):
    """Returns {site: bytes}: each allocation's first caller that is not generic.

    The tree lists callees before callers (depth 0 is massif's root). A node whose
    callees are all generic is a site unless it is generic itself; a generic node is
    one only where the tree stops (no children, or the depth limit)."""
    sites = {}
    # all_generic[d]: the frames at depths 1..d of the current branch are all generic.
    all_generic = [True]
    with open(path) as f:
        for line in f:
            m = NODE.match(line)
            if not m:
                continue
            depth, children, size = len(m.group(1)), int(m.group(2)), int(m.group(3))
            if depth == 0:
                continue
            frame = re.sub(r"\s+", " ", m.group(4))
            generic = bool(GENERIC_FRAME.search(frame))
            callees_generic = all_generic[depth - 1]
            del all_generic[depth:]
            all_generic.append(callees_generic and generic)
            ends_here = children == 0 or depth >= MAX_DEPTH
            if callees_generic and (not generic or ends_here):
                sites[frame] = sites.get(frame, 0) + size
    return sites


def snapshot(pid, path):
    """Asks massif (through vgdb) for a detailed snapshot; returns {site: bytes}."""
    subprocess.run(["vgdb", f"--pid={pid}", "detailed_snapshot", path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return parse_snapshot(path)


def wait_for(path, text, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited; see {path}")
        try:
            with open(path) as f:
                if text in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {text!r} in {path}")


def profile(kind, args):
    """Per-connection bytes by allocation site for one kind."""
    directory = tempfile.mkdtemp(prefix=f"memprofile-{kind}-")
    port = free_port()
    conf = write_config(kind, directory, port, args.module, args.stock_dir)
    out_path = os.path.join(directory, "stdout.txt")
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            ["valgrind", "--tool=massif", "--threshold=0.0", f"--depth={MAX_DEPTH}",
             f"--massif-out-file={directory}/massif.out",
             args.inspircd, "--nofork", "--runasroot", f"--config={conf}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=directory)
    try:
        wait_for(out_path, "InspIRCd is now running", proc, START_TIMEOUT_S)
        for s in open_clients(port, WARM_UP_CONNECTIONS, kind != "plain", "w"):
            s.close()
        time.sleep(1.0)
        before = snapshot(proc.pid, os.path.join(directory, "before.txt"))
        clients = open_clients(port, args.connections, kind != "plain", "m")
        time.sleep(1.0)
        after = snapshot(proc.pid, os.path.join(directory, "after.txt"))
        for s in clients:
            s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
    per_connection = {}
    for site in set(before) | set(after):
        delta = (after.get(site, 0) - before.get(site, 0)) / args.connections
        if abs(delta) >= MIN_BYTES_PER_CONNECTION:
            per_connection[site] = delta
    return per_connection


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", default="target/m_websocket-symbols.so")
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--inspircd", default="/usr/sbin/inspircd")
    parser.add_argument("--stock-dir", default="/usr/lib/inspircd/modules")
    parser.add_argument("--kinds", default="ours,stock,plain")
    args = parser.parse_args()
    args.module = os.path.abspath(args.module)

    totals = {}
    for kind in args.kinds.split(","):
        sites = profile(kind, args)
        totals[kind] = sum(sites.values())
        print(f"\n{kind}: heap bytes per idle registered connection, by allocation site "
              f"({args.connections} connections)")
        for site, delta in sorted(sites.items(), key=lambda item: -item[1]):
            print(f"  {delta:8.1f}  {site[:150]}")
        print(f"  {totals[kind]:8.1f}  total")
    if "plain" in totals:
        print("\nadded over plain TCP per connection (requested bytes, before malloc's "
              "own 8-16 bytes per block):")
        for kind in totals:
            if kind != "plain":
                print(f"  {kind:6} {totals[kind] - totals['plain']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
