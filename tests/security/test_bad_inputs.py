"""A catalogue of named bad inputs: each is refused with its own 4xx, quickly, and writes nothing.

Every entry is sent to the app on the security world's committed mini county (379901: two towns,
115.70–115.80°E, 36.00–36.05°N). Before and after, the rows of every table a request could write
(cases, events, attachments, tokens, login attempts, coordination requests and referrals) and the
attachment files are counted: a refused request leaves them all as they were. An API answer is
problem+json, an Open311 answer the specification's error list; neither ever comes back as HTML.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from tests.security.conftest import MAX_UPLOAD_MB, OPEN311_KEY

INSIDE = [115.72, 36.02]  # west town
PROBLEM = "application/problem+json"
SCRIPT = "<script>alert('x')</script>"
MISSING = object()


# -- payload builders ---------------------------------------------------------------------------------------
def png(width: int = 4, height: int = 4) -> bytes:
    """Return a real PNG from Pillow."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """Return a tiny PNG whose header claims ten billion pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def zip_bomb() -> bytes:
    """Return a small zip of a 50 MB file of zeros, named like a photo."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("photo.jpg", b"\x00" * 50_000_000)
    return out.getvalue()


def gzip_bomb() -> bytes:
    """Return a gzip stream of 50 MB of zeros (about 50 kB)."""
    import gzip

    return gzip.compress(b"0" * 50_000_000)


def polygon_text(vertices: int) -> str:
    """Return the JSON text of a case report whose polygon has this many vertices (cheaply, as text)."""
    ring = ",".join(["[115.71,36.01]"] * vertices)  # the count is refused before the shape is looked at
    return '{"category":"TD02","geometry":{"type":"Polygon","coordinates":[[' + ring + ']]}}'


def report(**changes: Any) -> dict[str, Any]:
    """Return a valid case report with some fields changed (MISSING removes one)."""
    body: dict[str, Any] = {"category": "TD02", "geometry": {"type": "Point", "coordinates": INSIDE},
                            "description": "bad-input catalogue"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not MISSING}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def open311(**changes: str) -> dict[str, str]:
    """Return a valid Open311 request form with some fields changed."""
    form = {"api_key": OPEN311_KEY, "service_code": "TD02", "lat": "36.02", "long": "115.72",
            "description": "bad-input catalogue"}
    form.update(changes)
    return form


@dataclass(frozen=True)
class Bad:
    """One named bad input: the request, who sends it, and the status it must get."""

    id: str
    method: str
    url: str
    expect: int | tuple[int, ...]
    user: str | None = "op"
    json: Any = MISSING
    data: bytes | str | dict | Callable[[], bytes | str] | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[bytes | Callable[[], bytes], str, str]] | None = None
    # A bound against hanging (a hostile body must be refused, not processed), not a speed target:
    # generous, because CI machines are shared and noisy.
    seconds: float = 30.0


CASES = "/api/v1/cases"
STEP = "/api/v1/cases/{case}/transitions"
PHOTO = "/api/v1/cases/{case}/attachments"
TOKENS = "/api/v1/auth/tokens"
O311 = "/open311/v2/requests.json"
BIG = MAX_UPLOAD_MB * 1024 * 1024

CATALOGUE: list[Bad] = [
    # -- coordinates -------------------------------------------------------------------------------------
    Bad("swapped-lat-lon", "POST", CASES, 400, json=report(geometry=point(36.02, 115.72))),
    Bad("undeclared-gcj02-shifted-outside-county", "POST", CASES, 400,
        # WGS-84 (115.797, 36.02) is inside, 300 m from the east edge; its GCJ-02 twin (≈115.8027) is not.
        json=report(geometry=point(115.80273, 36.01996))),
    Bad("declared-gcj02-converted-outside-county", "POST", CASES, 400,
        json=report(geometry=point(115.7005, 36.02), coord_system="gcj02")),
    Bad("declared-bd09-converted-outside-county", "POST", CASES, 400,
        json=report(geometry=point(115.7020, 36.02), coord_system="bd09")),
    Bad("unknown-coordinate-system", "POST", CASES, 400, json=report(coord_system="mars")),
    Bad("coordinates-out-of-range", "POST", CASES, 400, json=report(geometry=point(500.0, -400.0))),
    Bad("point-outside-county", "POST", CASES, 400, json=report(geometry=point(116.5, 36.5))),
    Bad("nan-literal-in-coordinates", "POST", CASES, 400, content_type="application/json",
        data='{"category":"TD02","geometry":{"type":"Point","coordinates":[NaN,36.02]}}'),
    Bad("infinity-1e999-in-coordinates", "POST", CASES, 400, content_type="application/json",
        data='{"category":"TD02","geometry":{"type":"Point","coordinates":[1e999,36.02]}}'),
    Bad("infinity-literal-in-coordinates", "POST", CASES, 400, content_type="application/json",
        data='{"category":"TD02","geometry":{"type":"Point","coordinates":[115.72,-Infinity]}}'),
    Bad("nan-in-route-query", "GET", "/api/v1/route?lon=NaN&lat=36.02&category=TD02", 400),
    Bad("infinity-in-route-query", "GET", "/api/v1/route?lon=115.72&lat=inf&category=TD02", 400),
    Bad("nan-hours-in-transition", "POST", STEP, 400, content_type="application/json",
        data='{"action":"request_extension","version":1,"hours":NaN}'),
    Bad("coordinates-as-strings", "POST", CASES, 400,
        json=report(geometry={"type": "Point", "coordinates": ["115.72", "36.02"]})),
    Bad("three-coordinates-of-text", "POST", CASES, 400,
        json=report(geometry={"type": "Point", "coordinates": [115.72, 36.02, "x"]})),
    # -- geometry ------------------------------------------------------------------------------------------
    Bad("self-intersecting-polygon", "POST", CASES, 400, json=report(geometry={"type": "Polygon", "coordinates": [
        [[115.71, 36.01], [115.73, 36.03], [115.73, 36.01], [115.71, 36.03], [115.71, 36.01]]]})),
    Bad("unclosed-polygon-ring", "POST", CASES, 400, json=report(geometry={"type": "Polygon", "coordinates": [
        [[115.71, 36.01], [115.73, 36.03], [115.73, 36.01]]]})),
    Bad("empty-point", "POST", CASES, 400, json=report(geometry={"type": "Point", "coordinates": []})),
    Bad("empty-polygon", "POST", CASES, 400, json=report(geometry={"type": "Polygon", "coordinates": []})),
    Bad("empty-multipolygon", "POST", CASES, 400, json=report(geometry={"type": "MultiPolygon", "coordinates": []})),
    Bad("linestring-not-allowed", "POST", CASES, 400,
        json=report(geometry={"type": "LineString", "coordinates": [INSIDE, [115.73, 36.03]]})),
    Bad("geometry-collection-not-allowed", "POST", CASES, 400,
        json=report(geometry={"type": "GeometryCollection", "geometries": []})),
    Bad("geometry-as-wkt-text", "POST", CASES, 400, json=report(geometry="POINT(115.72 36.02)")),
    Bad("polygon-100001-vertices-under-size-limit", "POST", CASES, 400, content_type="application/json",
        data=lambda: polygon_text(100_001)),
    Bad("polygon-one-million-vertices", "POST", CASES, 413, content_type="application/json",
        data=lambda: polygon_text(1_000_000)),
    # -- bodies ----------------------------------------------------------------------------------------------
    Bad("json-nested-10000-deep", "POST", CASES, 400, content_type="application/json",
        data="[" * 10_000 + "]" * 10_000),
    Bad("json-nested-10000-deep-in-coordinates", "POST", CASES, 400, content_type="application/json",
        data='{"category":"TD02","geometry":{"type":"Point","coordinates":' + "[" * 10_000 + "]" * 10_000 + "}}"),
    Bad("json-body-over-max-upload", "POST", CASES, 413, content_type="application/json",
        data=lambda: '{"category":"TD02","description":"' + "x" * (BIG + 10) + '"}'),
    Bad("photo-over-max-upload", "POST", PHOTO, 413, files={"file": (lambda: b"\xff\xd8\xff" + b"0" * BIG, "big.jpg",
                                                                    "image/jpeg")}),
    Bad("gzip-bomb-as-json-body", "POST", CASES, 400, content_type="application/json",
        headers={"Content-Encoding": "gzip"}, data=gzip_bomb),
    Bad("malformed-json", "POST", CASES, 400, content_type="application/json", data='{"category": "TD02",'),
    Bad("empty-json-body", "POST", CASES, 400, content_type="application/json", data=""),
    Bad("no-body-at-all", "POST", CASES, 400),
    Bad("json-null-body", "POST", CASES, 400, content_type="application/json", data="null"),
    Bad("array-instead-of-object", "POST", CASES, 400, json=[report()]),
    Bad("array-instead-of-geometry-object", "POST", CASES, 400, json=report(geometry=[115.72, 36.02])),
    Bad("string-instead-of-object", "POST", "/api/v1/coordination/requests", 400, json="subject"),
    Bad("duplicate-json-keys", "POST", CASES, 400, content_type="application/json",
        data='{"category":"TD02","category":"ZZ99","geometry":{"type":"Point","coordinates":[115.72,36.02]}}'),
    Bad("not-utf8-json", "POST", CASES, 400, content_type="application/json",
        data=b'{"category":"TD02","description":"\xff\xfe"}'),
    # -- media types -----------------------------------------------------------------------------------------
    Bad("json-sent-as-text-plain", "POST", CASES, 415, content_type="text/plain",
        data='{"category":"TD02","geometry":{"type":"Point","coordinates":[115.72,36.02]}}'),
    Bad("form-sent-to-json-endpoint", "POST", CASES, 415, data={"category": "TD02", "description": "x"}),
    Bad("xml-sent-to-json-endpoint", "POST", "/api/v1/coordination/referrals", 415, content_type="application/xml",
        data="<referral><clue>x</clue></referral>"),
    Bad("form-sent-to-login", "POST", TOKENS, 415, user=None, data={"username": "op", "password": "x"}),
    Bad("json-sent-to-photo-upload", "POST", PHOTO, 400, json={"file": "aGVsbG8="}),
    Bad("open311-json-instead-of-form", "POST", O311, 400, user=None, json=open311()),
    # -- photos ----------------------------------------------------------------------------------------------
    Bad("photo-that-is-html", "POST", PHOTO, 415,
        files={"file": (f"<html><body>{SCRIPT}</body></html>".encode(), "photo.jpg", "image/jpeg")}),
    Bad("photo-jpeg-magic-then-html", "POST", PHOTO, 400,
        files={"file": (b"\xff\xd8\xff\xe0" + f"<html>{SCRIPT}</html>".encode(), "photo.jpg", "image/jpeg")}),
    Bad("photo-svg-with-script", "POST", PHOTO, 415,
        files={"file": (f'<svg xmlns="http://www.w3.org/2000/svg">{SCRIPT}</svg>'.encode(), "p.svg",
                        "image/svg+xml")}),
    Bad("photo-png-decompression-bomb", "POST", PHOTO, 400, files={"file": (png_bomb, "bomb.png", "image/png")}),
    Bad("photo-zip-bomb", "POST", PHOTO, 415, files={"file": (zip_bomb, "photo.jpg", "image/jpeg")}),
    Bad("photo-truncated-png", "POST", PHOTO, 400, files={"file": (lambda: png()[:40], "cut.png", "image/png")}),
    Bad("photo-empty-file", "POST", PHOTO, 400, files={"file": (b"", "empty.jpg", "image/jpeg")}),
    Bad("photo-traversal-name-not-an-image", "POST", PHOTO, 415,
        files={"file": (b"root:x:0:0:root:/root:/bin/bash\n", "../../etc/passwd", "image/jpeg")}),
    Bad("photo-unknown-stage", "POST", PHOTO, 400, data={"stage": "../../etc"},
        files={"file": (png, "p.png", "image/png")}),
    Bad("photo-nul-in-file-name", "POST", PHOTO, 400, files={"file": (png, "p\x00.png", "image/png")}),
    # -- paths -----------------------------------------------------------------------------------------------
    Bad("traversal-in-docs-asset-path", "GET", "/api/v1/docs/assets/../../../../etc/passwd", 404, user=None),
    Bad("encoded-traversal-in-docs-asset-path", "GET", "/api/v1/docs/assets/..%2f..%2f..%2fetc%2fpasswd", 404,
        user=None),
    Bad("traversal-in-attachment-id", "GET", "/api/v1/attachments/..%2f..%2fetc%2fpasswd", 404),
    Bad("traversal-in-layer-name", "GET", "/api/v1/layers/..%2f..%2fetc%2fpasswd/items", 404),
    Bad("traversal-in-tile-layer", "GET", "/api/v1/tiles/..%2f..%2fetc%2fpasswd/1/1/1.mvt", 404),
    Bad("traversal-in-open311-service", "GET", "/open311/v2/services/..%2f..%2fetc%2fpasswd.json", 404, user=None),
    Bad("newline-in-open311-path", "GET", "/open311/v2/%0A.json", 404, user=None),
    Bad("unknown-layer", "GET", "/api/v1/layers/nope/items", 404),
    Bad("unknown-tile-layer", "GET", "/api/v1/tiles/nope/1/1/1.mvt", 404),
    # -- huge numbers ----------------------------------------------------------------------------------------
    Bad("case-id-2-pow-63", "GET", f"/api/v1/cases/{2**63}", 404),
    Bad("case-id-2-pow-64-events", "GET", f"/api/v1/cases/{2**64}/events", 404),
    Bad("case-id-2-pow-63-transition", "POST", f"/api/v1/cases/{2**63}/transitions", 404,
        json={"action": "file", "version": 1}),
    Bad("attachment-id-2-pow-63", "GET", f"/api/v1/attachments/{2**63}", 404),
    Bad("layer-item-id-2-pow-63", "GET", f"/api/v1/layers/cases/items/{2**63}", 404),
    Bad("token-id-2-pow-63", "DELETE", f"/api/v1/auth/tokens/{2**63}", 404),
    Bad("token-id-2-pow-31", "DELETE", f"/api/v1/auth/tokens/{2**31}", 404, user="ad"),
    Bad("request-id-2-pow-31", "GET", f"/api/v1/coordination/requests/{2**31}", 404),
    Bad("referral-id-2-pow-40-step", "POST", f"/api/v1/coordination/referrals/{2**40}/steps", 404,
        json={"action": "close"}),
    Bad("request-id-2-pow-63", "GET", f"/api/v1/coordination/requests/{2**63}", 404),
    Bad("referral-id-2-pow-63-step", "POST", f"/api/v1/coordination/referrals/{2**63}/steps", 404,
        json={"action": "close"}),
    Bad("tile-zoom-huge", "GET", f"/api/v1/tiles/cases/{2**63}/0/0.mvt", 400),
    Bad("target-agency-2-pow-63-in-body", "POST", STEP, 400, json={"action": "dispatch", "version": 1,
                                                                   "target_agency_id": 2**63}),
    Bad("merge-into-2-pow-63-in-body", "POST", STEP, 400, json={"action": "merge", "version": 1,
                                                                "merge_into": 2**63}),
    Bad("version-2-pow-63-in-body", "POST", STEP, 400, json={"action": "file", "version": 2**63}),
    Bad("case-id-2-pow-63-in-referral", "POST", "/api/v1/coordination/referrals", 400,
        json={"to_agency_id": 1, "clue": "x", "case_id": 2**63}),
    Bad("float-version-in-body", "POST", STEP, 400, json={"action": "file", "version": 1.5}, user="sup1"),
    Bad("float-agency-id-in-referral", "POST", "/api/v1/coordination/referrals", 400, user="li",
        json={"to_agency_id": 1.7, "clue": "x"}),
    Bad("version-as-a-word", "POST", STEP, 400, json={"action": "file", "version": "one"}, user="sup1"),
    # -- unicode NUL and unpaired surrogates -------------------------------------------------------------------
    Bad("nul-in-description", "POST", CASES, 400, json=report(description="before\x00after")),
    Bad("nul-in-category", "POST", CASES, 400, json=report(category="TD\x0002")),
    Bad("nul-in-json-key", "POST", CASES, 400, json={**report(), "desc\x00ription": "x"}),
    Bad("lone-surrogate-in-address", "POST", CASES, 400, content_type="application/json",
        data='{"category":"TD02","geometry":{"type":"Point","coordinates":[115.72,36.02]},"address":"\\ud800"}'),
    Bad("nul-in-login-username", "POST", TOKENS, 400, user=None, json={"username": "op\x00", "password": "x"}),
    Bad("nul-in-coordination-subject", "POST", "/api/v1/coordination/requests", 400,
        json={"kind": "advice", "to_agency_id": 1, "subject": "a\x00b", "body": "x"}),
    Bad("nul-in-transition-note", "POST", STEP, 400, json={"action": "file", "version": 1, "note": "\x00"}),
    Bad("nul-in-query-filter", "GET", "/api/v1/cases?category=TD%0002", 400),
    Bad("nul-in-layer-name", "GET", "/api/v1/layers/cases%00/items", 400),
    Bad("nul-in-open311-description", "POST", O311, 400, user=None, data=open311(description="a\x00b")),
    Bad("nul-in-open311-service-path", "GET", "/open311/v2/services/TD%0002.json", 400, user=None),
    Bad("nul-in-open311-request-id", "GET", "/open311/v2/requests/AJ%00.json", 400, user=None),
    Bad("nul-in-open311-query", "GET", "/open311/v2/requests.json?service_code=TD%0002", 400, user=None),
    # -- categories ----------------------------------------------------------------------------------------------
    Bad("unknown-category-report", "POST", CASES, 400, json=report(category="ZZ99")),
    Bad("unknown-category-route", "GET", "/api/v1/route?lon=115.72&lat=36.02&category=ZZ99", 400),
    Bad("unknown-category-indicators", "GET", "/api/v1/indicators?start=2021-01-01T00:00:00Z"
        "&end=2021-02-01T00:00:00Z&category=ZZ99", 400),
    Bad("unknown-category-open311", "POST", O311, 404, user=None, data=open311(service_code="ZZ99")),
    Bad("unknown-category-reroute", "POST", STEP, (400, 409), user="sup1",
        json={"action": "reroute", "version": 1, "category": "ZZ99", "note": "x"}),
    Bad("category-sql-injection-report", "POST", CASES, 400, json=report(category="TD02' OR '1'='1")),
    # -- dates without a time zone ---------------------------------------------------------------------------
    Bad("naive-reported-at", "POST", CASES, 400, json=report(reported_at="2021-05-01T08:00:00")),
    Bad("naive-cases-datetime", "GET", "/api/v1/cases?datetime=2021-05-01T00:00:00", 400),
    Bad("naive-cases-interval-end", "GET", "/api/v1/cases?datetime=2021-05-01T00:00:00Z/2021-06-01T00:00:00", 400),
    Bad("naive-cases-at", "GET", "/api/v1/cases?at=2021-05-01T00:00:00", 400),
    Bad("naive-layer-datetime", "GET", "/api/v1/layers/ten_disorders/items?datetime=2021-05-01", 400),
    Bad("naive-layer-at", "GET", "/api/v1/layers/grid_cells/items?at=2021-05-01T00:00:00", 400),
    Bad("naive-indicators-start", "GET", "/api/v1/indicators?start=2021-01-01T00:00:00&end=2021-02-01T00:00:00Z",
        400),
    Bad("naive-indicators-end", "GET", "/api/v1/indicators?start=2021-01-01T00:00:00Z&end=2021-02-01", 400),
    Bad("naive-summary-start", "GET", "/api/v1/stats/summary?start=2021-01-01&end=2021-02-01T00:00:00Z", 400),
    Bad("naive-summary-end", "GET", "/api/v1/stats/summary?start=2021-01-01T00:00:00Z&end=2021-02-01T00:00", 400),
    Bad("naive-route-at", "GET", "/api/v1/route?lon=115.72&lat=36.02&category=TD02&at=2021-05-01T00:00:00", 400),
    Bad("naive-tile-since", "GET", "/api/v1/tiles/cases/14/13456/6300.mvt?since=2021-05-01T00:00:00", 400),
    Bad("naive-tile-until", "GET", "/api/v1/tiles/cases/14/13456/6300.mvt?until=2021-05-01", 400),
    Bad("naive-open311-start-date", "GET", "/open311/v2/requests.json?start_date=2021-05-01T00:00:00", 400,
        user=None),
    Bad("naive-open311-end-date", "GET", "/open311/v2/requests.json?end_date=2021-05-01", 400, user=None),
    Bad("date-out-of-range", "GET", "/api/v1/cases?datetime=99999-01-01T00:00:00Z", 400),
    # -- headers ------------------------------------------------------------------------------------------------
    Bad("idempotency-key-too-long", "POST", CASES, 400, json=report(), headers={"Idempotency-Key": "k" * 129}),
    Bad("idempotency-key-control-chars", "POST", CASES, 400, json=report(), headers={"Idempotency-Key": "a\x07b"}),
    Bad("idempotency-key-blank", "POST", CASES, 400, json=report(), headers={"Idempotency-Key": "   "}),
    Bad("open311-idempotency-key-too-long", "POST", O311, 400, user=None, data=open311(),
        headers={"Idempotency-Key": "k" * 101}),
    Bad("if-match-garbage", "POST", STEP, 400, json={"action": "file"}, headers={"If-Match": "garbage"}),
    Bad("if-match-star", "POST", STEP, 400, json={"action": "file"}, headers={"If-Match": "*"}),
    Bad("if-match-huge-version", "POST", STEP, (400, 409), json={"action": "file"}, user="sup1",
        headers={"If-Match": f'W/"{2**70}"'}),
    Bad("if-match-disagrees-with-body", "POST", STEP, 400, json={"action": "file", "version": 2},
        headers={"If-Match": 'W/"1"'}),
    Bad("no-version-at-all", "POST", STEP, 428, json={"action": "file"}),
    Bad("authorization-basic-scheme", "GET", CASES, 401, user=None, headers={"Authorization": "Basic b3A6eA=="}),
    Bad("authorization-huge-token", "GET", CASES, 401, user=None, headers={"Authorization": "Bearer " + "A" * 8000}),
    Bad("authorization-sql-injection", "GET", CASES, 401, user=None,
        headers={"Authorization": "Bearer ' OR '1'='1"}),
    # -- paging and boxes ---------------------------------------------------------------------------------------
    Bad("negative-limit", "GET", "/api/v1/cases?limit=-1", 400),
    Bad("zero-limit", "GET", "/api/v1/cases?limit=0", 400),
    Bad("negative-offset", "GET", "/api/v1/layers/cases/items?offset=-5", 400),
    Bad("offset-beyond-2-pow-31", "GET", f"/api/v1/cases?offset={2**40}", 400),
    Bad("limit-not-a-number", "GET", "/api/v1/cases?limit=ten", 400),
    Bad("bbox-five-numbers", "GET", "/api/v1/cases?bbox=115.7,36.0,115.8,36.05,1", 400),
    Bad("bbox-three-numbers", "GET", "/api/v1/layers/grid_cells/items?bbox=115.7,36.0,115.8", 400),
    Bad("bbox-nan", "GET", "/api/v1/cases?bbox=NaN,36.0,115.8,36.05", 400),
    Bad("bbox-swapped-axes", "GET", "/api/v1/cases?bbox=36.0,115.7,36.05,115.8", 400),
    Bad("bbox-min-above-max", "GET", "/api/v1/cases?bbox=115.8,36.05,115.7,36.0", 400),
    Bad("unknown-filter", "GET", "/api/v1/cases?colour=red", 400),
    Bad("unknown-format", "GET", "/api/v1/layers/cases/items?f=xml", 400),
    Bad("filter-value-too-long", "GET", "/api/v1/cases?category=" + "x" * 100, 400),
    Bad("too-many-filter-values", "GET", "/api/v1/cases?category=" + ",".join(["A"] * 201), 400),
    Bad("indicator-period-reversed", "GET", "/api/v1/indicators?start=2021-02-01T00:00:00Z"
        "&end=2021-01-01T00:00:00Z", 400),
    Bad("summary-period-over-two-years", "GET", "/api/v1/stats/summary?start=2010-01-01T00:00:00Z"
        "&end=2021-01-01T00:00:00Z", 400),
    Bad("open311-window-over-90-days", "GET", "/open311/v2/requests.json?start_date=2021-01-01T00:00:00Z"
        "&end_date=2021-12-01T00:00:00Z", 400, user=None),
    # -- accounts -----------------------------------------------------------------------------------------------
    Bad("login-username-too-long", "POST", TOKENS, 400, user=None, json={"username": "u" * 65, "password": "x"}),
    Bad("login-password-array", "POST", TOKENS, 400, user=None, json={"username": "op", "password": ["x"]}),
    Bad("login-missing-password", "POST", TOKENS, 400, user=None, json={"username": "op"}),
    Bad("open311-bad-api-key", "POST", O311, 403, user=None, data=open311(api_key="' OR '1'='1")),
    Bad("open311-email-with-html", "POST", O311, 400, user=None, data=open311(email=f"{SCRIPT}@x")),
    Bad("open311-media-url-javascript", "POST", O311, 400, user=None, data=open311(media_url="javascript:alert(1)")),
    Bad("open311-lat-only", "POST", O311, 400, user=None, data=open311(long="")),
    Bad("open311-swapped-lat-long", "POST", O311, 400, user=None, data=open311(lat="115.72", long="36.02")),
    Bad("open311-nan-lat", "POST", O311, 400, user=None, data=open311(lat="NaN")),
    Bad("open311-description-too-long", "POST", O311, 400, user=None, data=open311(description="x" * 4001)),
    Bad("open311-unknown-jurisdiction", "POST", O311, 404, user=None, data=open311(jurisdiction_id="110101")),
]


def _materialise(value: Any) -> Any:
    return value() if callable(value) else value


def send(world, bad: Bad, case_id: int):
    """Send one catalogue entry; return the response."""
    url = bad.url.replace("{case}", str(case_id))
    headers = dict(world.auth(bad.user)) if bad.user else {}
    headers.update(bad.headers)
    kwargs: dict[str, Any] = {"method": bad.method, "headers": headers}
    if bad.json is not MISSING:
        kwargs["json"] = bad.json
    if bad.files is not None:
        values = MultiDict(_materialise(bad.data) or {})
        for name, (content, filename, mime) in bad.files.items():
            values.add(name, FileStorage(io.BytesIO(_materialise(content)), filename, name, mime))
        # Encoded here, in memory: the test client spools large bodies to a temporary file it never closes.
        boundary, body = encode_multipart(values)
        kwargs.update(data=body, content_type=f"multipart/form-data; boundary={boundary}")
    elif bad.data is not None:
        kwargs["data"] = _materialise(bad.data)
    if bad.content_type is not None:
        kwargs["content_type"] = bad.content_type
    return world.client().open(url, **kwargs)


def test_the_catalogue_has_at_least_fifty_distinct_entries() -> None:
    ids = [bad.id for bad in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 50


@pytest.mark.parametrize("bad", CATALOGUE, ids=lambda bad: bad.id)
def test_bad_input_is_refused_and_writes_nothing(sec_world, sample_case: int, bad: Bad) -> None:
    before, files_before = sec_world.counts(), sec_world.stored_files()
    started = time.perf_counter()
    response = send(sec_world, bad, sample_case)
    elapsed = time.perf_counter() - started
    expected = bad.expect if isinstance(bad.expect, tuple) else (bad.expect,)
    body = response.get_data(as_text=True)
    assert response.status_code in expected, (response.status_code, body[:500])
    assert elapsed < bad.seconds, f"{elapsed:.2f} s"
    assert sec_world.counts() == before
    assert sec_world.stored_files() == files_before
    path = bad.url.split("?")[0]
    if path.startswith("/open311/"):
        assert response.mimetype in ("application/json", "text/xml")
    elif path.startswith("/api/"):
        assert response.mimetype == PROBLEM, response.mimetype
        assert response.get_json()["status"] == response.status_code
    assert response.mimetype != "text/html" or SCRIPT not in body
