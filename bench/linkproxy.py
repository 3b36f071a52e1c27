"""The userspace half of the lossy link: moves IP packets between TUN fds with delay, loss and cuts.

One thread serves any number of links (``bench.netlink.Namespace``). For every IPv4 packet read
from one side it decides, in this order:

- **cut**: the link is down for ``cut_for`` seconds out of every ``cut_every`` (each link gets
  its own seeded phase): the packet is dropped, as in a tunnel or out of coverage;
- **loss**: dropped with probability ``loss``, drawn from a seeded ``random.Random``;
- otherwise it is queued and written to the other side ``delay`` seconds later. The delay is
  the same for every packet, so one FIFO queue per direction is the whole scheduler: the loop
  sleeps in ``select`` until the next packet is due or a new one arrives.

Rate limits are not done here: ``tbf`` on both TUN devices' egress shapes what reaches the
proxy. Counters are per direction (``up`` = device to server): IP bytes offered to the link
(what the sender put on the wire, retransmissions included), lost, cut and delivered, and the
TCP payload bytes of segments the proxy had already seen once (retransmissions), so the
retransmitted share is visible without reading either kernel's counters.
"""
from __future__ import annotations

import os
import random
import selectors
import struct
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Protocol

SYN_FIN = 0x03


class Link(Protocol):
    """What the proxy needs of a link: its two fds."""

    device_fd: int
    server_fd: int


@dataclass
class Counts:
    """One direction of one link (or a sum of them)."""

    packets: int = 0
    bytes: int = 0
    lost_packets: int = 0
    lost_bytes: int = 0
    cut_packets: int = 0
    cut_bytes: int = 0
    delivered_packets: int = 0
    delivered_bytes: int = 0
    payload_bytes: int = 0
    retransmitted_packets: int = 0
    retransmitted_payload: int = 0
    connections: int = 0  # TCP connections opened this way (first SYN of each)

    def add(self, other: Counts) -> Counts:
        """The field-wise sum of two counts."""
        mine, theirs = asdict(self), asdict(other)
        return Counts(**{key: mine[key] + theirs[key] for key in mine})


class _Direction:
    """Packets read from ``src`` and written to ``dst`` after the delay."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.queue: deque[tuple[float, bytes]] = deque()
        self.counts = Counts()
        self.seen: set[tuple[bytes, int, int]] = set()


class LinkProxy:
    """Forward packets between each link's device fd and server fd in one background thread."""

    def __init__(self, links: list[Link], *, delay: float = 0.8, loss: float = 0.2, cut_every: float = 30.0,
                 cut_for: float = 3.0, seed: int = 1) -> None:
        if not (0 <= loss < 1 and delay >= 0 and 0 <= cut_for < cut_every):
            raise ValueError("need 0 <= loss < 1, delay >= 0 and 0 <= cut_for < cut_every")
        self.delay, self.loss, self.cut_every, self.cut_for = delay, loss, cut_every, cut_for
        self.rng = random.Random(seed)
        self.phases = [self.rng.uniform(0, cut_every) for _ in links]
        self.directions = [(_Direction(link.device_fd, link.server_fd), _Direction(link.server_fd, link.device_fd))
                           for link in links]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-proxy", daemon=True)
        self.started = 0.0
        self.error: BaseException | None = None

    def __enter__(self) -> LinkProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> LinkProxy:
        """Start forwarding; return self."""
        self.started = time.monotonic()
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop forwarding (the fds stay open: they belong to the links)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def is_down(self, index: int, now: float) -> bool:
        """Whether link ``index`` is in one of its cuts at ``now`` (a monotonic time)."""
        if self.cut_for <= 0:
            return False
        return (now - self.started + self.phases[index]) % self.cut_every >= self.cut_every - self.cut_for

    def cuts(self, index: int = 0) -> int:
        """How many cuts link ``index`` has begun so far (one already under way at the start counts)."""
        if self.cut_for <= 0:
            return 0
        every, phase = self.cut_every, self.phases[index]
        elapsed, first = time.monotonic() - self.started, (every - self.cut_for - phase) % every
        begun = 0 if elapsed < first else int((elapsed - first) // every) + 1
        return begun + int(phase > every - self.cut_for)

    def counts(self, index: int | None = None) -> dict[str, Counts]:
        """``{"up": Counts, "down": Counts}`` of link ``index``, or summed over every link."""
        chosen = self.directions if index is None else [self.directions[index]]
        up, down = Counts(), Counts()
        for pair in chosen:
            up, down = up.add(pair[0].counts), down.add(pair[1].counts)
        return {"up": up, "down": down}

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the caller through .error
            self.error = exc

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        for index, pair in enumerate(self.directions):
            for direction in pair:
                selector.register(direction.src, selectors.EVENT_READ, (index, direction))
        every = [d for pair in self.directions for d in pair]
        while not self._stop.is_set():
            due = min((d.queue[0][0] for d in every if d.queue), default=None)
            timeout = 0.1 if due is None else max(0.0, min(0.1, due - time.monotonic()))
            for key, _ in selector.select(timeout):
                index, direction = key.data
                self._read(index, direction)
            now = time.monotonic()
            for direction in every:
                while direction.queue and direction.queue[0][0] <= now:
                    self._write(direction, direction.queue.popleft()[1])
        selector.close()

    def _read(self, index: int, direction: _Direction) -> None:
        """Take every packet waiting on ``direction.src``."""
        while True:
            try:
                packet = os.read(direction.src, 65535)
            except (BlockingIOError, InterruptedError):
                return
            if not packet or packet[0] >> 4 != 4:
                continue  # IPv4 only: nothing else was configured on the link
            now, size, counts = time.monotonic(), len(packet), direction.counts
            counts.packets += 1
            counts.bytes += size
            _note_tcp(direction, packet)
            if self.is_down(index, now):
                counts.cut_packets += 1
                counts.cut_bytes += size
            elif self.rng.random() < self.loss:
                counts.lost_packets += 1
                counts.lost_bytes += size
            else:
                direction.queue.append((now + self.delay, packet))

    def _write(self, direction: _Direction, packet: bytes) -> None:
        try:
            os.write(direction.dst, packet)
        except OSError:
            return  # the far interface is gone or full: the packet is lost like any other
        direction.counts.delivered_packets += 1
        direction.counts.delivered_bytes += len(packet)


def _note_tcp(direction: _Direction, packet: bytes) -> None:
    """Count the TCP payload, and the segments (data, SYN or FIN) already seen once: retransmissions."""
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 20 or packet[9] != 6:
        return
    total = struct.unpack_from("!H", packet, 2)[0]
    ports, seq = packet[ihl:ihl + 4], struct.unpack_from("!I", packet, ihl + 4)[0]
    offset, flags = (packet[ihl + 12] >> 4) * 4, packet[ihl + 13]
    payload = total - ihl - offset
    direction.counts.payload_bytes += max(payload, 0)
    if payload <= 0 and not flags & SYN_FIN:
        return  # a pure ACK: never retransmitted as such
    key = (packet[12:20] + ports, seq, flags & SYN_FIN)
    if key in direction.seen:
        direction.counts.retransmitted_packets += 1
        direction.counts.retransmitted_payload += max(payload, 0)
    else:
        direction.seen.add(key)
        if flags & 0x12 == 0x02:  # SYN without ACK: a new connection
            direction.counts.connections += 1


def as_dict(counts: dict[str, Counts]) -> dict[str, Any]:
    """Plain JSON of ``counts()``."""
    return {side: asdict(value) for side, value in counts.items()}
