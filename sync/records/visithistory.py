"""A visit's revisions for the visit page: each one's place in the tree, and who stored it.

The tree and the kept bodies come from the records database; who stored a revision, when,
from which device and by which path, from its ``doc.write`` audit entry (docs/access.md).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Revision, db
from models.audit import AuditEntry
from models.device import Device

from .. import jsoncodec
from ..revs import format_rev
from ..revtree import traverse_rev_tree
from ..rows import doc_by_id
from ..store import get_database

Json = dict[str, Any]


def visit_document(db_name: str, doc_id: str, *, max_revisions: int = 100) -> tuple[Json | None, list[Json]]:
    """A document's winning body (None if none is held) and its revision history, newest first.

    Each revision: ``rev``, ``pos``, ``deleted``, ``leaf``, ``winner``, ``held`` (the server
    keeps its body), from a held body ``updated_at`` and ``updated_by``, and who stored it
    (``writers``).
    """
    doc = doc_by_id(get_database(db_name).id, doc_id)
    if doc is None:
        return None, []
    nodes = sorted(((pos, rev_hash, leaf, opts) for leaf, pos, rev_hash, opts in traverse_rev_tree(doc.rev_tree)),
                   key=lambda n: (n[0], n[1]), reverse=True)[:max_revisions]
    revs = [format_rev(pos, rev_hash) for pos, rev_hash, _, _ in nodes]
    held = {rev: jsoncodec.loads(body) for rev, body in db.session.execute(
        select(Revision.rev, Revision.body).where(Revision.document_id == doc.id, Revision.rev.in_(revs)))}
    history = []
    for (pos, _, leaf, opts), rev in zip(nodes, revs):
        body = held.get(rev)
        history.append({"rev": rev, "pos": pos, "deleted": bool(opts.get("deleted")), "leaf": leaf,
                        "winner": rev == doc.winning_rev, "held": body is not None,
                        "updated_at": (body or {}).get("updated_at"), "updated_by": (body or {}).get("updated_by")})
    for revision, who in zip(history, writers(db_name, doc_id, revs)):
        revision.update(who)
    return (None if doc.deleted else held.get(doc.winning_rev)), history


NOBODY: Json = {"written_by": None, "written_at": None, "written_via": None, "device_id": None, "device_name": None}
MAX_WRITES = 1000  # doc.write entries read per document: far more than its revisions shown


def writers(db_name: str, doc_id: str, revs: list[str]) -> list[Json]:
    """Who stored each of ``revs`` on the server, when and from which device, from the audit log.

    The ``doc.write`` entry of a revision (detail ``rev`` and ``via``) is written with the
    revision itself; the first one for a rev counts. ``written_at`` is epoch seconds. A
    revision stored before such entries existed, or never stored here, has None for each.
    """
    entries = db.session.execute(select(AuditEntry.actor, AuditEntry.at, AuditEntry.device_id, AuditEntry.detail)
                                 .where(AuditEntry.db_name == db_name, AuditEntry.doc_id == doc_id,
                                        AuditEntry.action == "doc.write")
                                 .order_by(AuditEntry.id).limit(MAX_WRITES)).all()
    wanted, first = set(revs), {}
    for actor, at, device_id, detail in entries:
        rev = detail.get("rev") if isinstance(detail, dict) else None
        if rev in wanted and rev not in first:
            via = detail.get("via")
            first[rev] = {"written_by": actor, "written_at": at, "written_via": via if isinstance(via, str) else None,
                          "device_id": device_id, "device_name": None}
    devices = {d for d in (w["device_id"] for w in first.values()) if d}
    names = dict(db.session.execute(select(Device.id, Device.name).where(Device.id.in_(devices))).tuples().all()
                 ) if devices else {}
    for who in first.values():
        who["device_name"] = names.get(who["device_id"])
    return [first.get(rev, NOBODY) for rev in revs]
