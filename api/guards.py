"""Refuse, before any view runs, input that no view could take: text the database cannot store,
JSON nested beyond reason or with duplicate keys, bodies of the wrong media type, ids beyond bigint.

PostgreSQL refuses NUL in text and UTF-8 cannot encode a lone surrogate (JSON may spell both,
``\\u0000`` and ``\\ud800``), so such a string would fail deep in a query as a 500; Python's JSON parser
gives up on very deep nesting with a RecursionError, another 500. Checked once here, each is a 400
naming the field, whichever view it was meant for.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.routing import IntegerConverter

from gis_platform.errors import FieldError, ValidationError

# NUL, and UTF-16 surrogates: JSON can carry a lone one ("\ud800"), which no UTF-8 text can hold.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_JSON_DEPTH = 64  # the platform's own documents nest a handful of levels; GeoJSON a MultiPolygon 4
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
MAX_BIGINT = 2**63 - 1
# Open311 checks every parameter itself (control characters included) and words errors in its own terms.
SELF_CHECKED_BLUEPRINTS = ("open311",)


class BigintConverter(IntegerConverter):
    """``<int:…>`` bounded by PostgreSQL's bigint: a larger id is a 404, never an out-of-range query (500)."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's parameter name
        kwargs.setdefault("max", MAX_BIGINT)
        super().__init__(map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Bound ``<int:…>`` path segments and install the checks on every request (before routes are added)."""
    app.url_map.converters["int"] = BigintConverter
    app.before_request(check_request)


def check_request() -> None:
    """Refuse unstorable text anywhere in the request, over-deep JSON and non-JSON bodies for JSON views."""
    if request.blueprint in SELF_CHECKED_BLUEPRINTS:
        return
    errors: list[FieldError] = []
    for name, value in (request.view_args or {}).items():
        _check_text(f"path.{name}", value, errors)
    for name, value in request.args.items(multi=True):
        _check_text(f"query.{name}", name, errors)
        _check_text(f"query.{name}", value, errors)
    if request.method in WRITE_METHODS:
        _check_json_view_media_type()
        if request.is_json:
            _check_json(errors)
        elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for name, value in request.form.items(multi=True):
                _check_text(f"form.{name}", name, errors)
                _check_text(f"form.{name}", value, errors)
            for name, upload in request.files.items(multi=True):
                _check_text(f"files.{name}", upload.filename or "", errors)
    if errors:
        raise ValidationError(errors[:20])


def _check_text(field: str, value: Any, errors: list[FieldError]) -> None:
    if isinstance(value, str) and UNSTORABLE.search(value):
        # The field name may be the culprit too: it is echoed, so it must be encodable itself.
        errors.append(FieldError(UNSTORABLE.sub("\ufffd", field[:80]),
                                 "contains a NUL character or an unpaired UTF-16 surrogate"))


def _check_json_view_media_type() -> None:
    """Answer 415 when a view that reads a JSON body is sent a body of another media type."""
    view = current_app.view_functions.get(request.endpoint or "")
    spec = getattr(view, "_spec", None) or {}
    if not spec.get("body") or spec.get("content_type") != "application/json":
        return
    if request.mimetype and not request.is_json:
        raise UnsupportedMediaType(f"send the body as application/json, not {request.mimetype[:60]}")


def _check_json(errors: list[FieldError]) -> None:
    """Parse the JSON body once to find NUL, lone surrogates and excessive depth (bad JSON is left to the view)."""
    data = request.get_data(cache=True)
    if not data:
        return
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen = dict(items)
        if len(seen) != len(items):
            duplicates.extend(k for k in seen if sum(1 for name, _ in items if name == k) > 1)
        return seen

    try:
        document = json.loads(data, object_pairs_hook=pairs)
    except RecursionError:
        raise ValidationError(FieldError("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")) from None
    except ValueError:
        return  # malformed JSON: the view's parser says so, as a 400
    if duplicates:
        # Parsers disagree on which of two equal keys wins (Python takes the last): refuse the ambiguity.
        raise ValidationError([FieldError(UNSTORABLE.sub("\ufffd", f"body.{name}"[:80]),
                                          "the key appears more than once") for name in duplicates[:20]])
    # Walk without recursion: depth is what is being checked.
    stack: list[tuple[Any, str, int]] = [(document, "body", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValidationError(FieldError("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"))
        if isinstance(value, dict):
            for key, child in value.items():
                _check_text(f"{path}.{key}", key, errors)
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(value, list):
            # Numbers need no look (a polygon's vertices are most of a large body): push only the rest.
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value)
                         if isinstance(child, (dict, list, str)))
        else:
            _check_text(path, value, errors)
        if len(errors) >= 20:
            return
