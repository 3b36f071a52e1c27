"""A lossy 2G link for one device: a network namespace joined to the root namespace by two TUN devices.

::

    [netns wl<pid>-<serial>]                  [root namespace]
    device process                            Wasl server on SERVER (198.18.N.1)
      198.18.N.(10+K) on TUN "wlNNNNdK"       SERVER peer 198.18.N.(10+K) on TUN "wlNNNNsK"
      egress: tbf 64 kbit/s                   egress: tbf 64 kbit/s
            \\                                       /
             fd ----> LinkProxy (bench.linkproxy) <---- fd
                      delay, loss, cuts, byte counts

The TUN devices are created by this process, which keeps both file descriptors; the device
side is then moved into the namespace. Every packet between the device and the server is
read from one fd and written to the other by the proxy, so a dropped packet is really lost
and TCP has to recover it (``tc netem`` would do this in the kernel, but its module is absent
on these machines; ``tbf`` is present and limits each direction's rate).

Addresses come from 198.18.0.0/15, the block RFC 2544 reserves for benchmark networks, and
the device namespace has no route but its peer: the device can reach the server and nothing
else. Names carry this process's pid, so ``sweep_stale`` can remove what a killed run left.
Every TUN device disappears with the fd that owns it; ``Namespace.close`` deletes the rest.
"""
from __future__ import annotations

import fcntl
import ipaddress
import itertools
import os
import random
import re
import struct
import subprocess
import uuid
from dataclasses import dataclass, field

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
PREFIX = "wl"  # every namespace and interface this module makes starts with it
_SERIAL = itertools.count()  # namespace names stay unique within a process, even if one was left behind


def _ip(*args: str, netns: str | None = None) -> None:
    """Run ``ip`` (in ``netns`` when given).

    :raise RuntimeError: with ip's own message.
    """
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")


def _tc(*args: str, netns: str | None = None) -> None:
    """Run ``tc`` (in ``netns`` when given).

    :raise RuntimeError: with tc's own message.
    """
    cmd = ["tc", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")


def open_tun(name: str) -> int:
    """Create TUN device ``name`` (raw IP packets, no extra header) and return its non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    os.set_blocking(fd, False)
    return fd


def namespaces_unavailable() -> str | None:
    """Say why this machine cannot host the namespace link (by trying it), or None when it can."""
    if os.geteuid() != 0:
        return "not running as root"
    name = f"{PREFIX}{os.getpid()}probe{uuid.uuid4().hex[:4]}"
    try:
        _ip("netns", "add", name)
    except (RuntimeError, OSError) as exc:
        return f"ip netns add failed: {exc}"
    try:
        fd = open_tun(name[:15])
        os.close(fd)
    except OSError as exc:
        return f"cannot create a TUN device: {exc}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    return None


def sweep_stale() -> list[str]:
    """Delete namespaces this module made in processes that no longer exist; return their names."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    gone = []
    for line in listing.splitlines():
        match = re.match(rf"({PREFIX}(\d+)-\d+)\b", line)
        if match and not os.path.exists(f"/proc/{match.group(2)}"):
            subprocess.run(["ip", "netns", "delete", match.group(1)], capture_output=True, check=False)
            gone.append(match.group(1))
    return gone


def pick_subnet(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A /24 of the benchmark block that no interface of the root namespace uses yet."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    rng = rng or random.Random()
    for _ in range(100):
        subnet = ipaddress.ip_network(f"198.18.{rng.randrange(256)}.0/24")
        if f"inet {str(subnet.network_address).rsplit('.', 1)[0]}." not in used:
            return subnet
    raise RuntimeError("no free /24 in 198.18.0.0/16")


@dataclass
class Namespace:
    """One device's namespace and the two TUN devices of its link (fds owned here)."""

    index: int
    subnet: ipaddress.IPv4Network
    rate_kbit: int = 64
    name: str = field(init=False)
    device_fd: int = field(init=False, default=-1)
    server_fd: int = field(init=False, default=-1)

    def __post_init__(self) -> None:
        self.name = f"{PREFIX}{os.getpid()}-{next(_SERIAL)}"
        tag = f"{PREFIX}{os.getpid() % 100000:05d}{self.subnet.network_address.packed[2]:02x}"
        self.device_if, self.server_if = f"{tag}d{self.index}"[:15], f"{tag}s{self.index}"[:15]

    @property
    def server_addr(self) -> str:
        """The server's address on this link (the root namespace's side)."""
        return str(self.subnet.network_address + 1)

    @property
    def device_addr(self) -> str:
        """The device's address inside the namespace."""
        return str(self.subnet.network_address + 10 + self.index)

    def open(self) -> Namespace:
        """Create the namespace, both TUN devices, addresses, routes and the tbf limits; return self."""
        try:
            _ip("netns", "add", self.name)
            self.device_fd = open_tun(self.device_if)
            self.server_fd = open_tun(self.server_if)
            _ip("link", "set", self.device_if, "netns", self.name)
            for netns, dev, local, peer in ((self.name, self.device_if, self.device_addr, self.server_addr),
                                            (None, self.server_if, self.server_addr, self.device_addr)):
                # No IPv6 link-local address: its router solicitations would only add noise to the counts.
                _ip("link", "set", dev, "addrgenmode", "none", netns=netns)
                _ip("addr", "add", local, "peer", peer, "dev", dev, netns=netns)
                _ip("link", "set", dev, "up", netns=netns)
                # A 2G modem's buffer: a second of queue at the line rate before tbf drops.
                _tc("qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{self.rate_kbit}kbit",
                    "burst", "3000", "latency", "1000ms", netns=netns)
            _ip("link", "set", "lo", "up", netns=self.name)
        except BaseException:
            self.close()
            raise
        return self

    def exec_prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def close(self) -> None:
        """Close both fds (the TUN devices vanish with them) and delete the namespace (idempotent)."""
        for attr in ("device_fd", "server_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)
