"""The OpenAPI docs page, served with the platform's own copy of Swagger UI (no CDN), under the CSP.

Swagger UI comes from the npm package ``swagger-ui-dist`` (version 5: APIFlask writes OpenAPI 3.1, which
Swagger UI 4 cannot read), copied into ``webmap/static/vendor/swagger-ui`` with the map pages' files.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, render_template, send_from_directory, url_for

from api.guards import MAX_BIGINT
from gis_platform.errors import PlatformError
from webmap.assets import VENDOR

bp = Blueprint("docs_assets", __name__)

ASSETS = VENDOR / "swagger-ui"
PREFIX = "/api/v1/docs/assets"
PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# RFC 9457 as api.errors renders it; ``allowed`` is the coordination conflicts' extension member.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "problem"],
            "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}}},
        "allowed": {"type": "array", "items": {"type": "string"}},
    },
}
# Answers any operation may give, whatever its own: the role check, a database that is down, and
# (with a JSON or form body) a body over GIS_MAX_UPLOAD_MB or of the wrong media type.
SECURED_ERRORS = {"401": "not signed in, or the token is unknown or revoked",
                  "403": "your role may not do this"}
ALWAYS_ERRORS = {"503": "the database is unreachable: retry after Retry-After seconds"}
BODY_ERRORS = {"400": "invalid input", "413": "the body is larger than GIS_MAX_UPLOAD_MB",
               "415": "the body is not of the documented media type"}


class DocsMissing(PlatformError):
    """Swagger UI's files are not built: the docs page cannot show (503, saying what to run)."""

    status = 503
    title = "Front-end files not built"
    type_slug = "assets-missing"


@bp.get(f"{PREFIX}/<path:filename>")
def asset(filename: str):
    """Serve a Swagger UI file from the platform's copy."""
    return send_from_directory(ASSETS, filename, max_age=86400)


def docs_page() -> str:
    """Show Swagger UI, started by a script that carries the request's CSP nonce.

    APIFlask's own page starts it from an inline script without one, which the Content-Security-Policy
    refuses; this page has the same assets and settings.
    """
    if not (ASSETS / "swagger-ui-bundle.js").is_file():
        raise DocsMissing("接口文档页面的前端资源未构建，请运行 make assets。"
                          "Swagger UI's files are not built: run `make assets`.")
    app = current_app
    options = {"url": url_for("openapi.spec"), "deepLinking": True, "layout": app.config["SWAGGER_UI_LAYOUT"],
               # No badge from validator.swagger.io: the page loads nothing from other hosts.
               "validatorUrl": None, **app.config["SWAGGER_UI_CONFIG"]}
    return render_template("docs.html", title=app.title, version=app.version,  # type: ignore[attr-defined]
                           options=options)


def configure_docs(app: Flask) -> None:
    """Point the docs page at local assets and register the route that serves them."""
    app.view_functions["openapi.docs"] = docs_page
    app.config.update(
        SWAGGER_UI_CSS=f"{PREFIX}/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS=f"{PREFIX}/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS=f"{PREFIX}/swagger-ui-standalone-preset.js",
        DOCS_FAVICON=f"{PREFIX}/favicon-32x32.png",
        SWAGGER_UI_CONFIG={"persistAuthorization": True},
    )
    app.spec_processor(document_problems)  # type: ignore[attr-defined]
    app.register_blueprint(bp)


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Document every error response as the problem+json document api.errors sends, with the statuses it may.

    APIFlask describes errors as ``application/json`` in its own shapes; the API answers RFC 9457
    problems, and a client (or a fuzzer) reading the document must find what it will be sent.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for item in spec.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("schema", {}).get("type") == "integer":
                    parameter["schema"].update(minimum=0, maximum=MAX_BIGINT)
            responses = operation.setdefault("responses", {})
            extra = dict(ALWAYS_ERRORS)
            if operation.get("security"):
                extra.update(SECURED_ERRORS)
            if operation.get("requestBody"):
                extra.update(BODY_ERRORS)
            for status, description in extra.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = {PROBLEM_MIMETYPE: {"schema": PROBLEM_REF}}
                    if status in ("429", "503"):
                        response["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                                               "schema": {"type": "string"}}}
    return spec
