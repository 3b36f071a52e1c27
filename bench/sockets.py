"""What the test proxies share: socket steps where a failed read or write is an ended connection,
not an error, and the loopback proxy skeleton (``LoopbackProxy``)."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Self


def recv_some(sock: socket.socket) -> bytes:
    """Up to 64 KiB from ``sock``; ``b""`` when the connection ended or broke."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send ``data`` whole; False when the connection broke."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def half_close(sock: socket.socket) -> None:
    """Send FIN after the data already sent, keep reading (idempotent)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def cut(sock: socket.socket) -> None:
    """Shut a socket down both ways and close it (idempotent)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class LoopbackProxy:
    """A TCP proxy on ``127.0.0.1:<port>`` in front of ``upstream_port``: the listener, its accept
    loop, the sockets it holds open and the threads it started. A subclass says what an accepted
    client gets (``accepted``); ``close`` cuts every held socket and waits for every thread."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # close() cannot wake a blocked accept(): poll the stop flag
        self.port: int = self._listener.getsockname()[1]

    def start(self) -> Self:
        """Start accepting; return self."""
        self._spawn(self._accept_loop)
        return self

    def close(self) -> None:
        """Stop accepting, cut every open connection and wait for the threads."""
        self._stop.set()
        self._listener.close()
        self.cut_all()
        for thread in list(self._threads):
            thread.join(5)

    def cut_all(self) -> None:
        """Cut every held connection (the kernel does the same to a killed server's sockets)."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            cut(sock)

    def accepted(self, client: socket.socket) -> None:
        """Serve a newly accepted ``client`` (in the accept loop's thread: hand long work to ``_spawn``)."""
        raise NotImplementedError

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.accepted(client)

    def _upstream_for(self, client: socket.socket) -> socket.socket | None:
        """A connection to the upstream, both ends held; None (and ``client`` cut) when it refuses."""
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            cut(client)
            return None
        self._hold(client, upstream)
        return upstream

    def _hold(self, *sockets: socket.socket) -> None:
        """Keep ``sockets`` to be cut by ``cut_all`` and ``close``."""
        with self._lock:
            self._sockets.update(sockets)

    def _forget(self, *sockets: socket.socket) -> None:
        """Cut ``sockets`` for good and stop holding them."""
        for sock in sockets:
            cut(sock)
        with self._lock:
            self._sockets.difference_update(sockets)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        """Run ``target(*args)`` in a daemon thread that ``close`` waits for."""
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
