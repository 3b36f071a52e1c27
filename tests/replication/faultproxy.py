"""A TCP proxy on loopback that breaks connections the way a 2G link does, at random points.

Each accepted connection draws a plan from one seeded ``random.Random`` (accepts happen one
at a time, so the sequence of plans is fixed by the seed):

- ``pass``:           forward everything;
- ``drop_request``:   forward N bytes of the client's requests, then cut both sides;
- ``drop_response``:  forward N bytes of the server's responses, then cut (possibly after the
                      server already acted on the request: the reply is lost);
- ``truncate``:       forward a response's headers and N bytes of its body, then cut;
- ``stall``:          forward N response bytes, then go silent past the client's read timeout;
- ``refuse_503``:     answer the first request with a raw ``HTTP/1.1 503`` and close.

N is drawn per connection, so with keep-alive the fault may hit a later request.
"""
from __future__ import annotations

import random
import socket
from collections import Counter

from bench.sockets import LoopbackProxy, cut, recv_some, send_all

FAULTS = ("drop_request", "drop_response", "truncate", "stall", "refuse_503")
RAW_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class FaultProxy(LoopbackProxy):
    """Forward ``127.0.0.1:<port>`` to ``upstream_port``, injecting faults into some connections."""

    def __init__(self, upstream_port: int, *, seed: int = 1, fault_rate: float = 0.5,
                 weights: tuple[float, ...] = (3, 3, 3, 0.4, 2), max_offset: int = 4000, stall: float = 0.8) -> None:
        super().__init__(upstream_port)
        self.rng = random.Random(seed)
        self.fault_rate, self.weights, self.max_offset, self.stall = fault_rate, weights, max_offset, stall
        self.counts: Counter[str] = Counter()

    def _plan(self) -> tuple[str, int]:
        if self.rng.random() >= self.fault_rate:
            return "pass", 0
        return self.rng.choices(FAULTS, self.weights)[0], self.rng.randrange(self.max_offset)

    def accepted(self, client: socket.socket) -> None:
        kind, offset = self._plan()  # in the accept loop: one connection at a time, so the seed fixes the plans
        self.counts[kind] += 1
        upstream = self._upstream_for(client)
        if upstream is None:
            return
        self._spawn(self._pump_request, client, upstream, kind, offset)
        self._spawn(self._pump_response, upstream, client, kind, offset)

    def _pump_request(self, src: socket.socket, dst: socket.socket, kind: str, offset: int) -> None:
        """Client to server."""
        sent = 0
        while chunk := recv_some(src):
            if kind == "refuse_503":
                send_all(src, RAW_503)
                break
            if kind == "drop_request" and sent + len(chunk) > offset:
                send_all(dst, chunk[:offset - sent])  # part of a request reaches the server
                break
            if not send_all(dst, chunk):
                break
            sent += len(chunk)
        cut(src)
        cut(dst)

    def _pump_response(self, src: socket.socket, dst: socket.socket, kind: str, offset: int) -> None:
        """Server to client."""
        sent, seen = 0, b""
        limit = offset if kind in ("drop_response", "stall") else None
        while chunk := recv_some(src):
            if kind == "truncate" and limit is None:
                # Cut inside the first response's body: headers promised more than arrives.
                seen += chunk
                end = seen.find(b"\r\n\r\n")
                limit = None if end < 0 else end + 4 + offset % 200
            if limit is not None and sent + len(chunk) > limit:
                send_all(dst, chunk[:max(0, limit - sent)])
                if kind == "stall":
                    self._stop.wait(self.stall)  # silent past the client's read timeout
                break
            if not send_all(dst, chunk):
                break
            sent += len(chunk)
        cut(src)
        cut(dst)
