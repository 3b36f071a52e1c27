"""Lossy 2G links for N devices, as one object the lossy test and benchmark share.

``lossy_links(n, LinkParams())`` gives each device its own link to one server address:

- **netns** (where the machine allows it, checked by trying): device k lives in network
  namespace ``Namespace(k)`` (bench.netlink), behind tbf at ``rate_kbit`` both ways, and one
  ``LinkProxy`` thread (bench.linkproxy) adds ``delay`` per packet, ``loss`` and periodic cuts;
  the server listens on the root side's address of the links (the same address on every link);
- **loopback** (elsewhere): the server listens on 127.0.0.1 and each device reaches it through a
  ``StreamProxy`` (bench.streamproxy) with the same delay, rate and cuts but no packet loss. The
  reason is in ``LinkSet.reason``, for the caller to print.

Everything is removed when the block ends, also after a failure.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from .linkproxy import Counts, LinkProxy
from .netlink import Namespace, namespaces_unavailable, pick_subnet, sweep_stale
from .streamproxy import StreamProxy


@dataclass(frozen=True)
class LinkParams:
    """The link every device gets: 64 kbit/s, 800 ms each way, 20% loss, a 3 s cut every 30 s."""

    rate_kbit: int = 64
    delay: float = 0.8
    loss: float = 0.2
    cut_every: float = 30.0
    cut_for: float = 3.0
    seed: int = 1


@dataclass
class LinkSet:
    """The links of one run: where the server listens, and how each device reaches it."""

    count: int
    params: LinkParams
    mode: str = "netns"
    reason: str | None = None
    server_host: str = "127.0.0.1"
    namespaces: list[Namespace] = field(default_factory=list)
    proxy: LinkProxy | None = None
    streams: list[StreamProxy] = field(default_factory=list)
    server_port: int = 0
    stack: ExitStack = field(default_factory=ExitStack)

    def attach(self, server_port: int) -> None:
        """Tell the links the server's port (the loopback proxies start now)."""
        self.server_port = server_port
        if self.mode == "loopback":
            p = self.params
            for _ in range(self.count):
                proxy = StreamProxy(server_port, rate_kbit=p.rate_kbit, delay=p.delay, cut_every=p.cut_every,
                                    cut_for=p.cut_for).start()
                self.stack.callback(proxy.close)
                self.streams.append(proxy)

    def base_url(self, index: int) -> str:
        """The server's base URL as device ``index`` sees it."""
        if self.mode == "loopback":
            return f"http://127.0.0.1:{self.streams[index].port}"
        return f"http://{self.server_host}:{self.server_port}"

    def prefix(self, index: int) -> list[str]:
        """The command prefix that runs a program as device ``index`` (inside its namespace)."""
        return self.namespaces[index].exec_prefix() if self.mode == "netns" else []

    def counts(self, index: int | None = None) -> dict[str, Counts]:
        """Bytes and packets each way on link ``index``, or on all of them."""
        if self.proxy is not None:
            return self.proxy.counts(index)
        chosen = self.streams if index is None else [self.streams[index]]
        up, down = Counts(), Counts()
        for proxy in chosen:
            up, down = up.add(proxy.up), down.add(proxy.down)
        return {"up": up, "down": down}

    def check(self) -> None:
        """Raise what the packet proxy's thread died of, if it died."""
        if self.proxy is not None and self.proxy.error is not None:
            raise RuntimeError("the link proxy failed") from self.proxy.error

    def describe(self) -> str:
        """One line saying what the links are."""
        p = self.params
        shape = (f"{p.rate_kbit} kbit/s, {p.delay * 1000:.0f} ms each way, a {p.cut_for:g} s cut every "
                 f"{p.cut_every:g} s")
        if self.mode == "netns":
            names = ", ".join(ns.name for ns in self.namespaces)
            return f"network namespaces {names} (tbf + packet proxy): {shape}, {p.loss:.0%} packet loss"
        return f"NO network namespaces here ({self.reason}): loopback stream proxy, {shape}, no packet loss"


@contextmanager
def lossy_links(count: int, params: LinkParams = LinkParams(), *, force_loopback: bool = False) -> Iterator[LinkSet]:
    """``count`` lossy links, in namespaces where possible; all removed when the block ends."""
    links = LinkSet(count, params)
    reason = "loopback forced" if force_loopback else namespaces_unavailable()
    with links.stack as stack:
        if reason is not None:
            links.mode, links.reason = "loopback", reason
        else:
            sweep_stale()
            subnet = pick_subnet(random.Random())
            for index in range(count):
                namespace = Namespace(index, subnet, params.rate_kbit)
                stack.callback(namespace.close)
                links.namespaces.append(namespace.open())
            links.server_host = links.namespaces[0].server_addr
            links.proxy = LinkProxy(links.namespaces, delay=params.delay, loss=params.loss,
                                    cut_every=params.cut_every, cut_for=params.cut_for, seed=params.seed).start()
            stack.callback(links.proxy.close)
        yield links
