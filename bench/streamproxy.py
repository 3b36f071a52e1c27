"""The loopback stand-in for the lossy link, for machines that forbid network namespaces.

A TCP proxy on 127.0.0.1 that gives each direction of each connection a FIFO of chunks, each
sent ``delay`` seconds after it was read and no faster than ``rate_kbit`` (a token bucket of
one MTU), and that cuts the link for ``cut_for`` seconds out of every ``cut_every``: every open
connection is reset and new ones are refused until the cut ends. It works on a byte stream,
so it cannot lose single packets: loss is what ``bench.linkproxy`` adds on the namespace link.
It counts the bytes each way (payload only: no headers, no retransmissions).
"""
from __future__ import annotations

import socket
import threading
import time
from collections import deque

from .linkproxy import Counts
from .sockets import LoopbackProxy, cut

CHUNK = 1460  # one segment's payload: the pacing unit


class StreamProxy(LoopbackProxy):
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:<upstream_port>`` slowly, with periodic cuts."""

    def __init__(self, upstream_port: int, *, rate_kbit: int = 64, delay: float = 0.8, cut_every: float = 30.0,
                 cut_for: float = 3.0) -> None:
        super().__init__(upstream_port)
        self.rate, self.delay = rate_kbit * 1000 / 8, delay
        self.cut_every, self.cut_for = cut_every, cut_for
        self.up, self.down = Counts(), Counts()
        self._lines = {"up": threading.Lock(), "down": threading.Lock()}  # one line each way, shared
        self.started = time.monotonic()

    def start(self) -> StreamProxy:
        """Start accepting and the cut clock; return self."""
        self.started = time.monotonic()
        self._spawn(self._cutter)
        return super().start()

    def counts(self) -> dict[str, Counts]:
        """``{"up": Counts, "down": Counts}``: bytes read from each side."""
        return {"up": self.up, "down": self.down}

    def is_down(self) -> bool:
        """Whether the link is in a cut now."""
        return self.cut_for > 0 and (time.monotonic() - self.started) % self.cut_every >= self.cut_every - self.cut_for

    def _cutter(self) -> None:
        while not self._stop.wait(0.05):
            if self.is_down():
                self.cut_all()

    def accepted(self, client: socket.socket) -> None:
        if self.is_down():
            cut(client)
            return
        upstream = self._upstream_for(client)
        if upstream is None:
            return
        for src, dst, side in ((client, upstream, "up"), (upstream, client, "down")):
            queue: deque[tuple[float, bytes]] = deque()
            ready = threading.Condition()
            counts, line = getattr(self, side), self._lines[side]
            threading.Thread(target=self._read, args=(src, queue, ready, counts), daemon=True).start()
            threading.Thread(target=self._send, args=(dst, queue, ready, line), daemon=True).start()

    def _read(self, src: socket.socket, queue: deque[tuple[float, bytes]], ready: threading.Condition,
              counts: Counts) -> None:
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            with ready:
                queue.append((time.monotonic() + self.delay, data))  # b"" = end of stream
                ready.notify()
            if not data:
                return
            counts.packets += 1
            counts.bytes += len(data)

    def _send(self, dst: socket.socket, queue: deque[tuple[float, bytes]], ready: threading.Condition,
              line: threading.Lock) -> None:
        while True:
            with ready:
                while not queue:
                    ready.wait(0.5)
                due, data = queue.popleft()
            time.sleep(max(0.0, due - time.monotonic()))
            if not data:
                cut(dst)
                return
            with line:  # the line rate, shared by every connection going this way
                time.sleep(len(data) / self.rate)
            try:
                dst.sendall(data)
            except OSError:
                return
