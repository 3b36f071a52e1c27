"""A loopback TCP proxy in front of the server that tells a watcher each request it forwards.

Every client talks to the server through it, so the port stays the same while the server is
killed and restarted (a connection opened meanwhile waits for the next server), and the kill
controller learns from the traffic itself when a push (``POST _bulk_docs``), a pull
(``_bulk_get``, ``open_revs``), a checkpoint or a patient merge is inside the server: the
callback runs once the request line has been forwarded.
"""
from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

from bench.sockets import LoopbackProxy, half_close, recv_some, send_all

REQUEST_LINE = re.compile(rb"(GET|POST|PUT|DELETE|HEAD|COPY) (\S+) HTTP/1\.[01]\r\n")
Watcher = Callable[[str, str], None]
HOLD_S = 20.0  # how long a new connection waits for a server to take over


class WatchingProxy(LoopbackProxy):
    """Forward ``127.0.0.1:<port>`` to ``upstream_port``; call ``watcher(method, path)`` per request."""

    def __init__(self, upstream_port: int, watcher: Watcher) -> None:
        super().__init__(upstream_port)
        self.watcher = watcher

    def accepted(self, client: socket.socket) -> None:
        self._hold(client)
        self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        """Connect the client to the serving server, waiting up to ``HOLD_S`` while the server is down.

        A connection made while no server runs waits, as behind a load balancer, rather than being refused:
        the kills cut the requests in flight, and clients that retry are not pushed to give up meanwhile.
        """
        deadline = time.monotonic() + HOLD_S
        while True:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                upstream.settimeout(None)
                break
            except OSError:
                if self._stop.is_set() or time.monotonic() > deadline:
                    self._forget(client)
                    return
                time.sleep(0.05)
        self._hold(upstream)
        ends: list[str] = []  # the directions finished so far; the pair closes after both
        self._spawn(self._pump_requests, client, upstream, ends)
        self._spawn(self._pump, upstream, client, ends)

    def _pump_requests(self, src: socket.socket, dst: socket.socket, ends: list[str]) -> None:
        """Client to server, reporting each request line after it went out."""
        tail = b""
        while chunk := recv_some(src):
            if not send_all(dst, chunk):
                break
            # A request line split across two reads is found in the joined tail.
            seen = tail + chunk
            for match in REQUEST_LINE.finditer(seen):
                if match.end() > len(tail):
                    self.watcher(match.group(1).decode(), match.group(2).decode("latin-1"))
            tail = seen[-4096:]
        self._end(dst, src, dst, ends)

    def _pump(self, src: socket.socket, dst: socket.socket, ends: list[str]) -> None:
        """Server to client."""
        while chunk := recv_some(src):
            if not send_all(dst, chunk):
                break
        self._end(dst, dst, src, ends)

    def _end(self, receiver: socket.socket, client: socket.socket, upstream: socket.socket, ends: list[str]) -> None:
        """One direction is over: pass its end on to ``receiver`` as a half-close; close both once both are over.

        A hard close while the other side still sends would answer with a reset, and a reset can make the
        client drop a reply it has already received ("socket hang up").
        """
        with self._lock:
            ends.append("end")
            last = len(ends) == 2
        if not last:
            half_close(receiver)
            return
        self._forget(client, upstream)
