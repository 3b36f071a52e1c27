"""Socket steps the test proxies share: a failed read or write is an ended connection, not an error."""
from __future__ import annotations

import socket


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
