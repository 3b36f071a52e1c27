"""A tablet client and a PouchDB peer sync over 2G links (64 kbit/s, 800 ms, 20% loss, cuts) and converge.

The links are network namespaces joined to the server by a packet proxy (bench.lossylink); where
the machine forbids namespaces the test says so and runs the loopback stream proxy instead.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import pytest
from flask import Flask

from bench.lossyclients import PIN, wasl_env, wasl_serve
from bench.lossylink import LinkParams, LinkSet, lossy_links
from bench.lossyscenario import DB_NAME, Admin, Plan, run_both, settled, setup_server
from sync.device import DeviceStore
from sync.devices import create_code

from ..conftest import ADMIN
from ..device.helpers import device_state, server_state
from ..pouch import require_peer
from ..replication.helpers import Db
from .checks import assert_central_rows_rebuild, assert_peer_matches, print_figures

PLAN = Plan(up=8, down=8, shared=2, seed=7)


@pytest.fixture
def links(capsys: pytest.CaptureFixture[str]) -> Iterator[LinkSet]:
    """Two lossy links, namespaces where allowed (and said so where not)."""
    with lossy_links(2, LinkParams(seed=20261122)) as made:
        with capsys.disabled():
            print(f"\nlossy links: {made.describe()}")
        yield made


@pytest.mark.pouchdb
@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_tablet_and_peer_converge_over_lossy_links(app: Flask, links: LinkSet, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    require_peer()
    setup_server(app)
    with app.app_context():
        code = create_code("amina")
    env = wasl_env(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path, ADMIN[1], DB_NAME)
    with wasl_serve(links.server_host, env, tmp_path) as port:
        links.attach(port)
        base = f"http://{links.server_host}:{port}"
        settle = settled(app)
        tablet, pouch = run_both(links, PLAN, Admin(base, ADMIN), code, tmp_path, settle)
        with capsys.disabled():
            print(print_figures(links, PLAN, (tablet, pouch)))
        settle()
        server = Db(f"{base}/couch/{DB_NAME}")
        state = server_state(server)
        # The tablet: every leaf, winner and body equal on both sides, for exactly its village's visits.
        assert tablet.store is not None and tablet.converged
        with DeviceStore.open(str(tablet.store), PIN) as store:
            mine = device_state(store)
        expected = {"t-old-0"} | {f"t-{kind}-{i}" for kind, n in (("new", PLAN.up), ("srv", PLAN.down),
                                                                  ("both", PLAN.shared)) for i in range(n)}
        assert set(mine) == expected == {doc_id for doc_id in state if doc_id.startswith("t-")}
        for doc_id in expected:
            assert mine[doc_id] == state[doc_id], doc_id
        assert mine["t-old-0"]["deleted"] and not any(mine[d]["deleted"] for d in expected - {"t-old-0"})
        for i in range(PLAN.shared):  # the worker merged both sides' edits, and the merge reached the tablet
            winner = mine[f"t-both-{i}"]["winner"]
            assert (winner["follow_up"], winner["reviewed_by"]) == (f"home visit t-both-{i}", "supervisor")
            assert "_conflicts" not in winner
        # The peer: the same winners and bodies as the server, no conflict left, nothing twice.
        assert pouch.peer is not None and pouch.converged, (pouch.peer.get("error"), pouch.peer.get("http_errors"))
        assert_peer_matches(pouch.peer, state, PLAN)
        ids = [row["id"] for row in server.call("GET", "_all_docs")["rows"]]
        assert len(ids) == len(set(ids)) == 2 * (PLAN.up + PLAN.down + PLAN.shared) + 1
    with app.app_context():
        assert_central_rows_rebuild(state)
    for run in (tablet, pouch):
        up, down = run.counts["up"], run.counts["down"]
        assert up["bytes"] > 0 and down["bytes"] > 0
        if links.mode == "netns":  # the link really dropped packets and TCP had to send them again
            assert up["lost_packets"] + down["lost_packets"] > 0
            assert up["retransmitted_packets"] + down["retransmitted_packets"] > 0
