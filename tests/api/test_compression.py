"""gzip of JSON replies (api.compression): large finished replies to clients that take gzip, nothing else."""
from __future__ import annotations

import gzip
import json

from flask import Flask, Response
from flask.testing import FlaskClient

from api.compression import gzip_json

DOCS = [{"_id": f"visit-{i:03d}", "notes": "fever cough referral " * 10} for i in range(30)]


def stored(client: FlaskClient) -> FlaskClient:
    assert client.put("/couch/wasl").status_code == 201
    assert client.post("/couch/wasl/_bulk_docs", json={"docs": DOCS}).status_code == 201
    return client


def test_a_large_reply_is_gzipped_for_a_client_that_takes_gzip(client: FlaskClient) -> None:
    stored(client)
    plain = client.get("/couch/wasl/_all_docs?include_docs=true", headers={"Accept-Encoding": "identity"})
    packed = client.get("/couch/wasl/_all_docs?include_docs=true", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"] and "Accept-Encoding" in plain.headers["Vary"]
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data) / 4
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    assert len(plain.get_json()["rows"]) == len(DOCS)


def test_gzip_refused_by_quality_zero_or_not_offered_is_not_sent(client: FlaskClient) -> None:
    stored(client)
    for accept in ("gzip;q=0, identity", "br", ""):
        resp = client.get("/couch/wasl/_all_docs?include_docs=true", headers={"Accept-Encoding": accept})
        assert "Content-Encoding" not in resp.headers, accept
        assert len(resp.get_json()["rows"]) == len(DOCS)


def test_a_small_reply_goes_plain(client: FlaskClient) -> None:
    resp = client.get("/couch/", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in resp.headers and resp.get_json()["couchdb"] == "Welcome"
    assert "Accept-Encoding" in resp.headers["Vary"]


def reply(app: Flask, response: Response, accept: str = "gzip") -> Response:
    with app.test_request_context(headers={"Accept-Encoding": accept}):
        return gzip_json(response, level=5, min_bytes=1024)


def test_errors_streams_other_types_and_encoded_replies_are_left_as_they_are(app: Flask) -> None:
    big = json.dumps({"reason": "x" * 4000})
    cases = {
        "error": Response(big, status=404, mimetype="application/json"),
        "stream": Response(iter([big]), mimetype="application/json"),
        "html": Response(big, mimetype="text/html"),
        "already encoded": Response(big, mimetype="application/json", headers={"Content-Encoding": "br"}),
    }
    for name, response in cases.items():
        out = reply(app, response)
        assert out.headers.get("Content-Encoding") in (None, "br"), name
        if not out.is_streamed:
            assert out.get_data(as_text=True) == big, name


def test_a_strong_etag_names_the_gzipped_bytes_apart_from_the_plain_ones(app: Flask) -> None:
    response = Response(json.dumps({"n": "y" * 3000}), mimetype="application/json")
    response.set_etag("abc")
    out = reply(app, response)
    assert out.headers["Content-Encoding"] == "gzip" and out.get_etag() == ("abc:gzip", False)
    assert json.loads(gzip.decompress(out.get_data())) == {"n": "y" * 3000}
