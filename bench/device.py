"""Benchmark of the device's encryption: unlock time, seal/open cost per document, and a
10,000-document pull from the server into an encrypted store against the same pull into
a store whose cipher is switched off (same code, same SQLite file layout).

Run: ``.venv/bin/python bench/device.py [--docs 10000] [--repeat 3]``. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crypto  # noqa: E402
from bench import report  # noqa: E402
from bench.replication import ADMIN, DB_NAME, make_docs, request, wasl_server  # noqa: E402
from sync.device import DeviceStore  # noqa: E402
from sync.remote import RemoteDatabase, split_credentials  # noqa: E402
from sync.replicator import replicate  # noqa: E402

PIN = "482915"


def median_time(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unlock_seconds(workdir: Path) -> float:
    """Median time to open a store with its PIN (Argon2id with the shipped parameters)."""
    path = workdir / "unlock.db"
    DeviceStore.create(str(path), PIN).close()
    return median_time(lambda: DeviceStore.open(str(path), PIN).close(), 5)


def envelope_costs(count: int) -> tuple[float, float]:
    """Microseconds to seal and to open one ~1 KB body."""
    key = bytes(range(32))
    body = b'{"type":"visit","notes":"' + b"x" * 1000 + b'"}'
    ids = [str(uuid.uuid4()) for _ in range(count)]
    start = time.perf_counter()
    sealed = [crypto.seal(key, body, db="wasl", doc_id=i, rev="1-a") for i in ids]
    seal_us = (time.perf_counter() - start) / count * 1e6
    start = time.perf_counter()
    for i, env in zip(ids, sealed):
        crypto.open_sealed(key, env, db="wasl", doc_id=i, rev="1-a")
    return seal_us, (time.perf_counter() - start) / count * 1e6


@contextmanager
def cipher_off() -> Iterator[None]:
    """Make envelopes plain bytes: the same store code, with no encryption."""
    with mock.patch("sync.device.core.crypto.seal", lambda key, data, **_: data), \
            mock.patch("sync.device.core.crypto.open_sealed", lambda key, env, **_: env), \
            mock.patch("sync.device.core.crypto.envelope_key_id", lambda env: b"clear"):
        yield


def pull_seconds(url: str, workdir: Path, encrypted: bool) -> float:
    """Seconds to pull the whole database into a fresh store."""
    path = workdir / f"pull-{uuid.uuid4().hex[:8]}.db"
    store = DeviceStore.create(str(path), PIN)
    if not encrypted:
        store._keys[b"clear"] = b""  # type: ignore[attr-defined]  # the patched key id
    try:
        with RemoteDatabase(url) as remote:
            start = time.perf_counter()
            result = replicate(remote, store)
            took = time.perf_counter() - start
        assert result.ok and result.docs_written > 0, result
        return took
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the figures for bench/all.py to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-device-") as tmp:
        workdir = Path(tmp)
        unlock = unlock_seconds(workdir)
        seal_us, open_us = envelope_costs(args.docs)
        with wasl_server(workdir) as (root, _pid):
            url = f"{root}/{DB_NAME}"
            plain_url, _ = split_credentials(url)
            docs = make_docs(args.docs, 1)
            for start in range(0, len(docs), 500):
                request("POST", f"{plain_url}/_bulk_docs", {"docs": docs[start:start + 500]}, ADMIN)
            clear, sealed = [], []
            for _ in range(args.repeat):  # alternate, so machine noise hits both alike
                with cipher_off():
                    clear.append(pull_seconds(url, workdir, encrypted=False))
                sealed.append(pull_seconds(url, workdir, encrypted=True))
    c, e = statistics.median(clear), statistics.median(sealed)
    print(f"{args.docs} visit docs (~1 KB), medians of {args.repeat} runs\n")
    print("| measure | value |\n|---|---:|")
    print(f"| unlock (Argon2id, shipped parameters) | {unlock * 1000:.0f} ms |")
    print(f"| seal one 1 KB body | {seal_us:.1f} µs |")
    print(f"| open one 1 KB body | {open_us:.1f} µs |")
    print(f"| pull into a clear store | {c:.2f} s |")
    print(f"| pull into an encrypted store | {e:.2f} s |")
    print(f"| encrypted / clear | {e / c:.3f} (target ≤ 1.15) |")
    report.write(args.json, "device", [
        report.row(f"tablet pull of {args.docs:,} docs into an encrypted store", f"{e:.2f} s ({e / c:.3f} × clear)",
                   "≤ 1.15 × clear", e / c <= 1.15),
        report.row("tablet unlock (Argon2id, shipped parameters)", f"{unlock * 1000:.0f} ms")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
