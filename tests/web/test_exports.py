"""The line lists: CSV and XLSX of the filtered screening visits, parsed back and compared row by row."""
from __future__ import annotations

import base64
import csv
import io
from typing import Any

import openpyxl
from flask import Flask

from sync.records.exports import COLUMNS

from .camp_data import load, sign_in

OLGA = {"Authorization": "Basic " + base64.b64encode(b"olga:password1").decode()}
EXPECTED = {
    "s1": ["s1", "2026-02-01T09:00:00.000Z", "north/d1/v1", "c1", "p1", "female", "45-59", "screening",
           150, 95, "", "", "", "", "", "", "bp_high campaign:bp_systolic", "yes", "completed"],
    "s2": ["s2", "2026-02-02T09:00:00.000Z", "north/d1/v1", "c1", "p2", "male", "30-44", "screening",
           120, 80, 5, "", "", "", "", "", "", "no", ""],
    "s3": ["s3", "2026-02-03T09:00:00.000Z", "north/d1/v1", "c1", "p4", "male", "15-29", "screening",
           "", "", 12, "", "", "", "", "=cmd; thirst", "campaign:glucose_mmol_l glucose_high", "yes", "cancelled"],
    "s4": ["s4", "2026-03-01T23:30:00.000Z", "north/d1/v2", "c2", "p5", "female", "30-44", "screening",
           130, 85, "", "", "", "", "", "", "", "no", ""],
    "s5": ["s5", "2026-03-05T09:00:00.000Z", "north/d2/v3", "c3", "p8", "female", "30-44", "screening",
           145, 90, "", "", "", "", "", "", "bp_high campaign:bp_systolic", "yes", "received"],
    "s6": ["s6", "2026-04-01T09:00:00.000Z", "north/d1/v1", "c1", "p1", "female", "45-59", "screening",
           138, 88, "", "", "", "", "", "", "", "no", ""],
}


def _as_csv(row: list[Any]) -> list[str]:
    """A row as the CSV file writes it: text, and a leading quote before what a spreadsheet would run."""
    return ["'" + v if isinstance(v, str) and v.startswith("=") else str(v) for v in row]


def _read_xlsx(data: bytes) -> list[list[Any]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    sheet = book["line list"]
    rows = [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
    formulas = [c for row in openpyxl.load_workbook(io.BytesIO(data))["line list"].iter_rows() for c in row
                if c.data_type == "f"]
    book.close()
    assert formulas == []  # text that looks like a formula stays text
    return rows


FILTERED = [
    ({}, ["s1", "s2", "s3", "s4", "s5", "s6"]),
    ({"sex": "female", "from": "2026-02-01", "to": "2026-03-01"}, ["s1", "s4"]),
    ({"area": "north/d2"}, ["s5"]),
    ({"chw": "c1", "band": "45-59"}, ["s1", "s6"]),
    ({"band": "0-4"}, []),
]


def test_the_line_lists_hold_the_filtered_rows(app: Flask) -> None:
    campaign_id = load(app)
    client = app.test_client()
    for args, visits in FILTERED:
        reply = client.get(f"/api/v1/campaigns/{campaign_id}/export.csv", query_string=args, headers=OLGA)
        assert reply.status_code == 200 and reply.mimetype == "text/csv"
        assert reply.headers["Content-Disposition"] == f'attachment; filename="{campaign_id}-line-list.csv"'
        rows = list(csv.reader(io.StringIO(reply.get_data(as_text=True))))
        assert rows[0] == list(COLUMNS)
        assert rows[1:] == [_as_csv(EXPECTED[v]) for v in visits], args
        book = client.get(f"/api/v1/campaigns/{campaign_id}/export.xlsx", query_string=args, headers=OLGA)
        assert book.status_code == 200 and book.mimetype.endswith("spreadsheetml.sheet")
        sheet = _read_xlsx(book.data)
        assert sheet[0] == list(COLUMNS) and sheet[1:] == [EXPECTED[v] for v in visits], args


def test_the_page_offers_the_same_files(app: Flask) -> None:
    campaign_id = load(app)
    client = app.test_client()
    sign_in(client, "olga")
    html = client.get(f"/campaigns/{campaign_id}/progress", query_string={"sex": "male"}).get_data(as_text=True)
    assert f"/campaigns/{campaign_id}/export.csv?sex=male" in html
    rows = list(csv.reader(io.StringIO(client.get(f"/campaigns/{campaign_id}/export.csv?sex=male").get_data(
        as_text=True))))
    assert [r[0] for r in rows[1:]] == ["s2", "s3"]
    assert client.get(f"/campaigns/{campaign_id}/export.csv?from=yesterday").status_code == 400
    bad = client.get(f"/api/v1/campaigns/{campaign_id}/export.xlsx?to=2026-13-01", headers=OLGA)
    assert bad.status_code == 400 and bad.get_json()["reason"] == "to must be a date, YYYY-MM-DD"
