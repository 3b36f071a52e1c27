"""Campaign documents, written by the server for an organiser and read back for the pages and the API.

A campaign (docs/records.md) is a server-authored document of the records database:
``condition``, ``areas``, ``start_date``/``end_date``, ``eligibility``, ``fields`` (thresholds
that raise a referral), ``targets`` per area, ``organiser`` and ``chws``. Assigning it to
areas and CHWs sets ``areas`` and ``chws``; the scope index then gives the document the
keys ``reach:<area>`` and ``user:<chw>`` (docs/access.md), so it reaches those tablets by
replication. An organiser sees and edits only the campaigns whose ``organiser`` is them;
an admin sees all. Every write is checked first (``sync.records.schemas`` plus the areas,
CHWs and organiser named existing) and a refusal writes nothing.

The list reads the ids from the central ``health_campaign`` table (the worker's
projection) and the bodies from the documents: campaigns are few, and their current
bodies are what an organiser edits.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import select

from models import User, db
from models.access import Area
from models.health import Campaign

from .. import audit
from ..errors import BadRequest, Conflict, DatabaseNotFound, NotFound
from ..rows import bodies_of, docs_by_ids
from ..scope import is_admin
from ..store import get_database, write_lock
from ..writes import Author, Batch, edit_one
from .schemas import Errors, check_document, reason_of
from .visibility import Visibility

Json = dict[str, Any]
EDITABLE = ("name", "condition", "areas", "start_date", "end_date", "eligibility", "fields", "targets", "chws")


class Invalid(BadRequest):
    """A campaign that fails its checks; ``fields`` maps each dotted path to its messages."""

    def __init__(self, fields: Errors) -> None:
        super().__init__(reason_of(fields))
        self.fields = fields


@dataclass(frozen=True)
class CampaignDoc:
    """A campaign document's id, winning rev and body."""

    id: str
    rev: str
    body: Json

    def status(self, today: date | None = None) -> str:
        """``planned`` before its start date, ``ended`` after its end date, else ``running``."""
        day = (today or datetime.now(timezone.utc).date()).isoformat()
        start, end = self.body.get("start_date"), self.body.get("end_date")
        if isinstance(start, str) and day < start:
            return "planned"
        if isinstance(end, str) and day > end:
            return "ended"
        return "running"

    def to_json(self) -> Json:
        """The campaign as the API shows it."""
        out: Json = {"id": self.id, "rev": self.rev}
        for name in (*EDITABLE, "organiser", "updated_at", "updated_by"):
            out[name] = self.body.get(name)
        out["areas"], out["chws"] = out["areas"] or [], out["chws"] or []
        out["fields"], out["targets"] = out["fields"] or [], out["targets"] or {}
        out["eligibility"] = out["eligibility"] or {}
        out["status"] = self.status()
        return out


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _visible(body: Json, viewer: Visibility | None) -> bool:
    return viewer is None or viewer.all or body.get("organiser") == viewer.name


def get_campaign(db_name: str, campaign_id: str, viewer: Visibility | None = None) -> CampaignDoc:
    """The live campaign ``campaign_id`` as ``viewer`` may see it (None: no check).

    :raise 404: no such live campaign, or not one the viewer runs (not told apart, so
        an organiser cannot probe for other organisers' campaigns).
    """
    database = get_database(db_name)
    row = docs_by_ids(database.id, [campaign_id]).get(campaign_id) if plausible_id(campaign_id) else None
    body = None if row is None or row.deleted else bodies_of([(row.id, row.winning_rev)]).get(
        (row.id, row.winning_rev))
    if row is None or not isinstance(body, dict) or body.get("type") != "campaign" or not _visible(body, viewer):
        raise NotFound(f"No campaign {campaign_id!r}")
    return CampaignDoc(row.doc_id, row.winning_rev, body)


def list_campaigns(db_name: str, viewer: Visibility) -> list[CampaignDoc]:
    """The live campaigns the viewer may see, latest start first, then by name (none without the database)."""
    try:
        database = get_database(db_name)
    except DatabaseNotFound:
        return []
    ids = list(db.session.scalars(select(Campaign.doc_id).where(Campaign.db_name == db_name,
                                                                Campaign.deleted.is_(False))))
    rows = [r for r in docs_by_ids(database.id, ids).values() if not r.deleted]
    bodies = bodies_of([(r.id, r.winning_rev) for r in rows])
    found = [CampaignDoc(r.doc_id, r.winning_rev, body) for r in rows
             if isinstance(body := bodies.get((r.id, r.winning_rev)), dict) and body.get("type") == "campaign"
             and _visible(body, viewer)]
    found.sort(key=lambda c: (str(c.body.get("name") or c.body.get("condition") or ""), c.id))
    found.sort(key=lambda c: str(c.body.get("start_date") or ""), reverse=True)
    return found


def known_areas() -> list[tuple[str, str, str]]:
    """(path, kind, name) of every area a campaign may name (facilities excluded), in path order."""
    rows = db.session.execute(select(Area.path, Area.kind, Area.name).where(Area.kind != "facility"))
    return sorted(((p, k, n) for p, k, n in rows), key=lambda a: a[0].split("/"))


def users_with_role(role: str) -> list[str]:
    """Names of the enabled accounts holding ``role``, sorted."""
    users = db.session.execute(select(User.name, User.roles).where(User.disabled.is_(False)))
    return sorted(name for name, roles in users if role in (roles or ()))


def organisers() -> list[str]:
    """Names of the enabled accounts that may run a campaign: organisers and admins."""
    users = db.session.execute(select(User.name, User.roles).where(User.disabled.is_(False)))
    return sorted(name for name, roles in users if "organiser" in (roles or ()) or is_admin(roles or ()))


def _has(errors: Errors, name: str) -> bool:
    return any(path == name or path.startswith(name + ".") for path in errors)


def check_campaign(body: Json) -> Errors | None:
    """The errors of a campaign body: its schema, then areas, CHWs and organiser that must exist."""
    errors: Errors = check_document(body) or {}
    areas = body.get("areas")
    if not _has(errors, "areas") and isinstance(areas, list):
        known = {path for path, _, _ in known_areas()}
        missing = [a for a in areas if a not in known]
        if missing:
            errors["areas"] = [f"No such area: {', '.join(map(str, missing))}."]
    targets = body.get("targets")
    if isinstance(targets, dict) and isinstance(areas, list) and not _has(errors, "areas"):
        for path in targets:
            if f"targets.{path}" not in errors and not any(path == a or str(path).startswith(a + "/")
                                                           for a in areas):
                errors[f"targets.{path}"] = ["Not one of the campaign's areas or inside one."]
    chws = body.get("chws")
    if not _has(errors, "chws") and isinstance(chws, list) and chws:
        unknown = sorted(set(chws) - set(users_with_role("chw")))
        if unknown:
            errors["chws"] = [f"Not a CHW account: {', '.join(map(str, unknown))}."]
    organiser = body.get("organiser")
    if not _has(errors, "organiser") and organiser is not None and organiser not in organisers():
        errors["organiser"] = ["Not an organiser account."]
    return errors or None


def plausible_id(value: object) -> bool:
    """Whether ``value`` could be a document id (a lookup of anything else finds nothing)."""
    return isinstance(value, str) and 0 < len(value) <= 500 and value.isprintable()


def _values(values: Json) -> Json:
    unknown = sorted(k for k in values if k not in EDITABLE and k != "organiser")
    if unknown:
        raise Invalid({k: ["Unknown field."] for k in unknown})
    try:
        json.dumps(values, ensure_ascii=False).encode()
    except (UnicodeError, ValueError):  # lone surrogates: no store could keep them
        raise BadRequest("The campaign holds text that is not valid Unicode") from None
    return dict(values)


def create_campaign(db_name: str, values: Json, actor: str, *, organiser: str) -> CampaignDoc:
    """Write a new campaign run by ``organiser``; raise ``Invalid`` (nothing written) if it fails its checks."""
    body: Json = {"type": "campaign", **_values(values), "organiser": organiser,
                  "updated_at": _stamp(), "updated_by": actor}
    body = {k: v for k, v in body.items() if v is not None or k in ("type", "organiser")}
    errors = check_campaign(body)
    if errors:
        raise Invalid(errors)
    doc_id = f"campaign-{uuid.uuid4().hex}"
    with write_lock(db_name) as txn:
        batch = Batch(txn, author=Author(actor, "campaign"))
        rev = str(edit_one(batch, {"_id": doc_id, **body})["rev"])
        batch.flush()
        audit.record(actor, "campaign.create", db_name=db_name, doc_id=doc_id, rev=rev, organiser=organiser,
                     areas=body.get("areas"), chws=body.get("chws") or [])
    return CampaignDoc(doc_id, rev, body)


def update_campaign(db_name: str, campaign_id: str, values: Json, actor: str, *, viewer: Visibility,
                    rev: str | None = None) -> CampaignDoc:
    """Replace the given fields of a campaign (``None`` removes one) as a new revision.

    :param rev: the revision the edit started from; another current one is a 409.
    :raise 404: not a live campaign the viewer runs. :raise 400: ``Invalid``, nothing written.
    """
    values = _values(values)
    if "organiser" in values and not viewer.all:
        raise Invalid({"organiser": ["Only an admin hands a campaign to another organiser."]})
    current = get_campaign(db_name, campaign_id, viewer)
    body = {k: v for k, v in {**current.body, **values, "updated_at": _stamp(), "updated_by": actor}.items()
            if v is not None or k == "organiser"}
    errors = check_campaign(body)
    if errors:
        raise Invalid(errors)
    changed = sorted(k for k in values if current.body.get(k) != body.get(k))
    with write_lock(db_name) as txn:
        batch = Batch(txn, author=Author(actor, "campaign"))
        batch.load([campaign_id])
        doc = batch.docs.get(campaign_id)
        # Checked again under the lock: the campaign may have changed since it was read.
        if doc is None or doc.deleted:
            raise NotFound(f"No campaign {campaign_id!r}")
        if doc.winning_rev != current.rev or (rev is not None and rev != doc.winning_rev):
            raise Conflict("The campaign was changed meanwhile: reload it and edit again")
        new_rev = str(edit_one(batch, {"_id": campaign_id, "_rev": doc.winning_rev, **body})["rev"])
        batch.flush()
        audit.record(actor, "campaign.update", db_name=db_name, doc_id=campaign_id, rev=new_rev, fields=changed)
    return CampaignDoc(campaign_id, new_rev, body)
