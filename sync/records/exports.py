"""Line lists of a campaign's screening visits: CSV (the csv module) and XLSX (xlsxwriter).

One row per live visit of the campaign that passes the progress page's filters
(``sync.records.filters``), oldest first: the visit, its patient's sex and age band (on
the campaign's reference date), area, CHW, date, every observation field, the risk flags,
whether a campaign threshold was met, and the status of the visit's latest referral.
Patients appear by document id only: a line list carries no names.

Rows are read in pages (keyset on ``visited_at`` and id), so a large campaign streams
as CSV with a bounded memory; the XLSX is written row by row (xlsxwriter's constant
memory mode) into a temporary file.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from datetime import date
from typing import Any

import xlsxwriter
from sqlalchemy import func, or_, select

from models import db
from models.health import Patient, Referral, Visit

from .campaigns import CampaignDoc
from .filters import Filters, age_band, reference_date, visit_clauses
from .schemafields import OBSERVATIONS

COLUMNS = ("visit_id", "visited_at", "area", "chw", "patient_id", "sex", "age_band", "kind", *OBSERVATIONS,
           "risk_flags", "campaign_positive", "referral_status")
PAGE = 1000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _referral_statuses(db_name: str, campaign_id: str) -> dict[str, str]:
    """The status of the latest live referral of each visit of the campaign."""
    r, v = Referral.__table__.c, Visit.__table__.c
    rows = db.session.execute(
        select(r.visit_id, r.status).select_from(Referral.__table__.join(
            Visit.__table__, (v.db_name == r.db_name) & (v.doc_id == r.visit_id)))
        .where(r.db_name == db_name, r.deleted.is_(False), v.campaign_id == campaign_id)
        .order_by(func.coalesce(r.created_at, ""), r.doc_id))
    return {visit_id: status or "" for visit_id, status in rows}


def _cell(value: Any) -> Any:
    """An observation as one cell: numbers stay numbers, a list becomes text."""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    return value if isinstance(value, (int, float, str)) else str(value)


def _row(found: Any, on: date, statuses: dict[str, str]) -> list[Any]:
    doc_id, when, area, chw, patient_id, sex, born, estimate, kind, observations, flags = found
    obs = observations if isinstance(observations, dict) else {}
    flags = flags if isinstance(flags, list) else []
    return [doc_id, when or "", area or "", chw or "", patient_id or "", sex or "unknown", age_band(born, estimate, on),
            kind or "", *(_cell(obs.get(name)) for name in OBSERVATIONS), " ".join(flags),
            "yes" if any(f.startswith("campaign:") for f in flags) else "no", statuses.get(doc_id, "")]


def rows(db_name: str, campaign: CampaignDoc, filters: Filters, *, today: date | None = None) -> Iterator[list[Any]]:
    """The line list's rows (without the header), oldest visit first (visits without a time first of all).

    Pages follow the index on (campaign, ``visited_at``); each page ends its read
    transaction, so a slow download holds no snapshot open.
    """
    on = reference_date(campaign.body, today)
    statuses = _referral_statuses(db_name, campaign.id)
    v, p = Visit.__table__.c, Patient.__table__.c
    query = (select(v.doc_id, v.visited_at, v.area, v.chw, v.patient_id, p.sex, p.birth_date, p.estimated_age_years,
                    v.kind, v.observations, v.risk_flags)
             .select_from(Visit.__table__.outerjoin(Patient.__table__, (p.db_name == v.db_name)
                                                    & (p.doc_id == v.patient_id)))
             .where(v.db_name == db_name, v.campaign_id == campaign.id, v.deleted.is_(False),
                    *visit_clauses(v, p, filters, on)).limit(PAGE))
    untimed = query.where(v.visited_at.is_(None)).order_by(v.doc_id)
    timed = query.where(v.visited_at.is_not(None)).order_by(v.visited_at, v.doc_id)
    last: tuple[str, str] | None = None
    while True:  # visits without a time, by id
        found = db.session.execute(untimed if last is None else untimed.where(v.doc_id > last[1])).all()
        db.session.commit()
        yield from (_row(r, on, statuses) for r in found)
        if len(found) < PAGE:
            break
        last = ("", found[-1][0])
    last = None
    while True:  # then by time and id; ">=" on the time lets the index bound the range
        page = timed if last is None else timed.where(
            v.visited_at >= last[0], or_(v.visited_at > last[0], v.doc_id > last[1]))
        found = db.session.execute(page).all()
        db.session.commit()
        yield from (_row(r, on, statuses) for r in found)
        if len(found) < PAGE:
            return
        last = (found[-1][1], found[-1][0])


def _safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading quote (CSV injection)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_chunks(db_name: str, campaign: CampaignDoc, filters: Filters) -> Iterator[str]:
    """The CSV line list, a few hundred rows per chunk, header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for count, row in enumerate(rows(db_name, campaign, filters), 1):
        writer.writerow([_safe(v) for v in row])
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xlsx_bytes(db_name: str, campaign: CampaignDoc, filters: Filters) -> bytes:
    """The XLSX line list: one sheet, a bold header row, numbers as numbers, text never as formulas."""
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_formulas": False,
                                          "strings_to_urls": False, "strings_to_numbers": False})
        sheet = book.add_worksheet("line list")
        sheet.write_row(0, 0, COLUMNS, book.add_format({"bold": True}))
        sheet.freeze_panes(1, 0)
        for number, row in enumerate(rows(db_name, campaign, filters), 1):
            sheet.write_row(number, 0, row)
        book.close()
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)
