"""The link pieces on their own: the packet proxy drops and counts, the loopback fallback delays,
paces and cuts, and nothing (namespace, interface) outlives a run, even a failed one."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from bench.lossylink import LinkParams, lossy_links
from bench.netlink import PREFIX, namespaces_unavailable
from bench.streamproxy import StreamProxy


def leftovers() -> tuple[str, str]:
    """Namespaces and interfaces of this process's links that still exist."""
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    spaces_of_mine, links_of_mine = f"{PREFIX}{os.getpid()}-", f": {PREFIX}{os.getpid() % 100000:05d}"
    return ("\n".join(line for line in spaces.splitlines() if line.startswith(spaces_of_mine)),
            "\n".join(line for line in links.splitlines() if links_of_mine in line))


# Inside the namespace: 40 datagrams to the server's echo, 20 ms apart; print the answers and the fastest.
ECHO_CLIENT = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(1.5)
sent = {}
for i in range(40):
    sent[i] = time.monotonic()
    sock.sendto(str(i).encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.02)
answers = {}
try:
    while True:
        data = sock.recv(100)
        answers[int(data)] = time.monotonic() - sent[int(data)]
except TimeoutError:
    pass
print(len(answers), min(answers.values()))
"""


def test_namespace_link_drops_delays_counts_and_cleans_up() -> None:
    assert namespaces_unavailable() is None, "this machine must run the namespace link"
    with pytest.raises(RuntimeError, match="on purpose"):
        with lossy_links(1, LinkParams(delay=0.05, loss=0.3, cut_for=0, seed=3)) as links:
            assert links.mode == "netns"
            echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            echo.bind((links.server_host, 0))
            echo.settimeout(3)

            def answer() -> None:
                try:
                    while True:
                        data, peer = echo.recvfrom(100)
                        echo.sendto(data, peer)
                except OSError:
                    return
            threading.Thread(target=answer, daemon=True).start()
            out = subprocess.run([*links.prefix(0), sys.executable, "-c", ECHO_CLIENT, links.server_host,
                                  str(echo.getsockname()[1])], capture_output=True, text=True, check=True).stdout
            echo.close()
            answered, fastest = int(out.split()[0]), float(out.split()[1])
            up, down = links.counts(0)["up"], links.counts(0)["down"]
            assert up.packets == 40 and up.lost_packets > 0  # every datagram crossed the proxy; some were lost
            assert up.delivered_packets == up.packets - up.lost_packets == down.packets  # each answered once
            assert answered == down.delivered_packets == down.packets - down.lost_packets < 40
            assert fastest >= 0.1  # 50 ms each way
            raise RuntimeError("on purpose: the links must go even when the block fails")
    assert leftovers() == ("", "")


@pytest.fixture
def upstream() -> Iterator[int]:
    """A loopback server that answers every connection with 8,000 bytes after reading one line."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(100)
                conn.sendall(b"x" * 8000)
    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def fetch(port: int) -> bytes:
    """Send a line, read until the far side closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"hello\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_loopback_fallback_delays_paces_and_cuts(upstream: int) -> None:
    with lossy_links(1, LinkParams(delay=0.2, cut_every=4.0, cut_for=1.0), force_loopback=True) as links:
        assert links.mode == "loopback" and "NO network namespaces here (loopback forced)" in links.describe()
        links.attach(upstream)
        proxy: StreamProxy = links.streams[0]
        for down in (True, False):  # to the start of a 3 s stretch without a cut
            while proxy.is_down() != down:
                time.sleep(0.02)
        started = time.monotonic()
        assert fetch(int(links.base_url(0).rsplit(":", 1)[1])) == b"x" * 8000
        # 0.2 s each way, and 8,000 bytes at 8,000 bytes/s: it cannot have been faster than that.
        assert time.monotonic() - started >= 1.4
        assert (links.counts(0)["up"].bytes, links.counts(0)["down"].bytes) == (6, 8000)
        while not proxy.is_down():
            time.sleep(0.05)
        assert fetch(proxy.port) == b""  # during a cut a connection is closed at once
